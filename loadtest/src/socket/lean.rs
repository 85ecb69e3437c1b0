//! This tool's own minimal Socket.IO client: Engine.IO v4 over one
//! WebSocket (no long polling, no binary packets), the `/chats` namespace,
//! and ack ids it numbers itself, so any number of acks can be in flight on
//! one socket and each reaches its own message. The pipelined mode
//! (`LOAD_PIPELINE` above 1) runs on it.
//!
//! A writer task owns the sending half (emits queue up without waiting and
//! leave in order, batched into one flush), a reader task the receiving
//! half: it answers the server's pings, stamps and forwards events and
//! acks, and says [`Inbound::Closed`] when the connection ends.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use serde_json::Value;
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_tungstenite::{
    connect_async_with_config,
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    MaybeTlsStream, WebSocketStream,
};

use super::{
    packet::{self, Engine, Packet, NAMESPACE, PONG},
    send, Inbound, Received, SocketError, Tag,
};
use crate::{clock, latency::lock};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who waits for an ack.
enum Waiter {
    /// A tracked emit: the ack goes to the event channel with this tag.
    Tagged(Tag),
    /// A request: the ack's data goes here.
    Reply(oneshot::Sender<Value>),
}

/// The acks awaited, by the id their emit carried.
#[derive(Default)]
struct Waiting {
    next_id: u64,
    by_id: HashMap<u64, Waiter>,
}

impl Waiting {
    fn add(&mut self, waiter: Waiter) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_id.insert(id, waiter);
        id
    }
}

/// A connected `/chats` socket on this tool's own client.
pub struct LeanSocket {
    outgoing: mpsc::UnboundedSender<Message>,
    waiting: Arc<Mutex<Waiting>>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl LeanSocket {
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
        let mut request = websocket_url(base)?
            .into_client_request()
            .map_err(transport)?;
        let token = HeaderValue::from_str(token).map_err(transport)?;
        request.headers_mut().insert("Authorization", token);
        let socket = tokio::time::timeout(timeout, handshake(request))
            .await
            .map_err(|_| SocketError::Timeout)??;
        let (sink, stream) = socket.split();
        let (outgoing, queue) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write(sink, queue));
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let reader = tokio::spawn(read(
            stream,
            outgoing.clone(),
            waiting.clone(),
            events,
            connection,
        ));
        Ok(Self {
            outgoing,
            waiting,
            reader,
            writer,
        })
    }

    /// Emits and waits up to `timeout` for the ack's first argument.
    pub async fn request(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Value, SocketError> {
        let (sender, receiver) = oneshot::channel();
        let id = self.emit(event, &data, Waiter::Reply(sender))?;
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(ack)) => Ok(ack),
            _ => {
                lock(&self.waiting).by_id.remove(&id);
                Err(SocketError::Timeout)
            }
        }
    }

    /// Emits asking for an ack, which arrives on the event channel as
    /// [`Inbound::Ack`] with `tag`, however late. Does not wait: the emit
    /// leaves with the writer's next flush, after every earlier one.
    pub fn emit_tracked(&self, event: &str, data: Value, tag: Tag) -> Result<(), SocketError> {
        self.emit(event, &data, Waiter::Tagged(tag)).map(|_| ())
    }

    fn emit(&self, event: &str, data: &Value, waiter: Waiter) -> Result<u64, SocketError> {
        let id = lock(&self.waiting).add(waiter);
        let frame = packet::event(NAMESPACE, id, event, data);
        if self.outgoing.send(Message::text(frame)).is_err() {
            lock(&self.waiting).by_id.remove(&id);
            return Err(SocketError::Emit("the connection is closed".to_owned()));
        }
        Ok(id)
    }

    /// Leaves the namespace and closes the connection.
    pub fn disconnect(&self) {
        let _ = self
            .outgoing
            .send(Message::text(packet::disconnect(NAMESPACE)));
        let _ = self.outgoing.send(Message::Close(None));
    }
}

