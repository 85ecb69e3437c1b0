//! Typed configuration, read once from the environment.
//!
//! Names follow the original service's `.env.example`; every variable is
//! documented in `.env.example` at the repository root. A backend whose
//! variables are absent runs in memory, so `chat-service` with no
//! configuration at all is a working single-instance server.

use std::{fmt, net::IpAddr, path::PathBuf, time::Duration};

/// The default cap on one frame a client sends, in bytes
/// (`SOCKET_FRAME_LIMIT_BYTES`).
///
/// The largest legal packet is a `message` of 4,096 characters with a
/// 128-character `clientMessageId`. A client that escapes everything
/// outside ASCII (Python's `json.dumps` does by default) writes a 4-byte
/// character as a 12-byte surrogate pair, `\ud83d\ude00`: about 50 KB in
/// all. 64 KiB fits that with room to spare; the libraries' own defaults
/// would read up to 64 MiB.
pub const DEFAULT_FRAME_LIMIT: usize = 64 * 1024;

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to bind (`HOST`, default `0.0.0.0`).
    pub host: IpAddr,
    /// Port for HTTP and Socket.IO (`PORT`, default 3000; 0 picks a free one).
    pub port: u16,
    /// Cassandra, when `CASSANDRA_NODE_HOSTS` is set.
    pub cassandra: Option<CassandraSettings>,
    /// Redis, when `CACHE_HOST` or `CACHE_SENTINELS` is set.
    pub redis: Option<RedisSettings>,
    /// Kafka, when `KAFKA_BROKERS` is set.
    pub kafka: Option<KafkaSettings>,
    /// Lifetime of a login token (`TOKEN_TTL_SECONDS`, default 7 days).
    pub token_ttl: Duration,
    /// Accounts without a password may be registered, and log in by
    /// username alone, as the original's did (`PASSWORDLESS_ACCOUNTS`,
    /// default `false`). It gives away every such account to anyone who
    /// knows its username: for the original's clients only.
    pub passwordless_accounts: bool,
    /// How long a stop may take, from SIGTERM to exit, whatever the
    /// backends do (`STOP_TIMEOUT_SECONDS`, default 15). Past it the
    /// process exits anyway: an orchestrator kills it soon after.
    pub stop_timeout: Duration,
    /// Largest accepted HTTP body (`HTTP_BODY_LIMIT_BYTES`, default 64 KiB:
    /// a group of 1,000 members is a body of about 40 KB).
    pub body_limit: usize,
    /// The chat page's built files, served at `/` (`WEB_ROOT`, default
    /// `web/dist`, from the working directory; `make web` builds it).
    pub web_root: PathBuf,
    /// Width of a message partition's time bucket
    /// (`MESSAGE_BUCKET_SECONDS`, default 1 day). Fixed for a keyspace's life.
    pub message_bucket: Duration,
    /// The Socket.IO gateway and the message pipeline.
    pub realtime: RealtimeSettings,
}

/// Settings of the Socket.IO gateway and the message pipeline.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// Messages a user may send per second, sustained, on one instance
    /// (`MESSAGE_RATE_PER_SECOND`, default 20).
    pub rate_per_second: u32,
    /// Messages a user may send at once before the rate applies
    /// (`MESSAGE_RATE_BURST`, default 40).
    pub rate_burst: u32,
    /// Rooms whose participants are kept in memory
    /// (`ROOM_CACHE_CAPACITY`, default 100000).
    pub room_cache_capacity: usize,
    /// Most members a group may have (`ROOM_MAX_MEMBERS`, default 1000).
    pub room_max_members: usize,
    /// How long a `clientMessageId` is remembered for resends
    /// (`CLIENT_MESSAGE_ID_TTL_SECONDS`, default 1 day).
    pub client_message_id_ttl: Duration,
    /// Largest frame a client may send, in bytes: one websocket message or
    /// the body of one polling request (`SOCKET_FRAME_LIMIT_BYTES`, default
    /// [`DEFAULT_FRAME_LIMIT`], 64 KiB). A larger one closes its connection.
    pub frame_limit: usize,
    /// Sockets one user may have open on one instance
    /// (`MAX_SOCKETS_PER_USER`, default 32); the next handshake is refused.
    pub max_sockets_per_user: usize,
    /// Events one socket may have waiting to be written
    /// (`SOCKET_EVENT_BUFFER`, default 1024); past it an emit to that
    /// socket fails and a replay waits.
    pub socket_event_buffer: usize,
    /// What one catch-up may hold, and what all of them keep.
    pub catch_up: CatchUpBounds,
    /// Usernames the in-process login throttle tracks at most
    /// (`LOGIN_THROTTLE_MAX_TRACKED`, default 50000); past it the oldest
    /// window is dropped.
    pub login_throttle_max_tracked: usize,
}

