//! The real stack itself: schema migrations, Kafka and Redis round trips.

use std::time::Duration;

use e2e::stack::Stack;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};
use redis::AsyncCommands;
use service::{config::Settings, store::cassandra};

fn cassandra_settings(keyspace: &str) -> service::config::CassandraSettings {
    let stack = Stack::get();
    Settings::from_lookup(|name| match name {
        "CASSANDRA_NODE_HOSTS" => Some(stack.cassandra.clone()),
        "CASSANDRA_KEYSPACE" => Some(keyspace.to_owned()),
        _ => None,
    })
    .expect("settings")
    .cassandra
    .expect("cassandra settings")
}

#[tokio::test]
async fn migrations_applied_twice_to_a_fresh_keyspace_change_nothing_the_second_time() {
    if !e2e::controls_processes() {
        return;
    }
    let keyspace = format!("{}_migrate", Stack::get().run.keyspace);
    let settings = cassandra_settings(&keyspace);
    let session = cassandra::connect(&settings).await;

    let first = cassandra::migrate::apply(&session, &settings)
        .await
        .unwrap();
    let second = cassandra::migrate::apply(&session, &settings)
        .await
        .unwrap();

    assert_eq!(first, cassandra::migrate::MIGRATIONS.len());
    assert_eq!(second, 0);
    let tables: Vec<String> = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (&keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .map(|row| row.unwrap().0)
        .collect();
    let mut tables = tables;
    tables.sort();
    assert_eq!(
        tables,
        [
            "groups_by_id",
            "members_by_room",
            "message_buckets_by_room",
            "message_outcomes",
            "messages_by_room",
            "read_markers",
            "rooms_by_id",
            "rooms_by_pair",
            "rooms_by_user",
            "schema_migrations",
            "users_by_id",
            "users_by_username",
        ]
    );
    let clustering: Vec<(String, String)> = session
        .query_unpaged(
            "SELECT column_name, clustering_order FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = 'messages_by_room'",
            (&keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String, String)>()
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, order)| order != "none")
        .collect();
    assert_eq!(clustering, [("id".to_owned(), "desc".to_owned())]);
    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), ())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_record_produced_to_kafka_is_consumed_with_its_key() {
    if !e2e::controls_processes() {
        return;
    }
    let stack = Stack::get();
    let topic = format!("{}roundtrip", stack.run.topic_prefix);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let payload = format!("hello {}", uuid::Uuid::new_v4());
    producer
        .send(
            FutureRecord::to(&topic).key("room-1").payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .expect("produce failed");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka)
        .set("group.id", format!("{}roundtrip", stack.run.consumer_group))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let record = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("no record within 60 s")
        .unwrap();

    assert_eq!(record.key(), Some("room-1".as_bytes()));
    assert_eq!(record.payload(), Some(payload.as_bytes()));
}

#[tokio::test]
async fn redis_answers_in_resp3_and_keeps_a_value_with_its_ttl() {
    if !e2e::controls_processes() {
        return;
    }
    let stack = Stack::get();
    let client = redis::Client::open(stack.redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}roundtrip", stack.run.cache_prefix);

    let _: () = connection.set_ex(&key, "value", 60).await.unwrap();
    let value: String = connection.get(&key).await.unwrap();
    let ttl: i64 = connection.ttl(&key).await.unwrap();
    let hello: redis::Value = redis::cmd("HELLO")
        .arg(3)
        .query_async(&mut connection)
        .await
        .unwrap();

    assert_eq!(value, "value");
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    assert!(format!("{hello:?}").contains("proto"), "{hello:?}");
    let _: () = connection.del(&key).await.unwrap();
}
