//! The service's connection to the Redis master, which follows the master
//! when Sentinel moves it.
//!
//! Every user of Redis (sessions, limits, claims, node leases, presence,
//! the Socket.IO adapter and the relay) holds a [`RedisLink`]: a cheap
//! clone that implements [`ConnectionLike`] and hands each command to the
//! current [`ConnectionManager`] for the master.
//!
//! - With `CACHE_HOST` the master's address is fixed, and the link is just
//!   that manager, which reconnects by itself when Redis restarts.
//! - With `CACHE_SENTINELS` the master moves: when it fails, Sentinel
//!   promotes a replica, and a manager would go on reconnecting to the old
//!   address for ever. A follower task asks the Sentinels where the master
//!   is every [`CHECK_EVERY`], and at once after a command failed the way a
//!   failover makes commands fail (refused, reset, timed out; `READONLY`
//!   from a master demoted to replica). When the answer changes it opens a
//!   manager on the new address, checks with `ROLE` that the node is a
//!   master, and swaps it in: every clone uses it from its next command.
//!
//! A swap is no handover. A command in flight on the old master fails and
//! is not tried again here: each caller already has an answer to a Redis
//! error. Replication is asynchronous, so what the old master acknowledged
//! but had not yet sent to its replica is lost with it.
//!
//! [`sentinels`] asks the Sentinels; [`nodes`] opens managers on the data
//! nodes and checks the master's role.
//!
//! Pub/sub follows too, for the one user that needs it (the adapter's
//! driver): [`LinkOptions::pushes`] receives the messages of the current
//! manager only, so a demoted master that still delivers to an old
//! subscription cannot double them, and [`RedisLink::swaps`] tells the
//! subscriber when to subscribe again on the new master.

mod nodes;
mod sentinels;

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock, Weak,
    },
    time::Duration,
};

use async_trait::async_trait;
use redis::{
    aio::{ConnectionLike, ConnectionManager},
    Cmd, ErrorKind, Pipeline, PushInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    Value,
};
use tokio::sync::{watch, Notify};

use self::{nodes::Nodes, sentinels::Sentinels};
use crate::{
    config::{RedisMaster, RedisSettings},
    locks::RwLockExt,
};

/// How often the follower asks the Sentinels where the master is.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The shortest time between two questions, however many commands fail:
/// during an outage every command fails and asks for a check.
const CHECK_GAP: Duration = Duration::from_millis(100);
/// How long one Sentinel may take to connect or to answer before the next
/// one is asked.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a data node may take to connect or to answer a command.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// The port Sentinel listens on unless told otherwise.
pub const SENTINEL_PORT: u16 = 26379;

/// A node's `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Host name or IP address, as configured or as Sentinel reports it.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Address {
    /// `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Receives the pub/sub messages of the link's current connection.
pub type Pushes = Arc<dyn Fn(PushInfo) + Send + Sync>;

/// How each manager of a link is built.
#[derive(Clone)]
pub struct LinkOptions {
    /// Longest wait between two attempts of a manager to reconnect.
    pub max_delay: Duration,
    /// Where pub/sub messages go. With it, a manager subscribes again to
    /// its channels after it reconnected to the same node.
    pub pushes: Option<Pushes>,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            max_delay: Duration::from_secs(2),
            pushes: None,
        }
    }
}

/// A connection to the Redis master: a clone shares the master's
/// manager, and every clone sees a swap to a new master.
#[derive(Clone)]
pub struct RedisLink {
    shared: Arc<Shared>,
}

struct Shared {
    current: RwLock<Current>,
    /// The generation of the current manager, read by the push senders.
    live: Arc<AtomicU64>,
    /// Tells the swaps' generations to whoever must act on them.
    swaps: watch::Sender<u64>,
    /// Wakes the follower before its next tick; none for a fixed address.
    recheck: Option<Arc<Notify>>,
}

#[derive(Clone)]
struct Current {
    manager: ConnectionManager,
    address: Address,
    generation: u64,
}

