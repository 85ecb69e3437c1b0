//! The chat page: the files `make web` builds into `web/dist`, served at
//! `/` from disk. Everything the router does not match falls through to
//! them, and what is not a file there gets the API's JSON 404.

use std::{convert::Infallible, path::Path};

use axum::{
    extract::Request,
    handler::HandlerWithoutStateExt,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::{services::ServeDir, set_header::SetResponseHeaderLayer};

use super::error::not_found;

/// The page loads only its own scripts and talks only to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The static files under `root`, with the API's 404 for everything else.
pub fn files(
    root: &Path,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static {
    if !root.join("index.html").is_file() {
        tracing::warn!(
            root = %root.display(),
            "the chat page is not built (run `make web`); / answers 404"
        );
    }
    let files = ServeDir::new(root)
        .append_index_html_on_directories(true)
        .call_fallback_on_method_not_allowed(true)
        .fallback(not_found.into_service());
    ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        // The files change with each build and are small: revalidate
        // (ServeDir answers 304 from Last-Modified).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .service(files)
        // Names the request body type, which ServeDir leaves generic.
        .map_request(|request: Request| request)
        .map_response(IntoResponse::into_response)
}
