//! Versioned schema migrations, applied idempotently.
//!
//! The CQL files in `service/migrations/` are compiled in. Each statement is
//! written to be re-runnable (`IF NOT EXISTS`), and applied versions are
//! recorded in `schema_migrations`, so running the migration twice, or
//! from two instances at once, changes nothing the second time.

use scylla::client::session::Session;

use crate::config::CassandraSettings;

/// One migration: a version and the CQL it applies.
pub struct Migration {
    /// Applied in increasing order.
    pub version: i32,
    /// File name, for the log and the `schema_migrations` table.
    pub name: &'static str,
    /// Statements separated by `;`.
    pub cql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_accounts.cql",
        cql: include_str!("../../../migrations/0001_accounts.cql"),
    },
    Migration {
        version: 2,
        name: "0002_rooms.cql",
        cql: include_str!("../../../migrations/0002_rooms.cql"),
    },
    Migration {
        version: 3,
        name: "0003_messages.cql",
        cql: include_str!("../../../migrations/0003_messages.cql"),
    },
    Migration {
        version: 4,
        name: "0004_groups.cql",
        cql: include_str!("../../../migrations/0004_groups.cql"),
    },
    Migration {
        version: 5,
        name: "0005_read_state.cql",
        cql: include_str!("../../../migrations/0005_read_state.cql"),
    },
    Migration {
        version: 6,
        name: "0006_outcomes.cql",
        cql: include_str!("../../../migrations/0006_outcomes.cql"),
    },
];

/// Splits a CQL file into statements, dropping `--` comment lines.
pub fn statements(cql: &str) -> Vec<String> {
    let without_comments: String = cql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Creates the keyspace if needed and applies every migration not yet
/// recorded. Returns how many were applied now.
pub async fn apply(session: &Session, settings: &CassandraSettings) -> anyhow::Result<usize> {
    let keyspace = &settings.keyspace;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
                settings.replication
            ),
            (),
        )
        .await?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
                 (version int PRIMARY KEY, name text, applied_at timestamp)"
            ),
            (),
        )
        .await?;
    session.await_schema_agreement().await?;
    session.use_keyspace(keyspace, false).await?;

    let applied: Vec<i32> = session
        .query_unpaged(
            format!("SELECT version FROM {keyspace}.schema_migrations"),
            (),
        )
        .await?
        .into_rows_result()?
        .rows::<(i32,)>()?
        .map(|row| row.map(|(version,)| version))
        .collect::<Result<_, _>>()?;

    let mut count = 0;
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        for statement in statements(migration.cql) {
            session.query_unpaged(statement, ()).await?;
        }
        session.await_schema_agreement().await?;
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (version, name, applied_at) \
                     VALUES (?, ?, toTimestamp(now()))"
                ),
                (migration.version, migration.name),
            )
            .await?;
        tracing::info!(
            keyspace,
            migration = migration.name,
            "schema migration applied"
        );
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_every_statement_is_idempotent() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|pair| pair[0] < pair[1]));
        for migration in MIGRATIONS {
            let statements = statements(migration.cql);
            assert!(!statements.is_empty(), "{}", migration.name);
            for statement in statements {
                assert!(statement.contains("IF NOT EXISTS"), "{statement}");
                assert!(!statement.to_uppercase().contains("ALLOW FILTERING"));
            }
        }
    }

    #[test]
    fn comments_and_blank_statements_are_dropped() {
        let parsed =
            statements("-- a comment\nCREATE TABLE IF NOT EXISTS t (a int PRIMARY KEY);\n\n");
        assert_eq!(parsed, ["CREATE TABLE IF NOT EXISTS t (a int PRIMARY KEY)"]);
    }
}
