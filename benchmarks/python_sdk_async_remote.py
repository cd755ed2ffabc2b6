#!/usr/bin/env python3
"""Baseline: the OpenHands Python SDK's own AsyncRemoteWorkspace against a running agent server.

Runs with the Python of the agent server's venv (it needs openhands-sdk), which the caller
names: the host venv's python, or in chroot mode something like
    chroot /opt/workspace-trixie /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        AGENT_SERVER_URL=... AGENT_SERVER_SESSION_KEY=... AGENT_SERVER_WORKSPACE=... \
        /opt/agent-server-venv/bin/python /tmp/python_sdk_async_remote.py concurrent 64 0.5
(this file copied into the chroot first). Talks only to AGENT_SERVER_URL.

Environment: AGENT_SERVER_URL, AGENT_SERVER_SESSION_KEY, AGENT_SERVER_WORKSPACE (the working_dir
given to AsyncRemoteWorkspace).

Modes (each prints one JSON line on stdout; exit status non-zero on any failure):
  concurrent N SECONDS
      after 2 warm-up execute_command("true") calls (one after the other), times
      asyncio.gather over N execute_command("sleep SECONDS; echo $i") calls, i = 0..N-1, on one
      AsyncRemoteWorkspace (so one httpx.AsyncClient); checks every exit code is 0 and every
      stdout is str(i) (plus echo's newline).
      {"impl":"python-sdk-async","op":"concurrent_sleep","n":N,"sleep_s":SECONDS,"wall_s":..,"ok":N}

Note (SDK 1.58.0): AsyncRemoteWorkspace.execute_command drives the same generator as the sync
RemoteWorkspace, whose poll loop waits with time.sleep(0.1) between searches for the command's
output. In the async class that sleep blocks the event loop, so each command whose first search
finds it still running stalls all the others for 0.1 s: wall_s grows by about 0.1 s per command
(N=64, SECONDS=0.5 gives ~2.5-7.5 s). That is the SDK's behaviour and is measured as it is. A
loop blocked for over 5 s also lets uvicorn drop idle keep-alive connections, so a reused one
occasionally fails with httpx.RemoteProtocolError (reported as a failure). Its AsyncClient
ignores max_connections and keeps httpx's default pool (100 connections, 10 s pool timeout).
"""

import asyncio
import json
import os
import sys
import time

# Importing the SDK imports litellm, which otherwise fetches its model cost map from the
# internet at import time; this script talks to the agent server on loopback only.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENHANDS_SUPPRESS_BANNER", "1")

from openhands.sdk.workspace import AsyncRemoteWorkspace  # noqa: E402

NAME = "python_sdk_async_remote.py"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{NAME}: {name} is not set")
    return value


def _workspace() -> AsyncRemoteWorkspace:
    # Same pydantic fields as RemoteWorkspace (RemoteWorkspaceMixin): host, api_key=None,
    # working_dir, read_timeout=600.0, max_connections=None, runtime_conversation_id=None.
    return AsyncRemoteWorkspace(
        host=_env("AGENT_SERVER_URL"),
        api_key=os.environ.get("AGENT_SERVER_SESSION_KEY") or None,
        working_dir=_env("AGENT_SERVER_WORKSPACE"),
    )


async def concurrent(n: int, seconds: float) -> dict:
    # The command's timeout is both the server-side limit and the SDK's polling deadline; the
    # SDK reports a timeout (or any HTTP error) as exit code -1, which the checks below catch.
    timeout = seconds + 120.0
    async with _workspace() as ws:
        for _ in range(2):
            warm = await ws.execute_command("true", timeout=timeout)
            if warm.exit_code != 0:
                sys.exit(
                    f"{NAME}: warm-up `true` gave exit code {warm.exit_code}, "
                    f"stderr {warm.stderr!r}"
                )
        commands = [f"sleep {seconds}; echo {i}" for i in range(n)]
        t0 = time.perf_counter()
        # HTTP errors raised by the client (outside the SDK's generator) come back as exceptions.
        results = await asyncio.gather(
            *(ws.execute_command(c, timeout=timeout) for c in commands), return_exceptions=True
        )
        wall = time.perf_counter() - t0
    ok = 0
    for i, r in enumerate(results):
        if isinstance(r, BaseException):
            print(f"{NAME}: command {i} raised {type(r).__name__}: {r}", file=sys.stderr)
        elif r.exit_code == 0 and r.stdout.rstrip("\n") == str(i):
            ok += 1
        else:
            print(
                f"{NAME}: command {i} gave exit code {r.exit_code}, stdout {r.stdout!r}, "
                f"stderr {r.stderr!r}",
                file=sys.stderr,
            )
    if ok != n:
        sys.exit(f"{NAME}: {n - ok} of {n} commands failed")
    return {
        "impl": "python-sdk-async",
        "op": "concurrent_sleep",
        "n": n,
        "sleep_s": seconds,
        "wall_s": round(wall, 4),
        "ok": ok,
    }


def main(argv: list[str]) -> int:
    usage = f"usage: {NAME} concurrent N SECONDS"
    if len(argv) != 4 or argv[1] != "concurrent":
        sys.exit(usage)
    try:
        n, seconds = int(argv[2]), float(argv[3])
    except ValueError:
        sys.exit(usage)
    if n < 1 or seconds < 0:
        sys.exit(usage)
    out = asyncio.run(concurrent(n, seconds))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
