//! The Cassandra store. Every query names its partition key; there is no
//! `ALLOW FILTERING` and no secondary index. The schema lives in
//! `service/migrations/` and is applied by [`migrate::apply`].

mod accounts;
mod counted;
mod groups;
mod messages;
pub mod migrate;
mod outcomes;
mod read_state;
mod rooms;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use scylla::{
    client::{
        execution_profile::ExecutionProfile, session::Session, session_builder::SessionBuilder,
    },
    frame::types::{Consistency, SerialConsistency},
    response::query_result::QueryRowsResult,
    serialize::row::SerializeRow,
    statement::prepared::PreparedStatement,
};

use super::{Probe, Storage, StoreError};
use crate::config::{self, CassandraSettings};

const BACKEND: &str = "cassandra";

fn unavailable(error: impl Into<anyhow::Error>) -> StoreError {
    StoreError::unavailable(BACKEND, error)
}

/// Opens a session, retrying with back-off until Cassandra answers: a
/// freshly started node takes a while, and the service should wait for it
/// rather than die.
pub async fn connect(settings: &CassandraSettings) -> Session {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1u32;
    loop {
        match try_connect(settings).await {
            Ok(session) => return session,
            Err(error) => {
                tracing::warn!(
                    hosts = ?settings.hosts,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    cause = %error,
                    "waiting for Cassandra to answer"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    }
}

async fn try_connect(settings: &CassandraSettings) -> anyhow::Result<Session> {
    let profile = ExecutionProfile::builder()
        .consistency(consistency(settings.consistency))
        .serial_consistency(Some(serial_consistency(settings.consistency)))
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&settings.hosts)
        .connection_timeout(Duration::from_secs(5))
        .default_execution_profile_handle(profile.into_handle());
    if let Some(datacenter) = &settings.datacenter {
        builder = builder.prefer_datacenter(datacenter.clone());
    }
    if let Some((user, password)) = &settings.credentials {
        builder = builder.user(user, password.expose());
    }
    let session = builder.build().await?;
    session
        .query_unpaged("SELECT release_version FROM system.local", ())
        .await?;
    Ok(session)
}

/// The driver's level for `level`.
fn consistency(level: config::Consistency) -> Consistency {
    match level {
        config::Consistency::One => Consistency::One,
        config::Consistency::LocalOne => Consistency::LocalOne,
        config::Consistency::Quorum => Consistency::Quorum,
        config::Consistency::LocalQuorum => Consistency::LocalQuorum,
        config::Consistency::EachQuorum => Consistency::EachQuorum,
        config::Consistency::All => Consistency::All,
    }
}

/// The serial level that goes with `level`: lightweight transactions agree
/// among the local datacenter's replicas when `level` is a local one.
fn serial_consistency(level: config::Consistency) -> SerialConsistency {
    if level.is_local() {
        SerialConsistency::LocalSerial
    } else {
        SerialConsistency::Serial
    }
}

/// Accounts, rooms and messages in one keyspace.
pub struct CassandraStore {
    session: counted::CountedSession,
    statements: Statements,
    bucket_millis: i64,
    /// Room buckets known to be recorded, so a busy room does not rewrite
    /// its bucket row with every message. Cleared when it grows large.
    known_buckets: Mutex<HashSet<(uuid::Uuid, i64)>>,
}

struct Statements {
    insert_user_by_username: PreparedStatement,
    insert_user_by_id: PreparedStatement,
    user_by_username: PreparedStatement,
    user_by_id: PreparedStatement,
    users_first_page: PreparedStatement,
    users_after: PreparedStatement,
    room_by_pair: PreparedStatement,
    room_by_pair_serial: PreparedStatement,
    claim_room: PreparedStatement,
    insert_room_by_id: PreparedStatement,
    room_by_id: PreparedStatement,
    insert_bucket: PreparedStatement,
    insert_message: PreparedStatement,
    delete_message: PreparedStatement,
    buckets_all: PreparedStatement,
    buckets_up_to: PreparedStatement,
    buckets_from: PreparedStatement,
    messages_latest: PreparedStatement,
    messages_before: PreparedStatement,
    messages_after: PreparedStatement,
    groups: groups::Statements,
    read: read_state::Statements,
    outcomes: outcomes::Statements,
}

impl Storage {
    /// Everything in Cassandra.
    pub fn cassandra(store: CassandraStore) -> Self {
        Self::on(store)
    }
}

impl CassandraStore {
    /// Prepares every statement against `keyspace`, which must exist
    /// (see [`migrate::apply`]).
    pub async fn new(
        session: Arc<Session>,
        keyspace: &str,
        bucket: Duration,
    ) -> Result<Self, StoreError> {
        let statements = Statements::prepare(&session, keyspace)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            session: counted::CountedSession::new(session),
            statements,
            bucket_millis: i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX).max(1),
            known_buckets: Mutex::new(HashSet::new()),
        })
    }
}

