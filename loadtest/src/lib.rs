//! Load tool for chat-service: thousands of chatters in pairs (or in group
//! rooms of `--room-size`), each on its own Socket.IO connection, sending at
//! a fixed total rate, with fan-out (to every recipient, and to each
//! message's first and last) and ack latencies measured from the scheduled
//! send time and every delivery accounted for.
//!
//! # Layout
//!
//! - [`config`]: goose's command line plus the `LOAD_*` variables.
//! - [`run`]: one run from start to verdict.
//! - [`plan`]: the total rate over time (fixed, or rising in steps) and
//!   when each chatter's messages are due.
//! - [`chatter`]: the goose scenario (setup, then the conversation, with
//!   the reconnect mode's drops and rejoins, `--reconnect`);
//!   [`conversation`] is a chatter's send/receive logic (and marking its
//!   room read, `--mark-read`), [`http`] its HTTP
//!   calls, [`socket`] the Socket.IO clients (rust_socketio, and this
//!   tool's own for the pipelined mode), [`payload`] the text that carries
//!   the sequence number and send time.
//! - [`coord`]: who shares a room with whom, the group rooms made, and the
//!   common start; [`state`]: what the chatters share.
//! - [`ledger`]: counting sent/accepted, and per recipient delivered/lost/
//!   duplicated/out of order; [`latency`]: HDR histograms; [`clock`]: the
//!   one monotonic clock.
//! - [`prometheus`]: the service's `/metrics` and percentiles from bucket
//!   deltas; [`procstat`] and [`sampler`]: CPU and memory from `/proc`.
//! - [`report`]: `summary.json`, `latency.svg` and the terminal table.
//! - [`chaos`]: the chaos mode: a nemesis killing backends and instances,
//!   and the per-fault checker; [`history`]: what the chaos mode records,
//!   every send and how it ended, and each fault's window.
//! - [`capacity`]: the capacity mode: the rate steps up until the service
//!   stops keeping up; per-step accounting, the rules, the curve.

pub mod capacity;
pub mod chaos;
pub mod chatter;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod coord;
pub mod history;
pub mod http;
pub mod latency;
pub mod ledger;
pub mod payload;
pub mod plan;
pub mod procstat;
pub mod prometheus;
pub mod report;
pub mod run;
pub mod sampler;
pub mod socket;
pub mod state;
