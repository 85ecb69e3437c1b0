//! Where the backing services are, and the names that isolate one run.
//!
//! Two providers: the local stack of `make stack-up` (processes on this
//! machine) and Docker containers through testcontainers. The choice is
//! explicit: `E2E_STACK=docker` starts containers, and anything else
//! (`E2E_STACK=local`, or unset) uses the local stack, whether or not a
//! Docker engine happens to answer on this machine.
//!
//! Two topologies of the local stack: one process of each backend (the
//! default), or `E2E_TOPOLOGY=replicated` for the cluster of
//! `STACK_TOPOLOGY=replicated stack/stack.sh up` (three Cassandra nodes,
//! three Kafka brokers, a Redis master and replica behind Sentinel), whose
//! nodes the fault tests kill one at a time by name.

use std::{
    process::Command,
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::docker;

/// Which provider runs the backing services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// `stack/stack.sh` processes on this machine.
    Local,
    /// Containers.
    Docker(Vec<docker::Container>),
}

/// How many processes run each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One of each.
    Single,
    /// Three Cassandra nodes (replication factor 3), three Kafka brokers
    /// (replication factor 3, `min.insync.replicas` 2), and Redis with a
    /// replica and three Sentinels.
    Replicated,
}

/// The Sentinels' master name in the replicated topology.
pub const SENTINEL_MASTER: &str = "chat";

/// Addresses of the real backing services. For the local provider the
/// defaults match `make stack-up`; `E2E_CASSANDRA`, `E2E_REDIS_HOST`,
/// `E2E_REDIS_PORT` and `E2E_KAFKA` point the suite elsewhere.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Who runs the services.
    pub provider: Provider,
    /// How many processes of each.
    pub topology: Topology,
    /// `host:port` of the Cassandra contact points, comma separated.
    pub cassandra: String,
    /// Redis host.
    pub redis_host: String,
    /// Redis port.
    pub redis_port: u16,
    /// Kafka bootstrap servers.
    pub kafka: String,
    /// With [`Topology::Replicated`]: the Sentinels, `host:port`, comma
    /// separated (the Redis master is found through them).
    pub sentinels: Option<String>,
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
            // E2E_RUN_ID lets several test processes (nextest runs one per
            // test) share one run's keyspace and names.
            let run = std::env::var("E2E_RUN_ID")
                .ok()
                .filter(|id| {
                    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map_or_else(
                    || format!("e2e_{millis}_{}", std::process::id()),
                    |id| format!("e2e_{id}"),
                );
            let use_docker = match std::env::var("E2E_STACK").as_deref() {
                Ok("docker") => true,
                Ok("local") => false,
                Ok(other) => panic!("E2E_STACK must be docker or local, not {other:?}"),
                Err(_) => false,
            };
            let topology = match std::env::var("E2E_TOPOLOGY").as_deref() {
                Ok("replicated") => Topology::Replicated,
                Ok("single") | Err(_) => Topology::Single,
                Ok(other) => panic!("E2E_TOPOLOGY must be single or replicated, not {other:?}"),
            };
            assert!(
                !(use_docker && topology == Topology::Replicated),
                "the replicated topology runs on the local stack only (leave E2E_STACK unset)"
            );
            let sentinels = (topology == Topology::Replicated).then(|| {
                var(
                    "E2E_REDIS_SENTINELS",
                    "127.0.0.1:26379,127.0.0.2:26379,127.0.0.3:26379",
                )
            });
            let (provider, cassandra, (redis_host, redis_port), kafka) = if use_docker {
                let containers = docker::start().expect("starting the Docker stack");
                (
                    Provider::Docker(containers.started),
                    containers.cassandra,
                    containers.redis,
                    containers.kafka,
                )
            } else if topology == Topology::Replicated {
                (
                    Provider::Local,
                    var(
                        "E2E_CASSANDRA",
                        "127.0.0.1:9042,127.0.0.2:9042,127.0.0.3:9042",
                    ),
                    // The first master; the service asks the Sentinels.
                    (
                        var("E2E_REDIS_HOST", "127.0.0.1"),
                        var("E2E_REDIS_PORT", "6379").parse().unwrap_or(6379),
                    ),
                    var("E2E_KAFKA", "127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092"),
                )
            } else {
                (
                    Provider::Local,
                    var("E2E_CASSANDRA", "127.0.0.1:9042"),
                    (
                        var("E2E_REDIS_HOST", "127.0.0.1"),
                        var("E2E_REDIS_PORT", "6379").parse().unwrap_or(6379),
                    ),
                    var("E2E_KAFKA", "127.0.0.1:9092"),
                )
            };
            Stack {
                provider,
                topology,
                cassandra,
                redis_host,
                redis_port,
                kafka,
                sentinels,
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
        let replicated = self.sentinels.as_ref().map(|sentinels| {
            [
                (
                    "CASSANDRA_REPLICATION",
                    "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}".to_owned(),
                ),
                ("CASSANDRA_DATACENTER", "datacenter1".to_owned()),
                ("CACHE_SENTINELS", sentinels.clone()),
                ("CACHE_SENTINEL_MASTER", SENTINEL_MASTER.to_owned()),
                // Long enough for a partition's leadership to move after
                // its broker died (1 s to fence it, then the metadata),
                // short enough to answer within the contract's 1.5 s.
                ("KAFKA_PUBLISH_TIMEOUT_MS", "1400".to_owned()),
                ("KAFKA_TOPIC_REPLICATION", "3".to_owned()),
                // Longer than a group coordinator's failover: when the
                // broker that dies was the coordinator, its successor
                // loaded the group 1.6 s after the kill in one run, and a
                // 2 s session had the consumers give up their partitions
                // first and rejoin as new members (deliveries waited 4 s).
                ("KAFKA_SESSION_TIMEOUT_MS", "3000".to_owned()),
            ]
        });
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
        .chain(replicated.into_iter().flatten())
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

/// A backing service that fault tests stop, kill, pause and start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Apache Cassandra.
    Cassandra,
    /// Apache Kafka.
    Kafka,
    /// Redis.
    Redis,
}

impl Service {
    /// The name `stack/stack.sh` and the Docker provider know it by.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cassandra => "cassandra",
            Self::Kafka => "kafka",
            Self::Redis => "redis",
        }
    }
}