/// Bounds on the state of catch-ups (`join` with `since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpBounds {
    /// Live deliveries one catch-up holds while it replays
    /// (`CATCH_UP_MAX_HELD`, default 1000); past it the catch-up ends
    /// `complete: false`.
    pub max_held: usize,
    /// How long one replay may take (`CATCH_UP_WITHIN_SECONDS`, default
    /// 30); then it stops, `complete: false`.
    pub within: Duration,
    /// Replayed ids kept over all sockets of the instance, so the live
    /// stream does not bring them again (`CATCH_UP_MAX_KEPT_IDS`, default
    /// 200000); past it the oldest catch-ups' are dropped.
    pub max_kept_ids: usize,
}

impl Default for CatchUpBounds {
    fn default() -> Self {
        Self {
            max_held: 1_000,
            within: Duration::from_secs(30),
            max_kept_ids: 200_000,
        }
    }
}

/// Connection settings for Cassandra.
#[derive(Debug, Clone)]
pub struct CassandraSettings {
    /// `host:port` contact points (`CASSANDRA_NODE_HOSTS`, comma separated;
    /// a host without a port gets 9042).
    pub hosts: Vec<String>,
    /// Local datacenter for load balancing (`CASSANDRA_DATACENTER`).
    pub datacenter: Option<String>,
    /// Keyspace (`CASSANDRA_KEYSPACE`, default `chat_service`).
    pub keyspace: String,
    /// Replication map used when the keyspace is created
    /// (`CASSANDRA_REPLICATION`, default SimpleStrategy with factor 1).
    pub replication: String,
    /// Optional credentials (`CASSANDRA_USERNAME`, `CASSANDRA_PASSWORD`).
    pub credentials: Option<(String, Secret)>,
    /// Consistency of every read and write (`CASSANDRA_CONSISTENCY`,
    /// default `LOCAL_QUORUM`); lightweight transactions use the matching
    /// serial level (`LOCAL_SERIAL` for the local levels, else `SERIAL`).
    pub consistency: Consistency,
}

/// A Cassandra consistency level the service may read and write at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// `ONE`.
    One,
    /// `LOCAL_ONE`.
    LocalOne,
    /// `QUORUM`: a majority of all replicas, in every datacenter together.
    Quorum,
    /// `LOCAL_QUORUM`: a majority of the local datacenter's replicas.
    LocalQuorum,
    /// `EACH_QUORUM`: a majority in each datacenter.
    EachQuorum,
    /// `ALL`.
    All,
}

impl Consistency {
    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "ONE" => Self::One,
            "LOCAL_ONE" => Self::LocalOne,
            "QUORUM" => Self::Quorum,
            "LOCAL_QUORUM" => Self::LocalQuorum,
            "EACH_QUORUM" => Self::EachQuorum,
            "ALL" => Self::All,
            _ => return None,
        })
    }

    /// Whether the level counts the local datacenter's replicas only.
    pub fn is_local(self) -> bool {
        matches!(self, Self::LocalOne | Self::LocalQuorum)
    }
}

/// Connection settings for Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Where the master is.
    pub master: RedisMaster,
    /// `CACHE_PASSWORD`, optional: for the data nodes, not the Sentinels.
    pub password: Option<Secret>,
    /// Prefix of every key this service writes (`CACHE_PREFIX`, default `chat:`).
    pub prefix: String,
}

