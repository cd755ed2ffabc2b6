# Sourced by the scripts (after scripts/lib/ensure-packages.sh and scripts/lib/dockerd.sh): runs
# tests/servers/daytona/server.py, the local stand-in for the Daytona service, on 127.0.0.1 for
# the DaytonaWorkspace tests. Its sandboxes are containers on the test Docker daemon
# (ensure_dockerd); it validates every request against the specs in ../shared/specs. It runs
# from a copy of its files and the specs outside the checkout (scripts/lib/server-files.sh), and
# a running one is reused only when that copy is what this checkout's files hash to.
#
#   ensure_daytona_server  starts it (or finds the one already running and healthy) and exports
#                          DAYTONA_TEST_API_URL          http://127.0.0.1:PORT/api (DAYTONA_API_URL)
#                          DAYTONA_TEST_API_KEY          the valid API key (Bearer)
#                          DAYTONA_TEST_EXPIRED_API_KEY  a key the server treats as expired
#                          DAYTONA_TEST_SERVER_PID       the server's pid
#                          returns non-zero, saying why on stderr, when it cannot.
#   stop_daytona_server    stops it; it removes every container it created before exiting.
#                          Idempotent.
#
# Settings (environment, all optional):
#   DAYTONA_SERVER_VENV           the venv with the server's pinned dependencies
#                                 (tests/servers/daytona/requirements.txt), made when missing
#                                 (default /opt/workspace-daytona-venv)
#   DAYTONA_SERVER_STATE_DIR      pid, log, keys, URL (default /tmp/workspace-daytona-server)
#   WORKSPACE_SPECS_DIR           the folder with the Daytona OpenAPI specs
#                                 (default: ../shared/specs beside the repository;
#                                 DAYTONA_SPECS_DIR is read too)
#   DAYTONA_SERVER_ARGS           extra server options, e.g. "--transition-delay 0.1 --self-check"
#   DAYTONA_SERVER_START_TIMEOUT  seconds to wait for the server (default 180: the first start
#                                 builds the sandbox image)

# shellcheck source=server-files.sh
. "$(dirname "${BASH_SOURCE[0]}")/server-files.sh"

_daytona_server_say() { echo "daytona-server: $*" >&2; }

_daytona_server_repo() { (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); }

# PID is a live process (not a zombie).
_daytona_server_running() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}

_daytona_server_alive() {  # URL KEY PID
  _daytona_server_running "$3" || return 1
  curl -fsS -m 5 -o /dev/null -H "Authorization: Bearer $2" "${1%/api}/_test/stats" 2>/dev/null
}

# The venv with the pinned requirements; remade when requirements.txt changes.
_daytona_server_venv() {
  local repo=$1 venv=${DAYTONA_SERVER_VENV:-/opt/workspace-daytona-venv}
  local req="$repo/tests/servers/daytona/requirements.txt"
  local stamp
  stamp="$venv/.workspace-daytona-$(sha256sum "$req" | cut -c1-16)"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; then echo "$venv"; return 0; fi
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    ensure_packages python3-venv >&2 || return 1
  fi
  _daytona_server_say "installing the test server's dependencies in $venv"
  local pass=() v
  for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_CERT PIP_FIND_LINKS \
      http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY SSL_CERT_FILE; do
    [ -n "${!v:-}" ] && pass+=("$v=${!v}")
  done
  rm -rf "$venv" && mkdir -p "$(dirname "$venv")" && python3 -m venv "$venv" &&
    env "${pass[@]}" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
      "$venv/bin/pip" install -q --progress-bar off -r "$req" >&2 || {
    _daytona_server_say "pip install -r $req failed"
    return 1
  }
  touch "$stamp" && echo "$venv"
}

ensure_daytona_server() {
  local state=${DAYTONA_SERVER_STATE_DIR:-/tmp/workspace-daytona-server}
  mkdir -p "$state" && state=$(cd "$state" && pwd -P) ||
    { _daytona_server_say "cannot create $state"; return 1; }
  command -v curl >/dev/null 2>&1 || ensure_packages curl || return 1
  command -v python3 >/dev/null 2>&1 || ensure_packages python3 || return 1
  ensure_dockerd >&2 || { _daytona_server_say "no Docker daemon for the sandboxes"; return 1; }
  (
    flock -w 1800 9 || { _daytona_server_say "timed out waiting for $state/lock"; exit 1; }
    _daytona_server_start "$state"
  ) 9>"$state/lock" || return 1
  # shellcheck disable=SC1091
  . "$state/server.env" &&
    export DAYTONA_TEST_API_URL DAYTONA_TEST_API_KEY DAYTONA_TEST_EXPIRED_API_KEY \
      DAYTONA_TEST_SERVER_PID
}

