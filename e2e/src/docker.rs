//! The Docker provider: the same backing services from containers
//! (testcontainers), for `E2E_STACK=docker`.
//!
//! The containers run on the host network, as everything does on the
//! project's machines (their engine has no bridge), each service on ports
//! of its own chosen at start, so they sit beside the local stack and a
//! killed container comes back where the service was told to look. The
//! images are the project's own (`make docker-images`), which read the
//! official images' variables plus a few for ports; `E2E_CASSANDRA_IMAGE`,
//! `E2E_KAFKA_IMAGE` and `E2E_REDIS_IMAGE` name others.
//!
//! Containers are started once per test process on a thread of their own
//! that holds them. Rust never drops statics, so a small watcher process
//! removes the containers when the test process exits (what Ryuk does for
//! other testcontainers ports).

use std::{path::Path, process::Command, sync::mpsc, time::Duration};

use testcontainers_modules::testcontainers::{
    core::{client::docker_client_instance, WaitFor},
    runners::AsyncRunner,
    ContainerAsync, GenericImage, ImageExt,
};

use crate::ports::free_port;

/// The project's images, as `make docker-images` tags them; the versions
/// match the local stack.
const CASSANDRA_IMAGE: &str = "chat-service/cassandra:5.0.9";
const KAFKA_IMAGE: &str = "chat-service/kafka:4.4.0";
const REDIS_IMAGE: &str = "chat-service/redis:7";
/// Where the containers listen: the loopback, on ports of their own.
const HOST: &str = "127.0.0.1";
/// How long a container may take to answer after it started.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the containers listen on this host, and their ids.
#[derive(Debug, Clone)]
pub struct Containers {
    /// `host:port` of Cassandra's CQL port.
    pub cassandra: String,
    /// Redis host and port.
    pub redis: (String, u16),
    /// Kafka bootstrap `host:port`.
    pub kafka: String,
    /// The containers.
    pub started: Vec<Container>,
}

/// One container of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The service in it: `cassandra`, `redis` or `kafka`.
    pub service: &'static str,
    /// Its id.
    pub id: String,
    /// The `host:port` it answers on.
    pub address: String,
}

/// Whether a Docker engine answers a ping within two seconds.
pub fn engine_available() -> bool {
    run_on_own_runtime(async {
        match docker_client_instance().await {
            Ok(docker) => tokio::time::timeout(Duration::from_secs(2), docker.ping())
                .await
                .is_ok_and(|pong| pong.is_ok()),
            Err(_) => false,
        }
    })
}

/// Starts Cassandra, Redis and Kafka and returns where they listen. The
/// containers live until this process exits.
pub fn start() -> anyhow::Result<Containers> {
    anyhow::ensure!(
        engine_available(),
        "E2E_STACK=docker, but no Docker engine answers (start one: bash docker/engine.sh start)"
    );
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("e2e-containers".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                match start_containers().await {
                    Ok((containers, held)) => {
                        let _ = sender.send(Ok(containers));
                        // Hold the containers for the life of the process.
                        let _held = held;
                        std::future::pending::<()>().await;
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error));
                    }
                }
            });
        })?;
    let containers = receiver.recv()??;
    remove_when_this_process_exits(&containers);
    Ok(containers)
}

type Held = [ContainerAsync<GenericImage>; 3];

/// `name:tag` from `variable`, or `default`.
fn image(variable: &str, default: &str) -> GenericImage {
    let name = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    let (repository, tag) = name.rsplit_once(':').unwrap_or((name.as_str(), "latest"));
    GenericImage::new(repository, tag)
}

