//! Outcome claims in Cassandra (`migrations/0006_outcomes.cql`): a
//! lightweight transaction per claim, so of two processes claiming one
//! message at once exactly one wins. Only messages that failed a store
//! attempt are ever claimed, so the Paxos rounds stay off the hot path.

use async_trait::async_trait;
use scylla::{
    client::session::Session,
    statement::prepared::PreparedStatement,
    value::{CqlValue, Row},
};

use super::{unavailable, CassandraStore};
use crate::{
    domain::MessageId,
    store::{Claimed, Outcome, Outcomes, StoreError},
};

pub(super) struct Statements {
    claim: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(session: &Session, keyspace: &str) -> anyhow::Result<Self> {
        // Not idempotent for the driver: a retried claim could read its
        // own first write as another's. A failed claim is retried by the
        // pipeline, which reads the answer either way.
        let claim = session
            .prepare(format!(
                "INSERT INTO {keyspace}.message_outcomes (message_id, outcome, claimant) \
                 VALUES (?, ?, ?) IF NOT EXISTS"
            ))
            .await?;
        Ok(Self { claim })
    }
}

fn word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Stored => "stored",
        Outcome::Parked => "parked",
    }
}

fn outcome_of(word: &str) -> Option<Outcome> {
    match word {
        "stored" => Some(Outcome::Stored),
        "parked" => Some(Outcome::Parked),
        _ => None,
    }
}

#[async_trait]
impl Outcomes for CassandraStore {
    async fn claim(
        &self,
        id: MessageId,
        outcome: Outcome,
        claimant: &str,
    ) -> Result<Claimed, StoreError> {
        let answer = self
            .session
            .execute_unpaged(
                &self.statements.outcomes.claim,
                (id.as_i64(), word(outcome), claimant),
            )
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        if answer.column_specs().get_by_name("outcome").is_none() {
            // Only `[applied]` comes back when the claim was made now.
            return Ok(Claimed {
                outcome,
                ours: true,
            });
        }
        // Otherwise the row that holds comes with it.
        let row: Row = answer.first_row().map_err(unavailable)?;
        let text = |name: &str| {
            let (index, _) = answer.column_specs().get_by_name(name)?;
            match row.columns.get(index)? {
                Some(CqlValue::Text(text)) => Some(text.clone()),
                _ => None,
            }
        };
        let held = text("outcome")
            .as_deref()
            .and_then(outcome_of)
            .ok_or_else(|| unavailable(anyhow::anyhow!("an outcome claim held no outcome")))?;
        Ok(Claimed {
            outcome: held,
            ours: text("claimant").as_deref() == Some(claimant),
        })
    }
}
