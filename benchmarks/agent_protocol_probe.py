#!/usr/bin/env python3
"""Protocol-level probe of the OpenHands agent server's bash API, to choose how RemoteWorkspace
waits for a command: REST polling, the bash-events websocket, or the blocking endpoint.

Runs with the Python of the agent server's venv (needs httpx and websockets; not the SDK), which
the caller names -- the host venv's python, or in chroot mode e.g.
    chroot /opt/workspace-trixie /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        AGENT_SERVER_URL=... AGENT_SERVER_SESSION_KEY=... \
        /opt/agent-server-venv/bin/python /tmp/agent_protocol_probe.py
(this file copied into the chroot first). Talks only to AGENT_SERVER_URL (loopback).

Environment: AGENT_SERVER_URL, AGENT_SERVER_SESSION_KEY.

Usage: agent_protocol_probe.py [--n N] [--only floor,latency,others,streaming]

floor      N interleaved GET /health and searches for an id with no events (a scan of the whole
           store): what one REST round trip costs here with no command running.

latency    Runs `true` N times (default 200) per way, interleaved in random order per round, after
           3 warm-ups of each:
             poll       POST /api/bash/start_bash_command, then GET .../bash_events/search
                        (command_id__eq, kind__eq=BashOutput, sort_order=TIMESTAMP, limit=100):
                        first poll at once, then after 1, 2, 4, 8, .. ms (capped at 50 ms), one
                        keep-alive httpx.Client; until a BashOutput with an exit_code.
             ws_frame   the ExecuteBashRequest sent as a frame on /sockets/bash-events; waits for
                        the BashCommand event carrying our command (a frame gets no reply, so
                        the command is `true #<nonce>` to recognise it), then for its BashOutput
                        with an exit_code.
             ws_rest    the same socket for events, the command started with the REST POST; waits
                        for the BashOutput with the returned id and an exit_code.
             blocking   POST /api/bash/execute_bash_command.
           Prints per way median/p10/p90/mean (ms); for poll also the number of searches, the
           time of one search, and the gaps between the client's receipt of the start response,
           the server's final BashOutput timestamp and the client's detection of it; for the
           websocket ways the gap from that timestamp to the frame's arrival. Also whether the
           socket saw the events of the poll/blocking commands (which it did not start).
others     Starts a command from a second, independent REST client and checks that a websocket
           opened by this one pushes its BashCommand and BashOutput (the socket is not filtered).
streaming  `printf a; sleep 1; printf b` (and a variant printing 1.1 MB first), started over REST
           while one websocket listens and a thread polls search every 10 ms: when each
           BashOutput shows up on either, relative to the start.

Every result is one JSON line on stdout. Exit status non-zero if any command fails.
"""

import argparse
import json
import os
import queue
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime

import httpx
from websockets.sync.client import connect as ws_connect


URL = os.environ.get("AGENT_SERVER_URL", "").rstrip("/")
KEY = os.environ.get("AGENT_SERVER_SESSION_KEY", "")
HEADERS = {"X-Session-API-Key": KEY} if KEY else {}
SEARCH = "/api/bash/bash_events/search"


