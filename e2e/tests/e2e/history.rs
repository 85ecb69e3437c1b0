//! `GET /api/v1/rooms/{roomId}/messages`: access and paging rules.

use e2e::{Api, TestServer};

on_both_backends! {
    async fn a_new_room_has_an_empty_history(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;

        let page = api.history(&alice.token, &room, "").await.expect(200);

        assert_eq!(page, serde_json::json!([]));
    }

    async fn only_participants_may_read_a_room(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, mallory) = (api.new_user().await, api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;

        api.history(&mallory.token, &room, "").await.expect_error(404);
        api.history(&alice.token, &uuid::Uuid::new_v4().to_string(), "").await.expect_error(404);
        api.history("no-such-token-but-long-enough", &room, "").await.expect_error(401);
        api.history(&bob.token, &room, "").await.expect(200);
    }

    async fn bad_history_queries_are_400(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;

        api.history(&alice.token, "not-a-room", "").await.expect_error(400);
        for query in [
            "limit=0",
            "limit=101",
            "limit=x",
            "latestMessageId=abc",
            "latestMessageId=-5",
            "latestMessageId=1.5",
            "latestMessageId=99999999999999999999999",
            "context=before",
            "context=sideways&latestMessageId=5",
        ] {
            let answer = api.history(&alice.token, &room, query).await;
            assert_eq!(answer.status.as_u16(), 400, "{query}: {}", answer.body);
        }
    }
}
