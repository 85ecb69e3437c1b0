# shellcheck shell=bash
# The replicated topology of the local stack (STACK_TOPOLOGY=replicated):
#
#   cassandra-1..3  one Cassandra 5.0 cluster (datacenter1), CQL and storage
#                   on each node's own loopback address
#   kafka-controller-1..3
#                   the KRaft controllers (metadata quorum) of one Kafka
#                   cluster, node.id 101..103, controller port only
#   kafka-1..3      its brokers, node.id 1..3
#   redis-1         Redis master;  redis-2  its replica
#   sentinel-1..3   Sentinels monitoring master `chat`, quorum 2
#
# Sourced by stack/stack.sh after its helpers. It redefines the per-service
# lookups (host_of, port_of, ports_of, timeout_of, pid_is_ours, answers,
# check_svc) for node names, so stack.sh's kill_service, stop_services and
# signal_service work on one node exactly as they do on one service, and it
# adds the replicated commands (repl_main). See stack/README.md.

split_words() { tr ',' ' ' <<<"$1"; }

REPL_HOSTS=${REPL_HOSTS:-127.0.0.1 127.0.0.2 127.0.0.3}
read -ra CASSANDRA_HOSTS <<<"$(split_words "${CASSANDRA_HOSTS:-$REPL_HOSTS}")"
read -ra KAFKA_HOSTS <<<"$(split_words "${KAFKA_HOSTS:-$REPL_HOSTS}")"
read -ra KAFKA_CONTROLLER_HOSTS <<<"$(split_words "${KAFKA_CONTROLLER_HOSTS:-${KAFKA_HOSTS[*]}}")"
read -ra SENTINEL_HOSTS <<<"$(split_words "${SENTINEL_HOSTS:-$REPL_HOSTS}")"
read -ra REDIS_HOSTS <<<"$(split_words "${REDIS_HOSTS:-$REPL_HOSTS}")"
REDIS_HOSTS=("${REDIS_HOSTS[@]:0:2}")
SENTINEL_PORT=${SENTINEL_PORT:-26379}
SENTINEL_MASTER=${SENTINEL_MASTER:-chat}
SENTINEL_QUORUM=${SENTINEL_QUORUM:-2}
SENTINEL_DOWN_AFTER_MS=${SENTINEL_DOWN_AFTER_MS:-1000}
SENTINEL_FAILOVER_TIMEOUT_MS=${SENTINEL_FAILOVER_TIMEOUT_MS:-5000}
CASSANDRA_CLUSTER=local-stack-replicated
# The controllers' heap: they hold only the cluster's metadata.
KAFKA_CONTROLLER_HEAP=${KAFKA_CONTROLLER_HEAP:-128m}
# node.id of kafka-controller-N is this + N (the brokers are 1..3).
KAFKA_CONTROLLER_ID_BASE=100

CASSANDRA_NODES=(cassandra-1 cassandra-2 cassandra-3)
KAFKA_CONTROLLER_NODES=(kafka-controller-1 kafka-controller-2 kafka-controller-3)
KAFKA_NODES=(kafka-1 kafka-2 kafka-3)
REDIS_NODES=(redis-1 redis-2)
SENTINEL_NODES=(sentinel-1 sentinel-2 sentinel-3)
NODES=("${CASSANDRA_NODES[@]}" "${KAFKA_CONTROLLER_NODES[@]}" "${KAFKA_NODES[@]}" "${REDIS_NODES[@]}" "${SENTINEL_NODES[@]}")

kind_of() { echo "${1%-*}"; }
index_of() { echo "${1##*-}"; }

# --------------------------------------------------------------------------
# Per-node lookups (redefinitions of stack.sh's per-service ones)
# --------------------------------------------------------------------------
host_of() {
  local i=$(($(index_of "$1") - 1))
  case $(kind_of "$1") in
    cassandra) echo "${CASSANDRA_HOSTS[$i]}" ;;
    kafka) echo "${KAFKA_HOSTS[$i]}" ;;
    kafka-controller) echo "${KAFKA_CONTROLLER_HOSTS[$i]}" ;;
    redis) echo "${REDIS_HOSTS[$i]}" ;;
    sentinel) echo "${SENTINEL_HOSTS[$i]}" ;;
  esac
}

port_of() {
  case $(kind_of "$1") in
    cassandra) echo "$CASSANDRA_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    kafka-controller) echo "$KAFKA_CONTROLLER_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    sentinel) echo "$SENTINEL_PORT" ;;
  esac
}

ports_of() {
  case $(kind_of "$1") in
    cassandra) echo "$CASSANDRA_PORT $CASSANDRA_STORAGE_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    kafka-controller) echo "$KAFKA_CONTROLLER_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    sentinel) echo "$SENTINEL_PORT" ;;
  esac
}

timeout_of() {
  case $(kind_of "$1") in
    cassandra) echo "$CASSANDRA_TIMEOUT" ;;
    kafka | kafka-controller) echo "$KAFKA_TIMEOUT" ;;
    *) echo "$REDIS_TIMEOUT" ;;
  esac
}

addr_of() { echo "$(host_of "$1"):$(port_of "$1")"; }

