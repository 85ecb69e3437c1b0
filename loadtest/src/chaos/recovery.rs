//! What a real client does when its connection breaks: open a new socket
//! (on either instance), join the room again, and read what it missed
//! through the room's history over HTTP
//! (`GET /api/v1/rooms/{roomId}/messages?latestMessageId=<last seen>&context=after&limit=100`,
//! page by page until none are left).
//!
//! The history read runs beside the chatter (it may have to wait for
//! Cassandra) and hands its messages back on the chatter's event channel as
//! [`Inbound::History`].

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};
use tokio::{
    sync::mpsc,
    time::{sleep, Instant},
};

use crate::{
    clock,
    socket::{self, ChatSocket, Client, Inbound, Received},
    state::{Counters, RunState},
};

/// The largest page the contract allows.
pub const PAGE: usize = 100;
/// How long one connect or `join` may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause between two tries; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// A new socket and the instance it is on.
pub struct Reconnected {
    /// The socket, joined to the room.
    pub socket: ChatSocket,
    /// Index into `LOAD_HOSTS`.
    pub instance: usize,
}

/// Opens a socket with `token` and joins `room_id`, trying the instances in
/// turn from the one after `previous`, with back-off, until `deadline`.
pub async fn reconnect(
    run: &RunState,
    token: &str,
    room_id: &str,
    previous: usize,
    events: &mpsc::UnboundedSender<Received>,
    connection: u32,
    deadline: Instant,
) -> Option<Reconnected> {
    let hosts = &run.settings.hosts;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0.. {
        let instance = (previous + 1 + attempt) % hosts.len();
        match connect_and_join(&hosts[instance], token, room_id, events, connection).await {
            Ok(socket) => return Some(Reconnected { socket, instance }),
            Err(error) => run.counters.error(&format!("reconnect:{error}")),
        }
        if Instant::now() + backoff >= deadline {
            break;
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    None
}

async fn connect_and_join(
    host: &str,
    token: &str,
    room_id: &str,
    events: &mpsc::UnboundedSender<Received>,
    connection: u32,
) -> Result<ChatSocket, &'static str> {
    // The chaos mode keeps one ack in flight: rust_socketio carries it.
    let socket = ChatSocket::connect(
        Client::RustSocketio,
        host,
        token,
        events.clone(),
        connection,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|error| match error {
        socket::SocketError::Refused(_) => "refused",
        socket::SocketError::Timeout => "timeout",
        _ => "transport",
    })?;
    // A new socket has nothing in flight: one ack at a time holds.
    match socket
        .request("join", json!({ "roomId": room_id }), CONNECT_TIMEOUT)
        .await
    {
        Ok(ack) if ack["status"] == "ok" => Ok(socket),
        other => {
            socket.disconnect().await;
            Err(if other.is_ok() {
                "join_refused"
            } else {
                "join_timeout"
            })
        }
    }
}

/// What a catch-up needs.
pub struct CatchUp {
    /// The instance to ask first (index into `LOAD_HOSTS`).
    pub instance: usize,
    /// The chatter's token.
    pub token: String,
    /// The room.
    pub room_id: String,
    /// The last message id the chatter saw; `None` reads the whole room.
    pub after: Option<u64>,
    /// The connection the catch-up belongs to.
    pub connection: u32,
    /// When to give up.
    pub deadline: Instant,
}

/// Reads what the room holds after `after` in the background, trying the
/// instances in turn until it succeeds or the deadline passes, and hands
/// the messages (oldest first) to the chatter as [`Inbound::History`].
pub fn spawn_catch_up(
    run: Arc<RunState>,
    catch_up: CatchUp,
    events: mpsc::UnboundedSender<Received>,
) {
    tokio::spawn(async move {
        let Some(chaos) = run.chaos.as_ref() else {
            return;
        };
        Counters::bump(&chaos.catch_ups);
        let hosts = &run.settings.hosts;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0.. {
            let host = &hosts[(catch_up.instance + attempt) % hosts.len()];
            let read = messages_after(
                &chaos.http,
                host,
                &catch_up.token,
                &catch_up.room_id,
                catch_up.after.unwrap_or(1),
            )
            .await;
            match read {
                Ok(messages) => {
                    let event = Inbound::History(messages);
                    socket::send(&events, clock::now_micros(), catch_up.connection, event);
                    return;
                }
                Err(error) => run.counters.error(&format!("catch_up:{error}")),
            }
            if Instant::now() + backoff >= catch_up.deadline {
                break;
            }
            sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Counters::bump(&chaos.catch_up_failures);
    });
}

/// Every message of `room_id` newer than `after`, oldest first, paging
/// with `context=after` until a page comes back short.
pub async fn messages_after(
    http: &reqwest::Client,
    host: &str,
    token: &str,
    room_id: &str,
    after: u64,
) -> Result<Vec<Value>, String> {
    let mut cursor = after;
    let mut all = Vec::new();
    loop {
        let url = format!(
            "{host}/api/v1/rooms/{room_id}/messages?latestMessageId={cursor}&context=after&limit={PAGE}"
        );
        let response = http
            .get(&url)
            .header("Authorization", token)
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                }
                .to_owned()
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("http_{}", status.as_u16()));
        }
        let mut page: Vec<Value> = response.json().await.map_err(|_| "bad_body".to_owned())?;
        // Newest first on the wire.
        page.reverse();
        let full = page.len() >= PAGE;
        let newest = page.iter().filter_map(|m| message_id(&m["id"])).max();
        all.extend(page);
        match newest {
            Some(newest) if full && newest > cursor => cursor = newest,
            _ => return Ok(all),
        }
    }
}

/// A message id (a decimal string; a number is accepted too).
pub fn message_id(value: &Value) -> Option<u64> {
    match value {
        Value::String(id) => id.parse().ok(),
        Value::Number(id) => id.as_u64(),
        _ => None,
    }
}
