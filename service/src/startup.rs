//! Wiring: connect the backends the settings name (memory for the rest),
//! apply the schema, bind the port, serve until told to stop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::{
    config::{CassandraSettings, Settings},
    fanout::Fanout,
    http::{self, AppState},
    limits::{sockets::SocketsPerUser, Limits},
    membership::{groups::Groups, Membership},
    pipeline::{
        accept::Acceptor,
        claims::{Claims, MemoryClaims, RedisClaims},
        kafka::{self, producer::KafkaBus, KafkaProbe},
        lifecycle::Pipeline,
        memory,
        node_id::{IdSource, NodeLease},
        process::Processor,
        topics::Topics,
        Bus,
    },
    presence::{redis::RedisPresence, Keeper, Presence},
    read_state::{conversations::Conversations, Reading},
    realtime::{
        catch_up::CatchUps,
        gateway::{self, AdapterLink},
        seen::Seen,
        RealtimeState,
    },
    redis_link::{LinkOptions, RedisLink},
    sessions::{memory::MemorySessions, redis::RedisSessions, Sessions},
    store::{
        cassandra::{self, CassandraStore},
        Probe, Storage,
    },
    telemetry,
};

/// How long in-flight requests may take to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys the in-memory claims (resend marks) hold at most.
const MEMORY_CLAIMS: usize = 200_000;

/// A service bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    sockets: Arc<dyn Fanout>,
    pipeline: Pipeline,
}

impl Application {
    /// Connects every configured backend (waiting for them to answer),
    /// applies the schema, and binds `settings.host:settings.port`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mut probes: Vec<Arc<dyn Probe>> = Vec::new();

        let storage = match &settings.cassandra {
            Some(cassandra) => {
                let store = connect_cassandra(cassandra, settings.message_bucket).await?;
                let storage = Storage::cassandra(store);
                probes.push(storage.probe.clone());
                storage
            }
            None => {
                tracing::warn!(
                    "CASSANDRA_NODE_HOSTS is not set: accounts, rooms and messages are kept \
                     IN MEMORY and are lost when the process stops"
                );
                Storage::in_memory()
            }
        };

        let redis = match &settings.redis {
            Some(redis) => Some(RedisLink::connect(redis, LinkOptions::default()).await?),
            None => None,
        };
        let sessions: Arc<dyn Sessions> = match (&settings.redis, &redis) {
            (Some(settings), Some(connection)) => {
                let sessions = Arc::new(RedisSessions::new(
                    connection.clone(),
                    settings.prefix.clone(),
                ));
                probes.push(sessions.clone());
                sessions
            }
            _ => {
                tracing::warn!(
                    "neither CACHE_HOST nor CACHE_SENTINELS is set: sessions are kept IN MEMORY; this instance cannot \
                     share them with another"
                );
                Arc::new(MemorySessions::default())
            }
        };

        // Resend marks and the message id node are shared
        // through Redis so that instances never disagree about them.
        let (claims, lease): (Arc<dyn Claims>, Option<NodeLease>) = match (&settings.redis, &redis)
        {
            (Some(settings), Some(connection)) => (
                Arc::new(RedisClaims::new(
                    connection.clone(),
                    settings.prefix.clone(),
                )),
                Some(NodeLease::acquire(connection.clone(), &settings.prefix).await?),
            ),
            _ => (Arc::new(MemoryClaims::new(MEMORY_CLAIMS)), None),
        };
        let ids = lease
            .as_ref()
            .map_or_else(|| IdSource::fixed(0), NodeLease::ids);

        let (bus, kafka_bus, queue): (Arc<dyn Bus>, _, _) = match &settings.kafka {
            Some(kafka) => {
                let topics = Topics::new(&kafka.topic_prefix);
                kafka::create_topics(kafka, &topics).await?;
                let bus = KafkaBus::new(kafka, topics.clone())?;
                probes.push(Arc::new(KafkaProbe::new(bus.clone(), topics.created)));
                (Arc::new(bus.clone()), Some(bus), None)
            }
            None => {
                tracing::warn!(
                    "KAFKA_BROKERS is not set: messages travel on an IN-PROCESS bus; accepted \
                     messages not yet stored are lost if the process dies"
                );
                let (bus, queue) = memory::channel();
                (Arc::new(bus), None, Some(queue))
            }
        };
        if settings.kafka.is_some() && settings.redis.is_none() {
            tracing::warn!(
                "KAFKA_BROKERS is set but no Redis is (CACHE_HOST or CACHE_SENTINELS): a second instance would consume \
                 messages whose sockets it cannot reach"
            );
        }

        // The Socket.IO adapter's own Redis connection, watched by `/ready`.
        let adapter = match &settings.redis {
            Some(redis) => {
                let link = AdapterLink::connect(redis).await?;
                probes.push(Arc::new(link.health()));
                Some(link)
            }
            None => None,
        };

