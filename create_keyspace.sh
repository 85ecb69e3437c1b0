#!/usr/bin/env bash
# Apply the Cassandra schema (keyspace and tables) by running the service's
# idempotent migrations: `chat-service migrate`. Safe to run any number of times.
#
# Usage: bash create_keyspace.sh [--local | --compose | --help]
#
#   (no option)  the compose stack if its chat-service container is running
#                (`docker compose ps -q chat-service`), else the local stack
#   --local      cargo run --release -p service --bin chat-service -- migrate
#                against CASSANDRA_NODE_HOSTS (default 127.0.0.1:9042)
#   --compose    docker compose run --rm chat-service migrate
#
# Environment: CASSANDRA_NODE_HOSTS, CASSANDRA_KEYSPACE (default chat_service),
# CASSANDRA_DATACENTER, CASSANDRA_REPLICATION, CASSANDRA_USERNAME/PASSWORD.
# With compose, CASSANDRA_KEYSPACE is passed through docker-compose.yml and the
# hosts are docker-compose.yml's (CHAT_HOST_ADDRESS:CASSANDRA_PORT, 127.0.0.1:9042).
# chat-service serve applies the schema by itself at start-up, so this is
# needed only to prepare a keyspace ahead of time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
  sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

log() { printf '[create_keyspace] %s\n' "$*" >&2; }

# Prints the compose command (`docker compose` or `docker-compose`), or fails.
compose_cmd() {
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    echo "docker-compose"
  else
    return 1
  fi
}

# True when the compose stack's chat-service container is running.
compose_running() {
  local cmd ids
  cmd=$(compose_cmd) || return 1
  # shellcheck disable=SC2086 # $cmd is one or two words on purpose
  ids=$(cd "$ROOT" && $cmd ps -q chat-service 2>/dev/null) || return 1
  [[ -n $ids ]]
}

migrate_compose() {
  local cmd
  cmd=$(compose_cmd) || { log "neither 'docker compose' nor 'docker-compose' is available"; exit 1; }
  log "compose stack: $cmd run --rm chat-service migrate (keyspace ${CASSANDRA_KEYSPACE:-chat_service})"
  cd "$ROOT"
  # shellcheck disable=SC2086 # $cmd is one or two words on purpose
  exec $cmd run --rm chat-service migrate
}

migrate_local() {
  export CASSANDRA_NODE_HOSTS=${CASSANDRA_NODE_HOSTS:-127.0.0.1:9042}
  log "local: cassandra $CASSANDRA_NODE_HOSTS, keyspace ${CASSANDRA_KEYSPACE:-chat_service}"
  cd "$ROOT"
  exec cargo run --release -p service --bin chat-service -- migrate
}

main() {
  case ${1:-} in
    -h | --help) usage ;;
    --local) migrate_local ;;
    --compose) migrate_compose ;;
    "")
      if compose_running; then migrate_compose; else migrate_local; fi
      ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
