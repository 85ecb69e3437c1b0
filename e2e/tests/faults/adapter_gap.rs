//! One instance loses its Redis connection, and with it the subscription
//! that brings it what the other instance relays, while Redis stays up
//! for the other instance, which keeps storing and relaying. Redis pub/sub
//! keeps nothing: before the mend (`service/src/realtime/mend.rs`) the
//! messages relayed in that window never reached the cut instance's
//! sockets, and nothing told them. Now the instance catches its sockets up
//! from the history when its subscription is back: a socket connected
//! there before the cut gets every message once, in order.

use std::{net::SocketAddr, time::Duration};

use e2e::{
    chat::{join, send, Chatter},
    proxy::CuttableProxy,
    stack::Topology,
    Api, Backend, ChatSocket, TestServer,
};
use serde_json::Value;

use crate::one_at_a_time;

/// How long the cut instance's Redis is unreachable.
const CUT_FOR: Duration = Duration::from_secs(4);
/// Messages sent, about ten a second, the cut in the middle.
const MESSAGES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_instance_loses_its_redis_subscription_its_sockets_still_get_every_message_once_in_order(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let a = TestServer::spawn(Backend::Stack).await;
    let env = |name: &str| {
        a.env()
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.clone())
            .expect("the stack's Redis")
    };
    let redis: SocketAddr = format!("{}:{}", env("CACHE_HOST"), env("CACHE_PORT"))
        .parse()
        .expect("Redis address");
    let proxy = CuttableProxy::start(redis).await;
    let port = proxy.port().to_string();
    let b = a
        .spawn_peer_with(&[("CACHE_HOST", "127.0.0.1"), ("CACHE_PORT", &port)])
        .await;
    let (api_a, api_b) = (Api::new(a.url()), Api::new(b.url()));
    let alice = Chatter::new(&api_a).await;
    let bob = api_a.new_user().await;
    let room = api_a.room_of(&alice.user, &bob).await;
    let mut bob_socket = ChatSocket::connect(api_b.base(), &bob.token).await;
    join(&bob_socket, &room).await;

    let sending = async {
        let mut sent = Vec::with_capacity(MESSAGES);
        for n in 0..MESSAGES {
            sent.push(send(&alice.socket, &room, &format!("m{n}")).await);
            // Traffic at about ten a second, so the cut falls among it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    };
    let cutting = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        proxy.cut();
        eprintln!("instance b's Redis cut");
        tokio::time::sleep(CUT_FOR).await;
        proxy.restore();
        eprintln!("instance b's Redis restored");
    };
    let (sent, ()) = tokio::join!(sending, cutting);

    let mut received: Vec<String> = Vec::with_capacity(sent.len());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while received.len() < sent.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let reply = bob_socket
            .try_expect_event(
                "reply",
                &|data: &Value| data["roomId"] == room.as_str(),
                left,
            )
            .await;
        let Some(reply) = reply else {
            let missing: Vec<&String> = sent.iter().filter(|id| !received.contains(id)).collect();
            panic!(
                "bob (on the cut instance) got {} of {} messages; missing {:?}",
                received.len(),
                sent.len(),
                missing
            );
        };
        received.push(reply["id"].as_str().expect("reply id").to_owned());
    }
    assert_eq!(
        received, sent,
        "bob's replies differ from what was sent (order or duplicates)"
    );
    let extra = bob_socket
        .try_expect_event(
            "reply",
            &|data: &Value| data["roomId"] == room.as_str(),
            Duration::from_secs(1),
        )
        .await;
    assert!(extra.is_none(), "a reply after the last one: {extra:?}");
    let mends = b.metric("adapter_mends_total").await;
    eprintln!(
        "instance b mended {mends} time(s), {} replies",
        b.metric("adapter_mended_replies_total").await
    );
    assert!(mends >= 1.0, "the cut instance never noticed its outage");
}