# The node whose address (host:port) this is, of the given kind.
node_at() {
  local kind=$1 addr=$2 node nodes
  case $kind in
    kafka) nodes=("${KAFKA_NODES[@]}") ;;
    kafka-controller) nodes=("${KAFKA_CONTROLLER_NODES[@]}") ;;
    redis) nodes=("${REDIS_NODES[@]}") ;;
    *) return 1 ;;
  esac
  for node in "${nodes[@]}"; do
    [[ $(addr_of "$node") == "$addr" ]] && { echo "$node"; return 0; }
  done
  return 1
}

check_svc() {
  local node=${1:-} n
  for n in "${NODES[@]}"; do
    [[ $n == "$node" ]] && return 0
  done
  case $node in
    cassandra) die "the replicated topology has three Cassandra nodes: name one (${CASSANDRA_NODES[*]})" ;;
    kafka) die "the replicated topology has three Kafka brokers and three controllers: name one (${KAFKA_NODES[*]} ${KAFKA_CONTROLLER_NODES[*]})" ;;
    kafka-controller) die "the replicated topology has three Kafka controllers: name one (${KAFKA_CONTROLLER_NODES[*]})" ;;
    redis) die "the replicated topology has two Redis nodes: name one (${REDIS_NODES[*]}; \`stack.sh master redis\` says which is master)" ;;
    sentinel) die "the replicated topology has three Sentinels: name one (${SENTINEL_NODES[*]})" ;;
    *) die "unknown node '$node' (expected one of: ${NODES[*]})" ;;
  esac
}

# Java nodes carry their own rendered config's path on the command line;
# redis-server rewrites its title, so check its executable and that it runs
# in the node's data directory (stack.sh starts it there).
pid_is_ours() {
  local node=$1 pid=$2
  alive "$pid" || return 1
  case $(kind_of "$node") in
    redis | sentinel)
      [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] &&
        [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$DATA_DIR/$node" ]]
      ;;
    *) tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF_DIR/$node." ;;
  esac
}

redis_cli() {
  local node=$1
  shift
  timeout 5 redis-cli -h "$(host_of "$node")" -p "$(port_of "$node")" "$@" 2>/dev/null
}

answers() {
  local node=$1
  case $(kind_of "$node") in
    cassandra) python3 "$PROBE" cql "$(host_of "$node")" "$CASSANDRA_PORT" --timeout 3 -q 2>/dev/null ;;
    kafka) python3 "$PROBE" kafka "$(host_of "$node")" "$KAFKA_PORT" --timeout 3 -q 2>/dev/null ;;
    kafka-controller) python3 "$PROBE" kafka-quorum "$(host_of "$node")" "$KAFKA_CONTROLLER_PORT" --timeout 3 -q 2>/dev/null ;;
    redis | sentinel) [[ $(redis_cli "$node" ping) == PONG ]] ;;
  esac
}

is_paused() {
  [[ $(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) == T ]]
}

# Nodes of a kind that run and are not paused.
running_nodes() {
  local node pid
  for node in "$@"; do
    if pid=$(running_pid "$node") && ! is_paused "$pid"; then echo "$node"; fi
  done
}

# --------------------------------------------------------------------------
# Cluster views
# --------------------------------------------------------------------------
# "up=N peers=P": how many Cassandra nodes this node's coordinator counts
# live (probe.py cql-ring).
cassandra_view() {
  python3 "$PROBE" cql-ring "$(host_of "$1")" "$CASSANDRA_PORT" --timeout 5 2>/dev/null |
    sed -n 's/.* ok //p'
}

# "brokers=N partitions=P under_replicated=U offline=O" from this broker.
kafka_view() {
  python3 "$PROBE" kafka-cluster "$(host_of "$1")" "$KAFKA_PORT" --timeout 5 2>/dev/null |
    sed -n 's/.* ok //p'
}

