//! A bad-input corpus: malformed HTTP requests and socket payloads, each
//! answered with the contract's error, after which the service is healthy.

use e2e::{
    chat::{error_name, text_message, Chatter},
    Api, TestServer,
};
use reqwest::Method;
use serde_json::{json, Value};

/// One malformed HTTP request and the status it must get.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    auth: bool,
    body: Body,
    status: u16,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

fn cases(room: &str) -> Vec<Case> {
    let register = "/api/v1/accounts/register".to_owned();
    let login = "/api/v1/accounts/login".to_owned();
    let history = |query: &str| format!("/api/v1/rooms/{room}/messages?{query}");
    let case = |what, method, path: String, auth, body, status| Case {
        what,
        method,
        path,
        auth,
        body,
        status,
    };
    let json_register = |what, body: Value| {
        case(
            what,
            Method::POST,
            register.clone(),
            false,
            Body::Json(body),
            400,
        )
    };
    let deep = (0..200).fold(json!("x"), |inner, _| json!({ "a": inner }));
    vec![
        json_register(
            "sql injection username",
            json!({"username": "x' OR '1'='1", "name": "n"}),
        ),
        json_register(
            "cql comment username",
            json!({"username": "abc;--", "name": "n"}),
        ),
        json_register(
            "script tag username",
            json!({"username": "<script>", "name": "n"}),
        ),
        json_register(
            "jndi username",
            json!({"username": "${jndi:ldap://x}", "name": "n"}),
        ),
        json_register(
            "path traversal username",
            json!({"username": "../../etc", "name": "n"}),
        ),
        json_register(
            "nul byte username",
            json!({"username": "abc\u{0}def", "name": "n"}),
        ),
        json_register("emoji username", json!({"username": "🙂🙂🙂", "name": "n"})),
        json_register(
            "right-to-left override",
            json!({"username": "abc\u{202e}def", "name": "n"}),
        ),
        json_register(
            "control character name",
            json!({"username": "validname1", "name": "a\u{7}b"}),
        ),
        json_register("username boolean", json!({"username": true, "name": "n"})),
        json_register(
            "username object",
            json!({"username": {"$ne": null}, "name": "n"}),
        ),
        json_register("name number", json!({"username": "validname2", "name": 3})),
        json_register(
            "password array",
            json!({"username": "validname3", "name": "n", "password": ["a"]}),
        ),
        json_register("deeply nested", json!({"username": deep, "name": "n"})),
        json_register("empty object", json!({})),
        case(
            "truncated json",
            Method::POST,
            register.clone(),
            false,
            Body::Raw("application/json", b"{\"username\":".to_vec()),
            400,
        ),
        case(
            "invalid utf-8",
            Method::POST,
            register.clone(),
            false,
            Body::Raw(
                "application/json",
                b"{\"username\":\"\xc3\x28\",\"name\":\"n\"}".to_vec(),
            ),
            400,
        ),
        case(
            "trailing garbage",
            Method::POST,
            register.clone(),
            false,
            Body::Raw(
                "application/json",
                b"{\"username\":\"abcd\",\"name\":\"n\"} x".to_vec(),
            ),
            400,
        ),
        case(
            "form encoded",
            Method::POST,
            register.clone(),
            false,
            Body::Raw(
                "application/x-www-form-urlencoded",
                b"username=abcd&name=n".to_vec(),
            ),
            400,
        ),
        case(
            "no content type",
            Method::POST,
            register.clone(),
            false,
            Body::Raw("", b"{}".to_vec()),
            400,
        ),
        case(
            "xml body",
            Method::POST,
            login.clone(),
            false,
            Body::Raw("application/xml", b"<login/>".to_vec()),
            400,
        ),
        case(
            "login username number",
            Method::POST,
            login.clone(),
            false,
            Body::Json(json!({"username": 5})),
            400,
        ),
        case(
            "login empty body",
            Method::POST,
            login.clone(),
            false,
            Body::Raw("application/json", Vec::new()),
            400,
        ),
        case(
            "oversized body",
            Method::POST,
            register.clone(),
            false,
            Body::Json(json!({"username": "abcd", "name": "x".repeat(200_000)})),
            413,
        ),
        case(
            "list limit huge",
            Method::GET,
            "/api/v1/accounts?limit=99999999999999999999".to_owned(),
            false,
            Body::None,
            400,
        ),
        case(
            "list limit float",
            Method::GET,
            "/api/v1/accounts?limit=1e3".to_owned(),
            false,
            Body::None,
            400,
        ),
        case(
            "list after injection",
            Method::GET,
            "/api/v1/accounts?after=x'%20OR%201=1".to_owned(),
            false,
            Body::None,
            400,
        ),
        case(
            "room peer injection",
            Method::GET,
            "/api/v1/rooms?peerId=1%20OR%201=1".to_owned(),
            true,
            Body::None,
            400,
        ),
        case(
            "room peer empty",
            Method::GET,
            "/api/v1/rooms?peerId=".to_owned(),
            true,
            Body::None,
            400,
        ),
        case(
            "room peer nil uuid",
            Method::GET,
            format!("/api/v1/rooms?peerId={}", uuid::Uuid::nil()),
            true,
            Body::None,
            404,
        ),
        case(
            "history room traversal",
            Method::GET,
            "/api/v1/rooms/..%2F..%2Fetc/messages".to_owned(),
            true,
            Body::None,
            400,
        ),
        case(
            "history id overflow",
            Method::GET,
            history("latestMessageId=18446744073709551616"),
            true,
            Body::None,
            400,
        ),
        case(
            "history id hex",
            Method::GET,
            history("latestMessageId=0x10"),
            true,
            Body::None,
            400,
        ),
        case(
            "history id negative",
            Method::GET,
            history("latestMessageId=-1&context=after"),
            true,
            Body::None,
            400,
        ),
        case(
            "history context case",
            Method::GET,
            history("latestMessageId=5&context=BEFORE"),
            true,
            Body::None,
            400,
        ),
        case(
            "history limit negative",
            Method::GET,
            history("limit=-10"),
            true,
            Body::None,
            400,
        ),
        case(
            "history without token",
            Method::GET,
            history(""),
            false,
            Body::None,
            401,
        ),
        case(
            "me without token",
            Method::GET,
            "/api/v1/accounts/me".to_owned(),
            false,
            Body::None,
            401,
        ),
        case(
            "logout without token",
            Method::POST,
            "/api/v1/accounts/logout".to_owned(),
            false,
            Body::None,
            401,
        ),
        case(
            "unknown route",
            Method::GET,
            "/api/v1/admin".to_owned(),
            false,
            Body::None,
            404,
        ),
    ]
}

