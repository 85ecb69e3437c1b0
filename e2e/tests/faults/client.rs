//! The recording clients: lanes of chatters, senders that keep messages
//! flowing through a fault, and watchers that record every `reply` on
//! sockets connected before it. They record; they judge nothing (that is
//! [`crate::checker`]'s job).
//!
//! A lane is one author and one peer in their private room: the author
//! sends from one instance, the peer has a socket joined to the room on
//! every instance. rust_socketio picks ack ids at random in 0..999 and
//! hands a colliding ack to both waiters, so one socket keeps one ack in
//! flight ([`ChatSocket`] enforces it); a sender sends its next message as
//! soon as the previous one is answered (paced, to stay under the rate
//! limit), and lanes run side by side.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use e2e::{chat::join, pipelined::PipelinedSocket, Api, ChatSocket, TestUser};
use serde_json::Value;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    history::{Clock, Delivery, History, Op, Outcome, Watch},
    recorder::Recorder,
};

/// Time between two messages of one paced sender: 10 a second, half the
/// default per-user rate limit.
pub const PACE: Duration = Duration::from_millis(100);

/// Instances of a deployment are named A, B, ... in reports.
fn instance_name(index: usize) -> char {
    char::from(b'A' + u8::try_from(index).unwrap_or(25))
}

/// What a scenario keeps of a lane once its sockets are handed over.
#[derive(Debug, Clone)]
pub struct LaneInfo {
    /// The lane's number.
    pub index: usize,
    /// The private room.
    pub room: String,
    /// Who watches, from every instance.
    pub peer: TestUser,
}

/// A lane ready to run: the author's socket and the peer's joined sockets.
pub struct Lane {
    /// Names and ids.
    pub info: LaneInfo,
    /// The author, and the base URL of the instance it sends through.
    pub author: (TestUser, String),
    /// The author's socket, on the instance it sends from.
    pub sender: ChatSocket,
    /// The peer's sockets, one per instance, joined to the room.
    pub watchers: Vec<(usize, ChatSocket)>,
}

/// Opens one lane per entry of `senders_on`: the author sends from
/// instance `senders_on[i]`; the peer watches from every instance.
pub async fn open_lanes(apis: &[Api], senders_on: &[usize]) -> Vec<Lane> {
    let mut lanes = Vec::new();
    for (index, &instance) in senders_on.iter().enumerate() {
        let api = &apis[instance];
        let author = api.new_user().await;
        let peer = api.new_user().await;
        let room = api.room_of(&author, &peer).await;
        let sender = ChatSocket::connect(api.base(), &author.token).await;
        let mut watchers = Vec::new();
        for (at, api) in apis.iter().enumerate() {
            let socket = ChatSocket::connect(api.base(), &peer.token).await;
            join(&socket, &room).await;
            watchers.push((at, socket));
        }
        lanes.push(Lane {
            info: LaneInfo { index, room, peer },
            author: (author, api.base().to_owned()),
            sender,
            watchers,
        });
    }
    lanes
}

struct Watcher {
    label: String,
    lane: usize,
    instance: usize,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    task: JoinHandle<ChatSocket>,
}

/// Answers [`Traffic::wait_steady`] wants in its window, per lane.
const STEADY_COUNT: usize = 5;

/// Clients at work: paced senders and recording watchers.
pub struct Traffic {
    clock: Clock,
    ops: Arc<Mutex<Vec<Op>>>,
    stop_senders: watch::Sender<bool>,
    stop_watchers: watch::Sender<bool>,
    senders: Vec<JoinHandle<ChatSocket>>,
    pipelined: Vec<JoinHandle<()>>,
    watchers: Vec<Watcher>,
}

/// What [`Traffic::finish`] hands back.
pub struct Finished {
    /// The recorded history (its fault log is the scenario's to fill in).
    pub history: History,
    /// The paced senders' sockets, for their other events (`error`, ...).
    pub senders: Vec<ChatSocket>,
}

