//! The `/chats` event handlers: small free functions taking extractors.
//! Each runs in a span carrying the user, room and message ids.

use serde_json::{json, Value};
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use socketioxide::{
    adapter::Adapter,
    extract::{Extension, SocketRef, State, TryData},
    handler::{FromMessage, FromMessageParts, MessageHandler, Value as PacketValue},
    socket::{DisconnectReason, Socket},
    ParserError,
};
use tokio::{
    sync::{mpsc, oneshot},
    time::{Duration, Instant},
};
use tracing::{field, Instrument, Span};

use super::{
    error::{Failure, SocketError},
    payload::{parse_message, parse_read, room_hint, room_of},
    respond::Responder,
    RealtimeState,
};
use crate::{
    domain::UserId,
    fanout::{room_channel, socket_channel, user_channel},
    limits::{rate_limit::Bucket, sockets::SocketSlot},
    locks::LockExt,
    pipeline::accept::{Accepted, Submission},
    telemetry::{Muted, Steps},
};

/// Sets up a newly authenticated socket: joins its user's and its own
/// Socket.IO rooms, so every device of a user can be reached and this one
/// excluded, and registers the event handlers.
///
/// Called by the connect middleware, not the connect handler: socketioxide
/// sends the client its CONNECT before it spawns the (async) connect
/// handler, so a `join` sent right away could arrive before handlers
/// registered there exist, and be dropped without an answer.
pub fn register<A: Adapter>(socket: &SocketRef<A>, user: UserId, state: &RealtimeState) {
    socket.join([user_channel(user), socket_channel(&socket.id.to_string())]);
    metrics::gauge!("sockets_connected").increment(1.0);
    tracing::info!(user_id = %user, socket = %socket.id, "socket connected");
    socket.extensions.insert(super::joining::JoinBudget::new());
    let (gone, gone_signal) = oneshot::channel();
    socket
        .extensions
        .insert(Gone(Arc::new(Mutex::new(Some(gone)))));
    tokio::spawn(
        state
            .presence
            .clone()
            .keep(user, socket.id.to_string(), gone_signal),
    );
    let (queue, pending) = mpsc::channel(SEND_QUEUE);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    tokio::spawn(send_in_order(
        state.clone(),
        user,
        socket.id.to_string(),
        pending,
        queued_bytes.clone(),
    ));
    socket.on("join", super::joining::on_join::<A>);
    socket.on("typing", super::typing::on_typing::<A>);
    socket.on("leave", on_leave::<A>);
    socket.on("read", on_read::<A>);
    let (rate, burst) = state.limits.message_rate();
    socket.on(
        "message",
        InOrder {
            queue,
            arrivals: Mutex::new(Bucket::full(burst, std::time::Instant::now())),
            rate,
            burst,
            queued_bytes,
        },
    );
    socket.on_disconnect(on_disconnect::<A>);
}

/// `message`s a socket may have waiting for their turn. The arrival rate
/// keeps it to about the burst plus what arrives in [`ANSWER_WITHIN`]:
/// past that, the client is sending faster than the rate lets through.
const SEND_QUEUE: usize = 256;

/// How long after a `message` arrives its answer may come at the latest.
/// The contract promises 2 s; the rest is for the network. A message
/// still waiting then (its turn has not come, or a backend is slow) is
/// answered `chat_503`, which the client resends with the same
/// `clientMessageId`: one slow publish never holds the messages queued
/// behind it past their own deadline.
const ANSWER_WITHIN: Duration = Duration::from_millis(1_500);

/// A `message` waiting for its turn: when it came, its payload, its size
/// as counted against [`QUEUED_BYTES`], and where its answer goes. Boxed:
/// the queue allocates room for 32 entries as it is made, so every
/// socket, idle or not, would hold 32 of them (3 KiB, heaptrack).
type Queued<A> = Box<(Instant, Result<Value, ParserError>, usize, Responder<A>)>;

/// Bytes of `message` payloads one socket may have waiting (about: see
/// [`approx_size`]); past it a `message` is `rate_limited` on arrival. With
/// the arrival rate below, about 70 messages can wait at most anyway; this
/// keeps 64 KiB frames from making that 4 MiB.
const QUEUED_BYTES: usize = 256 * 1024;