impl RedisLink {
    /// Connects to the master the settings name, waiting (and saying so in
    /// the log) until it answers. With Sentinel, also starts the follower,
    /// which lives as long as a clone of the link does.
    pub async fn connect(settings: &RedisSettings, options: LinkOptions) -> anyhow::Result<Self> {
        let live = Arc::new(AtomicU64::new(0));
        let nodes = Nodes {
            password: settings.password.clone(),
            options,
            live: live.clone(),
        };
        let mut backoff = Backoff::default();
        match &settings.master {
            RedisMaster::At { host, port } => {
                let address = Address::new(host.clone(), *port);
                loop {
                    match nodes.manager_of(&address, 0).await {
                        Ok(manager) => return Ok(Self::new(manager, address, live, None)),
                        Err(cause) => backoff.wait(&address, &cause).await,
                    }
                }
            }
            RedisMaster::Sentinel { sentinels, name } => {
                let sentinels = sentinels
                    .iter()
                    .map(|(host, port)| Address::new(host.clone(), *port))
                    .collect();
                let mut locate = Sentinels::new(sentinels, name.clone());
                let target = format!("the master {name:?} of the Sentinels");
                loop {
                    match first_master(&mut locate, &nodes).await {
                        Ok((address, manager)) => {
                            tracing::info!(master = %address, name = %name, "found the Redis master through Sentinel");
                            return Ok(Self::following(manager, address, live, locate, nodes));
                        }
                        Err(cause) => backoff.wait(&target, &cause).await,
                    }
                }
            }
        }
    }

    fn new(
        manager: ConnectionManager,
        address: Address,
        live: Arc<AtomicU64>,
        recheck: Option<Arc<Notify>>,
    ) -> Self {
        let generation = live.load(Ordering::SeqCst);
        Self {
            shared: Arc::new(Shared {
                current: RwLock::new(Current {
                    manager,
                    address,
                    generation,
                }),
                live,
                swaps: watch::Sender::new(generation),
                recheck,
            }),
        }
    }

    /// A link on `manager` whose follower asks `locate` and opens new
    /// masters with `open`.
    fn following(
        manager: ConnectionManager,
        address: Address,
        live: Arc<AtomicU64>,
        locate: impl Locate,
        open: impl Open,
    ) -> Self {
        let recheck = Arc::new(Notify::new());
        let link = Self::new(manager, address, live, Some(recheck.clone()));
        tokio::spawn(follow(Arc::downgrade(&link.shared), recheck, locate, open));
        link
    }

    /// The address of the master in use.
    pub fn master(&self) -> Address {
        self.current().address
    }

    /// Counts the swaps: 0 for the first master, one more for each new one.
    pub fn generation(&self) -> u64 {
        self.current().generation
    }

    /// Changes with each swap to a new master, to the new generation.
    pub fn swaps(&self) -> watch::Receiver<u64> {
        self.shared.swaps.subscribe()
    }

    /// Subscribes the current master's connection to `channels` (see
    /// [`ConnectionManager::subscribe`]); the messages go to
    /// [`LinkOptions::pushes`].
    pub async fn subscribe(&self, channels: &[String]) -> RedisResult<()> {
        let answer = self.manager().subscribe(channels).await;
        self.after(&answer);
        answer
    }

    /// Unsubscribes the current master's connection from `channels`.
    pub async fn unsubscribe(&self, channels: &[String]) -> RedisResult<()> {
        let answer = self.manager().unsubscribe(channels).await;
        self.after(&answer);
        answer
    }

    fn current(&self) -> Current {
        self.shared.current.read_or_recover().clone()
    }

    fn manager(&self) -> ConnectionManager {
        self.shared.current.read_or_recover().manager.clone()
    }

    /// Asks the follower to check the master now if `answer` is an error
    /// that a failover would explain.
    fn after<T>(&self, answer: &RedisResult<T>) {
        if let (Err(error), Some(recheck)) = (answer, &self.shared.recheck) {
            if points_to_failover(error) {
                recheck.notify_one();
            }
        }
    }
}

