//! Where the backing services are, and the names that isolate one run.

use std::{
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

/// Addresses of the real backing services. Defaults match `make stack-up`;
/// `E2E_CASSANDRA`, `E2E_REDIS_HOST`, `E2E_REDIS_PORT` and `E2E_KAFKA`
/// point the suite elsewhere.
#[derive(Debug, Clone)]
pub struct Stack {
    /// `host:port` of a Cassandra node.
    pub cassandra: String,
    /// Redis host.
    pub redis_host: String,
    /// Redis port.
    pub redis_port: u16,
    /// Kafka bootstrap servers.
    pub kafka: String,
    /// Names private to this test process.
    pub run: RunNames,
}

/// Per-run names, so runs neither see each other's data nor need a clean stack.
#[derive(Debug, Clone)]
pub struct RunNames {
    /// Cassandra keyspace.
    pub keyspace: String,
    /// Prefix of every Kafka topic.
    pub topic_prefix: String,
    /// Kafka consumer group of the service's pipeline.
    pub consumer_group: String,
    /// Prefix of every Redis key and channel.
    pub cache_prefix: String,
}

impl Stack {
    /// The stack of this test process (read once).
    pub fn get() -> &'static Stack {
        static STACK: OnceLock<Stack> = OnceLock::new();
        STACK.get_or_init(|| {
            let var = |name: &str, default: &str| {
                std::env::var(name).unwrap_or_else(|_| default.to_owned())
            };
            let millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis());
            let run = format!("e2e_{millis}_{}", std::process::id());
            Stack {
                cassandra: var("E2E_CASSANDRA", "127.0.0.1:9042"),
                redis_host: var("E2E_REDIS_HOST", "127.0.0.1"),
                redis_port: var("E2E_REDIS_PORT", "6379").parse().unwrap_or(6379),
                kafka: var("E2E_KAFKA", "127.0.0.1:9092"),
                run: RunNames {
                    keyspace: run.clone(),
                    topic_prefix: format!("{run}."),
                    consumer_group: format!("{run}-chats"),
                    cache_prefix: format!("{run}:"),
                },
            }
        })
    }

    /// The service's environment for one deployment on this stack.
    ///
    /// Every deployment shares the run's keyspace (whose schema is applied
    /// once) but has its own topics, consumer group and Redis prefix: tests
    /// run in parallel as separate deployments, so one stopping never makes
    /// another's consumer group rebalance. Instances of one deployment
    /// share everything, as a scaled-out service does.
    pub fn service_env(&self, deployment: &str) -> Vec<(String, String)> {
        [
            ("CASSANDRA_NODE_HOSTS", self.cassandra.clone()),
            ("CASSANDRA_KEYSPACE", self.run.keyspace.clone()),
            ("CACHE_HOST", self.redis_host.clone()),
            ("CACHE_PORT", self.redis_port.to_string()),
            (
                "CACHE_PREFIX",
                format!("{}{deployment}:", self.run.cache_prefix),
            ),
            ("KAFKA_BROKERS", self.kafka.clone()),
            (
                "KAFKA_TOPIC_PREFIX",
                format!("{}{deployment}.", self.run.topic_prefix),
            ),
            (
                "KAFKA_CONSUMER_GROUP",
                format!("{}-{deployment}", self.run.consumer_group),
            ),
            ("KAFKA_TOPIC_PARTITIONS", "2".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The Redis URL (RESP3, as the service uses it).
    pub fn redis_url(&self) -> String {
        format!(
            "redis://{}:{}/?protocol=resp3",
            self.redis_host, self.redis_port
        )
    }
}