/// The `message` handler: queues each packet in arrival order.
///
/// socketioxide spawns a task per event for `async fn` handlers, and the
/// tasks of one socket run side by side (tokio even runs the newest one
/// first), so a client that pipelines would see its messages overtake each
/// other. This handler implements [`MessageHandler`] directly: its `call`
/// runs synchronously as each packet is read, so the queue holds the
/// socket's order, and [`send_in_order`] accepts from it one at a time.
///
/// The rate is checked on arrival too (per socket, at the user's rate and
/// burst, in this process): a client that floods is refused before its
/// payloads are kept, not only when they leave the queue.
struct InOrder<A: Adapter> {
    queue: mpsc::Sender<Queued<A>>,
    arrivals: Mutex<Bucket>,
    rate: f64,
    burst: f64,
    queued_bytes: Arc<AtomicUsize>,
}

impl<A: Adapter> MessageHandler<A, InOrder<A>> for InOrder<A> {
    fn call(&self, socket: Arc<Socket<A>>, mut value: PacketValue, ack_id: Option<i64>) {
        let Ok(respond) = Responder::from_message_parts(&socket, &mut value, &ack_id);
        let Ok(TryData(payload)) = TryData::<Value>::from_message(socket, value, ack_id);
        let size = payload.as_ref().map_or(0, approx_size);
        let room = payload.as_ref().ok().and_then(room_hint);
        let refuse = |respond: Responder<A>| {
            metrics::counter!("messages_failed_total", "stage" => "arrival").increment(1);
            respond.fail(&Failure::new(SocketError::RateLimited, room));
        };
        let arrived = Instant::now();
        if !self
            .arrivals
            .lock_or_recover()
            .take(self.rate, self.burst, arrived.into_std())
        {
            return refuse(respond);
        }
        if self.queued_bytes.fetch_add(size, Ordering::AcqRel) + size > QUEUED_BYTES {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return refuse(respond);
        }
        if let Err(full) = self
            .queue
            .try_send(Box::new((arrived, payload, size, respond)))
        {
            let (_, _, size, respond) = *full.into_inner();
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            refuse(respond);
        }
    }
}

/// About how many bytes `value` takes in memory: its strings, plus a word
/// or two per node. Cheap next to parsing it, and only compared with
/// [`QUEUED_BYTES`].
fn approx_size(value: &Value) -> usize {
    const NODE: usize = 32;
    match value {
        Value::String(text) => NODE + text.len(),
        Value::Array(items) => NODE + items.iter().map(approx_size).sum::<usize>(),
        Value::Object(fields) => {
            NODE + fields
                .iter()
                .map(|(key, value)| key.len() + approx_size(value))
                .sum::<usize>()
        }
        _ => NODE,
    }
}

/// The connect handler: everything was done by [`register`] before the
/// client heard CONNECT.
pub async fn on_connect() {}

/// Fired when the socket disconnects, for its presence task.
#[derive(Clone)]
struct Gone(Arc<Mutex<Option<oneshot::Sender<()>>>>);

async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<RealtimeState>,
    reason: DisconnectReason,
) {
    super::session::unbind(&socket);
    state.catch_ups.forget(&socket.id.to_string());
    socket.extensions.remove::<SocketSlot>();
    if let Some(Gone(gone)) = socket.extensions.get::<Gone>() {
        if let Some(gone) = gone.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = gone.send(());
        }
    }
    metrics::gauge!("sockets_connected").decrement(1.0);
    // A frame over the cap shows as a transport error (websocket) or a
    // parsing error (polling).
    tracing::info!(socket = %socket.id, reason = ?reason, "socket disconnected");
}

/// `leave {roomId}`: always fine for a valid room id.
async fn on_leave<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<UserId>,
    State(state): State<RealtimeState>,
    TryData(payload): TryData<Value>,
    respond: Responder<A>,
) {
    tracing::debug!(user_id = %user, "socket.leave");
    match room_of(payload) {
        Ok(room) => {
            socket.leave(room_channel(room));
            // A catch-up running for this socket must not join it back.
            state.catch_ups.cancel(room, &socket.id.to_string()).await;
            respond.ok(&json!({ "status": "ok" }));
        }
        Err(failure) => respond.fail(&failure),
    }
}

