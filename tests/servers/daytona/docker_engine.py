"""A small Docker Engine API client over the daemon's Unix socket (stdlib only).

Only what the Daytona test server needs: containers (create, start, stop, remove, inspect,
list by label), exec with streamed stdin/stdout/stderr (the hijacked connection of
POST /exec/{id}/start), exec inspect, and GET /containers/{id}/archive streamed.
API version 1.41 (dockerd 20.10, which scripts/lib/dockerd.sh starts; newer daemons accept it).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import urllib.parse
from typing import Iterator

API = "/v1.41"


class DockerError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__("docker: %d %s" % (status, message))
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def socket_path_from_env() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host:
        raise ValueError("DOCKER_HOST=%s is not a unix:// address" % host)
    return "/var/run/docker.sock"


class ExecStream:
    """A running exec's hijacked connection: write stdin, read (stream, bytes) frames."""

    STDOUT = 1
    STDERR = 2

    def __init__(self, sock: socket.socket, leftover: bytes):
        self.sock = sock
        self._buf = bytearray(leftover)
        self._closed_write = False

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_stdin(self) -> None:
        if not self._closed_write:
            self._closed_write = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                return False
            self._buf += chunk
        return True

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(stream, data) until the exec's output ends."""
        while True:
            if not self._fill(8):
                return
            stream = self._buf[0]
            size = struct.unpack(">I", bytes(self._buf[4:8]))[0]
            del self._buf[:8]
            while size > 0:
                if not self._buf:
                    chunk = self.sock.recv(min(size, 1 << 20))
                    if not chunk:
                        return
                    self._buf += chunk
                take = min(size, len(self._buf))
                data = bytes(self._buf[:take])
                del self._buf[:take]
                size -= take
                yield stream, data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Docker:
    def __init__(self, socket_path: str | None = None):
        self.socket_path = socket_path or socket_path_from_env()

    # ---- plain requests ---------------------------------------------------------------

    def request(self, method: str, path: str, body: object | None = None,
                query: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
        target = API + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        conn = _UnixConnection(self.socket_path, timeout=timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _json(self, method: str, path: str, body: object | None = None,
              query: dict | None = None, ok: tuple = (200, 201, 204), timeout: float = 60):
        status, data = self.request(method, path, body, query, timeout)
        if status not in ok:
            try:
                msg = json.loads(data).get("message", data.decode(errors="replace"))
            except ValueError:
                msg = data.decode(errors="replace")
            raise DockerError(status, msg)
        return json.loads(data) if data.strip() else None

    def ping(self) -> bool:
        try:
            conn = _UnixConnection(self.socket_path, timeout=5)
            conn.request("GET", "/_ping")
            r = conn.getresponse()
            ok = r.status == 200 and r.read() == b"OK"
            conn.close()
            return ok
        except OSError:
            return False

    def image_exists(self, name: str) -> bool:
        status, _ = self.request("GET", "/images/%s/json" % urllib.parse.quote(name, safe=""))
        return status == 200

    def create_container(self, name: str, config: dict) -> str:
        return self._json("POST", "/containers/create", config, {"name": name}, ok=(201,))["Id"]

    def start(self, cid: str) -> None:
        self._json("POST", "/containers/%s/start" % cid, ok=(204, 304))

    def stop(self, cid: str, t: int = 2) -> None:
        self._json("POST", "/containers/%s/stop" % cid, query={"t": t}, ok=(204, 304),
                   timeout=t + 60)

    def kill(self, cid: str) -> None:
        try:
            self._json("POST", "/containers/%s/kill" % cid, ok=(204,))
        except DockerError as e:
            if e.status not in (404, 409):
                raise

    def remove(self, cid: str) -> None:
        try:
            self._json("DELETE", "/containers/%s" % cid, query={"force": "1", "v": "1"},
                       ok=(204,), timeout=120)
        except DockerError as e:
            if e.status != 404 and "already in progress" not in e.message:
                raise

    def inspect(self, cid: str) -> dict:
        return self._json("GET", "/containers/%s/json" % cid)

    def list_by_label(self, label: str) -> list[dict]:
        filters = json.dumps({"label": [label]})
        return self._json("GET", "/containers/json", query={"all": "1", "filters": filters})

    # ---- exec ---------------------------------------------------------------------------

    def exec_create(self, cid: str, cmd: list[str], env: list[str] | None = None,
                    workdir: str | None = None, user: str | None = None,
                    stdin: bool = False) -> str:
        body: dict = {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True,
                      "AttachStdin": stdin, "Tty": False}
        if env:
            body["Env"] = env
        if workdir:
            body["WorkingDir"] = workdir
        if user:
            body["User"] = user
        return self._json("POST", "/containers/%s/exec" % cid, body, ok=(201,))["Id"]

    def exec_start(self, exec_id: str) -> ExecStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.socket_path)
        body = json.dumps({"Detach": False, "Tty": False}).encode()
        req = ("POST %s/exec/%s/start HTTP/1.1\r\nHost: localhost\r\n"
               "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
               "Content-Length: %d\r\n\r\n" % (API, exec_id, len(body))).encode() + body
        sock.sendall(req)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                raise DockerError(502, "exec start: connection closed")
            head += chunk
        header, _, rest = head.partition(b"\r\n\r\n")
        status_line = header.split(b"\r\n", 1)[0].decode(errors="replace")
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError):
            status = 0
        if status not in (101, 200):
            sock.close()
            raise DockerError(status, "exec start: %s %s" % (status_line, rest[:300].decode(errors="replace")))
        return ExecStream(sock, rest)

    def exec_inspect(self, exec_id: str) -> dict:
        return self._json("GET", "/exec/%s/json" % exec_id)

    def run(self, cid: str, cmd: list[str], user: str | None = None, workdir: str | None = None,
            env: list[str] | None = None, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Runs a short command to completion: (exit code, stdout, stderr)."""
        eid = self.exec_create(cid, cmd, env=env, workdir=workdir, user=user,
                               stdin=stdin is not None)
        stream = self.exec_start(eid)
        out, err = bytearray(), bytearray()
        try:
            if stdin is not None:
                if stdin:
                    stream.write(stdin)
                stream.close_stdin()
            for s, data in stream.frames():
                (out if s == ExecStream.STDOUT else err).extend(data)
        finally:
            stream.close()
        code = self.exec_inspect(eid).get("ExitCode")
        return (code if code is not None else -1), bytes(out), bytes(err)

    # ---- archive ------------------------------------------------------------------------

    def get_archive(self, cid: str, path: str) -> tuple[int, http.client.HTTPResponse, _UnixConnection]:
        """Starts GET /containers/{id}/archive?path=; the caller reads and closes."""
        conn = _UnixConnection(self.socket_path, timeout=300)
        conn.request("GET", API + "/containers/%s/archive?%s" % (
            cid, urllib.parse.urlencode({"path": path})))
        resp = conn.getresponse()
        return resp.status, resp, conn
