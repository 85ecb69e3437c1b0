//! Order per sender: a socket's messages keep the order it sent them in,
//! even when the client pipelines them without waiting for acks.

use std::time::Duration;

use e2e::{
    chat::{join, text_message, Chatter},
    Api, Backend, TestServer,
};

/// Messages one socket sends back to back.
const PIPELINED: usize = 200;

async fn a_socket_that_pipelines_is_delivered_in_the_order_it_sent(backend: Backend) {
    // A limit well above the burst, so every message is accepted.
    let server = TestServer::spawn_with(
        backend,
        &[
            ("MESSAGE_RATE_PER_SECOND", "1000"),
            ("MESSAGE_RATE_BURST", "1000"),
        ],
    )
    .await;
    let api = Api::new(server.url());
    let mut alice = Chatter::new(&api).await;
    let mut bob = Chatter::new(&api).await;
    let room = api.room_of(&alice.user, &bob.user).await;
    join(&bob.socket, &room).await;

    for n in 0..PIPELINED {
        let client_id = format!("order-{n}");
        let text = format!("n{n}");
        alice
            .socket
            .emit("message", text_message(&room, &text, Some(&client_id)))
            .await;
    }

    // Each message is answered within the contract's 2 s: accepted, or
    // refused with an `error` (`chat_503` when the queue behind a slow
    // publish outlasts the answer deadline, as on a starved machine). Wait
    // until every message has its outcome, then check the order of those
    // delivered.
    let mut arrived: Vec<usize> = Vec::new();
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while arrived.len() + refused < PIPELINED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} delivered and {refused} refused of {PIPELINED}",
            arrived.len()
        );
        let any = |_: &serde_json::Value| true;
        if let Some(reply) = bob
            .socket
            .try_expect_event("reply", &any, Duration::from_millis(50))
            .await
        {
            let text = reply["content"]["message"].as_str().unwrap_or_default();
            arrived.push(text.trim_start_matches('n').parse().expect("a text n<k>"));
        }
        while let Some(error) = alice
            .socket
            .try_expect_event("error", &any, Duration::ZERO)
            .await
        {
            assert_eq!(
                error["name"], "chat_503",
                "the only refusal allowed: {error}"
            );
            refused += 1;
        }
    }
    assert!(
        arrived.windows(2).all(|pair| pair[0] < pair[1]),
        "the peer saw another order: {arrived:?}"
    );
    assert!(
        arrived.len() >= 20,
        "only {} of {PIPELINED} accepted: too few to say anything about order",
        arrived.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_pipelines_is_delivered_in_the_order_it_sent_in_memory() {
    if e2e::controls_processes() {
        a_socket_that_pipelines_is_delivered_in_the_order_it_sent(Backend::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_pipelines_is_delivered_in_the_order_it_sent_on_the_stack() {
    if e2e::controls_processes() {
        a_socket_that_pipelines_is_delivered_in_the_order_it_sent(Backend::Stack).await;
    }
}
