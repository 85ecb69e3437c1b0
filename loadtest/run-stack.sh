#!/usr/bin/env bash
# Runs the load tool against a release build of the service on the local
# stack (Cassandra, Kafka, Redis on 127.0.0.1), then stops the service.
#
#   bash loadtest/run-stack.sh [goose flags...]      e.g. -u 2000 -r 200
#
# Environment: every LOAD_* variable of loadtest/README.md, plus
#   LOAD_PORT        port for the service (default 3300, to stay clear of a dev server on 3000)
#   LOAD_STACK_ID    suffix of the keyspace, topic prefix, consumer group and cache prefix
#                    (default: a fresh one per run, so runs never see each other's data)
#   LOAD_RUST_LOG    the service's RUST_LOG (default warn: per-message logs would cost CPU)
#   LOAD_NO_BUILD=1  skip `cargo build --release`
#   LOAD_SERVICE_BIN the chat-service binary to run (default: the release build, which is
#                    then built here; a binary given here is not)
#   LOAD_PROFILE=1   profile the service with `perf record` while the load runs (apt linux-perf):
#                    perf.data (every CPU; service.pid says which process is the service),
#                    plus flat summaries when there are no call graphs;
#                    LOAD_PERF_FREQ    sampling rate (default 49 Hz: perf is not free)
#                    LOAD_PERF_CALL_GRAPH  record call stacks: `fp` (a binary built with frame
#                                      pointers, see loadtest/profile.sh) or `dwarf`
#                    LOAD_PERF_DELAY   seconds after the load starts before recording (the ramp)
# and stack/stack.sh's own variables (STACK_DIR, CASSANDRA_PORT, KAFKA_PORT,
# REDIS_PORT, ...) to measure on a stack of its own, away from test suites
# that restart the shared one.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

log() { printf '[load-stack] %s\n' "$*" >&2; }

# 5,000 sockets are 5,000 descriptors on each side (and the service's
# backend connections on top).
ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "open-file limit: $(ulimit -n)"

bash stack/stack.sh up

SERVICE_BIN=${LOAD_SERVICE_BIN:-${CARGO_TARGET_DIR:-target}/release/chat-service}
if [[ ${LOAD_NO_BUILD:-} != 1 ]]; then
  if [[ -n ${LOAD_SERVICE_BIN:-} ]]; then
    cargo build --release -p loadtest
  else
    cargo build --release -p service -p loadtest
  fi
fi