impl Shared {
    /// Puts `manager` for `address` in place of the current one.
    fn swap(&self, manager: ConnectionManager, address: Address) -> (Address, u64) {
        let mut current = self.current.write_or_recover();
        let generation = current.generation + 1;
        let previous = std::mem::replace(
            &mut *current,
            Current {
                manager,
                address,
                generation,
            },
        );
        self.live.store(generation, Ordering::SeqCst);
        drop(current);
        self.swaps.send_replace(generation);
        (previous.address, generation)
    }
}

/// One command or pipeline sent: one round trip, counted in
/// `backend_requests_total{backend="redis"}` for the load report.
fn count_round_trip() {
    metrics::counter!("backend_requests_total", "backend" => "redis").increment(1);
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            count_round_trip();
            let answer = self.manager().send_packed_command(cmd).await;
            self.after(&answer);
            answer
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            count_round_trip();
            let answer = self
                .manager()
                .send_packed_commands(pipeline, offset, count)
                .await;
            self.after(&answer);
            answer
        })
    }

    fn get_db(&self) -> i64 {
        self.manager().get_db()
    }
}

/// Whether `error` is one a master that went away, or was demoted, would
/// cause: worth asking the Sentinels again.
pub fn points_to_failover(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
        || error.code() == Some("READONLY")
}

/// Waits between two attempts to reach Redis at start-up: longer each
/// time, up to 5 s.
struct Backoff {
    delay: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(250),
            attempt: 1,
        }
    }
}

impl Backoff {
    async fn wait(&mut self, target: &dyn fmt::Display, cause: &str) {
        let attempt = self.attempt;
        tracing::warn!(redis = %target, attempt, %cause, "waiting for Redis to answer");
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        self.attempt = attempt.saturating_add(1);
    }
}

/// Asks where the master is.
#[async_trait]
trait Locate: Send + 'static {
    /// The master's address, or why none could be had.
    async fn master(&mut self) -> Result<Address, String>;
}

/// Opens a manager on a node that must be the master.
#[async_trait]
trait Open: Send + Sync + 'static {
    /// A connected manager of `generation` on `address`, which said with
    /// `ROLE` that it is a master.
    async fn open(&self, address: &Address, generation: u64) -> Result<ConnectionManager, String>;
}

/// The master as Sentinel knows it, connected and checked.
async fn first_master(
    locate: &mut impl Locate,
    open: &impl Open,
) -> Result<(Address, ConnectionManager), String> {
    let address = locate.master().await?;
    let manager = open.open(&address, 0).await?;
    Ok((address, manager))
}

/// The follower: asks every [`CHECK_EVERY`], or sooner when a command
/// failed, and swaps when the master moved. Ends with the last link.
async fn follow(
    link: Weak<Shared>,
    recheck: Arc<Notify>,
    mut locate: impl Locate,
    open: impl Open,
) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unanswered = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = recheck.notified() => {}
        }
        let Some(shared) = link.upgrade() else {
            return;
        };
        match check(&shared, &mut locate, &open).await {
            Ok(_) => unanswered = false,
            Err(cause) => {
                // Said once per outage of the Sentinels, not twice a second.
                if !unanswered {
                    tracing::warn!(%cause, "cannot tell where the Redis master is; keeping the last one");
                }
                unanswered = true;
            }
        }
        drop(shared);
        tokio::time::sleep(CHECK_GAP).await;
    }
}

/// What one check came to.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// The master is where it was.
    Same,
    /// The master moved, and the link now uses the new one.
    Moved {
        from: Address,
        to: Address,
        generation: u64,
    },
}

