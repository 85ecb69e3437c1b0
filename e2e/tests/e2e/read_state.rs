//! The conversation list, read markers and unread counts.

use std::time::Duration;

use e2e::{
    chat::{error_name, join, send, send_all, Chatter},
    Api, TestServer,
};
use reqwest::Method;
use serde_json::{json, Value};

/// The pipeline stores (and records activity) after the ack; lists are
/// polled until they show what was sent.
const SETTLE: Duration = Duration::from_secs(20);

async fn conversations(api: &Api, token: &str, query: &str) -> Vec<Value> {
    api.call(
        Method::GET,
        &format!("/api/v1/rooms?{query}"),
        Some(token),
        None,
    )
    .await
    .expect(200)
    .as_array()
    .cloned()
    .expect("the list is an array")
}

/// Polls the caller's first page until `done` holds.
async fn wait_for_list(api: &Api, token: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let list = conversations(api, token, "limit=100").await;
        if done(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the list never got there: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn item<'a>(list: &'a [Value], room: &str) -> &'a Value {
    list.iter()
        .find(|item| item["roomId"] == room)
        .unwrap_or_else(|| panic!("room {room} not in {list:#?}"))
}

fn last_id(list: &[Value], room: &str) -> Option<String> {
    list.iter()
        .find(|item| item["roomId"] == room)
        .and_then(|item| item["lastMessage"]["id"].as_str().map(str::to_owned))
}

async fn mark_read(api: &Api, token: &str, room: &str, message: &str) -> e2e::api::Answer {
    api.call(
        Method::POST,
        &format!("/api/v1/rooms/{room}/read"),
        Some(token),
        Some(json!({ "messageId": message })),
    )
    .await
}

