#!/usr/bin/env bash
# Peer for the concurrent-workspaces benchmark: N `docker run --rm --network none IMAGE sh -c
# 'sleep 1; echo I'` CLI processes (I = 1..N, written into each command) started together and
# waited for together. Each must exit 0 and print exactly its I. Prints one line on stdout:
#   docker_cli_parallel wall_ms=NNNN n=N ok=K
# wall_ms runs from just before the first process is started to just after the last has been
# reaped (the CLI's own start-up, the create, start, attach, wait and --rm removal are all in
# it). Exit status 0 only when ok=N and no container of this run is left.
#
# Usage: benchmarks/docker_cli_parallel.sh [N [IMAGE]]
# Environment:
#   DOCKER_HOST   the daemon, a unix:// socket (required; nothing else is ever contacted:
#                 every docker command gets -H "$DOCKER_HOST")
#   BENCH_N       N when not given as an argument (default 64)
#   BENCH_IMAGE   IMAGE when not given as an argument (default workspace-test-busybox:latest).
#                 The default image is built when missing, offline, as the tests build it
#                 (tests/support/docker_daemon.hpp: FROM scratch with the host's static busybox,
#                 Debian busybox-static); any other image must exist already.
#   BENCH_DOCKER  the docker CLI (default docker)
#
# The containers carry the label org.workspace-cpp.peer-benchmark=<run id>; any of them still
# there at exit (an interrupted run) is removed with force. Never uses a bridge network.
set -uo pipefail

n=${1:-${BENCH_N:-64}}
default_image=workspace-test-busybox:latest
image=${2:-${BENCH_IMAGE:-$default_image}}
label_key=org.workspace-cpp.peer-benchmark
run_id="cli-$$-$(date +%s%N)"
label="$label_key=$run_id"

die() { echo "docker_cli_parallel: $*" >&2; exit 1; }

case $n in '' | *[!0-9]* | 0) die "N must be a positive integer, not '$n'" ;; esac
case ${DOCKER_HOST:-} in
  unix://?*) ;;
  *) die "DOCKER_HOST must name the test daemon's Unix socket (unix:///...), not '${DOCKER_HOST:-}'" ;;
esac
docker=("${BENCH_DOCKER:-docker}" -H "$DOCKER_HOST")
"${docker[@]}" version --format '{{.Server.Version}}' >/dev/null ||
  die "no Docker daemon answers on $DOCKER_HOST"

# The default image, built as the tests build it when it is missing.
build_default_image() {
  [ -x /bin/busybox ] || die "/bin/busybox is missing: install the Debian package busybox-static"
  ldd /bin/busybox >/dev/null 2>&1 &&
    die "/bin/busybox is dynamically linked: install the Debian package busybox-static"
  local ctx
  ctx=$(mktemp -d) || exit 1
  cp /bin/busybox "$ctx/busybox" && chmod 0755 "$ctx/busybox" || { rm -rf "$ctx"; exit 1; }
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /root /home/user /etc && chmod 1777 /tmp && chown 1000:1000 /home/user && printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > /etc/passwd && printf 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n' > /etc/group
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
  echo "docker_cli_parallel: building $image (offline, network none)" >&2
  # The classic builder: the daemon may be older than BuildKit's CLI expects.
  DOCKER_BUILDKIT=0 "${docker[@]}" build -q --network none -t "$image" "$ctx" >"$ctx.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || cat "$ctx.log" >&2
  rm -rf "$ctx" "$ctx.log"
  [ $rc -eq 0 ] || die "building $image failed"
}
if ! "${docker[@]}" image inspect "$image" >/dev/null 2>&1; then
  [ "$image" = "$default_image" ] || die "image $image is not on the daemon at $DOCKER_HOST"
  build_default_image
fi

work=$(mktemp -d) || exit 1
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  local left
  left=$("${docker[@]}" ps -aq --filter "label=$label" 2>/dev/null)
  # shellcheck disable=SC2086  # one id per word
  [ -n "$left" ] && "${docker[@]}" rm -f $left >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }

start=$(now_ns)
for ((i = 1; i <= n; i++)); do
  "${docker[@]}" run --rm --network none --label "$label" "$image" sh -c "sleep 1; echo $i" \
    </dev/null >"$work/$i.out" 2>"$work/$i.err" &
  pids[i]=$!
done
status=()
for ((i = 1; i <= n; i++)); do
  wait "${pids[i]}"
  status[i]=$?
done
end=$(now_ns)
pids=()

ok=0 shown=0
for ((i = 1; i <= n; i++)); do
  out=$(cat "$work/$i.out")
  if [ "${status[i]}" -eq 0 ] && [ "$out" = "$i" ]; then
    ok=$((ok + 1))
  elif [ $shown -lt 5 ]; then
    shown=$((shown + 1))
    echo "docker_cli_parallel: run $i: exit ${status[i]}, stdout '$(head -c 200 <<<"$out")'," \
      "stderr '$(head -c 300 "$work/$i.err" | tr '\n' ' ')'" >&2
  fi
done

wall_ms=$(((end - start) / 1000000))
left=$("${docker[@]}" ps -aq --filter "label=$label") || die "cannot list the containers left"
echo "docker_cli_parallel wall_ms=$wall_ms n=$n ok=$ok"
if [ -n "$left" ]; then
  echo "docker_cli_parallel: $(wc -w <<<"$left") container(s) of this run were left; removing them" >&2
  exit 1
fi
[ "$ok" -eq "$n" ]
