//! Waiting out a backend that does not answer.
//!
//! A backend outage is not the message's fault: the consumer keeps the
//! message, waits with back-off and tries the same step again, without
//! spending one of the message's store attempts, until the backend answers
//! or the service stops. Only a failure while the backend answers other
//! requests counts as an attempt (see [`super::process`]).

use std::time::Duration;

use tokio::{sync::watch, time::Instant};

/// First pause after a failed step.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// How often a continuing outage is logged again.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The service is stopping; the message stays unconsumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping;

/// One step's wait for one backend, with back-off.
pub struct Outage<'a> {
    backend: &'static str,
    stop: &'a watch::Receiver<bool>,
    pause: Duration,
    since: Option<Instant>,
    logged_at: Option<Instant>,
    stopped: bool,
}

impl<'a> Outage<'a> {
    /// A wait for `backend` that ends early when `stop` fires.
    pub fn new(backend: &'static str, stop: &'a watch::Receiver<bool>) -> Self {
        Self {
            backend,
            stop,
            pause: FIRST_PAUSE,
            since: None,
            logged_at: None,
            stopped: false,
        }
    }

    /// Sleeps before the next try; `Err(Stopping)` when the service stops.
    pub async fn wait(&mut self, cause: &(dyn std::fmt::Display + Sync)) -> Result<(), Stopping> {
        let now = Instant::now();
        let since = *self.since.get_or_insert_with(|| {
            metrics::gauge!("pipeline_waiting", "backend" => self.backend).increment(1.0);
            now
        });
        if self.logged_at.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                backend = self.backend,
                waited_ms = since.elapsed().as_millis() as u64,
                %cause,
                "backend unavailable; holding the message until it answers"
            );
            self.logged_at = Some(now);
        }
        let mut stop = self.stop.clone();
        let stopped = *stop.borrow_and_update()
            || tokio::select! {
                () = tokio::time::sleep(self.pause) => false,
                _ = stop.changed() => true,
            };
        if stopped {
            self.stopped = true;
            return Err(Stopping);
        }
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Ok(())
    }
}

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            metrics::gauge!("pipeline_waiting", "backend" => self.backend).decrement(1.0);
            metrics::counter!("pipeline_outage_waits_total", "backend" => self.backend)
                .increment(1);
            if self.stopped {
                return;
            }
            tracing::info!(
                backend = self.backend,
                waited_ms = since.elapsed().as_millis() as u64,
                "backend answers again; message resumed"
            );
        }
    }
}