/// Where the Redis master is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMaster {
    /// At a fixed address: `CACHE_HOST`, `CACHE_PORT` (default 6379).
    At {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Wherever Sentinel says it is, which changes after a failover.
    Sentinel {
        /// `host:port` of each Sentinel (`CACHE_SENTINELS`, comma
        /// separated; a host without a port gets 26379).
        sentinels: Vec<(String, u16)>,
        /// The name the Sentinels monitor the master by
        /// (`CACHE_SENTINEL_MASTER`, default `chat`).
        name: String,
    },
}
/// Connection settings for Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`, comma separated `host:port`.
    pub brokers: String,
    /// Consumer group of the message pipeline (`KAFKA_CONSUMER_GROUP`, default `ms-chats`).
    pub consumer_group: String,
    /// Client id sent to the brokers (`KAFKA_SERVICE_NAME`, default `chat-service`).
    pub service_name: String,
    /// SASL/PLAIN credentials, only when both are set (`KAFKA_USERNAME`, `KAFKA_PASSWORD`).
    pub credentials: Option<(String, Secret)>,
    /// Prefix put before every topic name (`KAFKA_TOPIC_PREFIX`, default empty).
    pub topic_prefix: String,
    /// Partitions of topics created at start-up (`KAFKA_TOPIC_PARTITIONS`, default 6).
    pub partitions: i32,
    /// Replication factor of topics created at start-up
    /// (`KAFKA_TOPIC_REPLICATION`, default -1: the cluster's default, which
    /// in KRaft is the *controllers'* `default.replication.factor`, 1
    /// unless they set it, whatever the brokers say).
    pub replication: i32,
    /// Workers processing consumed messages side by side; one room's
    /// messages always go to the same worker (`KAFKA_CONSUMER_WORKERS`,
    /// default 64). Each worker has one Cassandra write in flight, and
    /// Cassandra's group commit makes a write wait up to 5 ms for its
    /// fsync, so this bounds the throughput: 16 fell behind at 1,000 msg/s
    /// (docs/PERFORMANCE.md).
    pub consumer_workers: usize,
    /// How long a publish may wait for the brokers before the sender is told
    /// the service is unavailable (`KAFKA_PUBLISH_TIMEOUT_MS`, default
    /// 1000, within the 2 s in which a sender is answered).
    pub publish_timeout: Duration,
    /// Wait before the first retry of a message that could not be stored;
    /// doubled for the next (`KAFKA_RETRY_BACKOFF_MS`, default 5000: three attempts span 15 s of outage).
    pub retry_backoff: Duration,
    /// How long the group waits for a member that stopped heartbeating
    /// before its partitions go to the others (`KAFKA_SESSION_TIMEOUT_MS`,
    /// default 2000; heartbeats go every quarter of it). A killed
    /// instance's rooms wait this long; the brokers must allow it
    /// (`group.min.session.timeout.ms`, 6000 unless set lower).
    pub session_timeout: Duration,
    /// How often the offsets of processed messages are committed
    /// (`KAFKA_COMMIT_INTERVAL_MS`, default 1000). A crashed instance's
    /// partitions are read again from the last commit: what it processed
    /// since comes back, and the relay keeps it from reaching a socket twice.
    pub commit_interval: Duration,
    /// How long the producer waits for more messages to share a produce
    /// request (`KAFKA_LINGER_MS`, librdkafka's `linger.ms`, default 0).
    /// Batching comes from concurrency instead: with one request in flight
    /// per broker, what arrives meanwhile goes in the next request, so a
    /// lone message waits for nothing and a busy second still shares
    /// requests (docs/PERFORMANCE.md, round two: p50 at 100 msg/s 14.6 ms
    /// with 5 ms of linger and 16 KB fetches, 6.6 ms without).
    pub linger: Duration,
    /// A consumer's fetch of the main topic answers once this many bytes
    /// are there (`KAFKA_FETCH_MIN_BYTES`, default 1: as soon as there is
    /// a message) or after `fetch_wait` (`KAFKA_FETCH_WAIT_MAX_MS`,
    /// default 5).
    pub fetch_min_bytes: u64,
    /// See `fetch_min_bytes`.
    pub fetch_wait: Duration,
    /// How often every Kafka client asks the brokers for its topics'
    /// leaders, beside the requests an error triggers
    /// (`KAFKA_METADATA_REFRESH_MS`, librdkafka's
    /// `topic.metadata.refresh.interval.ms`, default 250; librdkafka's own
    /// is 5 minutes). When a partition's leader dies, librdkafka can leave
    /// the partition on its internal broker after the new leader is known,
    /// until its 1 s topic scan looks again; a refresh moves it at once
    /// (docs/SCALING.md: the delivery p99 of a leader's death 1.55-2.20 s
    /// without, 0.68-1.13 s with). A request every 250 ms per client.
    pub metadata_refresh: Duration,
    /// librdkafka's `debug` contexts for every Kafka client, logged at
    /// debug level (`KAFKA_DEBUG`, e.g. `broker,topic,metadata`; unset: none).
    pub debug: Option<String>,
}

