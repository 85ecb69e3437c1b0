//! Topic names. A prefix (`KAFKA_TOPIC_PREFIX`) lets several deployments or
//! test runs share one cluster without reading each other's messages.

/// The three topics of the pipeline, prefix included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Accepted messages, keyed by room id: `chats.message-created`.
    pub created: String,
    /// Messages whose store failed and wait for another attempt.
    pub retry: String,
    /// Messages that could not be stored after every attempt.
    pub dlq: String,
}

impl Topics {
    /// The names under `prefix` (which may be empty).
    pub fn new(prefix: &str) -> Self {
        let name = |base: &str| format!("{prefix}{base}");
        Self {
            created: name("chats.message-created"),
            retry: name("chats.message-created-retry"),
            dlq: name("chats.message-created-dlq"),
        }
    }

    /// All three, for creating them.
    pub fn all(&self) -> [&str; 3] {
        [&self.created, &self.retry, &self.dlq]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_prefix_the_topics_have_the_contract_names() {
        let topics = Topics::new("");
        assert_eq!(topics.created, "chats.message-created");
        assert_eq!(topics.retry, "chats.message-created-retry");
        assert_eq!(topics.dlq, "chats.message-created-dlq");
    }

    #[test]
    fn the_prefix_goes_before_every_topic() {
        let topics = Topics::new("test42.");
        assert!(topics.all().iter().all(|t| t.starts_with("test42.chats.")));
    }
}
