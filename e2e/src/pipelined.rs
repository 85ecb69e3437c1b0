//! A `/chats` socket that keeps several acks in flight, as a pipelining
//! client does: it emits the next message without waiting for the
//! previous answer, and the answers come back in order.
//!
//! rust_socketio picks ack ids at random in 0..999 and hands a colliding
//! ack to both waiters, so [`crate::ChatSocket`] keeps one ack in flight.
//! This socket writes the engine.io wire format itself (see
//! [`crate::engine_io`]) with ack ids counted up, and a reader task routes
//! each ack to its message, stamped with the time it arrived.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{stream::SplitSink, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{
    net::TcpStream,
    sync::{oneshot, Mutex as AsyncMutex},
    time::Instant,
};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// An ack's first argument and when it arrived.
pub type Answer = (Value, Instant);

/// The acks still awaited, by id; `None` once the connection is gone.
type Awaited = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Answer>>>>>;

/// A socket joined to `/chats` that pipelines.
pub struct PipelinedSocket {
    sink: Arc<AsyncMutex<Sink>>,
    awaited: Awaited,
    next_ack: u64,
}

impl PipelinedSocket {
    /// Opens a websocket to `base`, joins `/chats` with `token`, and waits
    /// for the namespace CONNECT.
    pub async fn connect(base: &str, token: &str) -> Result<Self, String> {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.replacen("http", "ws", 1)
        );
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|error| error.to_string())?;
        let (sink, mut stream) = stream.split();
        let sink = Arc::new(AsyncMutex::new(sink));
        let connect = format!("40/chats,{}", json!({ "token": token }));
        sink.lock()
            .await
            .send(Message::text(connect))
            .await
            .map_err(|error| error.to_string())?;
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(packet))) if packet.starts_with("40/chats,") => break,
                Some(Ok(Message::Text(packet))) if packet.starts_with("44/chats,") => {
                    return Err(format!("refused: {packet}"));
                }
                // The server pings at once: a ping unanswered ends the
                // connection 20 s later.
                Some(Ok(Message::Text(packet))) if packet.as_str() == "2" => {
                    sink.lock()
                        .await
                        .send(Message::text("3"))
                        .await
                        .map_err(|error| error.to_string())?;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.to_string()),
                None => return Err("closed before the namespace CONNECT".to_owned()),
            }
        }
        let awaited: Awaited = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(read(stream, sink.clone(), awaited.clone()));
        Ok(Self {
            sink,
            awaited,
            next_ack: 1,
        })
    }

    /// Emits `event` with `data` and returns at once: the answer arrives on
    /// the receiver, which fails when the connection ends first. `Err` when
    /// the connection is already gone.
    pub async fn emit(
        &mut self,
        event: &str,
        data: &Value,
    ) -> Result<oneshot::Receiver<Answer>, String> {
        let id = self.next_ack;
        self.next_ack += 1;
        let (sender, receiver) = oneshot::channel();
        match self.awaited.lock().unwrap().as_mut() {
            Some(awaited) => awaited.insert(id, sender),
            None => return Err("the connection is gone".to_owned()),
        };
        let frame = format!("42/chats,{id}{}", json!([event, data]));
        self.sink
            .lock()
            .await
            .send(Message::text(frame))
            .await
            .map_err(|error| error.to_string())?;
        Ok(receiver)
    }

    /// Closes the websocket.
    pub async fn close(self) {
        let _ = self.sink.lock().await.close().await;
    }
}

/// Routes acks to their messages and answers pings, until the connection
/// ends; then every awaited ack fails.
async fn read(
    mut stream: futures::stream::SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    sink: Arc<AsyncMutex<Sink>>,
    awaited: Awaited,
) {
    while let Some(Ok(message)) = stream.next().await {
        let arrived = Instant::now();
        let Message::Text(packet) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        if packet.as_str() == "2" {
            if sink.lock().await.send(Message::text("3")).await.is_err() {
                break;
            }
            continue;
        }
        let Some(rest) = packet.strip_prefix("43/chats,") else {
            continue;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (Ok(id), Ok(args)) = (
            rest[..digits].parse::<u64>(),
            serde_json::from_str::<Value>(&rest[digits..]),
        ) else {
            continue;
        };
        let sender = awaited
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|awaited| awaited.remove(&id));
        if let Some(sender) = sender {
            let _ = sender.send((args[0].clone(), arrived));
        }
    }
    // Dropping the senders fails every receiver still waiting.
    awaited.lock().unwrap().take();
}