# Runs in a subshell holding the lock; leaves server.env describing a healthy server.
_daytona_server_start() {
  local state=$1 files repo specs
  repo=$(_daytona_server_repo)
  specs=${WORKSPACE_SPECS_DIR:-${DAYTONA_SPECS_DIR:-$(dirname "$repo")/shared/specs}}
  local spec
  for spec in daytona-api.openapi.yaml daytona-toolbox.openapi.yaml; do
    if [ ! -f "$specs/$spec" ]; then
      _daytona_server_say "needs $specs/$spec: the official Daytona OpenAPI specs (../shared/specs beside the checkout; WORKSPACE_SPECS_DIR to point elsewhere)"
      return 1
    fi
  done
  files=$(server_files_install daytona-server \
    tests/servers/daytona=tests/servers/daytona \
    specs/daytona-api.openapi.yaml="$specs/daytona-api.openapi.yaml" \
    specs/daytona-toolbox.openapi.yaml="$specs/daytona-toolbox.openapi.yaml") || return 1
  if [ -f "$state/server.env" ]; then
    local DAYTONA_TEST_API_URL DAYTONA_TEST_API_KEY DAYTONA_TEST_EXPIRED_API_KEY \
      DAYTONA_TEST_SERVER_PID DAYTONA_TEST_DOCKER_HOST DAYTONA_TEST_SERVER_FILES=""
    . "$state/server.env"
    if [ "${DAYTONA_TEST_DOCKER_HOST:-}" = "${DOCKER_HOST:-}" ] &&
        [ "$DAYTONA_TEST_SERVER_FILES" = "$files" ] && [ -f "$files/.complete" ] &&
        _daytona_server_alive "$DAYTONA_TEST_API_URL" "$DAYTONA_TEST_API_KEY" \
          "$DAYTONA_TEST_SERVER_PID"; then
      return 0
    fi
    [ "$DAYTONA_TEST_SERVER_FILES" = "$files" ] ||
      _daytona_server_say "replacing the server at $DAYTONA_TEST_API_URL: it runs other files (${DAYTONA_TEST_SERVER_FILES:-from a checkout})"
    _daytona_server_stop_pid "$DAYTONA_TEST_SERVER_PID"
    rm -f "$state/server.env"
  fi

  local venv
  venv=$(_daytona_server_venv "$files") || return 1
  local key expired ready="$state/ready" pid url
  key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  expired=expired-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  local extra=()
  # shellcheck disable=SC2206
  [ -n "${DAYTONA_SERVER_ARGS:-}" ] && extra=(${DAYTONA_SERVER_ARGS})
  rm -f "$ready" "$state/server.pid"
  # setsid + stdin from /dev/null: the server outlives this shell and is not hit by its Ctrl-C;
  # its pid is what stop_daytona_server signals (SIGTERM makes it remove its containers).
  # shellcheck disable=SC2016
  setsid sh -c 'echo $$ >"$0" && exec "$@"' "$state/server.pid" \
    "$venv/bin/python" "$files/tests/servers/daytona/server.py" --port 0 --api-key "$key" \
    --expired-key "$expired" --ready-file "$ready" --specs "$files/specs" --state-dir "$state/sandboxes" "${extra[@]}" \
    </dev/null >"$state/server.log" 2>&1 9>&- &
  local deadline=$((SECONDS + ${DAYTONA_SERVER_START_TIMEOUT:-180}))
  pid=""
  while [ -z "$pid" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.1
    pid=$(cat "$state/server.pid" 2>/dev/null)
  done
  while _daytona_server_running "$pid" && [ $SECONDS -lt $deadline ]; do
    if [ -s "$ready" ]; then
      url=$(head -n1 "$ready")
      if _daytona_server_alive "$url" "$key" "$pid"; then
        {
          printf 'DAYTONA_TEST_API_URL=%q\n' "$url"
          printf 'DAYTONA_TEST_API_KEY=%q\n' "$key"
          printf 'DAYTONA_TEST_EXPIRED_API_KEY=%q\n' "$expired"
          printf 'DAYTONA_TEST_SERVER_PID=%q\n' "$pid"
          printf 'DAYTONA_TEST_DOCKER_HOST=%q\n' "${DOCKER_HOST:-}"
          printf 'DAYTONA_TEST_SERVER_FILES=%q\n' "$files"
        } >"$state/server.env"
        _daytona_server_say "running at $url (pid $pid, log $state/server.log)"
        return 0
      fi
    fi
    sleep 0.2
  done
  _daytona_server_say "the server did not come up; last lines of $state/server.log:"
  tail -n 20 "$state/server.log" >&2
  _daytona_server_stop_pid "$pid"
  return 1
}

# SIGTERM (the server then removes its containers), SIGKILL after 60 s.
_daytona_server_stop_pid() {
  local pid=$1
  _daytona_server_running "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 300); do
    _daytona_server_running "$pid" || return 0
    sleep 0.2
  done
  _daytona_server_say "pid $pid did not stop within 60 s; killing it"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}

stop_daytona_server() {
  local state=${DAYTONA_SERVER_STATE_DIR:-/tmp/workspace-daytona-server}
  [ -d "$state" ] || return 0
  (
    flock -w 120 9 || { _daytona_server_say "timed out waiting for $state/lock"; exit 1; }
    if [ -f "$state/server.env" ]; then
      local DAYTONA_TEST_SERVER_PID=""
      . "$state/server.env"
      _daytona_server_stop_pid "$DAYTONA_TEST_SERVER_PID"
      if _daytona_server_running "$DAYTONA_TEST_SERVER_PID"; then
        _daytona_server_say "pid $DAYTONA_TEST_SERVER_PID does not stop"; exit 1
      fi
      rm -f "$state/server.env"
    fi
  ) 9>"$state/lock" || return 1
  unset DAYTONA_TEST_API_URL DAYTONA_TEST_API_KEY DAYTONA_TEST_EXPIRED_API_KEY \
    DAYTONA_TEST_SERVER_PID
}
