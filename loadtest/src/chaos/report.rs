//! The chaos verdict as a table on the terminal and as `chaos.json`.

use std::{collections::BTreeMap, fmt::Write, fs, path::Path, sync::atomic::Ordering};

use anyhow::Context;
use serde::Serialize;

use super::checker::{Row, Stored, Verdict};
use crate::{clock, history::FaultWindow, state::RunState};

/// One fault's timeline, in seconds since sending started.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// What was killed.
    pub target: String,
    /// The kill was issued.
    pub kill_s: f64,
    /// The process was gone.
    pub killed_s: Option<f64>,
    /// The restart was issued.
    pub restart_s: Option<f64>,
    /// It answered again.
    pub up_s: Option<f64>,
    /// Every instance answered `/ready`.
    pub ready_s: Option<f64>,
    /// The window closed.
    pub end_s: f64,
    /// What went wrong with the fault itself.
    pub failure: Option<String>,
    /// A scale event, alongside the faults.
    pub concurrent: bool,
}

/// How the clients coped.
#[derive(Debug, Clone, Serialize)]
pub struct Clients {
    /// Sockets opened again after one was lost.
    pub reconnects: u64,
    /// Chatters that could not reconnect before the end.
    pub reconnect_failures: u64,
    /// History reads after a reconnect.
    pub catch_ups: u64,
    /// History reads that gave up.
    pub catch_up_failures: u64,
    /// Messages due but never emitted (their chatter had no socket at the end).
    pub unsent: u64,
    /// Rooms whose history could not be read at the end.
    pub rooms_unread: usize,
    /// Ack errors and `error` events by name, and client-side errors.
    pub errors: BTreeMap<String, u64>,
}

/// Everything `chaos.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// The instances the sockets were spread over.
    pub hosts: Vec<String>,
    /// Chatters.
    pub users: usize,
    /// Messages per second, all chatters together.
    pub rate: f64,
    /// How long a killed target stayed down, seconds.
    pub down_s: f64,
    /// Settling time after each restart, seconds.
    pub settle_s: f64,
    /// When sending started (UTC), the origin of every `_s` here: to find
    /// a moment in the instances' logs.
    pub started_utc: String,
    /// Each fault's timeline.
    pub faults: Vec<Timeline>,
    /// How the clients coped.
    pub clients: Clients,
    /// The per-fault ledger and the verdict.
    pub verdict: Verdict,
}

impl ChaosReport {
    /// Puts the report together.
    pub fn new(
        run: &RunState,
        windows: &[FaultWindow],
        start_us: u64,
        stored: &Stored,
        verdict: Verdict,
    ) -> Self {
        let settings = &run.settings;
        let s = |at_us: u64| (at_us as f64 - start_us as f64) / 1e6;
        let mut faults: Vec<Timeline> = windows
            .iter()
            .map(|w| Timeline {
                target: w.target.clone(),
                kill_s: s(w.started_us),
                killed_s: w.killed_us.map(s),
                restart_s: w.restarting_us.map(s),
                up_s: w.up_us.map(s),
                ready_s: w.ready_us.map(s),
                end_s: s(w.ended_us),
                failure: w.failure.clone(),
                concurrent: w.concurrent,
            })
            .collect();
        faults.sort_by(|a, b| a.kill_s.total_cmp(&b.kill_s));
        let counters = run.counters.snapshot();
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::SeqCst);
        let clients = match run.chaos.as_ref() {
            Some(chaos) => Clients {
                reconnects: get(&chaos.reconnects),
                reconnect_failures: get(&chaos.reconnect_failures),
                catch_ups: get(&chaos.catch_ups),
                catch_up_failures: get(&chaos.catch_up_failures),
                unsent: counters.unsent,
                rooms_unread: stored.iter().step_by(2).filter(|r| r.is_none()).count(),
                errors: counters.errors.clone(),
            },
            None => Clients {
                reconnects: 0,
                reconnect_failures: 0,
                catch_ups: 0,
                catch_up_failures: 0,
                unsent: counters.unsent,
                rooms_unread: 0,
                errors: counters.errors.clone(),
            },
        };
        let chaos = settings.chaos.as_ref();
        let started_utc = i64::try_from(clock::wall_micros(start_us))
            .ok()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map_or_else(String::new, |at| {
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            });
        Self {
            hosts: settings.hosts.clone(),
            users: settings.users,
            rate: settings.rate,
            down_s: chaos.map_or(0.0, |c| c.down.as_secs_f64()),
            settle_s: chaos.map_or(0.0, |c| c.settle.as_secs_f64()),
            started_utc,
            faults,
            clients,
            verdict,
        }
    }
}

/// Writes `chaos.json` into `dir`.
pub fn write(dir: &Path, report: &ChaosReport) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    fs::write(dir.join("chaos.json"), json).context("writing chaos.json")
}