# The node.id of a controller node, and the controller node of a node.id.
controller_id() { echo $((KAFKA_CONTROLLER_ID_BASE + $(index_of "$1"))); }
controller_named() {
  local n=$(($1 - KAFKA_CONTROLLER_ID_BASE))
  ((n >= 1 && n <= ${#KAFKA_CONTROLLER_NODES[@]})) && echo "${KAFKA_CONTROLLER_NODES[$((n - 1))]}"
}

# The quorum as the active controller describes it (probe.py kafka-quorum:
# "role=leader id=ID epoch=E high_watermark=H voters=ID:LAG_MS,...
# observers=ID,..."), asking the running controllers in turn; fails if
# none is the leader.
kafka_quorum_view() {
  local node out
  for node in $(running_nodes "${KAFKA_CONTROLLER_NODES[@]}"); do
    out=$(python3 "$PROBE" kafka-quorum "$(host_of "$node")" "$KAFKA_CONTROLLER_PORT" --timeout 3 2>/dev/null |
      sed -n 's/.* ok //p')
    if [[ $out == role=leader* ]]; then
      echo "$out"
      return 0
    fi
  done
  return 1
}

# The active controller: "host:port kafka-controller-N".
active_controller() {
  local view id node
  view=$(kafka_quorum_view) || return 1
  id=$(sed -n 's/.* id=\([0-9]*\) .*/\1/p' <<<"$view")
  node=$(controller_named "$id") || return 1
  echo "$(addr_of "$node") $node"
}

# One field of `INFO replication` (role, master_host, master_link_status...).
redis_info() {
  redis_cli "$1" info replication | tr -d '\r' | sed -n "s/^$2://p"
}

# "host:port" of the master, as the first Sentinel that answers reports it.
sentinel_master() {
  local node out
  for node in "${SENTINEL_NODES[@]}"; do
    out=$(redis_cli "$node" sentinel get-master-addr-by-name "$SENTINEL_MASTER" | tr -d '\r' | paste -sd: -)
    if [[ $out == *:* ]]; then
      echo "$out"
      return 0
    fi
  done
  return 1
}

# One field of `SENTINEL master <name>` as this Sentinel reports it.
sentinel_field() {
  redis_cli "$1" sentinel master "$SENTINEL_MASTER" | tr -d '\r' |
    awk -v key="$2" 'NR % 2 == 1 && $0 == key { getline; print; exit }'
}

# Whether NODE is ready beyond answering; prints what it sees either way.
# Cassandra: it counts every running Cassandra node live. Kafka: it lists
# every running broker, and when all three run, no partition is
# under-replicated or offline. Kafka controller: the quorum has an active
# controller, which saw this one caught up with the metadata log within
# the last 5 s (and, if it is the active one, every running broker fetching
# that log). Redis: a replica's link to its master is up.
# Sentinel: it knows the master, the other running Sentinels and, when both
# Redis nodes run, a replica.
node_ready() {
  local node=$1 view want
  case $(kind_of "$node") in
    cassandra)
      view=$(cassandra_view "$node")
      echo "${view:-no view}"
      want=$(running_nodes "${CASSANDRA_NODES[@]}" | wc -l)
      [[ $view == "up=$want "* ]]
      ;;
    kafka)
      view=$(kafka_view "$node")
      echo "${view:-no view}"
      want=$(running_nodes "${KAFKA_NODES[@]}" | wc -l)
      [[ $view == "brokers=$want "* ]] || return 1
      ((want < ${#KAFKA_NODES[@]})) || [[ $view == *" under_replicated=0 offline=0" ]]
      ;;
    kafka-controller)
      local quorum id lag observers
      if ! quorum=$(kafka_quorum_view); then
        echo "no active controller"
        return 1
      fi
      id=$(controller_id "$node")
      lag=$(sed -n "s/.* voters=\([^ ]*\).*/,\1,/p" <<<"$quorum" | sed -n "s/.*,$id:\(-\{0,1\}[0-9]*\),.*/\1/p")
      observers=$(sed -n 's/.* observers=\([^ ]*\).*/\1/p' <<<"$quorum" | tr ',' '\n' | grep -c '^[0-9]' || true)
      if [[ $quorum == *" id=$id "* ]]; then
        echo "active epoch=$(sed -n 's/.* epoch=\([0-9]*\) .*/\1/p' <<<"$quorum") brokers=$observers"
        want=$(running_nodes "${KAFKA_NODES[@]}" | wc -l)
        ((observers >= want))
      else
        echo "follower of $(active_controller | cut -d' ' -f2) caught_up_ms_ago=${lag:-?}"
        [[ -n $lag ]] && ((lag >= 0 && lag <= 5000))
      fi
      ;;
    redis)
      local role link
      role=$(redis_info "$node" role)
      if [[ $role == slave ]]; then
        link=$(redis_info "$node" master_link_status)
        echo "role=replica of $(redis_info "$node" master_host):$(redis_info "$node" master_port) link=$link"
        [[ $link == up ]]
      else
        echo "role=${role:-?}"
        [[ $role == master ]]
      fi
      ;;
    sentinel)
      local master replicas sentinels
      master=$(redis_cli "$node" sentinel get-master-addr-by-name "$SENTINEL_MASTER" | tr -d '\r' | paste -sd: -)
      replicas=$(sentinel_field "$node" num-slaves)
      sentinels=$(sentinel_field "$node" num-other-sentinels)
      echo "master=${master:-?} replicas=${replicas:-?} sentinels=$((${sentinels:-0} + 1))"
      [[ $master == *:* ]] || return 1
      ((${sentinels:-0} + 1 >= $(running_nodes "${SENTINEL_NODES[@]}" | wc -l))) || return 1
      (($(running_nodes "${REDIS_NODES[@]}" | wc -l) < 2 || ${replicas:-0} >= 1))
      ;;
  esac
}

# --------------------------------------------------------------------------
# Settings that a stack's data depends on
# --------------------------------------------------------------------------
check_hosts() {
  local name=$1 want=$2 host
  shift 2
  (($# == want)) || die "$name (or REPL_HOSTS) must name $want addresses, not $#: $*"
  for host in "$@"; do
    [[ $host =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
      die "$name: $host is not a loopback address (127.x.y.z); the local stack listens on loopback only"
  done
  [[ $(printf '%s\n' "$@" | sort -u | wc -l) == "$#" ]] || die "$name names an address twice: $*"
}

check_settings() {
  check_hosts CASSANDRA_HOSTS 3 "${CASSANDRA_HOSTS[@]}"
  check_hosts KAFKA_HOSTS 3 "${KAFKA_HOSTS[@]}"
  check_hosts KAFKA_CONTROLLER_HOSTS 3 "${KAFKA_CONTROLLER_HOSTS[@]}"
  check_hosts REDIS_HOSTS 2 "${REDIS_HOSTS[@]}"
  check_hosts SENTINEL_HOSTS 3 "${SENTINEL_HOSTS[@]}"
}

# The addresses and ports are written into the Cassandra ring, the Kafka
# quorum and the Sentinels' files: a stack keeps the ones it was made with.
settings_summary() {
  printf 'cassandra %s cql %s storage %s\n' "${CASSANDRA_HOSTS[*]}" "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT"
  printf 'kafka brokers %s port %s\n' "${KAFKA_HOSTS[*]}" "$KAFKA_PORT"
  printf 'kafka controllers %s port %s\n' "${KAFKA_CONTROLLER_HOSTS[*]}" "$KAFKA_CONTROLLER_PORT"
  printf 'redis %s port %s\n' "${REDIS_HOSTS[*]}" "$REDIS_PORT"
  printf 'sentinel %s port %s master %s\n' "${SENTINEL_HOSTS[*]}" "$SENTINEL_PORT" "$SENTINEL_MASTER"
}

check_topology_file() {
  local file=$DATA_DIR/topology want
  want=$(settings_summary)
  if [[ -f $file ]]; then
    [[ $(cat "$file") == "$want" ]] ||
      die "$STACK_DIR was made for other addresses or ports:
$(cat "$file")
now:
$want
use the same variables, or \`STACK_TOPOLOGY=replicated stack.sh reset\` first"
  else
    mkdir -p "$DATA_DIR"
    echo "$want" >"$file"
  fi
}

# --------------------------------------------------------------------------
# Starting nodes
# --------------------------------------------------------------------------
# Evenly spaced Murmur3 tokens, fixed per node: a deterministic ring.
cassandra_token() {
  python3 -c "print(-2**63 + ($1 - 1) * (2**64 // 3))"
}

start_cassandra_node() {
  local node=$1 host conf data
  host=$(host_of "$node")
  conf=$CONF_DIR/$node.yaml
  data=$DATA_DIR/$node
  mkdir -p "$data/triggers"
  refuse_foreign_port "$node" "$CASSANDRA_PORT" "$host"
  refuse_foreign_port "$node" "$CASSANDRA_STORAGE_PORT" "$host"
  render "$SCRIPT_DIR/cassandra/cassandra.yaml.in" "$conf" \
    HOST="$host" CQL_PORT="$CASSANDRA_PORT" STORAGE_PORT="$CASSANDRA_STORAGE_PORT" \
    CLUSTER_NAME="$CASSANDRA_CLUSTER" HINTED_HANDOFF=true COMMITLOG_SYNC="$CASSANDRA_COMMITLOG_SYNC" \
    SEEDS="${CASSANDRA_HOSTS[0]}:$CASSANDRA_STORAGE_PORT,${CASSANDRA_HOSTS[1]}:$CASSANDRA_STORAGE_PORT"
  cassandra_opts "$node" "$conf" "$data" "$(cassandra_token "$(index_of "$node")")"
  local pid
  # shellcheck disable=SC2153 # set by cassandra_opts
  pid=$(LAUNCH_TIMER_SLACK_NS=$CASSANDRA_TIMER_SLACK_NS launch "$(log_of "$node")" "$data" "$JAVA" "${CASSANDRA_OPTS[@]}")
  echo "$pid" >"$(pidfile_of "$node")"
  log "$node started (pid $pid), CQL on $host:$CASSANDRA_PORT"
}

# One cluster id for the six Kafka nodes, made once per stack.
kafka_cluster_id() {
  local file=$DATA_DIR/kafka-cluster-id
  if [[ ! -s $file ]]; then
    local id
    id=$(kafka_random_uuid kafka-controller-1)
    echo "$id" >"$file.tmp"
    mv "$file.tmp" "$file"
  fi
  cat "$file"
}

# The static quorum: "101@host1:9093,102@host2:9093,103@host3:9093".
kafka_voters() {
  local node voters=""
  for node in "${KAFKA_CONTROLLER_NODES[@]}"; do
    voters+="${voters:+,}$(controller_id "$node")@$(host_of "$node"):$KAFKA_CONTROLLER_PORT"
  done
  echo "$voters"
}

start_kafka_controller_node() {
  local node=$1 host conf logdir
  host=$(host_of "$node")
  conf=$CONF_DIR/$node.properties
  logdir=$DATA_DIR/$node
  mkdir -p "$logdir"
  refuse_foreign_port "$node" "$KAFKA_CONTROLLER_PORT" "$host"
  render "$SCRIPT_DIR/kafka/controller.properties.in" "$conf" \
    HOST="$host" CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" LOG_DIRS="$logdir" \
    NODE_ID="$(controller_id "$node")" VOTERS="$(kafka_voters)" \
    REPLICATION_FACTOR=3 MIN_ISR=2
  local cluster_id pid
  cluster_id=$(kafka_cluster_id)
  kafka_format "$node" "$conf" "$logdir" "$cluster_id"
  pid=$(kafka_launch "$node" "$conf" "$logdir" "$KAFKA_CONTROLLER_HEAP")
  log "$node started (pid $pid), controller on $host:$KAFKA_CONTROLLER_PORT (node.id $(controller_id "$node"))"
}

start_kafka_node() {
  local node=$1 host conf logdir
  host=$(host_of "$node")
  conf=$CONF_DIR/$node.properties
  logdir=$DATA_DIR/$node
  mkdir -p "$logdir"
  refuse_foreign_port "$node" "$KAFKA_PORT" "$host"
  render "$SCRIPT_DIR/kafka/broker.properties.in" "$conf" \
    HOST="$host" PORT="$KAFKA_PORT" LOG_DIRS="$logdir" \
    NODE_ID="$(index_of "$node")" VOTERS="$(kafka_voters)" \
    REPLICATION_FACTOR=3 MIN_ISR=2
  local cluster_id pid
  cluster_id=$(kafka_cluster_id)
  kafka_format "$node" "$conf" "$logdir" "$cluster_id"
  pid=$(kafka_launch "$node" "$conf" "$logdir")
  log "$node started (pid $pid), broker on $host:$KAFKA_PORT (node.id $(index_of "$node"))"
}

# Redis nodes and Sentinels read a config file that Sentinel rewrites (a
# failover writes the new roles into it): written once, kept after that.
write_redis_conf() {
  local node=$1 conf=$CONF_DIR/$1.conf host
  [[ -f $conf ]] && return 0
  host=$(host_of "$node")
  {
    echo "# $node of the replicated local stack, written by stack/replicated.sh"
    echo "# once; Sentinel rewrites the replication settings after a failover."
    echo "bind $host"
    echo "port $REDIS_PORT"
    echo "dir $DATA_DIR/$node"
    echo "daemonize no"
    echo "protected-mode no"
    echo 'logfile ""'
    echo 'save ""'
    echo "appendonly yes"
    echo "appendfsync everysec"
    echo "# A new replica syncs at once (the default waits 5 s for others)."
    echo "repl-diskless-sync-delay 0"
    echo "replica-announce-ip $host"
    echo "replica-announce-port $REDIS_PORT"
    [[ $node == "${REDIS_NODES[0]}" ]] || echo "replicaof ${REDIS_HOSTS[0]} $REDIS_PORT"
  } >"$conf.tmp"
  mv "$conf.tmp" "$conf"
}

# The master a new Sentinel file names: the Redis node that says it is
# master now, else redis-1.
current_master_addr() {
  local node
  for node in "${REDIS_NODES[@]}"; do
    if [[ $(redis_info "$node" role) == master ]]; then
      addr_of "$node"
      return 0
    fi
  done
  addr_of "${REDIS_NODES[0]}"
}

write_sentinel_conf() {
  local node=$1 conf=$CONF_DIR/$1.conf host master
  [[ -f $conf ]] && return 0
  host=$(host_of "$node")
  master=$(current_master_addr)
  {
    echo "# $node of the replicated local stack, written by stack/replicated.sh"
    echo "# once; Sentinel rewrites this file itself (its id, the known"
    echo "# replicas and Sentinels, the current master after a failover)."
    echo "bind $host"
    echo "port $SENTINEL_PORT"
    echo "dir $DATA_DIR/$node"
    echo "daemonize no"
    echo "protected-mode no"
    echo 'logfile ""'
    echo "sentinel announce-ip $host"
    echo "sentinel resolve-hostnames no"
    echo "sentinel monitor $SENTINEL_MASTER ${master%:*} ${master##*:} $SENTINEL_QUORUM"
    echo "sentinel down-after-milliseconds $SENTINEL_MASTER $SENTINEL_DOWN_AFTER_MS"
    echo "sentinel failover-timeout $SENTINEL_MASTER $SENTINEL_FAILOVER_TIMEOUT_MS"
    echo "sentinel parallel-syncs $SENTINEL_MASTER 1"
  } >"$conf.tmp"
  mv "$conf.tmp" "$conf"
}

# The role a Redis node starts in, as arguments after its config file.
# Sentinel's word wins over the file: a node that Sentinel no longer counts
# as master comes back as a replica of the one it does, never as a second
# master (with stale data, or none). If the Sentinels still name this
# (dead) node as master while the other Redis node runs, a failover is
# under way or about to be: wait for it (at most down-after + twice the
# failover timeout + 5 s, 16 s by default) rather than race it. With
# no Sentinel answering, the file's role stands.
redis_role_args() {
  local node=$1 self master deadline began=$SECONDS
  self=$(addr_of "$node")
  if ! master=$(sentinel_master); then
    log "$node: no Sentinel answers; starting in the role its config file names"
    return 0
  fi
  if [[ $master == "$self" ]] &&
    [[ -n $(running_nodes "${REDIS_NODES[@]}") ]]; then
    # A Sentinel starts no failover of a master within twice the failover
    # timeout of its previous one: two kills in a row wait that long.
    deadline=$((SECONDS + (SENTINEL_DOWN_AFTER_MS + 2 * SENTINEL_FAILOVER_TIMEOUT_MS) / 1000 + 5))
    log "$node: the Sentinels still name it master while the other Redis node runs; waiting for their failover"
    while [[ $master == "$self" ]] && ((SECONDS < deadline)); do
      sleep 0.5
      master=$(sentinel_master) || master=$self
    done
  fi
  if [[ $master == "$self" ]]; then
    log "$node: the Sentinels name it master; starting as master${deadline:+ (no failover in $((SECONDS - began))s)}"
    echo "--replicaof no one"
  else
    log "$node: the Sentinels name $master master; starting as its replica"
    echo "--replicaof ${master%:*} ${master##*:}"
  fi
}

start_redis_node() {
  local node=$1 host role pid
  host=$(host_of "$node")
  mkdir -p "$DATA_DIR/$node"
  refuse_foreign_port "$node" "$REDIS_PORT" "$host"
  write_redis_conf "$node"
  role=$(redis_role_args "$node")
  # shellcheck disable=SC2086 # the role is two or three words
  pid=$(launch "$(log_of "$node")" "$DATA_DIR/$node" redis-server "$CONF_DIR/$node.conf" $role)
  echo "$pid" >"$(pidfile_of "$node")"
  log "$node started (pid $pid) on $host:$REDIS_PORT"
  # Write the role it was given into its file, so that a start with no
  # Sentinel answering finds the same one.
  local deadline=$((SECONDS + REDIS_TIMEOUT))
  until answers "$node"; do
    ((SECONDS < deadline)) && alive "$pid" || return 0
    sleep 0.2
  done
  [[ $(redis_cli "$node" config rewrite) == OK ]] || log "$node: CONFIG REWRITE failed (its file keeps the old role)"
}

start_sentinel_node() {
  local node=$1 host pid
  host=$(host_of "$node")
  mkdir -p "$DATA_DIR/$node"
  refuse_foreign_port "$node" "$SENTINEL_PORT" "$host"
  write_sentinel_conf "$node"
  pid=$(launch "$(log_of "$node")" "$DATA_DIR/$node" redis-server "$CONF_DIR/$node.conf" --sentinel)
  echo "$pid" >"$(pidfile_of "$node")"
  log "$node started (pid $pid) on $host:$SENTINEL_PORT"
}

# Start the node unless it is already running. Returns 0 if it was started.
start_service() {
  local node=$1 pid
  if pid=$(running_pid "$node"); then
    log "$node already running (pid $pid)"
    return 1
  fi
  rm -f "$(pidfile_of "$node")"
  local kind
  kind=$(kind_of "$node")
  "start_${kind//-/_}_node" "$node"
}

# Wait until each node answers and is ready (node_ready); they are polled
# together. Returns 1 if any died or timed out.
repl_wait_ready() {
  local pending=("$@") failed=0 start=$SECONDS last_report=$SECONDS
  while ((${#pending[@]})); do
    local still=() node pid view
    for node in "${pending[@]}"; do
      if ! pid=$(running_pid "$node"); then
        fail_service "$node" "process died before it was ready on $(addr_of "$node")"
        rm -f "$(pidfile_of "$node")"
        failed=1
      elif answers "$node" && view=$(node_ready "$node"); then
        log "$node ready on $(addr_of "$node") after $((SECONDS - start))s ($view)"
      elif ((SECONDS - start >= $(timeout_of "$node"))); then
        fail_service "$node" "not ready on $(addr_of "$node") within $(timeout_of "$node")s (pid $pid still running; left as is; it sees: $(node_ready "$node" || true))"
        failed=1
      else
        still+=("$node")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    if ((${#pending[@]})); then
      if ((SECONDS - last_report >= 15)); then
        log "waiting for: ${pending[*]} ($((SECONDS - start))s)"
        last_report=$SECONDS
      fi
      sleep 1
    fi
  done
  return "$failed"
}

# Wait until the node answers its protocol (not the cluster view).
wait_answers() {
  local node=$1 start=$SECONDS pid
  until answers "$node"; do
    if ! pid=$(running_pid "$node"); then
      fail_service "$node" "process died before answering on $(addr_of "$node")"
      rm -f "$(pidfile_of "$node")"
      return 1
    fi
    if ((SECONDS - start >= $(timeout_of "$node"))); then
      fail_service "$node" "did not answer on $(addr_of "$node") within $(timeout_of "$node")s (pid $pid still running)"
      return 1
    fi
    sleep 1
  done
  log "$node answers on $(addr_of "$node") after $((SECONDS - start))s"
}

# The master first, so the replica finds it (Sentinel's word, else the
# node whose config file has no replicaof line).
redis_start_order() {
  local master first="" node
  if master=$(sentinel_master) && first=$(node_at redis "$master"); then :; else
    for node in "${REDIS_NODES[@]}"; do
      if ! grep -qE '^(replicaof|slaveof) ' "$CONF_DIR/$node.conf" 2>/dev/null; then
        first=$node
        break
      fi
    done
  fi
  first=${first:-${REDIS_NODES[0]}}
  echo "$first"
  for node in "${REDIS_NODES[@]}"; do
    [[ $node == "$first" ]] || echo "$node"
  done
}

# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------
repl_prepare() {
  check_settings
  prepare cassandra kafka redis
  check_topology_file
}

# Before starting anything: no port of a node that is not running may be
# taken (by the single stack on the same addresses, say).
check_ports_free() {
  local node port taken=()
  for node in "$@"; do
    running_pid "$node" >/dev/null && continue
    for port in $(ports_of "$node"); do
      port_open "$(host_of "$node")" "$port" && taken+=("$node:$(host_of "$node"):$port")
    done
  done
  ((${#taken[@]} == 0)) ||
    die "in use by processes this stack did not start: ${taken[*]}; stop them, or move the replicated stack (REPL_HOSTS, stack/README.md)"
}

repl_up() {
  take_lock
  local began=$SECONDS node
  repl_prepare
  check_ports_free "${NODES[@]}"
  ensure_jars cassandra
  ensure_jars kafka
  # Sentinels first: the Redis nodes take their role from them. They wait
  # for nothing, a Redis node a moment.
  for node in "${SENTINEL_NODES[@]}"; do
    start_service "$node" || true
  done
  for node in "${SENTINEL_NODES[@]}"; do
    wait_answers "$node" || die "$node did not come up"
  done
  while read -r node; do
    if start_service "$node"; then
      wait_answers "$node" || die "$node did not come up"
    fi
  done < <(redis_start_order)
  # The Kafka controllers together (they elect an active one among them,
  # which needs two), then, once the quorum is ready, the brokers (they
  # register with the active controller). The Cassandra nodes that are
  # members of the ring already (they have a system keyspace) restart
  # together meanwhile; a new node joins only once the ones before it
  # answer, one at a time, as Cassandra requires.
  for node in "${KAFKA_CONTROLLER_NODES[@]}"; do
    start_service "$node" || true
  done
  local members=()
  for node in "${CASSANDRA_NODES[@]}"; do
    if [[ -d $DATA_DIR/$node/data/system ]] && start_service "$node"; then members+=("$node"); fi
  done
  repl_wait_ready "${KAFKA_CONTROLLER_NODES[@]}" || die "the Kafka controllers have no quorum (logs in $LOG_DIR)"
  for node in "${KAFKA_NODES[@]}"; do
    start_service "$node" || true
  done
  for node in "${members[@]+"${members[@]}"}"; do
    wait_answers "$node" || die "$node did not come up (logs in $LOG_DIR)"
  done
  for node in "${CASSANDRA_NODES[@]}"; do
    [[ " ${members[*]+"${members[*]}"} " == *" $node "* ]] && continue
    if start_service "$node"; then
      wait_answers "$node" || die "$node did not come up (logs in $LOG_DIR)"
    fi
  done
  repl_wait_ready "${NODES[@]}" || die "the replicated stack is not fully up (see above; logs in $LOG_DIR)"
  log "replicated stack up in $((SECONDS - began))s: cassandra ${CASSANDRA_HOSTS[*]} :$CASSANDRA_PORT, kafka ${KAFKA_HOSTS[*]} :$KAFKA_PORT (controllers ${KAFKA_CONTROLLER_HOSTS[*]} :$KAFKA_CONTROLLER_PORT), redis master $(sentinel_master) (sentinels ${SENTINEL_HOSTS[*]} :$SENTINEL_PORT)"
}

repl_start() {
  check_svc "${1:-}"
  take_lock
  repl_prepare
  case $(kind_of "$1") in
    cassandra | kafka) ensure_jars "$(kind_of "$1")" ;;
    kafka-controller) ensure_jars kafka ;;
  esac
  start_service "$1" || true
  repl_wait_ready "$1" || die "$1 did not come up"
  # A restarted Cassandra node is ready once it sees the others; they must
  # see it too before a query at QUORUM through them counts it.
  if [[ $(kind_of "$1") == cassandra ]]; then
    local others=() node
    for node in $(running_nodes "${CASSANDRA_NODES[@]}"); do
      [[ $node == "$1" ]] || others+=("$node")
    done
    ((${#others[@]} == 0)) || repl_wait_ready "${others[@]}" || die "the other Cassandra nodes do not see $1"
  fi
}

cmd_down() {
  take_lock
  # Sentinels first, so stopping the master starts no failover. Each kind's
  # nodes stop together (SIGTERM to all, then wait): about 15 s for Kafka
  # and for Cassandra here. The Kafka brokers before the controllers: a
  # broker's clean shutdown asks the active controller to move its
  # partitions' leadership.
  stop_services "${SENTINEL_NODES[@]}"
  stop_services "${REDIS_NODES[@]}"
  stop_services "${KAFKA_NODES[@]}"
  stop_services "${KAFKA_CONTROLLER_NODES[@]}"
  stop_services "${CASSANDRA_NODES[@]}"
}

repl_status() {
  local node pid ok=0
  for node in "${NODES[@]}"; do
    local state=stopped shown=- answering=no view=""
    if pid=$(running_pid "$node"); then
      state=running
      shown=$pid
      is_paused "$pid" && state=paused
    fi
    if [[ $state != paused ]] && answers "$node"; then
      answering=yes
      view=$(node_ready "$node") || true
    fi
    [[ $state == running && $answering == yes ]] || ok=1
    printf '%-18s %-8s pid=%-8s %-16s answering=%-3s %s\n' \
      "$node" "$state" "$shown" "$(addr_of "$node")" "$answering" "$view"
  done
  return "$ok"
}

repl_logs() {
  local nodes=("${NODES[@]}") node
  if [[ -n ${1:-} ]]; then
    check_svc "$1"
    nodes=("$1")
  fi
  for node in "${nodes[@]}"; do
    local f
    f=$(log_of "$node")
    echo "==> $f <=="
    if [[ -f $f ]]; then tail -n 50 "$f"; else echo "(no log yet)"; fi
    echo
  done
}

# `master redis`: "host:port node" of the master the Sentinels name.
repl_master() {
  [[ ${1:-} == redis ]] || die "usage: stack.sh master redis"
  local master
  master=$(sentinel_master) || die "no Sentinel answers (${SENTINEL_NODES[*]})"
  echo "$master $(node_at redis "$master" || echo '?')"
}

# `leader TOPIC PARTITION`: "host:port node" of the partition's leader, as
# the first broker that answers reports it.
repl_leader() {
  local topic=${1:-} partition=${2:-} node out
  [[ -n $topic && $partition =~ ^[0-9]+$ ]] || die "usage: stack.sh leader <topic> <partition>"
  for node in "${KAFKA_NODES[@]}"; do
    if out=$(python3 "$PROBE" kafka-leader "$(host_of "$node")" "$KAFKA_PORT" "$topic" "$partition" --timeout 3 2>&1); then
      echo "${out#* } $(node_at kafka "${out#* }" || echo '?')"
      return 0
    fi
    case $out in
      *"no partition"* | *"has no leader"*) die "${out##*: }" ;;
    esac
  done
  die "no Kafka node answers (${KAFKA_NODES[*]})"
}

# `controller`: "host:port kafka-controller-N" of the active controller,
# as the controllers that answer report it.
repl_controller() {
  active_controller || die "no active Kafka controller (none of ${KAFKA_CONTROLLER_NODES[*]} answers as one)"
}

# `resources [SECONDS]`: each node's resident memory, and its CPU use over
# the next SECONDS (10 by default) from /proc (utime + stime), as % of one
# core; a last line with the totals.
repl_resources() {
  local seconds=${1:-10} node pid hz
  [[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || die "usage: stack.sh resources [SECONDS]"
  hz=$(getconf CLK_TCK)
  declare -A before=()
  cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null; }
  for node in "${NODES[@]}"; do
    pid=$(running_pid "$node") && before[$node]=$(cpu_ticks "$pid")
  done
  sleep "$seconds"
  local total_rss=0 total_cpu=0 rss cpu
  printf '%-18s %8s %9s %6s\n' node pid rss_mib cpu_%
  for node in "${NODES[@]}"; do
    if pid=$(running_pid "$node") && [[ -n ${before[$node]:-} ]]; then
      rss=$(awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$pid/status")
      cpu=$(awk -v a="${before[$node]}" -v b="$(cpu_ticks "$pid")" -v hz="$hz" -v s="$seconds" \
        'BEGIN { printf "%.1f", (b - a) * 100 / hz / s }')
      printf '%-18s %8s %9s %6s\n' "$node" "$pid" "$rss" "$cpu"
      total_rss=$((total_rss + rss))
      total_cpu=$(awk -v a="$total_cpu" -v b="$cpu" 'BEGIN { printf "%.1f", a + b }')
    else
      printf '%-18s %8s %9s %6s\n' "$node" - - -
    fi
  done
  printf '%-18s %8s %9s %6s\n' total "" "$total_rss" "$total_cpu"
}

repl_usage() {
  cat <<EOF
STACK_TOPOLOGY=replicated stack/stack.sh <command>   (stack/README.md, "Replicated topology")

  up | down | status | logs [node] | reset
  start <node> | stop <node> | kill <node> | pause <node> | resume <node>
  master redis                  host:port and node of the Redis master (Sentinel)
  leader <topic> <partition>    host:port and node of the partition's leader
  controller                    host:port and node of the active Kafka controller
  resources [SECONDS]           each node's RSS and CPU use over SECONDS (10)

nodes: ${NODES[*]}
EOF
}

repl_main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) repl_up ;;
    down) cmd_down ;;
    status) repl_status ;;
    logs) repl_logs "$@" ;;
    start) repl_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    pause) cmd_pause "$@" ;;
    resume) cmd_resume "$@" ;;
    reset) cmd_reset ;;
    master) repl_master "$@" ;;
    leader) repl_leader "$@" ;;
    controller) repl_controller ;;
    resources) repl_resources "$@" ;;
    browser) cmd_browser ;;
    -h | --help | help) repl_usage ;;
    *) repl_usage >&2; exit 2 ;;
  esac
}
