//! A poison message: the store fails while Cassandra is healthy (the
//! messages table is gone), so the retries are spent, the message is
//! parked in the DLQ and its author hears `chat_500`. Once the table is
//! back, `chat-service dlq replay` puts it back through the pipeline,
//! exactly once; `--dry-run` only lists it.
//!
//! No background traffic here: the fault is the whole keyspace's, so every
//! message sent meanwhile would be poisoned too, and a replay delivers
//! them after later messages by design.

use e2e::stack::Topology;
use std::{process::Stdio, time::Duration};

use e2e::{chat::is_message, server::binary, socket::EVENT_TIMEOUT, TestServer};
use scylla::client::session::Session;
use service::{
    config::Settings,
    store::cassandra::{self, migrate},
};

use crate::{
    client::{open_lanes, Traffic},
    deployment::Deployment,
    history::{Clock, FaultLog, Outcome},
    one_at_a_time,
    scenario::{judge, WARM_UP},
};

/// How many messages are poisoned.
const POISONED: usize = 3;

/// How long a `dlq replay` may run.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_stored_is_parked_with_chat_500_and_dlq_replay_delivers_it_exactly_once(
) {
    poisoned(Scaling::Settled).await;
}

/// The same while the set of instances changes: a third instance, frozen
/// (SIGSTOP) until the group dropped it, comes back while the poisoned
/// messages wait out their back-off in the retry topic. It rejoins the
/// group (still believing, for a moment, that it holds its old
/// partitions), and partitions move between the members mid-retry. Each
/// message still ends parked once: one `chat_500`, one dead-letter
/// record, nothing stored. (A fresh process cannot be the one to join:
/// with the table dropped it cannot prepare its statements and start.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_instance_joining_while_messages_wait_in_the_retry_topic_gives_each_one_outcome() {
    poisoned(Scaling::JoinMidRetry).await;
}

/// What the instances do while the messages are retried.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scaling {
    /// Two instances whose groups settled before the fault.
    Settled,
    /// A third that was dropped from the group and rejoins mid-retry.
    JoinMidRetry,
}

async fn poisoned(scaling: Scaling) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let keyspace = format!(
        "{}_poison_{}",
        e2e::stack::Stack::get().run.keyspace,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    // Joining mid-retry needs retries long enough to join in: the third
    // instance starts in a few seconds, the attempts come 3 s and 9 s in.
    let backoff = match scaling {
        Scaling::Settled => "200",
        Scaling::JoinMidRetry => "3000",
    };
    let env = [
        ("CASSANDRA_KEYSPACE", keyspace.as_str()),
        ("KAFKA_RETRY_BACKOFF_MS", backoff),
    ];
    let mut deployment = Deployment::spawn(&env).await;
    if scaling == Scaling::JoinMidRetry {
        let third = deployment.servers[0].spawn_peer().await;
        deployment.servers.push(third);
        deployment.wait_groups_stable(3).await;
        deployment.servers[2].freeze(true);
        deployment.wait_groups_stable(2).await;
    }
    let session = session_of(&deployment.servers[0]).await;
    let lane = open_lanes(&deployment.apis, &[0]).await.remove(0);
    let clock = Clock::start();
    let mut log = FaultLog::default();
    let mut traffic = Traffic::new(clock);
    let (lane, mut author, recorder) = traffic.watch(lane);

    run_cql(&session, &format!("DROP TABLE {keyspace}.messages_by_room")).await;
    log.note(clock.now(), "messages_by_room dropped");
    let mut parked = Vec::new();
    for n in 0..POISONED {
        let client_message_id = format!("poison-{n}-{}", uuid::Uuid::new_v4().simple());
        match recorder
            .send(&mut author, &client_message_id, &format!("poison {n}"))
            .await
        {
            Outcome::Accepted(id) => parked.push(id),
            other => panic!("the poisoned message was not accepted: {other:?}"),
        }
    }
    if scaling == Scaling::JoinMidRetry {
        deployment.servers[2].freeze(false);
        log.note(clock.now(), "the third instance thawed and rejoins");
    }
    for _ in 0..POISONED {
        let told = author
            .try_expect_event("error", &|e| e["name"] == "chat_500", WARM_UP)
            .await;
        assert!(
            told.is_some(),
            "no chat_500 for each parked message; got {:#?}",
            author.unmatched()
        );
    }
    log.note(clock.now(), "the author heard chat_500 for each");
    let twice = author
        .try_expect_event(
            "error",
            &|e| e["name"] == "chat_500",
            Duration::from_secs(3),
        )
        .await;
    assert!(twice.is_none(), "a message was parked twice: {twice:?}");
    for statement in messages_table_cql() {
        run_cql(&session, &statement).await;
    }
    log.note(clock.now(), "messages_by_room re-created");

    let server = &deployment.servers[0];
    let dry_run = replay(server, &["--dry-run"]).await;
    let stored_after_dry_run = deployment.apis[0]
        .history(&lane.peer.token, &lane.room, "limit=10")
        .await
        .expect(200);
    let replayed = replay(server, &[]).await;
    log.note(clock.now(), "dlq replay ran");
    let mut finished = traffic.finish(Duration::from_secs(60), &[]).await;
    let again = replay(server, &[]).await;

    let history = &mut finished.history;
    history.faults = log;
    let verdict = judge(
        "poison message, DLQ replay",
        history,
        &deployment.apis[1],
        std::slice::from_ref(&lane),
    )
    .await;
    for id in &parked {
        assert!(
            dry_run.lines.iter().any(|line| line.contains(id.as_str())),
            "{dry_run:?}"
        );
        assert!(
            replayed.lines.iter().any(|line| line.contains(id.as_str())),
            "{replayed:?}"
        );
        assert!(
            !again.lines.iter().any(|line| line.contains(id.as_str())),
            "{again:?}"
        );
        let sent = author
            .try_expect_event(
                "notification",
                &|n| n["name"] == "sent" && is_message(id)(n),
                EVENT_TIMEOUT,
            )
            .await;
        assert!(
            sent.is_some(),
            "the author was not told {id} was sent after the replay"
        );
    }
    assert_eq!(
        dry_run.summary(),
        Some(format!("would replay {POISONED}")),
        "{dry_run:?}"
    );
    assert_eq!(
        stored_after_dry_run,
        serde_json::json!([]),
        "a dry run stored something"
    );
    assert_eq!(
        replayed.summary(),
        Some(format!("replayed {POISONED}")),
        "{replayed:?}"
    );
    assert_eq!(again.summary(), Some("replayed 0".to_owned()), "{again:?}");
    assert!(
        !dry_run.lines.iter().any(|line| line.starts_with("skipped")),
        "a message was parked twice: {dry_run:?}"
    );
    verdict.assert_clean(false);
}

