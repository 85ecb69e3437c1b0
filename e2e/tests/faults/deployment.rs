//! A deployment of two instances, and waiting on its `/ready`.

use std::time::Duration;

use e2e::{Api, Backend, TestServer};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig,
};
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

    /// Starts A and B like [`Deployment::spawn`], without waiting for
    /// their consumer groups to settle: B's joining still rebalances them
    /// when the test begins.
    pub async fn spawn_unsettled(extra: &[(&str, &str)]) -> Self {
        let first = TestServer::spawn_with(Backend::Stack, extra).await;
        let second = first.spawn_peer().await;
        Self::of(vec![first, second])
    }

    fn of(servers: Vec<TestServer>) -> Self {
        let apis = servers
            .iter()
            .map(|server| Api::new(server.url()))
            .collect();
        Self { servers, apis }
    }

    /// Starts instance B beside a running instance A, and waits until both
    /// consumer groups have settled with both members. A fault test is
    /// about its fault, so it starts after that (the scaling tests do not
    /// wait).
    pub async fn around(first: TestServer) -> Self {
        let second = first.spawn_peer().await;
        let deployment = Self::of(vec![first, second]);
        deployment.wait_groups_stable(2).await;
        deployment
    }

    /// Waits until the main and retry consumer groups are `Stable` with
    /// `members` members.
    pub async fn wait_groups_stable(&self, members: usize) {
        let timeout = Duration::from_secs(60);
        let (brokers, group) = (self.env("KAFKA_BROKERS"), self.env("KAFKA_CONSUMER_GROUP"));
        let settled = tokio::task::spawn_blocking(move || {
            let admin: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .expect("a Kafka client for the group check");
            let deadline = std::time::Instant::now() + timeout;
            let mut states = Vec::new();
            for group in [group.clone(), format!("{group}.retry")] {
                loop {
                    let state = admin
                        .fetch_group_list(Some(&group), Duration::from_secs(5))
                        .ok()
                        .and_then(|list| {
                            list.groups()
                                .first()
                                .map(|found| (found.state().to_owned(), found.members().len()))
                        });
                    if let Some((state, count)) = &state {
                        if state == "Stable" && *count == members {
                            break;
                        }
                    }
                    if std::time::Instant::now() > deadline {
                        states.push(format!("{group}: {state:?}"));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            states
        })
        .await
        .expect("the group check");
        assert!(
            settled.is_empty(),
            "consumer groups did not settle with {members} members within {timeout:?}: {settled:?}"
        );
    }

    /// The deployment's setting `name` (its instances share them).
    pub fn env(&self, name: &str) -> String {
        self.servers[0]
            .env()
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("{name} is not set for the deployment"))
    }

    /// The host of the broker that leads `partition` of the deployment's
    /// topic `topic` (without its prefix), as the cluster's metadata says.
    pub async fn partition_leader(&self, topic: &str, partition: i32) -> String {
        let brokers = self.env("KAFKA_BROKERS");
        let topic = format!("{}{topic}", self.env("KAFKA_TOPIC_PREFIX"));
        tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .expect("a Kafka client for the metadata");
            let metadata = client
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .expect("the topic's metadata");
            let leader = metadata
                .topics()
                .iter()
                .find(|found| found.name() == topic)
                .and_then(|found| {
                    found
                        .partitions()
                        .iter()
                        .find(|p| p.id() == partition)
                        .map(|p| p.leader())
                })
                .unwrap_or_else(|| panic!("no partition {partition} of {topic}"));
            metadata
                .brokers()
                .iter()
                .find(|broker| broker.id() == leader)
                .map(|broker| broker.host().to_owned())
                .unwrap_or_else(|| panic!("broker {leader} is not in the metadata"))
        })
        .await
        .expect("the metadata lookup")
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
