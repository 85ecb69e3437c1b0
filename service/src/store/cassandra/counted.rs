//! The session as the store uses it: every request it sends counted in
//! `backend_requests_total{backend="cassandra"}`, so the load report can
//! say how many requests each message costs.

use std::{ops::Deref, sync::Arc};

use scylla::{
    client::session::Session,
    errors::ExecutionError,
    response::query_result::QueryResult,
    serialize::row::SerializeRow,
    statement::{prepared::PreparedStatement, Statement},
};

/// A session whose requests are counted.
pub(super) struct CountedSession(Arc<Session>);

impl CountedSession {
    pub(super) fn new(session: Arc<Session>) -> Self {
        Self(session)
    }

    /// [`Session::execute_unpaged`], counted.
    pub(super) async fn execute_unpaged(
        &self,
        prepared: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryResult, ExecutionError> {
        count();
        self.0.execute_unpaged(prepared, values).await
    }

    /// [`Session::query_unpaged`], counted.
    pub(super) async fn query_unpaged(
        &self,
        statement: impl Into<Statement>,
        values: impl SerializeRow,
    ) -> Result<QueryResult, ExecutionError> {
        count();
        self.0.query_unpaged(statement, values).await
    }
}

impl Deref for CountedSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

fn count() {
    metrics::counter!("backend_requests_total", "backend" => "cassandra").increment(1);
}