/// A configuration value that must never reach a log.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    reason: String,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the
    /// process environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let parse = |name: &'static str, default: &str| -> Result<u64, ConfigError> {
            let raw = get(name).unwrap_or_else(|| default.to_owned());
            raw.trim().parse().map_err(|_| ConfigError {
                name,
                reason: format!("{raw:?} is not a whole number"),
            })
        };
        let credentials = |user: &str, password: &str| match (get(user), get(password)) {
            (Some(user), Some(password)) => Some((user, Secret(password))),
            _ => None,
        };

        let host = get("HOST")
            .unwrap_or_else(|| "0.0.0.0".to_owned())
            .parse()
            .map_err(|_| ConfigError {
                name: "HOST",
                reason: "not an IP address".to_owned(),
            })?;
        let port = u16::try_from(parse("PORT", "3000")?).map_err(|_| ConfigError {
            name: "PORT",
            reason: "above 65535".to_owned(),
        })?;

        let cassandra = get("CASSANDRA_NODE_HOSTS").map(|hosts| CassandraSettings {
            hosts: hosts
                .split(',')
                .map(str::trim)
                .filter(|host| !host.is_empty())
                .map(|host| {
                    if host.contains(':') {
                        host.to_owned()
                    } else {
                        format!("{host}:9042")
                    }
                })
                .collect(),
            datacenter: get("CASSANDRA_DATACENTER"),
            keyspace: get("CASSANDRA_KEYSPACE").unwrap_or_else(|| "chat_service".to_owned()),
            replication: get("CASSANDRA_REPLICATION").unwrap_or_else(|| {
                "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_owned()
            }),
            credentials: credentials("CASSANDRA_USERNAME", "CASSANDRA_PASSWORD"),
            consistency: Consistency::LocalQuorum,
        });
        let consistency = match get("CASSANDRA_CONSISTENCY") {
            None => Consistency::LocalQuorum,
            Some(name) => Consistency::parse(&name).ok_or_else(|| ConfigError {
                name: "CASSANDRA_CONSISTENCY",
                reason: "use ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, EACH_QUORUM or ALL".to_owned(),
            })?,
        };
        let cassandra = cassandra.map(|settings| CassandraSettings {
            consistency,
            ..settings
        });
        if let Some(cassandra) = &cassandra {
            let valid = !cassandra.keyspace.is_empty()
                && cassandra.keyspace.len() <= 48
                && cassandra
                    .keyspace
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError {
                    name: "CASSANDRA_KEYSPACE",
                    reason: "use 1 to 48 letters, digits or underscores".to_owned(),
                });
            }
        }

        let master = match (get("CACHE_SENTINELS"), get("CACHE_HOST")) {
            (Some(sentinels), _) => Some(RedisMaster::Sentinel {
                sentinels: parse_sentinels(&sentinels)?,
                name: get("CACHE_SENTINEL_MASTER").unwrap_or_else(|| "chat".to_owned()),
            }),
            (None, Some(host)) => Some(RedisMaster::At {
                host,
                port: u16::try_from(parse("CACHE_PORT", "6379")?).map_err(|_| ConfigError {
                    name: "CACHE_PORT",
                    reason: "above 65535".to_owned(),
                })?,
            }),
            (None, None) => None,
        };
        let redis = master.map(|master| RedisSettings {
            master,
            password: get("CACHE_PASSWORD").map(Secret),
            prefix: get("CACHE_PREFIX").unwrap_or_else(|| "chat:".to_owned()),
        });

        let kafka = match get("KAFKA_BROKERS") {
            Some(brokers) => Some(KafkaSettings {
                brokers,
                consumer_group: get("KAFKA_CONSUMER_GROUP")
                    .unwrap_or_else(|| "ms-chats".to_owned()),
                service_name: get("KAFKA_SERVICE_NAME")
                    .unwrap_or_else(|| "chat-service".to_owned()),
                credentials: credentials("KAFKA_USERNAME", "KAFKA_PASSWORD"),
                topic_prefix: get("KAFKA_TOPIC_PREFIX").unwrap_or_default(),
                partitions: i32::try_from(parse("KAFKA_TOPIC_PARTITIONS", "6")?)
                    .ok()
                    .filter(|partitions| *partitions > 0)
                    .ok_or(ConfigError {
                        name: "KAFKA_TOPIC_PARTITIONS",
                        reason: "must be 1 or more".to_owned(),
                    })?,
                replication: match get("KAFKA_TOPIC_REPLICATION").as_deref().map(str::trim) {
                    None | Some("-1") => -1,
                    Some(raw) => {
                        raw.parse()
                            .ok()
                            .filter(|factor| *factor > 0)
                            .ok_or(ConfigError {
                                name: "KAFKA_TOPIC_REPLICATION",
                                reason: format!(
                                    "{raw:?} is neither 1 or more nor -1 (the cluster's default)"
                                ),
                            })?
                    }
                },
                consumer_workers: usize::try_from(parse("KAFKA_CONSUMER_WORKERS", "64")?)
                    .unwrap_or(usize::MAX)
                    .clamp(1, 256),
                publish_timeout: Duration::from_millis(
                    parse("KAFKA_PUBLISH_TIMEOUT_MS", "1000")?.max(1),
                ),
                retry_backoff: Duration::from_millis(parse("KAFKA_RETRY_BACKOFF_MS", "5000")?),
                session_timeout: Duration::from_millis(
                    parse("KAFKA_SESSION_TIMEOUT_MS", "2000")?.max(100),
                ),
                commit_interval: Duration::from_millis(
                    parse("KAFKA_COMMIT_INTERVAL_MS", "1000")?.max(1),
                ),
                linger: Duration::from_millis(parse("KAFKA_LINGER_MS", "0")?),
                fetch_min_bytes: parse("KAFKA_FETCH_MIN_BYTES", "1")?.max(1),
                fetch_wait: Duration::from_millis(parse("KAFKA_FETCH_WAIT_MAX_MS", "5")?),
                metadata_refresh: Duration::from_millis(
                    parse("KAFKA_METADATA_REFRESH_MS", "250")?.max(10),
                ),
                debug: get("KAFKA_DEBUG").filter(|contexts| !contexts.trim().is_empty()),
            }),
            None => None,
        };

        let message_bucket = parse("MESSAGE_BUCKET_SECONDS", "86400")?;
        if message_bucket == 0 {
            return Err(ConfigError {
                name: "MESSAGE_BUCKET_SECONDS",
                reason: "must be 1 or more".to_owned(),
            });
        }

        Ok(Self {
            host,
            port,
            cassandra,
            redis,
            kafka,
            token_ttl: Duration::from_secs(parse("TOKEN_TTL_SECONDS", "604800")?.max(1)),
            passwordless_accounts: match get("PASSWORDLESS_ACCOUNTS").as_deref().map(str::trim) {
                None | Some("false" | "0") => false,
                Some("true" | "1") => true,
                Some(other) => {
                    return Err(ConfigError {
                        name: "PASSWORDLESS_ACCOUNTS",
                        reason: format!("{other:?} is neither true nor false"),
                    })
                }
            },
            stop_timeout: Duration::from_secs(parse("STOP_TIMEOUT_SECONDS", "15")?.max(1)),
            body_limit: usize::try_from(parse("HTTP_BODY_LIMIT_BYTES", "65536")?)
                .unwrap_or(usize::MAX),
            web_root: PathBuf::from(get("WEB_ROOT").unwrap_or_else(|| "web/dist".to_owned())),
            message_bucket: Duration::from_secs(message_bucket),
            realtime: RealtimeSettings {
                rate_per_second: u32::try_from(parse("MESSAGE_RATE_PER_SECOND", "20")?)
                    .unwrap_or(u32::MAX)
                    .max(1),
                rate_burst: u32::try_from(parse("MESSAGE_RATE_BURST", "40")?)
                    .unwrap_or(u32::MAX)
                    .max(1),
                room_cache_capacity: usize::try_from(parse("ROOM_CACHE_CAPACITY", "100000")?)
                    .unwrap_or(usize::MAX)
                    .max(1),
                room_max_members: usize::try_from(parse("ROOM_MAX_MEMBERS", "1000")?)
                    .unwrap_or(usize::MAX)
                    .max(2),
                client_message_id_ttl: Duration::from_secs(
                    parse("CLIENT_MESSAGE_ID_TTL_SECONDS", "86400")?.max(1),
                ),
                frame_limit: usize::try_from(parse(
                    "SOCKET_FRAME_LIMIT_BYTES",
                    &DEFAULT_FRAME_LIMIT.to_string(),
                )?)
                .unwrap_or(usize::MAX),
                max_sockets_per_user: usize::try_from(parse("MAX_SOCKETS_PER_USER", "32")?)
                    .unwrap_or(usize::MAX)
                    .max(1),
                socket_event_buffer: usize::try_from(parse("SOCKET_EVENT_BUFFER", "1024")?)
                    .unwrap_or(usize::MAX)
                    .max(1),
                catch_up: CatchUpBounds {
                    max_held: usize::try_from(parse("CATCH_UP_MAX_HELD", "1000")?)
                        .unwrap_or(usize::MAX),
                    within: Duration::from_secs(parse("CATCH_UP_WITHIN_SECONDS", "30")?.max(1)),
                    max_kept_ids: usize::try_from(parse("CATCH_UP_MAX_KEPT_IDS", "200000")?)
                        .unwrap_or(usize::MAX),
                },
                login_throttle_max_tracked: usize::try_from(parse(
                    "LOGIN_THROTTLE_MAX_TRACKED",
                    "50000",
                )?)
                .unwrap_or(usize::MAX)
                .max(1),
            },
        })
    }
}

