#!/usr/bin/env bash
# A Docker engine for the images and the compose file (README, "Docker").
#
#   docker/engine.sh start    install docker.io, docker-compose and mmdebstrap if
#                             missing; start dockerd unless an engine answers
#   docker/engine.sh stop     stop dockerd, only if `start` started it
#   docker/engine.sh status   whether an engine answers, and who started it
#
# The engine started here has no bridge and touches no iptables
# (--bridge=none --iptables=false): containers use the host's network
# (`network_mode: host`, `docker build --network host`). Its log is
# $ENGINE_DIR/dockerd.log; its pid, when this script started it, is
# $ENGINE_DIR/dockerd.pid, which is how `stop` knows the engine is its own.
set -euo pipefail

ENGINE_DIR=${ENGINE_DIR:-/var/tmp/chat-service-engine}
START_TIMEOUT=${ENGINE_START_TIMEOUT:-60}
STOP_TIMEOUT=${ENGINE_STOP_TIMEOUT:-30}
PIDFILE=$ENGINE_DIR/dockerd.pid
LOGFILE=$ENGINE_DIR/dockerd.log

log() { printf '[engine] %s\n' "$*" >&2; }
die() { printf '[engine] ERROR: %s\n' "$*" >&2; exit 1; }

answers() { timeout 5 docker info >/dev/null 2>&1; }

# The pid in the pid file, if it is still a dockerd.
our_pid() {
  [[ -s $PIDFILE ]] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$PIDFILE")
  [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
  echo "$pid"
}

install_missing() {
  local pkgs=()
  command -v dockerd >/dev/null || pkgs+=(docker.io)
  command -v docker >/dev/null || pkgs+=(docker.io)
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || pkgs+=(docker-compose)
  command -v mmdebstrap >/dev/null || pkgs+=(mmdebstrap)
  ((${#pkgs[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing ${pkgs[*]}: install them as root (apt-get install -y ${pkgs[*]})"
  log "apt-get install ${pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

cmd_start() {
  install_missing
  if answers; then
    if our_pid >/dev/null; then log "engine running (started by this script, pid $(our_pid))"
    else log "an engine answers already; leaving it alone"; fi
    return 0
  fi
  [[ $(id -u) == 0 ]] || die "no engine answers, and starting dockerd needs root"
  our_pid >/dev/null && die "dockerd (pid $(our_pid)) runs but does not answer; see $LOGFILE"
  mkdir -p "$ENGINE_DIR"
  log "starting dockerd (log: $LOGFILE)"
  # Its own session, so it outlives this shell and a ctrl-c here; dockerd
  # starts and later stops its own containerd.
  setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false \
    </dev/null >>"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until answers; do
    our_pid >/dev/null || { tail -n 20 "$LOGFILE" >&2; die "dockerd exited"; }
    ((SECONDS < deadline)) || die "dockerd did not answer within ${START_TIMEOUT}s; see $LOGFILE"
    sleep 0.5
  done
  log "engine up (pid $(our_pid))"
}

cmd_stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE"
    if answers; then
      log "the engine that answers was not started by this script; leaving it alone"
    else
      log "no engine of ours is running"
    fi
    return 0
  fi
  local running
  running=$(docker ps -q 2>/dev/null | wc -l)
  ((running == 0)) || log "$running container(s) still running; dockerd stops them"
  log "stopping dockerd (pid $pid)"
  kill -TERM "$pid"
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || { log "dockerd still alive after ${STOP_TIMEOUT}s: SIGKILL"; kill -KILL "$pid"; break; }
    sleep 0.5
  done
  rm -f "$PIDFILE"
  log "engine stopped"
}

cmd_status() {
  local pid who=elsewhere
  pid=$(our_pid) && who="this script (pid $pid)"
  if answers; then
    log "engine answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null), started by $who"
  else
    log "no engine answers"
    return 1
  fi
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