on_both_backends! {
    async fn every_malformed_http_request_gets_the_contract_error_and_the_service_stays_healthy(server: &TestServer) {
        let api = Api::new(server.url());
        let (alice, bob) = (api.new_user().await, api.new_user().await);
        let room = api.room_of(&alice, &bob).await;
        // A new connection per request: after a 413 the server closes the
        // connection without reading the body, and a pooled connection
        // reused in that moment would fail on the client side.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();

        let cases = cases(&room);
        assert!(cases.len() >= 40);
        for case in cases {
            let mut request = client.request(case.method.clone(), format!("{}{}", api.base(), case.path));
            if case.auth {
                request = request.header("Authorization", &alice.token);
            }
            request = match case.body {
                Body::None => request,
                Body::Json(value) => request.json(&value),
                Body::Raw("", bytes) => request.body(bytes),
                Body::Raw(content_type, bytes) => request.header("Content-Type", content_type).body(bytes),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, case.status, "{}: {body}", case.what);
            assert_eq!(body["statusCode"], case.status, "{}: {body}", case.what);
            assert!(body["message"].is_string(), "{}: {body}", case.what);
        }

        api.call(Method::GET, "/health", None, None).await.expect(200);
        api.me(&alice.token).await.expect(200);
    }

    async fn every_malformed_socket_payload_gets_an_error_and_the_socket_keeps_working(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = Chatter::new(&api).await;
        let bob = api.new_user().await;
        let room = api.room_of(&alice.user, &bob).await;
        let payloads = [
            json!({"roomId": "'; DROP TABLE messages; --"}),
            json!({"roomId": "<script>alert(1)</script>"}),
            json!({"roomId": room, "type": "private", "content": {"type": "text", "message": "\u{0}"}}),
            json!({"roomId": room, "type": "private", "content": {"type": "text", "message": ["a"]}}),
            json!({"roomId": room, "type": "private", "content": {"type": "text"}}),
            json!({"roomId": room, "type": "private", "content": null}),
            json!({"roomId": room, "type": "PRIVATE", "content": {"type": "text", "message": "hi"}}),
            json!({"roomId": room, "type": "private", "content": {"type": "text", "message": "x".repeat(10_000)}}),
            json!(true),
            json!([]),
        ];
        for payload in payloads {
            let ack = alice.socket.emit_with_ack("message", payload.clone()).await;
            assert_eq!(error_name(&ack), "bad_request", "{payload}");
        }
        for payload in [json!({"roomId": 12}), json!("room"), json!(null), json!({})] {
            let ack = alice.socket.emit_with_ack("join", payload.clone()).await;
            assert_eq!(error_name(&ack), "bad_request", "join {payload}");
        }

        let ack = alice.socket.emit_with_ack("message", text_message(&room, "still alive", None)).await;
        assert_eq!(ack["status"], "accepted", "{ack}");
    }
}
