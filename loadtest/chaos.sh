#!/usr/bin/env bash
# Chaos run (issue 9): two release instances of one deployment on the local
# stack, the load tool's chatters spread over both (partners on different
# instances), and the load tool's nemesis killing each backend in turn with
# SIGKILL, then one instance, and starting each again, while a third
# instance joins and leaves (SIGTERM, then SIGKILL) all along. The load tool then
# prints, per fault, what became of every message, and exits 2 when any was
# lost or went silent. See loadtest/README.md, "Chaos mode".
#
#   bash loadtest/chaos.sh [goose flags...]          default -u 200 -r 50
#   bash loadtest/chaos.sh ctl kill|start <target>   what the nemesis runs (LOAD_CHAOS_CTL);
#                                                    target: redis, cassandra, kafka, instance-<n>
#   bash loadtest/chaos.sh ctl join|leave|crash extra-<n>
#                                                    the scale nemesis: an instance without chatters
#                                                    joins, leaves (SIGTERM) or crashes (SIGKILL)
#
# Environment: the LOAD_* and LOAD_CHAOS_* variables of loadtest/README.md
# (LOAD_RATE defaults to 100 msg/s here), plus
#   LOAD_PORT         the first instance's port (default 3310); the second gets the next one
#   LOAD_STACK_ID     suffix of the keyspace, topic prefix, consumer group and cache prefix
#                     (default: a fresh one per run)
#   LOAD_RUST_LOG     the instances' RUST_LOG (default info,scylla=warn,rdkafka=warn)
#   LOAD_SERVICE_BIN  the chat-service binary (default: the release build)
#   LOAD_NO_BUILD=1   skip `cargo build --release`
# and stack/stack.sh's own variables (STACK_DIR, CASSANDRA_PORT, KAFKA_PORT,
# REDIS_PORT, ...) to run on a stack of its own: this run kills its backends.
#
# STACK_TOPOLOGY=replicated runs on the replicated stack (three Cassandra
# nodes, three Kafka brokers, Redis behind Sentinel): the instances are
# configured for it, and the faults are nodes, by default
# cassandra-2,kafka-leader,redis-master,instance-2, where kafka-leader is
# the broker leading partition 0 of the message topic and redis-master the
# master the Sentinels name, each found when its fault begins.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

log() { printf '[chaos] %s\n' "$*" >&2; }

STACK_HOST=${STACK_HOST:-127.0.0.1}
CASSANDRA_PORT=${CASSANDRA_PORT:-9042}
KAFKA_PORT=${KAFKA_PORT:-9092}
REDIS_PORT=${REDIS_PORT:-6379}
export STACK_HOST CASSANDRA_PORT KAFKA_PORT REDIS_PORT
STACK_RUN_DIR=${STACK_DIR:-$REPO_ROOT/.stack}/run
STACK_TOPOLOGY=${STACK_TOPOLOGY:-single}
export STACK_TOPOLOGY
# The replicated stack's nodes, as stack.sh places them.
read -ra REPL_NODES <<<"$(tr ',' ' ' <<<"${REPL_HOSTS:-127.0.0.1 127.0.0.2 127.0.0.3}")"
join_nodes() { # join_nodes PORT: host:PORT,host:PORT,...
  local out=() host
  for host in "${REPL_NODES[@]}"; do out+=("$host:$1"); done
  (IFS=,; echo "${out[*]}")
}
# How long an instance may take to answer /ready after it starts.
READY_TIMEOUT=${CHAOS_READY_TIMEOUT:-120}

# --------------------------------------------------------------------------
# Instances: the same deployment (keyspace, topics, group, cache prefix) on
# two ports. Everything they need is in CHAOS_* variables, exported by the
# main run, so `ctl` (run by the load tool) starts them the same way.
# --------------------------------------------------------------------------
instance_port() { echo $((CHAOS_BASE_PORT + $1 - 1)); }
instance_pidfile() { echo "$CHAOS_REPORT_DIR/instance-$1.pid"; }

# Alive and not a zombie.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ $(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# The pid in the instance's pid file, if that process is still our binary.
instance_pid() {
  local file pid
  file=$(instance_pidfile "$1")
  [[ -s $file ]] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [[ -n $pid ]] && alive "$pid" || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$CHAOS_BIN")"* ]] || return 1
  echo "$pid"
}