async fn start_containers() -> anyhow::Result<(Containers, Held)> {
    let cassandra_port = free_port();
    let (storage_port, redis_port) = (free_port(), free_port());
    let (kafka_port, controller_port) = (free_port(), free_port());
    let cassandra = image("E2E_CASSANDRA_IMAGE", CASSANDRA_IMAGE)
        .with_wait_for(WaitFor::message_on_stdout("Startup complete"))
        .with_network("host")
        .with_env_var("CASSANDRA_CLUSTER_NAME", "e2e")
        .with_env_var("CASSANDRA_LISTEN_ADDRESS", HOST)
        .with_env_var("CASSANDRA_RPC_ADDRESS", HOST)
        .with_env_var("CASSANDRA_SEEDS", format!("{HOST}:{storage_port}"))
        .with_env_var(
            "CASSANDRA_NATIVE_TRANSPORT_PORT",
            cassandra_port.to_string(),
        )
        .with_env_var("CASSANDRA_STORAGE_PORT", storage_port.to_string())
        .with_env_var("CASSANDRA_JMX_PORT", "0")
        .with_env_var("MAX_HEAP_SIZE", "1G")
        .with_env_var("HEAP_NEWSIZE", "256M")
        // One token, at 0: no wait for the ring to settle. The same on a
        // restart, or Cassandra refuses to change the count it stored.
        .with_env_var("CASSANDRA_NUM_TOKENS", "1")
        .with_env_var(
            "JVM_EXTRA_OPTS",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.initial_token=0",
        )
        .with_startup_timeout(START_TIMEOUT)
        .start();
    let redis = image("E2E_REDIS_IMAGE", REDIS_IMAGE)
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_network("host")
        // An append-only file, as the local stack keeps: sessions survive
        // a restart.
        .with_cmd([
            "redis-server".to_owned(),
            "--bind".to_owned(),
            HOST.to_owned(),
            "--port".to_owned(),
            redis_port.to_string(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "yes".to_owned(),
        ])
        .with_startup_timeout(START_TIMEOUT)
        .start();
    let broker = format!("{HOST}:{kafka_port}");
    let controller = format!("{HOST}:{controller_port}");
    let kafka = image("E2E_KAFKA_IMAGE", KAFKA_IMAGE)
        .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
        .with_network("host")
        .with_env_var("KAFKA_NODE_ID", "1")
        .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", format!("1@{controller}"))
        .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env_var(
            "KAFKA_LISTENERS",
            format!("PLAINTEXT://{broker},CONTROLLER://{controller}"),
        )
        .with_env_var(
            "KAFKA_ADVERTISED_LISTENERS",
            format!("PLAINTEXT://{broker}"),
        )
        .with_env_var(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .with_env_var("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
        .with_env_var("KAFKA_HEAP_OPTS", "-Xms512m -Xmx512m")
        .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env_var(
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
            "1",
        )
        .with_env_var("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1")
        .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        // The service's consumer session is 2 s; Kafka's own minimum is 6 s.
        .with_env_var("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "1000")
        .with_startup_timeout(START_TIMEOUT)
        .start();
    let (cassandra, redis, kafka) = tokio::try_join!(cassandra, redis, kafka)?;

    let cql = format!("{HOST}:{cassandra_port}");
    let containers = Containers {
        cassandra: cql.clone(),
        redis: (HOST.to_owned(), redis_port),
        kafka: broker.clone(),
        started: vec![
            Container {
                service: "cassandra",
                id: cassandra.id().to_owned(),
                address: cql,
            },
            Container {
                service: "redis",
                id: redis.id().to_owned(),
                address: format!("{HOST}:{redis_port}"),
            },
            Container {
                service: "kafka",
                id: kafka.id().to_owned(),
                address: broker,
            },
        ],
    };
    Ok((containers, [cassandra, redis, kafka]))
}

/// A detached watcher that removes the containers once this process is gone.
fn remove_when_this_process_exits(containers: &Containers) {
    let ids: Vec<&str> = containers
        .started
        .iter()
        .map(|container| container.id.as_str())
        .collect();
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 2; done; docker rm -f {ids} >/dev/null 2>&1",
        pid = std::process::id(),
        ids = ids.join(" ")
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// How long a restarted container may take to answer.
const RESTART_TIMEOUT: Duration = Duration::from_secs(240);

/// Pauses or unpauses a container (the cgroup freezer: SIGSTOP for every
/// process in it).
pub fn set_paused(id: &str, paused: bool) -> anyhow::Result<()> {
    docker(&[if paused { "pause" } else { "unpause" }, id])
}

/// Stops a container cleanly: SIGTERM, then SIGKILL after 30 s.
pub fn stop_container(id: &str) -> anyhow::Result<()> {
    docker(&["stop", "--time", "30", id])
}

/// Crashes a container: SIGKILL to its main process, which ends it.
/// `docker kill` returns once the container has exited.
pub fn kill_container(id: &str) -> anyhow::Result<()> {
    docker(&["kill", "--signal", "KILL", id])
}

/// Brings a container back (unpauses a paused one, starts an exited one)
/// and waits until the service in it answers.
pub fn start_container(container: &Container) -> anyhow::Result<()> {
    let Container {
        service,
        id,
        address,
    } = container;
    match container_state(id)?.as_str() {
        "paused" => docker(&["unpause", id])?,
        "running" => {}
        _ => docker(&["start", id])?,
    }
    let deadline = std::time::Instant::now() + RESTART_TIMEOUT;
    while !answers(address, service) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{service} ({id}) did not answer within {RESTART_TIMEOUT:?} of its start"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// `docker inspect`'s state: `running`, `paused`, `exited`, ...
fn container_state(id: &str) -> anyhow::Result<String> {
    let output = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Status}}", id])
        .output()?;
    anyhow::ensure!(output.status.success(), "docker inspect {id} failed");
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Whether the service at `address` answers a real request (the
/// stack's probe, from this host: the containers share its network).
fn answers(address: &str, service: &str) -> bool {
    let kind = match service {
        "cassandra" => "cql",
        "redis" => "redis",
        "kafka" => "kafka",
        _ => return false,
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack/probe.py");
    Command::new("python3")
        .arg(probe)
        .args([kind, host, port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn docker(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("docker")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "docker {} failed", args.join(" "));
    Ok(())
}

fn run_on_own_runtime<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(future)
    })
    .join()
    .expect("docker probe thread")
}
