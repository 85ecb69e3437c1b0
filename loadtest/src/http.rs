//! The HTTP calls of a chatter's setup, made through goose so they appear
//! in its reports (named by route, not by URL, so 5,000 room lookups are
//! one row).

use goose::prelude::*;
use serde_json::Value;

/// A failed call: what and why, for the log.
pub type CallError = String;

/// The password of a chatter's account where the target requires one.
const PASSWORD: &str = "load-test-password";

/// `POST /api/v1/accounts/register`; returns the token. Without a password
/// first (the scripts that start the service allow passwordless accounts:
/// argon2 would otherwise dominate the ramp); a target that requires one
/// (`400 password is required`, the default) gets [`PASSWORD`].
pub async fn register(
    user: &mut GooseUser,
    username: &str,
    name: &str,
) -> Result<String, CallError> {
    let body = serde_json::json!({ "username": username, "name": name });
    match register_with(user, &body).await {
        Err(error) if error.contains("password is required") => {
            let body =
                serde_json::json!({ "username": username, "name": name, "password": PASSWORD });
            register_with(user, &body).await
        }
        other => other,
    }
}

async fn register_with(user: &mut GooseUser, body: &Value) -> Result<String, CallError> {
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/v1/accounts/register")
        .map_err(|error| format!("register: {error}"))?
        .json(body);
    let name = "/api/v1/accounts/register";
    let request = GooseRequest::builder()
        .name(name)
        .set_request_builder(builder)
        .build();
    let answer = send(user, request, name).await?;
    string_field(&answer, "token")
}

/// `GET /api/v1/accounts/me`; returns the user id.
pub async fn me(user: &mut GooseUser, token: &str) -> Result<String, CallError> {
    let builder = user
        .get_request_builder(&GooseMethod::Get, "/api/v1/accounts/me")
        .map_err(|error| format!("me: {error}"))?
        .header("Authorization", token);
    let name = "/api/v1/accounts/me";
    let request = GooseRequest::builder()
        .name(name)
        .set_request_builder(builder)
        .build();
    let answer = send(user, request, name).await?;
    string_field(&answer, "id")
}

/// `GET /api/v1/rooms?peerId=`: the pair's private room; returns its id.
pub async fn room(user: &mut GooseUser, token: &str, peer: &str) -> Result<String, CallError> {
    let path = format!("/api/v1/rooms?peerId={peer}");
    let builder = user
        .get_request_builder(&GooseMethod::Get, &path)
        .map_err(|error| format!("room: {error}"))?
        .header("Authorization", token);
    let name = "/api/v1/rooms?peerId=";
    let request = GooseRequest::builder()
        .name(name)
        .set_request_builder(builder)
        .build();
    let answer = send(user, request, name).await?;
    string_field(&answer, "roomId")
}

/// `POST /api/v1/rooms`: a group room named `name` of the caller and
/// `participants`; returns the room id.
pub async fn create_room(
    user: &mut GooseUser,
    token: &str,
    name: &str,
    participants: &[String],
) -> Result<String, CallError> {
    let body = serde_json::json!({ "name": name, "participantIds": participants });
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/v1/rooms")
        .map_err(|error| format!("create room: {error}"))?
        .header("Authorization", token)
        .json(&body);
    let name = "/api/v1/rooms";
    let request = GooseRequest::builder()
        .name(name)
        .set_request_builder(builder)
        .build();
    let answer = send(user, request, name).await?;
    string_field(&answer, "roomId")
}

async fn send(
    user: &mut GooseUser,
    request: GooseRequest<'_>,
    name: &str,
) -> Result<Value, CallError> {
    let goose = user
        .request(request)
        .await
        .map_err(|error| format!("{name}: {error}"))?;
    let response = goose.response.map_err(|error| format!("{name}: {error}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{name}: {status} {body}"));
    }
    Ok(body)
}

fn string_field(body: &Value, field: &str) -> Result<String, CallError> {
    body[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {field:?} in {body}"))
}
