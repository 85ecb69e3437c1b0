//! [`Fanout`] on a `SocketIo`: with the Redis adapter an emit reaches the
//! matching sockets of every instance; with the local adapter, this one's.

use async_trait::async_trait;
use serde_json::Value;
use socketioxide::{adapter::Adapter, SocketIo};

use super::NAMESPACE;
use crate::pipeline::fanout::{Fanout, FanoutError};

/// Emits on the `/chats` namespace of `io`.
pub struct SocketFanout<A: Adapter>(pub SocketIo<A>);

#[async_trait]
impl<A: Adapter> Fanout for SocketFanout<A> {
    async fn emit(
        &self,
        to: Vec<String>,
        except: Vec<String>,
        event: &str,
        payload: &Value,
    ) -> Result<(), FanoutError> {
        let namespace = self
            .0
            .of(NAMESPACE)
            .ok_or_else(|| FanoutError(format!("namespace {NAMESPACE} is not registered")))?;
        namespace
            .to(to)
            .except(except)
            .emit(event, payload)
            .await
            .map_err(|error| FanoutError(error.to_string()))
    }

    async fn close(&self) {
        self.0.close().await;
    }
}
