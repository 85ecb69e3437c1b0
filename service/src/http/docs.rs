//! `/api/docs/openapi.json`: the OpenAPI document of the HTTP API, kept in
//! `docs/openapi.json` and compiled in. A test checks it, and the Postman
//! collection beside it, against [`super::ROUTES`].

use axum::{http::header::CONTENT_TYPE, response::IntoResponse, routing::get, Router};

use super::state::AppState;

/// The OpenAPI 3 document.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The Postman collection, for the consistency test.
#[cfg(test)]
const POSTMAN: &str = include_str!("../../../docs/chat-service.postman_collection.json");

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/docs/openapi.json", get(openapi))
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ROUTES;
    use serde_json::Value;

    #[test]
    fn the_openapi_document_describes_every_route_and_no_other() {
        let document: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        let paths = document["paths"].as_object().expect("paths");
        let mut documented = Vec::new();
        for (path, operations) in paths {
            for method in operations.as_object().expect("operations").keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        let mut expected: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        expected.sort();
        documented.sort();
        assert_eq!(documented, expected);
    }

    #[test]
    fn the_postman_collection_has_a_request_for_every_route() {
        let collection: Value = serde_json::from_str(POSTMAN).expect("collection is JSON");
        let mut requests = Vec::new();
        collect_requests(&collection["item"], &mut requests);
        for (method, path) in ROUTES {
            // Postman writes path parameters as {{variables}} and adds queries.
            let pattern: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let found = requests.iter().any(|(m, url)| {
                let url_path = url.split('?').next().unwrap_or_default();
                let segments: Vec<&str> = url_path
                    .trim_start_matches("{{baseUrl}}")
                    .trim_start_matches('/')
                    .split('/')
                    .collect();
                m == method
                    && segments.len() == pattern.len()
                    && segments.iter().zip(&pattern).all(|(got, want)| {
                        got == want || (want.starts_with('{') && got.starts_with("{{"))
                    })
            });
            assert!(found, "no Postman request for {method} {path}");
        }
    }

    fn collect_requests(items: &Value, out: &mut Vec<(String, String)>) {
        for item in items.as_array().into_iter().flatten() {
            if let Some(request) = item.get("request") {
                let method = request["method"].as_str().unwrap_or_default().to_owned();
                let url = match &request["url"] {
                    Value::String(raw) => raw.clone(),
                    url => url["raw"].as_str().unwrap_or_default().to_owned(),
                };
                out.push((method, url));
            }
            collect_requests(&item["item"], out);
        }
    }
}
