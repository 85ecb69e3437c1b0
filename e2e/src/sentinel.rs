//! A Redis master, its replica and three Sentinels: processes of the
//! test's own, on free ports of 127.0.0.1, for failover tests.
//!
//! The Sentinels agree that the master is down after 1 s without an
//! answer (quorum 2 of 3) and promote the replica. Every process is killed
//! and its directory removed when the [`SentinelRedis`] is dropped; the
//! logs are printed first when the test is failing.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, Client};
use tokio::time::Instant;

use crate::ports::free_port;

/// The name the Sentinels monitor the master by.
pub const MASTER_NAME: &str = "chat";
/// How long the set-up may take: the replica's first sync, the Sentinels
/// finding each other (they say hello every 2 s), and any Sentinel that
/// entered TILT mode leaving it (30 s after its clock last jumped).
const START_TIMEOUT: Duration = Duration::from_secs(75);
/// How often a condition is looked at again while waiting for it.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// One `redis-server` process (a data node or a Sentinel).
struct Process {
    role: &'static str,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A master, a replica and three Sentinels.
pub struct SentinelRedis {
    dir: PathBuf,
    master: Process,
    replica: Process,
    sentinels: Vec<Process>,
}

impl SentinelRedis {
    /// Starts the five processes and waits until the replica is in sync
    /// and every Sentinel knows the replica and the two other Sentinels
    /// and is out of TILT mode. A Sentinel enters TILT when its timer ran
    /// late by 2 s, as on a loaded machine, and takes no action for 30 s:
    /// a failover started then would not begin in time.
    /// `None`, with a note, when `redis-server` is not installed (`make
    /// stack-up` installs it).
    pub async fn start() -> Option<Self> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            eprintln!("skipped: redis-server is not installed (make stack-up installs it)");
            return None;
        }
        // Sentinel fsyncs its configuration file on every change; on a busy
        // disk that stalls it past 2 s and sends it into TILT. Memory does
        // not stall.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "chat-sentinel-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("creating the Sentinel test's directory");
        let master = data_node(&dir, "master", None);
        let replica = data_node(&dir, "replica", Some(master.port));
        let sentinels = (1..=3).map(|n| sentinel(&dir, n, master.port)).collect();
        let mut redis = Self {
            dir,
            master,
            replica,
            sentinels,
        };
        redis.wait_until_watched().await;
        Some(redis)
    }

    /// `CACHE_SENTINELS` for these Sentinels.
    pub fn sentinels(&self) -> String {
        self.sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the node that was master at the start.
    pub fn master_port(&self) -> u16 {
        self.master.port
    }

    /// The port of the node that was replica at the start.
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// The Sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels
            .iter()
            .map(|sentinel| sentinel.port)
            .collect()
    }

    /// Crashes the master: SIGKILL, and returns once the process is gone.
    pub fn kill_master(&mut self) {
        self.master.kill();
    }

    /// A plain connection to the node on `port`, for the test's own
    /// commands (1 s to connect and to answer).
    pub async fn node(&self, port: u16) -> redis::RedisResult<MultiplexedConnection> {
        connect(port).await
    }

    /// What the first Sentinel that answers says the master is.
    pub async fn master_per_sentinels(&self) -> Option<u16> {
        for sentinel in &self.sentinels {
            let Ok(mut connection) = connect(sentinel.port).await else {
                continue;
            };
            let answer: redis::RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME)
                .query_async(&mut connection)
                .await;
            if let Ok(Some((_, port))) = answer {
                return Some(port);
            }
        }
        None
    }

    async fn wait_until_watched(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut ticks = tokio::time::interval(POLL_EVERY);
        loop {
            ticks.tick().await;
            if let Some((role, port)) = self.exited() {
                self.dump_logs();
                panic!("the {role} on {port} exited while the set was starting");
            }
            if self.replica_in_sync().await && self.sentinels_agree().await {
                return;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("the replica and the Sentinels were not ready within {START_TIMEOUT:?}");
            }
        }
    }

    /// The first process that is no longer running, if any.
    fn exited(&mut self) -> Option<(&'static str, u16)> {
        [&mut self.master, &mut self.replica]
            .into_iter()
            .chain(&mut self.sentinels)
            .find_map(|process| {
                let child = process.child.as_mut()?;
                let gone = !matches!(child.try_wait(), Ok(None));
                gone.then_some((process.role, process.port))
            })
    }

    async fn replica_in_sync(&self) -> bool {
        let Ok(mut replica) = connect(self.replica.port).await else {
            return false;
        };
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut replica)
            .await
            .unwrap_or_default();
        info.contains("master_link_status:up")
    }

    async fn sentinels_agree(&self) -> bool {
        for sentinel in &self.sentinels {
            let Ok(mut connection) = connect(sentinel.port).await else {
                return false;
            };
            let fields: Vec<String> = redis::cmd("SENTINEL")
                .arg("master")
                .arg(MASTER_NAME)
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|pair| pair[0] == name)
                    .and_then(|pair| pair.get(1).cloned())
            };
            if field("num-other-sentinels").as_deref() != Some("2")
                || field("num-slaves").as_deref() != Some("1")
            {
                return false;
            }
            let info: String = redis::cmd("INFO")
                .arg("sentinel")
                .query_async(&mut connection)
                .await
                .unwrap_or_default();
            if !info.contains("sentinel_tilt:0") {
                return false;
            }
        }
        true
    }

    fn dump_logs(&self) {
        for process in [&self.master, &self.replica]
            .into_iter()
            .chain(&self.sentinels)
        {
            let log = std::fs::read_to_string(&process.log).unwrap_or_default();
            eprintln!("----- {} :{} -----\n{log}", process.role, process.port);
        }
    }
}

impl Drop for SentinelRedis {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("TEST_LOG").is_some() {
            self.dump_logs();
        }
        for sentinel in &mut self.sentinels {
            sentinel.kill();
        }
        self.master.kill();
        self.replica.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(port: u16) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    Client::open(("127.0.0.1", port))?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// A data node, the replica of `master` when one is given. Nothing is
/// saved to disk: a restarted node starts empty, as a new one would.
fn data_node(dir: &Path, role: &'static str, master: Option<u16>) -> Process {
    let port = free_port();
    let node_dir = dir.join(role);
    std::fs::create_dir_all(&node_dir).expect("creating a node's directory");
    let log = dir.join(format!("{role}.log"));
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&node_dir)
        .arg("--logfile")
        .arg(&log);
    if let Some(master) = master {
        command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
    }
    spawn(command, role, port, log)
}

/// Sentinel `n`, watching the master on `master`. Sentinel rewrites its
/// configuration file, so each has one of its own.
fn sentinel(dir: &Path, n: usize, master: u16) -> Process {
    let port = free_port();
    let config = dir.join(format!("sentinel-{n}.conf"));
    let log = dir.join(format!("sentinel-{n}.log"));
    let text = format!(
        "bind 127.0.0.1\n\
         port {port}\n\
         dir {dir}\n\
         logfile {log}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
         sentinel failover-timeout {MASTER_NAME} 3000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
        log = log.display(),
    );
    std::fs::write(&config, text).expect("writing a Sentinel's configuration");
    let mut command = Command::new("redis-server");
    command.arg(&config).arg("--sentinel");
    spawn(command, "sentinel", port, log)
}

fn spawn(mut command: Command, role: &'static str, port: u16, log: PathBuf) -> Process {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start the {role} on {port}: {error}"));
    Process {
        role,
        port,
        child: Some(child),
        log,
    }
}
