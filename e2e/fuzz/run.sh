#!/usr/bin/env bash
# `make fuzz`: schemathesis (from PyPI) against the in-memory service,
# driven by docs/openapi.json: every operation, a fixed budget of examples
# and a fixed seed, so a run is reproducible. It fails on any server error
# (5xx) and on any response that breaks the schema (its status, body,
# headers or content type), and when a request the schema forbids is
# accepted.
#
# Two passes, each with a fresh user and a group room it is in: every
# operation but logout, then the logouts (which end the token they use).
#
#   FUZZ_EXAMPLES   examples per operation and phase (default 100)
#   FUZZ_SEED       the seed (default 20261206)
#   FUZZ_SERVICE_BIN the chat-service binary (default: the debug build)
#
# Reports (JUnit) in reports/fuzz/<time>/.
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly ST_VERSION=4.32.5
readonly VENV=${FUZZ_VENV:-.stack/cache/schemathesis-$ST_VERSION}
readonly EXAMPLES=${FUZZ_EXAMPLES:-100}
readonly SEED=${FUZZ_SEED:-20261206}
readonly BIN=${FUZZ_SERVICE_BIN:-${CARGO_TARGET_DIR:-target}/debug/chat-service}
REPORT=reports/fuzz/$(date -u +%Y%m%dT%H%M%SZ)
readonly REPORT

log() { printf '[fuzz] %s\n' "$*" >&2; }

if [[ ! -x $VENV/bin/st ]]; then
  log "installing schemathesis $ST_VERSION into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 keeps venv in a package of its own.
    sudo_if_needed() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get install -y -q python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
[[ -x $BIN ]] || { log "no $BIN: build it first (cargo build -p service --bin chat-service)"; exit 1; }

mkdir -p "$REPORT"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
log "$BIN on the in-memory backends at $base, logs in $REPORT/service.log"
PORT=$port HOST=127.0.0.1 RUST_LOG=warn "$BIN" >"$REPORT/service.log" 2>&1 &
service=$!
trap 'kill "$service" 2>/dev/null || true; wait "$service" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$base/health" 2>/dev/null && break
  kill -0 "$service" 2>/dev/null || { log "the service exited"; cat "$REPORT/service.log" >&2; exit 1; }
  sleep 0.1
done

# POST $1 with JSON $2 (and the token $3), printing the field $4 of the answer.
call() {
  curl -fsS -X POST -H 'content-type: application/json' ${3:+-H "Authorization: $3"} \
    -d "$2" "$base$1" | python3 -c "import json, sys; print(json.load(sys.stdin)['$4'])"
}

# One pass: a fresh user with a group room, then schemathesis with $@.
pass() {
  local name=$1 token peer peer_id room
  shift
  token=$(call /api/v1/accounts/register "{\"username\": \"fuzz-$name\", \"name\": \"Fuzzer\", \"password\": \"fuzzer-password\"}" "" token)
  peer=$(call /api/v1/accounts/register "{\"username\": \"fuzz-$name-peer\", \"name\": \"Peer\", \"password\": \"fuzzer-password\"}" "" token)
  peer_id=$(curl -fsS -H "Authorization: $peer" "$base/api/v1/accounts/me" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  room=$(call /api/v1/rooms "{\"name\": \"fuzz\", \"participantIds\": [\"$peer_id\"]}" "$token" roomId)
  mkdir -p "$REPORT/$name"
  # Real ids where the schema names a room, so operations get past 404.
  printf '[parameters]\n"path.roomId" = "%s"\n' "$room" >"$REPORT/$name/schemathesis.toml"
  log "pass $name: $EXAMPLES examples per operation and phase, seed $SEED"
  "$VENV/bin/st" --config-file "$REPORT/$name/schemathesis.toml" run docs/openapi.json \
    --url "$base" -H "Authorization: Bearer $token" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --max-examples "$EXAMPLES" --seed "$SEED" --workers 1 \
    --continue-on-failure \
    --report junit --report-dir "$REPORT/$name" \
    "$@" | tee "$REPORT/$name/output.txt"
}

status=0
pass operations --exclude-path-regex 'logout' || status=1
pass logout --include-path-regex 'logout' || status=1
log "reports in $REPORT"
exit $status
