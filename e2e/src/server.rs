//! Spawns the real `chat-service` binary and keeps its log.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::ports::free_port;
use crate::stack::Stack;

/// Which backends the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: no backend configured at all.
    Memory,
    /// Real Cassandra, Kafka and Redis (see [`Stack`]).
    Stack,
}

/// How long a fresh server may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The deployment named by `E2E_TARGET_URL`, if any: the suite then runs
/// its flows against it instead of spawning servers.
pub fn external_target() -> Option<String> {
    std::env::var("E2E_TARGET_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| url.trim_end_matches('/').to_owned())
}

/// Whether this run may spawn, stop and reconfigure servers and reach the
/// backing stack directly; false
/// against an external deployment. Tests that need it return early, and
/// say so, when it is false.
pub fn controls_processes() -> bool {
    if external_target().is_some() {
        eprintln!("skipped: needs its own chat-service processes or direct access to the stack, but E2E_TARGET_URL is set");
        return false;
    }
    true
}

/// The value of metric `name` (a series without labels) on the
/// `/metrics` of the service at `base`; 0 while it has not reported it.
pub async fn metric_at(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics body");
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0.0, |value| value.trim().parse().expect("a metric value"))
}

/// A running `chat-service` process (or the external deployment of
/// `E2E_TARGET_URL`). Stopped when dropped; its log is printed if the test
/// is failing (or always with `TEST_LOG=1`).
pub struct TestServer {
    external: Option<String>,
    child: Option<Child>,
    port: u16,
    backend: Backend,
    env: Vec<(String, String)>,
    log: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts a server on `backend` and waits until it answers.
    pub async fn spawn(backend: Backend) -> Self {
        if let Some(url) = external_target() {
            return Self {
                external: Some(url),
                child: None,
                port: 0,
                backend,
                env: Vec::new(),
                log: Arc::new(Mutex::new(Vec::new())),
            };
        }
        Self::spawn_with(backend, &[]).await
    }

    /// Starts a server with extra environment variables.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = match backend {
            Backend::Memory => Vec::new(),
            Backend::Stack => {
                ensure_schema();
                Stack::get().service_env(&crate::unique_name("d"))
            }
        };
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut server = Self {
            external: None,
            child: None,
            port: free_port(),
            backend,
            env,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        server.start().await;
        server
    }

    /// Starts another instance of the same deployment (same backends,
    /// topics, consumer group and Redis prefix) on another port.
    pub async fn spawn_peer(&self) -> Self {
        self.spawn_peer_with(&[]).await
    }

    /// [`Self::spawn_peer`], with `extra` variables set or replaced (e.g.
    /// a backend reached through a proxy).
    pub async fn spawn_peer_with(&self, extra: &[(&str, &str)]) -> Self {
        let mut env = self.env.clone();
        for (name, value) in extra {
            env.retain(|(known, _)| known != name);
            env.push((name.to_string(), value.to_string()));
        }
        let mut peer = Self {
            external: None,
            child: None,
            port: free_port(),
            backend: self.backend,
            env,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        peer.start().await;
        peer
    }

    /// Another instance of this deployment, so that clients can sit on two
    /// instances: on the stack only (the in-memory backend is one process
    /// by design), and not against an external deployment, whose
    /// processes are not ours to start.
    pub async fn second_instance(&self) -> Option<Self> {
        match self.backend {
            Backend::Stack if self.external.is_none() => Some(self.spawn_peer().await),
            _ => None,
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:43123`.
    pub fn url(&self) -> String {
        match &self.external {
            Some(url) => url.clone(),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The backend it runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The service's own environment (backends, names, extra variables),
    /// to run the binary's other commands (`migrate`, `dlq replay`)
    /// against the same deployment.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The value of metric `name` (a series without labels) on its
    /// `/metrics`; 0 while the service has not reported it.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_at(&self.url(), name).await
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Starts the process (again) on the same port and waits for `/health`.
    pub async fn start(&mut self) {
        assert!(
            self.external.is_none(),
            "an external deployment is not ours to start"
        );
        assert!(self.child.is_none(), "server already running");
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", self.port.to_string())
            .env("WEB_ROOT", web_root())
            .env(
                "RUST_LOG",
                std::env::var("E2E_SERVICE_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // librdkafka's debug contexts and the leaders' refresh, when a
            // run sets them (e.g. to compare librdkafka's own refresh).
            .envs(std::env::var("KAFKA_DEBUG").map(|contexts| ("KAFKA_DEBUG", contexts)))
            .envs(
                std::env::var("KAFKA_METADATA_REFRESH_MS")
                    .map(|ms| ("KAFKA_METADATA_REFRESH_MS", ms)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start chat-service");
        capture(child.stdout.take(), self.log.clone());
        capture(child.stderr.take(), self.log.clone());
        self.child = Some(child);
        self.wait_until_healthy().await;
    }

    /// Stops the process with SIGTERM (graceful) and waits for it to exit.
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(20));
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit by
    /// itself; past that it is killed. True when it exited by itself.
    pub fn stop_within(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Freezes the process (SIGSTOP) or lets it go on (SIGCONT): a frozen
    /// instance misses its heartbeats, as one stalled by its host would.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_until_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        let health = format!("{}/health", self.url());
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.dump_log();
                    panic!("chat-service exited before answering: {status}");
                }
            }
            let answer = client
                .get(&health)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if answer.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            if Instant::now() > deadline {
                self.dump_log();
                panic!("chat-service did not answer /health within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn dump_log(&self) {
        eprintln!("----- chat-service log ({}) -----", self.url());
        for line in self.log.lock().unwrap().iter() {
            eprintln!("{line}");
        }
        eprintln!("----- end of chat-service log -----");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() || std::env::var_os("TEST_LOG").is_some() {
            self.dump_log();
        }
    }
}

fn capture(stream: Option<impl Read + Send + 'static>, log: Arc<Mutex<Vec<String>>>) {
    let Some(stream) = stream else { return };
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line);
        }
    });
}

/// The `chat-service` binary: `CHAT_SERVICE_BIN`, or the workspace's
/// `target/<profile>/chat-service` (built by `cargo test --workspace` or
/// `make e2e`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHAT_SERVICE_BIN") {
        return PathBuf::from(path);
    }
    let target = target_dir();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let path = target.join(profile).join("chat-service");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p service --bin chat-service` first (make e2e does)",
        path.display()
    );
    path
}

/// The chat page's built files (`E2E_WEB_ROOT`, else the workspace's
/// `web/dist`, which `make web` builds).
pub fn web_root() -> PathBuf {
    std::env::var_os("E2E_WEB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/dist"))
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Applies the run's keyspace schema once per test process, with
/// `chat-service migrate`, so servers spawned in parallel never race on DDL.
fn ensure_schema() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let stack = Stack::get();
        let output = Command::new(binary())
            .arg("migrate")
            .envs(stack.service_env("migrate"))
            .output()
            .expect("cannot run chat-service migrate");
        assert!(
            output.status.success(),
            "chat-service migrate failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}