/// Asks where the master is; swaps when it moved and the new one answers
/// as a master.
async fn check(
    shared: &Shared,
    locate: &mut impl Locate,
    open: &impl Open,
) -> Result<Checked, String> {
    let address = locate.master().await?;
    let (current, generation) = {
        let current = shared.current.read_or_recover();
        (current.address.clone(), current.generation)
    };
    if address == current {
        return Ok(Checked::Same);
    }
    let manager = open
        .open(&address, generation + 1)
        .await
        .map_err(|cause| format!("the new master {address} is not usable yet: {cause}"))?;
    let (from, generation) = shared.swap(manager, address.clone());
    tracing::warn!(%from, to = %address, generation, "the Redis master moved; following it");
    metrics::counter!("redis_master_changes_total").increment(1);
    Ok(Checked::Moved {
        from,
        to: address,
        generation,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::locks::LockExt;

    /// Sentinels that say what the test tells them.
    #[derive(Clone)]
    struct FakeSentinels(Arc<Mutex<Result<Address, String>>>);

    impl Default for FakeSentinels {
        fn default() -> Self {
            Self(Arc::new(Mutex::new(Err("not told yet".to_owned()))))
        }
    }

    impl FakeSentinels {
        fn say(&self, answer: Result<Address, String>) {
            *self.0.lock_or_recover() = answer;
        }
    }

    #[async_trait]
    impl Locate for FakeSentinels {
        async fn master(&mut self) -> Result<Address, String> {
            self.0.lock_or_recover().clone()
        }
    }

    /// Opens managers without connecting; refuses the addresses listed
    /// (a node that is not a master yet).
    #[derive(Clone, Default)]
    struct FakeNodes {
        refused: Arc<Mutex<Vec<Address>>>,
        opened: Arc<Mutex<Vec<(Address, u64)>>>,
    }

    #[async_trait]
    impl Open for FakeNodes {
        async fn open(
            &self,
            address: &Address,
            generation: u64,
        ) -> Result<ConnectionManager, String> {
            if self.refused.lock_or_recover().contains(address) {
                return Err("ROLE says replica".to_owned());
            }
            self.opened
                .lock_or_recover()
                .push((address.clone(), generation));
            Ok(lazy_manager(address))
        }
    }

    fn lazy_manager(address: &Address) -> ConnectionManager {
        let client = redis::Client::open((address.host.clone(), address.port)).unwrap();
        let config = redis::aio::ConnectionManagerConfig::new();
        ConnectionManager::new_lazy_with_config(client, config).unwrap()
    }

    fn link_on(address: &Address) -> RedisLink {
        RedisLink::new(
            lazy_manager(address),
            address.clone(),
            Arc::new(AtomicU64::new(0)),
            None,
        )
    }

    fn error(kind: std::io::ErrorKind) -> RedisError {
        RedisError::from(std::io::Error::from(kind))
    }

    #[tokio::test]
    async fn a_check_that_finds_the_master_where_it_was_changes_nothing() {
        let old = Address::new("127.0.0.1", 7001);
        let link = link_on(&old);
        let (mut sentinels, nodes) = (FakeSentinels::default(), FakeNodes::default());
        sentinels.say(Ok(old.clone()));

        let checked = check(&link.shared, &mut sentinels, &nodes).await;

        assert_eq!(checked, Ok(Checked::Same));
        assert_eq!((link.master(), link.generation()), (old, 0));
        assert!(nodes.opened.lock_or_recover().is_empty());
    }

    #[tokio::test]
    async fn when_the_master_moves_every_clone_and_the_swap_watchers_see_the_new_one() {
        let (old, new) = (
            Address::new("127.0.0.1", 7001),
            Address::new("127.0.0.1", 7002),
        );
        let link = link_on(&old);
        let clone = link.clone();
        let mut swaps = link.swaps();
        let (mut sentinels, nodes) = (FakeSentinels::default(), FakeNodes::default());
        sentinels.say(Ok(new.clone()));

        let checked = check(&link.shared, &mut sentinels, &nodes).await;

        let moved = Checked::Moved {
            from: old,
            to: new.clone(),
            generation: 1,
        };
        assert_eq!(checked, Ok(moved));
        assert_eq!((clone.master(), clone.generation()), (new.clone(), 1));
        assert!(swaps.has_changed().unwrap());
        assert_eq!(*swaps.borrow_and_update(), 1);
        assert_eq!(link.shared.live.load(Ordering::SeqCst), 1);
        assert_eq!(*nodes.opened.lock_or_recover(), [(new, 1)]);
    }

    #[tokio::test]
    async fn a_new_address_that_is_not_a_master_yet_is_not_swapped_in() {
        let (old, new) = (
            Address::new("127.0.0.1", 7001),
            Address::new("127.0.0.1", 7002),
        );
        let link = link_on(&old);
        let (mut sentinels, nodes) = (FakeSentinels::default(), FakeNodes::default());
        nodes.refused.lock_or_recover().push(new.clone());
        sentinels.say(Ok(new));

        let checked = check(&link.shared, &mut sentinels, &nodes).await;

        assert!(checked.is_err());
        assert_eq!((link.master(), link.generation()), (old, 0));
    }

    #[tokio::test]
    async fn when_no_sentinel_answers_the_last_master_is_kept() {
        let old = Address::new("127.0.0.1", 7001);
        let link = link_on(&old);
        let (mut sentinels, nodes) = (FakeSentinels::default(), FakeNodes::default());
        sentinels.say(Err("connection refused".to_owned()));

        let checked = check(&link.shared, &mut sentinels, &nodes).await;

        assert!(checked.is_err());
        assert_eq!(link.master(), old);
    }

    #[tokio::test(start_paused = true)]
    async fn the_follower_swaps_within_a_check_period_and_stops_with_the_last_link() {
        let (old, new) = (
            Address::new("127.0.0.1", 7001),
            Address::new("127.0.0.1", 7002),
        );
        let (sentinels, nodes) = (FakeSentinels::default(), FakeNodes::default());
        sentinels.say(Ok(old.clone()));
        let live = Arc::new(AtomicU64::new(0));
        let link = RedisLink::following(
            lazy_manager(&old),
            old,
            live,
            sentinels.clone(),
            nodes.clone(),
        );
        let mut swaps = link.swaps();

        sentinels.say(Ok(new.clone()));
        tokio::time::timeout(CHECK_EVERY * 2, swaps.changed())
            .await
            .expect("no swap within two check periods")
            .unwrap();

        assert_eq!(link.master(), new);
        let shared = Arc::downgrade(&link.shared);
        drop((link, swaps));
        assert!(
            shared.upgrade().is_none(),
            "the follower kept the link alive"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_command_makes_the_follower_check_before_its_next_tick() {
        let (old, new) = (
            Address::new("127.0.0.1", 7001),
            Address::new("127.0.0.1", 7002),
        );
        let (sentinels, nodes) = (FakeSentinels::default(), FakeNodes::default());
        sentinels.say(Ok(old.clone()));
        let link = RedisLink::following(
            lazy_manager(&old),
            old,
            Arc::new(AtomicU64::new(0)),
            sentinels.clone(),
            nodes,
        );
        let mut swaps = link.swaps();
        // Past the first tick, which fires at once.
        tokio::time::sleep(CHECK_GAP * 2).await;

        sentinels.say(Ok(new.clone()));
        link.after::<()>(&Err(error(std::io::ErrorKind::ConnectionRefused)));
        tokio::time::timeout(CHECK_EVERY / 2, swaps.changed())
            .await
            .expect("the failed command did not bring the check forward")
            .unwrap();

        assert_eq!(link.master(), new);
    }

    #[test]
    fn refused_reset_and_readonly_point_to_a_failover_but_a_wrong_type_does_not() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        let wrong_type = RedisError::from((ErrorKind::UnexpectedReturnType, "not a number"));

        assert!(points_to_failover(&error(
            std::io::ErrorKind::ConnectionRefused
        )));
        assert!(points_to_failover(&error(
            std::io::ErrorKind::ConnectionReset
        )));
        assert!(points_to_failover(&error(std::io::ErrorKind::TimedOut)));
        assert!(points_to_failover(&readonly));
        assert!(!points_to_failover(&wrong_type));
    }
}
