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
    if let Some(bytes) = resident_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(bytes as f64);
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The process's resident memory, from `/proc/self/status` (Linux; `None`
/// elsewhere): what the abuse tests read to show a bound holds.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::resident_bytes().is_some_and(|bytes| bytes > 1 << 20));
        }
    }
}