STACK_HOST=${STACK_HOST:-127.0.0.1}
CASSANDRA_PORT=${CASSANDRA_PORT:-9042}
KAFKA_PORT=${KAFKA_PORT:-9092}
REDIS_PORT=${REDIS_PORT:-6379}
STACK_RUN_DIR=${STACK_DIR:-$REPO_ROOT/.stack}/run
PORT=${LOAD_PORT:-3300}
STACK_ID=${LOAD_STACK_ID:-$(date +%Y%m%d%H%M%S)}
REPORT_DIR=${LOAD_REPORT_DIR:-reports/load/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$REPORT_DIR"
export LOAD_REPORT_DIR=$REPORT_DIR

if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null; then
  log "something already answers on port $PORT; set LOAD_PORT"
  exit 1
fi

log "$SERVICE_BIN on :$PORT, keyspace load_$STACK_ID, logs in $REPORT_DIR/service.log"
# Passwordless accounts: the chatters register without a password, so the
# ramp measures the chat rather than argon2 (the tool sends one to a target
# that requires it).
env PORT=$PORT HOST=127.0.0.1 PASSWORDLESS_ACCOUNTS=true \
  RUST_LOG="${LOAD_RUST_LOG:-warn}" \
  CASSANDRA_NODE_HOSTS="$STACK_HOST:$CASSANDRA_PORT" \
  CASSANDRA_KEYSPACE="load_$STACK_ID" \
  CACHE_HOST="$STACK_HOST" CACHE_PORT="$REDIS_PORT" CACHE_PREFIX="load:$STACK_ID:" \
  KAFKA_BROKERS="$STACK_HOST:$KAFKA_PORT" \
  KAFKA_TOPIC_PREFIX="load-$STACK_ID." \
  KAFKA_CONSUMER_GROUP="load-$STACK_ID" \
  "$SERVICE_BIN" >"$REPORT_DIR/service.log" 2>&1 &
SERVICE_PID=$!
PERF_PID=

stop_service() {
  if [[ -n $PERF_PID ]] && kill -0 "$PERF_PID" 2>/dev/null; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
  fi
  if kill -0 "$SERVICE_PID" 2>/dev/null; then
    log "stopping the service (pid $SERVICE_PID)"
    kill -TERM "$SERVICE_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$SERVICE_PID" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$SERVICE_PID" 2>/dev/null || true
  fi
}
trap stop_service EXIT

for attempt in $(seq 1 240); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/ready" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$SERVICE_PID" 2>/dev/null; then
    log "the service exited; last lines of its log:"
    tail -20 "$REPORT_DIR/service.log" >&2
    exit 1
  fi
  if [[ $attempt == 240 ]]; then
    log "the service is not ready after 120 s"
    exit 1
  fi
  sleep 0.5
done
log "service ready"

# CPU and memory of the backends go into the report next to the service's.
WATCH=""
for svc in cassandra kafka redis; do
  pidfile=$STACK_RUN_DIR/$svc.pid
  if [[ -s $pidfile ]]; then
    WATCH+="${WATCH:+,}$svc=$(tr -dc '0-9' <"$pidfile")"
  fi
done

if [[ ${LOAD_PROFILE:-} == 1 ]]; then
  if command -v perf >/dev/null; then
    # This VM has no hardware counters: sample with the cpu-clock software
    # event. Every CPU (-a), sorted out by pid afterwards: attached to the
    # service alone (-p), perf 6.1 spins on a whole core as soon as one of
    # the service's threads exits (tokio's idle blocking threads do).
    # A release build has no frame pointers: call graphs need the profiling
    # build (fp) or DWARF unwinding, which copies stacks and costs far more.
    perf_args=(-a -e cpu-clock -F "${LOAD_PERF_FREQ:-49}" -o "$REPORT_DIR/perf.data")
    if [[ -n ${LOAD_PERF_CALL_GRAPH:-} ]]; then
      perf_args+=(--call-graph "$LOAD_PERF_CALL_GRAPH")
    fi
    if [[ ${LOAD_PERF_DELAY:-0} != 0 ]]; then
      perf_args+=(--delay "$((LOAD_PERF_DELAY * 1000))")
    fi
    echo "$SERVICE_PID" >"$REPORT_DIR/service.pid"
    perf record "${perf_args[@]}" >"$REPORT_DIR/perf-record.log" 2>&1 &
    PERF_PID=$!
    PERF_STARTED=$SECONDS
    log "perf recording the service into $REPORT_DIR/perf.data (from ${LOAD_PERF_DELAY:-0} s on)"
  else
    log "LOAD_PROFILE=1 but perf is not installed (apt-get install linux-perf)"
  fi
fi

status=0
LOAD_SERVICE_PID=$SERVICE_PID LOAD_WATCH_PIDS=$WATCH \
  "${CARGO_TARGET_DIR:-target}/release/loadtest" --host "http://127.0.0.1:$PORT" "$@" || status=$?

if [[ -n $PERF_PID ]]; then
  # What the profile cost: perf's own CPU time (fields 14 and 15 of
  # /proc/<pid>/stat, in clock ticks) over the time it recorded.
  recorded=$((SECONDS - PERF_STARTED - ${LOAD_PERF_DELAY:-0}))
  awk -v hz="$(getconf CLK_TCK)" -v secs="$recorded" '{
      cpu = ($14 + $15) / hz
      printf "perf used %.1f CPU-seconds over %d s of recording: %.3f cores\n", cpu, secs, cpu / (secs > 0 ? secs : 1)
    }' "/proc/$PERF_PID/stat" | tee "$REPORT_DIR/perf-overhead.txt" >&2 || true
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=
fi
if [[ ${LOAD_PROFILE:-} == 1 && -z ${LOAD_PERF_CALL_GRAPH:-} && -s $REPORT_DIR/perf.data ]]; then
  perf report -i "$REPORT_DIR/perf.data" --pid "$SERVICE_PID" --stdio --no-children --sort dso,symbol \
    --percent-limit 0.3 2>/dev/null | grep -v '^#' | grep -v '^$' |
    sed -E 's/[[:space:]-]+$//' | head -80 >"$REPORT_DIR/perf-service.txt" || true
  perf report -i "$REPORT_DIR/perf.data" --pid "$SERVICE_PID" --stdio --no-children --sort dso \
    2>/dev/null | grep -v '^#' | grep -v '^$' | sed -E 's/[[:space:]-]+$//' \
    >"$REPORT_DIR/perf-service-by-library.txt" || true
  log "service profile: $REPORT_DIR/perf-service.txt"
fi
exit "$status"
