//! A deployment of two instances, and waiting on its `/ready`.

use std::time::Duration;

use e2e::{Api, Backend, TestServer};
use reqwest::Method;
use serde_json::Value;

/// Two instances of one deployment on the stack (same topics, consumer
/// group and Redis prefix), as a scaled-out service runs.
pub struct Deployment {
    /// The processes; A first.
    pub servers: Vec<TestServer>,
    /// Their HTTP APIs, in the same order.
    pub apis: Vec<Api>,
}

impl Deployment {
    /// Starts instance A with `extra` environment, then instance B.
    pub async fn spawn(extra: &[(&str, &str)]) -> Self {
        Self::around(TestServer::spawn_with(Backend::Stack, extra).await).await
    }

    /// Starts instance B beside a running instance A.
    pub async fn around(first: TestServer) -> Self {
        let second = first.spawn_peer().await;
        let servers = vec![first, second];
        let apis = servers
            .iter()
            .map(|server| Api::new(server.url()))
            .collect();
        Self { servers, apis }
    }

    /// Waits until `/ready` answers `want` on every instance and returns
    /// the bodies.
    pub async fn wait_ready(&self, want: u16, timeout: Duration) -> Vec<Value> {
        let mut bodies = Vec::new();
        for api in &self.apis {
            bodies.push(wait_ready(api, want, timeout).await);
        }
        bodies
    }
}

/// Polls `/ready` until its status is `want`, or panics after `timeout`.
pub async fn wait_ready(api: &Api, want: u16, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer = api.call(Method::GET, "/ready", None, None).await;
        if answer.status.as_u16() == want {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready of {} stayed {} for {timeout:?} ({})",
            api.base(),
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
