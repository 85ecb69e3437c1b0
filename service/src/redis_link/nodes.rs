//! Managers on the data nodes, and the check that a node is the master.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use async_trait::async_trait;
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    IntoConnectionInfo, ProtocolVersion, PushInfo, RedisConnectionInfo, Role,
};

use super::{Address, LinkOptions, Open, NODE_TIMEOUT};
use crate::config::Secret;

/// Opens managers on data nodes, all with the same password and options.
pub(super) struct Nodes {
    pub(super) password: Option<Secret>,
    pub(super) options: LinkOptions,
    /// The link's current generation, which the push senders compare
    /// with their own.
    pub(super) live: Arc<AtomicU64>,
}

impl Nodes {
    /// A connected manager on `address`, whose pushes count while it is
    /// generation `generation`.
    pub(super) async fn manager_of(
        &self,
        address: &Address,
        generation: u64,
    ) -> Result<ConnectionManager, String> {
        let mut redis = RedisConnectionInfo::default().set_protocol(ProtocolVersion::RESP3);
        if let Some(password) = &self.password {
            redis = redis.set_password(password.expose());
        }
        let info = (address.host.clone(), address.port)
            .into_connection_info()
            .map_err(|error| error.to_string())?
            .set_redis_settings(redis);
        let client = redis::Client::open(info).map_err(|error| error.to_string())?;
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(NODE_TIMEOUT))
            .set_response_timeout(Some(NODE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(self.options.max_delay);
        if let Some(pushes) = &self.options.pushes {
            let (pushes, live) = (pushes.clone(), self.live.clone());
            config = config
                .set_push_sender(move |push: PushInfo| {
                    // A replaced manager's connection may still be open,
                    // to a demoted master that replicates every publish.
                    if live.load(Ordering::SeqCst) == generation {
                        pushes(push);
                    }
                    Ok::<(), std::convert::Infallible>(())
                })
                .set_automatic_resubscription();
        }
        ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|error| error.to_string())
    }
}

#[async_trait]
impl Open for Nodes {
    async fn open(&self, address: &Address, generation: u64) -> Result<ConnectionManager, String> {
        let mut manager = self.manager_of(address, generation).await?;
        let role = tokio::time::timeout(
            NODE_TIMEOUT,
            redis::cmd("ROLE").query_async::<Role>(&mut manager),
        )
        .await
        .map_err(|_| format!("no answer to ROLE within {NODE_TIMEOUT:?}"))?
        .map_err(|error| error.to_string())?;
        match role {
            Role::Primary { .. } => Ok(manager),
            other => Err(format!("ROLE says {other:?}, not master")),
        }
    }
}
