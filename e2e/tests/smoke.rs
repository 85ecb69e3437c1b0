//! A smoke test of a running deployment (`docker/smoke.sh` runs it against
//! the compose system): two users register, chat over the Socket.IO
//! socket, and read the conversation back over HTTP. It needs
//! `E2E_TARGET_URL`; without it the test passes with a note, as the suite's
//! own process-bound tests do against a deployment.

use std::time::Duration;

use e2e::{
    chat::{is_message, join, send, wait_for_history, Chatter},
    external_target, Api,
};

/// How long the pipeline may take to store both messages.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_over_the_socket_and_read_the_history() {
    let Some(url) = external_target() else {
        eprintln!("skipped: the smoke test needs a running deployment in E2E_TARGET_URL (docker/smoke.sh sets it)");
        return;
    };
    let api = Api::new(url);
    let mut alice = Chatter::new(&api).await;
    let mut bob = Chatter::new(&api).await;
    let room = api.room_of(&alice.user, &bob.user).await;
    join(&alice.socket, &room).await;
    join(&bob.socket, &room).await;

    let hello = send(&alice.socket, &room, "hello bob").await;
    let reply = bob.socket.expect_event("reply", is_message(&hello)).await;
    let answer = send(&bob.socket, &room, "hello alice").await;
    alice
        .socket
        .expect_event("reply", is_message(&answer))
        .await;
    let history = wait_for_history(
        &api,
        &alice.user.token,
        &room,
        10,
        |page| page.len() == 2,
        HISTORY_TIMEOUT,
    )
    .await;

    assert_eq!(reply["content"]["message"], "hello bob");
    let ids: Vec<&str> = history.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(
        ids,
        [answer.as_str(), hello.as_str()],
        "newest first: {history:?}"
    );
}
