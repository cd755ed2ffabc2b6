#!/usr/bin/env python3
"""A test server for the OpenHands runtime API (../shared/reference, section 3).

It provisions a *real* OpenHands agent server per runtime (scripts/agent-server-instance) and
serves each runtime's agent server in path mode under this same server, so a runtime API client
(APIRemoteWorkspace) can be tested end to end on loopback.

    python3 tests/servers/runtime_api/server.py --port 0 --api-key KEY --state-dir DIR
                                                 [--ready-file FILE] [--start-timeout 180]
                                                 [--max-runtimes 10] [--instance-cmd PATH]

Binds 127.0.0.1 only (port 0: the kernel's pick) and writes http://127.0.0.1:PORT to the ready
file once listening. Logs to stderr. Python 3.11 standard library only.

Runtime API (every request needs the header X-API-Key: KEY, else 401 {"detail": "Unauthorized"})
  POST /start          body per section 3.2; 422 with a FastAPI-style detail list when invalid.
                       Returns the runtime object at once (status "starting", pod_status
                       "pending"); an existing, not stopped runtime of the same session_id is
                       returned as it is. 429 when --max-runtimes runtimes are not stopped.
  GET  /sessions/{session_id}, GET /runtime/{runtime_id}      the runtime object, or 404
  GET  /sessions/batch?ids=a&ids=b                            list of runtime objects (unknown
                                                              ids are left out)
  GET  /list                                                  {"runtimes": [...]}
  POST /pause  {"runtime_id"}   freezes (SIGSTOP) every process of the runtime; status "paused",
                                pod_status "not found"; open proxied requests are cut.
  POST /resume {"runtime_id"}   SIGCONT; status "running"; pod_status "ready" once /health
                                answers (waits up to 10 s); a NEW session_api_key.
  POST /stop   {"runtime_id"}   SIGTERM (+SIGCONT), SIGKILL after 5 s or as soon as the agent
                                server closed its port; answers once every process of the
                                runtime is gone. status "stopped", pod_status "not found"; its
                                folders are removed (server.log is kept).
                 All three return the runtime object (200); unknown runtime -> 404; pause or
                 resume of a stopped/failed runtime -> 409; pause/resume are idempotent.
  GET  /_test/stats         {"validated", "rejected", "proxy_unauthorized", "requests": {...},
                             "rejections": [last 50], "runtimes": [{runtime_id, session_id,
                             status, pod_status}]}
  POST /_test/reset_stats   zeroes the counters.

Runtime object: runtime_id, session_id, url, session_api_key, status (running|paused|stopped|
starting|error), pod_status (pending|running|ready|not found|failed|crashloopbackoff|unknown),
restart_count, restart_reasons, container_statuses, events, pod_logs, image, resource_factor,
working_dir, plus workspace_dir (a host folder the agent server sees at the same path).
`command` may be a string or a list of strings (V0 sends a list); it, image, run_as_user,
fs_group, runtime_class and image_pull_policy are validated and echoed/recorded, not obeyed: the
runtime is always the pinned agent server, whose working directory is its own state folder (so a
command sent without cwd runs there). A stopped runtime stays visible (status "stopped") through
/sessions, /runtime and /list; a new /start of its session_id makes a new runtime. An agent server
that dies on its own turns its runtime to status "error", pod_status "failed".

Agent server proxy: url = http://127.0.0.1:PORT/rt/{runtime_id} (the reference's bare path mode,
/{runtime_id}/..., is served as well). Everything under it is forwarded to the runtime's agent
server, bodies streamed both ways. Paths under /api/ need X-Session-API-Key equal to the
runtime's current session_api_key (else 401); the proxy swaps it for the agent server's own key
and never forwards X-API-Key. Paused -> 503 {"detail": "runtime paused"}; stopped or unknown ->
404; no server process yet or failed -> 502. WebSocket upgrades -> 501.

Fault switches, in the environment of /start (removed before it reaches the agent server):
  RUNTIME_TEST_SLOW_PENDING=<seconds>  pod_status stays "pending" at least that long
  RUNTIME_TEST_CRASHLOOP=1             no server; after ~1 s pod_status "crashloopbackoff",
                                       status "error", restart_count 3, ["OOMKilled"], pod_logs
  RUNTIME_TEST_FAIL=1                  no server; pod_status "failed", status "error", pod_logs
  RUNTIME_TEST_WORKSPACE_DIR=<path>    use this host folder as the workspace (default: a fresh
                                       folder per runtime under the state dir)
  RUNTIME_TEST_503_WHILE_PAUSED        accepted; it is the behaviour anyway

SIGTERM/SIGINT stop every agent server this server launched before it exits.
"""