start_instance() {
  local n=$1 port pid
  port=$(instance_port "$n")
  if pid=$(instance_pid "$n"); then
    log "instance-$n already running (pid $pid)"
    return 0
  fi
  if curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
    log "something already answers on port $port; set LOAD_PORT"
    return 1
  fi
  local backends=(
    CASSANDRA_NODE_HOSTS="$STACK_HOST:$CASSANDRA_PORT"
    CACHE_HOST="$STACK_HOST" CACHE_PORT="$REDIS_PORT"
    KAFKA_BROKERS="$STACK_HOST:$KAFKA_PORT"
  )
  if [[ $STACK_TOPOLOGY == replicated ]]; then
    backends=(
      CASSANDRA_NODE_HOSTS="$(join_nodes "$CASSANDRA_PORT")"
      CASSANDRA_DATACENTER=datacenter1
      CASSANDRA_REPLICATION="{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"
      CACHE_HOST="${REPL_NODES[0]}" CACHE_PORT="$REDIS_PORT"
      CACHE_SENTINELS="$(join_nodes "${SENTINEL_PORT:-26379}")"
      CACHE_SENTINEL_MASTER="${SENTINEL_MASTER:-chat}"
      KAFKA_BROKERS="$(join_nodes "$KAFKA_PORT")" KAFKA_PUBLISH_TIMEOUT_MS=1400
      KAFKA_TOPIC_REPLICATION=3 KAFKA_SESSION_TIMEOUT_MS=3000
    )
  fi
  # Own session and no terminal: it outlives the `ctl` that started it.
  (
    exec setsid nohup env PORT="$port" HOST=127.0.0.1 PASSWORDLESS_ACCOUNTS=true \
      RUST_LOG="$CHAOS_RUST_LOG" NO_COLOR=1 \
      "${backends[@]}" \
      CASSANDRA_KEYSPACE="load_$CHAOS_STACK_ID" \
      CACHE_PREFIX="load:$CHAOS_STACK_ID:" \
      KAFKA_TOPIC_PREFIX="load-$CHAOS_STACK_ID." \
      KAFKA_CONSUMER_GROUP="load-$CHAOS_STACK_ID" \
      "$CHAOS_BIN" </dev/null >>"$CHAOS_REPORT_DIR/instance-$n.log" 2>&1
  ) &
  pid=$!
  # Not a job of this shell: its SIGKILL is the nemesis's business, not news.
  disown "$pid"
  echo "$pid" >"$(instance_pidfile "$n")"
  log "instance-$n started (pid $pid) on :$port, log $CHAOS_REPORT_DIR/instance-$n.log"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null; do
    if ! alive "$pid"; then
      log "instance-$n exited; last lines of its log:"
      tail -20 "$CHAOS_REPORT_DIR/instance-$n.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "instance-$n is not ready after ${READY_TIMEOUT}s"
      return 1
    fi
    sleep 0.25
  done
  log "instance-$n ready"
}

kill_instance() {
  local n=$1 pid
  if ! pid=$(instance_pid "$n"); then
    log "instance-$n is not running"
    return 0
  fi
  log "killing instance-$n (pid $pid) with SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  while alive "$pid"; do sleep 0.05; done
  rm -f "$(instance_pidfile "$n")"
}

stop_instance() {
  local n=$1 pid
  pid=$(instance_pid "$n") || return 0
  log "stopping instance-$n (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    alive "$pid" || break
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(instance_pidfile "$n")"
}

# --------------------------------------------------------------------------
# Backends: stack.sh's kill (SIGKILL) and start (returns once it answers).
# --------------------------------------------------------------------------
kill_backend() {
  if bash stack/stack.sh help 2>/dev/null | grep -qw kill; then
    bash stack/stack.sh kill "$1"
    return
  fi
  # An older stack.sh without `kill`: SIGKILL the pid it recorded.
  local pid
  pid=$(tr -dc '0-9' <"$STACK_RUN_DIR/$1.pid" 2>/dev/null) || true
  [[ -n $pid ]] || { log "$1: no pid file in $STACK_RUN_DIR"; return 1; }
  log "killing $1 (pid $pid) with SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  while alive "$pid"; do sleep 0.1; done
}

# A node found when its fault begins (the Kafka leader of partition 0 of
# the message topic, the Redis master): `kill` finds and remembers it,
# `start` starts the one it killed.
found_node() {
  local role=$1 file="$CHAOS_REPORT_DIR/$1.node" answer
  case $role in
    kafka-leader) answer=$(bash stack/stack.sh leader "load-$CHAOS_STACK_ID.chats.message-created" 0) ;;
    redis-master) answer=$(bash stack/stack.sh master redis) ;;
  esac
  # "host:port name"
  echo "${answer##* }" | tee "$file"
}

ctl() {
  local verb=${1:-} target=${2:-}
  [[ -n ${CHAOS_REPORT_DIR:-} ]] || { log "ctl runs under loadtest/chaos.sh only (CHAOS_* not set)"; exit 2; }
  case $verb:$target in
    kill:redis | kill:cassandra | kill:kafka) kill_backend "$target" ;;
    start:redis | start:cassandra | start:kafka) bash stack/stack.sh start "$target" ;;
    # Nodes of the replicated stack.
    kill:cassandra-[0-9] | kill:kafka-[0-9] | kill:redis-[0-9] | kill:sentinel-[0-9])
      bash stack/stack.sh kill "$target" ;;
    start:cassandra-[0-9] | start:kafka-[0-9] | start:redis-[0-9] | start:sentinel-[0-9])
      bash stack/stack.sh start "$target" ;;
    kill:kafka-leader | kill:redis-master)
      local node
      node=$(found_node "$target")
      log "$target is $node"
      bash stack/stack.sh kill "$node" ;;
    start:kafka-leader | start:redis-master)
      bash stack/stack.sh start "$(cat "$CHAOS_REPORT_DIR/$target.node")" ;;
    kill:instance-[0-9]*) kill_instance "${target#instance-}" ;;
    start:instance-[0-9]*) start_instance "${target#instance-}" ;;
    # The scale nemesis: an extra instance of the deployment (no chatters
    # on it) joins the consumer groups, then leaves with SIGTERM or crashes
    # with SIGKILL; each way the groups rebalance under load. As a fault in
    # the schedule (LOAD_CHAOS_FAULTS), `kill` is its join, `start` its leave.
    join:extra-[0-9]* | kill:extra-[0-9]*) start_instance "${target#extra-}" ;;
    leave:extra-[0-9]* | start:extra-[0-9]*) stop_instance "${target#extra-}" ;;
    crash:extra-[0-9]*) kill_instance "${target#extra-}" ;;
    *) log "ctl: unknown '$verb $target' (kill|start redis|cassandra|kafka|instance-<n>; join|leave|crash extra-<n>)"; exit 2 ;;
  esac
}