impl LeanSocket {
    /// Drops the connection without a word, as a phone losing the network
    /// would: no Socket.IO disconnect, no WebSocket close frame; the TCP
    /// connection just goes. Nothing more arrives from it.
    pub fn cut(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Drop for LeanSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The Engine.IO handshake, then the namespace's.
async fn handshake(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<Socket, SocketError> {
    // No Nagle: small frames, and their latency is what is measured.
    let (mut socket, _) = connect_async_with_config(request, None, true)
        .await
        .map_err(transport)?;
    loop {
        if let Engine::Open(_) = packet::engine(&next_text(&mut socket).await?) {
            break;
        }
    }
    socket
        .send(Message::text(packet::connect(NAMESPACE)))
        .await
        .map_err(transport)?;
    loop {
        let text = next_text(&mut socket).await?;
        match packet::engine(&text) {
            Engine::Ping => socket.send(Message::text(PONG)).await.map_err(transport)?,
            Engine::Close => return Err(SocketError::Refused("connection closed".to_owned())),
            Engine::Message(data) => match packet::parse(data) {
                Some((NAMESPACE, Packet::Connect(_))) => return Ok(socket),
                Some((NAMESPACE, Packet::ConnectError(error))) => {
                    let reason = error["message"]
                        .as_str()
                        .map_or_else(|| error.to_string(), str::to_owned);
                    return Err(SocketError::Refused(reason));
                }
                _ => {}
            },
            Engine::Open(_) | Engine::Other => {}
        }
    }
}

/// The next text frame during the handshake.
async fn next_text(socket: &mut Socket) -> Result<String, SocketError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None => {
                return Err(SocketError::Refused("connection dropped".to_owned()))
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(transport(error)),
        }
    }
}

/// Sends what is queued, in order, one flush per batch; closes the
/// connection after a close frame or when the socket is dropped.
async fn write(mut sink: SplitSink<Socket, Message>, mut queue: mpsc::UnboundedReceiver<Message>) {
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let closing = matches!(message, Message::Close(_));
            if sink.feed(message).await.is_err() {
                return;
            }
            if closing {
                let _ = sink.close().await;
                return;
            }
            next = queue.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

/// Reads until the connection ends, answering pings and handing events and
/// acks to the chatter.
async fn read(
    mut stream: SplitStream<Socket>,
    outgoing: mpsc::UnboundedSender<Message>,
    waiting: Arc<Mutex<Waiting>>,
    events: mpsc::UnboundedSender<Received>,
    connection: u32,
) {
    while let Some(frame) = stream.next().await {
        let at_us = clock::now_micros();
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(error) => {
                send(
                    &events,
                    at_us,
                    connection,
                    Inbound::ClientError(error.to_string()),
                );
                break;
            }
        };
        let inbound = match packet::engine(text.as_str()) {
            Engine::Ping => {
                let _ = outgoing.send(Message::text(PONG));
                continue;
            }
            Engine::Close => break,
            Engine::Message(data) => match packet::parse(data) {
                Some((NAMESPACE, packet)) => match packet {
                    Packet::Disconnect => break,
                    Packet::Ack { id, data } => {
                        let waiter = lock(&waiting).by_id.remove(&id);
                        match waiter {
                            Some(Waiter::Tagged(tag)) => Some(Inbound::Ack { tag, data }),
                            Some(Waiter::Reply(reply)) => {
                                let _ = reply.send(data);
                                None
                            }
                            None => None,
                        }
                    }
                    Packet::Event { name, data } => match name.as_str() {
                        "reply" => Some(Inbound::Reply(data)),
                        "notification" => Some(Inbound::Notification(data)),
                        "error" => Some(Inbound::ServerError(data)),
                        _ => None,
                    },
                    Packet::Connect(_) | Packet::ConnectError(_) | Packet::Unsupported(_) => None,
                },
                Some(_) => None,
                None => Some(Inbound::ClientError(format!(
                    "malformed packet: {}",
                    data.chars().take(60).collect::<String>()
                ))),
            },
            Engine::Open(_) | Engine::Other => None,
        };
        if let Some(inbound) = inbound {
            send(&events, at_us, connection, inbound);
        }
    }
    send(&events, clock::now_micros(), connection, Inbound::Closed);
}

/// `http://host:port` → the Engine.IO WebSocket URL. Plain `ws://` only:
/// the targets are local.
fn websocket_url(base: &str) -> Result<String, SocketError> {
    let base = base.trim_end_matches('/');
    let host = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("ws://"))
        .ok_or_else(|| {
            SocketError::Transport(format!(
                "{base}: the pipelined client speaks plain http:// (ws://) only"
            ))
        })?;
    Ok(format!("ws://{host}/socket.io/?EIO=4&transport=websocket"))
}

fn transport(error: impl std::fmt::Display) -> SocketError {
    SocketError::Transport(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_url_is_the_engine_io_endpoint_of_the_base() {
        assert_eq!(
            websocket_url("http://127.0.0.1:3400/").unwrap(),
            "ws://127.0.0.1:3400/socket.io/?EIO=4&transport=websocket"
        );
        assert!(websocket_url("https://example.com").is_err());
    }

    #[test]
    fn ack_ids_count_up_so_no_two_in_flight_share_one() {
        let mut waiting = Waiting::default();
        let first = waiting.add(Waiter::Tagged(Tag::Message(7)));
        let second = waiting.add(Waiter::Tagged(Tag::Read(7)));
        assert_ne!(first, second);
        assert!(matches!(
            waiting.by_id.get(&second),
            Some(Waiter::Tagged(Tag::Read(7)))
        ));
    }
}
