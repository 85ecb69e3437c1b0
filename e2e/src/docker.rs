//! The Docker provider: the same backing services from containers, for
//! machines with a Docker engine (testcontainers). The project's own
//! machines have none, so this path is compiled there but not run.
//!
//! Containers are started once per test process on a thread of their own
//! that holds them. Rust never drops statics, so a small watcher process
//! removes the containers when the test process exits (what Ryuk does for
//! other testcontainers ports).

use std::{process::Command, sync::mpsc, time::Duration};

use testcontainers_modules::{
    kafka::apache::{Kafka, KAFKA_PORT},
    testcontainers::{
        core::{client::docker_client_instance, IntoContainerPort, WaitFor},
        runners::AsyncRunner,
        GenericImage, ImageExt,
    },
};

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
        .start();
    let redis = GenericImage::new(REDIS_IMAGE.0, REDIS_IMAGE.1)
        .with_exposed_port(6379.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .start();
    let kafka = Kafka::default()
        .with_jvm_image()
        .with_tag(KAFKA_TAG)
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

/// Pauses (`stop`) or unpauses (`start`) a container. Pausing keeps the
/// mapped ports, which a stop and start would change.
pub fn set_paused(id: &str, paused: bool) -> anyhow::Result<()> {
    let verb = if paused { "pause" } else { "unpause" };
    let status = Command::new("docker").args([verb, id]).status()?;
    anyhow::ensure!(status.success(), "docker {verb} {id} failed");
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
