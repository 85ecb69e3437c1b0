//! Presence: online while any socket of the user is connected anywhere,
//! told to the users who share a room with them.

use std::time::Duration;

use e2e::{Api, Backend, ChatSocket, TestServer};
use serde_json::Value;

/// A killed instance's users must be seen offline within this.
const OFFLINE_WITHIN: Duration = Duration::from_secs(60);

fn is_presence(user: &str, online: bool) -> impl Fn(&Value) -> bool + '_ {
    move |data| {
        data["name"] == "presence"
            && data["content"]["userId"] == user
            && data["content"]["online"] == online
    }
}

async fn online(api: &Api, token: &str, room: &str) -> Vec<String> {
    let mut online: Vec<String> = api.room_details(token, room).await.expect(200)["online"]
        .as_array()
        .expect("online is an array")
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    online.sort();
    online
}

/// Polls the room's `online` until it is `expected`, up to `within`.
async fn wait_for_online(api: &Api, token: &str, room: &str, expected: &[&str], within: Duration) {
    let mut expected: Vec<String> = expected.iter().map(|id| (*id).to_owned()).collect();
    expected.sort();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = online(api, token, room).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "online stayed {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both_backends! {
    async fn coming_and_going_is_told_to_the_room_and_shown_in_it(server: &TestServer) {
        let api = Api::new(server.url());
        let peer = server.second_instance().await;
        let alice_api = peer.as_ref().map_or_else(|| api.clone(), |peer| Api::new(peer.url()));
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;
        let mut bob_socket = ChatSocket::connect(api.base(), &bob.token).await;
        wait_for_online(&api, &bob.token, &room, &[&bob.id], Duration::from_secs(10)).await;

        let laptop = ChatSocket::connect(alice_api.base(), &alice.token).await;
        bob_socket.expect_event("notification", is_presence(&alice.id, true)).await;
        let phone = ChatSocket::connect(alice_api.base(), &alice.token).await;
        wait_for_online(&api, &bob.token, &room, &[&alice.id, &bob.id], Duration::from_secs(10)).await;

        // One device gone: still online.
        laptop.disconnect().await;
        phone.emit_with_ack("join", serde_json::json!({ "roomId": room })).await;
        assert_eq!(online(&api, &bob.token, &room).await.len(), 2);
        phone.disconnect().await;
        bob_socket.expect_event("notification", is_presence(&alice.id, false)).await;
        wait_for_online(&api, &bob.token, &room, &[&bob.id], Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_of_a_killed_instance_are_seen_offline_within_60_s() {
    if !e2e::controls_processes() {
        return;
    }
    let server = TestServer::spawn(Backend::Stack).await;
    let mut doomed = server.spawn_peer().await;
    let api = Api::new(server.url());
    let (alice, bob) = (api.new_user().await, api.new_user().await);
    let room = api.room_of(&alice, &bob).await;
    let mut bob_socket = ChatSocket::connect(api.base(), &bob.token).await;
    let _alice_socket = ChatSocket::connect(&doomed.url(), &alice.token).await;
    bob_socket
        .expect_event("notification", is_presence(&alice.id, true))
        .await;
    wait_for_online(
        &api,
        &bob.token,
        &room,
        &[&alice.id, &bob.id],
        Duration::from_secs(10),
    )
    .await;

    doomed.kill();
    wait_for_online(&api, &bob.token, &room, &[&bob.id], OFFLINE_WITHIN).await;
    bob_socket
        .expect_event("notification", is_presence(&alice.id, false))
        .await;
}
