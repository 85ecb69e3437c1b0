#!/usr/bin/env bash
# Local test stack: Cassandra 5.0, Kafka 4.x (KRaft) and Redis 7, as plain
# processes on this machine (no Docker). See stack/README.md.
#
#   stack/stack.sh up | down | status | logs [svc] | reset
#   stack/stack.sh start <svc> | stop <svc> | kill <svc> | pause <svc> | resume <svc>
#   stack/stack.sh master redis | leader <topic> <partition>   ("host:port name")
#   stack/stack.sh browser   (installs Chromium and ChromeDriver for the browser test)
#
# svc is one of: cassandra kafka redis. All state lives under $STACK_DIR.
# STACK_TOPOLOGY=replicated: three Cassandra nodes, three Kafka brokers and
# three KRaft controllers, Redis master + replica + three Sentinels
# (stack/replicated.sh; `help`).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

STACK_TOPOLOGY=${STACK_TOPOLOGY:-single}
case $STACK_TOPOLOGY in
  single)
    default_stack_dir=$REPO_ROOT/.stack default_cassandra_heap=1g default_kafka_heap=512m ;;
  replicated)
    default_stack_dir=$REPO_ROOT/.stack-replicated default_cassandra_heap=512m default_kafka_heap=256m ;;
  *) printf '[stack] ERROR: STACK_TOPOLOGY=%s (expected single or replicated)\n' "$STACK_TOPOLOGY" >&2; exit 2 ;;
esac

STACK_HOST=${STACK_HOST:-127.0.0.1}
CASSANDRA_PORT=${CASSANDRA_PORT:-9042}
CASSANDRA_STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-7000}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
REDIS_PORT=${REDIS_PORT:-6379}
STACK_DIR=${STACK_DIR:-$default_stack_dir}
CASSANDRA_HEAP=${CASSANDRA_HEAP:-$default_cassandra_heap}
KAFKA_HEAP=${KAFKA_HEAP:-$default_kafka_heap}
# Seconds to wait for each service to answer.
CASSANDRA_TIMEOUT=${CASSANDRA_TIMEOUT:-240}
KAFKA_TIMEOUT=${KAFKA_TIMEOUT:-120}
REDIS_TIMEOUT=${REDIS_TIMEOUT:-30}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
# 1 starts Cassandra with -Dcassandra.unsafesystem=true: schema changes are
# not flushed, which is faster for throwaway test keyspaces but loses them
# on a crash. Off by default, so a user's schema survives a SIGKILL.
CASSANDRA_UNSAFE_SYSTEM=${CASSANDRA_UNSAFE_SYSTEM:-0}
# How the commit log is synced: `group` (every 5 ms, a write waits for its
# group) or `batch` (at once, writes arriving meanwhile share the next
# sync). Both acknowledge a write only once it is on disk.
CASSANDRA_COMMITLOG_SYNC=${CASSANDRA_COMMITLOG_SYNC:-group}
# The timer slack of Cassandra's threads, in ns (the kernel's default is
# 50000). Cassandra's idle pool workers sleep 10 us at a time while they
# wait for work; each sleep is a context switch, and at 100 to 1,000
# requests a second they never stop: half of Cassandra's CPU. 500 us lets
# the kernel wake them in batches (docs/PERFORMANCE.md, "Timer slack").
# Empty keeps the kernel's default.
CASSANDRA_TIMER_SLACK_NS=${CASSANDRA_TIMER_SLACK_NS-500000}
JAVA=${JAVA:-java}

mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd)   # absolute: it goes into file:// URLs
CACHE_DIR=$STACK_DIR/cache
DATA_DIR=$STACK_DIR/data
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
CONF_DIR=$STACK_DIR/conf
PROBE=$SCRIPT_DIR/probe.py

SERVICES=(cassandra kafka redis)

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

