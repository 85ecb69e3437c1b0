//! What became of one message: delivered, refused, lost or silent (see
//! [`super`]), from how its send ended, what its partner received and what
//! its room's history holds; and the extra copies of it.

use crate::history::{Outcome, Path, Reception, Send};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The partner received it, first by this path.
    Delivered(Path),
    /// Not delivered; the client got this error.
    Refused(String),
    /// Not delivered though taken; `stored` when the room's history holds it.
    Lost {
        /// In the room's history at the end.
        stored: bool,
    },
    /// Not delivered, not stored, and the client was never told.
    Silent,
}

/// What became of one message; `None` for a message that never left (the
/// client library refused to emit it and it was not sent again).
pub fn classify(
    send: &Send,
    receptions: &[Reception],
    stored: Option<&[String]>,
) -> Option<Status> {
    if let Some(first) = receptions.first() {
        return Some(Status::Delivered(first.path));
    }
    let in_history = |id: &str| stored.is_some_and(|ids| ids.iter().any(|s| s == id));
    let status = match &send.outcome {
        Outcome::NotSent => return None,
        Outcome::Accepted { message_id } => match &send.later_error {
            Some(name) => Status::Refused(name.clone()),
            None => Status::Lost {
                stored: in_history(message_id),
            },
        },
        Outcome::Refused { name } => Status::Refused(name.clone()),
        Outcome::Unknown { .. } | Outcome::Pending => {
            if stored.is_some_and(|ids| !ids.is_empty()) {
                Status::Lost { stored: true }
            } else {
                Status::Silent
            }
        }
    };
    Some(status)
}

/// Whether an accepted message was also refused (`chat_500`, parked)
/// although it was delivered or stored: two outcomes for one message.
pub(super) fn double_outcome(send: &Send, status: &Status, stored: &[String]) -> bool {
    let Some(_) = &send.later_error else {
        return false;
    };
    let stored_as_accepted = match &send.outcome {
        Outcome::Accepted { message_id } => stored.iter().any(|id| id == message_id),
        _ => false,
    };
    matches!(status, Status::Delivered(_)) || stored_as_accepted
}

/// Extra copies of one message: live `reply` events beyond the first of an
/// id, and ids beyond the first for one `clientMessageId`.
pub(super) fn duplicates(receptions: &[Reception], stored: &[String]) -> u64 {
    let mut ids: Vec<&str> = receptions
        .iter()
        .map(|r| r.message_id.as_str())
        .chain(stored.iter().map(String::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let extra_ids = ids.len().saturating_sub(1) as u64;
    let extra_live: u64 = ids
        .iter()
        .map(|id| {
            let live = receptions
                .iter()
                .filter(|r| r.path == Path::Live && r.message_id == *id)
                .count() as u64;
            live.saturating_sub(1)
        })
        .sum();
    extra_ids + extra_live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        chaos::checker::{
            check,
            script::{row, window, Script, S},
            Observed,
        },
        history::UnknownCause,
    };

    #[test]
    fn an_accepted_message_never_delivered_is_lost_even_when_stored() {
        let mut script = Script::default();
        let stored = script.accepted(12);
        script.store(stored);
        script.accepted(13);
        let verdict = script.check(&[window("redis", 10, 20)]);
        let redis = row(&verdict, "redis");
        assert_eq!((redis.lost, redis.lost_stored, redis.silent), (2, 1, 0));
        assert!(!verdict.ok);
        assert!(
            verdict.problems[0].contains("LOST"),
            "{:?}",
            verdict.problems
        );
    }

    #[test]
    fn an_unanswered_message_is_resolved_by_delivery_or_history_and_else_silent() {
        let mut script = Script::default();
        let delivered = script.send(11);
        script.stream.unknown(delivered, UnknownCause::SocketLost);
        script.deliver(delivered, 15, Path::History);
        let stored_only = script.send(12);
        script.stream.unknown(stored_only, UnknownCause::AckTimeout);
        script.store(stored_only);
        let nowhere = script.send(13);
        script.stream.unknown(nowhere, UnknownCause::AckTimeout);
        let verdict = script.check(&[window("instance-2", 10, 20)]);
        let fault = row(&verdict, "instance-2");
        assert_eq!(fault.unknown, 3);
        assert_eq!(fault.unknown_resolved, 2);
        assert_eq!(fault.delivered_history, 1);
        assert_eq!((fault.lost, fault.lost_stored), (1, 1));
        assert_eq!(fault.silent, 1);
        assert!(!verdict.ok);
        assert!(verdict.problems.iter().any(|p| p.contains("SILENT")));
    }

    #[test]
    fn errors_are_refusals_not_losses_and_a_chat_500_after_accept_counts_as_one() {
        let mut script = Script::default();
        let refused = script.send(11);
        script.stream.refused(refused, "chat_503");
        let parked = script.accepted(12);
        script
            .stream
            .later_error(&format!("id{parked}"), "chat_500");
        let verdict = script.check(&[window("kafka", 10, 20)]);
        let kafka = row(&verdict, "kafka");
        assert_eq!(kafka.ack_errors.get("chat_503"), Some(&1));
        assert_eq!(kafka.refused.get("chat_503"), Some(&1));
        assert_eq!(kafka.refused.get("chat_500"), Some(&1));
        assert_eq!((kafka.lost, kafka.silent), (0, 0));
        assert!(verdict.ok, "{:?}", verdict.problems);
    }

    #[test]
    fn every_message_ends_in_exactly_one_state() {
        let mut script = Script::default();
        let a = script.accepted(1);
        script.deliver(a, 2, Path::Live);
        script.accepted(3);
        let c = script.send(4);
        script.stream.refused(c, "rate_limited");
        let d = script.send(5);
        script.stream.unknown(d, UnknownCause::AckTimeout);
        let verdict = script.check(&[]);
        let t = &verdict.total;
        assert_eq!(t.sent, 4);
        assert_eq!(
            t.delivered() + t.refused_total() + t.lost + t.silent,
            t.sent
        );
        assert_eq!(
            t.accepted + t.ack_errors.values().sum::<u64>() + t.unknown,
            t.sent
        );
    }

    #[test]
    fn a_message_the_client_could_not_emit_and_never_resent_is_not_counted() {
        let mut script = Script::default();
        let seq = script.send(1);
        script.stream.not_sent(seq);
        let verdict = script.check(&[]);
        assert_eq!(verdict.total.sent, 0);
        assert!(!verdict.ok, "nothing sent is a problem of its own");
    }

    #[test]
    fn an_unanswered_message_in_a_room_that_could_not_be_read_counts_as_silent() {
        let mut script = Script::default();
        let seq = script.send(1);
        script.stream.unknown(seq, UnknownCause::AckTimeout);
        let verdict = check(&Observed {
            streams: &[script.stream],
            stored: &[None],
            windows: &[],
            start_us: 0,
        });
        assert_eq!(verdict.total.silent, 1);
    }

    #[test]
    fn a_second_live_copy_or_a_second_stored_message_is_a_duplicate() {
        let mut script = Script::default();
        let a = script.accepted(1);
        script.deliver(a, 2, Path::Live);
        script
            .stream
            .received(a, &format!("id{a}"), 3 * S, Path::Live);
        let b = script.accepted(4);
        script.deliver(b, 5, Path::Live);
        script.stored.entry(b).or_default().push("other".to_owned());
        let verdict = script.check(&[]);
        assert_eq!(verdict.total.duplicates, 2);
        assert_eq!(verdict.total.delivered(), 2);
        assert!(verdict.ok);
    }
}
