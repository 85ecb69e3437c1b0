//! The Docker provider: the same backing services from containers, for
//! machines with a Docker engine (testcontainers). The project's own
//! machines have none, so this path is compiled there but not run.
//!
//! Containers are started once per test process on a thread of their own
//! that holds them. Rust never drops statics, so a small watcher process
//! removes the containers when the test process exits (what Ryuk does for
//! other testcontainers ports).
//!
//! Each container publishes its port on a fixed host port chosen at start
//! (a free one), not on a random one: Docker picks random ports again when
//! a container restarts, and the fault tests kill and restart containers
//! under a service configured with the old ports. Kafka also advertises
//! that host port, which its start script keeps across a restart.

use std::{process::Command, sync::mpsc, time::Duration};

use testcontainers_modules::{
    kafka::apache::{Kafka, KAFKA_PORT},
    testcontainers::{
        core::{client::docker_client_instance, IntoContainerPort, WaitFor},
        runners::AsyncRunner,
        GenericImage, ImageExt,
    },
};

use crate::ports::free_port;

/// Versions match the local stack and `docker-compose.yml`.
const CASSANDRA_IMAGE: (&str, &str) = ("cassandra", "5.0.9");
const REDIS_IMAGE: (&str, &str) = ("redis", "7");
const KAFKA_TAG: &str = "4.4.0";

/// Where the containers listen on this host, and their ids.
#[derive(Debug, Clone)]
pub struct Containers {
    /// `host:port` of Cassandra's CQL port.
    pub cassandra: String,
    /// Redis host and port.
    pub redis: (String, u16),
    /// Kafka bootstrap `host:port`.
    pub kafka: String,
    /// Container ids by service name (`cassandra`, `redis`, `kafka`).
    pub ids: Vec<(&'static str, String)>,
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

type Held = (
    testcontainers_modules::testcontainers::ContainerAsync<GenericImage>,
    testcontainers_modules::testcontainers::ContainerAsync<GenericImage>,
    testcontainers_modules::testcontainers::ContainerAsync<Kafka>,
);

async fn start_containers() -> anyhow::Result<(Containers, Held)> {
    let (cassandra_port, redis_port, kafka_port) = (free_port(), free_port(), free_port());
    let cassandra = GenericImage::new(CASSANDRA_IMAGE.0, CASSANDRA_IMAGE.1)
        .with_exposed_port(9042.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Startup complete"))
        .with_env_var("MAX_HEAP_SIZE", "1G")
        .with_env_var("HEAP_NEWSIZE", "256M")
        .with_env_var(
            "JVM_EXTRA_OPTS",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.initial_token=0",
        )
        .with_startup_timeout(Duration::from_secs(300))
        .with_mapped_port(cassandra_port, 9042.tcp())
        .start();
    let redis = GenericImage::new(REDIS_IMAGE.0, REDIS_IMAGE.1)
        .with_exposed_port(6379.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_mapped_port(redis_port, 6379.tcp())
        .start();
    let kafka = Kafka::default()
        .with_jvm_image()
        .with_tag(KAFKA_TAG)
        // The service's consumer session is 2 s; Kafka's own minimum is 6 s.
        .with_env_var("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "1000")
        .with_mapped_port(kafka_port, KAFKA_PORT)
        .start();
    let (cassandra, redis, kafka) = tokio::try_join!(cassandra, redis, kafka)?;

    let host = cassandra.get_host().await?.to_string();
    let containers = Containers {
        cassandra: format!("{host}:{}", cassandra.get_host_port_ipv4(9042).await?),
        redis: (host.clone(), redis.get_host_port_ipv4(6379).await?),
        kafka: format!("{host}:{}", kafka.get_host_port_ipv4(KAFKA_PORT).await?),
        ids: vec![
            ("cassandra", cassandra.id().to_owned()),
            ("redis", redis.id().to_owned()),
            ("kafka", kafka.id().to_owned()),
        ],
    };
    Ok((containers, (cassandra, redis, kafka)))
}

/// A detached watcher that removes the containers once this process is gone.
fn remove_when_this_process_exits(containers: &Containers) {
    let ids: Vec<&str> = containers.ids.iter().map(|(_, id)| id.as_str()).collect();
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
/// and waits until the service in it answers. `service` is the name of
/// [`Containers::ids`].
pub fn start_container(id: &str, service: &str) -> anyhow::Result<()> {
    match container_state(id)?.as_str() {
        "paused" => docker(&["unpause", id])?,
        "running" => {}
        _ => docker(&["start", id])?,
    }
    let deadline = std::time::Instant::now() + RESTART_TIMEOUT;
    while !answers(id, service) {
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

/// Whether the service answers a real request, asked from inside its
/// container (Docker's port proxy accepts connections before the service
/// listens, so an open host port proves nothing).
fn answers(id: &str, service: &str) -> bool {
    let probe: &[&str] = match service {
        "cassandra" => &["cqlsh", "-e", "SELECT release_version FROM system.local"],
        "redis" => &["redis-cli", "ping"],
        // The inter-broker listener: it advertises localhost:9093, which
        // resolves inside the container (the client one advertises the host
        // port).
        "kafka" => &[
            "/opt/kafka/bin/kafka-broker-api-versions.sh",
            "--bootstrap-server",
            "localhost:9093",
        ],
        _ => return false,
    };
    Command::new("docker")
        .args(["exec", id])
        .args(probe)
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
