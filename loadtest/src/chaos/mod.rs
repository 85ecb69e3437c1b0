//! The chaos mode (`LOAD_CHAOS=1`): load runs while a nemesis kills each
//! backend in turn (and a service instance) with SIGKILL and starts it
//! again; the chatters behave like real clients (they reconnect and catch
//! up through history); afterwards a checker says, per fault, what became
//! of every message.
//!
//! The three parts of a Jepsen-style test are kept apart:
//!
//! - [`nemesis`]: the fault schedule, each fault's window recorded as it
//!   ends;
//! - [`crate::history`]: what the recording client saw, send by send
//!   (written by [`crate::conversation`], with [`recovery`] for reconnects
//!   and catch-up), and the faults' windows; it lives in the run's state
//!   ([`crate::state::ChaosRun`]);
//! - [`checker`]: the verdict, from the history, the windows and the rooms'
//!   histories read at the end; [`report`] prints and writes it.

pub mod checker;
pub mod nemesis;
pub mod recovery;
pub mod report;
pub mod scale;

use std::{collections::BTreeMap, time::Duration};

use futures::StreamExt;
use tokio::time::sleep;

use crate::{clock, history::StreamHistory, latency::lock, payload, state::RunState};

use self::checker::{Observed, Stored, Verdict};

/// Rooms read side by side at the end.
const SWEEP_CONCURRENCY: usize = 8;
/// Tries to read one room at the end.
const SWEEP_TRIES: u32 = 8;

/// After the run: reads every room, checks, prints and writes `chaos.json`.
pub async fn finish(run: &RunState) -> anyhow::Result<Verdict> {
    let Some(chaos) = run.chaos.as_ref() else {
        anyhow::bail!("not a chaos run");
    };
    println!("chaos: reading every room's history to resolve unanswered messages");
    let stored = sweep(run).await;
    let streams: Vec<StreamHistory> = chaos.history.iter().map(|h| lock(h).clone()).collect();
    let windows = lock(&chaos.windows).clone();
    let start_us = run
        .gate
        .decided()
        .map_or(0, |start| clock::micros(start.into_std()));
    let verdict = checker::check(&Observed {
        streams: &streams,
        stored: &stored,
        windows: &windows,
        start_us,
    });
    let report = report::ChaosReport::new(run, &windows, start_us, &stored, verdict);
    print!("{}", report::render(&report));
    report::write(&run.settings.report_dir, &report)?;
    Ok(report.verdict)
}

/// Reads each pair's room from the start, through the first host.
async fn sweep(run: &RunState) -> Stored {
    let users = run.settings.users;
    let mut stored: Stored = vec![None; users];
    let rooms = futures::stream::iter((0..users).step_by(2))
        .map(|first| async move { (first, read_room(run, first).await) })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let tag = &run.settings.run_tag;
    for (first, messages) in rooms {
        let Some(messages) = messages else {
            continue;
        };
        stored[first] = Some(BTreeMap::new());
        stored[first + 1] = Some(BTreeMap::new());
        for message in messages {
            let Some(id) = recovery::message_id(&message["id"]) else {
                continue;
            };
            let author = message["clientMessageId"]
                .as_str()
                .and_then(|client_id| payload::parse_client_message_id(tag, client_id));
            let Some((index, seq)) = author else {
                continue;
            };
            if index / 2 != first / 2 {
                continue;
            }
            if let Some(Some(room)) = stored.get_mut(index) {
                room.entry(seq).or_default().push(id.to_string());
            }
        }
    }
    stored
}

/// Every message of the room of chatters `first` and `first + 1`; `None`
/// when neither was set up or the room could not be read.
async fn read_room(run: &RunState, first: usize) -> Option<Vec<serde_json::Value>> {
    let chaos = run.chaos.as_ref()?;
    let identity = chaos.identities[first]
        .get()
        .or_else(|| chaos.identities[first + 1].get())?;
    let hosts = &run.settings.hosts;
    for attempt in 0..SWEEP_TRIES {
        let host = &hosts[attempt as usize % hosts.len()];
        match recovery::messages_after(&chaos.http, host, &identity.token, &identity.room_id, 1)
            .await
        {
            Ok(messages) => return Some(messages),
            Err(error) => {
                eprintln!(
                    "chaos: reading room {} on {host}: {error}",
                    identity.room_id
                );
                sleep(Duration::from_secs(u64::from(attempt) + 1)).await;
            }
        }
    }
    None
}