port_of() {
  case $1 in
    cassandra) echo "$CASSANDRA_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
  esac
}
host_of() { echo "$STACK_HOST"; }
log_of() { echo "$LOG_DIR/$1.log"; }
pidfile_of() { echo "$RUN_DIR/$1.pid"; }
check_svc() {
  case ${1:-} in
    cassandra | kafka | redis) ;;
    *) die "unknown service '${1:-}' (expected: cassandra, kafka or redis)" ;;
  esac
}

# --------------------------------------------------------------------------
# Liveness: pid file + kill -0 + the pid really is the process we started
# --------------------------------------------------------------------------
read_pid() {
  local f
  f=$(pidfile_of "$1")
  [[ -s $f ]] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid ]] || return 1
  echo "$pid"
}

# kill -0 succeeds on zombies too (if nothing reaps them): treat those as
# dead. Look at every thread, not only the first: when a JVM is killed its
# main thread can be a zombie while other threads are still exiting and
# holding its ports.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ -d /proc/$1/task ]] || return 0
  # A thread may exit between the glob and the read: cat's complaint is
  # no verdict (and must not fail the pipeline under pipefail).
  { cat /proc/"$1"/task/*/stat 2>/dev/null || true; } |
    awk '{ sub(/.*\) /, ""); if ($1 != "Z" && $1 != "X") live = 1 } END { exit !live }'
}

# Guards against a recycled pid: java processes carry $STACK_DIR in their
# command line; redis-server rewrites its title, so check its executable.
pid_is_ours() {
  local svc=$1 pid=$2
  alive "$pid" || return 1
  case $svc in
    redis) [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] ;;
    *) tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$STACK_DIR/" ;;
  esac
}

running_pid() {
  local pid
  pid=$(read_pid "$1") || return 1
  pid_is_ours "$1" "$pid" || return 1
  echo "$pid"
}

answers() {
  local svc=$1 host port
  host=$(host_of "$svc")
  port=$(port_of "$svc")
  case $svc in
    cassandra) python3 "$PROBE" cql "$host" "$port" --timeout 3 -q 2>/dev/null ;;
    kafka) python3 "$PROBE" kafka "$host" "$port" --timeout 3 -q 2>/dev/null ;;
    redis) [[ $(timeout 5 redis-cli -h "$host" -p "$port" ping 2>/dev/null) == PONG ]] ;;
  esac
}

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

ports_of() {
  case $1 in
    cassandra) echo "$CASSANDRA_PORT $CASSANDRA_STORAGE_PORT" ;;
    kafka) echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
  esac
}

# The kernel may close a dead process's listening sockets a moment after
# the process is gone: wait for that, so a `start` right after does not
# find its port taken.
wait_ports_closed() {
  local svc=$1 port host deadline=$((SECONDS + STOP_TIMEOUT))
  host=$(host_of "$svc")
  for port in $(ports_of "$svc"); do
    while port_open "$host" "$port"; do
      ((SECONDS < deadline)) || die "$svc: $host:$port still open ${STOP_TIMEOUT}s after the process ended"
      sleep 0.1
    done
  done
}

# --------------------------------------------------------------------------
# Installation and jar cache
# --------------------------------------------------------------------------
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  if [[ $apt_updated == 0 ]]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
  local need=("$@") pkgs=()
  command -v python3 >/dev/null || pkgs+=(python3)
  if [[ " ${need[*]} " == *" redis "* ]]; then
    local major=0
    if command -v redis-server >/dev/null; then
      major=$(redis-server --version | sed -n 's/.* v=\([0-9]*\).*/\1/p')
    fi
    if [[ ${major:-0} -lt 7 ]] || ! command -v redis-cli >/dev/null; then
      pkgs+=(redis-server redis-tools)
    fi
  fi
  if [[ " ${need[*]} " == *" cassandra "* || " ${need[*]} " == *" kafka "* ]]; then
    command -v "$JAVA" >/dev/null || pkgs+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || pkgs+=(maven)
  fi
  if ((${#pkgs[@]})); then
    apt_install "${pkgs[@]}"
    # Where systemd runs, the package starts its own redis on 6379: stop it,
    # the stack runs its own instance.
    if [[ " ${pkgs[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null &&
      systemctl is-active --quiet redis-server 2>/dev/null; then
      log "stopping and disabling the distribution's redis-server service"
      systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
  fi
  if [[ " ${need[*]} " == *" redis "* ]]; then
    local major
    major=$(redis-server --version | sed -n 's/.* v=\([0-9]*\).*/\1/p')
    [[ ${major:-0} -ge 7 ]] || die "redis-server ${major:-?}.x found; Redis 7 or later is required"
  fi
}

java_major() {
  "$JAVA" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p'
}

# Jars are fetched once per pom.xml content: the marker holds the pom's hash.
ensure_jars() {
  local svc=$1
  local pom=$SCRIPT_DIR/$svc/pom.xml dir=$CACHE_DIR/$svc
  local marker=$dir/.fetched want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -d $dir/lib && -f $marker && $(cat "$marker") == "$want" ]]; then
    return 0
  fi
  log "fetching $svc jars with Maven (pinned in stack/$svc/pom.xml)"
  rm -rf "${dir:?}/lib" "$dir/lib.tmp" "$marker"
  mkdir -p "$dir"
  local out=$dir/mvn.log
  if ! (cd "$SCRIPT_DIR/$svc" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dir/lib.tmp") >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    die "Maven could not fetch the $svc jars (full output: $out)"
  fi
  mv "$dir/lib.tmp" "$dir/lib"
  echo "$want" >"$marker"
}

# Replace @NAME@ placeholders: render TEMPLATE OUT NAME=value...
render() {
  local src=$1 dst=$2
  shift 2
  local args=() kv
  for kv in "$@"; do
    args+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
  done
  sed "${args[@]}" "$src" >"$dst.tmp"
  mv "$dst.tmp" "$dst"
}

# Start a command detached from the calling shell: own session, stdin from
# /dev/null, output appended to the log, lock fd closed. Prints its pid.
launch() {
  local logfile=$1 workdir=$2
  shift 2
  (
    cd "$workdir"
    # A timer slack asked for (LAUNCH_TIMER_SLACK_NS) is set on this
    # subshell and kept by the exec and every thread the command starts.
    if [[ -n ${LAUNCH_TIMER_SLACK_NS:-} ]]; then
      echo "$LAUNCH_TIMER_SLACK_NS" >/proc/self/timerslack_ns 2>/dev/null || true
    fi
    exec setsid nohup "$@" </dev/null >>"$logfile" 2>&1 9>&-
  ) &
  echo $!
}

# refuse_foreign_port SVC PORT [HOST]
refuse_foreign_port() {
  local svc=$1 port=$2 host=${3:-$STACK_HOST}
  if port_open "$host" "$port"; then
    die "$svc: $host:$port is already in use by a process stack.sh did not start (no live pid in $(pidfile_of "$svc")); stop it or set another port"
  fi
}

# --------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------
# The JVM options of one Cassandra node, into the array CASSANDRA_OPTS:
# cassandra_opts NAME CONF DATA INITIAL_TOKEN (NAME names the crash file).
cassandra_opts() {
  local name=$1 conf=$2 data=$3 token=$4
  local lib=$CACHE_DIR/cassandra/lib jamm
  jamm=$(ls "$lib"/jamm-*.jar 2>/dev/null | head -n 1 || true)
  CASSANDRA_OPTS=(
    -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xss256k
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
    -XX:G1HeapRegionSize=16m -XX:MaxGCPauseMillis=300
    -XX:+ExitOnOutOfMemoryError -XX:+PerfDisableSharedMem
    -XX:ErrorFile="$LOG_DIR/$name-hs_err_%p.log"
    -Djava.net.preferIPv4Stack=true
    -Djdk.attach.allowAttachSelf=true
    -Djava.security.manager=allow
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    # JPMS list from Cassandra's conf/jvm17-server.options
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    # Cassandra itself
    -Dcassandra-foreground=yes
    -Dcassandra.config="file://$conf"
    -Dcassandra.storagedir="$data"
    -Dcassandra.logdir="$LOG_DIR"
    -Dcassandra.triggers_dir="$data/triggers"
    -Dlogback.configurationFile="$SCRIPT_DIR/cassandra/logback.xml"
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.initial_token="$token"
    -Dcassandra.superuser_setup_delay_ms=0
  )
  [[ $CASSANDRA_UNSAFE_SYSTEM == 1 ]] && CASSANDRA_OPTS+=(-Dcassandra.unsafesystem=true)
  [[ -n $jamm ]] && CASSANDRA_OPTS+=(-javaagent:"$jamm")
  CASSANDRA_OPTS+=(-cp "$lib/*" org.apache.cassandra.service.CassandraDaemon)
}

start_cassandra() {
  local conf=$CONF_DIR/cassandra.yaml
  mkdir -p "$DATA_DIR/cassandra/triggers"
  refuse_foreign_port cassandra "$CASSANDRA_PORT"
  refuse_foreign_port cassandra-storage "$CASSANDRA_STORAGE_PORT"
  render "$SCRIPT_DIR/cassandra/cassandra.yaml.in" "$conf" \
    HOST="$STACK_HOST" CQL_PORT="$CASSANDRA_PORT" STORAGE_PORT="$CASSANDRA_STORAGE_PORT" \
    CLUSTER_NAME=local-stack SEEDS="$STACK_HOST:$CASSANDRA_STORAGE_PORT" HINTED_HANDOFF=false \
    COMMITLOG_SYNC="$CASSANDRA_COMMITLOG_SYNC"
  cassandra_opts cassandra "$conf" "$DATA_DIR/cassandra" 0
  local pid
  pid=$(LAUNCH_TIMER_SLACK_NS=$CASSANDRA_TIMER_SLACK_NS launch "$(log_of cassandra)" "$DATA_DIR/cassandra" "$JAVA" "${CASSANDRA_OPTS[@]}")
  echo "$pid" >"$(pidfile_of cassandra)"
  log "cassandra started (pid $pid), CQL on $STACK_HOST:$CASSANDRA_PORT"
}

# The JVM options of Kafka's tools and broker for node NAME (its log file).
kafka_jopts() {
  KAFKA_JOPTS=(
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
    -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2.xml"
    -Dkafka.log.file="$(log_of "$1")"
  )
}

# A new cluster id from Kafka's StorageTool (NAME: whose log gets stderr).
kafka_random_uuid() {
  local cluster_id
  kafka_jopts "$1"
  cluster_id=$("$JAVA" "${KAFKA_JOPTS[@]}" -cp "$CACHE_DIR/kafka/lib/*" kafka.tools.StorageTool random-uuid </dev/null 2>>"$(log_of "$1")" | tail -n 1)
  [[ -n $cluster_id ]] || die "$1: StorageTool random-uuid printed nothing (see $(log_of "$1"))"
  echo "$cluster_id"
}

# kafka_format NAME CONF LOGDIR CLUSTER_ID: once, unless already formatted.
kafka_format() {
  local name=$1 conf=$2 logdir=$3 cluster_id=$4
  [[ -f $logdir/meta.properties ]] && return 0
  kafka_jopts "$name"
  log "$name: formatting $logdir (cluster id $cluster_id)"
  if ! "$JAVA" "${KAFKA_JOPTS[@]}" -cp "$CACHE_DIR/kafka/lib/*" kafka.tools.StorageTool format -g \
      -t "$cluster_id" -c "$conf" </dev/null >>"$(log_of "$name")" 2>&1; then
    tail -n 40 "$(log_of "$name")" >&2
    die "$name: StorageTool format failed"
  fi
}

# kafka_launch NAME CONF LOGDIR [HEAP]: starts the node (broker and/or
# controller, as CONF says; heap KAFKA_HEAP unless given), writes its pid
# file.
kafka_launch() {
  local name=$1 conf=$2 logdir=$3 heap=${4:-$KAFKA_HEAP} pid
  kafka_jopts "$name"
  pid=$(launch "$(log_of "$name")" "$logdir" \
    "$JAVA" -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -XX:ErrorFile="$LOG_DIR/$name-hs_err_%p.log" \
    "${KAFKA_JOPTS[@]}" -cp "$CACHE_DIR/kafka/lib/*" kafka.Kafka "$conf")
  echo "$pid" >"$(pidfile_of "$name")"
  echo "$pid"
}

start_kafka() {
  local conf=$CONF_DIR/server.properties
  local logdir=$DATA_DIR/kafka
  mkdir -p "$logdir"
  refuse_foreign_port kafka "$KAFKA_PORT"
  refuse_foreign_port kafka-controller "$KAFKA_CONTROLLER_PORT"
  render "$SCRIPT_DIR/kafka/server.properties.in" "$conf" \
    HOST="$STACK_HOST" PORT="$KAFKA_PORT" CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" \
    LOG_DIRS="$logdir" NODE_ID=1 VOTERS="1@$STACK_HOST:$KAFKA_CONTROLLER_PORT" \
    REPLICATION_FACTOR=1 MIN_ISR=1
  if [[ ! -f $logdir/meta.properties ]]; then
    local cluster_id
    cluster_id=$(kafka_random_uuid kafka)
    kafka_format kafka "$conf" "$logdir" "$cluster_id"
  fi
  local pid
  pid=$(kafka_launch kafka "$conf" "$logdir")
  log "kafka started (pid $pid), broker on $STACK_HOST:$KAFKA_PORT, controller on $STACK_HOST:$KAFKA_CONTROLLER_PORT"
}

# Redis keeps an append-only file, as a production session store would, so
# sessions survive a restart (the fault tests restart it).
start_redis() {
  mkdir -p "$DATA_DIR/redis"
  refuse_foreign_port redis "$REDIS_PORT"
  local pid
  pid=$(launch "$(log_of redis)" "$DATA_DIR/redis" \
    redis-server --bind "$STACK_HOST" --port "$REDIS_PORT" --dir "$DATA_DIR/redis" \
    --save "" --appendonly yes --appendfsync everysec \
    --daemonize no --protected-mode no --logfile "")
  echo "$pid" >"$(pidfile_of redis)"
  log "redis started (pid $pid) on $STACK_HOST:$REDIS_PORT"
}

# Start the service unless it is already running. Returns 0 if it was started.
start_service() {
  local svc=$1 pid
  if pid=$(running_pid "$svc"); then
    log "$svc already running (pid $pid)"
    return 1
  fi
  rm -f "$(pidfile_of "$svc")"
  "start_$svc"
}

fail_service() {
  local svc=$1 why=$2 logfile
  logfile=$(log_of "$svc")
  printf '[stack] ERROR: %s %s\n' "$svc" "$why" >&2
  if [[ -f $logfile ]]; then
    printf '[stack] ---- last 40 lines of %s ----\n' "$logfile" >&2
    tail -n 40 "$logfile" >&2
    printf '[stack] ---- end of %s ----\n' "$logfile" >&2
  fi
}

timeout_of() {
  case $1 in
    cassandra) echo "$CASSANDRA_TIMEOUT" ;;
    kafka) echo "$KAFKA_TIMEOUT" ;;
    redis) echo "$REDIS_TIMEOUT" ;;
  esac
}

# Wait until each named service answers; they boot concurrently, so one
# polling loop serves them all. Returns 1 if any died or timed out.
wait_ready() {
  local pending=("$@") failed=0 start=$SECONDS
  while ((${#pending[@]})); do
    local still=() svc
    for svc in "${pending[@]}"; do
      local pid
      if ! pid=$(running_pid "$svc"); then
        fail_service "$svc" "process died before answering on $STACK_HOST:$(port_of "$svc")"
        rm -f "$(pidfile_of "$svc")"
        failed=1
      elif answers "$svc"; then
        log "$svc answers on $STACK_HOST:$(port_of "$svc") after $((SECONDS - start))s"
      elif ((SECONDS - start >= $(timeout_of "$svc"))); then
        fail_service "$svc" "did not answer on $STACK_HOST:$(port_of "$svc") within $(timeout_of "$svc")s (pid $pid still running; left as is)"
        failed=1
      else
        still+=("$svc")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) && sleep 1
  done
  return "$failed"
}

# Send SIGTERM to each running service, then wait for all; SIGKILL stragglers.
stop_services() {
  local svc pid victims=()
  for svc in "$@"; do
    if pid=$(running_pid "$svc"); then
      log "stopping $svc (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      # A paused (SIGSTOPped) process acts on SIGTERM only once continued.
      kill -CONT "$pid" 2>/dev/null || true
      victims+=("$svc:$pid")
    else
      [[ -f $(pidfile_of "$svc") ]] && log "$svc not running (stale pid file removed)"
      rm -f "$(pidfile_of "$svc")"
    fi
  done
  local deadline=$((SECONDS + STOP_TIMEOUT)) v
  for v in "${victims[@]+"${victims[@]}"}"; do
    svc=${v%%:*}
    pid=${v#*:}
    while alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.5
    done
    if alive "$pid"; then
      log "$svc (pid $pid) still alive after ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local n=0
      while alive "$pid" && ((n++ < 50)); do sleep 0.2; done
    fi
    rm -f "$(pidfile_of "$svc")"
    wait_ports_closed "$svc"
    log "$svc stopped"
  done
}

# A crash, not a stop: SIGKILL, wait until the process is gone, drop the pid
# file. Nothing gets to flush or say goodbye to its clients.
kill_service() {
  local svc=$1 pid
  if ! pid=$(running_pid "$svc"); then
    log "$svc not running (nothing to kill)"
    rm -f "$(pidfile_of "$svc")"
    return 0
  fi
  log "killing $svc (pid $pid) with SIGKILL"
  # A stopped process dies of SIGKILL too; SIGCONT is not needed.
  kill -KILL "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid"; do
    ((SECONDS < deadline)) || die "$svc (pid $pid) still alive ${STOP_TIMEOUT}s after SIGKILL"
    sleep 0.1
  done
  rm -f "$(pidfile_of "$svc")"
  wait_ports_closed "$svc"
  log "$svc killed"
}

# SIGSTOP / SIGCONT: the process keeps its sockets open but answers nothing,
# as a long GC pause or a hung host would.
signal_service() {
  local svc=$1 signal=$2 pid
  pid=$(running_pid "$svc") || die "$svc is not running (no live pid in $(pidfile_of "$svc"))"
  kill -"$signal" "$pid"
  log "$svc (pid $pid) sent SIG$signal"
}

# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------
take_lock() {
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$DATA_DIR" "$CONF_DIR" "$CACHE_DIR"
  exec 9>"$RUN_DIR/.lock"
  flock 9
}

prepare() {
  local svc
  ensure_tools "$@"
  for svc in "$@"; do
    if [[ $svc == cassandra || $svc == kafka ]]; then
      local major
      major=$(java_major)
      [[ $major == 17 ]] || log "warning: $JAVA is Java ${major:-?}; Cassandra 5.0 and Kafka 4 are tested here on 17"
      break
    fi
  done
}

cmd_up() {
  take_lock
  prepare "${SERVICES[@]}"
  local started=() svc
  # Cassandra boots slowest: start it first, fetch Kafka's jars while it boots.
  for svc in "${SERVICES[@]}"; do
    if ! running_pid "$svc" >/dev/null; then
      [[ $svc == redis ]] || ensure_jars "$svc"
      if start_service "$svc"; then started+=("$svc"); fi
    fi
  done
  # Also wait for services that were running but not yet answering (e.g. a
  # previous `up` that is still booting, or timed out).
  local wait=()
  for svc in "${SERVICES[@]}"; do
    if [[ " ${started[*]+"${started[*]}"} " == *" $svc "* ]] || ! answers "$svc"; then
      wait+=("$svc")
    else
      log "$svc running (pid $(running_pid "$svc")) and answering"
    fi
  done
  if ((${#wait[@]})); then
    wait_ready "${wait[@]}" || die "stack is not fully up (see above; logs in $LOG_DIR)"
  fi
  log "stack up: cassandra $STACK_HOST:$CASSANDRA_PORT, kafka $STACK_HOST:$KAFKA_PORT, redis $STACK_HOST:$REDIS_PORT"
}

cmd_start() {
  check_svc "${1:-}"
  take_lock
  prepare "$1"
  [[ $1 == redis ]] || ensure_jars "$1"
  start_service "$1" || true
  wait_ready "$1" || die "$1 did not come up"
}

cmd_stop() {
  check_svc "${1:-}"
  take_lock
  stop_services "$1"
}

cmd_kill() {
  check_svc "${1:-}"
  take_lock
  kill_service "$1"
}

cmd_pause() {
  check_svc "${1:-}"
  take_lock
  signal_service "$1" STOP
}

cmd_resume() {
  check_svc "${1:-}"
  take_lock
  signal_service "$1" CONT
}

cmd_down() {
  take_lock
  stop_services kafka cassandra redis
}

cmd_status() {
  local svc pid ok=0
  for svc in "${SERVICES[@]}"; do
    local state=stopped shown=- answering=no
    if pid=$(running_pid "$svc"); then
      state=running
      shown=$pid
      [[ $(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$pid/stat" 2>/dev/null) == T ]] && state=paused
    fi
    if [[ $state != paused ]] && answers "$svc"; then answering=yes; fi
    [[ $state == running && $answering == yes ]] || ok=1
    printf '%-10s %-8s pid=%-8s %s:%-6s answering=%s\n' \
      "$svc" "$state" "$shown" "$STACK_HOST" "$(port_of "$svc")" "$answering"
  done
  return "$ok"
}

cmd_logs() {
  local svcs=("${SERVICES[@]}") svc
  if [[ -n ${1:-} ]]; then
    check_svc "$1"
    svcs=("$1")
  fi
  for svc in "${svcs[@]}"; do
    local f
    f=$(log_of "$svc")
    echo "==> $f <=="
    if [[ -f $f ]]; then tail -n 50 "$f"; else echo "(no log yet)"; fi
    echo
  done
}

# The e2e suite's browser test drives Debian's Chromium through its
# ChromeDriver; both come from apt like Redis, never from a test tool's own
# download.
cmd_browser() {
  local pkgs=()
  [[ -x /usr/bin/chromium ]] || pkgs+=(chromium)
  [[ -x /usr/bin/chromedriver ]] || pkgs+=(chromium-driver)
  if ((${#pkgs[@]})); then
    apt_install "${pkgs[@]}"
  fi
  log "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium: no version')"
  log "$(/usr/bin/chromedriver --version 2>/dev/null | head -1)"
}

cmd_reset() {
  cmd_down
  log "deleting $DATA_DIR, $LOG_DIR and $CONF_DIR (keeping the jar cache)"
  rm -rf "$DATA_DIR" "$LOG_DIR" "$CONF_DIR"
}

# `master redis` and `leader TOPIC PARTITION` as in the replicated topology
# ("host:port node"), so a fault test asks the same way on either.
cmd_master() {
  [[ ${1:-} == redis ]] || die "usage: stack.sh master redis"
  echo "$STACK_HOST:$REDIS_PORT redis"
}

cmd_leader() {
  local topic=${1:-} partition=${2:-} out
  [[ -n $topic && $partition =~ ^[0-9]+$ ]] || die "usage: stack.sh leader <topic> <partition>"
  out=$(python3 "$PROBE" kafka-leader "$STACK_HOST" "$KAFKA_PORT" "$topic" "$partition" --timeout 3 2>&1) ||
    die "${out##*: }"
  echo "${out#* } kafka"
}

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    pause) cmd_pause "$@" ;;
    resume) cmd_resume "$@" ;;
    reset) cmd_reset ;;
    browser) cmd_browser ;;
    master) cmd_master "$@" ;;
    leader) cmd_leader "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

if [[ $STACK_TOPOLOGY == replicated ]]; then
  # shellcheck source=stack/replicated.sh
  source "$SCRIPT_DIR/replicated.sh"
  repl_main "$@"
else
  main "$@"
fi
