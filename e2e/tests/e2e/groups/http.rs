//! The HTTP calls of group rooms: `POST /api/v1/rooms`,
//! `GET /api/v1/rooms/{roomId}`, `POST /api/v1/rooms/{roomId}/members`,
//! `DELETE /api/v1/rooms/{roomId}/members/me`, and the history of a group.

use e2e::{
    chat::{send_group, wait_for_history, Chatter},
    socket::EVENT_TIMEOUT,
    Api, Backend, TestServer,
};
use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_group, sorted, user_ids};

on_both_backends! {
    async fn a_group_is_created_with_the_caller_and_each_participant_once(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (api.new_user().await, api.new_user().await, api.new_user().await);

        let repeated = [bob.id.as_str(), carol.id.as_str(), bob.id.as_str(), alice.id.as_str()];
        let room = api.create_group(&alice.token, "Book club", &repeated).await.expect(201);

        assert_group(&room, "Book club", &[&alice, &bob, &carol]);
    }

    async fn a_member_reads_the_group_with_its_read_markers_and_who_is_online(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let created = api.create_group(&alice.token, "Two of us", &[&bob.id]).await.expect(201);
        let room = created["roomId"].as_str().unwrap();

        let read = api.room_details(&bob.token, room).await.expect(200);

        assert_group(&read, "Two of us", &[&alice, &bob]);
        assert_eq!(read["roomId"], created["roomId"]);
        assert_eq!(read["createdAt"], created["createdAt"]);
        assert_eq!(read["readMarkers"], json!({}), "no one has read anything: {read}");
        assert_eq!(read["online"], json!([]), "no one has a socket open: {read}");
    }

    async fn a_private_room_reads_as_a_private_room_of_its_two_users(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;

        let read = api.room_details(&alice.token, &room).await.expect(200);

        assert_eq!(read["roomId"], room.as_str());
        assert_eq!(read["type"], "private", "{read}");
        assert_eq!(sorted(&read["participantIds"]), user_ids(&[&alice, &bob]), "{read}");
        assert!(read["readMarkers"].is_object(), "{read}");
        assert!(read["online"].is_array(), "{read}");
    }

    async fn a_member_adds_users_and_gets_the_room_back(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let (carol, dave) = (api.new_user().await, api.new_user().await);
        let room = api.group_of(&alice, &[&bob]).await;

        // Bob, a member already, is counted once.
        let ids = [carol.id.as_str(), dave.id.as_str(), bob.id.as_str(), carol.id.as_str()];
        let answer = api.add_members(&bob.token, &room, &ids).await.expect(200);

        assert_group(&answer, "Test Group", &[&alice, &bob, &carol, &dave]);
        assert_eq!(answer["roomId"], room.as_str());
        let read = api.room_details(&carol.token, &room).await.expect(200);
        assert_group(&read, "Test Group", &[&alice, &bob, &carol, &dave]);
        assert_eq!(api.history(&dave.token, &room, "").await.expect(200), json!([]));
    }

    async fn a_member_who_leaves_no_longer_sees_the_group(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (api.new_user().await, api.new_user().await, api.new_user().await);
        let room = api.group_of(&alice, &[&bob, &carol]).await;

        let answer = api.leave_group(&bob.token, &room).await;

        assert_eq!(answer.status.as_u16(), 204, "{}", answer.body);
        api.room_details(&bob.token, &room).await.expect_error(404);
        api.history(&bob.token, &room, "").await.expect_error(404);
        api.add_members(&bob.token, &room, &[&bob.id]).await.expect_error(404);
        api.leave_group(&bob.token, &room).await.expect_error(404);
        let read = api.room_details(&carol.token, &room).await.expect(200);
        assert_group(&read, "Test Group", &[&alice, &carol]);
    }

    async fn the_history_of_a_group_is_open_to_members_only(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let (bob, mallory) = (api.new_user().await, api.new_user().await);
        let room = api.group_of(&alice.user, &[&bob]).await;

        let id = send_group(&alice.socket, &room, "for members").await;

        let history = wait_for_history(&api, &bob.token, &room, 10, |page| !page.is_empty(), EVENT_TIMEOUT).await;
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0]["id"], id.as_str());
        assert_eq!(history[0]["type"], "group");
        assert_eq!(history[0]["roomId"], room.as_str());
        assert_eq!(history[0]["authorId"], alice.user.id.as_str());
        assert_eq!(history[0]["content"], json!({"type": "text", "message": "for members"}));
        api.history(&mallory.token, &room, "").await.expect_error(404);
    }

    async fn a_non_member_can_neither_read_nor_change_a_group(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, mallory) = (api.new_user().await, api.new_user().await, api.new_user().await);
        let room = api.group_of(&alice, &[&bob]).await;
        let unknown = uuid::Uuid::new_v4().to_string();

        for room in [&room, &unknown] {
            api.room_details(&mallory.token, room).await.expect_error(404);
            api.add_members(&mallory.token, room, &[&mallory.id]).await.expect_error(404);
            api.leave_group(&mallory.token, room).await.expect_error(404);
        }

        let read = api.room_details(&alice.token, &room).await.expect(200);
        assert_group(&read, "Test Group", &[&alice, &bob]);
    }

    async fn bad_group_requests_are_400_in_the_nestjs_shape(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let create = |body: Value| api.call(Method::POST, "/api/v1/rooms", Some(&alice.token), Some(body));
        let cases: Vec<(&str, Value)> = vec![
            ("blank name", json!({"name": " \t ", "participantIds": [bob.id]})),
            ("empty name", json!({"name": "", "participantIds": [bob.id]})),
            ("101 characters", json!({"name": "n".repeat(101), "participantIds": [bob.id]})),
            ("name a number", json!({"name": 7, "participantIds": [bob.id]})),
            ("no name", json!({"participantIds": [bob.id]})),
            ("no participant", json!({"name": "Alone", "participantIds": []})),
            ("only the caller", json!({"name": "Alone", "participantIds": [alice.id, alice.id]})),
            ("no participantIds", json!({"name": "Alone"})),
            ("participantIds a string", json!({"name": "G", "participantIds": bob.id})),
            ("participantIds an object", json!({"name": "G", "participantIds": {"id": bob.id}})),
            ("an id not a uuid", json!({"name": "G", "participantIds": [bob.id, "bob"]})),
            ("an id a number", json!({"name": "G", "participantIds": [42]})),
        ];

        for (case, body) in cases {
            let answer = create(body).await;
            assert_eq!(answer.status.as_u16(), 400, "{case}: {}", answer.body);
            answer.expect_error(400);
        }

        // The limits are characters, not bytes.
        let longest = "é".repeat(100);
        let room = api.create_group(&alice.token, &longest, &[&bob.id]).await.expect(201);
        assert_group(&room, &longest, &[&alice, &bob]);
    }

    async fn a_body_that_is_not_a_json_object_is_400(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (api.new_user().await, api.new_user().await, api.new_user().await);
        let room = api.group_of(&alice, &[&bob]).await;
        let members = format!("/api/v1/rooms/{room}/members");

        // The fields in order, as an array: serde would read them as the
        // struct unless the service insists on an object.
        let create = api.call(Method::POST, "/api/v1/rooms", Some(&alice.token), Some(json!(["G", [bob.id]]))).await;
        let add = api.call(Method::POST, &members, Some(&alice.token), Some(json!([[carol.id]]))).await;

        let statuses = (create.status.as_u16(), add.status.as_u16());
        assert_eq!(statuses, (400, 400), "create: {}, add: {}", create.body, add.body);
        create.expect_error(400);
        add.expect_error(400);
        let read = api.room_details(&alice.token, &room).await.expect(200);
        assert_group(&read, "Test Group", &[&alice, &bob]);
    }

    async fn an_unknown_participant_is_404_naming_the_id(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let stranger = uuid::Uuid::new_v4().to_string();

        let error = api.create_group(&alice.token, "G", &[&bob.id, &stranger]).await.expect_error(404);
        assert!(error["message"].as_str().unwrap().contains(&stranger), "{error}");

        let room = api.group_of(&alice, &[&bob]).await;
        api.add_members(&alice.token, &room, &[&stranger]).await.expect_error(404);
        let read = api.room_details(&alice.token, &room).await.expect(200);
        assert_group(&read, "Test Group", &[&alice, &bob]);
    }

    async fn bad_member_requests_are_400(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (api.new_user().await, api.new_user().await, api.new_user().await);
        let room = api.group_of(&alice, &[&bob]).await;
        let members = format!("/api/v1/rooms/{room}/members");
        let cases: Vec<(&str, Value)> = vec![
            ("userIds a string", json!({"userIds": carol.id})),
            ("an id not a uuid", json!({"userIds": [carol.id, "carol"]})),
            ("an id a number", json!({"userIds": [42]})),
            ("no userIds", json!({})),
        ];

        for (case, body) in cases {
            let answer = api.call(Method::POST, &members, Some(&alice.token), Some(body)).await;
            assert_eq!(answer.status.as_u16(), 400, "{case}: {}", answer.body);
            answer.expect_error(400);
        }
        api.room_details(&alice.token, "not-a-room").await.expect_error(400);
        api.add_members(&alice.token, "not-a-room", &[&carol.id]).await.expect_error(400);
        api.leave_group(&alice.token, "not-a-room").await.expect_error(400);
        let read = api.room_details(&alice.token, &room).await.expect(200);
        assert_group(&read, "Test Group", &[&alice, &bob]);
    }

    async fn a_private_room_takes_no_members_and_cannot_be_left(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (api.new_user().await, api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;

        api.add_members(&alice.token, &room, &[&carol.id]).await.expect_error(400);
        api.leave_group(&bob.token, &room).await.expect_error(400);

        let read = api.room_details(&bob.token, &room).await.expect(200);
        assert_eq!(sorted(&read["participantIds"]), user_ids(&[&alice, &bob]), "{read}");
        assert_eq!(api.room_of(&bob, &alice).await, room);
    }

    async fn the_group_calls_need_a_token(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let room = api.group_of(&alice, &[&bob]).await;
        let stale = "no-such-token-but-long-enough";

        api.create_group(stale, "G", &[&bob.id]).await.expect_error(401);
        api.room_details(stale, &room).await.expect_error(401);
        api.add_members(stale, &room, &[&bob.id]).await.expect_error(401);
        api.leave_group(stale, &room).await.expect_error(401);
        let anonymous = api.call(Method::GET, &format!("/api/v1/rooms/{room}"), None, None).await;
        anonymous.expect_error(401);
    }
}