if [[ ${1:-} == ctl ]]; then
  shift
  ctl "$@"
  exit
fi

# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------
ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bash stack/stack.sh up

if [[ ${LOAD_NO_BUILD:-} != 1 ]]; then
  cargo build --release -p service -p loadtest
fi

TARGET=${CARGO_TARGET_DIR:-target}
export CHAOS_BIN=${LOAD_SERVICE_BIN:-$TARGET/release/chat-service}
export CHAOS_BASE_PORT=${LOAD_PORT:-3310}
export CHAOS_STACK_ID=${LOAD_STACK_ID:-chaos$(date +%Y%m%d%H%M%S)}
export CHAOS_RUST_LOG=${LOAD_RUST_LOG:-info,scylla=warn,rdkafka=warn}
REPORT_DIR=${LOAD_REPORT_DIR:-reports/chaos/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd)
export CHAOS_REPORT_DIR=$REPORT_DIR LOAD_REPORT_DIR=$REPORT_DIR
[[ -x $CHAOS_BIN ]] || { log "no service binary at $CHAOS_BIN"; exit 1; }
# A copy, so a rebuild during the run cannot restart an instance on other code.
cp "$CHAOS_BIN" "$REPORT_DIR/chat-service"
export CHAOS_BIN=$REPORT_DIR/chat-service

cleanup() {
  local file
  for file in "$CHAOS_REPORT_DIR"/instance-*.pid; do
    [[ -e $file ]] || continue
    file=${file##*/instance-}
    stop_instance "${file%.pid}"
  done
  # A run cut short may leave a backend down: bring the stack back.
  if ! bash stack/stack.sh status >/dev/null 2>&1; then
    log "a backend is down; starting the stack again"
    bash stack/stack.sh up || true
  fi
}
trap cleanup EXIT

log "deployment load_$CHAOS_STACK_ID on :$CHAOS_BASE_PORT and :$((CHAOS_BASE_PORT + 1)); reports in $REPORT_DIR"
# The first applies the schema and creates the topics; then the second.
start_instance 1
start_instance 2

ARGS=("$@")
if [[ " ${ARGS[*]+"${ARGS[*]}"} " != *" -u "* && " ${ARGS[*]+"${ARGS[*]}"} " != *" --users"* ]]; then
  ARGS=(-u 200 -r 50 "${ARGS[@]+"${ARGS[@]}"}")
fi

if [[ $STACK_TOPOLOGY == replicated ]]; then
  export LOAD_CHAOS_FAULTS=${LOAD_CHAOS_FAULTS:-cassandra-2,kafka-leader,redis-master,instance-2}
fi

status=0
LOAD_CHAOS=1 \
  LOAD_RATE=${LOAD_RATE:-100} \
  LOAD_HOSTS="http://127.0.0.1:$CHAOS_BASE_PORT,http://127.0.0.1:$((CHAOS_BASE_PORT + 1))" \
  LOAD_CHAOS_CTL=${LOAD_CHAOS_CTL:-bash $REPO_ROOT/loadtest/chaos.sh ctl} \
  LOAD_SERVICE_PID=$(instance_pid 1 || true) \
  "$TARGET/release/loadtest" --host "http://127.0.0.1:$CHAOS_BASE_PORT" "${ARGS[@]}" || status=$?

for logfile in "$REPORT_DIR"/instance-*.log; do
  n=${logfile##*/instance-}
  n=${n%.log}
  [[ -f $logfile ]] || continue
  plain=$(sed -E 's/\x1b\[[0-9;]*m//g' "$logfile")
  log "instance-$n: $(grep -c ' WARN ' <<<"$plain" || true) warnings, $(grep -c ' ERROR ' <<<"$plain" || true) errors in $logfile; most frequent:"
  # Without the time stamp, ids and colours, so alike lines count together.
  sed -E 's/\x1b\[[0-9;]*m//g' "$logfile" | grep -E ' (WARN|ERROR) ' |
    sed -E 's/^[^ ]+ +//; s/[0-9a-f-]{36}/U/g; s/[0-9]{6,}/N/g' |
    cut -c1-160 | sort | uniq -c | sort -rn | head -8 >&2 || true
done
exit "$status"
