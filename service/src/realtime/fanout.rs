//! [`Fanout`] on a `SocketIo`: with the Redis adapter an emit reaches the
//! matching sockets of every instance; with the local adapter, this one's.

use async_trait::async_trait;
use serde_json::Value;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators, SocketIo};

use super::{redis_driver::AdapterHealth, NAMESPACE};
use crate::pipeline::fanout::{Fanout, FanoutError};

/// Emits on the `/chats` namespace of `io`.
pub struct SocketFanout<A: Adapter> {
    io: SocketIo<A>,
    adapter: Option<AdapterHealth>,
}

impl<A: Adapter> SocketFanout<A> {
    /// Emits through `io`; `adapter` is the Redis adapter's health, if any.
    pub fn new(io: SocketIo<A>, adapter: Option<AdapterHealth>) -> Self {
        Self { io, adapter }
    }

    fn namespace(&self) -> Result<BroadcastOperators<A>, FanoutError> {
        self.io
            .of(NAMESPACE)
            .ok_or_else(|| FanoutError(format!("namespace {NAMESPACE} is not registered")))
    }
}

#[async_trait]
impl<A: Adapter> Fanout for SocketFanout<A> {
    async fn emit(
        &self,
        to: Vec<String>,
        except: Vec<String>,
        event: &str,
        payload: &Value,
    ) -> Result<(), FanoutError> {
        self.namespace()?
            .to(to)
            .except(except)
            .emit(event, payload)
            .await
            .map_err(|error| FanoutError(error.to_string()))
    }

    async fn disconnect(&self, to: Vec<String>) -> Result<(), FanoutError> {
        self.namespace()?
            .to(to)
            .disconnect()
            .await
            .map_err(|error| FanoutError(error.to_string()))
    }

    fn settled(&self) -> bool {
        self.adapter.as_ref().is_none_or(AdapterHealth::settled)
    }

    async fn close(&self) {
        self.io.close().await;
    }
}
