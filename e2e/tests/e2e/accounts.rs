//! `/api/v1/accounts`: register, login, logout, me, list.

use e2e::{unique_name, Api, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

on_both_backends! {
    async fn registering_returns_a_token_that_me_accepts(server: &TestServer) {
        let api = Api::new(server.url());
        let username = unique_name("Ada");

        let body = api
            .register(json!({"username": username, "name": "Ada Lovelace", "password": "analytical"}))
            .await
            .expect(201);
        let token = body["token"].as_str().unwrap();
        let me = api.me(token).await.expect(200);

        assert_eq!(me["username"], username.as_str());
        assert_eq!(me["name"], "Ada Lovelace");
        assert!(uuid::Uuid::parse_str(me["id"].as_str().unwrap()).is_ok());
        assert!(token.len() >= 22, "at least 128 bits");
        assert!(!token.contains(me["id"].as_str().unwrap()));
    }

    async fn me_answers_get_and_post_with_bare_or_bearer_tokens(server: &TestServer) {
        let api = Api::new(server.url());
        let user = api.new_user().await;

        let bearer = format!("Bearer {}", user.token);
        let by_post = api
            .call(Method::POST, "/api/v1/accounts/me", Some(&user.token), None)
            .await
            .expect(200);
        let by_bearer = api.me(&bearer).await.expect(200);

        assert_eq!(by_post["id"], user.id.as_str());
        assert_eq!(by_bearer["id"], user.id.as_str());
    }

    async fn me_without_a_valid_token_is_401(server: &TestServer) {
        let api = Api::new(server.url());
        let forged = format!("{}:password", uuid::Uuid::new_v4());

        api.call(Method::GET, "/api/v1/accounts/me", None, None).await.expect_error(401);
        api.me("not-a-token-at-all-but-long-enough").await.expect_error(401);
        api.me(&forged).await.expect_error(401);
        api.me("Basic dXNlcjpwYXNz").await.expect_error(401);
    }

    async fn a_taken_username_is_409_without_regard_to_case(server: &TestServer) {
        let api = Api::new(server.url());
        let username = unique_name("Grace");
        api.register(json!({"username": username, "name": "Grace", "password": "password123"})).await.expect(201);

        let again = api.register(json!({"username": username.to_uppercase(), "name": "Other", "password": "password123"})).await;

        again.expect_error(409);
    }

    async fn racing_registrations_of_one_name_give_one_201_and_the_rest_409(server: &TestServer) {
        let api = Api::new(server.url());
        let username = unique_name("race");

        let attempts = (0..8).map(|n| {
            let name = if n % 2 == 0 { username.clone() } else { username.to_uppercase() };
            let api = api.clone();
            async move { api.register(json!({"username": name, "name": "Racer", "password": "password123"})).await }
        });
        let answers = futures::future::join_all(attempts).await;

        let mut statuses: Vec<u16> = answers.iter().map(|answer| answer.status.as_u16()).collect();
        statuses.sort();
        assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    }

    async fn invalid_registrations_are_400_and_create_nothing(server: &TestServer) {
        let api = Api::new(server.url());
        let name = unique_name("x");
        let cases: Vec<Value> = vec![
            json!({"username": "ab", "name": "Short"}),
            json!({"username": "a".repeat(33), "name": "Long"}),
            json!({"username": format!("{name} space"), "name": "Space"}),
            json!({"username": format!("{name}é"), "name": "Accent"}),
            json!({"username": format!("{name}'--"), "name": "Quote"}),
            json!({"username": name, "name": "   "}),
            json!({"username": name, "name": ""}),
            json!({"username": name, "name": "n".repeat(101)}),
            json!({"username": name, "name": "Pw", "password": "short"}),
            json!({"username": name, "name": "Pw", "password": "p".repeat(129)}),
            json!({"username": name}),
            json!({"name": "No username"}),
            json!({"username": 12345, "name": "Number"}),
            json!({"username": name, "name": ["array"]}),
            json!({"username": name, "name": "Pw", "password": 12345678}),
            json!({"username": null, "name": "Null"}),
            json!(["not", "an", "object"]),
            json!("just a string"),
        ];
        for case in cases {
            let answer = api.register(case.clone()).await;
            assert_eq!(answer.status.as_u16(), 400, "{case} -> {}", answer.body);
            answer.expect_error(400);
        }
        for (content_type, body) in [
            ("application/json", b"{\"username\": ".to_vec()),
            ("application/json", b"".to_vec()),
            ("application/json", vec![0xff, 0xfe, 0x00]),
            ("text/plain", br#"{"username":"plain","name":"x"}"#.to_vec()),
        ] {
            let answer = api.raw(Method::POST, "/api/v1/accounts/register", content_type, body).await;
            assert!(
                answer.status.as_u16() == 400,
                "{content_type}: {} {}",
                answer.status,
                answer.body
            );
        }

        let login = api.login(json!({"username": name})).await;
        login.expect_error(401);
    }

    async fn an_oversized_body_is_413(server: &TestServer) {
        let api = Api::new(server.url());
        let huge = json!({"username": unique_name("big"), "name": "x".repeat(100_000)});

        api.register(huge).await.expect_error(413);
    }

    async fn login_checks_the_password_of_accounts_that_have_one(server: &TestServer) {
        let api = Api::new(server.url());
        let user = api.new_user().await;

        let good = api.login(json!({"username": user.username, "password": "password123"})).await.expect(200);
        let upper = api
            .login(json!({"username": user.username.to_uppercase(), "password": "password123"}))
            .await
            .expect(200);
        api.login(json!({"username": user.username, "password": "wrong-password"})).await.expect_error(401);
        api.login(json!({"username": user.username})).await.expect_error(401);
        api.login(json!({"username": unique_name("ghost"), "password": "password123"})).await.expect_error(401);
        api.login(json!({"username": 1})).await.expect_error(400);

        let token = good["token"].as_str().unwrap();
        assert_ne!(token, user.token, "each login gets a fresh token");
        assert_eq!(api.me(token).await.expect(200)["id"], user.id.as_str());
        assert_eq!(api.me(upper["token"].as_str().unwrap()).await.expect(200)["id"], user.id.as_str());
    }

    async fn repeated_failed_logins_for_a_username_are_throttled_with_429(server: &TestServer) {
        let api = Api::new(server.url());
        let user = api.new_user().await;
        let other = api.new_user().await;

        for _ in 0..10 {
            api.login(json!({"username": user.username, "password": "not-the-password"}))
                .await
                .expect_error(401);
        }
        let throttled = api
            .login(json!({"username": user.username, "password": "password123"}))
            .await;

        throttled.expect_error(429);
        api.login(json!({"username": other.username, "password": "password123"}))
            .await
            .expect(200);
    }

    async fn by_default_an_account_needs_a_password(server: &TestServer) {
        let api = Api::new(server.url());
        let username = unique_name("nopass");
        let refused = api.register(json!({"username": username, "name": "No Password"})).await;

        assert_eq!(refused.expect_error(400)["message"], "password is required");
        api.login(json!({"username": username})).await.expect_error(401);
    }

    async fn logout_revokes_only_the_token_it_was_called_with(server: &TestServer) {
        let api = Api::new(server.url());
        let user = api.new_user().await;
        let second = api.login(json!({"username": user.username, "password": "password123"})).await.expect(200);
        let second = second["token"].as_str().unwrap();

        let answer = api.logout(&user.token).await;

        assert_eq!(answer.status.as_u16(), 204);
        api.me(&user.token).await.expect_error(401);
        api.logout(&user.token).await.expect_error(401);
        api.me(second).await.expect(200);
    }

    async fn listing_pages_through_every_user_once_and_leaves_the_caller_out(server: &TestServer) {
        let api = Api::new(server.url());
        let caller = api.new_user().await;
        let mut mine = Vec::new();
        for _ in 0..7 {
            mine.push(api.new_user().await.id);
        }

        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let query = match &after {
                Some(after) => format!("limit=3&after={after}"),
                None => "limit=3".to_owned(),
            };
            let page = api.list(&query, Some(&caller.token)).await.expect(200);
            let page = page.as_array().unwrap().clone();
            assert!(page.len() <= 3);
            for user in &page {
                assert!(user["id"].is_string() && user["username"].is_string() && user["name"].is_string());
                assert!(user.get("password").is_none() && user.get("passwordHash").is_none());
                seen.push(user["id"].as_str().unwrap().to_owned());
            }
            if page.len() < 3 {
                break;
            }
            after = Some(page.last().unwrap()["username"].as_str().unwrap().to_owned());
        }

        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no user twice");
        assert!(mine.iter().all(|id| seen.contains(id)), "every user visited");
        assert!(!seen.contains(&caller.id), "the caller is left out");
        let anonymous = api.list("limit=200", None).await.expect(200);
        assert!(anonymous.as_array().unwrap().len() <= 200);
    }

    async fn bad_paging_of_the_user_list_is_400(server: &TestServer) {
        let api = Api::new(server.url());

        for query in ["limit=0", "limit=201", "limit=ten", "limit=-1", "after=no%20spaces", "after=a"] {
            api.list(query, None).await.expect_error(400);
        }
    }

    async fn users_are_looked_up_by_username_or_by_ids(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = api.new_user().await;
        let bob = api.new_user().await;

        let found = api.list(&format!("username={}", alice.username.to_uppercase()), Some(&bob.token)).await.expect(200);
        assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
        assert_eq!(found[0]["id"], alice.id.as_str());
        assert_eq!(found[0]["username"], alice.username.as_str());
        let nobody = api.list(&format!("username={}", unique_name("nobody")), None).await.expect(200);
        assert_eq!(nobody, json!([]));

        // In the order asked, unknown ids left out, repeats once, the caller included.
        let unknown = uuid::Uuid::new_v4();
        let ids = format!("ids={},{unknown},{},{}", bob.id, alice.id, bob.id);
        let found = api.list(&ids, Some(&alice.token)).await.expect(200);
        let found: Vec<&str> = found.as_array().unwrap().iter().map(|user| user["id"].as_str().unwrap()).collect();
        assert_eq!(found, [bob.id.as_str(), alice.id.as_str()]);
    }

    async fn bad_look_ups_are_400(server: &TestServer) {
        let api = Api::new(server.url());
        let alice = api.new_user().await;
        let too_many = (0..201_u128)
            .map(|id| uuid::Uuid::from_u128(id).to_string())
            .collect::<Vec<_>>()
            .join(",");

        for query in [
            "username=a".to_owned(),
            "username=no%20spaces".to_owned(),
            "ids=not-a-uuid".to_owned(),
            format!("ids={},", alice.id),
            format!("ids={too_many}"),
            format!("username={}&ids={}", alice.username, alice.id),
            format!("username={}&limit=5", alice.username),
            format!("ids={}&after={}", alice.id, alice.username),
        ] {
            api.list(&query, None).await.expect_error(400);
        }
    }

    async fn the_default_page_holds_at_most_50_users(server: &TestServer) {
        let api = Api::new(server.url());
        api.new_user().await;

        let page = api.list("", None).await.expect(200);

        let page = page.as_array().unwrap();
        assert!(!page.is_empty() && page.len() <= 50);
    }
}

on_both_backends! {
    async fn unknown_routes_are_404_in_the_nestjs_shape(server: &TestServer) {
        let api = Api::new(server.url());

        let body = api.call(Method::GET, "/api/v1/nothing-here", None, None).await.expect_error(404);
        assert_eq!(body["error"], "Not Found");
        // Past the chat page's files too, and for a method files do not answer.
        api.call(Method::GET, "/nothing-here.js", None, None).await.expect_error(404);
        api.call(Method::GET, "/../Cargo.toml", None, None).await.expect_error(404);
        api.call(Method::POST, "/index.html", None, None).await.expect_error(404);
    }

    async fn the_chat_page_is_served_at_the_root_with_its_socket_io_client(server: &TestServer) {
        let client = reqwest::Client::new();
        let page = client.get(format!("{}/", server.url())).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(policy.contains("default-src 'self'"), "{policy}");
        assert!(page.text().await.unwrap().contains("main.js"));

        let client_js = client.get(format!("{}/vendor/socket.io.esm.min.js", server.url())).send().await.unwrap();
        assert_eq!(client_js.status(), 200);
        assert!(client_js.headers()["content-type"].to_str().unwrap().contains("javascript"));
        assert!(client_js.text().await.unwrap().contains("Socket.IO"));
    }

    async fn health_and_readiness_answer_when_every_backend_is_up(server: &TestServer) {
        let api = Api::new(server.url());

        api.call(Method::GET, "/health", None, None).await.expect(200);
        let ready = api.call(Method::GET, "/ready", None, None).await.expect(200);

        assert_eq!(ready["status"], "ready");
        if server.backend() == e2e::Backend::Stack {
            assert_eq!(ready["checks"]["cassandra"], "up");
            assert_eq!(ready["checks"]["redis"], "up");
        }
    }

    async fn metrics_count_requests_by_route_and_status(server: &TestServer) {
        let api = Api::new(server.url());
        api.call(Method::GET, "/health", None, None).await.expect(200);

        let text = reqwest::get(format!("{}/metrics", server.url())).await.unwrap().text().await.unwrap();

        assert!(text.contains("http_requests_total"), "{text}");
        assert!(text.contains("route=\"/health\""), "{text}");
        assert!(text.contains("status=\"200\""), "{text}");
    }
}

/// `PASSWORDLESS_ACCOUNTS=true`, for the original's clients: an account
/// registered without a password logs in by username alone; one with a
/// password still needs it.
async fn passwordless_accounts_log_in_by_username_where_allowed(backend: e2e::Backend) {
    let server = TestServer::spawn_with(backend, &[("PASSWORDLESS_ACCOUNTS", "true")]).await;
    let api = Api::new(server.url());
    let username = unique_name("nopass");
    api.register(json!({"username": username, "name": "No Password"}))
        .await
        .expect(201);

    let body = api.login(json!({"username": username})).await.expect(200);

    api.me(body["token"].as_str().unwrap()).await.expect(200);
    let guarded = api.new_user().await;
    api.login(json!({"username": guarded.username}))
        .await
        .expect_error(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwordless_accounts_log_in_by_username_where_allowed_in_memory() {
    if e2e::external_target().is_none() {
        passwordless_accounts_log_in_by_username_where_allowed(e2e::Backend::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwordless_accounts_log_in_by_username_where_allowed_on_the_stack() {
    if e2e::controls_processes() {
        passwordless_accounts_log_in_by_username_where_allowed(e2e::Backend::Stack).await;
    }
}
