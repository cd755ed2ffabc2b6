#!/usr/bin/env bash
# A test server started from one clone, which is then deleted, still serves a run from another
# clone (issue: a reused runtime API server launched agents from a deleted checkout, so every
# runtime failed). Starts a runtime API server and a Daytona test server of their own (separate
# state folders) from a copy of this checkout's scripts and servers, deletes the copy, then, from
# this checkout, asks for them again (they must be reused: same pid) and runs a command through
# each with workspace-cli. Stops both at the end.
#
#   servers_outlive_their_clone.sh SOURCE_DIR WORKSPACE_CLI
set -euo pipefail
source_dir=$1 cli=$2
: "${DOCKER_HOST:?DOCKER_HOST must name the test Docker daemon}"
specs=${WORKSPACE_SPECS_DIR:-${DAYTONA_SPECS_DIR:-$(dirname "$source_dir")/shared/specs}}

tmp=$(mktemp -d /tmp/workspace-clone-test.XXXXXX)
export RUNTIME_API_STATE_DIR=$tmp/runtime-api DAYTONA_SERVER_STATE_DIR=$tmp/daytona-server
export WORKSPACE_SPECS_DIR=$specs
stop_servers() {
  (
    cd "$source_dir"
    . scripts/lib/ensure-packages.sh; . scripts/lib/dockerd.sh; . scripts/lib/agent-server.sh
    . scripts/lib/runtime-api.sh; . scripts/lib/daytona-server.sh
    stop_daytona_server; stop_runtime_api
  ) || true
  rm -rf "$tmp"
}
trap stop_servers EXIT

# The "clone": what a checkout holds for the servers.
clone=$tmp/clone
mkdir -p "$clone/tests"
cp -R "$source_dir/scripts" "$clone/scripts"
cp -R "$source_dir/tests/servers" "$clone/tests/servers"
read -r first_runtime first_daytona < <(
  cd "$clone"
  . scripts/lib/ensure-packages.sh; . scripts/lib/dockerd.sh; . scripts/lib/agent-server.sh
  . scripts/lib/runtime-api.sh; . scripts/lib/daytona-server.sh
  ensure_runtime_api >&2 && ensure_daytona_server >&2
  echo "$RUNTIME_API_PID $DAYTONA_TEST_SERVER_PID"
)
rm -rf "$clone"
echo "started from the clone, which is now deleted: runtime API pid $first_runtime, Daytona pid $first_daytona"

cd "$source_dir"
. scripts/lib/ensure-packages.sh; . scripts/lib/dockerd.sh; . scripts/lib/agent-server.sh
. scripts/lib/runtime-api.sh; . scripts/lib/daytona-server.sh
ensure_runtime_api && ensure_daytona_server
[ "$RUNTIME_API_PID" = "$first_runtime" ] || { echo "FAIL: the runtime API server was not reused"; exit 1; }
[ "$DAYTONA_TEST_SERVER_PID" = "$first_daytona" ] || { echo "FAIL: the Daytona server was not reused"; exit 1; }

out=$(cd "$tmp" && WORKSPACE_API_KEY=$RUNTIME_API_KEY "$cli" --mode api_remote --host "$RUNTIME_API_URL" \
  --image agent-server:test run 'echo runtime-ok')
[ "$out" = runtime-ok ] || { echo "FAIL: a runtime of the reused server answered '$out'"; exit 1; }
out=$(cd "$tmp" && WORKSPACE_API_KEY=$DAYTONA_TEST_API_KEY "$cli" --mode daytona --host "$DAYTONA_TEST_API_URL" \
  --snapshot daytona-small run 'echo sandbox-ok')
[ "$out" = sandbox-ok ] || { echo "FAIL: a sandbox of the reused server answered '$out'"; exit 1; }
echo "both servers, started from a deleted clone, were reused and served a command"
