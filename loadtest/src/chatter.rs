//! The goose scenario: each goose user is one chatter.
//!
//! - `setup` (on start): register, find the room ([`room`]: the pair's
//!   private room, or the group room its first member creates), open the
//!   socket, join.
//! - `converse` (the one iteration): wait for the common start, send on
//!   schedule ([`crate::plan`]) for the run's duration (marking the room
//!   read as messages arrive, with `LOAD_MARK_READ`), keep listening
//!   through the grace period, hand every timing to goose, close the
//!   socket. In chaos mode a lost socket is replaced (on either instance)
//!   ([`replace`]) and what was missed is read through history, as a real
//!   client would.
//!   In the reconnect mode ([`rejoin`]) a share of the chatters drops its
//!   socket now and then and rejoins with `since`.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use goose::prelude::*;
use serde_json::json;
use tokio::{sync::mpsc, time::Instant};

mod rejoin;
mod replace;
mod room;

use replace::replace_socket;

use crate::{
    conversation::{Conversation, RoomMate, Timing},
    coord::SlotState,
    http,
    latency::lock,
    socket::{ChatSocket, Client, Received},
    state::{self, Counters, Identity, RunState, SetupStage},
};

/// How often a chatter that is only listening checks whether it is done.
const DONE_CHECK: Duration = Duration::from_millis(250);
/// How long a socket connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `join` may take. Short: every chatter waits for the slowest
/// setup before sending starts, and a `join` the server dropped never
/// answers (see the report).
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The chatters' scenario.
pub fn scenario() -> Scenario {
    scenario!("chatters")
        .register_transaction(transaction!(setup).set_on_start().set_name("setup"))
        .register_transaction(transaction!(converse).set_name("converse"))
}

/// A chatter ready to talk.
struct Chatter {
    index: usize,
    user_id: String,
    token: String,
    room_id: String,
    socket: ChatSocket,
    /// Where its socket is: an index into `LOAD_HOSTS`.
    instance: usize,
    events: mpsc::UnboundedReceiver<Received>,
    /// The sending end of `events`, for the next socket and catch-ups.
    sender: mpsc::UnboundedSender<Received>,
}

/// Goose session data must be `Clone`; the chatter is taken out once.
#[derive(Clone)]
struct Slot(Arc<Mutex<Option<Chatter>>>);

/// A failed setup step.
struct SetupError {
    stage: SetupStage,
    cause: String,
}

fn at(stage: SetupStage) -> impl FnOnce(String) -> SetupError {
    move |cause| SetupError { stage, cause }
}

async fn setup(user: &mut GooseUser) -> TransactionResult {
    let Some(run) = state::current() else {
        return Err("run state missing".to_owned().into());
    };
    let index = user.weighted_users_index;
    let outcome = establish(user, &run, index).await;
    let result = match outcome {
        Ok(chatter) => {
            run.registry
                .publish(index, SlotState::Joined(chatter.user_id.clone()));
            user.set_session_data(Slot(Arc::new(Mutex::new(Some(chatter)))));
            Ok(())
        }
        Err(error) => {
            run.registry.publish(index, SlotState::Failed);
            let rooms = run.settings.rooms();
            if rooms.is_group() && rooms.creator(index) == index {
                // Its room-mates wait for the room it will not make.
                run.rooms.fail(rooms.room_of(index));
            }
            run.counters.setup_failed(error.stage);
            eprintln!(
                "chatter {index}: setup failed ({:?}): {}",
                error.stage, error.cause
            );
            Err(format!("setup {:?}: {}", error.stage, error.cause).into())
        }
    };
    run.gate.arrive();
    result
}

