//! Extractors that turn requests into trusted values, answering bad input
//! in the contract's shape: JSON and query wrappers whose rejections are
//! 400/413, and [`AuthUser`] / [`MaybeAuthUser`] that keep auth out of
//! handlers.

use axum::{
    extract::{
        rejection::JsonRejection, rejection::QueryRejection, FromRequest, FromRequestParts, Request,
    },
    http::{header::AUTHORIZATION, request::Parts, HeaderMap, StatusCode},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{error::ApiError, state::AppState};
use crate::{domain::UserId, sessions::Token};

/// A JSON object body; malformed JSON, or JSON that is not an object, is
/// a 400, an oversized body a 413. (Serde would read an array as the
/// struct's fields in order; the contract's bodies are objects.)
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let value = match axum::Json::<Value>::from_request(request, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if !value.is_object() {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".to_owned(),
            ));
        }
        serde_json::from_value(value).map(Self).map_err(|error| {
            ApiError::BadRequest(format!(
                "Failed to deserialize the JSON body into the target type: {error}"
            ))
        })
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    ApiError::BadRequest(rejection.body_text())
}

/// Query parameters; a malformed query string is a 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// Parses `?limit=`: absent means `default`, else 1 to `max`.
pub fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|limit| (1..=max).contains(limit))
        .ok_or_else(|| ApiError::BadRequest(format!("limit must be an integer from 1 to {max}")))
}

/// The token of a request: `Authorization: <token>` or `Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<Token> {
    Token::from_authorization(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

/// A caller with a live session. Missing or dead tokens are a 401.
pub struct AuthUser {
    /// Who is calling.
    pub id: UserId,
    /// The token they called with, so logout can revoke it.
    pub token: Token,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized(
            "missing or malformed Authorization header",
        ))?;
        let session = state
            .sessions
            .resolve(&token)
            .await?
            .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
        tracing::Span::current().record("user_id", tracing::field::display(session.user));
        Ok(Self {
            id: session.user,
            token,
        })
    }
}

/// A caller who may or may not have a live session; a bad token counts as
/// none, but a session store that is down is still a 503.
pub struct MaybeAuthUser(pub Option<UserId>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = bearer_token(&parts.headers) else {
            return Ok(Self(None));
        };
        let session = state.sessions.resolve(&token).await?;
        Ok(Self(session.map(|session| session.user)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_token_is_read_bare_or_after_bearer() {
        let token = Token::generate();
        let bare = bearer_token(&headers(token.expose()));
        let bearer = bearer_token(&headers(&format!("Bearer {}", token.expose())));
        assert_eq!(bare.as_ref(), Some(&token));
        assert_eq!(bearer.as_ref(), Some(&token));
    }

    #[test]
    fn other_schemes_and_garbage_are_not_tokens() {
        assert!(bearer_token(&headers("Basic dXNlcjpwYXNzd29yZA==")).is_none());
        assert!(bearer_token(&headers("")).is_none());
        assert!(bearer_token(&HeaderMap::new()).is_none());
    }
}