/// The report as a table for a terminal.
pub fn render(report: &ChaosReport) -> String {
    let mut out = String::new();
    let rule = "=".repeat(141);
    let _ = writeln!(out, "{rule}");
    let _ = writeln!(
        out,
        "chaos: {} chatters, {:.0} msg/s over {} instance(s); each target SIGKILLed, down {:.0}s, restarted, {:.0}s to settle",
        report.users,
        report.rate,
        report.hosts.len(),
        report.down_s,
        report.settle_s
    );
    let _ = writeln!(out, "{rule}");
    let _ = writeln!(
        out,
        "timeline (seconds since sending started, at {}):",
        report.started_utc
    );
    let at = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
    for fault in &report.faults {
        let failed = fault
            .failure
            .as_ref()
            .map_or_else(String::new, |f| format!("  FAILED: {f}"));
        if fault.concurrent {
            let done = fault.killed_s.or(fault.up_s);
            let _ = writeln!(
                out,
                "  {:<14} at   {:>6.1}  done {:>6}{:>47}{:>6.1}{failed}",
                fault.target,
                fault.kill_s,
                at(done),
                "window end ",
                fault.end_s,
            );
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<14} kill {:>6.1}  dead {:>6}  restart {:>6}  up {:>6}  all ready {:>6}  window end {:>6.1}{failed}",
            fault.target,
            fault.kill_s,
            at(fault.killed_s),
            at(fault.restart_s),
            at(fault.up_s),
            at(fault.ready_s),
            fault.end_s,
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<14}{:>12}{:>7}{:>7}{:>7}{:>6}{:>9}{:>7}{:>7}{:>9}{:>13}{:>8}{:>5}{:>5}{:>9}{:>9}{:>9}",
        "fault",
        "window (s)",
        "sent",
        "resent",
        "acc",
        "err",
        "unk/res",
        "live",
        "hist",
        "refused",
        "LOST/st",
        "SILENT",
        "dup",
        "2x",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    let verdict = &report.verdict;
    for row in verdict.rows.iter().chain(std::iter::once(&verdict.total)) {
        let _ = writeln!(out, "{}", line(row));
    }
    if !verdict.scale_rows.is_empty() {
        let _ = writeln!(
            out,
            "alongside (the messages sent while instances joined or left; counted above too):"
        );
        for row in &verdict.scale_rows {
            let _ = writeln!(out, "{}", line(row));
        }
    }
    let _ = writeln!(out);
    let all_rows = verdict
        .rows
        .iter()
        .chain(std::iter::once(&verdict.total))
        .chain(&verdict.scale_rows);
    for row in all_rows {
        if !row.refused.is_empty() || !row.ack_errors.is_empty() {
            let _ = writeln!(
                out,
                "  {:<14} ack errors: {}; refused (not delivered): {}",
                row.fault,
                names(&row.ack_errors),
                names(&row.refused)
            );
        }
    }
    let c = &report.clients;
    let _ = writeln!(
        out,
        "clients: {} reconnects ({} failed), {} catch-ups ({} failed), {} messages never emitted, {} rooms unread at the end",
        c.reconnects, c.reconnect_failures, c.catch_ups, c.catch_up_failures, c.unsent, c.rooms_unread
    );
    let _ = writeln!(
        out,
        "columns: resent = sent again after the socket died unanswered; acc/err = acks accepted/error (last answer); unk/res = no ack / of those found delivered or stored; live/hist = delivered \
         live / through history after a reconnect;"
    );
    let _ = writeln!(
        out,
        "         LOST/st = taken, never delivered / of those in the room's history; SILENT = no answer, not delivered, not stored; \
         2x = chat_500 yet delivered or stored; delays from the scheduled send"
    );
    let _ = writeln!(out, "{rule}");
    if verdict.ok {
        let _ = writeln!(
            out,
            "OK: no message lost, none silent, none with two outcomes: every message was delivered or answered with an error."
        );
    }
    for problem in &verdict.problems {
        let _ = writeln!(out, "PROBLEM: {problem}");
    }
    for note in &verdict.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "{rule}");
    out
}

fn line(row: &Row) -> String {
    let window = match (row.from_s, row.to_s) {
        (Some(from), Some(to)) => format!("{from:.0}-{to:.0}"),
        _ => "-".to_owned(),
    };
    let err: u64 = row.ack_errors.values().sum();
    format!(
        "{:<14}{:>12}{:>7}{:>7}{:>7}{:>6}{:>9}{:>7}{:>7}{:>9}{:>13}{:>8}{:>5}{:>5}{:>9.0}{:>9.0}{:>9.0}",
        row.fault,
        window,
        row.sent,
        row.resent,
        row.accepted,
        err,
        format!("{}/{}", row.unknown, row.unknown_resolved),
        row.delivered_live,
        row.delivered_history,
        row.refused_total(),
        format!("{}/{}", row.lost, row.lost_stored),
        row.silent,
        row.duplicates,
        row.double_outcomes,
        row.delay.p50_ms,
        row.delay.p99_ms,
        row.delay.max_ms
    )
}

fn names(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}