impl Traffic {
    /// No clients yet; times are taken on `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            ops: Arc::default(),
            stop_senders: watch::channel(false).0,
            stop_watchers: watch::channel(false).0,
            senders: Vec::new(),
            pipelined: Vec::new(),
            watchers: Vec::new(),
        }
    }

    /// Starts recording what the lane's peer sockets receive, and returns
    /// the lane's author socket with the recorder its messages go through.
    pub fn watch(&mut self, lane: Lane) -> (LaneInfo, ChatSocket, Recorder) {
        for (instance, socket) in lane.watchers {
            let deliveries = Arc::new(Mutex::new(Vec::new()));
            let task = tokio::spawn(record_replies(
                socket,
                deliveries.clone(),
                self.clock,
                self.stop_watchers.subscribe(),
            ));
            self.watchers.push(Watcher {
                label: format!("lane {} peer @{}", lane.info.index, instance_name(instance)),
                lane: lane.info.index,
                instance,
                deliveries,
                task,
            });
        }
        let recorder = Recorder::new(
            lane.info.index,
            lane.info.room.clone(),
            self.clock,
            self.ops.clone(),
        );
        (lane.info, lane.sender, recorder)
    }

    /// Watches the lane and sends its messages at [`PACE`] until
    /// [`Traffic::finish`].
    pub fn run(&mut self, lane: Lane) -> LaneInfo {
        let (info, socket, recorder) = self.watch(lane);
        let stop = self.stop_senders.subscribe();
        self.senders
            .push(tokio::spawn(send_paced(socket, recorder, stop)));
        info
    }

    /// Watches the lane and sends its messages at [`PACE`] from a socket
    /// that keeps up to `window` answers outstanding (see
    /// [`crate::pipelining`]), until [`Traffic::finish`]. The lane's
    /// sender socket is replaced by that one, which `finish` does not hand
    /// back.
    pub async fn run_pipelined(&mut self, lane: Lane, window: usize) -> LaneInfo {
        let (user, base) = lane.author.clone();
        let (info, socket, recorder) = self.watch(lane);
        socket.disconnect().await;
        let socket = PipelinedSocket::connect(&base, &user.token)
            .await
            .expect("a pipelining socket");
        let stop = self.stop_senders.subscribe();
        self.pipelined.push(tokio::spawn(crate::pipelining::send(
            socket, recorder, stop, window,
        )));
        info
    }

    /// Waits until every lane in `lanes` has `count` messages accepted that
    /// were sent at or after `since`; panics after `timeout`.
    pub async fn wait_accepted(
        &self,
        lanes: &[usize],
        count: usize,
        since: Duration,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let short: Vec<(usize, usize)> = {
                let ops = self.ops.lock().unwrap();
                lanes
                    .iter()
                    .map(|&lane| {
                        let accepted = ops
                            .iter()
                            .filter(|op| op.lane == lane && op.sent_at >= since)
                            .filter(|op| matches!(op.outcome, Outcome::Accepted(_)))
                            .count();
                        (lane, accepted)
                    })
                    .filter(|(_, accepted)| *accepted < count)
                    .collect()
            };
            if short.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "within {timeout:?}, fewer than {count} messages sent after {since:?} were accepted \
                 (lane, accepted): {short:?}; last outcomes: {:?}",
                self.ops
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(6)
                    .map(|op| (op.lane, op.outcome.clone()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the answers of every lane in `lanes` are steady: of the
    /// messages sent between 2.5 s and 0.5 s ago, at least [`STEADY_COUNT`]
    /// and one after the other (none still unanswered among them), each
    /// answered within `within`. A fault test starts its fault then, not
    /// while a fresh stack's JVMs still warm up (on this 2-core machine a
    /// cold Kafka takes 100 to 300 ms per `acks=all` publish for the first
    /// 10 to 15 s, and a pipelining sender's answers queue up behind them).
    /// Panics after `timeout`, printing each lane's slowest recent answer.
    pub async fn wait_steady(&self, lanes: &[usize], within: Duration, timeout: Duration) {
        let started = tokio::time::Instant::now();
        loop {
            let now = self.clock.now();
            let (from, to) = (
                now.saturating_sub(Duration::from_millis(2500)),
                now.saturating_sub(Duration::from_millis(500)),
            );
            let unsteady: Vec<(usize, usize, Duration)> = {
                let ops = self.ops.lock().unwrap();
                lanes
                    .iter()
                    .filter_map(|&lane| {
                        let recent: Vec<&Op> = ops
                            .iter()
                            .filter(|op| op.lane == lane && op.sent_at >= from && op.sent_at < to)
                            .collect();
                        let slowest = recent
                            .iter()
                            .map(|op| op.ended_at.saturating_sub(op.sent_at))
                            .max()
                            .unwrap_or(Duration::MAX);
                        let seqs = recent.iter().map(|op| op.seq);
                        let span = seqs.clone().max().zip(seqs.min()).map(|(a, b)| a - b + 1);
                        let steady = recent.len() >= STEADY_COUNT
                            && span == Some(recent.len())
                            && slowest <= within;
                        (!steady).then_some((lane, recent.len(), slowest))
                    })
                    .collect()
            };
            if unsteady.is_empty() {
                eprintln!(
                    "   answers steady (each within {within:?}) after {:.1?}",
                    started.elapsed()
                );
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "answers not steady within {timeout:?} (lane, answers in the window, slowest): {unsteady:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the senders, waits (up to `settle`) until every watcher that
    /// must has received every accepted message of its lane, stops the
    /// watchers and returns the history. Watchers on `dead_instances` are
    /// not waited for and need not see everything.
    pub async fn finish(self, settle: Duration, dead_instances: &[usize]) -> Finished {
        let _ = self.stop_senders.send(true);
        let mut senders = Vec::new();
        for task in self.senders {
            senders.push(task.await.expect("a sender panicked"));
        }
        for task in self.pipelined {
            task.await.expect("a pipelining sender panicked");
        }
        let ops = self.ops.lock().unwrap().clone();
        let must_see_all = |watcher: &Watcher| !dead_instances.contains(&watcher.instance);
        let deadline = tokio::time::Instant::now() + settle;
        while tokio::time::Instant::now() < deadline {
            let all_in = self
                .watchers
                .iter()
                .filter(|watcher| must_see_all(watcher))
                .all(|watcher| has_every_accepted(&ops, watcher));
            if all_in {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.stop_watchers.send(true);
        let mut watches = Vec::new();
        for watcher in self.watchers {
            let must = must_see_all(&watcher);
            let mut socket = watcher.task.await.expect("a watcher panicked");
            watches.push(Watch {
                label: watcher.label,
                lane: watcher.lane,
                must_see_all: must,
                deliveries: watcher.deliveries.lock().unwrap().clone(),
                transport_error: if must { socket.transport_error() } else { None },
            });
            socket.disconnect().await;
        }
        Finished {
            history: History {
                ops,
                watches,
                ..History::default()
            },
            senders,
        }
    }
}

fn has_every_accepted(ops: &[Op], watcher: &Watcher) -> bool {
    let deliveries = watcher.deliveries.lock().unwrap();
    let seen: HashSet<&str> = deliveries
        .iter()
        .filter_map(|delivery| delivery.client_message_id.as_deref())
        .collect();
    ops.iter()
        .filter(|op| op.lane == watcher.lane && matches!(op.outcome, Outcome::Accepted(_)))
        .all(|op| seen.contains(op.client_message_id.as_str()))
}

/// A sender: one message every [`PACE`] (or as soon as the previous one is
/// answered, when that takes longer), each with a fresh `clientMessageId`,
/// until told to stop or its connection is gone.
async fn send_paced(
    mut socket: ChatSocket,
    recorder: Recorder,
    stop: watch::Receiver<bool>,
) -> ChatSocket {
    let mut ticker = tokio::time::interval(PACE);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for seq in 0.. {
        ticker.tick().await;
        if *stop.borrow() {
            break;
        }
        let client_message_id = format!("l{}-{seq}-{}", recorder.lane(), &run[..8]);
        let text = format!("lane {} message {seq}", recorder.lane());
        let outcome = recorder.send(&mut socket, &client_message_id, &text).await;
        if matches!(outcome, Outcome::ConnectionLost(_)) {
            break;
        }
    }
    socket
}

/// A watcher: records every `reply` the socket receives, in arrival order,
/// until told to stop; then takes what has already arrived.
async fn record_replies(
    mut socket: ChatSocket,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    clock: Clock,
    stop: watch::Receiver<bool>,
) -> ChatSocket {
    let any = |_: &Value| true;
    while !*stop.borrow() {
        if let Some(reply) = socket
            .try_expect_event("reply", &any, Duration::from_millis(250))
            .await
        {
            deliveries
                .lock()
                .unwrap()
                .push(Delivery::from_message(&reply, clock.now()));
        }
    }
    while let Some(reply) = socket.try_expect_event("reply", &any, Duration::ZERO).await {
        deliveries
            .lock()
            .unwrap()
            .push(Delivery::from_message(&reply, clock.now()));
    }
    socket
}
