//! The chatters' Socket.IO clients for `/chats`.
//!
//! Every event is stamped with the process clock as it arrives and handed to
//! the chatter through a channel: the callbacks cannot reach goose's
//! `&mut GooseUser`, and a timestamp taken on arrival does not wait for the
//! chatter to get round to it.
//!
//! Two clients sit behind [`ChatSocket`]:
//! - [`library`], on rust_socketio: one ack in flight per socket (the
//!   default, and the chaos mode);
//! - [`lean`], this tool's own minimal Engine.IO/Socket.IO client over one
//!   WebSocket, which numbers its acks itself so that many can be in flight
//!   (`LOAD_PIPELINE` above 1).

mod lean;
mod library;
pub mod packet;

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use self::{lean::LeanSocket, library::LibrarySocket};

/// An event from the server, or from the client library.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A `reply`: a message of the room.
    Reply(Value),
    /// A `notification` (`sent` or `inbox`).
    Notification(Value),
    /// The server's `error` event.
    ServerError(Value),
    /// The ack of an emit made with [`ChatSocket::emit_tracked`].
    Ack {
        /// The tag given to `emit_tracked`.
        tag: Tag,
        /// The ack's first argument.
        data: Value,
    },
    /// The connection closed.
    Closed,
    /// The client library reported an error (transport failure and such).
    ClientError(String),
    /// Messages of the room read over HTTP after a reconnect, oldest first
    /// (see [`crate::chaos::recovery`]).
    History(Vec<Value>),
}

/// What a tracked emit was, so its ack finds its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A `message`, by the chatter's sequence number.
    Message(u64),
    /// A `read`, by the chatter's count of reads sent.
    Read(u64),
}

/// An [`Inbound`] event, when it arrived (process clock, µs) and on which
/// of the chatter's connections.
#[derive(Debug, Clone)]
pub struct Received {
    /// Arrival time, see [`crate::clock`].
    pub at_us: u64,
    /// The connection it came from: 0 for the first, counting up with each
    /// reconnect, so a late `Closed` of a replaced socket is recognised.
    pub connection: u32,
    /// The event.
    pub event: Inbound,
}

/// Why a socket operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The transport could not be opened.
    #[error("transport: {0}")]
    Transport(String),
    /// The server refused the namespace connection.
    #[error("refused: {0}")]
    Refused(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Sending failed.
    #[error("emit: {0}")]
    Emit(String),
}

/// Which client a socket runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// rust_socketio: one ack in flight at a time.
    RustSocketio,
    /// This tool's own client: any number of acks in flight.
    Lean,
}

impl Client {
    /// The client for `pipeline` acks in flight per socket.
    pub fn for_pipeline(pipeline: usize) -> Self {
        if pipeline > 1 {
            Client::Lean
        } else {
            Client::RustSocketio
        }
    }
}

/// A connected `/chats` socket.
pub enum ChatSocket {
    /// On rust_socketio.
    Library(LibrarySocket),
    /// On this tool's own client.
    Lean(LeanSocket),
}

impl ChatSocket {
    /// Opens a WebSocket to `base` with `Authorization: <token>` on
    /// `client`, joins the `/chats` namespace and waits up to `timeout` for
    /// the server to accept it. Events from then on go to `events`, marked
    /// with `connection`.
    pub async fn connect(
        client: Client,
        base: &str,
        token: &str,
        events: mpsc::UnboundedSender<Received>,
        connection: u32,
        timeout: Duration,
    ) -> Result<Self, SocketError> {
        Ok(match client {
            Client::RustSocketio => Self::Library(
                LibrarySocket::connect(base, token, events, connection, timeout).await?,
            ),
            Client::Lean => {
                Self::Lean(LeanSocket::connect(base, token, events, connection, timeout).await?)
            }
        })
    }

    /// Emits and waits up to `timeout` for the ack's first argument. On
    /// rust_socketio the caller must have no other ack in flight.
    pub async fn request(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> Result<Value, SocketError> {
        match self {
            Self::Library(socket) => socket.request(event, data, timeout).await,
            Self::Lean(socket) => socket.request(event, data, timeout).await,
        }
    }

    /// Emits asking for an ack, which arrives later on the event channel as
    /// [`Inbound::Ack`] with `tag`. On rust_socketio the caller keeps one
    /// ack in flight (of any event: so no `read` beside a `message`) and an
    /// ack after `timeout` never comes; the lean client takes any number and
    /// hands over late acks too.
    pub async fn emit_tracked(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
        tag: Tag,
    ) -> Result<(), SocketError> {
        match self {
            Self::Library(socket) => socket.emit_tracked(event, data, timeout, tag).await,
            Self::Lean(socket) => socket.emit_tracked(event, data, tag),
        }
    }

    /// Drops the connection as a phone losing the network would. The lean
    /// client just lets the TCP connection go (no goodbye); rust_socketio
    /// has no way to, and disconnects as usual.
    pub async fn cut(&self) {
        match self {
            Self::Library(socket) => socket.disconnect().await,
            Self::Lean(socket) => socket.cut(),
        }
    }

    /// Closes the connection.
    pub async fn disconnect(&self) {
        match self {
            Self::Library(socket) => socket.disconnect().await,
            Self::Lean(socket) => socket.disconnect(),
        }
    }
}

/// Hands an event to the chatter.
pub fn send(events: &mpsc::UnboundedSender<Received>, at_us: u64, connection: u32, event: Inbound) {
    // A chatter that has finished drops its receiver; late events are moot.
    let _ = events.send(Received {
        at_us,
        connection,
        event,
    });
}

/// The first argument of an event or ack (acks arrive as an array of
/// arguments).
fn first_of(value: Value) -> Value {
    match value {
        Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
        other => other,
    }
}
