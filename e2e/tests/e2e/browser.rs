//! The chat page in real browsers: two people register, open the same
//! room and talk, see each other's read receipts and typing, and one of
//! them loses the network, writes meanwhile, and catches up when it comes
//! back. Every step's screenshots are written when the test fails (see
//! `e2e::browser`).

use anyhow::Context;
use e2e::{
    browser::{run_scenario, Driver, Page, Steps},
    chat::{join, send_group},
    proxy::CuttableProxy,
    unique_name, Api, ChatSocket, TestServer,
};
use serde_json::json;

async fn register(page: &Page, username: &str, name: &str) -> anyhow::Result<()> {
    page.fill("#username", username).await?;
    page.fill("#name", name).await?;
    page.fill("#password", "correct horse battery").await?;
    page.click("#register").await?;
    page.wait_text("the signed-in name", "#me", |me| me.starts_with(name))
        .await?;
    page.wait_text("the socket to connect", "#status", |status| {
        status == "online"
    })
    .await?;
    Ok(())
}

async fn say(page: &Page, text: &str) -> anyhow::Result<()> {
    page.fill("#message-input", text).await?;
    page.click("#send").await
}

/// The texts of the open room's messages, oldest first.
const MESSAGES: &str = "#messages .message .text";
/// The statuses of the page's own messages (sending…, accepted, sent, read).
const MY_STATUSES: &str = "#messages .mine .status";

async fn scenario(
    steps: &Steps,
    alice: &Page,
    bob: &Page,
    alices_network: &CuttableProxy,
) -> anyhow::Result<()> {
    let both = [alice, bob];
    let bob_username = unique_name("bob");
    register(alice, &unique_name("alice"), "Alice").await?;
    register(bob, &bob_username, "Bob").await?;
    steps.step("registered", &both).await?;

    // Alice opens the private room by Bob's username and writes.
    alice.fill("#peer-username", &bob_username).await?;
    alice.click("#new-chat button").await?;
    alice
        .wait_text("the room with Bob", "#room-title", |title| title == "Bob")
        .await?;
    say(alice, "Hi Bob!").await?;
    alice
        .wait_text("the message stored (`sent`)", MY_STATUSES, |status| {
            status == "sent"
        })
        .await?;
    steps.step("alice-wrote", &both).await?;

    // Bob sees the room with one unread message, opens it and reads it;
    // Alice sees the receipt.
    bob.wait_text("one unread message", "#conversations .unread", |unread| {
        unread == "1"
    })
    .await?;
    bob.click("#conversations .conversation").await?;
    bob.wait_texts("Alice's message", MESSAGES, |texts| texts == ["Hi Bob!"])
        .await?;
    alice
        .wait_text("Bob's read receipt", MY_STATUSES, |status| status == "read")
        .await?;
    steps.step("bob-read", &both).await?;

    // Bob types: Alice sees it, then his reply, and the indicator goes.
    bob.fill("#message-input", "Hello Alice").await?;
    alice
        .wait_text("Bob typing", "#typing", |typing| typing == "Bob is typing…")
        .await?;
    steps.step("bob-typing", &both).await?;
    bob.click("#send").await?;
    alice
        .wait_texts("Bob's reply", MESSAGES, |texts| {
            texts == ["Hi Bob!", "Hello Alice"]
        })
        .await?;
    alice
        .wait_text("the typing indicator to end", "#typing", str::is_empty)
        .await?;
    steps.step("bob-replied", &both).await?;

    // Alice's network drops. Bob writes twice; Alice writes once, offline.
    alices_network.cut();
    alice
        .wait_text("Alice to see she is offline", "#status", |status| {
            status.starts_with("offline")
        })
        .await?;
    say(bob, "Are you there?").await?;
    say(bob, "Write when you are back").await?;
    bob.wait_texts("Bob's new messages stored", MY_STATUSES, |statuses| {
        statuses == ["read", "sent", "sent"]
    })
    .await?;
    say(alice, "Back soon").await?;
    alice
        .wait_text(
            "Alice's message pending",
            "#messages [data-status=sending]",
            |status| status == "sending…",
        )
        .await?;
    steps.step("alice-offline", &both).await?;

    // The network returns: Alice catches up on what she missed, her
    // message goes out once, and each side sees the other read it all.
    alices_network.restore();
    let everything = [
        "Hi Bob!",
        "Hello Alice",
        "Are you there?",
        "Write when you are back",
        "Back soon",
    ];
    alice
        .wait_text("Alice back online", "#status", |status| status == "online")
        .await?;
    alice
        .wait_texts("the messages Alice missed, once each", MESSAGES, |texts| {
            texts == everything
        })
        .await?;
    bob.wait_texts("Alice's offline message, once", MESSAGES, |texts| {
        texts == everything
    })
    .await?;
    bob.wait_texts(
        "Alice's receipts for Bob's messages",
        MY_STATUSES,
        |statuses| statuses == ["read", "read", "read"],
    )
    .await?;
    alice
        .wait_texts(
            "Bob's receipt for the offline message",
            MY_STATUSES,
            |statuses| statuses == ["read", "read"],
        )
        .await?;
    // Still once each, after the receipts' round trips.
    for page in both {
        let texts = page.texts(MESSAGES).await?;
        anyhow::ensure!(texts == everything, "{}: {texts:?}", page.name());
    }
    steps.step("caught-up", &both).await?;
    Ok(())
}

