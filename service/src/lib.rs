//! chat-service: a real-time chat backend.
//!
//! # Layout
//!
//! - [`config`]: typed settings read once from the environment.
//! - [`telemetry`]: tracing subscriber set-up.
//! - [`domain`]: newtypes that parse input once, at the edge (`Username`,
//!   `RoomId`, `MessageId`, `MessageText`, ...). Handlers trust them.
//! - [`store`]: durable state (accounts, rooms, messages) behind small
//!   traits, with a Cassandra and an in-memory implementation side by side.
//! - [`sessions`]: opaque bearer tokens, in Redis or in memory.
//! - [`http`]: the axum routes under `/api/v1`, health, readiness, metrics.
//! - [`realtime`]: the Socket.IO gateway, namespace `/chats`: handshake
//!   auth, `join` / `leave` / `message`, answers on acks or `error` events.
//! - [`pipeline`]: where a message goes after the gateway accepted it:
//!   publish (Kafka or an in-process channel), consume, store in the
//!   [`store`], fan out to the room's sockets on every instance.
//! - [`limits`]: the message rate and login throttle, shared by every
//!   instance through Redis.
//! - [`startup`]: wiring: [`startup::Application::build`] connects the
//!   backends, applies the schema and binds the port.
//! - [`error`]: the HTTP error type and its NestJS-shaped body.

pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod membership;
pub mod passwords;
pub mod pipeline;
pub mod presence;
pub mod read_state;
pub mod realtime;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod telemetry;