async fn establish(
    user: &mut GooseUser,
    run: &RunState,
    index: usize,
) -> Result<Chatter, SetupError> {
    let settings = &run.settings;
    let username = format!("lt{}_{index}", settings.run_tag);
    let token = http::register(user, &username, &format!("Chatter {index}"))
        .await
        .map_err(at(SetupStage::Register))?;
    let user_id = http::me(user, &token)
        .await
        .map_err(at(SetupStage::Register))?;
    run.registry
        .publish(index, SlotState::Registered(user_id.clone()));

    let deadline = Instant::now() + settings.setup_timeout;
    let room_id = room::find(user, run, index, &token, deadline).await?;

    let (sender, events) = mpsc::unbounded_channel();
    let instance = index % settings.hosts.len();
    let socket = ChatSocket::connect(
        Client::for_pipeline(settings.pipeline),
        &settings.hosts[instance],
        &token,
        sender.clone(),
        0,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|error| error.to_string())
    .map_err(at(SetupStage::Connect))?;
    run.counters.socket_opened();
    // Nothing else is in flight on this socket yet: one ack at a time holds.
    let joined = socket
        .request("join", json!({ "roomId": room_id }), JOIN_TIMEOUT)
        .await;
    match joined {
        Ok(ack) if ack["status"] == "ok" => {}
        other => {
            socket.disconnect().await;
            run.counters.socket_closed();
            let cause = match other {
                Ok(ack) => format!("join refused: {ack}"),
                Err(error) => format!("join: {error}"),
            };
            return Err(SetupError {
                stage: SetupStage::Join,
                cause,
            });
        }
    }
    if let Some(chaos) = run.chaos.as_ref() {
        let _ = chaos.identities[index].set(Identity {
            token: token.clone(),
            room_id: room_id.clone(),
        });
    }
    Ok(Chatter {
        index,
        user_id,
        token,
        room_id,
        socket,
        instance,
        events,
        sender,
    })
}

async fn converse(user: &mut GooseUser) -> TransactionResult {
    let Some(run) = state::current() else {
        return Err("run state missing".to_owned().into());
    };
    let chatter = user
        .get_session_data::<Slot>()
        .and_then(|slot| lock(&slot.0).take());
    let Some(mut chatter) = chatter else {
        // Setup failed; it was counted there.
        return Ok(());
    };
    let start = run.gate.start(run.start_deadline()).await;
    let Some(room_mates) = room_mates(&run, chatter.index, start).await else {
        Counters::bump(&run.counters.partner_missing);
        lock(&run.ledgers[chatter.index]).finish();
        chatter.socket.disconnect().await;
        run.counters.socket_closed();
        return Ok(());
    };

    let settings = &run.settings;
    // Open loop: every message's due time is fixed in advance; a chatter
    // that falls behind sends what it owes at once, each message keeping
    // its due time.
    let plan = settings.plan();
    let own_phase = phase(chatter.index);
    let mut due = plan.next_due(settings.users, own_phase, None);
    let mut done_check = tokio::time::interval(DONE_CHECK);

    let mut conversation = Conversation::new(
        run.clone(),
        chatter.index,
        room_mates,
        chatter.user_id.clone(),
        chatter.room_id.clone(),
        start,
        chatter.instance,
    );
    let mut timings = Vec::new();
    let mut rejoins = rejoin::RejoinSchedule::for_chatter(settings, chatter.index, start);
    loop {
        // The nemesis may end sending early (chaos mode): read it each time.
        let send_end = run.send_end(start);
        let grace_end = send_end + settings.grace;
        let next_send = due
            .and_then(|due| start.checked_add(due))
            .filter(|at| *at < send_end);
        let ack_deadline = conversation.ack_deadline();
        let read_due = conversation
            .read_due()
            .filter(|due| *due < send_end && conversation.socket_open());
        // A drop waits for a quiet moment (nothing awaiting an answer).
        let drop_due = rejoins
            .as_ref()
            .map(rejoin::RejoinSchedule::next)
            .filter(|due| *due < send_end && conversation.quiet());
        tokio::select! {
            received = chatter.events.recv() => match received {
                Some(received) => conversation.receive(received, &mut timings),
                None => break,
            },
            () = tokio::time::sleep_until(next_send.unwrap_or(grace_end)), if next_send.is_some() => {
                if let Some(scheduled) = next_send {
                    conversation.schedule(scheduled);
                }
                due = due.and_then(|after| plan.next_due(settings.users, own_phase, Some(after)));
            }
            () = tokio::time::sleep_until(ack_deadline.unwrap_or(grace_end)), if ack_deadline.is_some() => {
                conversation.ack_timed_out(&mut timings);
            }
            // The read is sent below, with whatever else is due.
            () = tokio::time::sleep_until(read_due.unwrap_or(grace_end)), if read_due.is_some() => {}
            // The drop is made below, once the moment is still quiet.
            () = tokio::time::sleep_until(drop_due.unwrap_or(grace_end)), if drop_due.is_some() => {}
            _ = done_check.tick() => {}
            () = tokio::time::sleep_until(grace_end) => break,
        }
        if conversation.needs_reconnect()
            && !replace_socket(&run, &mut chatter, &mut conversation, grace_end).await
        {
            break;
        }
        if let Some(schedule) = rejoins.as_mut() {
            let now = Instant::now();
            if schedule.next() <= now && now < send_end && conversation.quiet() {
                schedule.advance(now);
                let rejoined = rejoin::drop_and_rejoin(
                    &run,
                    &mut chatter,
                    &mut conversation,
                    &mut timings,
                    grace_end,
                )
                .await;
                if !rejoined {
                    break;
                }
            }
        }
        conversation.pump(&chatter.socket, &mut timings).await;
        conversation
            .mark_read(&chatter.socket, send_end, &mut timings)
            .await;
        record(user, &mut timings).await;
        // A chatter behind schedule still owes the messages due before the
        // end: it is not finished (its partner would stop listening).
        let owes = due
            .and_then(|due| start.checked_add(due))
            .is_some_and(|at| at < send_end);
        if Instant::now() >= send_end && !owes && conversation.idle() {
            conversation.finish();
            if conversation.done() {
                break;
            }
        }
    }
    conversation.close();
    chatter.socket.disconnect().await;
    Ok(())
}

