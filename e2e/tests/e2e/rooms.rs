//! `GET /api/v1/rooms?peerId=`: the one private room of two users.

use e2e::{Api, TestServer};
use futures::future::join_all;

on_both_backends! {
    async fn both_users_get_the_same_room_every_time(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);

        let first = api.room_of(&alice, &bob).await;
        let again = api.room_of(&alice, &bob).await;
        let from_bob = api.room_of(&bob, &alice).await;

        assert!(uuid::Uuid::parse_str(&first).is_ok());
        assert_eq!(first, again);
        assert_eq!(first, from_bob);
    }

    async fn different_pairs_get_different_rooms(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob, carol) = (api.new_user().await, api.new_user().await, api.new_user().await);

        let with_bob = api.room_of(&alice, &bob).await;
        let with_carol = api.room_of(&alice, &carol).await;

        assert_ne!(with_bob, with_carol);
    }

    async fn concurrent_calls_from_both_sides_agree_on_one_room(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);

        let calls = (0..16).map(|n| {
            let (me, peer) = if n % 2 == 0 { (&alice, &bob) } else { (&bob, &alice) };
            api.room(&me.token, &peer.id)
        });
        let answers = join_all(calls).await;

        let mut rooms: Vec<String> = answers
            .into_iter()
            .map(|answer| answer.expect(200)["roomId"].as_str().unwrap().to_owned())
            .collect();
        rooms.dedup();
        assert_eq!(rooms.len(), 1, "{rooms:?}");
    }

    async fn bad_room_requests_get_the_contract_errors(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = api.new_user().await;

        // Without peerId it is the conversation list (see read_state.rs).
        api.room(&alice.token, "not-a-uuid").await.expect_error(400);
        api.room(&alice.token, &alice.id).await.expect_error(400);
        api.room(&alice.token, &uuid::Uuid::new_v4().to_string()).await.expect_error(404);
        api.room("no-such-token-but-long-enough", &alice.id).await.expect_error(401);
    }
}
