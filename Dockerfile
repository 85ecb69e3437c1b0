# syntax=docker/dockerfile:1
#
# chat-service container image.
#
#   docker build -t chat-service .
#   docker run --rm -p 3000:3000 chat-service            # in-memory backends
#   docker compose up -d                                  # with Cassandra, Kafka, Redis
#
# Configuration is the environment only (see service/src/config.rs):
# CASSANDRA_NODE_HOSTS, CASSANDRA_DATACENTER, CASSANDRA_KEYSPACE, CACHE_HOST,
# CACHE_PORT, CACHE_SENTINELS, CACHE_SENTINEL_MASTER, CACHE_PASSWORD,
# CACHE_PREFIX, KAFKA_BROKERS, KAFKA_CONSUMER_GROUP,
# KAFKA_SERVICE_NAME, KAFKA_USERNAME, KAFKA_PASSWORD, PORT, ...
# `chat-service migrate` applies the Cassandra schema and exits; `serve` (the
# default) applies it too before it starts listening.

# ---------------------------------------------------------------------------
# The chat page: socket.io-client from the npm registry through the lock file
# ---------------------------------------------------------------------------
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/build.mjs ./
COPY web/src ./src
RUN node build.mjs

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS build

# rdkafka-sys builds the bundled librdkafka (configure + make, C and C++);
# cmake is there in case the cmake-build feature is ever switched on.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake g++ make perl pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# The whole build context (.dockerignore keeps out target/, .stack/, .git,
# reports/): Cargo needs every workspace member's manifest and targets, and the
# service compiles in files from outside its crate (docs/*.json via
# include_str!). Layer caching buys little here; the cache mounts below do
# the real work.
COPY . .

# Registry, git checkouts and target/ live in BuildKit cache mounts, so a
# source change recompiles only the workspace crates. The binary is copied
# out of the cache mount in the same step (the mount is gone afterwards).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p service --bin chat-service \
 && install -D -m 0755 target/release/chat-service /out/chat-service

# ---------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates for TLS to managed backends; curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid chat --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin chat

COPY --from=build /out/chat-service /usr/local/bin/chat-service
COPY --from=web /web/dist /usr/share/chat-service/web

ENV HOST=0.0.0.0 \
    PORT=3000 \
    WEB_ROOT=/usr/share/chat-service/web

USER 10001:10001
EXPOSE 3000

# /ready is 200 only when every configured backend answers. Asked where the
# service listens: HOST (127.0.0.1 for a wildcard), so it also works on a
# host network with HOST=127.0.0.2.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD case "${HOST}" in 0.0.0.0|::|"") h=127.0.0.1 ;; *) h="${HOST}" ;; esac; \
      curl -fsS -o /dev/null "http://${h}:${PORT}/ready" || exit 1

ENTRYPOINT ["chat-service"]
CMD ["serve"]
