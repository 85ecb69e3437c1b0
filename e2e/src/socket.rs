//! A Socket.IO client for `/chats` (rust_socketio, async) that records
//! every event, so tests wait on conditions with a timeout instead of
//! sleeping.
//!
//! rust_socketio quirks handled here: `connect()` does not wait for the
//! namespace CONNECT, so [`ChatSocket::connect`] waits for it; a refused
//! handshake arrives only as an `error` callback; ack ids are random in
//! 0..999, so this client keeps one ack in flight at a time.

use std::time::Duration;

use futures::FutureExt;
use rust_socketio::{
    asynchronous::{Client, ClientBuilder},
    Event, Payload,
};
use serde_json::Value;
use tokio::sync::{mpsc, Mutex};

/// Default wait for an expected event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// One event received from the server.
#[derive(Debug, Clone)]
pub struct Received {
    /// The event name (`reply`, `notification`, `error`, ...); `client_error`
    /// for errors raised by the client library itself.
    pub name: String,
    /// The first argument, or `Null`.
    pub data: Value,
}

/// How the client authenticates at the handshake.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `Authorization: <token>` header.
    Header(String),
    /// Handshake auth payload `{"token": ...}`.
    Auth(String),
    /// Nothing.
    None,
}

/// A connected `/chats` socket.
pub struct ChatSocket {
    client: Client,
    events: mpsc::UnboundedReceiver<Received>,
    /// Received but not yet matched by an expectation.
    backlog: Vec<Received>,
    ack_lock: Mutex<()>,
}

impl ChatSocket {
    /// Connects with `Authorization: <token>` and waits for the namespace.
    pub async fn connect(base: &str, token: &str) -> Self {
        Self::try_connect(base, Credentials::Header(token.to_owned()))
            .await
            .unwrap_or_else(|refusal| panic!("socket refused: {refusal}"))
    }