/// A group made over the API with a long history: the page lists it with
/// its unread count, pages back through its history, shows who is online,
/// adds a member, and counts the members' read receipts.
async fn group_scenario(steps: &Steps, alice: &Page, api: &Api) -> anyhow::Result<()> {
    let alice_username = unique_name("alice");
    register(alice, &alice_username, "Alice").await?;
    let alice_id = api
        .list(&format!("username={alice_username}"), None)
        .await
        .expect(200)[0]["id"]
        .as_str()
        .expect("Alice's id")
        .to_owned();
    let carol = api.new_user().await;
    let dave = api.new_user().await;
    let erin = api.new_user().await;
    let room = api
        .create_group(&carol.token, "Team", &[&alice_id, &dave.id])
        .await
        .expect(201)["roomId"]
        .as_str()
        .expect("roomId")
        .to_owned();
    let mut carols_socket = ChatSocket::connect(api.base(), &carol.token).await;
    join(&carols_socket, &room).await;
    let mut sent = Vec::new();
    for number in 1..=35 {
        sent.push(send_group(&carols_socket, &room, &format!("message {number}")).await);
    }

    alice
        .wait_text(
            "35 unread in the group",
            "#conversations .unread",
            |unread| unread == "35",
        )
        .await?;
    steps.step("group-listed", &[alice]).await?;
    alice.click("#conversations .conversation").await?;
    alice
        .wait_text("the group's title", "#room-title", |title| {
            title == "Team (3 members)"
        })
        .await?;
    alice
        .wait_text("Carol online", "#room-online", |online| {
            online == "1 online"
        })
        .await?;
    let newest: Vec<String> = (6..=35).map(|number| format!("message {number}")).collect();
    alice
        .wait_texts("the newest page", MESSAGES, |texts| texts == newest)
        .await?;
    alice.click("#older").await?;
    let everything: Vec<String> = (1..=35).map(|number| format!("message {number}")).collect();
    alice
        .wait_texts("the whole history", MESSAGES, |texts| texts == everything)
        .await?;
    steps.step("group-history", &[alice]).await?;
    carols_socket
        .expect_event("notification", |event| {
            event["name"] == "read"
                && event["content"]["userId"] == alice_id.as_str()
                && event["content"]["messageId"] == sent[34].as_str()
        })
        .await;

    say(alice, "Thanks, all").await?;
    let thanks = carols_socket
        .expect_event("reply", |reply| {
            reply["content"]["message"] == "Thanks, all"
        })
        .await;
    api.call(
        reqwest::Method::POST,
        &format!("/api/v1/rooms/{room}/read"),
        Some(&dave.token),
        Some(json!({ "messageId": thanks["id"] })),
    )
    .await
    .expect(204);
    alice
        .wait_text("Dave's receipt", MY_STATUSES, |status| {
            status == "read by 1"
        })
        .await?;
    let ack = carols_socket
        .emit_with_ack("read", json!({ "roomId": room, "messageId": thanks["id"] }))
        .await;
    anyhow::ensure!(ack["status"] == "ok", "Carol's read: {ack}");
    alice
        .wait_text("Carol's receipt", MY_STATUSES, |status| {
            status == "read by 2"
        })
        .await?;

    alice.fill("#add-username", &erin.username).await?;
    alice.click("#add-member button").await?;
    alice
        .wait_text("Erin added", "#room-title", |title| {
            title == "Team (4 members)"
        })
        .await?;
    carols_socket
        .expect_event("notification", |event| {
            event["name"] == "members" && event["content"]["added"] == json!([erin.id])
        })
        .await;
    steps.step("group-grown", &[alice]).await?;
    Ok(())
}