impl Statements {
    async fn prepare(session: &Session, keyspace: &str) -> anyhow::Result<Self> {
        let prepare = |cql: String| prepare_idempotent(session, cql);
        let message_columns =
            "id, author_id, type, content_type, message, client_message_id, created_at";
        let mut room_by_pair_serial = prepare(format!(
            "SELECT room_id, created_at FROM {keyspace}.rooms_by_pair \
             WHERE user_low = ? AND user_high = ?"
        ))
        .await?;
        // Read what a lightweight transaction wrote, at its serial level.
        let serial = session
            .get_default_execution_profile_handle()
            .to_profile()
            .get_serial_consistency();
        room_by_pair_serial.set_consistency(match serial {
            Some(SerialConsistency::LocalSerial) => Consistency::LocalSerial,
            _ => Consistency::Serial,
        });
        Ok(Self {
            insert_user_by_username: prepare(format!(
                "INSERT INTO {keyspace}.users_by_username \
                 (username_key, id, username, name, password_hash, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            insert_user_by_id: prepare(format!(
                "INSERT INTO {keyspace}.users_by_id (id, username, name, created_at) \
                 VALUES (?, ?, ?, ?)"
            ))
            .await?,
            user_by_username: prepare(format!(
                "SELECT id, username, name, password_hash FROM {keyspace}.users_by_username \
                 WHERE username_key = ?"
            ))
            .await?,
            user_by_id: prepare(format!(
                "SELECT id, username, name FROM {keyspace}.users_by_id WHERE id = ?"
            ))
            .await?,
            users_first_page: prepare(format!(
                "SELECT id, username, name FROM {keyspace}.users_by_username LIMIT ?"
            ))
            .await?,
            users_after: prepare(format!(
                "SELECT id, username, name FROM {keyspace}.users_by_username \
                 WHERE token(username_key) > token(?) LIMIT ?"
            ))
            .await?,
            room_by_pair: prepare(format!(
                "SELECT room_id, created_at FROM {keyspace}.rooms_by_pair \
             WHERE user_low = ? AND user_high = ?"
            ))
            .await?,
            room_by_pair_serial,
            claim_room: prepare(format!(
                "INSERT INTO {keyspace}.rooms_by_pair (user_low, user_high, room_id, created_at) \
                 VALUES (?, ?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            insert_room_by_id: prepare(format!(
                "INSERT INTO {keyspace}.rooms_by_id (room_id, user_low, user_high, created_at) \
                 VALUES (?, ?, ?, ?)"
            ))
            .await?,
            room_by_id: prepare(format!(
                "SELECT user_low, user_high FROM {keyspace}.rooms_by_id WHERE room_id = ?"
            ))
            .await?,
            insert_bucket: prepare(format!(
                "INSERT INTO {keyspace}.message_buckets_by_room (room_id, bucket) VALUES (?, ?)"
            ))
            .await?,
            insert_message: prepare(format!(
                "INSERT INTO {keyspace}.messages_by_room \
                 (room_id, bucket, {message_columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            delete_message: prepare(format!(
                "DELETE FROM {keyspace}.messages_by_room WHERE room_id = ? AND bucket = ? AND id = ?"
            ))
            .await?,
            buckets_all: prepare(format!(
                "SELECT bucket FROM {keyspace}.message_buckets_by_room WHERE room_id = ?"
            ))
            .await?,
            buckets_up_to: prepare(format!(
                "SELECT bucket FROM {keyspace}.message_buckets_by_room \
                 WHERE room_id = ? AND bucket <= ?"
            ))
            .await?,
            buckets_from: prepare(format!(
                "SELECT bucket FROM {keyspace}.message_buckets_by_room \
                 WHERE room_id = ? AND bucket >= ? ORDER BY bucket ASC"
            ))
            .await?,
            messages_latest: prepare(format!(
                "SELECT {message_columns} FROM {keyspace}.messages_by_room \
                 WHERE room_id = ? AND bucket = ? LIMIT ?"
            ))
            .await?,
            messages_before: prepare(format!(
                "SELECT {message_columns} FROM {keyspace}.messages_by_room \
                 WHERE room_id = ? AND bucket = ? AND id < ? LIMIT ?"
            ))
            .await?,
            messages_after: prepare(format!(
                "SELECT {message_columns} FROM {keyspace}.messages_by_room \
                 WHERE room_id = ? AND bucket = ? AND id > ? ORDER BY id ASC LIMIT ?"
            ))
            .await?,
            groups: groups::Statements::prepare(session, keyspace).await?,
            read: read_state::Statements::prepare(session, keyspace).await?,
            outcomes: outcomes::Statements::prepare(session, keyspace).await?,
        })
    }
}

impl CassandraStore {
    /// Runs `statement` with `values` and returns its rows.
    async fn query_rows(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryRowsResult, StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)
    }

    /// Runs `statement`, which returns no rows, with `values`.
    async fn run(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Prepares `cql` marked idempotent, so the driver may retry it.
async fn prepare_idempotent(session: &Session, cql: String) -> anyhow::Result<PreparedStatement> {
    let mut statement = session.prepare(cql).await?;
    statement.set_is_idempotent(true);
    Ok(statement)
}

/// Reads the `[applied]` column of a lightweight transaction's answer.
fn was_applied(result: scylla::response::query_result::QueryResult) -> Result<bool, StoreError> {
    use scylla::value::{CqlValue, Row};
    let row: Row = result
        .into_rows_result()
        .map_err(unavailable)?
        .first_row()
        .map_err(unavailable)?;
    Ok(matches!(
        row.columns.first(),
        Some(Some(CqlValue::Boolean(true)))
    ))
}

#[async_trait]
impl Probe for CassandraStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
