#!/usr/bin/env python3
"""A local stand-in for the Daytona service, for DaytonaWorkspace's tests.

    python tests/servers/daytona/server.py --port 0 --api-key KEY [--expired-key KEY2] \
        --ready-file FILE [options]

It serves the REST API under http://127.0.0.1:PORT/api (the value for DAYTONA_API_URL) and the
toolbox under http://127.0.0.1:PORT/toolbox/{sandboxId}/... (every sandbox's toolboxProxyUrl is
http://127.0.0.1:PORT/toolbox, as the real proxy's is https://proxy.app.daytona.io/toolbox).
Every request is validated against the official specs (openapi_validator.py); sandboxes are
containers on the real Docker daemon (DOCKER_HOST, a unix:// socket) and commands and file
operations run in them for real. See README.md beside this file for the endpoints, the fault
switches (sandbox labels test.daytona/...) and the test endpoints under /_test.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import signal
import stat as stat_mod
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from docker_engine import Docker, DockerError, ExecStream  # noqa: E402
from httpio import BodyError, BodyReader, MultipartError, MultipartReader, parse_header_params  # noqa: E402
from openapi_validator import Spec, ValidationFailure  # noqa: E402

LABEL = "workspace.test.daytona-server"          # value: the server instance id
LABEL_PID = "workspace.test.daytona-server.pid"  # value: the server's pid (for orphan reaping)
LABEL_SANDBOX = "workspace.test.daytona-server.sandbox"
DAEMON_DIR = "/var/lib/daytona-test-daemon"      # bind mount: session logs, exit codes, pid files
DEFAULT_IMAGE = "workspace-test-daytona:latest"
ORG_ID = "00000000-0000-4000-8000-0000000000aa"
DAEMON_VERSION = "0.190.0"
STDOUT_PREFIX = b"\x01\x01\x01"
STDERR_PREFIX = b"\x02\x02\x02"
FAULT = "test.daytona/"
MAX_JSON_BODY = 32 << 20
TRANSITIONAL = {"creating", "starting", "stopping", "destroying", "pending_build",
                "building_snapshot", "restoring", "pulling_snapshot"}


def log(msg: str) -> None:
    sys.stderr.write("[daytona-test-server %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def now_iso() -> str:
    t = dt.datetime.now(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def go_mode_string(mode: int) -> str:
    """Go's os.FileMode.String() for a raw st_mode."""
    letters = ""
    fmt = stat_mod.S_IFMT(mode)
    if fmt == stat_mod.S_IFDIR:
        letters += "d"
    if fmt == stat_mod.S_IFLNK:
        letters += "L"
    if fmt in (stat_mod.S_IFBLK, stat_mod.S_IFCHR):
        letters += "D"
    if fmt == stat_mod.S_IFIFO:
        letters += "p"
    if fmt == stat_mod.S_IFSOCK:
        letters += "S"
    if mode & stat_mod.S_ISUID:
        letters += "u"
    if mode & stat_mod.S_ISGID:
        letters += "g"
    if fmt == stat_mod.S_IFCHR:
        letters += "c"
    if mode & stat_mod.S_ISVTX:
        letters += "t"
    if not letters:
        letters = "-"
    perm = ""
    for i, c in enumerate("rwxrwxrwx"):
        perm += c if mode & (1 << (8 - i)) else "-"
    return letters + perm