on_both_backends! {
    async fn the_list_orders_by_activity_and_counts_only_others_messages(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (Chatter::new(&api).await, Chatter::new(&api).await, Chatter::new(&api).await);
        let with_bob = api.room_of(&alice.user, &bob.user).await;
        let with_carol = api.room_of(&alice.user, &carol.user).await;
        let quiet = api.room_of(&alice.user, &api.new_user().await).await;

        let from_bob = send(&bob.socket, &with_bob, "hi").await;
        send(&alice.socket, &with_carol, "hello carol").await;
        send(&carol.socket, &with_carol, "one").await;
        let from_carol = send(&carol.socket, &with_carol, "two").await;

        let list = wait_for_list(&api, &alice.user.token, |list| {
            last_id(list, &with_carol).as_deref() == Some(from_carol.as_str())
                && last_id(list, &with_bob).as_deref() == Some(from_bob.as_str())
        })
        .await;
        let order: Vec<&str> = list.iter().map(|item| item["roomId"].as_str().unwrap()).collect();
        assert_eq!(order, [with_carol.as_str(), with_bob.as_str(), quiet.as_str()], "{list:#?}");
        assert_eq!(item(&list, &with_carol)["unread"], 2, "alice's own message is not unread");
        assert_eq!(item(&list, &with_bob)["unread"], 1);
        assert_eq!(item(&list, &quiet)["unread"], 0);
        assert_eq!(item(&list, &quiet)["lastMessage"], Value::Null);
        assert_eq!(item(&list, &with_bob)["readUpTo"], Value::Null);
        assert_eq!(item(&list, &with_bob)["type"], "private");
        assert_eq!(item(&list, &with_bob)["lastMessage"]["content"]["message"], "hi");
        assert!(list.iter().all(|item| item["cursor"].is_string()));

        let for_carol = wait_for_list(&api, &carol.user.token, |list| {
            last_id(list, &with_carol).as_deref() == Some(from_carol.as_str())
        })
        .await;
        assert_eq!(item(&for_carol, &with_carol)["unread"], 1);
    }

    async fn marking_read_clears_unread_on_every_device_and_tells_the_peer(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, mut bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
        let mut alice_phone = alice.second_device(&api).await;
        let room = api.room_of(&alice.user, &bob.user).await;
        let ids = send_all(&bob.socket, &room, 3).await;
        let last = ids.last().unwrap().clone();
        wait_for_list(&api, &alice.user.token, |list| {
            last_id(list, &room).as_deref() == Some(last.as_str()) && item(list, &room)["unread"] == 3
        })
        .await;

        let ack = alice.socket.emit_with_ack("read", json!({ "roomId": room, "messageId": last })).await;
        assert_eq!(ack["status"], "ok", "read ack: {ack}");
        let is_read = |data: &Value| data["name"] == "read" && data["content"]["messageId"] == last.as_str();
        let told = alice_phone.expect_event("notification", is_read).await;
        assert_eq!(told["content"]["roomId"], room.as_str());
        assert_eq!(told["content"]["userId"], alice.user.id.as_str());
        bob.socket.expect_event("notification", is_read).await;

        let list = conversations(&api, &alice.user.token, "").await;
        assert_eq!(item(&list, &room)["unread"], 0);
        assert_eq!(item(&list, &room)["readUpTo"], last.as_str());
        let details = api.room_details(&bob.user.token, &room).await.expect(200);
        assert_eq!(details["readMarkers"][&alice.user.id], last.as_str(), "{details}");

        // Back in time changes nothing, and tells no one.
        mark_read(&api, &alice.user.token, &room, &ids[0]).await.expect(204);
        let list = conversations(&api, &alice.user.token, "").await;
        assert_eq!(item(&list, &room)["readUpTo"], last.as_str());
        let older = |data: &Value| data["name"] == "read" && data["content"]["messageId"] == ids[0].as_str();
        assert!(bob.socket.try_expect_event("notification", &older, Duration::from_millis(500)).await.is_none());
    }

    async fn two_devices_marking_at_once_end_on_the_later_message(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        let ids = send_all(&bob.socket, &room, 10).await;
        let newest = ids.last().unwrap().clone();
        wait_for_list(&api, &alice.user.token, |list| last_id(list, &room).as_deref() == Some(newest.as_str())).await;

        let marks = ids.iter().rev().map(|id| mark_read(&api, &alice.user.token, &room, id));
        for answer in futures::future::join_all(marks).await {
            answer.expect(204);
        }
        let list = conversations(&api, &alice.user.token, "").await;
        assert_eq!(item(&list, &room)["readUpTo"], newest.as_str());
        assert_eq!(item(&list, &room)["unread"], 0);
    }

    async fn unread_is_exact_up_to_100_then_capped(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        let ids = send_all(&bob.socket, &room, 101).await;
        let newest = ids.last().unwrap().clone();
        let list = wait_for_list(&api, &alice.user.token, |list| last_id(list, &room).as_deref() == Some(newest.as_str())).await;
        assert_eq!(item(&list, &room)["unread"], 100);
        assert_eq!(item(&list, &room)["unreadCapped"], true);

        mark_read(&api, &alice.user.token, &room, &ids[10]).await.expect(204);
        let list = conversations(&api, &alice.user.token, "").await;
        assert_eq!(item(&list, &room)["unread"], 90);
        assert!(item(&list, &room).get("unreadCapped").is_none_or(|capped| capped == false));
    }

    async fn paging_with_the_cursor_has_no_gaps_or_repeats_while_messages_arrive(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let mut peers = Vec::new();
        let mut rooms = Vec::new();
        for _ in 0..7 {
            let peer = Chatter::new(&api).await;
            let room = api.room_of(&alice.user, &peer.user).await;
            send(&peer.socket, &room, "first").await;
            rooms.push(room);
            peers.push(peer);
        }
        wait_for_list(&api, &alice.user.token, |list| {
            list.len() == 7 && list.iter().all(|item| !item["lastMessage"].is_null())
        })
        .await;

        let mut seen: Vec<String> = Vec::new();
        let mut moved: Vec<String> = Vec::new();
        let mut query = "limit=3".to_owned();
        for page_number in 0.. {
            let page = conversations(&api, &alice.user.token, &query).await;
            seen.extend(page.iter().map(|item| item["roomId"].as_str().unwrap().to_owned()));
            let Some(last) = page.last() else { break };
            query = format!("limit=3&before={}", last["cursor"].as_str().unwrap());
            // New activity while paging: a room already seen, and one not yet.
            if page_number == 0 {
                let (first_seen, unseen) = (&seen[0], rooms.iter().find(|room| !seen.contains(room)).unwrap().clone());
                for room in [first_seen.clone(), unseen] {
                    let index = rooms.iter().position(|r| *r == room).unwrap();
                    let id = send(&peers[index].socket, &room, "again").await;
                    wait_for_list(&api, &alice.user.token, |list| last_id(list, &room).as_deref() == Some(id.as_str())).await;
                    moved.push(room);
                }
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "a room was listed twice: {seen:?}");
        // Every room without new activity was on a page; the moved ones are
        // at the head of the list now.
        for room in rooms.iter().filter(|room| !moved.contains(room)) {
            assert!(seen.contains(room), "room {room} was skipped: {seen:?}");
        }
        let head = conversations(&api, &alice.user.token, "limit=2").await;
        let mut head: Vec<String> = head.iter().map(|item| item["roomId"].as_str().unwrap().to_owned()).collect();
        head.sort();
        moved.sort();
        assert_eq!(head, moved);
    }

    async fn groups_are_listed_and_their_members_hear_reads(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, mut bob, mut carol) = (Chatter::new(&api).await, Chatter::new(&api).await, Chatter::new(&api).await);
        let group = api
            .create_group(&alice.user.token, "crew", &[&bob.user.id, &carol.user.id])
            .await
            .expect(201)["roomId"]
            .as_str()
            .unwrap()
            .to_owned();
        join(&bob.socket, &group).await;
        let ack = alice
            .socket
            .emit_with_ack("message", e2e::chat::group_message(&group, "ahoy"))
            .await;
        let id = e2e::chat::accepted_id(&ack);
        let list = wait_for_list(&api, &bob.user.token, |list| last_id(list, &group).as_deref() == Some(id.as_str())).await;
        assert_eq!(item(&list, &group)["type"], "group");
        assert_eq!(item(&list, &group)["name"], "crew");
        assert_eq!(item(&list, &group)["unread"], 1);

        mark_read(&api, &bob.user.token, &group, &id).await.expect(204);
        let is_read = |data: &Value| data["name"] == "read" && data["content"]["userId"] == bob.user.id.as_str();
        carol.socket.expect_event("notification", is_read).await;
        bob.socket.expect_event("notification", is_read).await;
    }

    async fn bad_read_requests_get_the_contract_errors(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, eve) = (Chatter::new(&api).await, Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        let id = send(&bob.socket, &room, "secret").await;
        wait_for_list(&api, &alice.user.token, |list| last_id(list, &room).as_deref() == Some(id.as_str())).await;
        let token = &alice.user.token;

        mark_read(&api, token, &room, "not-an-id").await.expect_error(400);
        api.call(Method::POST, &format!("/api/v1/rooms/{room}/read"), Some(token), Some(json!({})))
            .await
            .expect_error(400);
        mark_read(&api, token, "not-a-room", &id).await.expect_error(400);
        mark_read(&api, token, &uuid::Uuid::new_v4().to_string(), &id).await.expect_error(404);
        mark_read(&api, &eve.user.token, &room, &id).await.expect_error(404);
        let unknown = (id.parse::<i64>().unwrap() + 1).to_string();
        mark_read(&api, token, &room, &unknown).await.expect_error(404);
        for query in ["limit=0", "limit=101", "limit=x", "before=nonsense", "before=12.x"] {
            api.call(Method::GET, &format!("/api/v1/rooms?{query}"), Some(token), None)
                .await
                .expect_error(400);
        }

        let ack = eve.socket.emit_with_ack("read", json!({ "roomId": room, "messageId": id })).await;
        assert_eq!(error_name(&ack), "chat_404");
        let ack = alice.socket.emit_with_ack("read", json!({ "roomId": room, "messageId": 7 })).await;
        assert_eq!(error_name(&ack), "bad_request");
        let ack = alice.socket.emit_with_ack("read", json!({ "roomId": room, "messageId": unknown })).await;
        assert_eq!(error_name(&ack), "chat_404");
        // Nothing moved.
        let list = conversations(&api, token, "").await;
        assert_eq!(item(&list, &room)["readUpTo"], Value::Null);
        assert_eq!(item(&list, &room)["unread"], 1);
    }
}