/// Reads `CACHE_SENTINELS`: `host:port` entries, comma separated; a host
/// without a port gets Sentinel's 26379, an IPv6 address goes in brackets.
fn parse_sentinels(raw: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    let invalid = |reason: String| ConfigError {
        name: "CACHE_SENTINELS",
        reason,
    };
    let mut sentinels = Vec::new();
    for entry in raw
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (host, port) = match entry.rsplit_once(':') {
            // "::1" alone is an address without a port, not host ":" port 1.
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, port),
            _ => (entry, "26379"),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| invalid(format!("{entry:?} has no valid port")))?;
        if host.is_empty() {
            return Err(invalid(format!("{entry:?} has no host")));
        }
        sentinels.push((host.to_owned(), port));
    }
    if sentinels.is_empty() {
        return Err(invalid("names no Sentinel".to_owned()));
    }
    Ok(sentinels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn passwords_are_required_unless_told_otherwise() {
        assert!(!settings(&[]).unwrap().passwordless_accounts);
        assert!(
            settings(&[("PASSWORDLESS_ACCOUNTS", "true")])
                .unwrap()
                .passwordless_accounts
        );
        assert!(settings(&[("PASSWORDLESS_ACCOUNTS", "yes please")]).is_err());
    }

    #[test]
    fn no_configuration_means_every_backend_in_memory() {
        let settings = settings(&[]).unwrap();
        assert!(settings.cassandra.is_none() && settings.redis.is_none());
        assert!(settings.kafka.is_none());
        assert_eq!(settings.port, 3000);
    }

    #[test]
    fn cassandra_reads_and_writes_at_local_quorum_unless_told_otherwise() {
        let hosts = ("CASSANDRA_NODE_HOSTS", "a");
        let default = settings(&[hosts]).unwrap().cassandra.unwrap();
        assert_eq!(default.consistency, Consistency::LocalQuorum);
        let quorum = settings(&[hosts, ("CASSANDRA_CONSISTENCY", "quorum")])
            .unwrap()
            .cassandra
            .unwrap();
        assert_eq!(quorum.consistency, Consistency::Quorum);
        let error = settings(&[hosts, ("CASSANDRA_CONSISTENCY", "TWO")]).unwrap_err();
        assert_eq!(error.name, "CASSANDRA_CONSISTENCY");
    }

    #[test]
    fn topics_take_the_clusters_replication_unless_told_a_factor() {
        let brokers = ("KAFKA_BROKERS", "k:9092");
        let default = settings(&[brokers]).unwrap().kafka.unwrap();
        assert_eq!(default.replication, -1);
        let three = settings(&[brokers, ("KAFKA_TOPIC_REPLICATION", "3")]).unwrap();
        assert_eq!(three.kafka.unwrap().replication, 3);
        for wrong in ["0", "-2", "three"] {
            let error = settings(&[brokers, ("KAFKA_TOPIC_REPLICATION", wrong)]).unwrap_err();
            assert_eq!(error.name, "KAFKA_TOPIC_REPLICATION", "{wrong}");
        }
    }

    #[test]
    fn cassandra_hosts_get_the_default_port() {
        let settings = settings(&[("CASSANDRA_NODE_HOSTS", "a, b:9043")]).unwrap();
        assert_eq!(settings.cassandra.unwrap().hosts, ["a:9042", "b:9043"]);
    }

    #[test]
    fn a_keyspace_that_could_inject_cql_is_refused() {
        let result = settings(&[
            ("CASSANDRA_NODE_HOSTS", "a"),
            ("CASSANDRA_KEYSPACE", "x; DROP KEYSPACE y"),
        ]);
        assert!(result.is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let settings = settings(&[("CACHE_HOST", "r"), ("CACHE_PASSWORD", "hunter22")]).unwrap();
        assert!(!format!("{settings:?}").contains("hunter22"));
        let password = settings.redis.unwrap().password.unwrap();
        assert_eq!(password.expose(), "hunter22");
    }

    #[test]
    fn cache_host_names_a_fixed_master_on_port_6379_unless_set() {
        let redis = settings(&[("CACHE_HOST", "r")]).unwrap().redis.unwrap();
        assert_eq!(
            redis.master,
            RedisMaster::At {
                host: "r".to_owned(),
                port: 6379
            }
        );
    }

    #[test]
    fn cache_sentinels_name_the_sentinels_and_the_master_is_chat_unless_set() {
        let redis = settings(&[("CACHE_SENTINELS", "s1:26380, s2,[::1]:26381,::1")])
            .unwrap()
            .redis
            .unwrap();
        let sentinels = [("s1", 26380), ("s2", 26379), ("::1", 26381), ("::1", 26379)]
            .map(|(host, port)| (host.to_owned(), port))
            .to_vec();
        assert_eq!(
            redis.master,
            RedisMaster::Sentinel {
                sentinels,
                name: "chat".to_owned()
            }
        );
    }

    #[test]
    fn with_cache_sentinels_set_cache_host_is_not_used() {
        let redis = settings(&[
            ("CACHE_SENTINELS", "s1:26379"),
            ("CACHE_SENTINEL_MASTER", "main"),
            ("CACHE_HOST", "r"),
            ("CACHE_PASSWORD", "hunter22"),
        ])
        .unwrap()
        .redis
        .unwrap();
        assert!(matches!(redis.master, RedisMaster::Sentinel { ref name, .. } if name == "main"));
        assert!(redis.password.is_some());
    }

    #[test]
    fn a_sentinel_without_a_valid_port_or_host_is_an_error() {
        for bad in ["s1:http", "s1:0", "s1:70000", ":26379", " , "] {
            assert!(
                settings(&[("CACHE_SENTINELS", bad)]).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn the_socket_frame_limit_is_64_kib_unless_set() {
        let default = settings(&[]).unwrap().realtime.frame_limit;
        let set = settings(&[("SOCKET_FRAME_LIMIT_BYTES", "1000")]).unwrap();
        assert_eq!(default, 64 * 1024);
        assert_eq!(set.realtime.frame_limit, 1000);
    }

    #[test]
    fn a_port_that_is_not_a_number_is_an_error() {
        assert!(settings(&[("PORT", "http")]).is_err());
    }
}