import argparse
import ctypes
import hmac
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO = Path(__file__).resolve().parents[3]
CHUNK = 256 * 1024
MAX_JSON_BODY = 1024 * 1024
UPSTREAM_TIMEOUT = 3600
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect", "content-length",
}
RUNTIME_ID_RE = re.compile(r"^[0-9a-f]{32}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def log(msg):
    sys.stderr.write("%s runtime-api: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ----------------------------------------------------------------------------------------------
# processes


def proc_stat(pid):
    """(state, ppid, pgid) of a process, or None when it does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def all_procs():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                out[int(name)] = st
    return out


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def running(pid):
    """PID exists and is not a zombie (zombies that are our children are reaped)."""
    if not pid:
        return False
    st = proc_stat(pid)
    if st is None:
        return False
    if st[0] == "Z":
        reap(pid)
        return False
    return True


def process_tree(leader):
    """The leader, its process group and every descendant (in the chroot mode the whole PID
    namespace descends from the leader)."""
    procs = all_procs()
    pids = {leader} if leader in procs else set()
    pids |= {p for p, st in procs.items() if st[2] == leader}
    children = {}
    for p, st in procs.items():
        children.setdefault(st[1], []).append(p)
    todo = list(pids)
    while todo:
        p = todo.pop()
        for c in children.get(p, ()):
            if c not in pids:
                pids.add(c)
                todo.append(c)
    return {p for p in pids if procs.get(p, ("Z",))[0] != "Z"}


def send_signal(pids, sig):
    denied = []
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            denied.append(str(p))
    if denied:  # the servers run as root through sudo when we are not root
        subprocess.run(["sudo", "-n", "kill", "-%d" % int(sig), *denied],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def freeze(leader):
    """SIGSTOP every process of the runtime; repeated until no new process shows up."""
    stopped = set()
    for _ in range(10):
        new = process_tree(leader) - stopped
        if not new:
            break
        send_signal(new, signal.SIGSTOP)
        stopped |= new
        time.sleep(0.05)


def thaw(leader):
    send_signal(process_tree(leader), signal.SIGCONT)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def kill_tree(leader, grace=5.0, port=None):
    """SIGTERM (and SIGCONT: it may be frozen), SIGKILL after GRACE seconds; returns once the
    leader and every process seen in its tree are gone. With PORT, SIGKILL comes as soon as
    the server has closed its listening socket: the agent server finishes its shutdown at once
    but then idles about 5 s in interpreter finalisation."""
    seen = process_tree(leader)
    if not seen:
        reap(leader)
        return True
    group = {p for p in seen if p == leader or (proc_stat(p) or ("", 0, 0))[2] == leader}
    send_signal(group or seen, signal.SIGTERM)
    send_signal(seen, signal.SIGCONT)
    deadline = time.monotonic() + grace
    closed = 0
    while time.monotonic() < deadline and running(leader):
        time.sleep(0.1)
        if port:
            closed = 0 if listening(port) else closed + 1
            if closed >= 3:
                break
    for _ in range(50):
        seen |= process_tree(leader)
        alive = {p for p in seen if running(p)}
        if not alive:
            return True
        send_signal(alive, signal.SIGKILL)
        time.sleep(0.1)
    return not any(running(p) for p in seen)


def free_port(exclude):
    for _ in range(20):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in exclude:
            return port
    raise RuntimeError("no free port")


def health(port, timeout=2.0):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return 200 <= resp.status < 300
    except (OSError, http.client.HTTPException):
        return False


def tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def remove_tree(path):
    if not os.path.lexists(path):
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        subprocess.run(["sudo", "-n", "rm", "-rf", "--", str(path)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def remove_empty_dirs(top):
    """rmdir (never rm -r) the empty folders under TOP: the mount points the chroot launcher
    made inside the trixie folder."""
    if not os.path.isdir(top) or os.path.islink(top):
        return
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# runtimes

FAULT_PREFIX = "RUNTIME_TEST_"


class Runtime:
    def __init__(self, mgr, req):
        self.mgr = mgr
        self.runtime_id = uuid.uuid4().hex
        self.session_id = req["session_id"]
        self.session_api_key = secrets.token_hex(24)
        self.internal_key = secrets.token_hex(24)
        self.image = req["image"]
        self.command = req["command"]
        self.working_dir = req.get("working_dir", "/")
        self.resource_factor = req.get("resource_factor", 1)
        env = req.get("environment") or {}
        self.faults = {k: v for k, v in env.items() if k.startswith(FAULT_PREFIX)}
        self.env = {k: v for k, v in env.items() if not k.startswith(FAULT_PREFIX)}
        self.dir = mgr.runtimes_dir / self.runtime_id
        wsdir = self.faults.get("RUNTIME_TEST_WORKSPACE_DIR")
        self.own_workspace = not wsdir
        self.workspace_dir = Path(wsdir) if wsdir else self.dir / "workspace"
        self.status = "starting"
        self.pod_status = "pending"
        self.restart_count = 0
        self.restart_reasons = []
        self.container_statuses = []
        self.events = []
        self.pod_logs = ""
        self.pid = None
        self.port = None
        self.created = time.time()
        self.op_lock = threading.RLock()  # start/pause/resume/stop of this runtime
        self.active = set()  # upstream sockets of requests being proxied
        self.active_lock = threading.Lock()
        self.event("Scheduled", "assigned to the test server")

    # all under mgr.lock
    def event(self, reason, message):
        self.events.append({"type": "Normal", "reason": reason, "message": message,
                            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        del self.events[:-20]

    def set_container(self, ready, state):
        self.container_statuses = [{"name": "agent-server", "image": self.image, "ready": ready,
                                    "restart_count": self.restart_count, "state": state}]

    def to_json(self):
        return {
            "runtime_id": self.runtime_id,
            "session_id": self.session_id,
            "url": "%s/rt/%s" % (self.mgr.base_url, self.runtime_id),
            "session_api_key": self.session_api_key,
            "status": self.status,
            "pod_status": self.pod_status,
            "restart_count": self.restart_count,
            "restart_reasons": list(self.restart_reasons),
            "container_statuses": [dict(c) for c in self.container_statuses],
            "events": [dict(e) for e in self.events],
            "pod_logs": self.pod_logs,
            "image": self.image,
            "resource_factor": self.resource_factor,
            "working_dir": self.working_dir,
            "workspace_dir": str(self.workspace_dir),
        }

    def cut_connections(self):
        with self.active_lock:
            socks = list(self.active)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Manager:
    def __init__(self, args):
        self.args = args
        self.state_dir = Path(args.state_dir).resolve()
        self.runtimes_dir = self.state_dir / "runtimes"
        self.instance_cmd = args.instance_cmd
        self.trixie_root = os.environ.get("WORKSPACE_TRIXIE_ROOT", "/opt/workspace-trixie")
        self.lock = threading.Lock()
        self.runtimes = {}  # runtime_id -> Runtime
        self.base_url = ""
        self.closing = threading.Event()
        self.stats_lock = threading.Lock()
        self.reset_stats()
        self.popen_lock = threading.Lock()  # Popen + registration, against the reaper
        self.popen_pids = set()

    # ---- stats
    def reset_stats(self):
        with self.stats_lock:
            self.validated = 0
            self.rejected = 0
            self.proxy_unauthorized = 0
            self.requests = {}
            self.rejections = []

    def count(self, route, ok, reason=None):
        with self.stats_lock:
            self.requests[route] = self.requests.get(route, 0) + 1
            if ok:
                self.validated += 1
            else:
                self.rejected += 1
                self.rejections.append({"route": route, "reason": reason})
                del self.rejections[:-50]

    def stats(self):
        with self.lock:
            rts = [{"runtime_id": r.runtime_id, "session_id": r.session_id, "status": r.status,
                    "pod_status": r.pod_status} for r in self.runtimes.values()]
        with self.stats_lock:
            return {"validated": self.validated, "rejected": self.rejected,
                    "proxy_unauthorized": self.proxy_unauthorized,
                    "requests": dict(self.requests), "rejections": list(self.rejections),
                    "runtimes": rts}

    # ---- lookups
    def get(self, runtime_id):
        with self.lock:
            return self.runtimes.get(runtime_id)

    def by_session(self, session_id):
        """The newest runtime of the session (a stopped one when no other exists)."""
        with self.lock:
            found = [r for r in self.runtimes.values() if r.session_id == session_id]
        if not found:
            return None
        live = [r for r in found if r.status != "stopped"]
        return max(live or found, key=lambda r: r.created)

    def snapshot(self, rt):
        with self.lock:
            return rt.to_json()

    # ---- lifecycle
    def start(self, req):
        """(http status, body)."""
        with self.lock:
            for r in self.runtimes.values():
                if r.session_id == req["session_id"] and r.status != "stopped":
                    return 200, r.to_json()
            live = sum(1 for r in self.runtimes.values() if r.status != "stopped")
            if live >= self.args.max_runtimes:
                return 429, {"detail": "too many runtimes (%d)" % live}
            rt = Runtime(self, req)
            self.runtimes[rt.runtime_id] = rt
            body = rt.to_json()
        log("runtime %s (session %s) starting" % (rt.runtime_id, rt.session_id))
        threading.Thread(target=self._boot, args=(rt,), name="boot-" + rt.runtime_id[:8],
                         daemon=True).start()
        return 200, body

    def _sleep(self, rt, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if rt.status == "stopped" or self.closing.is_set():
                return False
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        return rt.status != "stopped"

    def _fail(self, rt, pod_status, logs, reason):
        with self.lock:
            if rt.status == "stopped":
                return
            rt.status = "error"
            rt.pod_status = pod_status
            rt.pod_logs = logs
            rt.set_container(False, {"terminated": {"reason": reason}})
            rt.event(reason, "the runtime failed: %s" % pod_status)
        log("runtime %s: %s" % (rt.runtime_id, pod_status))

    def _boot(self, rt):
        try:
            self._boot_inner(rt)
        except Exception as e:  # noqa: BLE001 - a test server reports, it does not crash
            log("runtime %s: boot error %r" % (rt.runtime_id, e))
            self._fail(rt, "failed", "test server error while starting: %r\n" % (e,), "Error")

    def _boot_inner(self, rt):
        t0 = time.monotonic()
        try:
            slow = float(rt.faults.get("RUNTIME_TEST_SLOW_PENDING", "0") or 0)
        except ValueError:
            slow = 0.0
        if rt.faults.get("RUNTIME_TEST_CRASHLOOP", "") not in ("", "0"):
            if not self._sleep(rt, 1.0):
                return
            with self.lock:
                rt.restart_count = 3
                rt.restart_reasons = ["OOMKilled"]
            self._fail(rt, "crashloopbackoff",
                       "agent-server: starting\nagent-server: loading tools\n"
                       "Killed (out of memory: container limit reached)\n", "OOMKilled")
            return
        if rt.faults.get("RUNTIME_TEST_FAIL", "") not in ("", "0"):
            if not self._sleep(rt, 0.5):
                return
            self._fail(rt, "failed", "agent-server: starting\nError: cannot start the agent "
                       "server (RUNTIME_TEST_FAIL)\n", "Error")
            return

        rt.dir.mkdir(parents=True, exist_ok=True)
        rt.workspace_dir.mkdir(parents=True, exist_ok=True)
        logfile = rt.dir / "server.log"
        for attempt in range(3):
            with rt.op_lock:
                if rt.status == "stopped" or self.closing.is_set():
                    return
                with self.lock:
                    used = {r.port for r in self.runtimes.values() if r.port}
                port = free_port(used)
                pid = self._spawn(rt, port)
                with self.lock:
                    rt.pid, rt.port = pid, port
                    rt.event("Started", "agent server process %d on port %d" % (pid, port))
            if pid is None:
                self._fail(rt, "failed", tail(logfile) or "the agent server did not spawn\n",
                           "Error")
                return
            deadline = t0 + slow + self.args.start_timeout
            while True:
                if rt.status in ("stopped", "error") or self.closing.is_set():
                    return
                elapsed = time.monotonic() - t0
                if elapsed >= slow and rt.pod_status == "pending":
                    with self.lock:
                        if rt.status == "starting":
                            rt.pod_status = "running"
                            rt.set_container(False, {"running": {}})
                if rt.status == "paused":
                    time.sleep(0.2)
                    continue
                if elapsed >= slow and health(port):
                    with self.lock:
                        if rt.status == "starting":
                            rt.status = "running"
                            rt.pod_status = "ready"
                            rt.set_container(True, {"running": {}})
                            rt.event("Ready", "agent server answers /health")
                    log("runtime %s ready at port %d after %.1f s" %
                        (rt.runtime_id, port, time.monotonic() - t0))
                    return
                if not running(pid):
                    text = tail(logfile)
                    if "address already in use" in text.lower() and attempt < 2:
                        log("runtime %s: port %d taken, retrying" % (rt.runtime_id, port))
                        break
                    self._fail(rt, "failed", text or "the agent server exited\n", "Error")
                    return
                if time.monotonic() > deadline:
                    text = tail(logfile)
                    kill_tree(pid)
                    self._fail(rt, "failed", text + "\n(test server: no /health within %g s)\n"
                               % self.args.start_timeout, "Timeout")
                    return
                time.sleep(0.25)

    def _spawn(self, rt, port):
        cmd = [self.instance_cmd, "start", str(port), rt.internal_key, str(rt.workspace_dir),
               str(rt.dir)] + ["%s=%s" % kv for kv in sorted(rt.env.items())]
        errlog = open(rt.dir / "launcher.log", "ab")
        try:
            with self.popen_lock:
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=errlog)
                self.popen_pids.add(p.pid)
            try:
                out, _ = p.communicate(timeout=1800)
            finally:
                with self.popen_lock:
                    self.popen_pids.discard(p.pid)
        finally:
            errlog.close()
        text = out.decode("ascii", "replace").strip()
        if p.returncode != 0 or not text.splitlines() or not text.splitlines()[-1].isdigit():
            log("runtime %s: launcher failed (rc %s); see %s/launcher.log" %
                (rt.runtime_id, p.returncode, rt.dir))
            with open(rt.dir / "server.log", "ab") as f:
                f.write(tail(rt.dir / "launcher.log").encode())
            return None
        return int(text.splitlines()[-1])

    def pause(self, rt):
        with rt.op_lock:
            with self.lock:
                if rt.status == "paused":
                    return 200, rt.to_json()
                if rt.status != "running" or not rt.pid:
                    return 409, {"detail": "runtime %s is %s" % (rt.runtime_id, rt.status)}
                rt.status = "paused"
                rt.pod_status = "not found"
                rt.container_statuses = []
                rt.event("Paused", "scaled to zero")
            freeze(rt.pid)
            rt.cut_connections()
            log("runtime %s paused" % rt.runtime_id)
            return 200, self.snapshot(rt)

    def resume(self, rt):
        with rt.op_lock:
            with self.lock:
                if rt.status == "running":
                    return 200, rt.to_json()
                if rt.status != "paused":
                    return 409, {"detail": "runtime %s is %s" % (rt.runtime_id, rt.status)}
                rt.session_api_key = secrets.token_hex(24)
                rt.pod_status = "pending"
            thaw(rt.pid)
            deadline = time.monotonic() + 10
            ok = health(rt.port)
            while not ok and time.monotonic() < deadline and running(rt.pid):
                time.sleep(0.1)
                ok = health(rt.port)
            with self.lock:
                rt.status = "running"
                rt.pod_status = "ready" if ok else "running"
                rt.set_container(ok, {"running": {}})
                rt.event("Resumed", "new session_api_key issued")
            log("runtime %s resumed" % rt.runtime_id)
            return 200, self.snapshot(rt)

    def stop(self, rt):
        with rt.op_lock:
            with self.lock:
                if rt.status == "stopped":
                    return 200, rt.to_json()
                rt.status = "stopped"
                rt.pod_status = "not found"
                rt.container_statuses = []
                rt.event("Stopped", "deleted")
                pid = rt.pid
            rt.cut_connections()
            if pid:
                if not kill_tree(pid, port=rt.port):
                    log("runtime %s: some processes did not die" % rt.runtime_id)
            remove_tree(rt.dir / "server")
            if rt.own_workspace:
                remove_tree(rt.workspace_dir)
            root = self.trixie_root
            if root and os.path.isdir(root):
                remove_empty_dirs(root + str(rt.dir))
                if not rt.own_workspace:
                    remove_empty_dirs(root + str(rt.workspace_dir))
            log("runtime %s stopped" % rt.runtime_id)
            return 200, self.snapshot(rt)

    def stop_all(self):
        with self.lock:
            rts = [r for r in self.runtimes.values() if r.status != "stopped"]
        threads = [threading.Thread(target=self.stop, args=(r,)) for r in rts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # ---- housekeeping
    def clean_stale(self):
        """Stops servers a previous run in the same state dir left behind, then empties it."""
        if self.runtimes_dir.is_dir():
            for d in self.runtimes_dir.iterdir():
                try:
                    pid = int((d / "server.pid").read_text().strip())
                except (OSError, ValueError):
                    continue
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        cmdline = f.read()
                except OSError:
                    continue
                if b"agent_server" in cmdline or b"unshare" in cmdline:
                    log("stopping a server left behind by an earlier run (pid %d)" % pid)
                    kill_tree(pid)
            remove_tree(self.runtimes_dir)
        self.runtimes_dir.mkdir(parents=True, exist_ok=True)

    def watch(self):
        """Reaps orphans handed to us (we are a child subreaper), notices agent servers that
        died on their own, and marks resumed runtimes ready."""
        me = os.getpid()
        while not self.closing.wait(0.5):
            with self.popen_lock:
                for pid, st in all_procs().items():
                    if st[1] == me and st[0] == "Z" and pid not in self.popen_pids:
                        reap(pid)
            with self.lock:
                rts = [r for r in self.runtimes.values() if r.status == "running" and r.pid]
            for rt in rts:
                if not running(rt.pid):
                    with rt.op_lock:
                        if rt.status == "running":
                            self._fail(rt, "failed", tail(rt.dir / "server.log") +
                                       "\n(test server: the agent server exited)\n", "Error")
                elif rt.pod_status == "running" and health(rt.port):
                    with self.lock:
                        if rt.status == "running":
                            rt.pod_status = "ready"
                            rt.set_container(True, {"running": {}})


# ----------------------------------------------------------------------------------------------
# request validation (FastAPI/pydantic-style errors)

START_FIELDS = {"image", "command", "working_dir", "environment", "session_id", "run_as_user",
                "run_as_group", "fs_group", "image_pull_policy", "runtime_class",
                "resource_factor"}


def _err(kind, loc, msg, value):
    return {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def validate_start(body):
    errs = []
    if not isinstance(body, dict):
        return [_err("model_attributes_type", [], "Input should be a valid dictionary or object "
                     "to extract fields from", body)]
    for f in ("image", "session_id"):
        if f not in body:
            errs.append(_err("missing", [f], "Field required", body))
        elif not isinstance(body[f], str):
            errs.append(_err("string_type", [f], "Input should be a valid string", body[f]))
        elif not body[f]:
            errs.append(_err("string_too_short", [f], "String should have at least 1 character",
                             body[f]))
    if "command" not in body:
        errs.append(_err("missing", ["command"], "Field required", body))
    else:
        c = body["command"]
        if isinstance(c, list):  # V0 sends the command as a list of strings
            if not c or not all(isinstance(x, str) for x in c):
                errs.append(_err("string_type", ["command"], "Input should be a valid string or "
                                 "a non-empty list of strings", c))
        elif not isinstance(c, str) or not c:
            errs.append(_err("string_type", ["command"], "Input should be a valid string", c))
    if "working_dir" in body and not isinstance(body["working_dir"], str):
        errs.append(_err("string_type", ["working_dir"], "Input should be a valid string",
                         body["working_dir"]))
    if "runtime_class" in body and not (body["runtime_class"] is None or
                                        isinstance(body["runtime_class"], str)):
        errs.append(_err("string_type", ["runtime_class"], "Input should be a valid string",
                         body["runtime_class"]))
    for f in ("run_as_user", "run_as_group", "fs_group"):
        if f in body and not (_is_int(body[f]) and body[f] >= 0):
            errs.append(_err("int_type", [f], "Input should be a valid non-negative integer",
                             body[f]))
    if "image_pull_policy" in body and body["image_pull_policy"] not in (
            "Always", "IfNotPresent", "Never"):
        errs.append(_err("literal_error", ["image_pull_policy"],
                         "Input should be 'Always', 'IfNotPresent' or 'Never'",
                         body["image_pull_policy"]))
    if "resource_factor" in body and not (_is_int(body["resource_factor"]) and
                                          body["resource_factor"] in (1, 2, 4, 8)):
        errs.append(_err("literal_error", ["resource_factor"], "Input should be 1, 2, 4 or 8",
                         body["resource_factor"]))
    if "environment" in body:
        env = body["environment"]
        if not isinstance(env, dict):
            errs.append(_err("dict_type", ["environment"], "Input should be a valid dictionary",
                             env))
        else:
            for k, v in env.items():
                if not ENV_NAME_RE.match(k):
                    errs.append(_err("value_error", ["environment", k],
                                     "Value error, not a valid environment variable name", k))
                elif not isinstance(v, str):
                    errs.append(_err("string_type", ["environment", k],
                                     "Input should be a valid string", v))
                elif "\0" in v:
                    errs.append(_err("value_error", ["environment", k],
                                     "Value error, NUL in value", v))
    for k in body:
        if k not in START_FIELDS:
            errs.append(_err("extra_forbidden", [k], "Extra inputs are not permitted", body[k]))
    return errs


def validate_runtime_ref(body):
    if not isinstance(body, dict):
        return [_err("model_attributes_type", [], "Input should be a valid dictionary or object "
                     "to extract fields from", body)]
    errs = []
    if "runtime_id" not in body:
        errs.append(_err("missing", ["runtime_id"], "Field required", body))
    elif not isinstance(body["runtime_id"], str):
        errs.append(_err("string_type", ["runtime_id"], "Input should be a valid string",
                         body["runtime_id"]))
    for k in body:
        if k != "runtime_id":
            errs.append(_err("extra_forbidden", [k], "Extra inputs are not permitted", body[k]))
    return errs


# ----------------------------------------------------------------------------------------------
# HTTP


class BodyError(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runtime-api-test-server"
    sys_version = ""
    timeout = 600
    mgr = None  # set in main

    # ---- plumbing
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log("%s %s" % (self.address_string(), format % args))

    def parse_request(self):
        self._need_continue = False
        return super().parse_request()

    def handle_expect_100(self):
        self._need_continue = True  # sent only once we decide to read the body
        return True

    def _send_continue(self):
        if getattr(self, "_need_continue", False):
            self._need_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _has_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te:
            return True
        return int(self.headers.get("Content-Length", "0") or 0) > 0

    def _body_chunks(self):
        """The request body, de-chunked, in pieces of at most CHUNK bytes."""
        self._body_read = True
        te = self.headers.get("Transfer-Encoding", "").lower()
        if te:
            if te.split(",")[-1].strip() != "chunked":
                raise BodyError("unsupported transfer-encoding")
            self._send_continue()
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise BodyError("bad chunk header")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError as e:
                    raise BodyError("bad chunk size") from e
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            return
                while size > 0:
                    data = self.rfile.read(min(size, CHUNK))
                    if not data:
                        raise BodyError("truncated chunk")
                    size -= len(data)
                    yield data
                if self.rfile.readline(16) not in (b"\r\n", b"\n"):
                    raise BodyError("bad chunk trailer")
        cl = self.headers.get("Content-Length")
        if cl is None:
            return
        try:
            left = int(cl)
        except ValueError as e:
            raise BodyError("bad content-length") from e
        if left < 0:
            raise BodyError("bad content-length")
        if left:
            self._send_continue()
        while left > 0:
            data = self.rfile.read(min(left, CHUNK))
            if not data:
                raise BodyError("truncated body")
            left -= len(data)
            yield data

    def _finish_unread_body(self):
        """Before answering without reading the body: drain a small one, else close."""
        if getattr(self, "_body_read", False) or not self._has_body():
            return
        cl = self.headers.get("Content-Length")
        if (not self.headers.get("Transfer-Encoding") and cl and cl.isdigit() and
                int(cl) <= 65536 and not getattr(self, "_need_continue", False)):
            try:
                for _ in self._body_chunks():
                    pass
                return
            except (BodyError, OSError):
                pass
        self.close_connection = True

    def send_json(self, status, obj, headers=()):
        self._finish_unread_body()
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_json(self):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        raw = bytearray()
        for data in self._body_chunks():
            raw += data
            if len(raw) > MAX_JSON_BODY:
                raise BodyError("body too large")
        if not (ctype == "application/json" or ctype.endswith("+json")):
            raise ValueError([_err("model_attributes_type", [], "Input should be a valid "
                                   "dictionary or object to extract fields from (Content-Type "
                                   "%r is not JSON)" % ctype, raw.decode("utf-8", "replace"))])
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError([{"type": "json_invalid", "loc": ["body", getattr(e, "pos", 0)],
                               "msg": "JSON decode error", "input": {},
                               "ctx": {"error": str(e)}}]) from e

    # ---- dispatch
    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_OPTIONS(self):
        self._dispatch()

    def _dispatch(self):
        self._body_read = False
        try:
            target = self.path
            path = target.split("?", 1)[0]
            parts = path.split("/")
            # /rt/{runtime_id}/... and /{runtime_id}/... are the agent servers
            if len(parts) >= 3 and parts[1] == "rt" and RUNTIME_ID_RE.match(parts[2]):
                return self._proxy(parts[2], target[len("/rt/") + 32:])
            if len(parts) >= 2 and RUNTIME_ID_RE.match(parts[1]):
                return self._proxy(parts[1], target[1 + 32:])
            self._api(target)
        except BodyError as e:
            self.mgr.count("%s %s" % (self.command, self.path.split("?")[0]), False, str(e))
            self.close_connection = True
            self.send_json(400, {"detail": "bad request body: %s" % e})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _api(self, target):
        mgr = self.mgr
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        route = "%s %s" % (self.command, path)
        if not hmac.compare_digest(self.headers.get("X-API-Key", "").encode(),
                                   mgr.args.api_key.encode()):
            mgr.count(route, False, "unauthorized")
            return self.send_json(401, {"detail": "Unauthorized"})
        seg = [unquote(x) for x in path.split("/")[1:]]
        m = self.command

        def reject(status, detail, reason):
            mgr.count(route, False, reason)
            return self.send_json(status, {"detail": detail})

        routes_get = {"sessions", "runtime", "list", "_test"}
        routes_post = {"start", "pause", "resume", "stop", "_test"}
        if m == "GET" and len(seg) == 2 and seg[0] == "sessions" and seg[1] == "batch":
            ids = parse_qs(url.query).get("ids", [])
            mgr.count("GET /sessions/batch", True)
            out = []
            for sid in ids:
                rt = mgr.by_session(sid)
                if rt:
                    out.append(mgr.snapshot(rt))
            return self.send_json(200, out)
        if m == "GET" and len(seg) == 2 and seg[0] == "sessions":
            mgr.count("GET /sessions/{id}", True)
            rt = mgr.by_session(seg[1])
            if not rt:
                return self.send_json(404, {"detail": "Session %s not found" % seg[1]})
            return self.send_json(200, mgr.snapshot(rt))
        if m == "GET" and len(seg) == 2 and seg[0] == "runtime":
            mgr.count("GET /runtime/{id}", True)
            rt = mgr.get(seg[1])
            if not rt:
                return self.send_json(404, {"detail": "Runtime %s not found" % seg[1]})
            return self.send_json(200, mgr.snapshot(rt))
        if m == "GET" and seg == ["list"]:
            mgr.count(route, True)
            with mgr.lock:
                rts = [r.to_json() for r in mgr.runtimes.values()]
            return self.send_json(200, {"runtimes": rts})
        if m == "GET" and seg == ["_test", "stats"]:
            return self.send_json(200, mgr.stats())
        if m == "POST" and seg == ["_test", "reset_stats"]:
            self._finish_unread_body()
            mgr.reset_stats()
            return self.send_json(200, {"status": "ok"})
        if m == "POST" and len(seg) == 1 and seg[0] in ("start", "pause", "resume", "stop"):
            try:
                body = self._read_json()
            except ValueError as e:
                return self._reject_422(route, e.args[0])
            if seg[0] == "start":
                errs = validate_start(body)
                if errs:
                    return self._reject_422(route, errs)
                mgr.count(route, True)
                status, obj = mgr.start(body)
                return self.send_json(status, obj)
            errs = validate_runtime_ref(body)
            if errs:
                return self._reject_422(route, errs)
            mgr.count(route, True)
            rt = mgr.get(body["runtime_id"])
            if not rt:
                return self.send_json(404, {"detail": "Runtime %s not found" % body["runtime_id"]})
            status, obj = getattr(mgr, seg[0])(rt)
            return self.send_json(status, obj)
        if seg and (seg[0] in routes_get or seg[0] in routes_post):
            return reject(405, "Method Not Allowed", "method not allowed")
        return reject(404, "Not Found", "no such endpoint")

    def _reject_422(self, route, errs):
        self.mgr.count(route, False, "validation: " + "; ".join(
            "%s %s" % ("/".join(str(x) for x in e["loc"]), e["msg"]) for e in errs))
        return self.send_json(422, {"detail": errs})

    # ---- the agent-server proxy
    def _proxy(self, runtime_id, rest):
        mgr = self.mgr
        if not rest.startswith("/"):
            rest = "/" + rest
        rt = mgr.get(runtime_id)
        if rt is None or rt.status == "stopped":
            return self.send_json(404, {"detail": "Runtime %s not found" % runtime_id})
        if rt.status == "paused":
            return self.send_json(503, {"detail": "runtime paused"})
        if self.headers.get("Upgrade"):
            return self.send_json(501, {"detail": "upgrades (websockets) are not proxied by "
                                                  "the test runtime API"})
        rpath = rest.split("?", 1)[0]
        given = self.headers.get("X-Session-API-Key")
        with mgr.lock:
            key_ok = given is not None and hmac.compare_digest(
                given.encode(), rt.session_api_key.encode())
            port = rt.port
            internal = rt.internal_key
            status = rt.status
        if (rpath == "/api" or rpath.startswith("/api/")) and not key_ok:
            with mgr.stats_lock:
                mgr.proxy_unauthorized += 1
            return self.send_json(401, {"detail": "Unauthorized"})
        if not port or status == "error":
            return self.send_json(502, {"detail": "runtime %s is not reachable (%s)" %
                                        (runtime_id, status)})

        conn_tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        headers = []
        for k, v in self.headers.items():
            lk = k.lower()
            if lk in HOP_BY_HOP or lk in conn_tokens or lk in ("x-session-api-key", "x-api-key"):
                continue
            headers.append((k, v))
        if key_ok:
            headers.append(("X-Session-API-Key", internal))
        chunked = bool(self.headers.get("Transfer-Encoding"))
        cl = self.headers.get("Content-Length")
        if cl is not None and (not cl.isdigit()):
            raise BodyError("bad content-length")

        upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=UPSTREAM_TIMEOUT)
        sent_head = False
        try:
            try:
                upstream.connect()
            except OSError as e:
                return self.send_json(502, {"detail": "runtime %s is not reachable: %s" %
                                            (runtime_id, e)})
            with rt.active_lock:
                rt.active.add(upstream.sock)
            if rt.status == "paused":  # paused while we connected
                return self.send_json(503, {"detail": "runtime paused"})
            try:
                upstream.putrequest(self.command, rest, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    upstream.putheader(k, v)
                if chunked:
                    upstream.putheader("Transfer-Encoding", "chunked")
                elif cl is not None:
                    upstream.putheader("Content-Length", cl)
                upstream.endheaders()
                if chunked:
                    for data in self._body_chunks():
                        upstream.send(b"%x\r\n%s\r\n" % (len(data), data))
                    upstream.send(b"0\r\n\r\n")
                elif cl is not None:
                    for data in self._body_chunks():
                        upstream.send(data)
                resp = upstream.getresponse()
            except BodyError:
                raise
            except (OSError, http.client.HTTPException) as e:
                if not self._body_read and self._has_body():
                    self.close_connection = True
                if rt.status == "paused":
                    return self.send_json(503, {"detail": "runtime paused"})
                if rt.status == "stopped":
                    return self.send_json(404, {"detail": "Runtime %s not found" % runtime_id})
                return self.send_json(502, {"detail": "runtime %s: upstream error: %s" %
                                            (runtime_id, e)})

            no_body = (self.command == "HEAD" or resp.status in (204, 304) or
                       100 <= resp.status < 200)
            length = None if resp.chunked else resp.getheader("Content-Length")
            resp_conn = {t.strip().lower() for t in (resp.getheader("Connection") or "").split(",")}
            self.send_response_only(resp.status, resp.reason)
            for k, v in resp.getheaders():
                lk = k.lower()
                if lk in HOP_BY_HOP or lk in resp_conn:
                    continue
                self.send_header(k, v)
            use_chunks = False
            if no_body:
                if length is not None:
                    self.send_header("Content-Length", length)
            elif length is not None:
                self.send_header("Content-Length", length)
            elif self.request_version == "HTTP/1.1":
                self.send_header("Transfer-Encoding", "chunked")
                use_chunks = True
            else:
                self.close_connection = True
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            sent_head = True
            self.log_request(resp.status)
            if no_body:
                return
            want = int(length) if length is not None and length.isdigit() else None
            got = 0
            while True:
                data = resp.read1(CHUNK)
                if not data:
                    break
                got += len(data)
                if use_chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
            if use_chunks:
                self.wfile.write(b"0\r\n\r\n")
            if want is not None and got != want:
                self.close_connection = True  # upstream cut the body short
        except (OSError, http.client.HTTPException) as e:
            self.close_connection = True
            if not sent_head:
                try:
                    self.send_json(502, {"detail": "runtime %s: upstream error: %s" %
                                         (runtime_id, e)})
                except OSError:
                    pass
        finally:
            with rt.active_lock:
                rt.active.discard(upstream.sock)
            upstream.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--start-timeout", type=float, default=180.0,
                    help="seconds an agent server may take to answer /health")
    ap.add_argument("--max-runtimes", type=int, default=10)
    ap.add_argument("--instance-cmd", default=str(REPO / "scripts" / "agent-server-instance"))
    args = ap.parse_args()

    # Orphans of the launcher (the agent servers' process group leaders) become our children,
    # so they are reaped here instead of lingering as zombies of a PID 1 that does not reap.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass

    mgr = Manager(args)
    mgr.state_dir.mkdir(parents=True, exist_ok=True)
    mgr.clean_stale()
    Handler.mgr = mgr
    httpd = Server(("127.0.0.1", args.port), Handler)
    port = httpd.server_address[1]
    mgr.base_url = "http://127.0.0.1:%d" % port

    stop = threading.Event()

    def on_signal(signum, _frame):
        log("signal %d: shutting down" % signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                               daemon=True)
    serving.start()
    watcher = threading.Thread(target=mgr.watch, daemon=True)
    watcher.start()
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(mgr.base_url + "\n")
        os.replace(tmp, args.ready_file)
    log("listening on %s (state %s, pid %d)" % (mgr.base_url, mgr.state_dir, os.getpid()))
    try:
        while not stop.wait(0.5):
            pass
    finally:
        mgr.closing.set()
        httpd.shutdown()
        mgr.stop_all()
        httpd.server_close()
        for pid in list(all_procs()):
            if proc_stat(pid) and proc_stat(pid)[1] == os.getpid():
                reap(pid)
        if args.ready_file:
            try:
                os.unlink(args.ready_file)
            except OSError:
                pass
        log("stopped")


if __name__ == "__main__":
    main()