        let realtime = &settings.realtime;
        let limits = Arc::new(
            match (&settings.redis, &redis) {
                (Some(settings), Some(connection)) => Limits::shared(
                    realtime.rate_per_second,
                    realtime.rate_burst,
                    connection.clone(),
                    settings.prefix.clone(),
                ),
                _ => Limits::local(realtime.rate_per_second, realtime.rate_burst),
            }
            .tracking_logins(realtime.login_throttle_max_tracked),
        );
        let membership = Arc::new(Membership::new(
            storage.rooms.clone(),
            realtime.room_cache_capacity,
        ));
        let seen = Arc::new(Seen::default());
        let reading = Arc::new(Reading::new(
            storage.clone(),
            membership.clone(),
            seen.clone(),
        ));
        let presence = Keeper::new(
            Arc::new(match (&settings.redis, &redis) {
                (Some(settings), Some(connection)) => Presence::Shared(Arc::new(
                    RedisPresence::new(connection.clone(), settings.prefix.clone()),
                )),
                _ => Presence::local(),
            }),
            storage.rooms.clone(),
        );
        let realtime_state = RealtimeState {
            sessions: sessions.clone(),
            membership: membership.clone(),
            reading: reading.clone(),
            messages: storage.messages.clone(),
            catch_ups: Arc::new(CatchUps::new(realtime.catch_up)),
            seen,
            presence: presence.clone(),
            limits: limits.clone(),
            sockets_per_user: SocketsPerUser::new(realtime.max_sockets_per_user),
            acceptor: Arc::new(Acceptor::new(
                bus,
                ids,
                claims,
                realtime.client_message_id_ttl,
            )),
        };
        let processing_storage = storage.clone();
        let gateway = gateway::build(
            realtime_state,
            adapter,
            realtime.frame_limit,
            realtime.socket_event_buffer,
        )
        .await?;
        let sockets = gateway.fanout.clone();
        presence.tell_through(sockets.clone());
        let groups = Arc::new(Groups::new(
            storage.rooms.clone(),
            storage.accounts.clone(),
            sockets.clone(),
            realtime.room_max_members,
        ));
        let state = AppState {
            conversations: Conversations::new(storage.clone()),
            storage,
            membership,
            groups,
            reading,
            presence,
            sessions,
            sockets: sockets.clone(),
            probes,
            token_ttl: settings.token_ttl,
            passwordless_accounts: settings.passwordless_accounts,
            metrics: telemetry::metrics_handle(),
            limits,
        };
        let router = gateway.serve_on(http::router(state, settings.body_limit, &settings.web_root));

        let processor = Arc::new(Processor::new(processing_storage, sockets.clone()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let consumers = match (&settings.kafka, &kafka_bus, queue) {
            (Some(settings), Some(bus), _) => {
                kafka::consumer::spawn(settings, bus.clone(), processor, stopped)?
            }
            (_, _, Some(queue)) => vec![memory::spawn_consumer(queue, processor, stopped)],
            _ => Vec::new(),
        };
        let pipeline = Pipeline::new(stop, kafka_bus, lease).with_consumers(consumers);

        let address = SocketAddr::new(settings.host, settings.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot bind {address}"))?;
        Ok(Self {
            listener,
            router,
            sockets,
            pipeline,
        })
    }

    /// The bound port (useful when the settings asked for port 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map_or(0, |address| address.port())
    }

    /// Serves until `shutdown` completes, then disconnects the sockets, lets
    /// in-flight requests finish for at most [`DRAIN_TIMEOUT`], and stops
    /// the pipeline (consumers commit, the producer flushes).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        };
        tracing::info!(port = self.port(), "listening");
        // Small frames (acks, replies) must leave at once, not wait for
        // Nagle's algorithm to meet the peer's delayed ACK (~40 ms stalls).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(cause = %error, "TCP_NODELAY not set");
            }
        });
        let serve = axum::serve(listener, self.router).with_graceful_shutdown(shutdown);
        let serve = tokio::spawn(async move { serve.await });
        tokio::pin!(serve);
        let served = tokio::select! {
            result = &mut serve => Some(result),
            _ = stopping_rx => None,
        };
        let served = match served {
            Some(result) => result,
            None => {
                // Open websockets would otherwise hold the drain until its
                // timeout. With Redis down the close itself may hang.
                if tokio::time::timeout(DRAIN_TIMEOUT, self.sockets.close())
                    .await
                    .is_err()
                {
                    tracing::warn!("the sockets did not close within the drain timeout");
                }
                match tokio::time::timeout(DRAIN_TIMEOUT, serve).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!("connections still open after the drain timeout");
                        Ok(Ok(()))
                    }
                }
            }
        };
        self.pipeline.shutdown().await;
        Ok(served??)
    }
}

/// Connects to Cassandra, applies the migrations and prepares the store.
async fn connect_cassandra(
    settings: &CassandraSettings,
    bucket: Duration,
) -> anyhow::Result<CassandraStore> {
    let session = Arc::new(cassandra::connect(settings).await);
    cassandra::migrate::apply(&session, settings)
        .await
        .context("applying the schema")?;
    Ok(CassandraStore::new(session, &settings.keyspace, bucket).await?)
}

/// Applies the schema and returns: `chat-service migrate`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let cassandra = settings
        .cassandra
        .as_ref()
        .context("CASSANDRA_NODE_HOSTS is not set: there is no schema to apply")?;
    let session = cassandra::connect(cassandra).await;
    let applied = cassandra::migrate::apply(&session, cassandra).await?;
    tracing::info!(keyspace = %cassandra.keyspace, applied, "schema is up to date");
    Ok(())
}

/// Puts the dead-letter topic's messages back through the pipeline (see
/// [`kafka::replay`]): `chat-service dlq replay [--dry-run]`.
pub async fn replay_dlq(settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    let kafka = settings
        .kafka
        .as_ref()
        .context("KAFKA_BROKERS is not set: without Kafka nothing is ever parked")?;
    let replayed = kafka::replay::replay(kafka, dry_run).await?;
    let verb = if dry_run { "would replay" } else { "replayed" };
    println!("{verb} {}", replayed.messages);
    if replayed.duplicates > 0 {
        println!("skipped {} duplicate records", replayed.duplicates);
    }
    if replayed.unreadable > 0 {
        println!("skipped {} unreadable records", replayed.unreadable);
    }
    Ok(())
}
