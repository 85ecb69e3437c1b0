//! Fault scenarios with real processes: a backend killed, stopped or
//! paused, then healed, under a running two-instance service while
//! clients keep sending. They share one stack, so they run one at a time
//! (a process-wide lock) and in a test binary of their own, which cargo
//! never runs beside the main suite.
//!
//! # Layout
//!
//! Jepsen's three parts, kept apart:
//! - [`nemesis`]: the fault schedule (kill, stop, pause; start, resume).
//! - [`client`]: the recording clients: lanes of chatters, paced senders
//!   that record every message's outcome, watchers that record every
//!   `reply` on sockets connected before the fault, on both instances.
//!   [`history`] holds what they record.
//! - [`checker`]: the verdict read from the history afterwards (lost,
//!   duplicated, reordered, unexpected, silent).
//!
//! [`deployment`] starts the two instances; [`scenario`] is the flow most
//! scenarios share. The scenarios are one module per backend, plus the
//! poison message, an instance crash, instances coming and going
//! ([`scaling`]), and a Sentinel failover of a Redis of the test's own
//! ([`redis_failover`]); [`replicated`] kills one node of a replicated
//! backend (`E2E_TOPOLOGY=replicated`), where clients should notice nothing.

mod checker;
mod client;
mod deployment;
mod history;
mod nemesis;
mod pipelining;
mod recorder;
mod scenario;

mod adapter_gap;
mod cassandra_faults;
mod group_crash;
mod instance_crash;
mod kafka_faults;
mod poison;
mod redis_failover;
mod redis_faults;
mod replicated;
mod scaling;

use e2e::stack::{Stack, Topology};
use tokio::sync::{Mutex, MutexGuard};

/// Whether this scenario can run here: it starts its own processes and
/// breaks backends of `topology` (`E2E_TOPOLOGY`), so it skips on the
/// other topology and against an external target.
pub fn on_topology(topology: Topology) -> bool {
    if !e2e::controls_processes() {
        return false;
    }
    let here = Stack::get().topology;
    if here != topology {
        eprintln!("skipped: a scenario of the {topology:?} topology, and the stack is {here:?} (E2E_TOPOLOGY)");
        return false;
    }
    true
}

/// One fault at a time: they share the stack.
static STACK_LOCK: Mutex<()> = Mutex::const_new(());

/// Holds the stack for one scenario.
pub async fn one_at_a_time() -> MutexGuard<'static, ()> {
    STACK_LOCK.lock().await
}
