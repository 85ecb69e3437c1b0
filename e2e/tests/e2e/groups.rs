//! Group rooms ("Beyond the original"): rooms of many members that change.
//! [`http`] covers the four calls and their errors, [`sockets`] what a
//! group looks like on `/chats`: who may join and send, the fan-out to
//! every member, the `members` notification, and a leave taking effect at
//! once on every instance.

mod http;
mod sockets;

use std::time::Duration;

use e2e::{chat::is_message, ChatSocket, TestUser};
use serde_json::Value;

/// How long a socket is given to show an event it should not get, once a
/// socket on the same instance got the event it was owed.
const GRACE: Duration = Duration::from_millis(500);

/// The sorted ids of `users`.
fn user_ids(users: &[&TestUser]) -> Vec<String> {
    let mut ids: Vec<String> = users.iter().map(|user| user.id.clone()).collect();
    ids.sort();
    ids
}

/// The sorted strings of a JSON array (duplicates kept, so they show).
fn sorted(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect();
    items.sort();
    items
}

/// Asserts the contract's group room shape, `members` being every member.
#[track_caller]
fn assert_group(room: &Value, name: &str, members: &[&TestUser]) {
    let id = room["roomId"].as_str().unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "roomId: {room}");
    assert_eq!(room["type"], "group", "{room}");
    assert_eq!(room["name"], name, "{room}");
    assert_eq!(sorted(&room["participantIds"]), user_ids(members), "{room}");
    let created = room["createdAt"].as_str().unwrap_or_default();
    assert!(created.ends_with('Z'), "createdAt is RFC 3339 UTC: {room}");
}

/// Waits for the `members` notification of `room` saying that `added`
/// were added and `left` left (in any order). Matching the whole change
/// keeps an earlier notice of the same room (its creation) from passing.
async fn expect_members_change(
    socket: &mut ChatSocket,
    room: &str,
    added: &[&TestUser],
    left: &[&TestUser],
) {
    let (added, left) = (user_ids(added), user_ids(left));
    let notice = socket
        .expect_event("notification", |data| {
            data["name"] == "members"
                && data["content"]["roomId"] == room
                && data["content"]["added"].is_array()
                && data["content"]["left"].is_array()
                && sorted(&data["content"]["added"]) == added
                && sorted(&data["content"]["left"]) == left
        })
        .await;
    assert_eq!(
        notice["content"].as_object().map(|c| c.len()),
        Some(3),
        "{notice}"
    );
}

/// Fails if `socket` hears of message `id` within [`GRACE`] (or heard of
/// it already): a `reply`, or a notification naming it.
async fn assert_hears_nothing_of(socket: &mut ChatSocket, id: &str, whose: &str) {
    let reply = socket
        .try_expect_event("reply", &is_message(id), GRACE)
        .await;
    assert!(reply.is_none(), "{whose} got a reply: {reply:?}");
    let notices: Vec<_> = socket
        .unmatched()
        .iter()
        .filter(|event| is_message(id)(&event.data))
        .cloned()
        .collect();
    assert!(notices.is_empty(), "{whose} heard of it: {notices:?}");
}
