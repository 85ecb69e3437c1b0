//! `/api/v1/accounts`: register, login, logout, me, list.

use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Router,
};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    error::{ApiError, Result},
    extract::{parse_limit, AuthUser, Json, MaybeAuthUser, Query},
    state::AppState,
};
use crate::{
    domain::{DisplayName, Password, User, UserId, Username},
    passwords::{self, HashError},
    sessions::ending::{self, Ended},
    store::{Account, StoreError},
};

/// Default and largest page of `GET /accounts`.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/register", post(register))
        .route("/api/v1/accounts/login", post(login))
        .route("/api/v1/accounts/logout", post(logout))
        .route("/api/v1/accounts/logout-all", post(logout_all))
        .route("/api/v1/accounts/me", get(me).post(me))
        .route("/api/v1/accounts", get(list))
}

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    name: String,
    password: Option<String>,
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: Option<String>,
}

#[tracing::instrument(skip_all, fields(username = %body.username))]
async fn register(
    State(state): State<AppState>,
    Json(body): Json<RegisterBody>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    let username = Username::parse(&body.username)?;
    let name = DisplayName::parse(&body.name)?;
    let password = body.password.as_deref().map(Password::parse).transpose()?;
    if password.is_none() && !state.passwordless_accounts {
        return Err(ApiError::BadRequest("password is required".to_owned()));
    }
    let password_hash =
        match password {
            Some(password) => Some(passwords::hash(password).await.map_err(
                |error| match error {
                    HashError::Busy(busy) => busy.into(),
                    HashError::Failed(cause) => ApiError::Internal(cause),
                },
            )?),
            None => None,
        };
    let account = Account {
        user: User {
            id: UserId::random(),
            username: username.as_str().to_owned(),
            name: name.as_str().to_owned(),
        },
        password_hash,
    };
    match state.storage.accounts.create(&username, &account).await {
        Err(StoreError::Conflict) => return Err(ApiError::Conflict("username is already taken")),
        other => other?,
    }
    let token = state
        .sessions
        .issue(account.user.id, state.token_ttl)
        .await?;
    tracing::info!(user_id = %account.user.id, "account registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "token": token.expose() })),
    ))
}

#[tracing::instrument(skip_all, fields(username = %body.username))]
async fn login(
    State(state): State<AppState>,
    Json(body): Json<LoginBody>,
) -> Result<axum::Json<Value>> {
    const REFUSED: ApiError = ApiError::Unauthorized("unknown username or wrong password");
    let username = Username::parse(&body.username)?;
    let key = username.canonical();
    if !state.limits.login_allowed(&key).await {
        return Err(ApiError::TooManyRequests(
            "too many failed logins for this username; try again in a minute",
        ));
    }
    let password = body.password.as_deref().map(Password::parse).transpose();
    let account = state.storage.accounts.by_username(&username).await?;
    let allowed = match (&account, password) {
        // An account without a password logs in by username, as the
        // original allowed, only where such accounts are allowed; a
        // password sent along is ignored.
        (
            Some(Account {
                password_hash: None,
                ..
            }),
            _,
        ) => state.passwordless_accounts,
        (_, Ok(Some(password))) => {
            let hash = account.as_ref().and_then(|a| a.password_hash.clone());
            passwords::verify(password, hash).await?
        }
        _ => false,
    };
    let Some(account) = account.filter(|_| allowed) else {
        state.limits.login_failed(&key).await;
        return Err(REFUSED);
    };
    state.limits.login_succeeded(&key).await;
    let token = state
        .sessions
        .issue(account.user.id, state.token_ttl)
        .await?;
    tracing::info!(user_id = %account.user.id, "logged in");
    Ok(axum::Json(json!({ "token": token.expose() })))
}

/// Ends the caller's session and closes the sockets opened with it.
async fn logout(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode> {
    let session = state.sessions.revoke(&caller.token).await?;
    ending::end_or_retry(state.sockets.clone(), &[session], Ended::Logout).await;
    tracing::info!(user_id = %caller.id, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the caller, this one included, and closes their
/// sockets everywhere.
async fn logout_all(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode> {
    let sessions = state.sessions.revoke_all(caller.id).await?;
    ending::end_or_retry(state.sockets.clone(), &sessions, Ended::LogoutEverywhere).await;
    tracing::info!(user_id = %caller.id, sessions = sessions.len(), "logged out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, caller: AuthUser) -> Result<axum::Json<User>> {
    let user = state
        .storage
        .accounts
        .by_id(caller.id)
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    Ok(axum::Json(user))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    after: Option<String>,
    /// Look one user up by username (exactly, without regard to case).
    username: Option<String>,
    /// Look users up by id: comma-separated, at most [`MAX_PAGE`].
    ids: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<Vec<User>>> {
    if query.username.is_some() || query.ids.is_some() {
        return look_up(&state, query).await.map(axum::Json);
    }
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let after = query
        .after
        .as_deref()
        .map(Username::parse)
        .transpose()
        .map_err(|error| ApiError::BadRequest(format!("after: {error}")))?;
    // One more than asked, so leaving the caller out never shortens a page
    // that is not the last: a short page must mean the end.
    let mut users = state
        .storage
        .accounts
        .list(after.as_ref(), limit + 1)
        .await?;
    match caller {
        Some(caller) if users.iter().any(|user| user.id == caller) => {
            users.retain(|user| user.id != caller)
        }
        _ => {}
    }
    users.truncate(limit);
    Ok(axum::Json(users))
}

/// `?username=` or `?ids=`: the named users that exist, in the order asked
/// (a client that shows names for ids, or opens a chat by username, needs
/// no walk through the whole list). The caller is not left out here.
async fn look_up(state: &AppState, query: ListQuery) -> Result<Vec<User>> {
    let accounts = &state.storage.accounts;
    match (query.username, query.ids) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "username and ids cannot be combined".to_owned(),
        )),
        _ if query.limit.is_some() || query.after.is_some() => Err(ApiError::BadRequest(
            "a look-up by username or ids takes no limit or after".to_owned(),
        )),
        (Some(username), None) => {
            let username = Username::parse(&username)
                .map_err(|error| ApiError::BadRequest(format!("username: {error}")))?;
            let account = accounts.by_username(&username).await?;
            Ok(account.map(|account| account.user).into_iter().collect())
        }
        (None, Some(ids)) => {
            let mut wanted: Vec<UserId> = Vec::new();
            for raw in ids.split(',') {
                let id = UserId::parse(raw)
                    .map_err(|error| ApiError::BadRequest(format!("ids: {error}")))?;
                if !wanted.contains(&id) {
                    wanted.push(id);
                }
            }
            if wanted.len() > MAX_PAGE {
                return Err(ApiError::BadRequest(format!(
                    "ids: at most {MAX_PAGE} at once"
                )));
            }
            let found =
                futures::future::try_join_all(wanted.into_iter().map(|id| accounts.by_id(id)));
            Ok(found.await?.into_iter().flatten().collect())
        }
        (None, None) => unreachable!("look_up is called with a username or ids"),
    }
}
