# Sourced by the scripts (after ensure-packages.sh): ensure_dockerd makes sure a Docker daemon
# answers on a Unix socket and exports DOCKER_HOST for the DockerWorkspace tests and benchmarks.
#
# It reuses a daemon that already answers (on $DOCKER_HOST if that is a unix:// address, then on
# our own socket, then on /var/run/docker.sock). Otherwise it installs Debian's docker.io (dockerd
# 20.10, API 1.41) and starts a private daemon for the tests, detached so that later runs reuse it:
#   dockerd --bridge=none --iptables=false, its own socket, data root, exec root, pid file and
#   containerd namespace, storage driver overlay2 (vfs if overlay2 does not work), log in
#   $WORKSPACE_DOCKERD_LOG.
# No bridge network exists on it: test containers use network mode none or host. Nothing here
# contacts a registry; test images are built FROM scratch with busybox-static.
# stop_dockerd stops that private daemon again. Both functions are safe to call more than once.
# Returns non-zero, saying why, when no daemon can be had; the caller decides whether that fails.

WORKSPACE_DOCKERD_SOCKET=${WORKSPACE_DOCKERD_SOCKET:-/run/workspace-test-docker.sock}
WORKSPACE_DOCKERD_EXEC_ROOT=${WORKSPACE_DOCKERD_EXEC_ROOT:-/run/workspace-test-docker}
WORKSPACE_DOCKERD_PIDFILE=${WORKSPACE_DOCKERD_PIDFILE:-/run/workspace-test-docker.pid}
WORKSPACE_DOCKERD_DATA_ROOT=${WORKSPACE_DOCKERD_DATA_ROOT:-/var/lib/workspace-test-docker}
WORKSPACE_DOCKERD_LOG=${WORKSPACE_DOCKERD_LOG:-/var/log/workspace-test-dockerd.log}
WORKSPACE_DOCKERD_TIMEOUT=${WORKSPACE_DOCKERD_TIMEOUT:-60}
# Empty: overlay2 if a trial overlay mount works on the data root, else vfs.
WORKSPACE_DOCKERD_STORAGE_DRIVER=${WORKSPACE_DOCKERD_STORAGE_DRIVER:-}

# _dockerd_ping SOCKET: true when GET /_ping on that Unix socket answers OK.
_dockerd_ping() {
  [ -S "$1" ] || return 1
  [ "$(curl -s --max-time 3 --unix-socket "$1" http://localhost/_ping 2>/dev/null)" = OK ]
}