def shq(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


# --------------------------------------------------------------------------------------------
# Counters


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.validated = 0
            self.rejected = 0
            self.unauthorized = 0
            self.rejections: list[str] = []
            self.response_checked = 0
            self.response_violations: list[str] = []
            self.aborted = 0  # requests whose client closed the connection mid-body
            self.requests = 0

    def add_rejection(self, reason: str):
        with self.lock:
            self.rejected += 1
            if len(self.rejections) < 500:
                self.rejections.append(reason)


# --------------------------------------------------------------------------------------------
# Model


class Session:
    def __init__(self, sid: str, host_dir: str):
        self.id = sid
        self.host_dir = host_dir
        self.stream: ExecStream | None = None
        self.exec_id: str | None = None
        self.commands: dict[str, dict] = {}   # id -> {"id","command","exitCode"?}
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.alive = True


class Sandbox:
    def __init__(self, sid: str):
        self.id = sid
        self.name = sid
        self.snapshot: str | None = None
        self.user = "daytona"
        self.env: dict = {}
        self.labels: dict = {}
        self.public = False
        self.network_block_all = False
        self.network_allow_list: str | None = None
        self.domain_allow_list: str | None = None
        self.target = "us"
        self.cpu = 1
        self.gpu = 0
        self.memory = 1
        self.disk = 3
        self.auto_stop = 15
        self.auto_archive = 10080
        self.auto_delete = -1
        self.state = "creating"
        self.desired = "started"
        self.error_reason: str | None = None
        self.recoverable: bool | None = None
        self.build_info: dict | None = None
        self.created_at = now_iso()
        self.updated_at = self.created_at
        self.last_activity = self.created_at
        self.container_id: str | None = None
        self.faults: dict = {}
        self.toolbox_502_left = 0
        self.conflict_409_left = 0
        self.sessions: dict[str, Session] = {}
        self.busy = False             # a lifecycle worker runs
        self.purged = False
        self.host_dir = ""

    @property
    def home(self) -> str:
        return "/root" if self.user == "root" else "/home/" + self.user

    @property
    def workdir(self) -> str:
        return self.home


# --------------------------------------------------------------------------------------------
# The server


class App:
    def __init__(self, args, spec: Spec, docker: Docker):
        self.args = args
        self.spec = spec
        self.docker = docker
        self.stats = Stats()
        self.lock = threading.RLock()
        self.cv = threading.Condition(self.lock)
        self.sandboxes: dict[str, Sandbox] = {}
        self.instance = uuid.uuid4().hex[:12]
        self.base_url = ""
        self.list_shape = args.list_shape
        parent = args.state_dir or tempfile.gettempdir()
        os.makedirs(parent, exist_ok=True)
        # State folders of earlier servers that are gone (named daytona-test-server-PID-...).
        for entry in os.listdir(parent):
            m = re.match(r"^daytona-test-server-(\d+)-", entry)
            if m and not os.path.exists("/proc/%s" % m.group(1)):
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
        self.state_dir = tempfile.mkdtemp(prefix="daytona-test-server-%d-%s-" % (os.getpid(), self.instance),
                                          dir=parent)
        os.chmod(self.state_dir, 0o755)
        self.shutting_down = False

    # ---- sandbox lookup ----------------------------------------------------------------

    def find(self, id_or_name: str) -> Sandbox | None:
        with self.lock:
            sb = self.sandboxes.get(id_or_name)
            if sb is None:
                for s in self.sandboxes.values():
                    if s.name == id_or_name and not s.purged:
                        sb = s
                        break
            if sb is None or sb.purged:
                return None
            return sb

    def alive_count(self) -> int:
        with self.lock:
            return sum(1 for s in self.sandboxes.values() if not s.purged and s.state != "destroyed")

    def set_state(self, sb: Sandbox, state: str, desired: str | None = None):
        with self.lock:
            sb.state = state
            if desired is not None:
                sb.desired = desired
            sb.updated_at = now_iso()
            self.cv.notify_all()
        if self.args.verbose:
            log("sandbox %s -> %s (desired %s)" % (sb.id, state, sb.desired))

    def delay(self, sb: Sandbox, extra_key: str | None = None):
        d = self.args.transition_delay
        try:
            if FAULT + "transition-delay" in sb.labels:
                d = float(sb.labels[FAULT + "transition-delay"])
            if extra_key and FAULT + extra_key in sb.labels:
                d += float(sb.labels[FAULT + extra_key])
        except ValueError:
            pass
        if d > 0:
            time.sleep(d)

    # ---- DTOs ----------------------------------------------------------------------------

    def toolbox_proxy_url(self) -> str:
        return self.base_url + "/toolbox"

    def dto(self, sb: Sandbox, list_item: bool = False) -> dict:
        d = {
            "id": sb.id,
            "organizationId": ORG_ID,
            "name": sb.name,
            "snapshot": sb.snapshot if sb.snapshot is not None else "",
            "user": sb.user,
            "labels": dict(sb.labels),
            "public": sb.public,
            "networkBlockAll": sb.network_block_all,
            "target": sb.target,
            "cpu": sb.cpu,
            "gpu": sb.gpu,
            "memory": sb.memory,
            "disk": sb.disk,
            "state": sb.state,
            "desiredState": sb.desired,
            "backupState": "None",
            "autoStopInterval": sb.auto_stop,
            "autoArchiveInterval": sb.auto_archive,
            "autoDeleteInterval": sb.auto_delete,
            "createdAt": sb.created_at,
            "updatedAt": sb.updated_at,
            "lastActivityAt": sb.last_activity,
            "sandboxClass": "container",
            "daemonVersion": DAEMON_VERSION,
            "runnerId": "test-runner",
            "toolboxProxyUrl": self.toolbox_proxy_url(),
        }
        if sb.snapshot is None:
            del d["snapshot"]
        if sb.network_allow_list is not None:
            d["networkAllowList"] = sb.network_allow_list
        if sb.domain_allow_list is not None:
            d["domainAllowList"] = sb.domain_allow_list
        if sb.error_reason is not None:
            d["errorReason"] = sb.error_reason
        if sb.recoverable is not None:
            d["recoverable"] = sb.recoverable
        if not list_item:
            d["env"] = dict(sb.env)
            d["volumes"] = []
            if sb.build_info is not None:
                d["buildInfo"] = dict(sb.build_info)
        return d

    # ---- containers -----------------------------------------------------------------------

    def container_config(self, sb: Sandbox) -> dict:
        env = ["%s=%s" % (k, v) for k, v in sb.env.items()]
        return {
            "Image": self.args.image,
            "Cmd": ["tail", "-f", "/dev/null"],
            "Env": env,
            "Labels": {LABEL: self.instance, LABEL_PID: str(os.getpid()), LABEL_SANDBOX: sb.id},
            "NetworkDisabled": True,
            "HostConfig": {
                "NetworkMode": "none",
                "Init": True,
                "Binds": ["%s:%s" % (sb.host_dir, DAEMON_DIR)],
            },
        }

    def create_container(self, sb: Sandbox):
        sb.host_dir = os.path.join(self.state_dir, sb.id)
        os.makedirs(os.path.join(sb.host_dir, "sessions"), exist_ok=True)
        os.makedirs(os.path.join(sb.host_dir, "exec"), exist_ok=True)
        for p in (sb.host_dir, os.path.join(sb.host_dir, "sessions"), os.path.join(sb.host_dir, "exec")):
            os.chmod(p, 0o777)
        cid = self.docker.create_container("daytona-test-%s" % sb.id, self.container_config(sb))
        with self.lock:
            sb.container_id = cid

    def start_container(self, sb: Sandbox):
        self.docker.start(sb.container_id)
        if sb.user not in ("root", "daytona"):
            code, out, err = self.docker.run(sb.container_id, ["sh", "-c", ADD_USER, "add-user", sb.user],
                                             user="root")
            if code != 0:
                raise RuntimeError("adduser %s: %s" % (sb.user, (out + err).decode(errors="replace")))
        self.docker.run(sb.container_id, ["sh", "-c", "mkdir -p %s && chmod 1777 %s" % (DAEMON_DIR, DAEMON_DIR)],
                        user="root")

    def remove_container(self, sb: Sandbox):
        if sb.container_id:
            self.docker.remove(sb.container_id)
        if sb.host_dir:
            shutil.rmtree(sb.host_dir, ignore_errors=True)

    # ---- lifecycle workers -------------------------------------------------------------

    def spawn(self, target, *args):
        t = threading.Thread(target=self._guard, args=(target,) + args, daemon=True)
        t.start()

    def _guard(self, target, sb: Sandbox, *args):
        try:
            target(sb, *args)
        except Exception as e:  # noqa: BLE001
            log("sandbox %s: worker %s failed: %s\n%s" % (sb.id, target.__name__, e, traceback.format_exc()))
            with self.lock:
                sb.error_reason = "test server: %s" % e
                sb.recoverable = False
                self.set_state(sb, "error")
        finally:
            with self.lock:
                sb.busy = False
                self.cv.notify_all()

    def fault(self, sb: Sandbox, name: str) -> str | None:
        return sb.labels.get(FAULT + name)

    def fail_now(self, sb: Sandbox, state: str, reason: str):
        if sb.container_id:
            try:
                self.docker.kill(sb.container_id)
            except DockerError:
                pass
        with self.lock:
            sb.error_reason = reason
            sb.recoverable = False
            self.set_state(sb, state)

    def run_create(self, sb: Sandbox):
        if sb.build_info is not None:
            self.delay(sb)                                   # pending_build
            self.set_state(sb, "building_snapshot")
            self.delay(sb)
            if self.fault(sb, "fail") == "build_failed":
                self.fail_now(sb, "build_failed", "test fault (%sfail=build_failed): "
                              "failed to build the image" % FAULT)
                return
            self.set_state(sb, "creating")
        self.create_container(sb)
        self.delay(sb)
        if self.fault(sb, "fail") == "build_failed":
            self.fail_now(sb, "build_failed", "test fault (%sfail=build_failed): failed to build the image" % FAULT)
            return
        self.run_start(sb, initial=True)

    def run_start(self, sb: Sandbox, initial: bool = False):
        self.set_state(sb, "starting", "started")
        self.delay(sb, "slow-start")
        if self.fault(sb, "fail") == "error":
            self.fail_now(sb, "error", "test fault (%sfail=error): the sandbox failed to start" % FAULT)
            return
        self.start_container(sb)
        self.set_state(sb, "started")
        after = self.fault(sb, "fail-after")
        if after:
            try:
                seconds = float(after)
            except ValueError:
                seconds = 0
            threading.Thread(target=self.run_fail_after, args=(sb, seconds), daemon=True).start()

    def run_fail_after(self, sb: Sandbox, seconds: float):
        time.sleep(seconds)
        with self.lock:
            if sb.state != "started" or sb.purged:
                return
        self.close_sessions(sb)
        self.fail_now(sb, "error", "test fault (%sfail-after=%s): the sandbox failed while running"
                      % (FAULT, self.fault(sb, "fail-after")))

    def run_stop(self, sb: Sandbox, force: bool):
        self.set_state(sb, "stopping", "stopped")
        self.close_sessions(sb)
        self.delay(sb, "slow-stop")
        if sb.container_id:
            if force:
                self.docker.kill(sb.container_id)
            else:
                self.docker.stop(sb.container_id, t=2)
        self.set_state(sb, "stopped")

    def run_destroy(self, sb: Sandbox):
        self.set_state(sb, "destroying", "destroyed")
        self.close_sessions(sb)
        self.delay(sb, "slow-delete")
        self.remove_container(sb)
        self.set_state(sb, "destroyed")
        # Visible as destroyed for a moment, then gone (404).
        time.sleep(max(self.args.transition_delay, 0.05))
        with self.lock:
            sb.purged = True
            self.sandboxes.pop(sb.id, None)
            self.cv.notify_all()

    def close_sessions(self, sb: Sandbox):
        with self.lock:
            sessions = list(sb.sessions.values())
            sb.sessions.clear()
        for s in sessions:
            self.kill_session(sb, s)

    def kill_session(self, sb: Sandbox, s: Session):
        """Like the daemon's terminateSession: SIGTERM to the session shell's process group,
        SIGKILL after a grace period. docker exec makes the shell a session and group leader;
        its host pid comes from the exec's inspect data, with `kill` inside the container (pid
        from shell.pid) as the fallback when the host pid cannot be signalled."""
        s.alive = False
        host_pid = 0
        if s.exec_id:
            try:
                host_pid = self.docker.exec_inspect(s.exec_id).get("Pid") or 0
            except (DockerError, OSError):
                host_pid = 0
        container_pid = None
        try:
            with open(os.path.join(s.host_dir, "shell.pid")) as f:
                container_pid = int(f.read().strip())
        except (OSError, ValueError):
            pass

        def signal_group(sig: int) -> bool:
            if host_pid > 0:
                try:
                    os.killpg(host_pid, sig)
                    return True
                except ProcessLookupError:
                    return False
                except PermissionError:
                    pass
            if container_pid and sb.container_id:
                try:
                    code, _, _ = self.docker.run(sb.container_id, ["kill", "-%d" % sig, "--", "-%d" % container_pid],
                                                 user="root")
                    return code == 0
                except (DockerError, OSError):
                    return False
            return False

        if signal_group(signal.SIGTERM):
            deadline = time.monotonic() + 0.3   # the daemon's grace period is longer
            while time.monotonic() < deadline and host_pid > 0:
                try:
                    with open("/proc/%d/stat" % host_pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except (OSError, IndexError):
                    break
                time.sleep(0.02)
            signal_group(signal.SIGKILL)
        if s.stream:
            s.stream.close()
        shutil.rmtree(s.host_dir, ignore_errors=True)

    # ---- cleanup ----------------------------------------------------------------------------

    def cleanup_all(self):
        self.shutting_down = True
        with self.lock:
            sbs = list(self.sandboxes.values())
        for sb in sbs:
            for s in list(sb.sessions.values()):
                try:
                    self.kill_session(sb, s)
                except Exception:  # noqa: BLE001
                    pass
        try:
            for c in self.docker.list_by_label("%s=%s" % (LABEL, self.instance)):
                try:
                    self.docker.remove(c["Id"])
                except DockerError as e:
                    log("cleanup: removing container %s: %s" % (c["Id"][:12], e))
        except Exception as e:  # noqa: BLE001
            log("cleanup: listing containers: %s" % e)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def reap_orphans(self):
        """Containers of earlier server instances whose process is gone."""
        try:
            for c in self.docker.list_by_label(LABEL):
                labels = c.get("Labels") or {}
                try:
                    pid = int(labels.get(LABEL_PID, "0"))
                except ValueError:
                    pid = 0
                if pid > 0 and pid != os.getpid() and os.path.exists("/proc/%d" % pid):
                    continue
                if labels.get(LABEL) == self.instance:
                    continue
                log("removing orphaned container %s of server instance %s" % (c["Id"][:12], labels.get(LABEL)))
                self.docker.remove(c["Id"])
        except Exception as e:  # noqa: BLE001
            log("orphan reaping failed: %s" % e)

    def ensure_image(self):
        if self.docker.image_exists(self.args.image):
            return
        busybox = "/bin/busybox"
        if not os.path.exists(busybox):
            raise SystemExit("the image %s is missing and /bin/busybox (Debian busybox-static) is not "
                             "installed to build it" % self.args.image)
        log("building image %s (FROM scratch with busybox-static, offline)" % self.args.image)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(os.path.join(HERE, "image", "Dockerfile"), arcname="Dockerfile")
            tar.add(busybox, arcname="busybox")
        data = buf.getvalue()
        from docker_engine import API, _UnixConnection  # noqa: PLC0415
        conn = _UnixConnection(self.docker.socket_path, timeout=600)
        q = urllib.parse.urlencode({"t": self.args.image, "networkmode": "none", "rm": "1", "forcerm": "1"})
        conn.request("POST", API + "/build?" + q, body=data, headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        out = resp.read().decode(errors="replace")
        conn.close()
        if resp.status != 200 or '"error"' in out or not self.docker.image_exists(self.args.image):
            raise SystemExit("building %s failed (%d): %s" % (self.args.image, resp.status, out[-2000:]))


# --------------------------------------------------------------------------------------------
# HTTP


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, empty: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.empty = empty


STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
               413: "Payload Too Large", 422: "Unprocessable Entity", 500: "Internal Server Error",
               501: "Not Implemented", 502: "Bad Gateway"}
DAEMON_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                408: "REQUEST_TIMEOUT", 409: "CONFLICT", 410: "GONE", 422: "UNPROCESSABLE_ENTITY",
                500: "INTERNAL_SERVER_ERROR"}


def version_tuple(v: str):
    m = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-(\S+))?$", v.strip())
    if not m:
        return None
    nums = tuple(int(x or 0) for x in m.group(1, 2, 3))
    pre = m.group(4)
    return nums, pre


