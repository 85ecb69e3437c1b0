//! The end-to-end suite: one test binary, one module per part of the
//! contract. Contract tests run twice, on the embedded in-memory backends
//! and on the real stack, through [`on_both_backends!`].

/// Declares contract tests that run on both backends: each
/// `async fn name(server: &TestServer) { .. }` becomes the test cases
/// `name::in_memory` and `name::on_the_stack`.
macro_rules! on_both_backends {
    ($(async fn $name:ident($server:ident: $server_type:ty) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($server: $server_type) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_memory() {
                // Against E2E_TARGET_URL only the deployment itself is tested.
                if e2e::external_target().is_none() {
                    run(&e2e::TestServer::spawn(e2e::Backend::Memory).await).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_the_stack() {
                run(&e2e::TestServer::spawn(e2e::Backend::Stack).await).await
            }
        }
    )*};
}

mod abuse;
mod accounts;
mod backends;
mod bounds;
mod browser;
mod continuity;
mod corpus;
mod delivery;
mod frames;
mod groups;
mod history;
mod order;
mod presence;
mod read_state;
mod realtime;
mod rooms;
mod sessions;
mod storage;
