#!/usr/bin/env bash
# Entrypoint of the chat-service/cassandra image. It reads the variables of
# the official `cassandra` image (same names, same defaults) and writes them
# into $CASSANDRA_CONF, then runs the command (`cassandra -f` by default) as
# the cassandra user. Extensions, for several nodes on one host network:
# CASSANDRA_NATIVE_TRANSPORT_PORT, CASSANDRA_STORAGE_PORT and
# CASSANDRA_JMX_PORT (read by the `cassandra` launcher).
set -euo pipefail

# `docker run IMAGE -Dfoo=bar` passes options to Cassandra.
if (($# == 0)) || [[ $1 == -* ]]; then
  set -- cassandra -f "$@"
fi

if [[ $1 != cassandra ]]; then
  exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
  # Volumes mounted over these arrive owned by root.
  chown -R cassandra:cassandra /var/lib/cassandra "$CASSANDRA_CONF"
  exec setpriv --reuid=cassandra --regid=cassandra --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# The first address that is neither loopback nor link-local, as the
# official image's `auto` means.
first_address() {
  ip -4 -o address show | awk '$2 != "lo" && $4 !~ /^(127|169\.254)\./ { sub(/\/.*/, "", $4); print $4; exit }'
}

# Replaces the value of a top-level key (commented out or not) in a file,
# writing in place so a bind-mounted file keeps its inode.
set_key() {
  local file=$1 key=$2 value=$3 separator=$4
  local rendered
  rendered=$(sed -E "s|^(# )?($key)$separator.*|\\2$separator$value|" "$file")
  printf '%s\n' "$rendered" >"$file"
}

CASSANDRA_RPC_ADDRESS=${CASSANDRA_RPC_ADDRESS:-0.0.0.0}
CASSANDRA_LISTEN_ADDRESS=${CASSANDRA_LISTEN_ADDRESS:-auto}
[[ $CASSANDRA_LISTEN_ADDRESS == auto ]] && CASSANDRA_LISTEN_ADDRESS=$(first_address)
CASSANDRA_BROADCAST_ADDRESS=${CASSANDRA_BROADCAST_ADDRESS:-$CASSANDRA_LISTEN_ADDRESS}
[[ $CASSANDRA_BROADCAST_ADDRESS == auto ]] && CASSANDRA_BROADCAST_ADDRESS=$(first_address)
CASSANDRA_BROADCAST_RPC_ADDRESS=${CASSANDRA_BROADCAST_RPC_ADDRESS:-$CASSANDRA_BROADCAST_ADDRESS}
# A seed without a port is reached on the default storage port; name the
# moved one.
default_seed=$CASSANDRA_BROADCAST_ADDRESS
[[ -n ${CASSANDRA_STORAGE_PORT:-} ]] && default_seed+=:$CASSANDRA_STORAGE_PORT
CASSANDRA_SEEDS=${CASSANDRA_SEEDS:-$default_seed}

yaml=$CASSANDRA_CONF/cassandra.yaml
rendered=$(sed -E "s|(- seeds:).*|\\1 \"$CASSANDRA_SEEDS\"|" "$yaml")
printf '%s\n' "$rendered" >"$yaml"
for key in broadcast_address broadcast_rpc_address cluster_name endpoint_snitch \
  listen_address num_tokens rpc_address native_transport_port storage_port; do
  var=CASSANDRA_${key^^}
  [[ -n ${!var:-} ]] && set_key "$yaml" "$key" "${!var}" ': '
done
for key in dc rack; do
  var=CASSANDRA_${key^^}
  [[ -n ${!var:-} ]] && set_key "$CASSANDRA_CONF/cassandra-rackdc.properties" "$key" "${!var}" '='
done

# The timer slack of Cassandra's threads (stack/stack.sh says why): set
# here, kept by the exec and every thread the JVM starts. Empty keeps the
# kernel's default.
CASSANDRA_TIMER_SLACK_NS=${CASSANDRA_TIMER_SLACK_NS-500000}
if [[ -n $CASSANDRA_TIMER_SLACK_NS ]]; then
  echo "$CASSANDRA_TIMER_SLACK_NS" >/proc/self/timerslack_ns 2>/dev/null || true
fi

exec "$@"
