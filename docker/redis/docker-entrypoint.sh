#!/usr/bin/env bash
# Entrypoint of the chat-service/redis image, with the official `redis`
# image's conventions: the command line is the configuration
# (`redis-server --bind 127.0.0.2 --port 6380 --appendonly yes`); arguments
# that start with `-`, or a `.conf` file, are given to redis-server; it runs
# as the redis user in /data; protected mode is off, as in the official
# build (bind to a private address, or set a password, instead).
set -euo pipefail

if [[ ${1:-} == -* || ${1:-} == *.conf ]]; then
  set -- redis-server "$@"
fi

if [[ ${1:-} == redis-server ]]; then
  if [[ $(id -u) == 0 ]]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "${BASH_SOURCE[0]}" "$@"
  fi
  # The official image's umask: the data files are the owner's only.
  [[ $(umask) == 0022 ]] && umask 0077
  shift
  # A configuration file stays first, where redis-server expects it.
  config=()
  if [[ ${1:-} == *.conf ]]; then
    config=("$1")
    shift
  fi
  set -- redis-server "${config[@]}" --protected-mode no "$@"
fi

exec "$@"