def fail(msg: str) -> None:
    print(f"agent_protocol_probe.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def ts(value: str) -> float:
    """The server's ISO-8601 UTC timestamp as a time.time() value (same clock: loopback)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(sorted_values: list[float], p: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    k = (len(sorted_values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    s = sorted(values)
    return {
        "n": len(s),
        "median": round(statistics.median(s), 3),
        "p10": round(pct(s, 0.10), 3),
        "p90": round(pct(s, 0.90), 3),
        "mean": round(statistics.fmean(s), 3),
    }


def new_client() -> httpx.Client:
    return httpx.Client(base_url=URL, headers=HEADERS, timeout=httpx.Timeout(60.0))


def search_outputs(client: httpx.Client, command_id: str) -> list[dict]:
    r = client.get(
        SEARCH,
        params={
            "command_id__eq": command_id,
            "kind__eq": "BashOutput",
            "sort_order": "TIMESTAMP",
            "limit": 100,
        },
    )
    r.raise_for_status()
    return r.json()["items"]


def final_of(items: list[dict]) -> dict | None:
    for item in items:
        if item.get("kind") == "BashOutput" and item.get("exit_code") is not None:
            return item
    return None


class Socket:
    """/sockets/bash-events with first-frame auth. The sync websockets client reads frames on a
    background thread, so frames published while we wait on a REST call are queued, not lost."""

    def __init__(self) -> None:
        ws_url = "ws" + URL[len("http"):] + "/sockets/bash-events"
        # No compression: the frames are small JSON and this is loopback.
        self.ws = ws_connect(ws_url, compression=None, open_timeout=10, max_size=None)
        self.ws.send(json.dumps({"type": "auth", "session_api_key": KEY}))
        self.seen_ids: set[str] = set()  # command ids of every BashCommand/BashOutput seen
        self.frames = 0

    def close(self) -> None:
        self.ws.close()

    def recv(self, timeout: float | None) -> dict | None:
        try:
            raw = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        event = json.loads(raw)
        self.frames += 1
        kind = event.get("kind")
        if kind == "BashError":
            fail(f"websocket BashError: {event}")
        if kind == "BashCommand":
            self.seen_ids.add(event["id"])
        elif kind == "BashOutput":
            self.seen_ids.add(event["command_id"])
        return event

    def drain(self) -> None:
        while self.recv(0) is not None:
            pass

    def wait_final(self, command_id: str, deadline: float) -> tuple[dict, float]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"no final BashOutput for {command_id} on the websocket")
            event = self.recv(left)
            if (
                event is not None
                and event.get("kind") == "BashOutput"
                and event.get("command_id") == command_id
                and event.get("exit_code") is not None
            ):
                return event, time.time()


# ---------------------------------------------------------------- the four ways to run `true`


def run_poll(client: httpx.Client) -> dict:
    t0 = time.perf_counter()
    r = client.post("/api/bash/start_bash_command", json={"command": "true", "timeout": 30})
    r.raise_for_status()
    started_wall = time.time()
    command = r.json()
    command_id = command["id"]
    polls = 0
    poll_ms: list[float] = []
    delay_ms = 0.0
    while True:
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        p0 = time.perf_counter()
        final = final_of(search_outputs(client, command_id))
        poll_ms.append((time.perf_counter() - p0) * 1000.0)
        polls += 1
        if final is not None:
            break
        delay_ms = 1.0 if delay_ms == 0 else min(delay_ms * 2, 50.0)
        if time.perf_counter() - t0 > 30:
            fail(f"poll: no exit code for {command_id} after 30 s")
    elapsed = (time.perf_counter() - t0) * 1000.0
    detected_wall = time.time()
    if final["exit_code"] != 0:
        fail(f"poll: `true` exit code {final['exit_code']}")
    final_ts = ts(final["timestamp"])
    return {
        "ms": elapsed,
        "id": command_id,
        "polls": polls,
        "poll_ms": poll_ms,
        "start_resp_to_final_ts_ms": (final_ts - started_wall) * 1000.0,
        "final_ts_to_detect_ms": (detected_wall - final_ts) * 1000.0,
        "server_cmd_ts_to_final_ts_ms": (final_ts - ts(command["timestamp"])) * 1000.0,
    }


def run_blocking(client: httpx.Client) -> dict:
    t0 = time.perf_counter()
    r = client.post("/api/bash/execute_bash_command", json={"command": "true", "timeout": 30})
    r.raise_for_status()
    elapsed = (time.perf_counter() - t0) * 1000.0
    out = r.json()
    if out.get("exit_code") != 0:
        fail(f"blocking: `true` gave {out}")
    return {"ms": elapsed, "id": out["command_id"]}


def run_ws_rest(client: httpx.Client, sock: Socket) -> dict:
    sock.drain()
    t0 = time.perf_counter()
    r = client.post("/api/bash/start_bash_command", json={"command": "true", "timeout": 30})
    r.raise_for_status()
    started_wall = time.time()
    command_id = r.json()["id"]
    final, arrived_wall = sock.wait_final(command_id, time.monotonic() + 30)
    elapsed = (time.perf_counter() - t0) * 1000.0
    if final["exit_code"] != 0:
        fail(f"ws_rest: `true` exit code {final['exit_code']}")
    final_ts = ts(final["timestamp"])
    return {
        "ms": elapsed,
        "id": command_id,
        "start_resp_to_final_ts_ms": (final_ts - started_wall) * 1000.0,
        "final_ts_to_detect_ms": (arrived_wall - final_ts) * 1000.0,
    }


def run_ws_frame(sock: Socket) -> dict:
    sock.drain()
    command = f"true #{uuid.uuid4().hex}"
    deadline = time.monotonic() + 30
    t0 = time.perf_counter()
    sock.ws.send(json.dumps({"command": command, "timeout": 30}))
    command_id = None
    early: list[dict] = []  # outputs seen before our BashCommand (never expected)
    while command_id is None:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("ws_frame: no BashCommand event for our frame")
        event = sock.recv(left)
        if event is None:
            continue
        if event.get("kind") == "BashCommand" and event.get("command") == command:
            command_id = event["id"]
        elif event.get("kind") == "BashOutput":
            early.append(event)
    final = next(
        (e for e in early if e["command_id"] == command_id and e.get("exit_code") is not None),
        None,
    )
    if final is not None:
        arrived_wall = time.time()
    else:
        final, arrived_wall = sock.wait_final(command_id, deadline)
    elapsed = (time.perf_counter() - t0) * 1000.0
    if final["exit_code"] != 0:
        fail(f"ws_frame: `true` exit code {final['exit_code']}")
    return {
        "ms": elapsed,
        "id": command_id,
        "final_ts_to_detect_ms": (arrived_wall - ts(final["timestamp"])) * 1000.0,
    }


def count_events() -> int | None:
    """How many events the server stores (its search scans them all on every call)."""
    with new_client() as c:
        total, page = 0, None
        while True:
            params = {"limit": 100}
            if page:
                params["page_id"] = page
            r = c.get(SEARCH, params=params)
            if r.status_code != 200:
                return None
            body = r.json()
            total += len(body["items"])
            page = body.get("next_page_id")
            if not page:
                return total


def latency(n: int) -> None:
    events_before = count_events()
    client = new_client()
    sock = Socket()
    ways = {
        "poll": lambda: run_poll(client),
        "ws_frame": lambda: run_ws_frame(sock),
        "ws_rest": lambda: run_ws_rest(client, sock),
        "blocking": lambda: run_blocking(client),
    }
    for _ in range(3):
        for fn in ways.values():
            fn()
    results: dict[str, list[dict]] = {k: [] for k in ways}
    order = list(ways)
    rng = random.Random(1)
    for _ in range(n):
        rng.shuffle(order)
        for name in order:
            results[name].append(ways[name]())
    # Frames for the last commands may still be in flight; give them a moment.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if sock.recv(max(0.0, deadline - time.monotonic())) is None:
            break
    foreign = [r["id"] for k in ("poll", "blocking") for r in results[k]]
    foreign_seen = sum(1 for cid in foreign if cid in sock.seen_ids)
    sock.close()
    client.close()

    for name, rs in results.items():
        line = {"probe": "latency", "way": name, "op": "true"}
        line.update({f"{k}_ms": v for k, v in summary([r["ms"] for r in rs]).items() if k != "n"})
        line["n"] = len(rs)
        if name == "poll":
            polls = [r["polls"] for r in rs]
            line["polls_mean"] = round(statistics.fmean(polls), 2)
            line["polls_max"] = max(polls)
            line["polls_histogram"] = {
                str(k): polls.count(k) for k in sorted(set(polls))
            }
            line["one_search_ms"] = summary([m for r in rs for m in r["poll_ms"]])
            line["first_half_median_ms"] = round(
                statistics.median([r["ms"] for r in rs[: len(rs) // 2]]), 3)
            line["second_half_median_ms"] = round(
                statistics.median([r["ms"] for r in rs[len(rs) // 2:]]), 3)
        for key in (
            "start_resp_to_final_ts_ms",
            "final_ts_to_detect_ms",
            "server_cmd_ts_to_final_ts_ms",
        ):
            if key in rs[0]:
                line[key] = summary([r[key] for r in rs])
        emit(line)
    emit({
        "probe": "latency",
        "websocket_saw_commands_it_did_not_start": f"{foreign_seen}/{len(foreign)}",
        "stored_events_before": events_before,
        "stored_events_after": count_events(),
    })


# ---------------------------------------------------------------- request floor


def floor(n: int) -> None:
    """What one REST round trip costs on this server, with no command running: GET /health
    (no auth, no work) and a search for an id that has no events (a full scan of the store)."""
    with new_client() as c:
        missing = uuid.uuid4().hex
        calls = {
            "get_health": lambda: c.get("/health"),
            "search_missing_id": lambda: c.get(
                SEARCH,
                params={"command_id__eq": missing, "kind__eq": "BashOutput",
                        "sort_order": "TIMESTAMP", "limit": 100},
            ),
        }
        for fn in calls.values():
            for _ in range(3):
                fn().raise_for_status()
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(n):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn().raise_for_status()
                times[name].append((time.perf_counter() - t0) * 1000.0)
    for name, ms in times.items():
        line = {"probe": "floor", "call": name}
        line.update({f"{k}_ms": v for k, v in summary(ms).items() if k != "n"})
        line["n"] = n
        emit(line)
    emit({"probe": "floor", "stored_events": count_events()})


# ---------------------------------------------------------------- other clients' commands


def others() -> None:
    sock = Socket()
    time.sleep(0.2)  # the subscription is registered after auth; let it settle
    sock.drain()
    with new_client() as other:  # a separate connection, as another client would have
        r = other.post(
            "/api/bash/start_bash_command", json={"command": "echo other", "timeout": 30}
        )
        r.raise_for_status()
        command_id = r.json()["id"]
    kinds = []
    deadline = time.monotonic() + 10
    final = None
    while final is None and time.monotonic() < deadline:
        event = sock.recv(max(0.0, deadline - time.monotonic()))
        if event is None:
            continue
        if event.get("id") == command_id or event.get("command_id") == command_id:
            kinds.append(event["kind"])
            if event["kind"] == "BashOutput" and event.get("exit_code") is not None:
                final = event
    sock.close()
    emit({
        "probe": "others",
        "command_from_another_client": command_id,
        "events_pushed_to_our_socket": kinds,
        "final_stdout": final.get("stdout") if final else None,
        "pushes_other_clients_events": final is not None and "BashCommand" in kinds,
    })


# ---------------------------------------------------------------- incremental output?


def streaming_one(label: str, command: str) -> None:
    sock = Socket()
    time.sleep(0.2)
    sock.drain()
    client = new_client()
    poll_client = new_client()
    t0 = time.time()
    r = client.post("/api/bash/start_bash_command", json={"command": command, "timeout": 30})
    r.raise_for_status()
    command_id = r.json()["id"]

    polled: dict[str, float] = {}  # event id -> first seen (s since start)
    done = threading.Event()

    def poller() -> None:
        while not done.is_set():
            for item in search_outputs(poll_client, command_id):
                polled.setdefault(item["id"], time.time() - t0)
            time.sleep(0.01)

    th = threading.Thread(target=poller, daemon=True)
    th.start()
    ws_events = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        event = sock.recv(max(0.0, deadline - time.monotonic()))
        if event is None or event.get("command_id") != command_id:
            continue
        ws_events.append((time.time() - t0, event))
        if event.get("exit_code") is not None:
            break
    time.sleep(0.05)
    done.set()
    th.join()
    sock.close()
    client.close()
    poll_client.close()
    rows = []
    for at, e in ws_events:
        out = e.get("stdout") or ""
        rows.append({
            "order": e["order"],
            "exit_code": e.get("exit_code"),
            "stdout_len": len(out),
            "stdout_head": out[:8],
            "stdout_tail": out[-4:],
            "server_ts_s": round(ts(e["timestamp"]) - t0, 3),
            "websocket_s": round(at, 3),
            "polling_s": round(polled[e["id"]], 3) if e["id"] in polled else None,
        })
    emit({"probe": "streaming", "case": label, "command": command, "events": rows})


def streaming() -> None:
    streaming_one("small", "printf a; sleep 1; printf b")
    streaming_one(
        "over_1MiB_first",
        "head -c 1100000 /dev/zero | tr '\\0' a; sleep 1; printf b",
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--only", default="floor,latency,others,streaming")
    args = ap.parse_args()
    if not URL:
        fail("AGENT_SERVER_URL is not set")
    parts = [p for p in args.only.split(",") if p]
    for p in parts:
        if p not in ("floor", "latency", "others", "streaming"):
            fail(f"unknown probe {p!r}")
    if "floor" in parts:
        floor(args.n)
    if "others" in parts:
        others()
    if "streaming" in parts:
        streaming()
    if "latency" in parts:
        latency(args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
