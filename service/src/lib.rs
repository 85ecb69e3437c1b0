//! chat-service: a real-time chat backend.
//!
//! # Layout
//!
//! The modules form layers; each imports only from those below it. From
//! the top (the README's "A map of the code" follows a message through
//! them):
//!
//! - [`startup`]: wiring: [`startup::Application::build`] connects the
//!   backends, applies the schema and binds the port.
//! - [`http`] and [`realtime`]: the edge. The axum routes under `/api/v1`,
//!   health, readiness and metrics; the Socket.IO gateway, namespace
//!   `/chats`. Each maps the errors of the layers below to its own shape.
//! - [`read_state`], [`presence`], [`membership`], [`limits`]: the rules
//!   of read markers, who is online, who is in which room, and abuse limits.
//! - [`sessions`] and [`pipeline`]: login sessions and the ending of their
//!   sockets; where a message goes after the gateway accepted it: publish
//!   (Kafka or an in-process channel), consume, store, fan out.
//! - [`fanout`], [`store`], [`passwords`]: the emitting interface the
//!   layers above use; durable state behind small traits, Cassandra and
//!   in memory side by side; argon2id.
//! - [`domain`], [`redis_link`], [`config`], [`locks`], [`telemetry`]: the
//!   ground. Types that parse input once, at the edge; the connection to
//!   the Redis master, which follows it through a Sentinel failover;
//!   settings read once from the environment; poison-tolerant locks; logs
//!   and metrics.

pub mod config;
pub mod domain;
pub mod fanout;
pub mod http;
pub mod limits;
pub mod locks;
pub mod membership;
pub mod passwords;
pub mod pipeline;
pub mod presence;
pub mod read_state;
pub mod realtime;
pub mod redis_link;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod telemetry;
