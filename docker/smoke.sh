#!/usr/bin/env bash
# The compose system end to end: up, wait until every service is healthy,
# then the smoke test (e2e/tests/smoke.rs: two users register, chat over
# Socket.IO, read the history over HTTP), then `down -v`, whatever happened.
# Prints how long each step took and the containers' idle memory.
#
#   docker/smoke.sh                          # images must exist (docker/images.sh)
#   CHAT_HOST_ADDRESS=127.0.0.2 CASSANDRA_JMX_PORT=7299 docker/smoke.sh
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
URL=http://$ADDRESS:${CHAT_SERVICE_PORT:-3000}
SERVICES=(cassandra redis kafka chat-service)

log() { printf '[smoke] %s\n' "$*" >&2; }
die() { printf '[smoke] ERROR: %s\n' "$*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  die "neither \`docker compose\` nor docker-compose is installed (docker/engine.sh start installs it)"
fi

timings=()
step_started=$SECONDS
timed() { timings+=("$(printf '%-28s %4ss' "$1" "$((SECONDS - step_started))")"); step_started=$SECONDS; }

ok=0
finish() {
  if [[ $ok != 1 ]]; then
    log "failed: the last lines of each service's log"
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
log "compose up (${compose[*]}, project $COMPOSE_PROJECT_NAME, address $ADDRESS)"
up_started=$SECONDS
# docker-compose 1.29 returns once the services chat-service depends on
# are healthy; v2 may return sooner. The loop below waits for all four.
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

log "smoke test against $URL"
E2E_TARGET_URL=$URL cargo test --locked --workspace --test smoke -- --nocapture >&2
timed "smoke test"

log "memory once idle (10 s after the test)"
sleep 10
# shellcheck disable=SC2046
docker stats --no-stream --format 'table {{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}' \
  $("${compose[@]}" ps -q) >&2
step_started=$SECONDS
ok=1
