#!/usr/bin/env bash
# Builds the stack's images, each once: an image whose label
# chat-service.inputs matches the hash of what goes into it is kept.
#
#   docker/images.sh [all | base | cassandra | kafka | redis | service]...
#
#   chat-service/base:bookworm    debian:bookworm-slim if it can be pulled,
#                                 else a minbase bookworm made by mmdebstrap
#   chat-service/cassandra:5.0.9  docker/cassandra (jars from Maven Central)
#   chat-service/kafka:4.4.0      docker/kafka (jars from Maven Central)
#   chat-service/redis:7          docker/redis (Debian's redis-server)
#   chat-service/chat-service:$CHAT_SERVICE_TAG (local)
#                                 docker/service: the binary of cargo
#                                 profile $SERVICE_PROFILE (release) in
#                                 $CARGO_TARGET_DIR (target) and web/dist,
#                                 built beforehand (`make docker-images` does;
#                                 CI packages the debug build its tests made)
#
# Builds use the host's network (no bridge needed). REBUILD=1 builds even
# when the label matches. Prints how long each image took.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
CHAT_SERVICE_TAG=${CHAT_SERVICE_TAG:-local}
SERVICE_PROFILE=${SERVICE_PROFILE:-release}
REBUILD=${REBUILD:-0}
BASE=chat-service/base:bookworm
LABEL=chat-service.inputs

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

# Without the buildx plugin the classic builder builds these (plain
# Dockerfile syntax); say so, rather than let the client complain.
if [[ -z ${DOCKER_BUILDKIT:-} ]] && ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi

label_of() {
  docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

# The hash of the given files' names and contents, and of the base image.
inputs_hash() {
  {
    docker image inspect --format '{{.Id}}' "$BASE"
    find "$@" -type f -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}

# build TAG HASH [docker build arguments...]: unless TAG already carries HASH.
build() {
  local tag=$1 hash=$2 start=$SECONDS
  shift 2
  if [[ $REBUILD != 1 && $(label_of "$tag") == "$hash" ]]; then
    log "$tag is up to date (inputs ${hash:0:12})"
    return 0
  fi
  log "building $tag"
  docker build --network host --build-arg BASE="$BASE" --label "$LABEL=$hash" -t "$tag" "$@" \
    >"$TARGET_DIR/docker/build-${tag//[\/:]/-}.log" 2>&1 ||
    { tail -n 30 "$TARGET_DIR/docker/build-${tag//[\/:]/-}.log" >&2; die "building $tag failed"; }
  log "built $tag in $((SECONDS - start))s"
}

image_base() {
  local method start=$SECONDS
  if [[ $REBUILD != 1 ]] && docker image inspect "$BASE" >/dev/null 2>&1; then
    log "$BASE is present ($(label_of "$BASE"))"
    return 0
  fi
  if docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
    docker tag debian:bookworm-slim "$BASE"
    method=debian:bookworm-slim
  else
    command -v mmdebstrap >/dev/null || die "debian:bookworm-slim cannot be pulled and mmdebstrap is missing (docker/engine.sh start installs it)"
    log "debian:bookworm-slim cannot be pulled: making $BASE with mmdebstrap (about a minute)"
    # A label only comes with a build: import, then label in a one-line build.
    mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - |
      docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$BASE" >/dev/null
    method="mmdebstrap minbase bookworm"
  fi
  printf 'FROM %s\nLABEL %s="%s"\n' "$BASE" "$LABEL" "$method" | docker build -q -t "$BASE" - >/dev/null 2>&1 ||
    die "labelling $BASE failed"
  log "$BASE from $method in $((SECONDS - start))s"
}

# PEM certificates the host trusts beyond the usual ones (a proxy that
# re-signs TLS): the Maven downloads need them. Not part of the inputs hash.
extra_ca_certs() {
  local files=(/usr/local/share/ca-certificates/*.crt)
  [[ -e ${files[0]} ]] && cat "${files[@]}"
  return 0
}

image_java() {
  local svc=$1 tag=$2
  build "$tag" "$(inputs_hash "docker/$svc" "stack/$svc/pom.xml" stack/probe.py)" \
    --build-arg EXTRA_CA_CERTS="$(extra_ca_certs)" -f "docker/$svc/Dockerfile" .
}

image_redis() {
  build chat-service/redis:7 "$(inputs_hash docker/redis)" -f docker/redis/Dockerfile .
}

image_service() {
  local binary=$TARGET_DIR/$SERVICE_PROFILE/chat-service context=$TARGET_DIR/docker/service
  [[ -x $binary ]] || die "$binary is missing: cargo build --profile ${SERVICE_PROFILE/debug/dev} --locked -p service --bin chat-service"
  [[ -f web/dist/index.html ]] || die "web/dist is missing: make web"
  rm -rf "$context"
  mkdir -p "$context"
  cp docker/service/Dockerfile "$binary" "$context/"
  cp -r web/dist "$context/web"
  build "chat-service/chat-service:$CHAT_SERVICE_TAG" "$(inputs_hash "$context")" "$context"
}

main() {
  mkdir -p "$TARGET_DIR/docker"
  local wanted=("$@") what
  ((${#wanted[@]})) || wanted=(all)
  [[ ${wanted[*]} == all ]] && wanted=(base cassandra kafka redis service)
  # Every image builds on the base.
  [[ ${wanted[0]} == base ]] || image_base
  for what in "${wanted[@]}"; do
    case $what in
      base) image_base ;;
      cassandra) image_java cassandra chat-service/cassandra:5.0.9 ;;
      kafka) image_java kafka chat-service/kafka:4.4.0 ;;
      redis) image_redis ;;
      service) image_service ;;
      *) die "unknown image '$what' (all, base, cassandra, kafka, redis, service)" ;;
    esac
  done
}

main "$@"
