//! Abuse: every structure a client can grow has a bound (the README's
//! limits table). Each test drives a client past one bound, asserts the
//! error in the contract's shape, that the service's resident memory
//! (`process_resident_memory_bytes` on `/metrics`) stayed bounded, and
//! that an ordinary client is served again afterwards.

use e2e::{
    chat::{join, text_message, Chatter},
    pipelined::PipelinedSocket,
    socket::Credentials,
    unique_name, Api, ChatSocket, TestServer,
};
use serde_json::json;

const MIB: f64 = 1024.0 * 1024.0;

async fn resident_mib(server: &TestServer) -> f64 {
    server.metric("process_resident_memory_bytes").await / MIB
}

/// Asserts the service grew by at most `bound_mib` since `before`.
async fn assert_memory_bounded(server: &TestServer, before: f64, bound_mib: f64, what: &str) {
    let after = resident_mib(server).await;
    eprintln!("{what}: resident {before:.0} -> {after:.0} MiB");
    assert!(before > 0.0, "the service reports its resident memory");
    assert!(
        after - before <= bound_mib,
        "{what}: resident memory grew from {before:.0} to {after:.0} MiB (bound {bound_mib} MiB)"
    );
}

on_both_backends! {
    async fn sockets_past_32_per_user_are_refused_and_a_closed_one_frees_its_place(server: &TestServer) {
        let api = Api::new(server.url());
        let user = api.new_user().await;
        let before = resident_mib(server).await;
        let mut open = Vec::new();
        for _ in 0..32 {
            open.push(ChatSocket::connect(api.base(), &user.token).await);
        }
        for _ in 0..100 {
            let refused = ChatSocket::try_connect(api.base(), Credentials::Header(user.token.clone())).await;
            let refusal = refused.err().expect("a 33rd socket was let in");
            assert!(refusal.contains("too many sockets for this user"), "{refusal}");
        }
        // Other users are not affected.
        let other = api.new_user().await;
        ChatSocket::connect(api.base(), &other.token).await;
        assert_memory_bounded(server, before, 64.0, "132 handshakes of one user").await;

        open.pop().unwrap().disconnect().await;
        let mut again = None;
        for _ in 0..100 {
            // The place is freed when the server has seen the close.
            match ChatSocket::try_connect(api.base(), Credentials::Header(user.token.clone())).await {
                Ok(socket) => {
                    again = Some(socket);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        assert!(again.is_some(), "a closed socket's place was never freed");
    }

    async fn a_flood_of_failed_logins_is_refused_503_past_the_hashes_in_flight(server: &TestServer) {
        let api = Api::new(server.url());
        let before = resident_mib(server).await;
        let attempts = (0..400).map(|_| {
            let api = api.clone();
            async move {
                api.login(json!({"username": unique_name("nobody"), "password": "password123"})).await
            }
        });
        let answers = futures::future::join_all(attempts).await;
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for answer in answers {
            let status = answer.status.as_u16();
            *statuses.entry(status).or_default() += 1;
            if status == 503 {
                let body = answer.expect_error(503);
                assert!(body["message"].as_str().unwrap().contains("too many password checks"), "{body}");
            } else {
                answer.expect_error(401);
            }
        }
        eprintln!("400 concurrent failed logins: {statuses:?}");
        assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");
        // 19 MiB a hash: without the bound, 400 at once took gigabytes.
        assert_memory_bounded(server, before, 200.0, "400 concurrent logins").await;
        // And the door is open again for the next one.
        let user = api.new_user().await;
        api.login(json!({"username": user.username, "password": "password123"})).await.expect(200);
    }

    async fn joins_and_catch_ups_past_their_rate_are_rate_limited(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        let before = resident_mib(server).await;
        let mut joins = Vec::new();
        for _ in 0..400 {
            let ack = alice.socket.emit_with_ack("join", json!({ "roomId": room })).await;
            joins.push(ack);
        }
        assert!(joins[..200].iter().all(|ack| ack["status"] == "ok"), "the burst is let through");
        let refused = joins.iter().filter(|ack| ack["error"]["name"] == "rate_limited").count();
        assert!(refused > 0, "400 joins at once, none refused");

        let since = e2e::chat::send(&bob.socket, &room, "hello").await;
        let mut catch_ups = Vec::new();
        for _ in 0..200 {
            let ack = bob.socket.emit_with_ack("join", json!({ "roomId": room, "since": since })).await;
            catch_ups.push(ack);
        }
        let refused_catch_ups = catch_ups.iter().filter(|ack| ack["error"]["name"] == "rate_limited").count();
        assert!(refused_catch_ups > 0, "200 catch-ups at once, none refused");
        assert!(catch_ups[..100].iter().all(|ack| ack["status"] == "ok"), "{:?}", &catch_ups[..3]);
        eprintln!("joins refused {refused} of 400, catch-ups {refused_catch_ups} of 200");
        assert_memory_bounded(server, before, 64.0, "600 joins").await;
        // A fresh socket joins at once.
        let fresh = ChatSocket::connect(api.base(), &alice.user.token).await;
        join(&fresh, &room).await;
    }

    async fn catch_ups_past_the_users_bound_are_rate_limited_on_fresh_sockets_too(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (Chatter::new(&api).await, Chatter::new(&api).await);
        let room = api.room_of(&alice.user, &bob.user).await;
        let since = e2e::chat::send(&bob.socket, &room, "hello").await;
        let before = resident_mib(server).await;
        // Each socket stays within its own 100; together past the user's
        // 200 (which refills 5 a second: the last two sockets' 180 leave
        // room for over 30 s of refill).
        let mut refused_on_the_last = 0;
        for socket in 0..4 {
            let fresh = ChatSocket::connect(api.base(), &alice.user.token).await;
            for _ in 0..90 {
                let ack = fresh.emit_with_ack("join", json!({ "roomId": room, "since": since })).await;
                if socket < 2 {
                    assert_eq!(ack["status"], "ok", "socket {socket}: {ack}");
                } else if ack["error"]["name"] == "rate_limited" {
                    refused_on_the_last += 1;
                }
            }
        }
        eprintln!("catch-ups refused on the last two sockets: {refused_on_the_last} of 180");
        assert!(refused_on_the_last > 0, "360 catch-ups of one user on four sockets, none refused");
        assert_memory_bounded(server, before, 64.0, "360 catch-ups over four sockets").await;
    }

    async fn messages_past_the_rate_are_refused_on_arrival_not_queued(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;
        let before = resident_mib(server).await;
        let mut socket = PipelinedSocket::connect(api.base(), &alice.token).await.expect("pipelined socket");
        // 300 at once, 60 KiB of padding each: past the burst (40) every
        // one is refused as it arrives, before its payload is queued.
        let padding = "p".repeat(60 * 1024);
        let mut answers = Vec::new();
        for n in 0..300 {
            let mut message = text_message(&room, &format!("flood {n}"), None);
            message["padding"] = json!(padding);
            answers.push(socket.emit("message", &message).await.expect("emit"));
        }
        let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
        for answer in answers {
            let (ack, _) = answer.await.expect("every message is answered");
            let outcome = if ack["status"] == "accepted" { "accepted".to_owned() } else { ack["error"]["name"].as_str().unwrap_or("?").to_owned() };
            *outcomes.entry(outcome).or_default() += 1;
        }
        eprintln!("300 pipelined 60 KiB messages: {outcomes:?}");
        assert!(outcomes.get("rate_limited").is_some_and(|n| *n >= 200), "{outcomes:?}");
        assert!(outcomes.get("accepted").is_some_and(|n| *n > 0), "{outcomes:?}");
        assert_memory_bounded(server, before, 64.0, "300 pipelined 60 KiB messages").await;
        socket.close().await;
    }
}