# _dockerd_sudo CMD...: runs CMD as root.
_dockerd_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# _dockerd_pid: the pid of our private dockerd if it is running, else nothing (and false).
_dockerd_pid() {
  local pid
  pid=$(_dockerd_sudo cat "$WORKSPACE_DOCKERD_PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  echo "$pid"
}

# _dockerd_overlay_works: true when overlayfs can be mounted inside the data root (it cannot on
# some overlay-on-overlay set-ups, e.g. when this script itself runs in a container).
_dockerd_overlay_works() {
  grep -qw overlay /proc/filesystems 2>/dev/null || _dockerd_sudo modprobe overlay 2>/dev/null ||
    return 1
  local t ok=1
  _dockerd_sudo mkdir -p "$WORKSPACE_DOCKERD_DATA_ROOT" || return 1
  t=$(_dockerd_sudo mktemp -d "$WORKSPACE_DOCKERD_DATA_ROOT/overlay-check.XXXXXX") || return 1
  _dockerd_sudo mkdir -p "$t/lower" "$t/upper" "$t/work" "$t/merged"
  if _dockerd_sudo mount -t overlay overlay \
      -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" "$t/merged" 2>/dev/null; then
    _dockerd_sudo umount "$t/merged" && ok=0
  fi
  _dockerd_sudo rm -rf "$t"
  return $ok
}

# _dockerd_wait PID: waits until our socket answers (true), PID exits or the timeout passes.
_dockerd_wait() {
  local pid=$1 deadline=$((SECONDS + WORKSPACE_DOCKERD_TIMEOUT))
  while [ $SECONDS -lt "$deadline" ]; do
    _dockerd_ping "$WORKSPACE_DOCKERD_SOCKET" && return 0
    [ -d "/proc/$pid" ] || return 1
    sleep 0.1
  done
  _dockerd_ping "$WORKSPACE_DOCKERD_SOCKET"
}

_dockerd_log_tail() {
  echo "---- last lines of $WORKSPACE_DOCKERD_LOG" >&2
  _dockerd_sudo tail -n 30 "$WORKSPACE_DOCKERD_LOG" >&2 2>/dev/null || true
  echo "----" >&2
}

# _dockerd_start DRIVER: starts our private dockerd with that storage driver and waits for it.
# 0 = answering; 1 = it exited (try another driver); 2 = still running but not answering.
_dockerd_start() {
  local driver=$1 pid
  _dockerd_sudo mkdir -p "$WORKSPACE_DOCKERD_DATA_ROOT" "$WORKSPACE_DOCKERD_EXEC_ROOT" \
    "$(dirname "$WORKSPACE_DOCKERD_LOG")"
  echo "== starting dockerd (storage driver $driver) on unix://$WORKSPACE_DOCKERD_SOCKET," \
    "log in $WORKSPACE_DOCKERD_LOG"
  # setsid, stdin from /dev/null and output to the log: the daemon outlives this shell and does
  # not get the terminal's Ctrl-C; the pid file is what finds it again.
  pid=$(_dockerd_sudo sh -c 'echo "== $(date -u +%FT%TZ) dockerd $*" >>"$0"
    exec setsid dockerd "$@" </dev/null >>"$0" 2>&1 9<&- &
    echo $!' "$WORKSPACE_DOCKERD_LOG" \
    --host "unix://$WORKSPACE_DOCKERD_SOCKET" \
    --data-root "$WORKSPACE_DOCKERD_DATA_ROOT" \
    --exec-root "$WORKSPACE_DOCKERD_EXEC_ROOT" \
    --pidfile "$WORKSPACE_DOCKERD_PIDFILE" \
    --containerd-namespace workspace-test \
    --containerd-plugins-namespace workspace-test-plugins \
    --storage-driver "$driver" \
    --bridge=none --iptables=false --ip-masq=false --ip-forward=false) || pid=
  if ! [ "$pid" -gt 0 ] 2>/dev/null; then
    echo "ensure_dockerd: could not launch dockerd" >&2
    return 1
  fi
  _dockerd_wait "$pid" && return 0
  if [ -d "/proc/$pid" ]; then
    echo "ensure_dockerd: dockerd (pid $pid) did not answer on $WORKSPACE_DOCKERD_SOCKET" \
      "within ${WORKSPACE_DOCKERD_TIMEOUT}s" >&2
    return 2
  fi
  echo "ensure_dockerd: dockerd exited while starting with storage driver $driver" >&2
  return 1
}

# _dockerd_use SOCKET: exports DOCKER_HOST and says what answers there.
_dockerd_use() {
  export DOCKER_HOST="unix://$1"
  local info
  info=$(curl -s --max-time 10 --unix-socket "$1" http://localhost/info 2>/dev/null) || true
  printf '== Docker daemon on %s: version %s, storage driver %s, cgroup v%s\n' "$DOCKER_HOST" \
    "$(sed -n 's/.*"ServerVersion":"\([^"]*\)".*/\1/p' <<<"$info")" \
    "$(sed -n 's/.*"Driver":"\([^"]*\)".*/\1/p' <<<"$info")" \
    "$(sed -n 's/.*"CgroupVersion":"\([^"]*\)".*/\1/p' <<<"$info")"
}

ensure_dockerd() {
  # curl for the pings; docker.io for dockerd (and containerd, runc, docker-init, a 20.10 CLI in
  # /usr/bin that coexists with any newer CLI earlier in PATH: both negotiate API 1.41);
  # busybox-static for the test images.
  ensure_packages curl busybox-static || return 1

  # 1. Reuse a daemon that already answers.
  local sock
  if [ -n "${DOCKER_HOST:-}" ]; then
    case "$DOCKER_HOST" in
      unix://*)
        sock=${DOCKER_HOST#unix://}
        if _dockerd_ping "$sock"; then _dockerd_use "$sock"; return 0; fi
        echo "ensure_dockerd: nothing answers on DOCKER_HOST=$DOCKER_HOST; looking further" >&2 ;;
      *) echo "ensure_dockerd: ignoring DOCKER_HOST=$DOCKER_HOST (the tests need unix://)" >&2 ;;
    esac
  fi
  for sock in "$WORKSPACE_DOCKERD_SOCKET" /var/run/docker.sock; do
    if _dockerd_ping "$sock"; then _dockerd_use "$sock"; return 0; fi
  done

  command -v dockerd >/dev/null 2>&1 || ensure_packages docker.io || return 1
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "ensure_dockerd: dockerd is not installed (package docker.io)" >&2
    return 1
  fi

  # 2. Start our own, under a lock so that two scripts started together do not start two.
  local lock="$WORKSPACE_DOCKERD_EXEC_ROOT.lock" rc=0
  _dockerd_sudo touch "$lock" || return 1
  {
    if ! flock -w $((WORKSPACE_DOCKERD_TIMEOUT * 3)) 9; then
      echo "ensure_dockerd: timed out waiting for $lock" >&2
      return 1
    fi
    local pid
    if pid=$(_dockerd_pid); then
      # Ours is running (maybe still starting, maybe started meanwhile by another script).
      _dockerd_wait "$pid" || {
        echo "ensure_dockerd: dockerd (pid $pid) runs but does not answer on" \
          "$WORKSPACE_DOCKERD_SOCKET; stop it with stop_dockerd" >&2
        _dockerd_log_tail
        rc=1
      }
    else
      local drivers=()
      if [ -n "$WORKSPACE_DOCKERD_STORAGE_DRIVER" ]; then
        drivers=("$WORKSPACE_DOCKERD_STORAGE_DRIVER")
      elif _dockerd_overlay_works; then
        drivers=(overlay2 vfs)
      else
        echo "ensure_dockerd: overlayfs cannot be mounted here; using the vfs storage driver"
        drivers=(vfs)
      fi
      local driver started=$SECONDS
      rc=1
      for driver in "${drivers[@]}"; do
        _dockerd_start "$driver" && rc=0 || rc=$?
        [ $rc -ne 1 ] && break
      done
      if [ $rc -eq 0 ]; then
        echo "== dockerd answered after $((SECONDS - started))s"
      else
        [ $rc -eq 2 ] && { pid=$(_dockerd_pid) && _dockerd_sudo kill "$pid"; } 2>/dev/null
        echo "ensure_dockerd: no Docker daemon could be started. Usual causes: not root and no" \
          "sudo, no cgroup support, no overlay/vfs storage, seccomp or namespaces unavailable" \
          "(e.g. inside an unprivileged container). The daemon's log says which:" >&2
        _dockerd_log_tail
        rc=1
      fi
    fi
    # A daemon started through sudo: let the invoking user reach the socket.
    if [ $rc -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
      _dockerd_sudo chown "$(id -u)" "$WORKSPACE_DOCKERD_SOCKET" || rc=1
    fi
  } 9<"$lock"
  [ $rc -eq 0 ] || return 1
  _dockerd_use "$WORKSPACE_DOCKERD_SOCKET"
}

# stop_dockerd: stops our private daemon (never one we did not start) and waits for it to exit.
stop_dockerd() {
  local pid i
  pid=$(_dockerd_pid) || return 0
  _dockerd_sudo kill "$pid" || return 1
  for i in $(seq 1 300); do
    [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 0
    sleep 0.1
  done
  echo "stop_dockerd: dockerd (pid $pid) still runs after 30s" >&2
  return 1
}
