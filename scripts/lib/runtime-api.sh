# Sourced by the scripts (after scripts/lib/ensure-packages.sh and scripts/lib/agent-server.sh):
# runs tests/servers/runtime_api/server.py, the test server of the OpenHands runtime API, on
# 127.0.0.1 for the APIRemoteWorkspace tests. Each runtime it starts is a real agent server
# (scripts/agent-server-instance), so the agent-server prerequisites are installed first. It runs
# from a copy of its files outside the checkout (scripts/lib/server-files.sh), and a running one is
# reused only when that copy is what this checkout's files hash to.
#
#   ensure_runtime_api   starts it (or finds the one already running and healthy) and exports
#                        RUNTIME_API_URL   http://127.0.0.1:PORT
#                        RUNTIME_API_KEY   the value for the X-API-Key header
#                        RUNTIME_API_PID   the server's pid
#                        returns non-zero, saying why on stderr, when it cannot.
#   stop_runtime_api     stops it and every agent server it started; idempotent.
#
# Settings (environment, all optional):
#   RUNTIME_API_STATE_DIR      pid, log, key, URL and the runtimes' folders
#                              (default /tmp/workspace-runtime-api)
#   RUNTIME_API_START_TIMEOUT  seconds an agent server may take to answer /health (default 180)
#   RUNTIME_API_MAX_RUNTIMES   runtimes that may exist at once (default 10)
#   and those of scripts/lib/agent-server.sh (AGENT_SERVER_STATE_DIR: where the agent server's
#   venv lives; WORKSPACE_TRIXIE_ROOT; AGENT_SERVER_PYTHON).

# shellcheck source=server-files.sh
. "$(dirname "${BASH_SOURCE[0]}")/server-files.sh"

_runtime_api_say() { echo "runtime-api: $*" >&2; }

_runtime_api_alive() {  # URL KEY PID
  _agent_server_running "$3" || return 1
  curl -fsS -m 5 -o /dev/null -H "X-API-Key: $2" "$1/_test/stats" 2>/dev/null
}

ensure_runtime_api() {
  local state=${RUNTIME_API_STATE_DIR:-/tmp/workspace-runtime-api}
  mkdir -p "$state" && state=$(cd "$state" && pwd -P) ||
    { _runtime_api_say "cannot create $state"; return 1; }
  command -v curl >/dev/null 2>&1 || ensure_packages curl || return 1
  command -v python3 >/dev/null 2>&1 || ensure_packages python3 || return 1
  (
    flock -w 1800 9 || { _runtime_api_say "timed out waiting for $state/lock"; exit 1; }
    _runtime_api_start "$state"
  ) 9>"$state/lock" || return 1
  # shellcheck disable=SC1091
  . "$state/server.env" && export RUNTIME_API_URL RUNTIME_API_KEY RUNTIME_API_PID
}

