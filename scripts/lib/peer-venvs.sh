# Sourced by the scripts (after scripts/lib/ensure-packages.sh): Python venvs for the peers the
# benchmarks compare the library with, each holding an exact, pinned set of packages, kept outside
# any checkout so that every clone and later run reuses them.
#
#   peer_venv DIR PIN...     makes DIR a venv holding exactly PIN... (name==version each) unless it
#                            already does, and prints DIR. A venv is built beside DIR (DIR.partial.PID)
#                            and renamed into place only once pip has finished, so DIR is always
#                            either absent, the previous complete venv or the new complete one; a
#                            stamp file in it names the hash of the pins and of the Python, so a
#                            change of either rebuilds it. Callers running in parallel serialise on
#                            DIR.lock. Use DIR/bin/python (with -m pip, not DIR/bin/pip: the scripts
#                            in bin/ name the path the venv was built at).
#   ensure_aiodocker_venv    peer_venv for aiodocker (benchmarks/aiodocker_parallel.py); exports
#                            WORKSPACE_AIODOCKER_PYTHON, the venv's python.
#
# Settings (environment, all optional):
#   WORKSPACE_PEER_VENVS_DIR   where the peer venvs live (default /var/cache/workspace-bench when
#                              it can be written, else ${XDG_CACHE_HOME:-$HOME/.cache}/workspace-bench)
#   WORKSPACE_AIODOCKER_VENV   the aiodocker venv (default $WORKSPACE_PEER_VENVS_DIR/aiodocker-venv)
#   WORKSPACE_PEER_PYTHON      the Python the venvs are made with (default python3)

WORKSPACE_AIODOCKER_VERSION=0.27.0
# aiodocker and what it pulls in, as pip resolved it for aiodocker 0.27.0 on Python 3.11: pinned
# whole, so every machine benchmarks the same code.
WORKSPACE_AIODOCKER_PINS=(
  "aiodocker==$WORKSPACE_AIODOCKER_VERSION"
  aiohappyeyeballs==2.7.1
  aiohttp==3.14.5
  aiosignal==1.4.0
  attrs==26.1.0
  frozenlist==1.8.0
  idna==3.20
  multidict==7.2.1
  propcache==0.5.4
  typing_extensions==4.16.0
  yarl==1.25.1
)

_peer_venv_say() { echo "peer-venvs: $*" >&2; }

_peer_venvs_dir() {
  if [ -n "${WORKSPACE_PEER_VENVS_DIR:-}" ]; then echo "$WORKSPACE_PEER_VENVS_DIR"; return; fi
  if mkdir -p /var/cache/workspace-bench 2>/dev/null && [ -w /var/cache/workspace-bench ]; then
    echo /var/cache/workspace-bench
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/workspace-bench"
  fi
}

peer_venv() {
  local venv=$1; shift
  [ -n "$venv" ] && [ $# -gt 0 ] || { _peer_venv_say "usage: peer_venv DIR PIN..."; return 2; }
  local py=${WORKSPACE_PEER_PYTHON:-python3}
  command -v "$py" >/dev/null 2>&1 || ensure_packages python3 >&2
  command -v "$py" >/dev/null 2>&1 || { _peer_venv_say "no $py to make venvs with"; return 1; }
  if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    ensure_packages python3-venv >&2 || return 1
  fi
  # The stamp covers the pins and the exact Python (a venv links to its interpreter).
  local pyid hash
  pyid=$("$py" -c 'import sys; print(sys.version, sys.base_prefix)') || return 1
  hash=$(printf '%s\n' "$pyid" "$@" | sha256sum | cut -c1-16)
  local stamp=".workspace-peer-venv-$hash"
  if [ -x "$venv/bin/python" ] && [ -f "$venv/$stamp" ]; then echo "$venv"; return 0; fi

  mkdir -p "$(dirname "$venv")" || { _peer_venv_say "cannot create $(dirname "$venv")"; return 1; }
  local lockfd rc
  exec {lockfd}>"$venv.lock" || return 1
  if ! flock -w 900 "$lockfd"; then
    _peer_venv_say "timed out waiting for $venv.lock"
    exec {lockfd}>&-
    return 1
  fi
  _peer_venv_build "$py" "$venv" "$stamp" "$@"
  rc=$?
  exec {lockfd}>&-
  [ $rc -eq 0 ] && echo "$venv"
  return $rc
}

# Holding DIR.lock: builds the venv in DIR.partial.PID and renames it to DIR.
_peer_venv_build() {
  local py=$1 venv=$2 stamp=$3; shift 3
  # Someone else may have finished it while we waited for the lock.
  if [ -x "$venv/bin/python" ] && [ -f "$venv/$stamp" ]; then return 0; fi
  local partial="$venv.partial.$$" old="$venv.old.$$"
  _peer_venv_say "installing $* in $venv"
  rm -rf "$partial"
  # --no-compile, then compileall naming the final path, so that tracebacks name the right files
  # (a file compileall cannot compile is only compiled, or not, when imported).
  if ! { "$py" -m venv "$partial" &&
      PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$partial/bin/python" -m pip install -q --progress-bar off --no-compile "$@" >&2 &&
      { "$partial/bin/python" -m compileall -q -s "$partial" -p "$venv" "$partial/lib" >/dev/null || true; } &&
      touch "$partial/$stamp"; }; then
    _peer_venv_say "making the venv failed (pip install $*)"
    rm -rf "$partial"
    return 1
  fi
  # A directory cannot be renamed over a non-empty one: the old venv steps aside first.
  if [ -e "$venv" ]; then mv -T "$venv" "$old" || { rm -rf "$partial"; return 1; }; fi
  if ! mv -T "$partial" "$venv"; then
    [ -e "$old" ] && mv -T "$old" "$venv"
    rm -rf "$partial"
    return 1
  fi
  rm -rf "$old"
  # A last check that the renamed venv runs from its new place.
  "$venv/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' || {
    _peer_venv_say "$venv/bin/python does not run as a venv after the rename"
    return 1
  }
}

ensure_aiodocker_venv() {
  local venv=${WORKSPACE_AIODOCKER_VENV:-$(_peer_venvs_dir)/aiodocker-venv}
  peer_venv "$venv" "${WORKSPACE_AIODOCKER_PINS[@]}" >/dev/null || return 1
  export WORKSPACE_AIODOCKER_PYTHON="$venv/bin/python"
}
