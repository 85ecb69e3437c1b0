//! A socket's request head, copied out of the connection's read buffer.
//!
//! hyper parses a request's target and header values as slices of the
//! buffer it read them into (8 to 16 KiB), and engineioxide keeps the
//! request's head for the life of the session (`req_parts`, which
//! [`super::auth`] reads). The slices kept the whole buffer: 16 KiB of
//! the 40 each idle socket cost (heaptrack, 2,000 sockets; "Socket
//! memory" in docs/PERFORMANCE.md). A copy of the head is a few hundred
//! bytes.

use axum::{
    extract::{OriginalUri, Request},
    http::{HeaderMap, HeaderName, HeaderValue, Uri},
};

/// Where Socket.IO is served (socketioxide's default path).
const SOCKET_IO_PATH: &str = "/socket.io/";

/// `request` with its target and headers copied, when it is for
/// Socket.IO; other requests go on as they are (they end with their
/// response, and their buffer with them).
pub fn compact(request: Request) -> Request {
    if !request.uri().path().starts_with(SOCKET_IO_PATH) {
        return request;
    }
    let (mut head, body) = request.into_parts();
    head.uri = copied_uri(&head.uri);
    // axum's router keeps the target as it came, too.
    if let Some(OriginalUri(original)) = head.extensions.get_mut::<OriginalUri>() {
        *original = copied_uri(original);
    }
    head.headers = copied_headers(&head.headers);
    Request::from_parts(head, body)
}

fn copied_uri(uri: &Uri) -> Uri {
    // A parsed Uri prints back to what parses to the same Uri.
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn copied_headers(headers: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
        let value = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.append(name, value);
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::body::Bytes;

    #[test]
    fn a_socket_io_request_keeps_its_target_and_headers_in_memory_of_its_own() {
        let buffer = Bytes::from_static(b"/socket.io/?EIO=4&transport=websocket Bearer abc");
        let target = Uri::from_maybe_shared(buffer.slice(0..37)).unwrap();
        let token = HeaderValue::from_maybe_shared(buffer.slice(38..)).unwrap();
        let request = Request::builder()
            .uri(target)
            .header("authorization", token)
            .header("x-custom", "one")
            .header("x-custom", "two")
            .body(Body::empty())
            .unwrap();

        let compacted = compact(request);

        assert_eq!(compacted.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(compacted.headers()["authorization"], "Bearer abc");
        let custom: Vec<_> = compacted.headers().get_all("x-custom").iter().collect();
        assert_eq!(custom, ["one", "two"]);
        let value = compacted.headers()["authorization"]
            .as_bytes()
            .as_ptr_range();
        let shared = buffer.as_ptr_range();
        assert!(
            !shared.contains(&value.start),
            "the header value still points into the read buffer"
        );
    }

    #[test]
    fn other_requests_are_left_as_they_are() {
        let request = Request::builder()
            .uri("/api/v1/rooms?limit=5")
            .header("authorization", "Bearer abc")
            .body(Body::empty())
            .unwrap();
        let compacted = compact(request);
        assert_eq!(compacted.uri(), "/api/v1/rooms?limit=5");
        assert_eq!(compacted.headers()["authorization"], "Bearer abc");
    }
}
