//! The nemesis: breaks a backend and heals it, on a schedule the scenario
//! writes out, noting each step on the scenario's clock. It knows nothing
//! of clients or verdicts.

use e2e::stack::{Service, Stack};

use crate::history::{Clock, FaultLog};

/// How a backend is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL: a crash. Healed by starting it again.
    Kill,
    /// A clean stop (SIGTERM). Healed by starting it again.
    Stop,
    /// SIGSTOP: connections stay open, nothing answers. Healed by SIGCONT.
    Pause,
}

/// A backend that is broken now. Dropping it heals the backend (blocking),
/// so a failing scenario never leaves the stack broken for the next one;
/// [`Broken::heal`] is the orderly way.
pub struct Broken {
    service: Service,
    fault: Fault,
    healed: bool,
}

impl Broken {
    /// Breaks `service` with `fault` and notes it in `log`.
    pub async fn inject(service: Service, fault: Fault, clock: Clock, log: &mut FaultLog) -> Self {
        log.note(clock.now(), format!("{fault:?} {} begins", service.name()));
        blocking(move || match fault {
            Fault::Kill => Stack::get().kill(service),
            Fault::Stop => Stack::get().stop(service),
            Fault::Pause => Stack::get().pause(service),
        })
        .await;
        log.note(clock.now(), format!("{fault:?} {} done", service.name()));
        Self {
            service,
            fault,
            healed: false,
        }
    }

    /// Keeps the backend broken until `end` (at once if it has passed):
    /// the one deliberate sleep of a scenario, the outage itself.
    pub async fn hold_until(&self, end: tokio::time::Instant) {
        tokio::time::sleep_until(end).await;
    }

    /// Brings the backend back (starts it, or continues it) and returns
    /// once it answers.
    pub async fn heal(mut self, clock: Clock, log: &mut FaultLog) {
        let (service, fault) = (self.service, self.fault);
        log.note(clock.now(), format!("healing {}", service.name()));
        blocking(move || heal(service, fault)).await;
        self.healed = true;
        log.note(clock.now(), format!("{} answers again", service.name()));
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        if !self.healed {
            heal(self.service, self.fault);
        }
    }
}

fn heal(service: Service, fault: Fault) {
    match fault {
        Fault::Kill | Fault::Stop => Stack::get().start(service),
        Fault::Pause => Stack::get().resume(service),
    }
}

/// Runs a stack verb off the async workers: a restart takes seconds, and
/// the clients must keep running meanwhile.
async fn blocking(verb: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(verb)
        .await
        .expect("the stack verb panicked");
}
