#!/usr/bin/env bash
# The compose system end to end: up, wait until every service is healthy,
# then the smoke test (e2e/tests/smoke.rs: two users register, chat over
# Socket.IO, read the history over HTTP), then `down -v`, whatever happened.
# Prints how long each step took and the containers' idle memory.
#
#   docker/smoke.sh                          # images must exist (docker/images.sh)
#   CHAT_HOST_ADDRESS=127.0.0.2 CASSANDRA_JMX_PORT=7299 docker/smoke.sh
#   SMOKE_COMPOSE_FILE=docker-compose.replicated.yml \
#     SMOKE_KILL="kafka-2 cassandra-3" docker/smoke.sh
#
# SMOKE_COMPOSE_FILE picks the compose file (default docker-compose.yml);
# every service it names must become healthy. SMOKE_KILL names services
# to SIGKILL (`docker kill`) once the first smoke test passed; the smoke
# test then runs again, against every URL of SMOKE_URLS (default: the one
# service URL), with those nodes still dead. SMOKE_URLS (space separated)
# replaces the URL the test runs against. SMOKE_LOGS=1 prints the last
# lines of each service's log even when the test passed.
#
# UP_TIMEOUT (300 s) bounds the wait for healthy; COMPOSE_PROJECT_NAME
# (chat-service-smoke) keeps it apart from a deployment of the same file;
# the compose file's own variables (addresses, ports, images) pass through.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-chat-service-smoke}
UP_TIMEOUT=${UP_TIMEOUT:-300}
ADDRESS=${CHAT_HOST_ADDRESS:-127.0.0.1}
COMPOSE_FILE_ARG=${SMOKE_COMPOSE_FILE:-docker-compose.yml}
read -ra URLS <<<"${SMOKE_URLS:-http://$ADDRESS:${CHAT_SERVICE_PORT:-3000}}"
read -ra KILL <<<"${SMOKE_KILL:-}"

log() { printf '[smoke] %s\n' "$*" >&2; }
die() { printf '[smoke] ERROR: %s\n' "$*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose -f "$COMPOSE_FILE_ARG")
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose -f "$COMPOSE_FILE_ARG")
else
  die "neither \`docker compose\` nor docker-compose is installed (docker/engine.sh start installs it)"
fi
mapfile -t SERVICES < <("${compose[@]}" config --services)
((${#SERVICES[@]})) || die "$COMPOSE_FILE_ARG names no service"

timings=()
step_started=$SECONDS
timed() { timings+=("$(printf '%-28s %4ss' "$1" "$((SECONDS - step_started))")"); step_started=$SECONDS; }

ok=0
finish() {
  if [[ $ok != 1 || -n ${SMOKE_LOGS:-} ]]; then
    log "the last lines of each service's log"
    "${compose[@]}" logs --no-color --tail=40 >&2 || true
  fi
  step_started=$SECONDS
  "${compose[@]}" down -v --timeout 30 >&2 || true
  timed "down -v"
  printf '[smoke] %s\n' "${timings[@]}" >&2
  if [[ $ok == 1 ]]; then log "passed"; else log "FAILED"; fi
}

# The test binary first, so its build is not counted as start-up.
log "building the smoke test"
cargo test --locked --workspace --test smoke --no-run >&2
timed "build the smoke test"

trap finish EXIT
log "compose up (${compose[*]}, project $COMPOSE_PROJECT_NAME, ${#SERVICES[@]} services)"
up_started=$SECONDS
# docker-compose 1.29 returns once the services chat-service depends on
# are healthy; v2 may return sooner. The loop below waits for all.
"${compose[@]}" up -d >&2
timed "compose up -d"

pending=("${SERVICES[@]}")
while ((${#pending[@]})); do
  still=()
  for service in "${pending[@]}"; do
    id=$("${compose[@]}" ps -q "$service")
    state=$( [[ -n $id ]] && docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" || echo "created starting")
    case $state in
      "running healthy") log "$service healthy $((SECONDS - up_started))s after up" ;;
      exited* | dead* | *unhealthy) die "$service is $state" ;;
      *) still+=("$service") ;;
    esac
  done
  pending=("${still[@]+"${still[@]}"}")
  if ((${#pending[@]})); then
    ((SECONDS - step_started < UP_TIMEOUT)) || die "not healthy within ${UP_TIMEOUT}s: ${pending[*]}"
    sleep 1
  fi
done
timed "then all healthy"
timings+=("$(printf '%-28s %4ss' "up to all healthy" "$((SECONDS - up_started))")")

# After a SIGKILL: waits until the survivors no longer count the dead
# nodes, so the second smoke test measures the cluster after the failover,
# not during it. Kafka: a live broker's metadata no longer lists them (the
# controllers fenced them and moved their partitions' leadership).
# Cassandra: every live node's failure detector has convicted them (a read
# at ALL is refused at once, counting only the live ones); until then a
# lightweight transaction, as registration and a first private room use,
# waits for the dead node and times out (README, "Replicated backends").
# kafka-N and cassandra-N are on REPL_HOST_N (127.0.0.N). Only those two
# kinds are waited for; a killed Redis node is not (Sentinel's failover).
#   settled KIND PORT FIELD PROBE: waits until `probe.py PROBE` on the live
#   nodes of KIND prints FIELD=<the number of live nodes>.
settled() {
  local kind=$1 port=$2 field=$3 probe=$4 dead=0 live=() service n out host_var deadline=$((SECONDS + 90))
  for service in "${SERVICES[@]}"; do
    [[ $service =~ ^$kind-([0-9]+)$ ]] || continue
    n=${BASH_REMATCH[1]}
    if [[ " ${KILL[*]} " == *" $service "* ]]; then dead=$((dead + 1)); else
      host_var=REPL_HOST_$n
      live+=("${!host_var:-127.0.0.$n}")
    fi
  done
  ((dead)) || return 0
  ((${#live[@]})) || die "every $kind node is dead"
  local want=$field=${#live[@]} host
  for host in "${live[@]}"; do
    while :; do
      out=$(python3 stack/probe.py "$probe" "$host" "$port" --timeout 3 2>&1 || true)
      [[ " $out " == *" $want "* ]] && { log "$kind on $host: $out"; break; }
      ((SECONDS < deadline)) || die "$kind on $host still counts the dead nodes after 90 s: $out"
      sleep 0.5
    done
    if [[ $kind == kafka ]]; then break; fi  # one broker's metadata is the cluster's
  done
}

smoke() {
  local url
  for url in "${URLS[@]}"; do
    log "smoke test against $url"
    E2E_TARGET_URL=$url cargo test --locked --workspace --test smoke -- --nocapture >&2
  done
}
smoke
timed "smoke test"

if ((${#KILL[@]})); then
  log "SIGKILL ${KILL[*]}, then the smoke test again with them dead"
  for service in "${KILL[@]}"; do
    id=$("${compose[@]}" ps -q "$service")
    [[ -n $id ]] || die "no container for $service"
    # `restart: unless-stopped` would bring it back: stop that first.
    docker update --restart=no "$id" >/dev/null
    docker kill --signal KILL "$id" >/dev/null
  done
  settled kafka "${KAFKA_PORT:-9092}" brokers kafka-cluster
  settled cassandra "${CASSANDRA_PORT:-9042}" up cql-ring
  timed "dead nodes counted out"
  smoke
  timed "smoke test, ${KILL[*]} dead"
fi

log "memory once idle (10 s after the test)"
sleep 10
# shellcheck disable=SC2046
docker stats --no-stream --format 'table {{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}' \
  $("${compose[@]}" ps -q) >&2
step_started=$SECONDS
ok=1
