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

    let last = format!("n{}", PIPELINED - 1);
    let last_reply = bob
        .socket
        .try_expect_event(
            "reply",
            &|m| m["content"]["message"] == last.as_str(),
            Duration::from_secs(60),
        )
        .await;
    assert!(last_reply.is_some(), "the last message never arrived");
    let mut arrived: Vec<String> = bob
        .socket
        .unmatched()
        .iter()
        .filter(|event| event.name == "reply")
        .map(|event| {
            event.data["content"]["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    arrived.push(last);
    let sent: Vec<String> = (0..PIPELINED).map(|n| format!("n{n}")).collect();
    assert_eq!(arrived, sent, "the peer saw another order");
    let errors = alice
        .socket
        .unmatched()
        .iter()
        .filter(|event| event.name == "error")
        .count();
    assert_eq!(errors, 0, "every pipelined message is accepted");
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