/// The other members of chatter `index`'s room, once all of them joined
/// it; `None` when one did not by `start`. A room is complete or silent:
/// every message then has every other member to reach, and no member
/// waits for messages that will never come.
async fn room_mates(run: &RunState, index: usize, start: Instant) -> Option<Vec<RoomMate>> {
    let rooms = run.settings.rooms();
    let mut mates = Vec::with_capacity(rooms.recipients());
    for member in rooms.others(index) {
        if !run.registry.joined(member, start).await {
            return None;
        }
        mates.push(RoomMate {
            index: member,
            user_id: run.registry.id_of(member)?,
            slot: rooms.slot(member, index)?,
        });
    }
    Some(mates)
}

/// Where in its period chatter `index` sends, as a fraction in [0, 1): the
/// golden-ratio sequence spreads the chatters evenly (the total rate is
/// smooth from the first second) while partners, which are neighbours,
/// land far apart, as two people taking turns would. Partners sending in
/// the same millisecond would make every `reply` coincide with the
/// receiver's own ack and `sent` notice, which is not a conversation.
fn phase(index: usize) -> f64 {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    (index as f64 * GOLDEN).fract()
}

/// Hands the timings to goose, so its reports include the socket latencies.
async fn record(user: &mut GooseUser, timings: &mut Vec<Timing>) {
    for timing in timings.drain(..) {
        let _ = user
            .record_custom_request_duration(
                "WS",
                timing.kind.name(),
                timing.latency,
                timing.error.is_none(),
                None,
                timing.error.as_deref(),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_evenly_and_keep_partners_apart() {
        let users = 2_000;
        let mut buckets = [0usize; 10];
        for index in 0..users {
            let phase = phase(index);
            assert!((0.0..1.0).contains(&phase));
            buckets[(phase * 10.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (180..=220).contains(&n)),
            "{buckets:?}"
        );
        for pair in (0..users).step_by(2) {
            let gap = (phase(pair) - phase(pair + 1)).abs();
            assert!(gap.min(1.0 - gap) > 0.3, "partners {pair}: {gap}");
        }
    }
}
