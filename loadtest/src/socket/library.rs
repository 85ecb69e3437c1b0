//! The socket on rust_socketio (async): the client of every run with one
//! ack in flight per socket, and of the chaos mode.
//!
//! rust_socketio quirks handled here: `connect()` does not wait for the
//! namespace CONNECT, so [`LibrarySocket::connect`] waits for it; a refused
//! handshake arrives only as an `error` callback with a string; the server's
//! own `error` event arrives on that same callback, with an object. It also
//! picks ack ids at random in 0..999, hands an ack to every waiting callback
//! with that id and then removes the wrong entries (or panics) when two
//! share one, so it can carry one ack at a time: see [`super::lean`] for the
//! pipelined mode.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::FutureExt;
use rust_socketio::{
    asynchronous::{Client, ClientBuilder},
    Event, Payload, TransportType,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{first_of, send, Inbound, Received, SocketError, Tag};
use crate::{clock, latency::lock};

type ConnectOutcome = Arc<Mutex<Option<oneshot::Sender<Result<(), String>>>>>;

/// A connected `/chats` socket on rust_socketio.
pub struct LibrarySocket {
    client: Client,
    events: mpsc::UnboundedSender<Received>,
    connection: u32,
}

impl LibrarySocket {
    /// Opens a WebSocket to `base` with `Authorization: <token>`, joins the
    /// `/chats` namespace and waits up to `timeout` for the server to accept
    /// it. Events from then on go to `events`, marked with `connection`.
    pub async fn connect(
        base: &str,
        token: &str,
        events: mpsc::UnboundedSender<Received>,
        connection: u32,
        timeout: Duration,
    ) -> Result<Self, SocketError> {
        let (outcome_sender, outcome) = oneshot::channel();
        let outcome_sender: ConnectOutcome = Arc::new(Mutex::new(Some(outcome_sender)));

        let on_connect = {
            let outcome_sender = outcome_sender.clone();
            move |_: Payload, _: Client| {
                if let Some(sender) = lock(&outcome_sender).take() {
                    let _ = sender.send(Ok(()));
                }
                async {}.boxed()
            }
        };
        let on_error = {
            let outcome_sender = outcome_sender.clone();
            let events = events.clone();
            move |payload: Payload, _: Client| {
                let at_us = clock::now_micros();
                let data = first_argument(payload);
                match data {
                    // The server's `error` event carries an object.
                    Value::Object(_) => {
                        send(&events, at_us, connection, Inbound::ServerError(data))
                    }
                    other => {
                        let text = match other {
                            Value::String(text) => text,
                            other => other.to_string(),
                        };
                        match lock(&outcome_sender).take() {
                            Some(sender) => {
                                let _ = sender.send(Err(text));
                            }
                            None => send(&events, at_us, connection, Inbound::ClientError(text)),
                        }
                    }
                }
                async {}.boxed()
            }
        };
        let on_close = {
            let events = events.clone();
            move |_: Payload, _: Client| {
                send(&events, clock::now_micros(), connection, Inbound::Closed);
                async {}.boxed()
            }
        };
        let on_any = {
            let events = events.clone();
            move |event: Event, payload: Payload, _: Client| {
                let at_us = clock::now_micros();
                let data = first_argument(payload);
                let inbound = match event.as_str() {
                    "reply" => Some(Inbound::Reply(data)),
                    "notification" => Some(Inbound::Notification(data)),
                    _ => None,
                };
                if let Some(inbound) = inbound {
                    send(&events, at_us, connection, inbound);
                }
                async {}.boxed()
            }
        };

        let connecting = ClientBuilder::new(base)
            .namespace("/chats")
            // Straight to WebSocket: no polling round trips per chatter.
            .transport_type(TransportType::Websocket)
            .opening_header("Authorization", token)
            // A chatter that lost its socket is counted, not silently revived.
            .reconnect(false)
            .on(Event::Connect, on_connect)
            .on(Event::Error, on_error)
            .on(Event::Close, on_close)
            .on_any(on_any)
            .connect();
        let client = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| SocketError::Timeout)?
            .map_err(|error| SocketError::Transport(error.to_string()))?;
        let accepted = match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(refusal))) => Err(SocketError::Refused(refusal)),
            Ok(Err(_)) => Err(SocketError::Refused("connection dropped".to_owned())),
            Err(_) => Err(SocketError::Timeout),
        };
        if let Err(error) = accepted {
            let _ = client.disconnect().await;
            return Err(error);
        }
        Ok(Self {
            client,
            events,
            connection,
        })
    }

    /// Emits and waits up to `timeout` for the ack's first argument. The
    /// caller keeps at most one ack in flight (see [`Self::emit_tracked`]).
    pub async fn request(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Value, SocketError> {
        let (sender, receiver) = oneshot::channel();
        let sender = Mutex::new(Some(sender));
        self.emit_with_ack(event, data, timeout, move |payload| {
            if let Some(sender) = lock(&sender).take() {
                let _ = sender.send(first_argument(payload));
            }
        })
        .await?;
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(ack)) => Ok(ack),
            _ => Err(SocketError::Timeout),
        }
    }

    /// Emits asking for an ack, which arrives later on the event channel as
    /// [`Inbound::Ack`] with `tag`.
    ///
    /// rust_socketio picks ack ids at random in 0..999 and hands an ack to
    /// every waiting callback with that id, so two acks in flight on one
    /// client can be confused. The chatters therefore keep one ack in flight
    /// per socket on this client: a message scheduled while the previous ack
    /// is pending waits for it, and since latencies are measured from the
    /// scheduled time that wait is charged to the measurement rather than
    /// hidden. At a few messages per second per socket and acks of
    /// milliseconds, the wait is rare. (Correlating by `clientMessageId` and
    /// the `sent` notification instead would lose the ack latency itself.)
    /// For the same reason no `read` goes out on this client
    /// (`LOAD_MARK_READ` is refused with it): a `read` ack beside a
    /// `message` ack could reach the wrong callback, or make the reader
    /// panic when the two share an id, and waiting for one before the other
    /// would hold up the sending schedule.
    pub async fn emit_tracked(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
        tag: Tag,
    ) -> Result<(), SocketError> {
        let events = self.events.clone();
        let connection = self.connection;
        self.emit_with_ack(event, data, timeout, move |payload| {
            let at_us = clock::now_micros();
            let data = first_argument(payload);
            send(&events, at_us, connection, Inbound::Ack { tag, data });
        })
        .await
    }

    /// Emits asking for an ack and runs `on_ack` with the ack's payload
    /// when it arrives within `timeout` (rust_socketio never calls it later).
    async fn emit_with_ack(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
        mut on_ack: impl FnMut(Payload) + Send + Sync + 'static,
    ) -> Result<(), SocketError> {
        self.client
            .emit_with_ack(
                event,
                Payload::Text(vec![data]),
                timeout,
                move |payload, _| {
                    on_ack(payload);
                    async {}.boxed()
                },
            )
            .await
            .map_err(|error| SocketError::Emit(error.to_string()))
    }

    /// Closes the connection.
    pub async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }
}

/// The first argument of an event or ack, or `Null`.
fn first_argument(payload: Payload) -> Value {
    #[allow(deprecated)]
    let value = match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        Payload::Text(_) => Value::Null,
        Payload::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Payload::Binary(bytes) => Value::String(format!("<{} binary bytes>", bytes.len())),
    };
    first_of(value)
}
