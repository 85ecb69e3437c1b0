//! The HTTP side: routes under `/api/v1`, health, readiness and metrics,
//! with tracing, metrics and a body limit around them.

mod accounts;
mod docs;
pub mod error;
pub mod extract;
mod groups;
mod health;
mod read_state;
mod rooms;
mod state;
mod web;

use std::{path::Path, time::Instant};

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request},
    middleware::{self, Next},
    response::IntoResponse,
    Router,
};
use tower_http::trace::TraceLayer;

pub use self::state::AppState;

/// Every route the service answers, as `(method, path)`; the OpenAPI
/// document and the Postman collection are tested against this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/accounts/register"),
    ("POST", "/api/v1/accounts/login"),
    ("POST", "/api/v1/accounts/logout"),
    ("POST", "/api/v1/accounts/logout-all"),
    ("GET", "/api/v1/accounts/me"),
    ("POST", "/api/v1/accounts/me"),
    ("GET", "/api/v1/accounts"),
    ("GET", "/api/v1/rooms"),
    ("POST", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{roomId}"),
    ("POST", "/api/v1/rooms/{roomId}/members"),
    ("DELETE", "/api/v1/rooms/{roomId}/members/me"),
    ("POST", "/api/v1/rooms/{roomId}/read"),
    ("GET", "/api/v1/rooms/{roomId}/messages"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/api/docs/openapi.json"),
];

/// The HTTP router with its layers.
pub fn router(state: AppState, body_limit: usize, web_root: &Path) -> Router {
    Router::new()
        .merge(accounts::router())
        .merge(rooms::router())
        .merge(health::router())
        .merge(docs::router())
        .fallback_service(web::files(web_root))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    route,
                    user_id = tracing::field::Empty,
                )
            }),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Counts requests and times them by route and status.
async fn record_metrics(request: Request, next: Next) -> impl IntoResponse {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
