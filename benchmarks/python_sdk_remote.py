#!/usr/bin/env python3
"""Baseline: the OpenHands Python SDK's own RemoteWorkspace against a running agent server.

Runs with the Python of the agent server's venv (it needs openhands-sdk), which the caller
names: the host venv's python, or in chroot mode something like
    chroot /opt/workspace-trixie /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        AGENT_SERVER_URL=... AGENT_SERVER_SESSION_KEY=... AGENT_SERVER_WORKSPACE=... \
        /opt/agent-server-venv/bin/python /tmp/python_sdk_remote.py latency 200
(this file copied into the chroot first). Talks only to AGENT_SERVER_URL.

Environment: AGENT_SERVER_URL, AGENT_SERVER_SESSION_KEY, AGENT_SERVER_WORKSPACE (the working_dir
given to RemoteWorkspace).

Modes (each prints one JSON line on stdout; exit status non-zero on any failure):
  latency N
      execute_command("true") N times after 3 warm-ups; checks exit code 0 every time.
      {"impl":"python-sdk","op":"true","n":N,"median_ms":..,"p10_ms":..,"p90_ms":..,"mean_ms":..}
  upload SIZE_BYTES LOCAL_SRC REMOTE_DST
      writes SIZE_BYTES of random data to LOCAL_SRC (in 1 MiB pieces, so the generator adds
      nothing to the peak RSS), then times file_upload(LOCAL_SRC, REMOTE_DST) and checks the
      size the server sees with `stat`.
  download SIZE_BYTES REMOTE_SRC LOCAL_DST
      has the server write SIZE_BYTES of random data to REMOTE_SRC (head -c from /dev/urandom,
      so this process never holds it), then times file_download(REMOTE_SRC, LOCAL_DST) and checks
      the local size.
  Transfers print {"impl":"python-sdk","op":"upload"|"download","bytes":..,"seconds":..,
  "mb_per_s":..,"peak_rss_kib":..,"rss_before_kib":..} where peak_rss_kib is the process's
  ru_maxrss after the transfer (KiB on Linux) and rss_before_kib the same just before it.
"""

import json
import os
import resource
import shlex
import statistics
import sys
import time

# Importing the SDK imports litellm, which otherwise fetches its model cost map from the
# internet at import time; this script talks to the agent server on loopback only.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENHANDS_SUPPRESS_BANNER", "1")

from openhands.sdk.workspace import RemoteWorkspace  # noqa: E402


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"python_sdk_remote.py: {name} is not set")
    return value


def _workspace() -> RemoteWorkspace:
    # RemoteWorkspace(host, api_key=None, working_dir, read_timeout=600.0,
    #                 max_connections=None, runtime_conversation_id=None) -- pydantic fields.
    return RemoteWorkspace(
        host=_env("AGENT_SERVER_URL"),
        api_key=os.environ.get("AGENT_SERVER_SESSION_KEY") or None,
        working_dir=_env("AGENT_SERVER_WORKSPACE"),
    )


def _percentile(sorted_values: list[float], p: float) -> float:
    # Linear interpolation between closest ranks (numpy's default).
    if len(sorted_values) == 1:
        return sorted_values[0]
    k = (len(sorted_values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _run_true(ws: RemoteWorkspace) -> None:
    result = ws.execute_command("true")
    if result.exit_code != 0:
        sys.exit(
            f"python_sdk_remote.py: `true` gave exit code {result.exit_code}, "
            f"stderr {result.stderr!r}"
        )


def latency(n: int) -> dict:
    ws = _workspace()
    for _ in range(3):
        _run_true(ws)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        _run_true(ws)
        samples.append((time.perf_counter() - t0) * 1000.0)
    s = sorted(samples)
    return {
        "impl": "python-sdk",
        "op": "true",
        "n": n,
        "median_ms": round(statistics.median(s), 3),
        "p10_ms": round(_percentile(s, 0.10), 3),
        "p90_ms": round(_percentile(s, 0.90), 3),
        "mean_ms": round(statistics.fmean(s), 3),
    }


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _remote_size(ws: RemoteWorkspace, path: str) -> int:
    result = ws.execute_command(f"stat -c %s {shlex.quote(path)}")
    if result.exit_code != 0:
        sys.exit(f"python_sdk_remote.py: stat {path} failed: {result.stderr!r}")
    return int(result.stdout.strip())


def _transfer_result(op: str, size: int, seconds: float, before: int) -> dict:
    return {
        "impl": "python-sdk",
        "op": op,
        "bytes": size,
        "seconds": round(seconds, 4),
        "mb_per_s": round(size / 1e6 / seconds, 2) if seconds > 0 else None,
        "peak_rss_kib": _maxrss_kib(),
        "rss_before_kib": before,
    }


def upload(size: int, local_src: str, remote_dst: str) -> dict:
    ws = _workspace()
    _run_true(ws)  # warm the connection
    piece = 1 << 20
    with open(local_src, "wb") as f:
        left = size
        while left > 0:
            n = min(piece, left)
            f.write(os.urandom(n))
            left -= n
    before = _maxrss_kib()
    t0 = time.perf_counter()
    result = ws.file_upload(local_src, remote_dst)
    seconds = time.perf_counter() - t0
    out = _transfer_result("upload", size, seconds, before)
    if not result.success:
        sys.exit(f"python_sdk_remote.py: upload failed: {result.error}")
    got = _remote_size(ws, remote_dst)
    if got != size:
        sys.exit(f"python_sdk_remote.py: uploaded {size} bytes, server has {got}")
    return out


def download(size: int, remote_src: str, local_dst: str) -> dict:
    ws = _workspace()
    q = shlex.quote(remote_src)
    made = ws.execute_command(
        f"mkdir -p \"$(dirname {q})\" && head -c {size} /dev/urandom > {q}", timeout=600
    )
    if made.exit_code != 0:
        sys.exit(f"python_sdk_remote.py: creating {remote_src} failed: {made.stderr!r}")
    before = _maxrss_kib()
    t0 = time.perf_counter()
    result = ws.file_download(remote_src, local_dst)
    seconds = time.perf_counter() - t0
    out = _transfer_result("download", size, seconds, before)
    if not result.success:
        sys.exit(f"python_sdk_remote.py: download failed: {result.error}")
    got = os.path.getsize(local_dst)
    if got != size:
        sys.exit(f"python_sdk_remote.py: downloaded {got} bytes, expected {size}")
    return out


def main(argv: list[str]) -> int:
    usage = (
        "usage: python_sdk_remote.py latency N | upload SIZE_BYTES LOCAL_SRC REMOTE_DST"
        " | download SIZE_BYTES REMOTE_SRC LOCAL_DST"
    )
    if len(argv) < 2:
        sys.exit(usage)
    mode = argv[1]
    if mode == "latency" and len(argv) == 3:
        out = latency(int(argv[2]))
    elif mode == "upload" and len(argv) == 5:
        out = upload(int(argv[2]), argv[3], argv[4])
    elif mode == "download" and len(argv) == 5:
        out = download(int(argv[2]), argv[3], argv[4])
    else:
        sys.exit(usage)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
