//! The storage traits against both implementations: the in-memory store
//! and Cassandra, with a tiny bucket width so history spans many buckets.

use std::{sync::Arc, time::Duration};

use e2e::stack::Stack;
use service::{
    config::Settings,
    domain::{HistoryPage, Message, MessageId, MessageText, RoomId, UserId},
    store::{cassandra, Storage},
};

/// Width of a bucket in these tests: 1 ms, so each message below lands in
/// a bucket of its own unless two share a millisecond.
const BUCKET: Duration = Duration::from_millis(1);

async fn cassandra_storage() -> Storage {
    let stack = Stack::get();
    let keyspace = format!("{}_store", stack.run.keyspace);
    let settings = Settings::from_lookup(|name| match name {
        "CASSANDRA_NODE_HOSTS" => Some(stack.cassandra.clone()),
        "CASSANDRA_KEYSPACE" => Some(keyspace.clone()),
        _ => None,
    })
    .unwrap()
    .cassandra
    .unwrap();
    let session = Arc::new(cassandra::connect(&settings).await);
    cassandra::migrate::apply(&session, &settings)
        .await
        .unwrap();
    Storage::cassandra(
        cassandra::CassandraStore::new(session, &keyspace, BUCKET)
            .await
            .unwrap(),
    )
}

/// 45 messages, 3 per millisecond over 15 milliseconds, oldest first.
fn messages(room: RoomId) -> Vec<Message> {
    let author = UserId::random();
    let text = MessageText::parse("hello").unwrap();
    let base_ms: i64 = 1_000_000_000; // milliseconds after the id epoch
    (0..45)
        .map(|n| {
            let raw = ((base_ms + n / 3) << 22) | (n % 3);
            let id = MessageId::from_i64(raw).unwrap();
            Message::new_text(id, room, author, &text, Some(format!("c{n}")))
        })
        .collect()
}

fn ids(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|m| m.id.as_i64()).collect()
}

async fn paging_visits_every_message_once(storage: Storage) {
    let room = RoomId::random();
    let all = messages(room);
    // Saved out of order and twice: order comes from ids, saves are idempotent.
    for message in all.iter().rev().chain(all.iter()) {
        storage.messages.save(message).await.unwrap();
    }
    let newest_first: Vec<i64> = ids(&all).into_iter().rev().collect();

    let latest = storage
        .messages
        .history(room, HistoryPage::Latest { limit: 7 })
        .await
        .unwrap();
    assert_eq!(ids(&latest), newest_first[..7]);

    // Backwards from the newest with `before`.
    let mut seen = ids(&latest);
    loop {
        let oldest = MessageId::from_i64(*seen.last().unwrap()).unwrap();
        let page = storage
            .messages
            .history(
                room,
                HistoryPage::Before {
                    id: oldest,
                    limit: 7,
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(ids(&page));
    }
    assert_eq!(seen, newest_first);

    // Forwards from the oldest with `after`: each page is the next one, newest first.
    let oldest = all[0].id;
    let mut forward = vec![oldest.as_i64()];
    let mut cursor = oldest;
    loop {
        let page = storage
            .messages
            .history(
                room,
                HistoryPage::After {
                    id: cursor,
                    limit: 7,
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        let page_ids = ids(&page);
        assert!(
            page_ids.windows(2).all(|pair| pair[0] > pair[1]),
            "newest first"
        );
        forward.extend(page_ids.iter().rev());
        cursor = page[0].id;
    }
    assert_eq!(forward, ids(&all));

    let stored = &latest[0];
    assert_eq!(
        stored,
        all.last().unwrap(),
        "a message reads back as written"
    );
}

#[tokio::test]
async fn history_paging_visits_every_message_once_in_memory() {
    if !e2e::controls_processes() {
        return;
    }
    paging_visits_every_message_once(Storage::in_memory()).await;
}

#[tokio::test]
async fn history_paging_visits_every_message_once_across_cassandra_buckets() {
    if !e2e::controls_processes() {
        return;
    }
    paging_visits_every_message_once(cassandra_storage().await).await;
}

#[tokio::test]
async fn an_unknown_room_has_no_history_and_no_participants() {
    if !e2e::controls_processes() {
        return;
    }
    for storage in [Storage::in_memory(), cassandra_storage().await] {
        let room = RoomId::random();
        let history = storage
            .messages
            .history(room, HistoryPage::Latest { limit: 10 })
            .await
            .unwrap();
        assert!(history.is_empty());
        assert!(storage.rooms.participants(room).await.unwrap().is_none());
    }
}
