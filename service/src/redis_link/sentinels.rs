//! Where the master is, as the Sentinels say.

use async_trait::async_trait;
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, RedisResult};

use super::{Address, Locate, SENTINEL_TIMEOUT};

/// The Sentinels, asked in turn, each on a connection kept between
/// questions.
pub(super) struct Sentinels {
    sentinels: Vec<(Address, Option<MultiplexedConnection>)>,
    name: String,
}

impl Sentinels {
    pub(super) fn new(sentinels: Vec<Address>, name: String) -> Self {
        Self {
            sentinels: sentinels.into_iter().map(|a| (a, None)).collect(),
            name,
        }
    }
}

#[async_trait]
impl Locate for Sentinels {
    async fn master(&mut self) -> Result<Address, String> {
        let mut causes = Vec::new();
        for (sentinel, connection) in &mut self.sentinels {
            match ask(sentinel, connection, &self.name).await {
                Ok(Some(master)) => return Ok(master),
                Ok(None) => causes.push(format!("{sentinel} knows no master {:?}", self.name)),
                Err(error) => {
                    *connection = None;
                    causes.push(format!("{sentinel}: {error}"));
                }
            }
        }
        Err(causes.join("; "))
    }
}

/// `SENTINEL get-master-addr-by-name` on one Sentinel.
async fn ask(
    sentinel: &Address,
    connection: &mut Option<MultiplexedConnection>,
    name: &str,
) -> RedisResult<Option<Address>> {
    let connection = match connection {
        Some(connection) => connection,
        None => {
            let client = redis::Client::open((sentinel.host.clone(), sentinel.port))?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(SENTINEL_TIMEOUT))
                .set_response_timeout(Some(SENTINEL_TIMEOUT));
            connection.insert(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            )
        }
    };
    let master: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(connection)
        .await?;
    Ok(master.map(|(host, port)| Address::new(host, port)))
}
