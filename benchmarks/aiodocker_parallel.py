#!/usr/bin/env python3
"""Peer for the concurrent-workspaces benchmark: aiodocker (Python asyncio on the Engine API).

N workspaces at once, all in one asyncio.gather on one aiodocker.Docker client: each creates a
container (network mode none, an idle entrypoint that exits on SIGTERM), starts it, execs
`sh -c 'sleep 1; echo I'` (I = 1..N, written into the command), reads the exec's output to its
end, checks it is exactly I with exit code 0, and removes the container with force. Prints one
line on stdout:
    aiodocker_parallel wall_ms=NNNN n=N ok=K
wall_ms runs from just before the first create to just after the last removal. Not in it: the
interpreter's start-up and imports, and one request made first on the same client (the image
check, which also settles the API version the client negotiates). Exit status 0 only when ok=N
and no container of this run is left.

Runs with the Python of the venv that scripts/lib/peer-venvs.sh makes (ensure_aiodocker_venv,
which pins aiodocker and its dependencies):
    DOCKER_HOST=unix:///run/workspace-test-docker.sock \\
        "$WORKSPACE_AIODOCKER_PYTHON" benchmarks/aiodocker_parallel.py [N [IMAGE]]

Environment:
    DOCKER_HOST    the daemon, a unix:// socket (required; it is passed to aiodocker as its url,
                   so no Docker context or default socket is consulted)
    BENCH_N        N when not given as an argument (default 64)
    BENCH_IMAGE    IMAGE when not given as an argument (default workspace-test-busybox:latest,
                   which benchmarks/docker_cli_parallel.sh or the tests build; it must exist, it
                   is never pulled)
    BENCH_TIMEOUT  seconds the whole batch may take (default 300)

Every container carries the label org.workspace-cpp.peer-benchmark=<run id>. Whatever happens,
a finally block removes (with force) every container it created and then every container still
carrying that label, and checks that none is left. aiodocker's connection pool is left as it is
(aiohttp's default limit of 100 connections; each exec holds one while its output streams).
"""

import asyncio
import os
import signal
import sys
import time

import aiodocker

LABEL_KEY = "org.workspace-cpp.peer-benchmark"
DEFAULT_IMAGE = "workspace-test-busybox:latest"
IDLE = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done']


def say(message: str) -> None:
    print(f"aiodocker_parallel: {message}", file=sys.stderr, flush=True)


class Run:
    def __init__(self, docker: aiodocker.Docker, image: str, run_id: str) -> None:
        self.docker = docker
        self.image = image
        self.run_id = run_id
        self.created: dict[int, str] = {}  # i -> container id, until removed
        self.errors: list[str] = []

    async def workspace(self, i: int) -> bool:
        try:
            container = await self.docker.containers.create(
                {
                    "Image": self.image,
                    "Entrypoint": IDLE,
                    "Labels": {LABEL_KEY: self.run_id},
                    "NetworkDisabled": True,
                    "HostConfig": {"NetworkMode": "none"},
                },
                name=f"peer-aiodocker-{self.run_id}-{i}",
            )
            self.created[i] = container.id
            await container.start()
            execution = await container.exec(
                ["sh", "-c", f"sleep 1; echo {i}"], stdout=True, stderr=True
            )
            out, err = bytearray(), bytearray()
            async with execution.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    (out if message.stream == 1 else err).extend(message.data)
            exit_code = (await execution.inspect())["ExitCode"]
            await container.delete(force=True)
            del self.created[i]
            if exit_code != 0 or out != f"{i}\n".encode():
                self.errors.append(
                    f"workspace {i}: exit code {exit_code}, stdout {bytes(out[:200])!r}, "
                    f"stderr {bytes(err[:300])!r}"
                )
                return False
            return True
        except Exception as e:  # noqa: BLE001 - each failure is reported and counted
            self.errors.append(f"workspace {i}: {type(e).__name__}: {e}")
            return False

    async def cleanup(self) -> int:
        """Removes what this run left; returns how many of its containers still exist."""
        for i, cid in list(self.created.items()):
            try:
                await self.docker.containers.container(cid).delete(force=True)
                del self.created[i]
            except aiodocker.DockerError as e:
                if e.status == 404:
                    del self.created[i]
                else:
                    say(f"removing container {cid[:12]} (workspace {i}) failed: {e}")
        filters = {"label": [f"{LABEL_KEY}={self.run_id}"]}
        for c in await self.docker.containers.list(all=True, filters=filters):
            say(f"removing container {c.id[:12]} left with this run's label")
            try:
                await c.delete(force=True)
            except aiodocker.DockerError as e:
                say(f"removing container {c.id[:12]} failed: {e}")
        return len(await self.docker.containers.list(all=True, filters=filters))


async def main(n: int, image: str, timeout: float) -> int:
    host = os.environ.get("DOCKER_HOST", "")
    if not host.startswith("unix://") or len(host) <= len("unix://"):
        say(f"DOCKER_HOST must name the test daemon's Unix socket (unix:///...), not {host!r}")
        return 1
    run_id = f"{os.getpid()}-{time.time_ns()}"
    # SIGTERM, like the SIGINT asyncio.run already handles, cancels the batch: the finally block
    # below then still removes the containers.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    async with aiodocker.Docker(url=host) as docker:
        try:
            await docker.images.inspect(image)
        except aiodocker.DockerError as e:
            say(f"image {image} is not usable on {host} ({e.status}: {e.message}); "
                "benchmarks/docker_cli_parallel.sh builds the default one")
            return 1
        run = Run(docker, image, run_id)
        ok, wall_ms, left, batch = 0, None, None, None
        try:
            start = time.perf_counter_ns()
            batch = asyncio.gather(*(run.workspace(i) for i in range(1, n + 1)))
            results = await asyncio.wait_for(batch, timeout)
            wall_ms = (time.perf_counter_ns() - start) // 1_000_000
            ok = sum(results)
        except asyncio.TimeoutError:
            say(f"the batch took longer than {timeout:g} s")
        finally:
            if batch is not None and batch.done() and not batch.cancelled():
                batch.exception()  # retrieved: a cancelled batch is reported here, not by asyncio
            left = await run.cleanup()
        for error in run.errors[:5]:
            say(error)
        if len(run.errors) > 5:
            say(f"... and {len(run.errors) - 5} more errors")
        if wall_ms is None:
            return 1
        print(f"aiodocker_parallel wall_ms={wall_ms} n={n} ok={ok}", flush=True)
        if left:
            say(f"{left} container(s) of this run are still there")
            return 1
        return 0 if ok == n else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) > 2 or (args and args[0] in ("-h", "--help")):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        n = int(args[0] if args else os.environ.get("BENCH_N", "64"))
        timeout = float(os.environ.get("BENCH_TIMEOUT", "300"))
    except ValueError as e:
        sys.exit(f"aiodocker_parallel: {e}")
    if n <= 0:
        sys.exit("aiodocker_parallel: N must be positive")
    image = args[1] if len(args) > 1 else os.environ.get("BENCH_IMAGE", DEFAULT_IMAGE)
    try:
        sys.exit(asyncio.run(main(n, image, timeout)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("aiodocker_parallel: interrupted")