/// A session on the deployment's own keyspace.
async fn session_of(server: &TestServer) -> Session {
    let env = server.env().to_vec();
    let settings = Settings::from_lookup(|name| {
        env.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })
    .expect("the server's settings");
    let session = cassandra::connect(&settings.cassandra.clone().expect("cassandra")).await;
    let keyspace = settings.cassandra.expect("cassandra").keyspace;
    session
        .use_keyspace(&keyspace, false)
        .await
        .expect("use the deployment's keyspace");
    session
}

async fn run_cql(session: &Session, statement: &str) {
    session
        .query_unpaged(statement.to_owned(), ())
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

/// The migrations' own CQL for the messages table.
fn messages_table_cql() -> Vec<String> {
    let statements: Vec<String> = migrate::MIGRATIONS
        .iter()
        .flat_map(|migration| migrate::statements(migration.cql))
        .filter(|statement| statement.contains("TABLE IF NOT EXISTS messages_by_room"))
        .collect();
    assert_eq!(
        statements.len(),
        1,
        "the migrations create messages_by_room once"
    );
    statements
}

/// What a `chat-service dlq replay` printed.
#[derive(Debug)]
struct Replay {
    lines: Vec<String>,
    stderr: String,
}

impl Replay {
    /// The final `replayed N` / `would replay N` line (the per-message
    /// lines start with the same words, then name the message).
    fn summary(&self) -> Option<String> {
        let is_summary = |line: &&str| {
            ["replayed ", "would replay "].iter().any(|prefix| {
                line.strip_prefix(prefix)
                    .is_some_and(|count| count.parse::<usize>().is_ok())
            })
        };
        self.lines
            .iter()
            .rev()
            .map(|line| line.trim())
            .find(is_summary)
            .map(str::to_owned)
    }
}

/// Runs `chat-service dlq replay [flags]` with the server's environment
/// and asserts it exits 0.
async fn replay(server: &TestServer, flags: &[&str]) -> Replay {
    let mut command = tokio::process::Command::new(binary());
    command
        .args(["dlq", "replay"])
        .args(flags)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(server.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(REPLAY_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("dlq replay {flags:?} ran over {REPLAY_TIMEOUT:?}"))
        .expect("cannot run chat-service dlq replay");
    let replay = Replay {
        lines: String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.success(),
        "dlq replay {flags:?} exited {}; stdout: {:?}; stderr: {}",
        output.status,
        replay.lines,
        replay.stderr
    );
    replay
}