/// The fault verbs of [`Stack`], as `stack/stack.sh` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Kill,
    Pause,
    Resume,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Kill => "kill",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// Fault verbs. They block (a restart takes seconds): call them from
/// `tokio::task::spawn_blocking` where other tasks must keep running.
///
/// On the Docker provider the containers listen on the host's network on
/// ports fixed at their start (see [`docker`]), so a killed or stopped
/// container comes back where the service was told to look.
impl Stack {
    /// Stops a service cleanly (SIGTERM, then waits for it to exit).
    pub fn stop(&self, service: Service) {
        self.control(service, Verb::Stop);
    }

    /// Crashes a service: SIGKILL, and returns once the process is gone.
    /// Nothing is flushed. Bring it back with [`Stack::start`].
    pub fn kill(&self, service: Service) {
        self.control(service, Verb::Kill);
    }

    /// Freezes a service (SIGSTOP; `docker pause`): its connections stay
    /// open but nothing answers, as in a long GC pause.
    pub fn pause(&self, service: Service) {
        self.control(service, Verb::Pause);
    }

    /// Thaws a paused service (SIGCONT; `docker unpause`).
    pub fn resume(&self, service: Service) {
        self.control(service, Verb::Resume);
    }

    /// Brings a stopped or killed service back and returns once it
    /// answers. A running service is left alone.
    pub fn start(&self, service: Service) {
        self.control(service, Verb::Start);
    }

    /// Crashes one node of the replicated topology, by `stack/stack.sh`'s
    /// name (`cassandra-2`, `kafka-1`, `redis-1`): SIGKILL, and returns
    /// once the process is gone.
    pub fn kill_node(&self, node: &str) {
        self.stack_sh(Verb::Kill, node);
    }

    /// Brings a killed node of the replicated topology back and returns
    /// once it answers (a Cassandra node: once it is in the ring again).
    pub fn start_node(&self, node: &str) {
        self.stack_sh(Verb::Start, node);
    }

    fn stack_sh(&self, verb: Verb, target: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../stack/stack.sh");
        let topology = match self.topology {
            Topology::Single => "single",
            Topology::Replicated => "replicated",
        };
        let status = Command::new("bash")
            .args([script, verb.name(), target])
            .env("STACK_TOPOLOGY", topology)
            .status()
            .expect("cannot run stack/stack.sh");
        assert!(status.success(), "stack.sh {} {target} failed", verb.name());
    }

    fn control(&self, service: Service, verb: Verb) {
        match &self.provider {
            Provider::Local => self.stack_sh(verb, service.name()),
            Provider::Docker(containers) => {
                let container = containers
                    .iter()
                    .find(|container| container.service == service.name())
                    .expect("no such container");
                let id = container.id.as_str();
                let done = match verb {
                    Verb::Start => docker::start_container(container),
                    Verb::Stop => docker::stop_container(id),
                    Verb::Kill => docker::kill_container(id),
                    Verb::Pause => docker::set_paused(id, true),
                    Verb::Resume => docker::set_paused(id, false),
                };
                if let Err(error) = done {
                    panic!("docker {} {}: {error:#}", verb.name(), service.name());
                }
            }
        }
    }
}

/// The replicated topology's node of `service` on `host`: nodes sit on
/// 127.0.0.1, .2 and .3 and are numbered by their address, as ccm does
/// (`127.0.0.2` runs `kafka-2`).
pub fn node_at(service: Service, host: &str) -> String {
    let index = host
        .rsplit('.')
        .next()
        .and_then(|last| last.parse::<u8>().ok())
        .unwrap_or_else(|| panic!("{host} is not a loopback address of the replicated stack"));
    format!("{}-{index}", service.name())
}
