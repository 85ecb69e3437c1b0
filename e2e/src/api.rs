//! A typed HTTP client for the contract's routes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::unique_name;

/// An HTTP answer: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The parsed body.
    pub body: Value,
}

impl Answer {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts a NestJS-shaped error with `status`.
    #[track_caller]
    pub fn expect_error(self, status: u16) -> Value {
        let body = self.expect(status);
        assert_eq!(body["statusCode"], status, "error body: {body}");
        assert!(body["error"].is_string(), "error body: {body}");
        assert!(body["message"].is_string(), "error body: {body}");
        body
    }
}

/// A registered user and a live token.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The user id.
    pub id: String,
    /// The username it registered with.
    pub username: String,
    /// A live token.
    pub token: String,
}

/// The HTTP API of one server.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:3000`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Any request: `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request).await
    }

    /// A request with a raw body and content type, for malformed input.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body);
        Self::answer(request).await
    }

    async fn answer(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request failed");
        let status = response.status();
        let bytes = response.bytes().await.expect("body failed");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// `POST /api/v1/accounts/register`.
    pub async fn register(&self, body: Value) -> Answer {
        self.call(Method::POST, "/api/v1/accounts/register", None, Some(body))
            .await
    }

    /// `POST /api/v1/accounts/login`.
    pub async fn login(&self, body: Value) -> Answer {
        self.call(Method::POST, "/api/v1/accounts/login", None, Some(body))
            .await
    }

    /// `GET /api/v1/accounts/me`.
    pub async fn me(&self, token: &str) -> Answer {
        self.call(Method::GET, "/api/v1/accounts/me", Some(token), None)
            .await
    }

    /// `POST /api/v1/accounts/logout`.
    pub async fn logout(&self, token: &str) -> Answer {
        self.call(Method::POST, "/api/v1/accounts/logout", Some(token), None)
            .await
    }

    /// `GET /api/v1/accounts?<query>`.
    pub async fn list(&self, query: &str, token: Option<&str>) -> Answer {
        self.call(
            Method::GET,
            &format!("/api/v1/accounts?{query}"),
            token,
            None,
        )
        .await
    }

    /// `GET /api/v1/rooms?peerId=`.
    pub async fn room(&self, token: &str, peer: &str) -> Answer {
        self.call(
            Method::GET,
            &format!("/api/v1/rooms?peerId={peer}"),
            Some(token),
            None,
        )
        .await
    }

    /// `GET /api/v1/rooms/{room}/messages?<query>`.
    pub async fn history(&self, token: &str, room: &str, query: &str) -> Answer {
        self.call(
            Method::GET,
            &format!("/api/v1/rooms/{room}/messages?{query}"),
            Some(token),
            None,
        )
        .await
    }

    /// `POST /api/v1/rooms` `{"name", "participantIds"}`: a group room.
    pub async fn create_group(&self, token: &str, name: &str, participant_ids: &[&str]) -> Answer {
        let body = json!({"name": name, "participantIds": participant_ids});
        self.call(Method::POST, "/api/v1/rooms", Some(token), Some(body))
            .await
    }

    /// `GET /api/v1/rooms/{room}`: the room, its read markers and who is online.
    pub async fn room_details(&self, token: &str, room: &str) -> Answer {
        self.call(
            Method::GET,
            &format!("/api/v1/rooms/{room}"),
            Some(token),
            None,
        )
        .await
    }

    /// `POST /api/v1/rooms/{room}/members` `{"userIds"}`.
    pub async fn add_members(&self, token: &str, room: &str, user_ids: &[&str]) -> Answer {
        self.call(
            Method::POST,
            &format!("/api/v1/rooms/{room}/members"),
            Some(token),
            Some(json!({ "userIds": user_ids })),
        )
        .await
    }

    /// `DELETE /api/v1/rooms/{room}/members/me`.
    pub async fn leave_group(&self, token: &str, room: &str) -> Answer {
        self.call(
            Method::DELETE,
            &format!("/api/v1/rooms/{room}/members/me"),
            Some(token),
            None,
        )
        .await
    }

    /// Registers a fresh user (with a password) and returns it with its token.
    pub async fn new_user(&self) -> TestUser {
        let username = unique_name("u");
        let body = self
            .register(json!({"username": username, "name": "Test User", "password": "password123"}))
            .await
            .expect(201);
        let token = body["token"].as_str().expect("token").to_owned();
        let me = self.me(&token).await.expect(200);
        TestUser {
            id: me["id"].as_str().expect("id").to_owned(),
            username,
            token,
        }
    }

    /// The id of a new group room that `owner` creates with `members`.
    pub async fn group_of(&self, owner: &TestUser, members: &[&TestUser]) -> String {
        let ids: Vec<&str> = members.iter().map(|member| member.id.as_str()).collect();
        let body = self
            .create_group(&owner.token, "Test Group", &ids)
            .await
            .expect(201);
        body["roomId"].as_str().expect("roomId").to_owned()
    }

    /// The room id of two users.
    pub async fn room_of(&self, a: &TestUser, b: &TestUser) -> String {
        let body = self.room(&a.token, &b.id).await.expect(200);
        body["roomId"].as_str().expect("roomId").to_owned()
    }
}
