//! Group rooms on the `/chats` namespace. On the stack the members sit on
//! two instances of one deployment; in memory both are the one instance.

use e2e::{
    chat::{
        accepted_id, error_name, group_message, is_message, join, send_group, text_message,
        wait_for_history, Chatter,
    },
    socket::EVENT_TIMEOUT,
    Api, ChatSocket, TestServer,
};
use serde_json::{json, Value};

use super::{assert_hears_nothing_of, expect_members_change};

on_both_backends! {
    async fn a_non_member_can_neither_join_nor_send_to_a_group(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let bob = api.new_user().await;
        let mut mallory = Chatter::new(&api).await;
        let room = api.group_of(&alice.user, &[&bob]).await;

        let joined = mallory.socket.emit_with_ack("join", json!({"roomId": room})).await;
        let sent = mallory.socket.emit_with_ack("message", group_message(&room, "let me in")).await;
        mallory.socket.emit("message", group_message(&room, "no ack")).await;

        assert_eq!(error_name(&joined), "chat_404");
        assert_eq!(error_name(&sent), "chat_404");
        let event = mallory.socket.expect_event("error", |e| e["name"] == "chat_404").await;
        assert_eq!(event["roomId"], room.as_str());
        // A member's message after them is the only one stored.
        let id = send_group(&alice.socket, &room, "members only").await;
        let history = wait_for_history(&api, &bob.token, &room, 10, |page| !page.is_empty(), EVENT_TIMEOUT).await;
        let ids: Vec<&Value> = history.iter().map(|m| &m["id"]).collect();
        assert_eq!(ids, [&json!(id)], "{history:?}");
    }

    async fn a_message_typed_unlike_its_room_is_a_bad_request(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let bob = api.new_user().await;
        let group = api.group_of(&alice.user, &[&bob]).await;
        let private = api.room_of(&alice.user, &bob).await;

        let to_group = alice.socket.emit_with_ack("message", text_message(&group, "typed private", None)).await;
        let to_private = alice.socket.emit_with_ack("message", group_message(&private, "typed group")).await;

        assert_eq!(error_name(&to_group), "bad_request", "{to_group}");
        assert_eq!(error_name(&to_private), "bad_request", "{to_private}");
        let in_group = send_group(&alice.socket, &group, "typed right").await;
        let ack = alice.socket.emit_with_ack("message", text_message(&private, "typed right", None)).await;
        let in_private = accepted_id(&ack);
        for (room, id) in [(&group, in_group), (&private, in_private)] {
            let history = wait_for_history(&api, &bob.token, room, 10, |page| !page.is_empty(), EVENT_TIMEOUT).await;
            let ids: Vec<&Value> = history.iter().map(|m| &m["id"]).collect();
            assert_eq!(ids, [&json!(id)], "{history:?}");
        }
    }

    async fn a_group_message_reaches_every_member_socket_on_every_instance(server: &TestServer) {
        let peer = server.second_instance().await;
        let b = peer.as_ref().unwrap_or(server);
        let (api_a, api_b) = (Api::new(server.url()), Api::new(b.url()));
        let (alice, bob) = (api_a.new_user().await, api_a.new_user().await);
        let (carol, dave) = (api_a.new_user().await, api_a.new_user().await);
        let room = api_a.group_of(&alice, &[&bob, &carol, &dave]).await;
        // On A: Alice's laptop (the sender) and Dave's desk (not joined).
        // On B: Alice's phone, Bob, Dave's phone (joined) and Carol (not joined).
        let mut alice_laptop = ChatSocket::connect(api_a.base(), &alice.token).await;
        let mut dave_desk = ChatSocket::connect(api_a.base(), &dave.token).await;
        let mut alice_phone = ChatSocket::connect(api_b.base(), &alice.token).await;
        let mut bob_socket = ChatSocket::connect(api_b.base(), &bob.token).await;
        let mut dave_phone = ChatSocket::connect(api_b.base(), &dave.token).await;
        let mut carol_socket = ChatSocket::connect(api_b.base(), &carol.token).await;
        for socket in [&alice_laptop, &alice_phone, &bob_socket, &dave_phone] {
            join(socket, &room).await;
        }

        let id = send_group(&alice_laptop, &room, "hello everyone").await;

        for socket in [&mut alice_phone, &mut bob_socket, &mut dave_phone] {
            let reply = socket.expect_event("reply", is_message(&id)).await;
            assert_eq!(reply["roomId"], room.as_str());
            assert_eq!(reply["authorId"], alice.id.as_str());
            assert_eq!(reply["type"], "group");
            assert_eq!(reply["content"], json!({"type": "text", "message": "hello everyone"}));
        }
        for socket in [&mut alice_laptop, &mut alice_phone] {
            let sent = socket.expect_event("notification", |n| n["name"] == "sent" && is_message(&id)(n)).await;
            assert_eq!(sent["content"], json!({"roomId": room, "messageId": id, "message": "message sent"}));
        }
        for socket in [&mut carol_socket, &mut dave_desk] {
            let inbox = socket.expect_event("notification", |n| n["name"] == "inbox" && is_message(&id)(n)).await;
            assert_eq!(
                inbox["content"],
                json!({"roomId": room, "messageId": id, "authorId": alice.id, "message": "new message received"})
            );
        }
        // A second message comes after the first on every socket, so once
        // each socket has heard of it, anything more about the first (the
        // sender's own reply, an inbox beside a reply) would be there too.
        let next = send_group(&bob_socket, &room, "hi alice").await;
        for socket in [&mut alice_laptop, &mut alice_phone, &mut dave_phone] {
            socket.expect_event("reply", is_message(&next)).await;
        }
        for socket in [&mut carol_socket, &mut dave_desk] {
            socket.expect_event("notification", |n| n["name"] == "inbox" && is_message(&next)(n)).await;
        }
        bob_socket.expect_event("notification", |n| n["name"] == "sent" && is_message(&next)(n)).await;
        for (whose, socket) in [
            ("alice's laptop", &mut alice_laptop),
            ("alice's phone", &mut alice_phone),
            ("bob", &mut bob_socket),
            ("carol", &mut carol_socket),
            ("dave's desk", &mut dave_desk),
            ("dave's phone", &mut dave_phone),
        ] {
            let extra: Vec<_> = socket.unmatched().iter().filter(|e| is_message(&id)(&e.data)).cloned().collect();
            assert!(extra.is_empty(), "{whose} got more than its share: {extra:?}");
        }
    }

    async fn members_are_told_who_was_added_and_who_left(server: &TestServer) {
        let peer = server.second_instance().await;
        let b = peer.as_ref().unwrap_or(server);
        let (api_a, api_b) = (Api::new(server.url()), Api::new(b.url()));
        let (alice, bob) = (api_a.new_user().await, api_a.new_user().await);
        let (carol, dave) = (api_a.new_user().await, api_a.new_user().await);
        let room = api_a.group_of(&alice, &[&bob]).await;
        // Nobody joins: the notice goes to members, joined or not.
        let mut alice_socket = ChatSocket::connect(api_a.base(), &alice.token).await;
        let mut bob_socket = ChatSocket::connect(api_b.base(), &bob.token).await;
        let mut carol_socket = ChatSocket::connect(api_b.base(), &carol.token).await;

        api_a.add_members(&alice.token, &room, &[&carol.id, &dave.id]).await.expect(200);

        // Carol is a member by the time the notice goes out.
        for socket in [&mut alice_socket, &mut bob_socket, &mut carol_socket] {
            expect_members_change(socket, &room, &[&carol, &dave], &[]).await;
        }

        api_b.leave_group(&bob.token, &room).await.expect(204);

        for socket in [&mut alice_socket, &mut carol_socket] {
            expect_members_change(socket, &room, &[], &[&bob]).await;
        }
    }

    async fn a_member_who_leaves_gets_nothing_more_of_the_group_on_any_instance(server: &TestServer) {
        let peer = server.second_instance().await;
        let b = peer.as_ref().unwrap_or(server);
        let (api_a, api_b) = (Api::new(server.url()), Api::new(b.url()));
        let (alice, bob, carol) = (api_a.new_user().await, api_a.new_user().await, api_a.new_user().await);
        let room = api_a.group_of(&alice, &[&bob, &carol]).await;
        // Carol, who leaves, has a joined socket on each instance and one
        // not joined on B. Beside each, a witness owed the same event.
        let alice_a = ChatSocket::connect(api_a.base(), &alice.token).await;
        let mut bob_a = ChatSocket::connect(api_a.base(), &bob.token).await;
        let mut carol_a = ChatSocket::connect(api_a.base(), &carol.token).await;
        let mut alice_b = ChatSocket::connect(api_b.base(), &alice.token).await;
        let mut bob_away_b = ChatSocket::connect(api_b.base(), &bob.token).await;
        let mut carol_b = ChatSocket::connect(api_b.base(), &carol.token).await;
        let mut carol_away_b = ChatSocket::connect(api_b.base(), &carol.token).await;
        for socket in [&alice_a, &bob_a, &carol_a, &alice_b, &carol_b] {
            join(socket, &room).await;
        }
        // Before the leave every one of Carol's sockets hears of a message.
        let before = send_group(&alice_a, &room, "before").await;
        for socket in [&mut carol_a, &mut carol_b] {
            socket.expect_event("reply", is_message(&before)).await;
        }
        carol_away_b.expect_event("notification", |n| n["name"] == "inbox" && is_message(&before)(n)).await;

        api_a.leave_group(&carol.token, &room).await.expect(204);
        let after = send_group(&alice_a, &room, "after").await;

        bob_a.expect_event("reply", is_message(&after)).await;
        alice_b.expect_event("reply", is_message(&after)).await;
        bob_away_b.expect_event("notification", |n| n["name"] == "inbox" && is_message(&after)(n)).await;
        for (whose, socket) in [
            ("carol's joined socket on A", &mut carol_a),
            ("carol's joined socket on B", &mut carol_b),
            ("carol's other socket on B", &mut carol_away_b),
        ] {
            assert_hears_nothing_of(socket, &after, whose).await;
        }
        for socket in [&carol_a, &carol_b, &carol_away_b] {
            let joined = socket.emit_with_ack("join", json!({"roomId": room})).await;
            assert_eq!(error_name(&joined), "chat_404");
            let sent = socket.emit_with_ack("message", group_message(&room, "still here?")).await;
            assert_eq!(error_name(&sent), "chat_404");
        }
    }

    async fn a_user_added_to_a_group_can_join_and_send_at_once_on_every_instance(server: &TestServer) {
        let peer = server.second_instance().await;
        let b = peer.as_ref().unwrap_or(server);
        let (api_a, api_b) = (Api::new(server.url()), Api::new(b.url()));
        let (alice, bob, erin) = (api_a.new_user().await, api_a.new_user().await, api_a.new_user().await);
        let room = api_a.group_of(&alice, &[&bob]).await;
        let mut alice_a = ChatSocket::connect(api_a.base(), &alice.token).await;
        let mut erin_a = ChatSocket::connect(api_a.base(), &erin.token).await;
        let mut erin_b = ChatSocket::connect(api_b.base(), &erin.token).await;
        join(&alice_a, &room).await;
        // Refused first, so an instance that remembered the refusal would show.
        for socket in [&erin_a, &erin_b] {
            let refused = socket.emit_with_ack("join", json!({"roomId": room})).await;
            assert_eq!(error_name(&refused), "chat_404");
        }

        api_b.add_members(&bob.token, &room, &[&erin.id]).await.expect(200);

        join(&erin_a, &room).await;
        join(&erin_b, &room).await;
        let from_erin = send_group(&erin_b, &room, "thanks for adding me").await;
        alice_a.expect_event("reply", is_message(&from_erin)).await;
        erin_a.expect_event("reply", is_message(&from_erin)).await;
        let from_alice = send_group(&alice_a, &room, "welcome").await;
        erin_a.expect_event("reply", is_message(&from_alice)).await;
        erin_b.expect_event("reply", is_message(&from_alice)).await;
    }
}