def version_less(v: str, ref: tuple) -> bool | None:
    """v < ref where ref is (major, minor, patch) with the "-0" pre-release (i.e. any pre-release
    of ref counts as >= ref). None when v does not parse."""
    t = version_tuple(v)
    if t is None:
        return None
    return t[0] < ref


def combined_output(headers) -> bool:
    """apps/daemon/pkg/session/common.go IsCombinedOutput."""
    sdk = headers.get("X-Daytona-SDK-Version") or ""
    if sdk:
        less = version_less(sdk, (0, 27, 0))
        if less is None:
            less = False
        return bool(less) and "dev" not in sdk
    return headers.get("X-Daytona-Split-Output") != "true"


def skip_server_demux(headers) -> bool:
    sdk = headers.get("X-Daytona-SDK-Version") or ""
    if not sdk:
        return True
    if "dev" in sdk:
        return False
    less = version_less(sdk, (0, 167, 0))
    return True if less is None else less


def demux(data: bytes) -> tuple[bytes, bytes]:
    """apps/daemon/pkg/session/execute.go DemuxLogBytes."""
    out, err = bytearray(), bytearray()
    pos, n = 0, len(data)
    pat = re.compile(re.escape(STDOUT_PREFIX) + b"|" + re.escape(STDERR_PREFIX))
    while pos < n:
        m = pat.match(data, pos)
        if not m:
            nxt = pat.search(data, pos)
            if not nxt:
                break
            pos = nxt.start()
            continue
        target = out if m.group(0) == STDOUT_PREFIX else err
        nxt = pat.search(data, m.end())
        end = nxt.start() if nxt else n
        target += data[m.end():end]
        pos = end
    return bytes(out), bytes(err)


# Adds the user $1 unless it exists: with adduser where the image has it, else (Debian's
# busybox-static has no adduser) with the next free uid >= 1000 written into /etc/passwd and
# /etc/group, and a home folder of its own.
ADD_USER = r"""
id -u "$1" >/dev/null 2>&1 && exit 0
if command -v adduser >/dev/null 2>&1; then exec adduser -D -h "/home/$1" "$1"; fi
u=$(awk -F: '$3 >= 1000 && $3 < 60000 && $3 > m { m = $3 } END { print (m ? m : 999) + 1 }' /etc/passwd /etc/group)
printf '%s:x:%s:%s:%s:/home/%s:/bin/sh\n' "$1" "$u" "$u" "$1" "$1" >> /etc/passwd &&
printf '%s:x:%s:\n' "$1" "$u" >> /etc/group &&
mkdir -p "/home/$1" && chown "$u:$u" "/home/$1"
"""


def strip_markers(data: bytes) -> bytes:
    return data.replace(STDOUT_PREFIX, b"").replace(STDERR_PREFIX, b"")


def text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


