//! A pipelining sender: one message every [`PACE`], each emitted without
//! waiting for the answers before it, up to a window of answers
//! outstanding (a client that does not wait for each ack). While the
//! service is slow to answer (Kafka down, a rebalance), messages queue
//! behind each other on its side, which is where a sender would wait in
//! silence if the service did not answer each within 2 s.

use std::collections::VecDeque;

use e2e::pipelined::PipelinedSocket;
use tokio::sync::watch;

use crate::{client::PACE, history::Outcome, recorder::Recorder};

/// Sends until told to stop or the connection is gone, then waits for the
/// answers still outstanding.
pub async fn send(
    mut socket: PipelinedSocket,
    recorder: Recorder,
    stop: watch::Receiver<bool>,
    window: usize,
) {
    let mut ticker = tokio::time::interval(PACE);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut outstanding = VecDeque::new();
    let mut lost = false;
    for seq in 0.. {
        ticker.tick().await;
        if *stop.borrow() || lost {
            break;
        }
        // Answers come in order: a full window waits for its oldest.
        while outstanding.len() >= window.max(1) {
            let Some(oldest) = outstanding.pop_front() else {
                break;
            };
            lost |= matches!(recorder.answered(oldest).await, Outcome::ConnectionLost(_));
        }
        if lost {
            break;
        }
        let client_message_id = format!("p{}-{seq}-{}", recorder.lane(), &run[..8]);
        let text = format!("lane {} message {seq}", recorder.lane());
        outstanding.push_back(recorder.emit(&mut socket, &client_message_id, &text).await);
    }
    for in_flight in outstanding {
        recorder.answered(in_flight).await;
    }
    socket.close().await;
}
