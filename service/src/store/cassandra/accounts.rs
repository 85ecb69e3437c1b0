use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::{unavailable, was_applied, CassandraStore};
use crate::{
    domain::{User, UserId, Username},
    store::{Account, Accounts, StoreError},
};

type UserRow = (Uuid, String, String);

fn user((id, username, name): UserRow) -> User {
    User {
        id: UserId(id),
        username,
        name,
    }
}

impl CassandraStore {
    async fn users(
        &self,
        result: Result<scylla::response::query_result::QueryResult, scylla::errors::ExecutionError>,
    ) -> Result<Vec<User>, StoreError> {
        let rows = result
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let users = rows
            .rows::<UserRow>()
            .map_err(unavailable)?
            .map(|row| row.map(user))
            .collect::<Result<_, _>>()
            .map_err(unavailable)?;
        Ok(users)
    }
}

#[async_trait]
impl Accounts for CassandraStore {
    async fn create(&self, username: &Username, account: &Account) -> Result<(), StoreError> {
        let now = Utc::now();
        let user = &account.user;
        let claimed = self
            .session
            .execute_unpaged(
                &self.statements.insert_user_by_username,
                (
                    username.canonical(),
                    user.id.0,
                    &user.username,
                    &user.name,
                    &account.password_hash,
                    now,
                ),
            )
            .await
            .map_err(unavailable)?;
        if !was_applied(claimed)? {
            return Err(StoreError::Conflict);
        }
        self.session
            .execute_unpaged(
                &self.statements.insert_user_by_id,
                (user.id.0, &user.username, &user.name, now),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn by_username(&self, username: &Username) -> Result<Option<Account>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.statements.user_by_username, (username.canonical(),))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let row = rows
            .maybe_first_row::<(Uuid, String, String, Option<String>)>()
            .map_err(unavailable)?;
        Ok(row.map(|(id, username, name, password_hash)| Account {
            user: user((id, username, name)),
            password_hash,
        }))
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.statements.user_by_id, (id.0,))
            .await;
        Ok(self.users(result).await?.into_iter().next())
    }

    async fn list(&self, after: Option<&Username>, limit: usize) -> Result<Vec<User>, StoreError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let result = match after {
            None => {
                self.session
                    .execute_unpaged(&self.statements.users_first_page, (limit,))
                    .await
            }
            Some(after) => {
                self.session
                    .execute_unpaged(&self.statements.users_after, (after.canonical(), limit))
                    .await
            }
        };
        self.users(result).await
    }
}
