//! Builds the Socket.IO gateway on the HTTP port: the namespace, its
//! handshake guard and handlers, every incoming frame capped, and with
//! Redis the adapter and the relay that reach every instance.

use std::sync::Arc;

use anyhow::Context;
use socketioxide::{handler::ConnectHandler, ParserConfig, SocketIo, SocketIoBuilder};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

use super::{
    auth, handlers,
    local_delivery::LocalDelivery,
    mend,
    redis_driver::{AdapterHealth, HealingDriver},
    relay::Relay,
    request_head,
    socket_fanout::SocketFanout,
    RealtimeState, NAMESPACE,
};
use crate::{config::RedisSettings, fanout::Fanout};

/// The gateway as the rest of the service sees it.
pub struct Gateway {
    /// The emitting side, for the pipeline and for ending sessions.
    pub fanout: Arc<dyn Fanout>,
    layer: Box<dyn FnOnce(axum::Router) -> axum::Router + Send>,
}

impl Gateway {
    /// Serves Socket.IO on `router`'s port, each socket's request head
    /// copied out of its connection's read buffer first.
    pub fn serve_on(self, router: axum::Router) -> axum::Router {
        (self.layer)(router).layer(axum::middleware::map_request(
            |request: axum::extract::Request| async { request_head::compact(request) },
        ))
    }
}

/// The Redis side of the Socket.IO adapter, connected before the gateway
/// so that readiness can watch it from the start.
pub struct AdapterLink {
    driver: HealingDriver,
    prefix: String,
}

impl AdapterLink {
    /// Connects the adapter's own Redis connection.
    pub async fn connect(redis: &RedisSettings) -> anyhow::Result<Self> {
        let driver = HealingDriver::connect(redis)
            .await
            .context("connecting the Socket.IO Redis adapter")?;
        Ok(Self {
            driver,
            prefix: redis.prefix.clone(),
        })
    }

    /// What the adapter's ping task knows about its connection.
    pub fn health(&self) -> AdapterHealth {
        self.driver.health()
    }
}

/// What tungstenite allocates for each websocket's reads up front
/// (engineioxide asks for 4 KiB). Chat frames are far smaller; a larger
/// frame still arrives whole, its buffer grown to its length, and only
/// takes a read per KiB. An idle socket keeps 3 KiB less (docs/PERFORMANCE.md).
const WS_READ_BUFFER: usize = 1024;

/// A Socket.IO builder whose sockets each have room for `event_buffer`
/// events waiting to be written (socketioxide's default is 128; past it an
/// emit to that socket fails: a client that does not read misses events
/// rather than holding the server's memory; the room is for bursts, such
/// as a catch-up's held live messages, while the replay itself waits for
/// room), and whose every incoming frame is capped at `frame_limit`
/// bytes, on each transport:
///
/// - websocket: one engine.io message. tungstenite checks a frame's length
///   in its header and closes the connection before reading the payload
///   (`max_payload` does not apply to websockets).
/// - polling: the body of one POST. engineio stops reading the body once it
///   passes the limit, answers 413 and closes the session. The limit is
///   also announced in the handshake (`maxPayload`), so clients size their
///   batches to it.
/// - binary attachments, which this namespace never uses, are capped in
///   total too (by default they could add up to 10 MB per packet).
fn capped_builder(frame_limit: usize, event_buffer: usize) -> SocketIoBuilder {
    SocketIo::builder()
        .max_buffer_size(event_buffer)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .ws_max_frame_size(frame_limit)
        .ws_max_message_size(frame_limit)
        .max_payload(u64::try_from(frame_limit).unwrap_or(u64::MAX))
        .with_parser(ParserConfig::common().max_incoming_binary_buf_size(frame_limit))
}

/// Builds the Socket.IO gateway, capping every incoming frame at
/// `frame_limit` bytes and the events waiting for each socket at
/// `event_buffer`. With `redis`, sockets of every instance are reached
/// through the Redis adapter; otherwise only this instance's.
pub async fn build(
    state: RealtimeState,
    redis: Option<AdapterLink>,
    frame_limit: usize,
    event_buffer: usize,
) -> anyhow::Result<Gateway> {
    let builder = capped_builder(frame_limit, event_buffer);
    let (catch_ups, seen) = (state.catch_ups.clone(), state.seen.clone());
    let messages = state.messages.clone();
    let Some(redis) = redis else {
        let (layer, io) = builder.with_state(state).build_layer();
        io.ns(NAMESPACE, handlers::on_connect.with(auth::authenticate));
        return Ok(Gateway {
            fanout: Arc::new(SocketFanout::local(Arc::new(LocalDelivery::new(
                io, catch_ups, seen,
            )))),
            layer: Box::new(move |router| router.layer(layer)),
        });
    };
    let health = redis.health();
    // The service's key prefix keeps deployments sharing a Redis apart.
    let config = RedisAdapterConfig::new().with_prefix(format!("{}socket.io", redis.prefix));
    let relay_channel = format!("{}socket.io-relay#{NAMESPACE}#", redis.prefix);
    let adapter = RedisAdapterCtr::new_with_driver(redis.driver.clone(), config);
    let (layer, io) = builder
        .with_adapter::<CustomRedisAdapter<_, HealingDriver>>(adapter)
        .with_state(state)
        .build_layer();
    io.ns(NAMESPACE, handlers::on_connect.with(auth::authenticate))
        .await
        .context("starting the Socket.IO Redis adapter")?;
    let local = Arc::new(LocalDelivery::new(io, catch_ups, seen));
    tokio::spawn(mend::after_outages(health.clone(), local.clone(), messages));
    let marks = format!("{}delivered:", redis.prefix);
    let relay = Relay::start(redis.driver, relay_channel, marks, local.clone())
        .await
        .context("subscribing to the relay channel")?;
    Ok(Gateway {
        fanout: Arc::new(SocketFanout::relayed(local, relay, health)),
        layer: Box::new(move |router| router.layer(layer)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::{
        payload::{parse_message, MAX_CLIENT_MESSAGE_ID_CHARS},
        NAMESPACE,
    };
    use crate::{config::DEFAULT_FRAME_LIMIT, domain::MAX_MESSAGE_CHARS};

    #[test]
    fn the_largest_legal_message_fits_in_one_frame_however_the_client_escapes_it() {
        // Every character a 4-byte one, escaped as a 12-byte surrogate pair.
        let emoji = r"\ud83d\ude00";
        let text = emoji.repeat(MAX_MESSAGE_CHARS);
        let client_id = emoji.repeat(MAX_CLIENT_MESSAGE_ID_CHARS);
        let room = uuid::Uuid::new_v4();
        let payload = format!(
            r#"{{"type":"private","roomId":"{room}","content":{{"type":"text","message":"{text}"}},"clientMessageId":"{client_id}"}}"#
        );
        // An engine.io message carrying a socket.io event with the longest ack id.
        let frame = format!(r#"42{NAMESPACE},{}["message",{payload}]"#, u64::MAX);

        let parsed: Value = serde_json::from_str(&payload).unwrap();
        assert!(parse_message(&parsed).is_ok(), "the message must be legal");
        assert!(frame.len() <= DEFAULT_FRAME_LIMIT, "{} bytes", frame.len());
    }
}
