#!/usr/bin/env bash
# `make profile`: a flame graph of chat-service under load.
#
#   bash loadtest/profile.sh [goose flags...]
#
# 1. Builds chat-service with frame pointers in the `profiling` cargo
#    profile (release otherwise), into target/profiling/: target/release/ is
#    left alone.
# 2. Runs loadtest/run-stack.sh on that binary (the local stack, a fresh
#    keyspace) under `perf record --call-graph fp`, from the end of the ramp
#    and a short warm-up to the end of the run.
# 3. Folds the service's stacks and draws them with inferno.
#
# In reports/profile/<UTC time>/ (or LOAD_REPORT_DIR):
#   flamegraph.svg   open it in a browser: hover for shares, click to zoom, Ctrl-F to search
#   stacks.folded    one line per distinct stack and its samples (grep it, or compare
#                    two runs with inferno-diff-folded)
#   top-frames.txt   the frames with the largest inclusive share
#   perf.data, perf-overhead.txt and run-stack.sh's load report (summary.json, latency.svg, ...)
#
# Environment: LOAD_USERS (default 2000 chatters), LOAD_INCREASE_RATE (200 a
# second), LOAD_RATE (1000 msg/s in all), LOAD_DURATION (45s), LOAD_PERF_FREQ
# (199 Hz), LOAD_PERF_DELAY (seconds before recording; default the ramp plus
# 5 s), LOAD_PERF_CALL_GRAPH (fp; dwarf lost 86 % of its samples here and
# cut every stack), LOAD_NO_BUILD=1, and what run-stack.sh reads
# (STACK_DIR, CASSANDRA_PORT, ... for a stack of its own).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

log() { printf '[profile] %s\n' "$*" >&2; }

for tool in perf inferno-collapse-perf inferno-flamegraph; do
  if ! command -v "$tool" >/dev/null; then
    log "$tool is missing; \`make profile\` installs it (apt-get install linux-perf, cargo install inferno --locked)"
    exit 1
  fi
done
# perf records every CPU (see run-stack.sh), which needs root or this.
if [[ $(id -u) != 0 && $(cat /proc/sys/kernel/perf_event_paranoid) -gt 0 ]]; then
  log "perf may not record every CPU here: run as root, or sysctl kernel.perf_event_paranoid=0"
  exit 1
fi

users=${LOAD_USERS:-2000}
increase=${LOAD_INCREASE_RATE:-200}
export LOAD_RATE=${LOAD_RATE:-1000}
export LOAD_DURATION=${LOAD_DURATION:-45s}
export LOAD_REPORT_DIR=${LOAD_REPORT_DIR:-reports/profile/$(date -u +%Y%m%dT%H%M%SZ)}
export LOAD_SERVICE_BIN=${CARGO_TARGET_DIR:-target}/profiling/chat-service
export LOAD_PROFILE=1
export LOAD_PERF_CALL_GRAPH=${LOAD_PERF_CALL_GRAPH:-fp}
# A few thousand stacks in the default run. Measured here: perf itself
# used 0.01 cores at 99 Hz and at 499 Hz alike, and the service's CPU did
# not move.
export LOAD_PERF_FREQ=${LOAD_PERF_FREQ:-199}
export LOAD_PERF_DELAY=${LOAD_PERF_DELAY:-$(((users + increase - 1) / increase + 5))}

if [[ ${LOAD_NO_BUILD:-} != 1 ]]; then
  # Frame pointers in the Rust code and in librdkafka's C (its build passes
  # CFLAGS on), so perf can walk the stacks without copying them.
  RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C force-frame-pointers=yes" \
    CFLAGS="${CFLAGS:+$CFLAGS }-fno-omit-frame-pointer" \
    cargo build --profile profiling -p service --bin chat-service
  cargo build --release -p loadtest
fi

status=0
LOAD_NO_BUILD=1 bash loadtest/run-stack.sh -u "$users" -r "$increase" "$@" || status=$?

dir=$LOAD_REPORT_DIR
if [[ ! -s $dir/perf.data ]]; then
  log "no perf.data in $dir: see $dir/perf-record.log"
  exit $((status == 0 ? 1 : status))
fi
log "folding the stacks"
perf script -i "$dir/perf.data" --pid "$(cat "$dir/service.pid")" 2>/dev/null |
  inferno-collapse-perf >"$dir/stacks.folded"
# Stacks are weighted by the cpu-clock period, in nanoseconds: show ms.
inferno-flamegraph --factor 0.000001 --countname "ms of CPU" \
  --title "chat-service: $users chatters, $LOAD_RATE msg/s, $LOAD_DURATION" \
  --subtitle "perf cpu-clock at $LOAD_PERF_FREQ Hz, --call-graph $LOAD_PERF_CALL_GRAPH; $(cat "$dir/perf-overhead.txt" 2>/dev/null)" \
  <"$dir/stacks.folded" >"$dir/flamegraph.svg"

# The inclusive share of each frame: a frame counts once per stack it is in.
# A folded line is `frame;frame;...;frame count`, and frames may hold spaces.
awk '{
    count = $NF
    total += count
    split(substr($0, 1, length($0) - length($NF) - 1), frames, ";")
    delete seen
    for (i in frames) {
      if (!(frames[i] in seen)) { seen[frames[i]] = 1; inclusive[frames[i]] += count }
    }
  }
  END {
    for (frame in inclusive) printf "%6.2f%%  %s\n", 100 * inclusive[frame] / total, frame
  }' "$dir/stacks.folded" | sort -rn | awk 'NR <= 40' >"$dir/top-frames.txt"

sampled=$(awk '{ ns += $NF } END { printf "%.1f", ns / 1e9 }' "$dir/stacks.folded")
log "flame graph: $dir/flamegraph.svg ($sampled s of the service's CPU time sampled)"
log "top inclusive frames: $dir/top-frames.txt"
exit "$status"