# The daemon's session command wrapper (apps/daemon/pkg/session/execute.go cmdWrapperFormat @
# v0.190), with one change: the daemon's `{ . cmd.sh; } < "$ip" > "$sp" 2> "$ep"` becomes opens
# with retries. busybox ash does not restart open(2) on a FIFO when a signal (SIGCHLD of a
# background job ending) interrupts it, and then skips the command ("can't create ...: Interrupted
# system call") and hangs on the labellers; the daemon's bash or zsh restarts the call.
SESSION_WRAPPER = r"""
{
	log="%(log)s"
	dir="%(dir)s"

	sp="$dir/stdout.pipe"
	ep="$dir/stderr.pipe"
	ip="%(input)s"

	rm -f "$sp" "$ep" "$ip" && mkfifo "$sp" "$ep" "$ip" || exit 1

	cleanup() { rm -f "$sp" "$ep" "$ip"; }
	trap 'cleanup' EXIT HUP INT TERM

	( while IFS= read -r line || [ -n "$line" ]; do printf '\001\001\001%%s\n' "$line"; done < "$sp" ) >> "$log" & r1=$!
	( while IFS= read -r line || [ -n "$line" ]; do printf '\002\002\002%%s\n' "$line"; done < "$ep" ) >> "$log" & r2=$!

	%(stdin)s
	ip_pid=$!

	_n=0; until command exec 7>"$sp"; do _n=$((_n+1)); [ $_n -lt 100 ] || break; done
	_n=0; until command exec 8>"$ep"; do _n=$((_n+1)); [ $_n -lt 100 ] || break; done
	_n=0; until command exec 6<"$ip"; do _n=$((_n+1)); [ $_n -lt 100 ] || break; done
	{ . "%(cmd)s"; } <&6 >&7 2>&8 6<&- 7>&- 8>&-
	_ec=$?
	exec 6<&- 7>&- 8>&-

	kill "$ip_pid" 2>/dev/null; wait "$ip_pid" 2>/dev/null

	wait "$r1" "$r2"

	echo "$_ec" >> "%(exit)s"

	cleanup
}
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "daytona-test-server"
    sys_version = ""
    app: App = None  # type: ignore[assignment]

    def version_string(self):
        return self.server_version

    # quiet default logging
    def log_message(self, format, *args):  # noqa: A002
        if self.app.args.verbose:
            log("%s %s" % (self.address_string(), format % args))

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.dispatch()

    # ---- responses ------------------------------------------------------------------------

    def _check_response(self, status: int, ctype: str | None, body: bytes | None):
        ctx = getattr(self, "ctx", None)
        if not self.app.args.self_check or ctx is None or ctx.get("template") is None:
            return
        if ctx.get("skip_response_check"):
            return
        problems = self.app.spec.validate_response(ctx["api"], self.command, ctx["template"], status,
                                                   ctype, body)
        with self.app.stats.lock:
            self.app.stats.response_checked += 1
            for p in problems:
                if len(self.app.stats.response_violations) < 500:
                    self.app.stats.response_violations.append(p)
        for p in problems:
            log("RESPONSE VIOLATES THE SPEC: %s" % p)

    def send_bytes(self, status: int, body: bytes, ctype: str | None, extra: dict | None = None):
        self._check_response(status, ctype, body)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.responded = True

    def send_json(self, status: int, obj, extra: dict | None = None):
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.send_bytes(status, body, "application/json; charset=utf-8", extra)

    def send_empty(self, status: int, extra: dict | None = None):
        self.send_bytes(status, b"", None, extra)

    def api_error(self, status: int, message: str, extra: dict | None = None):
        """NestJS AllExceptionsFilter body."""
        self.send_json(status, {"path": self.path, "timestamp": now_iso(), "statusCode": status,
                                "error": STATUS_TEXT.get(status, "Error"), "message": message}, extra)

    def daemon_error(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        """Toolbox ErrorResponse (libs/common-go/pkg/errors/middleware.go)."""
        path = getattr(self, "toolbox_path", None) or urllib.parse.urlsplit(self.path).path
        self.send_json(status, {"statusCode": status, "message": message,
                                "code": code or DAEMON_CODES.get(status, "INTERNAL_SERVER_ERROR"),
                                "timestamp": now_iso(), "path": path, "method": self.command}, extra)

    # ---- dispatch ---------------------------------------------------------------------------

    def dispatch(self):
        self.responded = False
        self.ctx = None
        self.toolbox_path = None
        try:
            self.body = BodyReader(self.rfile, self.headers)
        except BodyError as e:
            self.close_connection = True
            self.send_json(400, {"statusCode": 400, "message": str(e)})
            return
        with self.app.stats.lock:
            self.app.stats.requests += 1
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, split.query
        try:
            if path == "/api" or path.startswith("/api/"):
                self.handle_api(path[len("/api"):] or "/", query)
            elif path.startswith("/toolbox/"):
                self.handle_toolbox(path[len("/toolbox"):], query)
            elif path.startswith("/_test/"):
                self.handle_test(path, query)
            else:
                self.send_json(404, {"statusCode": 404, "message": "Cannot %s %s" % (self.command, path),
                                     "error": "Not Found"})
        except HttpError as e:
            if not self.responded:
                if e.empty:
                    self.send_empty(e.status)
                elif getattr(self, "is_toolbox", False):
                    self.daemon_error(e.status, e.message, e.code)
                else:
                    self.api_error(e.status, e.message)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        except Exception as e:  # noqa: BLE001
            log("internal error on %s %s: %s\n%s" % (self.command, self.path, e, traceback.format_exc()))
            self.close_connection = True
            if not self.responded:
                try:
                    if getattr(self, "is_toolbox", False):
                        self.daemon_error(500, "test server internal error: %s" % e)
                    else:
                        self.api_error(500, "An unexpected error occurred.")
                except OSError:
                    pass
        finally:
            if not self.body.finished:
                try:
                    if not self.body.drain(limit=4 << 20):
                        self.close_connection = True
                except (BodyError, OSError):
                    self.close_connection = True

    # ---- auth + validation ----------------------------------------------------------------

    def bearer(self) -> str | None:
        h = self.headers.get("Authorization") or ""
        if h.startswith("Bearer "):
            return h[len("Bearer "):].strip()
        return None

    def validate(self, api: str, path: str, query: str, streamed: bool = False):
        """Matches the route and validates the request; reads a JSON body. Returns the validated
        request, or answers (404/405/400) and returns None."""
        spec = self.app.spec
        try:
            op = spec.match(api, self.command, path)
        except ValidationFailure as e:
            self.reject(api, e)
            return None
        self.ctx = {"api": api, "template": op.template, "op": op.operation_id}
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = None
        if self.body.present and not streamed:
            try:
                body = self.body.read_all(MAX_JSON_BODY)
            except BodyError as e:
                self.close_connection = True
                self.reject(api, ValidationFailure("%s %s: %s" % (self.command, path, e), 413))
                return None
        # A streamed body (multipart uploads) is checked part by part by its handler; the
        # bulk-upload operation declares no body in the spec at all (see README).
        streamed_body = streamed and self.body.present and op.spec.get("requestBody") is not None
        try:
            req = spec.validate_request(op, query, headers, self.headers.get("Content-Type"), body,
                                        streamed_body=streamed_body)
        except ValidationFailure as e:
            self.reject(api, e)
            return None
        return req

    def count_validated(self):
        with self.app.stats.lock:
            self.app.stats.validated += 1

    def reject(self, api: str, e: ValidationFailure):
        self.app.stats.add_rejection(e.message)
        log("REJECTED (spec validation): %s" % e.message)
        extra = {"X-Daytona-Test-Rejected": "1"}
        msg = "request does not conform to the Daytona OpenAPI spec: " + e.message
        if api == "toolbox":
            self.daemon_error(e.status, msg, "INVALID_REQUEST_BODY" if e.status == 400 else None, extra)
        else:
            self.api_error(e.status, msg, extra)

    # ---- /api -------------------------------------------------------------------------------

    def handle_api(self, path: str, query: str):
        self.is_toolbox = False
        req = self.validate("api", path, query)
        if req is None:
            return
        token = self.bearer()
        if token is None or token != self.app.args.api_key:
            with self.app.stats.lock:
                self.app.stats.unauthorized += 1
            self.count_validated()
            # An expired key gets the same answer as a wrong one: the API's key strategy throws
            # "This API key has expired", handleAuthError swallows 4xx errors and passport ends
            # with a plain 401 (apps/api/src/auth/api-key.strategy.ts).
            self.api_error(401, "Unauthorized")
            return
        self.count_validated()
        op = req.operation.operation_id
        handler = getattr(self, "api_" + op, None)
        if handler is None:
            raise HttpError(501, "the Daytona test server does not implement %s (%s %s)" % (
                op, self.command, req.operation.template))
        handler(req)

    def sandbox_or_404(self, id_or_name: str) -> Sandbox:
        sb = self.app.find(id_or_name)
        if sb is None:
            raise HttpError(404, "Sandbox with ID or name %s not found" % id_or_name)
        return sb

    def take_conflict(self, sb: Sandbox) -> bool:
        """The conflict-409 fault: only calls made while no transition runs count."""
        with self.app.lock:
            if sb.conflict_409_left > 0 and not sb.busy and sb.state not in TRANSITIONAL:
                sb.conflict_409_left -= 1
                return True
        return False

    def api_createSandbox(self, req):
        b = req.json_body or {}
        app = self.app
        build = b.get("buildInfo")
        if build:
            if b.get("snapshot"):
                raise HttpError(400, "Cannot specify a snapshot when using a build info entry")
            if b.get("linkedSandbox"):
                raise HttpError(400, "linkedSandbox is not supported with declarative builds. "
                                     "Create a sandbox from a snapshot")
        else:
            if b.get("cpu") or b.get("gpu") or b.get("memory") or b.get("disk"):
                raise HttpError(400, "Cannot specify Sandbox resources when using a snapshot")
            if b.get("gpuType"):
                raise HttpError(400, "Cannot specify GPU type when creating sandbox from snapshot. "
                                     "GPU type is inherited from snapshot.")
            snap = b.get("snapshot")
            if snap and snap.startswith("test-missing"):
                raise HttpError(400, "Snapshot %s not found. Did you add it through the Daytona Dashboard?" % snap)
        if b.get("linkedSandbox") and b.get("autoDeleteInterval") != 0:
            raise HttpError(400, "Linked sandboxes must be ephemeral (set autoDeleteInterval to 0)")
        env = b.get("env") or {}
        for k in env:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                raise HttpError(400, "Invalid environment variable name: %s" % k)
        sb = Sandbox(str(uuid.uuid4()))
        sb.name = b.get("name") or sb.id
        sb.user = b.get("user") or "daytona"
        if not re.match(r"^[a-z_][a-z0-9_-]*$", sb.user):
            raise HttpError(400, "Invalid user %s" % sb.user)
        sb.env = dict(env)
        sb.labels = dict(b.get("labels") or {})
        sb.public = bool(b.get("public", False))
        sb.network_block_all = bool(b.get("networkBlockAll", False))
        sb.network_allow_list = b.get("networkAllowList")
        sb.domain_allow_list = b.get("domainAllowList")
        sb.target = b.get("target") or "us"
        if b.get("autoStopInterval") is not None:
            sb.auto_stop = b["autoStopInterval"]
        if b.get("autoArchiveInterval") is not None:
            sb.auto_archive = b["autoArchiveInterval"]
        if b.get("autoDeleteInterval") is not None:
            sb.auto_delete = b["autoDeleteInterval"]
        if build:
            sb.snapshot = None
            sb.cpu = b.get("cpu") or 1
            sb.gpu = b.get("gpu") or 0
            sb.memory = b.get("memory") or 1
            sb.disk = b.get("disk") or 3
            content = build.get("dockerfileContent", "")
            ref = "daytona-test-build-" + hashlib.sha256(content.encode()).hexdigest()[:16]
            ts = now_iso()
            sb.build_info = {"dockerfileContent": content, "contextHashes": list(build.get("contextHashes") or []),
                             "createdAt": ts, "updatedAt": ts, "snapshotRef": ref}
            sb.state = "pending_build"
        else:
            sb.snapshot = b.get("snapshot") or self.app.args.default_snapshot
            sb.state = "creating"
        sb.desired = "started"
        for key, attr in (("toolbox-502", "toolbox_502_left"), ("conflict-409", "conflict_409_left")):
            v = sb.labels.get(FAULT + key)
            if v is not None:
                try:
                    setattr(sb, attr, int(v))
                except ValueError:
                    raise HttpError(400, "label %s%s must be an integer" % (FAULT, key)) from None
        with app.lock:
            for other in app.sandboxes.values():
                if other.name == sb.name and not other.purged and other.state != "destroyed":
                    raise HttpError(409, "Sandbox with name %s already exists" % sb.name)
            app.sandboxes[sb.id] = sb
            sb.busy = True
            snapshot_dto = app.dto(sb)
        log("sandbox %s created (%s)" % (sb.id, "buildInfo" if build else "snapshot %s" % sb.snapshot))
        app.spawn(app.run_create, sb)
        if not build:
            # The controller waits up to 30 s for "started" and answers 400 if the sandbox
            # reaches error/build_failed meanwhile; otherwise it returns the DTO it had before
            # waiting (v0.190 sandbox.controller.ts createSandbox).
            deadline = time.monotonic() + app.args.create_wait
            with app.lock:
                while True:
                    if sb.state == "started":
                        break
                    if sb.state in ("error", "build_failed"):
                        raise HttpError(400, "Sandbox failed to start: %s" % sb.error_reason)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    app.cv.wait(left)
        self.send_json(200, snapshot_dto)

    def api_getSandbox(self, req):
        sb = self.sandbox_or_404(req.path_params["sandboxIdOrName"])
        with self.app.lock:
            dto = self.app.dto(sb)
        self.send_json(200, dto)

    def _list(self, req):
        q = req.query
        labels = None
        if "labels" in q:
            try:
                labels = json.loads(q["labels"])
            except ValueError:
                raise HttpError(400, "Invalid labels JSON format") from None
            if not isinstance(labels, dict):
                raise HttpError(400, "Invalid labels JSON format")
        states = set(q.get("states") or [])
        include_errored_deleted = q.get("includeErroredDeleted", False)
        with self.app.lock:
            items = []
            for sb in self.app.sandboxes.values():
                if sb.purged or sb.state == "destroyed":
                    continue
                if not include_errored_deleted and sb.state in ("error", "build_failed") and sb.desired == "destroyed":
                    continue
                if labels and any(sb.labels.get(k) != str(v) for k, v in labels.items()):
                    continue
                if states and sb.state not in states:
                    continue
                if q.get("id") and not sb.id.lower().startswith(q["id"].lower()):
                    continue
                if q.get("name") and not sb.name.lower().startswith(q["name"].lower()):
                    continue
                items.append(sb)
            return items

    def api_listSandboxes(self, req):
        items = self._list(req)
        q = req.query
        field = q.get("sort", "createdAt")
        key = {"name": lambda s: s.name, "cpu": lambda s: s.cpu, "memoryGib": lambda s: s.memory,
               "diskGib": lambda s: s.disk, "lastActivityAt": lambda s: s.last_activity}.get(
            field, lambda s: s.created_at)
        items.sort(key=lambda s: (key(s), s.id), reverse=q.get("order", "desc") == "desc")
        if self.app.list_shape == "array":
            # Deployments before v0.180: a plain array of Sandbox, no pagination.
            if self.ctx:
                self.ctx["skip_response_check"] = True
            with self.app.lock:
                dtos = [self.app.dto(s) for s in items]
            self.send_json(200, dtos)
            return
        limit = int(q.get("limit", 100))
        start = 0
        if q.get("cursor"):
            try:
                start = int(base64.urlsafe_b64decode(q["cursor"].encode() + b"==").decode())
            except (ValueError, UnicodeDecodeError):
                raise HttpError(400, "Invalid cursor") from None
        page = items[start:start + limit]
        nxt = None
        if start + limit < len(items):
            nxt = base64.urlsafe_b64encode(str(start + limit).encode()).decode().rstrip("=")
        with self.app.lock:
            dtos = [self.app.dto(s, list_item=True) for s in page]
        self.send_json(200, {"items": dtos, "nextCursor": nxt})

    def api_listSandboxesPaginated_deprecated(self, req):
        items = self._list(req)
        items.sort(key=lambda s: (s.created_at, s.id), reverse=req.query.get("order", "desc") == "desc")
        page = int(req.query.get("page", 1))
        limit = int(req.query.get("limit", 100))
        total = len(items)
        chunk = items[(page - 1) * limit:page * limit]
        with self.app.lock:
            dtos = [self.app.dto(s) for s in chunk]
        self.send_json(200, {"items": dtos, "total": total, "page": page,
                             "totalPages": max(1, (total + limit - 1) // limit)})

    def api_startSandbox(self, req):
        app = self.app
        sb = self.sandbox_or_404(req.path_params["sandboxIdOrName"])
        if self.take_conflict(sb):
            raise HttpError(409, "Sandbox state change in progress")
        with app.lock:
            if sb.state == "started" and sb.desired == "started":
                dto = app.dto(sb)
            else:
                dto = None
        if dto is not None:
            self.send_json(200, dto)
            return
        with app.lock:
            if sb.state in ("error", "build_failed"):
                raise HttpError(400, "Sandbox is in an errored state")
            if sb.state != sb.desired or sb.busy:
                raise HttpError(409, "Sandbox state change in progress")
            if sb.state != "stopped":
                raise HttpError(400, "Sandbox is not in valid state")
            sb.desired = "started"
            sb.busy = True
            sb.updated_at = now_iso()
        app.spawn(app.run_start, sb)
        # The controller waits up to 30 s for "started" and returns the refreshed DTO.
        deadline = time.monotonic() + app.args.create_wait
        with app.lock:
            while sb.state != "started":
                if sb.state in ("error", "build_failed"):
                    raise HttpError(400, "Sandbox failed to start: %s" % sb.error_reason)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                app.cv.wait(left)
            dto = app.dto(sb)
        self.send_json(200, dto)

    def api_stopSandbox(self, req):
        app = self.app
        sb = self.sandbox_or_404(req.path_params["sandboxIdOrName"])
        if self.take_conflict(sb):
            raise HttpError(409, "Sandbox state change in progress")
        force = bool(req.query.get("force", False))
        with app.lock:
            if sb.state in ("error", "build_failed"):
                raise HttpError(400, "Sandbox is in an errored state")
            if sb.state != sb.desired or sb.busy:
                raise HttpError(409, "Sandbox state change in progress")
            if sb.state != "started":
                raise HttpError(400, "Sandbox is not in a stoppable state")
            sb.busy = True
            sb.updated_at = now_iso()
            if sb.auto_delete == 0:
                # Ephemeral: stopping deletes it.
                sb.desired = "destroyed"
                dto = app.dto(sb)
                app.spawn(app.run_destroy, sb)
            else:
                sb.desired = "stopped"
                dto = app.dto(sb)
                app.spawn(app.run_stop, sb, force)
        self.send_json(200, dto)

    def api_deleteSandbox(self, req):
        app = self.app
        sb = self.sandbox_or_404(req.path_params["sandboxIdOrName"])
        if self.take_conflict(sb):
            raise HttpError(409, "Sandbox state change in progress")
        with app.lock:
            if (sb.busy or sb.state in TRANSITIONAL) and sb.state != "pending_build":
                raise HttpError(409, "Sandbox state change in progress")
            sb.busy = True
            sb.desired = "destroyed"
            sb.state = "destroying"
            sb.updated_at = now_iso()
            dto = app.dto(sb)
        app.spawn(app.run_destroy, sb)
        self.send_json(200, dto)

    def api_recoverSandbox(self, req):
        sb = self.sandbox_or_404(req.path_params["sandboxIdOrName"])
        with self.app.lock:
            if not sb.recoverable:
                raise HttpError(400, "Sandbox is not in a recoverable state")
        raise HttpError(400, "Sandbox is not in a recoverable state")

    def api_replaceLabels(self, req):
        sb = self.sandbox_or_404(req.path_params["sandboxIdOrName"])
        with self.app.lock:
            sb.labels = dict(req.json_body["labels"])
            sb.updated_at = now_iso()
            labels = dict(sb.labels)
        self.send_json(200, {"labels": labels})

    def api_getToolboxProxyUrl(self, req):
        self.sandbox_or_404(req.path_params["sandboxId"])
        self.send_json(200, {"url": self.app.toolbox_proxy_url()})

    def api_updateLastActivity(self, req):
        sb = self.sandbox_or_404(req.path_params["sandboxId"])
        with self.app.lock:
            sb.last_activity = now_iso()
        self.send_empty(201)

    def _set_interval(self, req, attr):
        sb = self.sandbox_or_404(req.path_params["sandboxIdOrName"])
        with self.app.lock:
            setattr(sb, attr, int(req.path_params["interval"]))
            sb.updated_at = now_iso()
            dto = self.app.dto(sb)
        self.send_json(200, dto)

    def api_setAutostopInterval(self, req):
        self._set_interval(req, "auto_stop")

    def api_setAutoArchiveInterval(self, req):
        self._set_interval(req, "auto_archive")

    def api_setAutoDeleteInterval(self, req):
        self._set_interval(req, "auto_delete")

    # ---- /toolbox ---------------------------------------------------------------------------

    def handle_toolbox(self, path: str, query: str):
        self.is_toolbox = True
        parts = path.split("/", 2)        # "", sandboxId, rest
        if len(parts) < 3 or not parts[1]:
            self.daemon_error(404, "sandbox not found")
            return
        sandbox_id = urllib.parse.unquote(parts[1])
        sub = "/" + parts[2]
        self.toolbox_path = sub
        streamed = self.command == "POST" and sub in ("/files/bulk-upload", "/files/upload-v2")
        req = self.validate("toolbox", sub, query, streamed=streamed)
        if req is None:
            return
        token = self.bearer()
        self.count_validated()
        if token is None:
            with self.app.stats.lock:
                self.app.stats.unauthorized += 1
            self.daemon_error(401, "missing authentication: provide a preview access token (via header, "
                                   "query parameter, or cookie) or use an API key or JWT")
            return
        if token != self.app.args.api_key:
            with self.app.stats.lock:
                self.app.stats.unauthorized += 1
            self.daemon_error(401, "authentication failed: Bearer token is invalid")
            return
        sb = self.app.find(sandbox_id)
        if sb is None or sb.id != sandbox_id:
            self.daemon_error(404, "sandbox not found")
            return
        with self.app.lock:
            state = sb.state
            if sb.toolbox_502_left > 0 and state == "started":
                # The toolbox-502 fault: the next n calls that would have reached the toolbox.
                sb.toolbox_502_left -= 1
                raise HttpError(502, "", empty=True)
            if state == "stopped":
                raise HttpError(400, "failed to resolve container IP after 3 attempts: container %s is not "
                                     "running. Is the Sandbox started?" % sb.id)
            if state in ("destroyed",):
                raise HttpError(404, "sandbox not found")
            if state != "started":
                # Transitions, error: the proxy has nothing to talk to (issue #4142, #5140).
                raise HttpError(502, "", empty=True)
            sb.last_activity = now_iso()
        op = req.operation.operation_id
        handler = getattr(self, "tb_" + op, None)
        if handler is None:
            raise HttpError(501, "the Daytona test server does not implement %s (%s %s)" % (
                op, self.command, req.operation.template))
        handler(sb, req)

    def abs_path(self, sb: Sandbox, p: str) -> str:
        if not p.startswith("/"):
            p = posixpath.join(sb.workdir, p)
        return posixpath.normpath(p) if p != "/" else "/"

    # process/execute

    def tb_ExecuteCommand(self, sb: Sandbox, req):
        b = req.json_body
        command = b["command"]
        if command.strip() == "":
            raise HttpError(400, "command cannot be empty or whitespace-only")
        envs = b.get("envs") or {}
        for k in envs:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                raise HttpError(400, "invalid environment variable name: '%s'" % k)
        timeout = b.get("timeout")
        if timeout is not None and (timeout < 0 or timeout > 0xFFFFFFFF):
            raise HttpError(400, "invalid request body: json: cannot unmarshal number %s into Go struct "
                                 "field ExecuteRequest.timeout of type uint32" % timeout, "INVALID_REQUEST_BODY")
        cwd = b.get("cwd")
        cwd = self.abs_path(sb, cwd) if cwd else sb.workdir
        # The daemon gives the shell one pipe for stdout and stderr (exec.Cmd with Stdout ==
        # Stderr), so the result keeps their order: 2>&1 here.
        marker = "\x01DAYTONA_TEST_CHDIR_FAILED\x01"
        eid_file = uuid.uuid4().hex
        wrapper = ('echo $$ > %s/exec/%s.pid; if ! cd -- "$1" 2>/dev/null; then printf %%s %s; exit 1; fi; '
                   'exec /bin/sh 2>&1' % (DAEMON_DIR, eid_file, shq(marker)))
        docker = self.app.docker
        eid = docker.exec_create(sb.container_id, ["/bin/sh", "-c", wrapper, "sh", cwd],
                                 env=["%s=%s" % kv for kv in envs.items()] or None,
                                 user=sb.user, workdir="/", stdin=True)
        stream = docker.exec_start(eid)
        out = bytearray()
        done = threading.Event()

        def pump():
            try:
                stream.write(command.encode("utf-8"))
                stream.close_stdin()
            except OSError:
                pass
            try:
                for _, data in stream.frames():
                    out.extend(data)
            except OSError:
                pass
            done.set()

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        timed_out = False
        if timeout:
            if not done.wait(timeout):
                timed_out = True
                self.kill_exec(sb, eid, eid_file)
                done.wait(2.0)
        else:
            done.wait()
        stream.close()
        try:
            os.unlink(os.path.join(sb.host_dir, "exec", eid_file + ".pid"))
        except OSError:
            pass
        if timed_out:
            raise HttpError(408, "request timeout: command execution timeout", "REQUEST_TIMEOUT")
        data = bytes(out)
        if data.startswith(marker.encode()):
            self.send_json(200, {"exitCode": -1, "result": "chdir %s: no such file or directory" % cwd})
            return
        info = docker.exec_inspect(eid)
        code = info.get("ExitCode")
        if code is None:
            code = -1
        self.send_json(200, {"exitCode": code, "result": text(data)})

    def kill_exec(self, sb: Sandbox, eid: str, pid_file: str | None):
        """SIGKILL to the exec'd process group (docker exec makes the process a session leader)."""
        killed = False
        try:
            pid = self.app.docker.exec_inspect(eid).get("Pid") or 0
            if pid > 0:
                os.killpg(pid, signal.SIGKILL)
                killed = True
        except (ProcessLookupError, PermissionError, DockerError, OSError):
            pass
        if not killed and pid_file:
            try:
                with open(os.path.join(sb.host_dir, "exec", pid_file + ".pid")) as f:
                    cpid = int(f.read().strip())
                self.app.docker.run(sb.container_id, ["kill", "-9", "--", "-%d" % cpid], user="root")
            except (OSError, ValueError, DockerError):
                pass

    # sessions

    def session_or_404(self, sb: Sandbox, sid: str) -> Session:
        with self.app.lock:
            s = sb.sessions.get(sid)
        if s is None or not s.alive:
            raise HttpError(404, "session not found")
        return s

    def tb_CreateSession(self, sb: Sandbox, req):
        sid = req.json_body["sessionId"]
        if sid == "entrypoint":
            raise HttpError(400, "provided session ID is reserved and cannot be created/overridden")
        if not re.match(r"^[A-Za-z0-9._-]+$", sid):
            # The daemon would use it as a folder name; keep the test server's paths safe.
            raise HttpError(400, "session ID %r is not usable as a folder name" % sid)
        app = self.app
        with app.lock:
            if sid in sb.sessions:
                raise HttpError(409, "session already exists")
            s = Session(sid, os.path.join(sb.host_dir, "sessions", sid))
            sb.sessions[sid] = s
        try:
            os.makedirs(s.host_dir, exist_ok=True)
            os.chmod(s.host_dir, 0o777)
            eid = app.docker.exec_create(sb.container_id, ["/bin/sh"], user=sb.user, workdir=sb.workdir,
                                         stdin=True)
            s.exec_id = eid
            s.stream = app.docker.exec_start(eid)
            s.stream.write(("echo $$ > %s/sessions/%s/shell.pid\n" % (DAEMON_DIR, sid)).encode())
        except Exception:
            with app.lock:
                sb.sessions.pop(sid, None)
            raise

        def drain():
            try:
                for _ in s.stream.frames():
                    pass
            except OSError:
                pass
            s.alive = False

        threading.Thread(target=drain, daemon=True).start()
        self.send_empty(201)

    def tb_DeleteSession(self, sb: Sandbox, req):
        sid = req.path_params["sessionId"]
        if sid == "entrypoint":
            raise HttpError(400, "can't delete entrypoint session")
        with self.app.lock:
            s = sb.sessions.pop(sid, None)
        if s is None:
            raise HttpError(404, "session not found")
        self.app.kill_session(sb, s)
        self.send_empty(204)

    def cmd_paths(self, s: Session, cid: str) -> tuple[str, str]:
        d = os.path.join(s.host_dir, cid)
        return os.path.join(d, "output.log"), os.path.join(d, "exit_code")

    def refresh_command(self, s: Session, cid: str) -> dict:
        c = s.commands[cid]
        if "exitCode" not in c:
            _, ec = self.cmd_paths(s, cid)
            try:
                with open(ec) as f:
                    raw = f.read().strip()
                if raw:
                    c["exitCode"] = int(raw.splitlines()[0])
            except (OSError, ValueError):
                pass
        return {k: c[k] for k in ("id", "command", "exitCode") if k in c}

    def tb_SessionExecuteCommand(self, sb: Sandbox, req):
        sid = req.path_params["sessionId"]
        if sid == "entrypoint":
            raise HttpError(400, "can't execute command in entrypoint session")
        b = req.json_body
        command = b["command"]
        if command.strip() == "":
            raise HttpError(400, "command cannot be empty")
        run_async = bool(b.get("runAsync") or b.get("async"))
        s = self.session_or_404(sb, sid)
        cid = str(uuid.uuid4())
        host_cmd_dir = os.path.join(s.host_dir, cid)
        os.makedirs(host_cmd_dir, exist_ok=True)
        os.chmod(host_cmd_dir, 0o777)
        log_path, exit_path = self.cmd_paths(s, cid)
        with open(log_path, "wb"):
            pass
        os.chmod(log_path, 0o666)
        with open(os.path.join(host_cmd_dir, "cmd.sh"), "wb") as f:
            f.write(command.encode("utf-8"))
        os.chmod(os.path.join(host_cmd_dir, "cmd.sh"), 0o644)
        cdir = "%s/sessions/%s/%s" % (DAEMON_DIR, sid, cid)
        stdin_cmd = 'while :; do sleep 3600; done > "$ip" &' if run_async else 'cat /dev/null > "$ip" &'
        script = SESSION_WRAPPER % {"log": cdir + "/output.log", "dir": cdir, "input": cdir + "/input.pipe",
                                    "stdin": stdin_cmd, "cmd": cdir + "/cmd.sh", "exit": cdir + "/exit_code"}
        with s.lock:
            s.commands[cid] = {"id": cid, "command": command}
            s.order.append(cid)
            try:
                s.stream.write(script.encode("utf-8"))
            except OSError as e:
                raise HttpError(400, "failed to write command: %s" % e) from None
        if run_async:
            resp = {"cmdId": cid}
            if self.app.args.daemon_nulls:
                resp.update({"output": None, "stdout": None, "stderr": None, "exitCode": None})
            self.send_json(202, resp)
            return
        while True:
            if not s.alive:
                raise HttpError(400, "session cancelled")
            info = self.refresh_command(s, cid)
            if "exitCode" in info:
                break
            time.sleep(0.05)
        with open(log_path, "rb") as f:
            data = f.read()
        code = info["exitCode"]
        if combined_output(self.headers):
            resp = {"cmdId": cid, "output": text(strip_markers(data)), "exitCode": code}
            if self.app.args.daemon_nulls:
                resp.update({"stdout": None, "stderr": None})
        else:
            resp = {"cmdId": cid, "output": text(data), "exitCode": code}
            if not skip_server_demux(self.headers):
                o, e = demux(data)
                resp["stdout"], resp["stderr"] = text(o), text(e)
            elif self.app.args.daemon_nulls:
                resp.update({"stdout": None, "stderr": None})
        self.send_json(200, resp)

    def tb_GetSessionCommand(self, sb: Sandbox, req):
        s = self.session_or_404(sb, req.path_params["sessionId"])
        cid = req.path_params["commandId"]
        if cid not in s.commands:
            raise HttpError(404, "command not found")
        self.send_json(200, self.refresh_command(s, cid))

    def tb_GetSession(self, sb: Sandbox, req):
        s = self.session_or_404(sb, req.path_params["sessionId"])
        self.send_json(200, {"sessionId": s.id, "commands": [self.refresh_command(s, c) for c in list(s.order)]})

    def tb_ListSessions(self, sb: Sandbox, req):
        with self.app.lock:
            sessions = [s for s in sb.sessions.values() if s.alive]
        self.send_json(200, [{"sessionId": s.id, "commands": [self.refresh_command(s, c) for c in list(s.order)]}
                             for s in sessions])

    def tb_GetEntrypointSession(self, sb: Sandbox, req):
        raise HttpError(404, "session not found")

    def tb_GetSessionCommandLogs(self, sb: Sandbox, req):
        s = self.session_or_404(sb, req.path_params["sessionId"])
        cid = req.path_params["commandId"]
        if cid not in s.commands:
            raise HttpError(404, "command not found")
        if (self.headers.get("Upgrade") or "").lower() == "websocket":
            self.follow_logs(sb, s, cid, req)
            return
        log_path, _ = self.cmd_paths(s, cid)
        try:
            with open(log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise HttpError(404, "open %s: no such file or directory" % log_path) from None
        combined = combined_output(self.headers)
        if combined:
            data = strip_markers(data)
        if not skip_server_demux(self.headers) and not combined:
            o, e = demux(data)
            self.send_json(200, {"output": text(data), "stdout": text(o), "stderr": text(e)})
            return
        self.send_bytes(200, data, "text/plain; charset=utf-8")

    def tb_SendInput(self, sb: Sandbox, req):
        s = self.session_or_404(sb, req.path_params["sessionId"])
        cid = req.path_params["commandId"]
        if cid not in s.commands:
            raise HttpError(404, "command not found")
        if "exitCode" in self.refresh_command(s, cid):
            raise HttpError(410, "command has already completed", "COMMAND_ALREADY_COMPLETED")
        pipe = os.path.join(s.host_dir, cid, "input.pipe")
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            raise HttpError(400, "failed to open the command's input: %s" % e) from None
        try:
            os.write(fd, req.json_body["data"].encode("utf-8"))
        finally:
            os.close(fd)
        self.send_empty(204)

    def follow_logs(self, sb: Sandbox, s: Session, cid: str, req):
        """GET .../logs?follow=true as a WebSocket: binary frames of the log (raw marked bytes, or
        with the markers stripped in combined mode), then a normal close when the command ends."""
        key = self.headers.get("Sec-WebSocket-Key")
        if not key:
            raise HttpError(400, "websocket: missing Sec-WebSocket-Key")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B85").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        proto = self.headers.get("Sec-WebSocket-Protocol")
        if proto:
            for p in proto.split(","):
                if p.strip().startswith("X-Daytona-SDK-Version~"):
                    self.send_header("Sec-WebSocket-Protocol", p.strip())
                    break
        self.end_headers()
        self.responded = True
        self.close_connection = True
        combined = combined_output(self.headers)
        follow = req.query.get("follow", False)
        log_path, _ = self.cmd_paths(s, cid)

        def frame(op: int, payload: bytes) -> bytes:
            n = len(payload)
            if n < 126:
                head = bytes([0x80 | op, n])
            elif n < 65536:
                head = bytes([0x80 | op, 126]) + n.to_bytes(2, "big")
            else:
                head = bytes([0x80 | op, 127]) + n.to_bytes(8, "big")
            return head + payload

        pending = b""
        pos = 0
        eof_since = None
        try:
            while True:
                try:
                    with open(log_path, "rb") as f:
                        f.seek(pos)
                        chunk = f.read(1 << 20)
                except FileNotFoundError:
                    chunk = b""
                if chunk:
                    pos += len(chunk)
                    eof_since = None
                    if combined:
                        data = pending + chunk
                        cut = len(data)
                        # keep a possibly split marker for the next round
                        for k in (2, 1):
                            if data[-k:] in (STDOUT_PREFIX[:k], STDERR_PREFIX[:k]):
                                cut = len(data) - k
                                break
                        pending = data[cut:]
                        out = strip_markers(data[:cut])
                    else:
                        out = chunk
                    if out:
                        self.wfile.write(frame(0x2, out))
                        self.wfile.flush()
                    continue
                if not follow:
                    break
                if "exitCode" in self.refresh_command(s, cid) or not s.alive:
                    if eof_since is None:
                        eof_since = time.monotonic()
                    elif time.monotonic() - eof_since > 0.2:
                        break
                time.sleep(0.02)
            if pending:
                self.wfile.write(frame(0x2, strip_markers(pending)))
            self.wfile.write(frame(0x8, (1000).to_bytes(2, "big")))
            self.wfile.flush()
        except OSError:
            pass

    # files

    def stat(self, sb: Sandbox, path: str) -> dict:
        code, out, err = self.app.docker.run(
            sb.container_id, ["stat", "-L", "-c", "%s|%f|%u|%g|%y|%n", "--", path], user=sb.user)
        if code != 0:
            msg = text(err).strip() or "stat %s failed" % path
            if "No such file" in msg or "Not a directory" in msg:
                raise HttpError(404, "stat %s: no such file or directory" % path, "FILE_NOT_FOUND")
            if "Permission denied" in msg:
                raise HttpError(403, "stat %s: permission denied" % path, "FILE_ACCESS_DENIED")
            raise HttpError(400, msg)
        return self.parse_stat(text(out).strip().splitlines()[0])

    @staticmethod
    def parse_stat(line: str) -> dict:
        size, mode_hex, uid, gid, mtime, name = line.split("|", 5)
        mode = int(mode_hex, 16)
        # "2026-11-22 07:35:04.551940060 +0000" -> Go time.String() and RFC 3339
        m = re.match(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))? ([+-]\d{4})", mtime)
        date, clock, frac, off = m.group(1), m.group(2), (m.group(3) or ""), m.group(4)
        frac = frac.rstrip("0")
        go_time = "%s %s%s %s %s" % (date, clock, "." + frac if frac else "", off,
                                     "UTC" if off == "+0000" else "")
        rfc = "%sT%s%s%s" % (date, clock, "." + frac if frac else "",
                             "Z" if off == "+0000" else off[:3] + ":" + off[3:])
        base = posixpath.basename(name.rstrip("/")) or "/"
        return {"name": base, "size": int(size), "mode": go_mode_string(mode), "modTime": go_time.strip(),
                "modifiedAt": rfc, "isDir": stat_mod.S_ISDIR(mode), "owner": uid, "group": gid,
                "permissions": "%04o" % (mode & 0o777), "path": name}

    def tb_GetFileInfo(self, sb: Sandbox, req):
        p = req.query["path"]
        if p == "":
            raise HttpError(400, "path is required")
        info = self.stat(sb, self.abs_path(sb, p))
        info["name"] = posixpath.basename(p.rstrip("/")) or info["name"]
        del info["path"]
        self.send_json(200, info)

    def tb_ListFiles(self, sb: Sandbox, req):
        p = self.abs_path(sb, req.query.get("path") or ".")
        depth = req.query.get("depth", 1)
        if depth < 1:
            raise HttpError(400, "depth must be >= 1")
        self.stat(sb, p)
        code, out, err = self.app.docker.run(
            sb.container_id, ["find", p, "-mindepth", "1", "-maxdepth", str(depth), "-exec",
                              "stat", "-L", "-c", "%s|%f|%u|%g|%y|%n", "{}", "+"], user=sb.user)
        items = [self.parse_stat(line) for line in text(out).splitlines() if line.count("|") >= 5]
        self.send_json(200, items)

    def tb_CreateFolder(self, sb: Sandbox, req):
        p = req.query["path"]
        if p == "":
            raise HttpError(400, "path is required")
        mode = req.query.get("mode") or "0755"
        if not re.fullmatch(r"[0-7]{1,11}", mode) or int(mode, 8) > 0xFFFFFFFF:
            raise HttpError(400, "invalid mode format")
        code, out, err = self.app.docker.run(
            sb.container_id, ["mkdir", "-p", "-m", "%o" % (int(mode, 8) & 0o7777), "--", self.abs_path(sb, p)],
            user=sb.user)
        if code != 0:
            raise HttpError(400, text(err).strip() or "mkdir failed")
        self.send_empty(201)

    def tb_DeleteFile(self, sb: Sandbox, req):
        p = req.query["path"]
        if p == "":
            raise HttpError(400, "path is required")
        recursive = bool(req.query.get("recursive", False))
        script = ('p=$1; r=$2; if [ ! -e "$p" ] && [ ! -L "$p" ]; then exit 44; fi; '
                  'if [ -d "$p" ] && [ "$r" != true ]; then exit 45; fi; '
                  'if [ "$r" = true ]; then rm -rf -- "$p"; else rm -f -- "$p"; fi')
        path = self.abs_path(sb, p)
        code, out, err = self.app.docker.run(
            sb.container_id, ["sh", "-c", script, "sh", path, "true" if recursive else "false"], user=sb.user)
        if code == 44:
            raise HttpError(404, "stat %s: no such file or directory" % path, "FILE_NOT_FOUND")
        if code == 45:
            raise HttpError(400, "cannot delete directory without recursive flag")
        if code != 0:
            msg = text(err).strip()
            if "Permission denied" in msg:
                raise HttpError(403, msg, "FILE_ACCESS_DENIED")
            raise HttpError(400, msg or "delete failed")
        self.send_empty(204)

    def tb_DownloadFile(self, sb: Sandbox, req):
        p = req.query["path"]
        if p == "":
            raise HttpError(400, "path is required")
        path = self.abs_path(sb, p)
        docker = self.app.docker
        for _ in range(10):  # follow symbolic links, as os.Stat does
            status, resp, conn = docker.get_archive(sb.container_id, path)
            if status == 404:
                conn.close()
                raise HttpError(404, "stat %s: no such file or directory" % path, "FILE_NOT_FOUND")
            if status != 200:
                body = resp.read()[:500]
                conn.close()
                raise HttpError(400, "reading %s: %s" % (path, text(body)))
            size, typeflag, linkname = self._tar_header(resp)
            if typeflag == b"2":
                conn.close()
                path = posixpath.normpath(posixpath.join(posixpath.dirname(path), linkname))
                continue
            break
        else:
            raise HttpError(400, "too many levels of symbolic links")
        if typeflag == b"5":
            conn.close()
            raise HttpError(400, "path must be a file")
        if typeflag not in (b"0", b"\0", b"7"):
            conn.close()
            raise HttpError(400, "path must be a regular file")
        filename = posixpath.basename(path)
        latin = "".join(c if ord(c) < 256 and c not in '"\\' else "_" for c in filename)
        self.send_response(200)
        self.send_header("Content-Description", "File Transfer")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", "attachment; filename=\"%s\"; filename*=utf-8''%s" % (
            latin, urllib.parse.quote(filename, safe="")))
        self.send_header("Content-Transfer-Encoding", "binary")
        self.send_header("Expires", "0")
        self.send_header("Cache-Control", "must-revalidate")
        self.send_header("Pragma", "public")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.responded = True
        left = size
        try:
            while left > 0:
                chunk = resp.read(min(left, 1 << 20))
                if not chunk:
                    self.close_connection = True
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        finally:
            conn.close()

    @staticmethod
    def _tar_header(resp) -> tuple[int, bytes, str]:
        """Reads tar headers up to the first real entry: (size, typeflag, linkname)."""
        pax: dict = {}
        longname = None
        while True:
            h = resp.read(512)
            if len(h) < 512 or h == b"\0" * 512:
                raise HttpError(400, "empty archive")
            typeflag = h[156:157]
            raw_size = h[124:136]
            if raw_size[0] & 0x80:
                size = int.from_bytes(raw_size[1:], "big")
            else:
                size = int(raw_size.strip(b"\0 ") or b"0", 8)
            linkname = h[157:257].rstrip(b"\0").decode("utf-8", "replace")
            if typeflag in (b"x", b"g", b"L", b"K"):
                data = resp.read(size)
                pad = (-size) % 512
                if pad:
                    resp.read(pad)
                if typeflag == b"x":
                    for rec in data.split(b"\n"):
                        if b"=" in rec:
                            k, _, v = rec.partition(b" ")[2].partition(b"=")
                            pax[k.decode()] = v.decode("utf-8", "replace")
                elif typeflag == b"K":
                    longname = data.rstrip(b"\0").decode("utf-8", "replace")
                continue
            if "size" in pax:
                size = int(pax["size"])
            if "linkpath" in pax:
                linkname = pax["linkpath"]
            if longname:
                linkname = longname
            return size, typeflag, linkname

    def tb_UploadFiles(self, sb: Sandbox, req):
        ctype = self.headers.get("Content-Type") or ""
        media, params = parse_header_params(ctype)
        if media != "multipart/form-data" or not params.get("boundary"):
            self.body.drain(limit=4 << 20)
            self.reject_streamed("POST /files/bulk-upload: the body must be multipart/form-data with a boundary "
                                 "(got Content-Type %r)" % ctype)
            return
        reader = MultipartReader(self.body, params["boundary"])
        dests: dict[str, str] = {}
        errors: list[str] = []
        files: list[dict] = []
        spec_problem = None
        name_re = re.compile(r"^files\[(\d+)\]\.(path|file)$")
        try:
            while True:
                part = reader.next_part()
                if part is None:
                    break
                name = part.name or ""
                m = name_re.match(name)
                if not m:
                    spec_problem = "POST /files/bulk-upload: multipart part %r is not files[<i>].path or " \
                                   "files[<i>].file" % name
                    break
                idx, kind = m.group(1), m.group(2)
                if kind == "path":
                    dest = text(part.read_all(64 << 10)).strip()
                    if dest == "":
                        errors.append("path[%s]: empty path" % idx)
                        continue
                    dests[idx] = dest
                    continue
                if idx not in dests:
                    spec_problem = ("POST /files/bulk-upload: part files[%s].file comes before its "
                                    "files[%s].path part" % (idx, idx))
                    break
                dest = self.abs_path(sb, dests[idx])
                n, err = self.upload_stream(sb, dest, part)
                if err:
                    errors.append("%s: %s" % (dests[idx], err))
                else:
                    files.append({"path": dests[idx], "bytes": n})
        except BodyError as e:
            # The client went away mid-body: how a client cancels an upload of declared length.
            # Not a request the spec would reject, and nobody is left to answer.
            with self.app.stats.lock:
                self.app.stats.aborted += 1
            log("upload aborted by the client: %s" % e)
            self.close_connection = True
            return
        except MultipartError as e:
            spec_problem = "POST /files/bulk-upload: malformed multipart body: %s" % e
            self.close_connection = True
        if spec_problem:
            self.reject_streamed(spec_problem)
            return
        if not files and not errors:
            pass
        if errors:
            # What the real daemon answers (apps/daemon/pkg/toolbox/fs/upload_files.go), though
            # the spec declares an ErrorResponse for this 400: exempt from the self-check.
            if getattr(self, "ctx", None) is not None:
                self.ctx["skip_response_check"] = True
            self.send_json(400, {"errors": errors, "files": files})
            return
        self.send_json(200, {"files": files})

    def reject_streamed(self, reason: str):
        with self.app.stats.lock:
            self.app.stats.validated -= 1      # counted when the headers validated
        self.reject("toolbox", ValidationFailure(reason))
        if not self.body.finished:
            self.close_connection = True

    def upload_stream(self, sb: Sandbox, dest: str, part) -> tuple[int, str | None]:
        """Streams one part into `dest` in the container (parents created, file overwritten)."""
        docker = self.app.docker
        script = 'd=$(dirname -- "$1") && mkdir -p -- "$d" && cat > "$1"'
        eid = docker.exec_create(sb.container_id, ["/bin/sh", "-c", script, "sh", dest], user=sb.user,
                                 workdir="/", stdin=True)
        stream = docker.exec_start(eid)
        err = bytearray()
        n = 0
        broken = False

        def reader():
            try:
                for s, data in stream.frames():
                    if len(err) < 4096:
                        err.extend(data)
            except OSError:
                pass

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        while True:
            chunk = part.read(1 << 20)
            if not chunk:
                break
            if not broken:
                try:
                    stream.write(chunk)
                    n += len(chunk)
                except OSError:
                    broken = True
        stream.close_stdin()
        t.join()
        stream.close()
        code = docker.exec_inspect(eid).get("ExitCode")
        if code != 0 or broken:
            return n, (text(bytes(err)).strip() or "write failed (exit code %s)" % code)
        return n, None

    def tb_GetWorkDir(self, sb: Sandbox, req):
        self.send_json(200, {"dir": sb.workdir})

    def tb_GetUserHomeDir(self, sb: Sandbox, req):
        self.send_json(200, {"dir": sb.home})

    def tb_GetVersion(self, sb: Sandbox, req):
        self.send_json(200, {"version": DAEMON_VERSION})

    # ---- /_test -----------------------------------------------------------------------------

    def handle_test(self, path: str, query: str):
        if self.bearer() != self.app.args.api_key:
            self.send_json(401, {"statusCode": 401, "message": "Unauthorized"})
            return
        app = self.app
        if path == "/_test/stats" and self.command == "GET":
            st = app.stats
            try:
                containers = len(app.docker.list_by_label("%s=%s" % (LABEL, app.instance)))
            except Exception:  # noqa: BLE001
                containers = -1
            alive = app.alive_count()
            with st.lock:
                out = {
                    "validated": st.validated, "rejected": st.rejected, "rejections": list(st.rejections),
                    "unauthorized": st.unauthorized, "requests": st.requests,
                    "sandboxes_alive": alive, "containers_alive": containers,
                    "response_checked": st.response_checked,
                    "aborted": st.aborted,
                    "response_violations": len(st.response_violations),
                    "response_violation_list": list(st.response_violations),
                    "list_shape": app.list_shape,
                }
            self.send_json(200, out)
            return
        if path == "/_test/reset" and self.command == "POST":
            app.stats.reset()
            if urllib.parse.parse_qs(query).get("sandboxes") in (["1"], ["true"]):
                with app.lock:
                    sbs = [s for s in app.sandboxes.values() if not s.purged]
                for sb in sbs:
                    app.close_sessions(sb)
                    app.remove_container(sb)
                    with app.lock:
                        sb.purged = True
                        app.sandboxes.pop(sb.id, None)
            self.send_empty(204)
            return
        if path == "/_test/config" and self.command == "POST":
            try:
                cfg = json.loads(self.body.read_all(1 << 20) or b"{}")
            except ValueError:
                self.send_json(400, {"message": "body must be JSON"})
                return
            if "listShape" in cfg:
                if cfg["listShape"] not in ("object", "array"):
                    self.send_json(400, {"message": "listShape must be object or array"})
                    return
                app.list_shape = cfg["listShape"]
            if "transitionDelay" in cfg:
                app.args.transition_delay = float(cfg["transitionDelay"])
            if "createWait" in cfg:
                app.args.create_wait = float(cfg["createWait"])
            self.send_json(200, {"listShape": app.list_shape, "transitionDelay": app.args.transition_delay,
                                 "createWait": app.args.create_wait})
            return
        self.send_json(404, {"statusCode": 404, "message": "no such test endpoint"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main(argv=None):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
    default_specs = (os.environ.get("WORKSPACE_SPECS_DIR") or os.environ.get("DAYTONA_SPECS_DIR")
                     or os.path.join(os.path.dirname(repo), "shared", "specs"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free one)")
    ap.add_argument("--api-key", required=True, help="the valid API key (Authorization: Bearer KEY)")
    ap.add_argument("--expired-key", default=None, help="a key that is known but expired (401, like a wrong one)")
    ap.add_argument("--ready-file", default=None, help="write the API base URL here once listening")
    ap.add_argument("--specs", default=default_specs, help="folder with daytona-api.openapi.yaml and "
                    "daytona-toolbox.openapi.yaml (default %(default)s)")
    ap.add_argument("--image", default=DEFAULT_IMAGE, help="sandbox image (built offline if missing)")
    ap.add_argument("--transition-delay", type=float, default=0.3,
                    help="seconds each lifecycle state lasts (default %(default)s)")
    ap.add_argument("--create-wait", type=float, default=30.0,
                    help="seconds POST /sandbox and POST /start wait for 'started' (real API: 30)")
    ap.add_argument("--default-snapshot", default="daytona-small")
    ap.add_argument("--list-shape", choices=("object", "array"), default="object",
                    help="GET /sandbox answer: {items,nextCursor} (v0.180+) or a plain array (older)")
    ap.add_argument("--no-strict", action="store_true",
                    help="validate exactly what the spec says (allow undeclared fields and query parameters)")
    ap.add_argument("--no-daemon-nulls", dest="daemon_nulls", action="store_false",
                    help="omit the null fields the real daemon sends in SessionExecuteResponse")
    ap.add_argument("--no-self-check", dest="self_check", action="store_false",
                    help="do not validate the server's own JSON responses against the spec (by default "
                    "every one is, and violations are logged and counted in /_test/stats)")
    ap.add_argument("--state-dir", default=None, help="parent folder for per-sandbox state (default: TMPDIR)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    for name in ("daytona-api.openapi.yaml", "daytona-toolbox.openapi.yaml"):
        if not os.path.isfile(os.path.join(args.specs, name)):
            raise SystemExit("daytona test server: needs %s, the official Daytona OpenAPI spec (it is in "
                             "../shared/specs beside the checkout; --specs or WORKSPACE_SPECS_DIR to point "
                             "elsewhere)" % os.path.join(args.specs, name))
    spec = Spec(os.path.join(args.specs, "daytona-api.openapi.yaml"),
                os.path.join(args.specs, "daytona-toolbox.openapi.yaml"), strict=not args.no_strict)
    docker = Docker()
    if not docker.ping():
        raise SystemExit("no Docker daemon answers on %s (set DOCKER_HOST=unix://...)" % docker.socket_path)
    app = App(args, spec, docker)
    app.reap_orphans()
    app.ensure_image()
    Handler.app = app
    httpd = Server(("127.0.0.1", args.port), Handler)
    port = httpd.server_address[1]
    app.base_url = "http://127.0.0.1:%d" % port
    stopping = threading.Event()

    def on_signal(signum, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(app.base_url + "/api\n")
        os.replace(tmp, args.ready_file)
    log("listening on %s/api (toolbox %s/toolbox, instance %s, image %s)" % (
        app.base_url, app.base_url, app.instance, args.image))
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        log("stopping: removing every container of instance %s" % app.instance)
        app.cleanup_all()
        httpd.server_close()
        st = app.stats
        log("done: %d validated, %d rejected, %d unauthorized, %d response violations" % (
            st.validated, st.rejected, st.unauthorized, len(st.response_violations)))


if __name__ == "__main__":
    main()
