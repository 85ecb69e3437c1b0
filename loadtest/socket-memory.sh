#!/usr/bin/env bash
# What an idle socket costs the service: starts the release build on the
# in-memory backends, opens SOCKETS websockets (one user's token), holds
# them HOLD_SECONDS answering pings, and prints the service's resident
# memory before, connected and after (e2e/examples/idle_sockets.rs).
# With HEAPTRACK=1 the service runs under heaptrack, built with glibc's
# malloc (feature system-allocator), and the peak's stacks are written to
# reports/socket-memory/<time>/.
#
#   SOCKETS=2000 bash loadtest/socket-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

sockets=${SOCKETS:-2000}
hold=${HOLD_SECONDS:-15}
port=${SOCKET_MEMORY_PORT:-3917}
base="http://127.0.0.1:$port"
out="reports/socket-memory/$(date -u +%Y%m%dT%H%M%SZ)"

features=()
wrap=()
if [[ ${HEAPTRACK:-0} == 1 ]]; then
  command -v heaptrack >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq heaptrack
  }
  features=(--features system-allocator)
  mkdir -p "$out"
  wrap=(heaptrack -o "$out/heaptrack")
fi
cargo build -q --release -p service --bin chat-service "${features[@]}"
cargo build -q -p e2e --example idle_sockets

# Each socket is a descriptor on both ends.
ulimit -n $((sockets + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
env -i PATH="$PATH" HOST=127.0.0.1 PORT="$port" RUST_LOG=warn \
  MAX_SOCKETS_PER_USER=$((sockets + 10)) \
  "${wrap[@]}" target/release/chat-service >"${TMPDIR:-/tmp}/socket-memory-service.log" 2>&1 &
service=$!
trap 'kill -INT $service 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  curl -sf "$base/health" >/dev/null && break
  kill -0 $service 2>/dev/null || { cat "${TMPDIR:-/tmp}/socket-memory-service.log"; exit 1; }
  sleep 0.2
done
target/debug/examples/idle_sockets "$base" "$sockets" "$hold"
if [[ ${HEAPTRACK:-0} == 1 ]]; then
  # heaptrack runs the service as its child and ends when it does.
  pkill -INT -P $service -f "^target/release/chat-service"
else
  kill -INT $service
fi
wait $service || true
trap - EXIT
if [[ ${HEAPTRACK:-0} == 1 ]]; then
  heaptrack_print -f "$out"/heaptrack.*zst --flamegraph-cost-type peak -F "$out/peak.folded" >/dev/null
  echo "heap at its peak, by stack: $out/peak.folded (inferno-flamegraph < it > peak.svg)"
fi
