//! A raw engine.io v4 client for `/chats`, for frames a Socket.IO client
//! library would not send as they are: a websocket that writes the wire
//! format by hand, and polling requests one at a time.
//!
//! The wire format, in short: the server opens with `0{"sid", ...,
//! "maxPayload"}`; `40/chats,{auth}` joins the namespace and `40/chats,{"sid"}`
//! answers it; `42/chats,<ack id>["event",payload]` emits an event and
//! `43/chats,<ack id>[answer]` acks it; `2` and `3` are ping and pong.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{net::TcpStream, time::Instant};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

use crate::socket::EVENT_TIMEOUT;

/// The namespace CONNECT a client sends, with its token in the auth payload.
fn connect_packet(token: &str) -> String {
    format!("40/chats,{}", json!({ "token": token }))
}

/// A websocket to `/socket.io/`, joined to `/chats`, that sends and reads
/// text frames as they are.
pub struct RawWebSocket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ack: u64,
}

impl RawWebSocket {
    /// Opens a websocket (straight away, without polling first), joins
    /// `/chats` with `token` and waits for the namespace CONNECT.
    pub async fn connect(base: &str, token: &str) -> Self {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.replacen("http", "ws", 1)
        );
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        let mut socket = Self {
            stream,
            next_ack: 1,
        };
        let open = socket.expect_packet(|packet| packet.starts_with('0')).await;
        assert!(open.contains("\"sid\""), "engine.io open packet: {open}");
        socket
            .send_frame(connect_packet(token))
            .await
            .expect("send CONNECT");
        socket
            .expect_packet(|packet| packet.starts_with("40/chats,"))
            .await;
        socket
    }

    /// Sends one text frame as it is; `Err` when the connection is gone.
    pub async fn send_frame(&mut self, frame: String) -> Result<(), String> {
        self.stream
            .send(Message::text(frame))
            .await
            .map_err(|error| error.to_string())
    }

    /// Emits `event` with `payload` (JSON text, sent unchanged) and waits for
    /// the ack's first argument.
    pub async fn emit_with_ack(&mut self, event: &str, payload: &str) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send_frame(format!(r#"42/chats,{id}["{event}",{payload}]"#))
            .await
            .expect("emit failed");
        let prefix = format!("43/chats,{id}");
        let ack = self
            .expect_packet(|packet| packet.starts_with(&prefix))
            .await;
        let args: Value = serde_json::from_str(&ack[prefix.len()..]).expect("ack is JSON");
        args[0].clone()
    }

    /// Reads until `deadline`, answering pings, as an idle client does;
    /// false when the server closed the connection first.
    pub async fn idle_until(&mut self, deadline: Instant) -> bool {
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return true,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return false,
                Ok(Some(Ok(Message::Text(packet)))) if packet.as_str() == "2" => {
                    if self.send_frame("3".to_owned()).await.is_err() {
                        return false;
                    }
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Whether the server closes the connection within `timeout` (a close
    /// frame, the end of the stream or a reset all count). Whatever arrives
    /// before is skipped.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Reads engine.io packets until one satisfies `wanted`, answering pings
    /// on the way; panics after [`EVENT_TIMEOUT`] or when the connection ends.
    async fn expect_packet(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no awaited packet within {EVENT_TIMEOUT:?}"))
                .expect("the server closed the websocket")
                .expect("websocket error");
            let Message::Text(packet) = message else {
                continue;
            };
            if packet.as_str() == "2" {
                self.send_frame("3".to_owned()).await.expect("pong");
            } else if wanted(packet.as_str()) {
                return packet.as_str().to_owned();
            }
        }
    }
}

/// An engine.io session on the polling transport, joined to `/chats`.
pub struct PollingSession {
    client: reqwest::Client,
    url: String,
    /// The largest request body the server announced in its handshake.
    pub max_payload: u64,
    /// A ping came and was answered.
    pinged: AtomicBool,
}

impl PollingSession {
    /// Opens a session, joins `/chats` with `token` and reads the server's
    /// namespace CONNECT.
    pub async fn open(base: &str, token: &str) -> Self {
        // A connection per request: the server drops the connection of a
        // refused POST, and a pooled one could be reused after that.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        let handshake = client
            .get(format!("{base}/socket.io/?EIO=4&transport=polling"))
            .send()
            .await
            .expect("polling handshake")
            .text()
            .await
            .expect("handshake body");
        let open: Value = serde_json::from_str(handshake.strip_prefix('0').unwrap_or_default())
            .unwrap_or_else(|_| panic!("engine.io open packet: {handshake}"));
        let session = Self {
            client,
            url: format!(
                "{base}/socket.io/?EIO=4&transport=polling&sid={}",
                open["sid"].as_str().expect("sid")
            ),
            max_payload: open["maxPayload"].as_u64().expect("maxPayload"),
            pinged: AtomicBool::new(false),
        };
        let posted = session.post(connect_packet(token)).await;
        assert_eq!(posted, Ok(200), "namespace CONNECT");
        session
            .expect_packet(|packet| packet.starts_with("40/chats,"))
            .await;
        session
    }

    /// Returns once the server's first ping came and was answered. This
    /// server pings as soon as a session opens, then every 25 s, and
    /// closes a session whose buffer is full when it pings: a test that
    /// lets the buffer fill calls this first, or on a busy machine the
    /// first ping can find the buffer filled and the session closes.
    pub async fn answer_first_ping(&self) {
        if !self.pinged.load(Ordering::SeqCst) {
            self.expect_packet(|packet| packet == "2").await;
        }
    }

    /// Polls until a packet satisfies `wanted`, answering pings on the way;
    /// panics after [`EVENT_TIMEOUT`].
    async fn expect_packet(&self, wanted: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while Instant::now() < deadline {
            let (status, body) = self.poll().await.expect("poll");
            assert_eq!(status, 200, "poll answered {status}: {body}");
            // One answer may carry several packets.
            let packets: Vec<&str> = body.split('\u{1e}').collect();
            if packets.contains(&"2") {
                assert_eq!(self.post("3".to_owned()).await, Ok(200), "pong");
                self.pinged.store(true, Ordering::SeqCst);
            }
            if packets.iter().any(|packet| wanted(packet)) {
                return;
            }
        }
        panic!("no awaited packet within {EVENT_TIMEOUT:?}");
    }

    /// POSTs `body` (one or more packets) and returns the status; `Err`
    /// when the server cut the connection before answering.
    pub async fn post(&self, body: String) -> Result<u16, String> {
        self.client
            .post(&self.url)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body)
            .send()
            .await
            .map(|answer| answer.status().as_u16())
            .map_err(|error| error.to_string())
    }

    /// One GET: the status and body the server answers with, or `Err` when
    /// it does not answer within 5 s (a live session with nothing to send
    /// holds the request open).
    pub async fn poll(&self) -> Result<(u16, String), String> {
        let answer = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = answer.status().as_u16();
        let body = answer.text().await.map_err(|error| error.to_string())?;
        Ok((status, body))
    }
}
