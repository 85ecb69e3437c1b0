//! A group keeps the delivery guarantees when an instance dies mid-burst:
//! two members send (one through each instance), instance A is SIGKILLed
//! while both are sending, and every member connected to the survivor gets
//! each accepted message once, in each sender's order.

use e2e::stack::Topology;
use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use e2e::{
    chat::{group_message, join},
    ChatSocket,
};
use serde_json::Value;

use crate::{deployment::Deployment, one_at_a_time};

/// Messages each sender tries to send.
const MESSAGES: usize = 60;
/// Accepted messages of the doomed sender before the kill.
const BEFORE_THE_KILL: usize = 15;
/// How long the survivor has to deliver everything after the kill.
const DELIVERED_WITHIN: Duration = Duration::from_secs(90);

/// What one sender learnt: the accepted ids in send order, and the ids it
/// sent without hearing back (the instance died): those may arrive or not,
/// but not twice.
#[derive(Default)]
struct Sent {
    accepted: Vec<String>,
    unknown: usize,
}

/// Sends up to [`MESSAGES`], one ack at a time, until the connection dies.
async fn send(socket: &ChatSocket, room: &str, accepted: &AtomicUsize) -> Sent {
    let mut sent = Sent::default();
    let mut n = 0;
    while n < MESSAGES {
        let mut message = group_message(room, &format!("m{n}"));
        message["clientMessageId"] = Value::String(format!("c{n}"));
        match socket
            .emit_with_ack_within("message", message, Duration::from_secs(5))
            .await
        {
            Ok(Some(ack)) if ack["status"] == "accepted" => {
                sent.accepted
                    .push(ack["messageId"].as_str().unwrap().to_owned());
                accepted.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
            Ok(Some(ack)) if ack["error"]["name"] == "rate_limited" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Some(ack)) => panic!("a message was refused: {ack}"),
            Ok(None) | Err(_) => {
                // The instance is gone: this one's outcome is unknown.
                sent.unknown += 1;
                return sent;
            }
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_an_instance_dies_mid_burst_every_group_member_on_the_survivor_gets_each_accepted_message_once_in_order(
) {
    if !crate::on_topology(Topology::Single) {
        return;
    }
    let _one_at_a_time = one_at_a_time().await;
    let mut deployment = Deployment::spawn(&[]).await;
    let (doomed, survivor) = (deployment.apis[0].clone(), deployment.apis[1].clone());
    let doomed_sender = doomed.new_user().await;
    let survivor_sender = survivor.new_user().await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(survivor.new_user().await);
    }
    let mut ids: Vec<&str> = members.iter().map(|member| member.id.as_str()).collect();
    ids.push(&doomed_sender.id);
    let room = survivor
        .create_group(&survivor_sender.token, "crash", &ids)
        .await
        .expect(201)["roomId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut receivers = Vec::new();
    for member in &members {
        let socket = ChatSocket::connect(survivor.base(), &member.token).await;
        join(&socket, &room).await;
        receivers.push(socket);
    }
    let through_a = ChatSocket::connect(doomed.base(), &doomed_sender.token).await;
    let through_b = ChatSocket::connect(survivor.base(), &survivor_sender.token).await;

    let accepted_through_a = Arc::new(AtomicUsize::new(0));
    let killer = async {
        while accepted_through_a.load(Ordering::SeqCst) < BEFORE_THE_KILL {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        deployment.servers[0].kill();
    };
    let accepted_through_b = AtomicUsize::new(0);
    let ((), from_a, from_b) = tokio::join!(
        killer,
        send(&through_a, &room, &accepted_through_a),
        send(&through_b, &room, &accepted_through_b),
    );
    assert!(from_a.accepted.len() >= BEFORE_THE_KILL);
    assert_eq!(
        from_b.accepted.len(),
        MESSAGES,
        "the survivor's sender was cut off"
    );

    let author_of: HashMap<&str, usize> = from_a
        .accepted
        .iter()
        .map(|id| (id.as_str(), 0))
        .chain(from_b.accepted.iter().map(|id| (id.as_str(), 1)))
        .collect();
    for (n, receiver) in receivers.iter_mut().enumerate() {
        let mut got: Vec<(String, String)> = Vec::new();
        let deadline = tokio::time::Instant::now() + DELIVERED_WITHIN;
        let all_in = |got: &[(String, String)]| {
            let ids: HashSet<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
            author_of.keys().all(|id| ids.contains(id))
        };
        while !all_in(&got) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(reply) = receiver
                .try_expect_event("reply", &|data: &Value| data["roomId"] == room, left)
                .await
            else {
                panic!("member {n} did not get every accepted message within {DELIVERED_WITHIN:?}");
            };
            got.push((
                reply["id"].as_str().unwrap().to_owned(),
                reply["authorId"].as_str().unwrap().to_owned(),
            ));
        }
        // A little more for anything that would come twice.
        while let Some(reply) = receiver
            .try_expect_event(
                "reply",
                &|data: &Value| data["roomId"] == room,
                Duration::from_secs(2),
            )
            .await
        {
            got.push((
                reply["id"].as_str().unwrap().to_owned(),
                reply["authorId"].as_str().unwrap().to_owned(),
            ));
        }
        let mut seen = HashSet::new();
        for (id, _) in &got {
            assert!(seen.insert(id.clone()), "member {n} got {id} twice");
        }
        for (sender, sent) in [(&doomed_sender, &from_a), (&survivor_sender, &from_b)] {
            let order: Vec<&str> = got
                .iter()
                .filter(|(id, author)| *author == sender.id && author_of.contains_key(id.as_str()))
                .map(|(id, _)| id.as_str())
                .collect();
            let expected: Vec<&str> = sent.accepted.iter().map(String::as_str).collect();
            assert_eq!(
                order, expected,
                "member {n}: {}'s messages out of order or missing",
                sender.id
            );
        }
        let unknown = got
            .iter()
            .filter(|(id, _)| !author_of.contains_key(id.as_str()))
            .count();
        assert!(
            unknown <= from_a.unknown,
            "member {n} got messages nobody sent"
        );
    }
    println!(
        "group crash: {} accepted through A before it died ({} unknown), {} through B; every member got each once, in order",
        from_a.accepted.len(),
        from_a.unknown,
        from_b.accepted.len()
    );
}
