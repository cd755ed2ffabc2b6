# Sourced by the scripts (after ensure-packages.sh): ensure_podman makes sure Podman's
# Docker-compatible service answers on a Unix socket of its own and exports WORKSPACE_PODMAN_HOST
# (unix://...), the second engine the DockerWorkspace tests run against.
#
# It reuses a service that already answers there. Otherwise it installs Debian's podman (4.3.1,
# API 1.41) and catatonit (the init process of containers that ask for one), and starts
#   podman --root ... --runroot ... system service --time=0 unix://SOCKET
# detached, from its own folder (never the checkout: later runs reuse it), with its own storage,
# and a CONTAINERS_CONF whose default_ulimits this sandbox accepts (Podman's own defaults are
# refused: "setting rlimit type 7: operation not permitted"). Images are its own: the tests build
# theirs offline, as on dockerd. stop_podman stops it again. Both are safe to call more than once.
# Returns non-zero, saying why, when no service can be had; the caller decides whether that fails.

WORKSPACE_PODMAN_SOCKET=${WORKSPACE_PODMAN_SOCKET:-/run/workspace-test-podman.sock}
WORKSPACE_PODMAN_DIR=${WORKSPACE_PODMAN_DIR:-/var/lib/workspace-test-podman}
WORKSPACE_PODMAN_RUNROOT=${WORKSPACE_PODMAN_RUNROOT:-/run/workspace-test-podman}
WORKSPACE_PODMAN_TIMEOUT=${WORKSPACE_PODMAN_TIMEOUT:-60}

_podman_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_podman_ping() {
  [ -S "$WORKSPACE_PODMAN_SOCKET" ] &&
    [ "$(curl -s --max-time 3 --unix-socket "$WORKSPACE_PODMAN_SOCKET" http://localhost/_ping 2>/dev/null)" = OK ]
}

ensure_podman() {
  if _podman_ping; then
    export WORKSPACE_PODMAN_HOST="unix://$WORKSPACE_PODMAN_SOCKET"
    return 0
  fi
  ensure_packages podman catatonit || { echo "podman: could not install podman and catatonit" >&2; return 1; }
  _podman_sudo mkdir -p "$WORKSPACE_PODMAN_DIR/storage" "$WORKSPACE_PODMAN_RUNROOT" || return 1
  printf '%s\n' '[containers]' 'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]' |
    _podman_sudo tee "$WORKSPACE_PODMAN_DIR/containers.conf" >/dev/null || return 1
  stop_podman
  _podman_sudo rm -f "$WORKSPACE_PODMAN_SOCKET"
  # shellcheck disable=SC2016  # expanded by the inner shell
  _podman_sudo env CONTAINERS_CONF="$WORKSPACE_PODMAN_DIR/containers.conf" \
    dir="$WORKSPACE_PODMAN_DIR" runroot="$WORKSPACE_PODMAN_RUNROOT" socket="$WORKSPACE_PODMAN_SOCKET" \
    setsid sh -c 'cd "$dir" && exec podman --root "$dir/storage" --runroot "$runroot" \
      system service --time=0 "unix://$socket" >"$dir/service.log" 2>&1 </dev/null & echo $! >"$dir/service.pid"'
  local deadline=$((SECONDS + WORKSPACE_PODMAN_TIMEOUT))
  until _podman_ping; do
    if [ $SECONDS -ge $deadline ]; then
      echo "podman: the service did not answer on $WORKSPACE_PODMAN_SOCKET; last lines of its log:" >&2
      _podman_sudo tail -n 20 "$WORKSPACE_PODMAN_DIR/service.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
  echo "== Podman service on unix://$WORKSPACE_PODMAN_SOCKET: $(podman --version)"
  export WORKSPACE_PODMAN_HOST="unix://$WORKSPACE_PODMAN_SOCKET"
}

# _podman_pid: the pid of our service if it is running, else nothing (and false).
_podman_pid() {
  local pid
  pid=$(_podman_sudo cat "$WORKSPACE_PODMAN_DIR/service.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = podman ] || return 1
  echo "$pid"
}

stop_podman() {
  local pid
  if pid=$(_podman_pid); then
    _podman_sudo kill "$pid" 2>/dev/null
    local i
    for i in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  fi
  _podman_sudo rm -f "$WORKSPACE_PODMAN_DIR/service.pid"
  return 0
}
