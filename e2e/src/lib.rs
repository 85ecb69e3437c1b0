//! The end-to-end harness for chat-service: black-box tests against the
//! real `chat-service` binary on real Cassandra, Kafka and Redis (or on its
//! embedded in-memory backends, which must pass the same contract).
//!
//! # Layout
//!
//! - [`stack`]: where the backing services are (the local stack, or
//!   containers from [`docker`]), the per-run names (keyspace, topic
//!   prefix, consumer group, key prefix) that keep runs apart, and
//!   stopping and starting a service for fault tests.
//! - [`server`]: spawns the binary on a free port, waits until it answers,
//!   captures its log and prints it when a test fails.
//! - [`api`]: a typed HTTP client for the contract's routes.
//! - [`socket`]: a Socket.IO client with `expect_event`-style waits.
//! - [`browser`]: headless Chromium sessions through ChromeDriver, with
//!   screenshots of each step kept for a failing test.
//! - [`proxy`]: a TCP proxy a test can cut, as a dropped network does.
//! - [`sentinel`]: a Redis master, its replica and three Sentinels of the
//!   test's own, for failover tests.
//! - [`engine_io`]: a raw engine.io client (websocket and polling), for
//!   frames the Socket.IO client would not send as they are.

pub mod api;
pub mod browser;
pub mod chat;
pub mod docker;
pub mod engine_io;
pub mod pipelined;
pub mod ports;
pub mod proxy;
pub mod sentinel;
pub mod server;
pub mod socket;
pub mod stack;

pub use api::{Api, TestUser};
pub use server::{controls_processes, external_target, Backend, TestServer};
pub use socket::ChatSocket;

/// A username no other test (or run) will pick.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}
