# Sourced by scripts/run-tests (after scripts/lib/ensure-packages.sh and
# scripts/lib/agent-server.sh): a second standalone Asio beside the system's, Debian trixie's
# libasio-dev (Asio 1.30.2; Debian 12's is 1.22), so that the tests are built against both.
#
#   ensure_second_asio      prints the folder to pass as -DWORKSPACE_ASIO_INCLUDE_DIR (the one
#                           holding asio.hpp), fetching it first when it is not there yet;
#                           returns non-zero, saying why on stderr, when it cannot.
#   second_asio_test_targets BUILD_DIR
#                           prints the test targets of a configured Ninja build that need no
#                           server of their own, one a line: workspace.tests.unit.*, .contract.*,
#                           .support.* and .http.* (these start nginx, tinyproxy or a scripted
#                           server themselves), less the gigabyte transfers (label memory). One
#                           test of unit.http_websocket talks to the agent server that
#                           scripts/run-tests has started by then.
#
# The .deb is downloaded with apt-get inside the Debian trixie folder that agent-server.sh keeps
# (made here when missing, with debootstrap, about two minutes), unpacked with dpkg-deb into a
# folder beside the cache and renamed into place only once complete, so an interrupted run
# leaves nothing a later one takes for Asio; later runs reuse it (a check of a stamp file). Only
# the headers and the copyright are kept (about 6 MB).
#
# Settings (environment, all optional):
#   WORKSPACE_SECOND_ASIO_DIR  the cache folder (default /opt/workspace-asio-1.30.2 when /opt can
#                              be written, else ${XDG_CACHE_HOME:-$HOME/.cache}/workspace-asio-1.30.2);
#                              the headers are in its include/
#   WORKSPACE_TRIXIE_ROOT      the Debian trixie folder (default /opt/workspace-trixie)

WORKSPACE_SECOND_ASIO_VERSION=1.30.2
# As asio/version.hpp spells it: major * 100000 + minor * 100 + patch.
WORKSPACE_SECOND_ASIO_NUMBER=103002

_second_asio_say() { echo "second-asio: $*" >&2; }

_second_asio_dir() {
  if [ -n "${WORKSPACE_SECOND_ASIO_DIR:-}" ]; then echo "$WORKSPACE_SECOND_ASIO_DIR"; return; fi
  if [ -w /opt ] || { mkdir -p /opt 2>/dev/null && [ -w /opt ]; }; then
    echo "/opt/workspace-asio-$WORKSPACE_SECOND_ASIO_VERSION"
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/workspace-asio-$WORKSPACE_SECOND_ASIO_VERSION"
  fi
}

# DIR holds a complete unpacked copy of the wanted version.
_second_asio_ready() {
  [ -f "$1/.workspace-complete" ] &&
    grep -q "^#define ASIO_VERSION $WORKSPACE_SECOND_ASIO_NUMBER\b" "$1/include/asio/version.hpp" \
      2>/dev/null
}

ensure_second_asio() {
  local dir
  dir=$(_second_asio_dir)
  if ! _second_asio_ready "$dir"; then
    mkdir -p "$(dirname "$dir")" || { _second_asio_say "cannot create $(dirname "$dir")"; return 1; }
    (
      flock -w 900 9 || { _second_asio_say "timed out waiting for $dir.lock"; exit 1; }
      _second_asio_ready "$dir" || _second_asio_fetch "$dir"
    ) 9>"$dir.lock" || return 1
  fi
  echo "$dir/include"
}

# Runs in a subshell holding the lock: fetches, unpacks and renames into DIR.
_second_asio_fetch() {
  local dir=$1
  local root=${WORKSPACE_TRIXIE_ROOT:-/opt/workspace-trixie}
  local started=$SECONDS
  # Left by a run that was killed (we hold the lock: no other run is using them).
  rm -rf "$dir".partial.*
  _agent_server_ensure_trixie "$root" || { _second_asio_say "no Debian trixie folder in $root"; return 1; }
  local dl unpack
  dl=$(_agent_server_sudo mktemp -d "$root/tmp/workspace-asio.XXXXXX") &&
    _agent_server_sudo chmod 755 "$dl" &&
    unpack=$(mktemp -d "$dir.partial.XXXXXX") || { _second_asio_say "cannot make temporary folders"; return 1; }
  # shellcheck disable=SC2064
  trap "_agent_server_sudo rm -rf '$dl'; rm -rf '$unpack'" EXIT
  # shellcheck disable=SC2016
  local download=(sh -c 'cd "$1" && apt-get -q -o APT::Sandbox::User=root download libasio-dev'
    sh "/tmp/${dl##*/}")
  local log=$unpack/apt.log
  if ! _agent_server_in_root "$root" "${download[@]}" >"$log" 2>&1; then
    # The folder's package lists date from its debootstrap: a newer one may have replaced that
    # version on the mirror.
    _second_asio_say "apt-get download failed; updating the package lists of $root and retrying"
    _agent_server_sudo cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
    if ! _agent_server_in_root "$root" apt-get -q update >>"$log" 2>&1 ||
        ! _agent_server_in_root "$root" "${download[@]}" >>"$log" 2>&1; then
      _second_asio_say "cannot download libasio-dev in $root:"
      tail -n 15 "$log" >&2
      return 1
    fi
  fi
  rm -f "$log"
  local debs=("$dl"/libasio-dev_*.deb)
  [ -f "${debs[0]}" ] || { _second_asio_say "apt-get download left no libasio-dev_*.deb"; return 1; }
  local version
  version=$(dpkg-deb -f "${debs[0]}" Version) || { _second_asio_say "${debs[0]} is no .deb"; return 1; }
  dpkg-deb -x "${debs[0]}" "$unpack/deb" &&
    mv "$unpack/deb/usr/include" "$unpack/include" &&
    { cp "$unpack/deb/usr/share/doc/libasio-dev/copyright" "$unpack/copyright" 2>/dev/null || true; } &&
    rm -rf "$unpack/deb" || { _second_asio_say "cannot unpack ${debs[0]}"; return 1; }
  grep -q "^#define ASIO_VERSION $WORKSPACE_SECOND_ASIO_NUMBER\b" "$unpack/include/asio/version.hpp" || {
    _second_asio_say "trixie's libasio-dev $version is not Asio $WORKSPACE_SECOND_ASIO_VERSION:" \
      "$(grep '^#define ASIO_VERSION ' "$unpack/include/asio/version.hpp")"
    return 1
  }
  echo "libasio-dev $version from Debian trixie" >"$unpack/.workspace-complete" &&
    chmod 755 "$unpack" || return 1
  rm -rf "$dir" && mv -T "$unpack" "$dir" || { _second_asio_say "cannot move it to $dir"; return 1; }
  _second_asio_say "Asio $WORKSPACE_SECOND_ASIO_VERSION (libasio-dev $version) in $dir" \
    "($((SECONDS - started)) s)"
}

second_asio_test_targets() {
  ninja -C "$1" -t targets all |
    sed -n 's/^\(workspace\.tests\.\(unit\|contract\|support\|http\)\.[A-Za-z0-9_.]*\): phony$/\1/p' |
    grep -v 'large_transfer$' |
    sort -u
}