/// `ROOM_MAX_MEMBERS=3`: creating and adding count the caller and each id
/// once, and stop at the limit.
async fn the_member_limit_counts_the_caller_and_each_id_once(backend: Backend) {
    if !e2e::controls_processes() {
        return;
    }
    let server = TestServer::spawn_with(backend, &[("ROOM_MAX_MEMBERS", "3")]).await;
    let api = Api::new(server.url());
    let (alice, bob) = (api.new_user().await, api.new_user().await);
    let (carol, dave) = (api.new_user().await, api.new_user().await);

    let full = [
        bob.id.as_str(),
        carol.id.as_str(),
        bob.id.as_str(),
        alice.id.as_str(),
    ];
    let room = api
        .create_group(&alice.token, "Three", &full)
        .await
        .expect(201);
    let over = [bob.id.as_str(), carol.id.as_str(), dave.id.as_str()];
    api.create_group(&alice.token, "Four", &over)
        .await
        .expect_error(400);
    let room = room["roomId"].as_str().unwrap();
    api.add_members(&alice.token, room, &[&dave.id])
        .await
        .expect_error(400);
    let read = api.room_details(&alice.token, room).await.expect(200);
    assert_group(&read, "Three", &[&alice, &bob, &carol]);

    let growing = api.group_of(&alice, &[&bob]).await;
    let answer = api
        .add_members(&alice.token, &growing, &[&carol.id, &carol.id])
        .await
        .expect(200);
    assert_group(&answer, "Test Group", &[&alice, &bob, &carol]);
    api.add_members(&alice.token, &growing, &[&dave.id])
        .await
        .expect_error(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_limit_counts_the_caller_and_each_id_once_in_memory() {
    the_member_limit_counts_the_caller_and_each_id_once(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_limit_counts_the_caller_and_each_id_once_on_the_stack() {
    the_member_limit_counts_the_caller_and_each_id_once(Backend::Stack).await;
}