    /// Connects and waits for the namespace CONNECT; `Err` carries the
    /// refusal the server sent (e.g. its `connect_error` message).
    pub async fn try_connect(base: &str, credentials: Credentials) -> Result<Self, String> {
        let (sender, mut events) = mpsc::unbounded_channel::<Received>();
        let record = |sender: mpsc::UnboundedSender<Received>, fixed: Option<&'static str>| {
            move |event: Event, payload: Payload, _: Client| {
                let sender = sender.clone();
                async move {
                    let name = fixed.map_or_else(|| event.as_str().to_owned(), str::to_owned);
                    let _ = sender.send(received(name, payload));
                }
                .boxed()
            }
        };
        let on_any = record(sender.clone(), None);
        let on_error = {
            let sender = sender.clone();
            move |payload: Payload, _: Client| {
                let sender = sender.clone();
                async move {
                    let event = received("error".to_owned(), payload);
                    // Errors of the library itself arrive as a bare string;
                    // the server's `error` events carry an object.
                    let event = if event.data.is_string() {
                        Received {
                            name: "client_error".to_owned(),
                            ..event
                        }
                    } else {
                        event
                    };
                    let _ = sender.send(event);
                }
                .boxed()
            }
        };
        let on_connect = {
            let sender = sender.clone();
            move |payload: Payload, _: Client| {
                let sender = sender.clone();
                async move {
                    let _ = sender.send(received("connect".to_owned(), payload));
                }
                .boxed()
            }
        };
        let mut builder = ClientBuilder::new(base)
            .namespace("/chats")
            .reconnect(false)
            .on(Event::Connect, on_connect)
            .on(Event::Error, on_error)
            .on_any(move |event, payload, client| on_any(event, payload, client));
        match &credentials {
            Credentials::Header(token) => {
                builder = builder.opening_header("Authorization", token.as_str())
            }
            Credentials::Auth(token) => {
                builder = builder.auth(serde_json::json!({ "token": token }))
            }
            Credentials::None => {}
        }
        let client = builder
            .connect()
            .await
            .map_err(|error| format!("transport: {error}"))?;
        let mut backlog = Vec::new();
        let outcome = tokio::time::timeout(EVENT_TIMEOUT, async {
            while let Some(event) = events.recv().await {
                match event.name.as_str() {
                    "connect" => return Ok(()),
                    "client_error" => return Err(event.data.to_string()),
                    _ => backlog.push(event),
                }
            }
            Err("event stream closed".to_owned())
        })
        .await
        .unwrap_or_else(|_| Err("no namespace CONNECT within the timeout".to_owned()));
        match outcome {
            Ok(()) => Ok(Self {
                client,
                events,
                backlog,
                ack_lock: Mutex::new(()),
            }),
            Err(refusal) => {
                let _ = client.disconnect().await;
                Err(refusal)
            }
        }
    }

    /// Emits without asking for an ack.
    pub async fn emit(&self, event: &str, data: Value) {
        self.client
            .emit(event, Payload::Text(vec![data]))
            .await
            .expect("emit failed");
    }

    /// Emits a raw payload (any JSON value, or several arguments).
    pub async fn emit_args(&self, event: &str, args: Vec<Value>) {
        self.client
            .emit(event, Payload::Text(args))
            .await
            .expect("emit failed");
    }

    /// Emits and waits for the ack's first argument.
    pub async fn emit_with_ack(&self, event: &str, data: Value) -> Value {
        self.try_emit_with_ack(event, data, EVENT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no ack for {event} within {EVENT_TIMEOUT:?}"))
    }

    /// Emits and waits up to `timeout` for the ack; `None` when none came.
    pub async fn try_emit_with_ack(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> Option<Value> {
        self.emit_with_ack_within(event, data, timeout)
            .await
            .unwrap_or_else(|error| panic!("emit failed: {error}"))
    }

    /// Emits and waits up to `timeout` for the ack: `Ok(None)` when none
    /// came, `Err` when the client could not even send (its connection is
    /// gone). For recording clients, which must not panic half-way.
    pub async fn emit_with_ack_within(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Option<Value>, String> {
        let _one_at_a_time = self.ack_lock.lock().await;
        let (sender, receiver) = tokio::sync::oneshot::channel::<Value>();
        let sender = std::sync::Mutex::new(Some(sender));
        self.client
            .emit_with_ack(
                event,
                Payload::Text(vec![data]),
                timeout,
                move |payload, _| {
                    let sender = sender.lock().unwrap().take();
                    async move {
                        if let Some(sender) = sender {
                            // Acks arrive wrapped in an array of arguments.
                            let data = match received(String::new(), payload).data {
                                Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                                other => other,
                            };
                            let _ = sender.send(data);
                        }
                    }
                    .boxed()
                },
            )
            .await
            .map_err(|error| error.to_string())?;
        Ok(tokio::time::timeout(timeout, receiver)
            .await
            .ok()
            .and_then(Result::ok))
    }

    /// Waits for an event named `name` whose data satisfies `matches`.
    /// Events that do not match stay available to later expectations.
    pub async fn expect_event(&mut self, name: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.try_expect_event(name, &matches, EVENT_TIMEOUT)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no matching {name:?} event within {EVENT_TIMEOUT:?}; received: {:#?}",
                    self.backlog
                )
            })
    }

    /// Like [`Self::expect_event`] with a custom timeout; `None` on timeout.
    pub async fn try_expect_event(
        &mut self,
        name: &str,
        matches: &impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        if let Some(index) = self
            .backlog
            .iter()
            .position(|event| event.name == name && matches(&event.data))
        {
            return Some(self.backlog.remove(index).data);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            if event.name == name && matches(&event.data) {
                return Some(event.data);
            }
            self.backlog.push(event);
        }
    }

    /// Every event received so far that no expectation took, draining the
    /// channel first.
    pub fn unmatched(&mut self) -> &[Received] {
        while let Ok(event) = self.events.try_recv() {
            self.backlog.push(event);
        }
        &self.backlog
    }

    /// The first error the client library itself reported since connect
    /// (a broken or closed transport), if any.
    pub fn transport_error(&mut self) -> Option<String> {
        self.unmatched()
            .iter()
            .find(|event| event.name == "client_error")
            .map(|event| event.data.to_string())
    }

    /// Closes the connection.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

fn received(name: String, payload: Payload) -> Received {
    #[allow(deprecated)]
    let data = match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        Payload::Text(_) => Value::Null,
        Payload::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Payload::Binary(bytes) => Value::String(format!("<{} binary bytes>", bytes.len())),
    };
    Received { name, data }
}