/// A token revoked elsewhere ends the page's session: the socket is closed
/// by the server and the page goes back to the login form and says why.
async fn logout_scenario(steps: &Steps, page: &Page, api: &Api) -> anyhow::Result<()> {
    register(page, &unique_name("carol"), "Carol").await?;
    let token = page
        .script(
            "return sessionStorage.getItem('chat-service.token');",
            vec![],
        )
        .await?;
    let token = token.as_str().context("the page keeps its token")?;
    steps.step("signed-in", &[page]).await?;
    api.logout(token).await.expect(204);
    page.wait_text("the login form's reason", "#auth-error", |why| {
        why == "your session ended; log in again"
    })
    .await?;
    let hidden = page
        .script("return document.getElementById('app').hidden;", vec![])
        .await?;
    anyhow::ensure!(hidden == json!(true), "the chat is still shown");
    steps.step("signed-out", &[page]).await?;
    Ok(())
}

/// Runs `scenario` in one browser, named `person`, showing `server`'s page;
/// its screenshots go under `browser-<test>-<backend>`.
async fn in_one_browser(
    server: &TestServer,
    person: &str,
    test: &str,
    scenario: impl AsyncFnOnce(&Steps, &Page, &Api) -> anyhow::Result<()>,
) {
    if !e2e::controls_processes() {
        return;
    }
    let driver = Driver::start().await.expect("ChromeDriver");
    let page = driver
        .open(person, &server.url())
        .await
        .expect("the browser");
    let steps = Steps::new(&format!("browser-{test}-{:?}", server.backend()).to_lowercase());
    let api = Api::new(server.url());
    run_scenario(&steps, &[&page], scenario(&steps, &page, &api)).await;
    page.close().await.expect("close the browser");
}

on_both_backends! {
    async fn a_token_revoked_elsewhere_signs_the_page_out(server: &TestServer) {
        in_one_browser(server, "carol", "logout", logout_scenario).await;
    }

    async fn a_browser_pages_a_group_history_and_counts_its_receipts(server: &TestServer) {
        in_one_browser(server, "alice", "group", group_scenario).await;
    }

    async fn two_browsers_chat_see_receipts_and_typing_and_catch_up_after_the_network_drops(server: &TestServer) {
        if !e2e::controls_processes() {
            return;
        }
        let driver = Driver::start().await.expect("ChromeDriver");
        let address = server.url().trim_start_matches("http://").parse().expect("server address");
        let alices_network = CuttableProxy::start(address).await;
        let alice = driver.open("alice", &alices_network.url()).await.expect("Alice's browser");
        let bob = driver.open("bob", &server.url()).await.expect("Bob's browser");
        let steps = Steps::new(&format!("browser-{:?}", server.backend()).to_lowercase());
        run_scenario(&steps, &[&alice, &bob], scenario(&steps, &alice, &bob, &alices_network)).await;
        alice.close().await.expect("close Alice's browser");
        bob.close().await.expect("close Bob's browser");
    }
}