/// `read {roomId, messageId}`: moves the caller's read marker; when it
/// moved, the room's members' sockets but this one hear `read`.
async fn on_read<A: Adapter>(
    socket: SocketRef<A>,
    Extension(user): Extension<UserId>,
    State(state): State<RealtimeState>,
    TryData(payload): TryData<Value>,
    respond: Responder<A>,
) {
    let span = tracing::info_span!("socket.read", user_id = %user, room_id = field::Empty);
    let marked = async {
        let value = payload.map_err(|_| Failure::bad_shape())?;
        let (room, message) =
            parse_read(&value).map_err(|error| Failure::new(error, room_hint(&value)))?;
        Span::current().record("room_id", field::display(room));
        state
            .reading
            .mark(user, room, message)
            .await
            .map_err(|error| Failure::new(error, Some(room)))
    }
    .instrument(span)
    .await;
    match marked {
        Ok(moved) => {
            if let Some(moved) = moved {
                // `socket.to` reaches every instance and leaves this socket out.
                if let Err(error) = socket
                    .to(moved.to)
                    .emit("notification", &moved.payload)
                    .await
                {
                    tracing::warn!(cause = %error, "cannot tell the room of a read");
                }
            }
            respond.ok(&json!({ "status": "ok" }));
        }
        Err(failure) => respond.fail(&failure),
    }
}

/// Accepts one socket's messages in the order it sent them; the ack says
/// `accepted` only once the bus holds the message.
async fn send_in_order<A: Adapter>(
    state: RealtimeState,
    user: UserId,
    origin: String,
    mut pending: mpsc::Receiver<Queued<A>>,
    queued_bytes: Arc<AtomicUsize>,
) {
    while let Some(queued) = pending.recv().await {
        let (arrived, payload, size, respond) = *queued;
        queued_bytes.fetch_sub(size, Ordering::AcqRel);
        let span = tracing::info_span!(
            "socket.message",
            user_id = %user,
            room_id = field::Empty,
            message_id = field::Empty,
        );
        let room = payload.as_ref().ok().and_then(room_hint);
        // Boxed, as the send below, so that the task of an idle socket
        // stays small (the send is most of its size, the steps 256 bytes).
        let mut steps = Box::new(Steps::since(arrived.into_std(), "queued"));
        let sent = Box::pin(
            send(&state, user, origin.clone(), payload, &mut steps).instrument(span.clone()),
        );
        let outcome = tokio::time::timeout_at(arrived + ANSWER_WITHIN, sent).await;
        let _entered = span.enter();
        if steps.elapsed() >= SLOW_ANSWER && SLOW_ANSWERS_LOGGED.may_log() {
            tracing::warn!(
                steps = %steps.describe(),
                answered = outcome.is_ok(),
                "slow message: its answer took long (at most one such line a second)"
            );
        }
        match outcome {
            Ok(Ok(accepted)) => respond.ok(&json!({
                "status": "accepted",
                "messageId": accepted.id,
            })),
            Ok(Err(failure)) => respond.fail(&failure),
            Err(_) => {
                metrics::counter!("messages_failed_total", "stage" => "answer_deadline")
                    .increment(1);
                respond.fail(&Failure::new(SocketError::Unavailable, room));
            }
        }
    }
}

/// An answer this late is logged with where its time went.
const SLOW_ANSWER: Duration = Duration::from_millis(500);
/// At most one slow answer a second is logged.
static SLOW_ANSWERS_LOGGED: Muted = Muted::every(Duration::from_secs(1));

async fn send(
    state: &RealtimeState,
    user: UserId,
    origin_socket: String,
    payload: Result<Value, ParserError>,
    steps: &mut Steps,
) -> Result<Accepted, Failure> {
    let value = payload.map_err(|_| Failure::bad_shape())?;
    let room = room_hint(&value);
    let request = parse_message(&value).map_err(|error| Failure::new(error, room))?;
    let room = request.room;
    Span::current().record("room_id", field::display(room));
    steps.begin("rate");
    if !state.limits.allow_message(user).await {
        metrics::counter!("messages_failed_total", "stage" => "rate_limited").increment(1);
        return Err(Failure::new(SocketError::RateLimited, Some(room)));
    }
    steps.begin("membership");
    let audience = state
        .membership
        .audience_of(room, user)
        .await
        .map_err(|error| Failure::new(error, Some(room)))?
        .ok_or_else(|| Failure::new(SocketError::RoomNotFound, Some(room)))?;
    if audience.kind() != request.kind {
        let expected = audience.kind().as_str();
        return Err(Failure::new(
            SocketError::BadRequest(format!("type must be {expected:?} in this room")),
            Some(room),
        ));
    }
    let accepted = state
        .acceptor
        .accept(
            Submission {
                author: user,
                audience,
                room,
                text: request.text,
                client_message_id: request.client_message_id,
                origin_socket,
            },
            steps,
        )
        .await
        .map_err(|error| Failure::new(error, Some(room)))?;
    Span::current().record("message_id", field::display(accepted.id));
    tracing::debug!(resend = accepted.resend, "message accepted");
    Ok(accepted)
}
