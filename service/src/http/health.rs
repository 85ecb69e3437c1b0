//! `/health`, `/ready` and `/metrics`.

use std::time::Duration;

use axum::{
    extract::State,
    http::{header::CONTENT_TYPE, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Map, Value};

use super::state::AppState;

/// How long a backend may take to answer `/ready`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when every backend answers; else 503 naming the first that does not.
async fn ready(State(state): State<AppState>) -> Response {
    let checks = futures::future::join_all(state.probes.iter().map(|probe| async move {
        let answer = tokio::time::timeout(PROBE_TIMEOUT, probe.ping()).await;
        (probe.name(), matches!(answer, Ok(Ok(()))))
    }))
    .await;
    let report: Map<String, Value> = checks
        .iter()
        .map(|(name, up)| (name.to_string(), json!(if *up { "up" } else { "down" })))
        .collect();
    match checks.iter().find(|(_, up)| !up) {
        None => Json(json!({ "status": "ready", "checks": report })).into_response(),
        Some((down, _)) => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            let body = json!({
                "statusCode": status.as_u16(),
                "error": status.canonical_reason(),
                "message": format!("{down} is not answering"),
                "checks": report,
            });
            (status, Json(body)).into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
