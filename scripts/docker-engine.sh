#!/usr/bin/env bash
# Make sure a Docker engine answers on the default socket; start one from Debian's docker.io
# when none does (installing it first when it is missing). Needs root for the install/start.
#
#   scripts/docker-engine.sh          prints the docker client to use (Debian's /usr/bin/docker)
#
# The engine started here keeps running after the script (later runs reuse its build cache);
# its pid and log are in BRUNO_DOCKERD_DIR (default /tmp/bruno-dockerd):
#   kill "$(cat /tmp/bruno-dockerd/dockerd.pid)"
# Debian's client is used on purpose: it has BuildKit built in (DOCKER_BUILDKIT=1), whereas a
# newer client elsewhere on PATH may need a buildx plugin that is not installed.
set -euo pipefail

DOCKER=/usr/bin/docker
STATE_DIR="${BRUNO_DOCKERD_DIR:-/tmp/bruno-dockerd}"

log() { echo "docker-engine: $*" >&2; }

if [[ ! -x "$DOCKER" || ! -x /usr/sbin/dockerd ]]; then
    log "installing Debian's docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq docker.io >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq docker.io >/dev/null; }
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
    mkdir -p "$STATE_DIR"
    if [[ -s "$STATE_DIR/dockerd.pid" ]] && kill -0 "$(cat "$STATE_DIR/dockerd.pid")" 2>/dev/null; then
        log "dockerd $(cat "$STATE_DIR/dockerd.pid") is starting"
    else
        log "starting dockerd (log: $STATE_DIR/dockerd.log)"
        # setsid: the engine outlives this script and make's process group.
        setsid /usr/sbin/dockerd --pidfile "$STATE_DIR/dockerd.pid" \
            >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 60); do
        "$DOCKER" info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! "$DOCKER" info >/dev/null 2>&1; then
        log "dockerd did not come up; last lines of its log:"
        tail -20 "$STATE_DIR/dockerd.log" >&2 || true
        exit 1
    fi
fi
echo "$DOCKER"