# Runs in a subshell holding the lock; leaves server.env describing a healthy server.
_runtime_api_start() {
  local state=$1 files
  files=$(server_files_install runtime-api \
    tests/servers/runtime_api/server.py=tests/servers/runtime_api/server.py \
    scripts/agent-server-instance=scripts/agent-server-instance \
    scripts/lib/ensure-packages.sh=scripts/lib/ensure-packages.sh \
    scripts/lib/agent-server.sh=scripts/lib/agent-server.sh) || return 1
  if [ -f "$state/server.env" ]; then
    local RUNTIME_API_URL RUNTIME_API_KEY RUNTIME_API_PID RUNTIME_API_FILES=""
    . "$state/server.env"
    if [ "$RUNTIME_API_FILES" = "$files" ] && [ -f "$files/.complete" ] &&
        _runtime_api_alive "$RUNTIME_API_URL" "$RUNTIME_API_KEY" "$RUNTIME_API_PID"; then
      return 0
    fi
    [ "$RUNTIME_API_FILES" = "$files" ] ||
      _runtime_api_say "replacing the server at $RUNTIME_API_URL: it runs other files (${RUNTIME_API_FILES:-from a checkout})"
    _runtime_api_stop_pid "$RUNTIME_API_PID"
    rm -f "$state/server.env"
  fi
  # The agent servers it launches need these; installing now keeps /start fast and makes a
  # failure show here rather than as a failed runtime.
  agent_server_prepare >&2 || return 1

  local key pid url
  key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  rm -f "$state/server.url" "$state/server.pid"
  # Its own session, so a Ctrl-C in the caller's terminal does not reach it; it stops its agent
  # servers on SIGTERM.
  # shellcheck disable=SC2016
  setsid sh -c 'echo $$ >"$0" && exec "$@"' "$state/server.pid" \
    python3 "$files/tests/servers/runtime_api/server.py" --port 0 --api-key "$key" \
    --state-dir "$state" --ready-file "$state/server.url" \
    --start-timeout "${RUNTIME_API_START_TIMEOUT:-180}" \
    --max-runtimes "${RUNTIME_API_MAX_RUNTIMES:-10}" \
    </dev/null >"$state/server.log" 2>&1 9>&- &
  local deadline=$((SECONDS + 60))
  pid="" url=""
  while [ $SECONDS -lt $deadline ]; do
    [ -n "$pid" ] || pid=$(cat "$state/server.pid" 2>/dev/null)
    url=$(cat "$state/server.url" 2>/dev/null)
    [ -n "$url" ] && break
    if [ -n "$pid" ] && ! _agent_server_running "$pid"; then break; fi
    sleep 0.1
  done
  if [ -n "$url" ] && _runtime_api_alive "$url" "$key" "$pid"; then
    {
      printf 'RUNTIME_API_URL=%q\n' "$url"
      printf 'RUNTIME_API_KEY=%q\n' "$key"
      printf 'RUNTIME_API_PID=%q\n' "$pid"
      printf 'RUNTIME_API_FILES=%q\n' "$files"
    } >"$state/server.env"
    _runtime_api_say "running at $url (pid $pid, log $state/server.log)"
    return 0
  fi
  _runtime_api_stop_pid "$pid"
  _runtime_api_say "the server did not start; last lines of $state/server.log:"
  tail -n 20 "$state/server.log" >&2
  return 1
}

# SIGTERM (the server then stops its agent servers, up to ~5 s each, in parallel); SIGKILL after
# 60 s, and then the agent servers it left are stopped from their pid files.
_runtime_api_stop_pid() {
  local pid=$1
  local state=${RUNTIME_API_STATE_DIR:-/tmp/workspace-runtime-api}
  # Only ever a pid that still is this server (pid files outlive their processes).
  if _agent_server_running "$pid" &&
      grep -qa 'runtime_api/server.py' "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 600); do
      _agent_server_running "$pid" || break
      sleep 0.1
    done
    if _agent_server_running "$pid"; then
      _runtime_api_say "pid $pid ignores SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null
      sleep 0.2
    fi
  fi
  local f p
  for f in "$state"/runtimes/*/server.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null)
    if _agent_server_running "$p" &&
        grep -qaE 'agent_server|unshare' "/proc/$p/cmdline" 2>/dev/null; then
      _runtime_api_say "stopping agent server $p left behind"
      _agent_server_stop_pid "$p"
    fi
  done
}

stop_runtime_api() {
  local state=${RUNTIME_API_STATE_DIR:-/tmp/workspace-runtime-api}
  [ -d "$state" ] || return 0
  (
    flock -w 120 9 || { _runtime_api_say "timed out waiting for $state/lock"; exit 1; }
    local RUNTIME_API_PID=""
    [ -f "$state/server.env" ] && . "$state/server.env"
    [ -n "$RUNTIME_API_PID" ] || RUNTIME_API_PID=$(cat "$state/server.pid" 2>/dev/null)
    _runtime_api_stop_pid "$RUNTIME_API_PID"
    if _agent_server_running "$RUNTIME_API_PID"; then
      _runtime_api_say "pid $RUNTIME_API_PID does not stop"; exit 1
    fi
    rm -f "$state/server.env"
  ) 9>"$state/lock" || return 1
  unset RUNTIME_API_URL RUNTIME_API_KEY RUNTIME_API_PID
}
