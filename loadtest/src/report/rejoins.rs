//! The reconnects of `--reconnect` (`LOAD_RECONNECT`) in the summary: how
//! many, what the service replayed, what had to be paged over HTTP, how
//! long a chatter was without a socket, and what counts as a problem.

use serde::Serialize;

use crate::{
    latency::{Kind, Percentiles},
    state::{RejoinCounts, RunState},
};

/// The reconnects: a share of the chatters dropped its socket every few
/// seconds and rejoined with `join {"since"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Rejoins {
    /// The share of chatters that reconnected.
    pub share: f64,
    /// How many reconnects, and what they brought.
    #[serde(flatten)]
    pub counts: RejoinCounts,
    /// Socket dropped → the new one's `join` acknowledged.
    pub drop_to_ack: Percentiles,
    /// How long each message due meanwhile waited for the new socket.
    pub held: Percentiles,
}

impl Rejoins {
    /// The run's reconnects, for `share` of the chatters.
    pub fn build(run: &RunState, share: f64) -> Self {
        Self {
            share,
            counts: run.counters.rejoins.snapshot(),
            drop_to_ack: run.latencies.percentiles(Kind::Rejoin),
            held: run.latencies.percentiles(Kind::HeldForRejoin),
        }
    }

    /// The problems of these reconnects, for a run that sent messages for
    /// `window_s` seconds.
    pub fn problems(&self, window_s: f64) -> Vec<String> {
        problems(&self.counts, window_s)
    }
}

/// What went wrong: a chatter left without a socket fails the run, and so
/// does a run long enough for drops (each reconnecting chatter drops every
/// 2 to 8 s) in which none happened, since it then proved nothing about
/// the catch-up.
fn problems(counts: &RejoinCounts, window_s: f64) -> Vec<String> {
    let mut problems = Vec::new();
    if counts.failed > 0 {
        problems.push(format!(
            "{} chatters could not rejoin after dropping their socket (see the errors named rejoin:...)",
            counts.failed
        ));
    }
    if counts.done == 0 && window_s >= 10.0 {
        problems.push("no chatter reconnected although the reconnect mode was on".to_owned());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_that_all_rejoined_are_no_problem() {
        let counts = RejoinCounts {
            done: 40,
            replayed: 90,
            incomplete: 1,
            paged: 20,
            ..RejoinCounts::default()
        };
        assert!(problems(&counts, 30.0).is_empty());
        // Too short a run to expect a drop.
        assert!(problems(&RejoinCounts::default(), 5.0).is_empty());
    }

    #[test]
    fn a_chatter_left_without_a_socket_is_a_problem() {
        let counts = RejoinCounts {
            done: 40,
            failed: 2,
            ..RejoinCounts::default()
        };
        let problems = problems(&counts, 30.0);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("2 chatters could not rejoin"));
    }

    #[test]
    fn a_long_run_without_a_single_reconnect_is_a_problem() {
        let problems = problems(&RejoinCounts::default(), 30.0);
        assert_eq!(
            problems,
            vec!["no chatter reconnected although the reconnect mode was on"]
        );
    }
}
