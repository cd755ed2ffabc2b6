"""Tests of the Daytona test server itself: its request validation, and its behaviour and
response shapes against the specs (the server validates every JSON response it sends against
the spec unless started with --no-self-check; the tests assert that none violated it).

    DOCKER_HOST=unix:///run/workspace-test-docker.sock \
        /opt/workspace-daytona-venv/bin/python -m unittest -v tests/servers/daytona/test_server.py

The server tests need the Docker daemon (scripts/lib/dockerd.sh ensure_dockerd); they fail, not
skip, when it is unreachable. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from docker_engine import Docker  # noqa: E402
from openapi_validator import Spec, ValidationFailure  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SPECS = os.environ.get("DAYTONA_SPECS_DIR") or os.path.join(os.path.dirname(REPO), "shared", "specs")
API_SPEC = os.path.join(SPECS, "daytona-api.openapi.yaml")
TOOLBOX_SPEC = os.path.join(SPECS, "daytona-toolbox.openapi.yaml")
KEY = "test-key-" + uuid.uuid4().hex
EXPIRED = "expired-" + uuid.uuid4().hex


class ValidatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spec = Spec(API_SPEC, TOOLBOX_SPEC)

    def check(self, api, method, path, query="", body=None, ctype="application/json", headers=None):
        op = self.spec.match(api, method, path)
        raw = json.dumps(body).encode() if body is not None else None
        return self.spec.validate_request(op, query, headers or {}, ctype if raw else None, raw)

    def rejects(self, *a, **k):
        with self.assertRaises(ValidationFailure) as cm:
            self.check(*a, **k)
        return cm.exception

    def test_routes(self):
        self.assertEqual(self.spec.match("api", "GET", "/sandbox/paginated").operation_id,
                         "listSandboxesPaginated_deprecated")
        self.assertEqual(self.spec.match("api", "GET", "/sandbox/abc").operation_id, "getSandbox")
        self.assertEqual(self.spec.match("toolbox", "GET", "/process/session/entrypoint").operation_id,
                         "GetEntrypointSession")
        self.assertEqual(self.rejects("api", "GET", "/nope").status, 404)
        self.assertEqual(self.rejects("api", "PATCH", "/sandbox/abc").status, 405)
        # The legacy API-host toolbox paths are gone from the newest spec.
        self.assertEqual(self.rejects("api", "POST", "/toolbox/abc/toolbox/process/execute").status, 404)

    def test_create_body(self):
        r = self.check("api", "POST", "/sandbox", body={"snapshot": "s", "labels": {"a": "b"}, "env": {"X": "1"},
                                                       "autoDeleteInterval": 0, "public": False})
        self.assertEqual(r.json_body["snapshot"], "s")
        self.check("api", "POST", "/sandbox", body={"buildInfo": {"dockerfileContent": "FROM x\n"}, "cpu": 2})
        self.assertIn("'image' was unexpected", self.rejects("api", "POST", "/sandbox", body={"image": "x"}).message)
        self.assertIn("not of type 'integer'", self.rejects("api", "POST", "/sandbox", body={"cpu": 1.5}).message)
        self.assertIn("not of type 'string'", self.rejects("api", "POST", "/sandbox", body={"labels": {"a": 1}}).message)
        self.assertIn("'dockerfileContent' is a required property",
                      self.rejects("api", "POST", "/sandbox", body={"buildInfo": {}}).message)
        self.assertIn("required", self.rejects("api", "POST", "/sandbox").message)
        self.assertIn("Content-Type", self.rejects("api", "POST", "/sandbox", body={}, ctype="text/plain").message)

    def test_query(self):
        r = self.check("api", "GET", "/sandbox", "labels=%7B%7D&states=started&states=stopped&limit=5")
        self.assertEqual(r.query, {"labels": "{}", "states": ["started", "stopped"], "limit": 5})
        self.assertIn("is not one of", self.rejects("api", "GET", "/sandbox", "states=runing").message)
        self.assertIn("maximum", self.rejects("api", "GET", "/sandbox", "limit=201").message)
        self.assertIn("not declared", self.rejects("api", "GET", "/sandbox", "label=x").message)
        self.assertIn("boolean", self.rejects("api", "POST", "/sandbox/x/stop", "force=1").message)
        self.assertIn("'mode' is missing", self.rejects("toolbox", "POST", "/files/folder", "path=/x").message)
        self.check("toolbox", "POST", "/files/folder", "path=/x&mode=0755")
        self.check("toolbox", "DELETE", "/files", "path=/x&recursive=true")

    def test_toolbox_bodies(self):
        self.check("toolbox", "POST", "/process/execute", body={"command": "ls", "timeout": 5, "cwd": "/", "envs": {"A": "b"}})
        self.assertIn("'command' is a required property",
                      self.rejects("toolbox", "POST", "/process/execute", body={"cmd": "ls"}).message)
        self.check("toolbox", "POST", "/process/session/s/exec", body={"command": "ls", "runAsync": True})
        self.check("toolbox", "POST", "/process/session/s/exec", body={"command": "ls", "async": True})
        self.assertIn("'runasync' was unexpected",
                      self.rejects("toolbox", "POST", "/process/session/s/exec", body={"command": "ls", "runasync": True}).message)
        self.assertIn("no request body", self.rejects("toolbox", "GET", "/files/info", "path=/x", body={}).message)

    def test_plain_mode_allows_unknown_fields(self):
        plain = Spec(API_SPEC, TOOLBOX_SPEC, strict=False)
        op = plain.match("api", "POST", "/sandbox")
        plain.validate_request(op, "foo=1", {}, "application/json", b'{"image":"x"}')

    def test_response_validation(self):
        ok = self.spec.validate_response("toolbox", "POST", "/process/session/{sessionId}/exec", 202,
                                         "application/json", b'{"cmdId":"a","output":null,"stdout":null,'
                                         b'"stderr":null,"exitCode":null}')
        self.assertEqual(ok, [])
        bad = self.spec.validate_response("toolbox", "GET", "/files/info", 200, "application/json", b'{"name":"x"}')
        self.assertTrue(bad)
        err = self.spec.validate_response("toolbox", "GET", "/files/info", 404, "application/json",
                                          b'{"statusCode":404,"message":"m","code":"FILE_NOT_FOUND",'
                                          b'"timestamp":"t","path":"/files/info","method":"GET"}')
        self.assertEqual(err, [])


# ------------------------------------------------------------------------------------------------


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class ServerTest(unittest.TestCase):
    server: subprocess.Popen
    base = ""

    @classmethod
    def setUpClass(cls):
        docker = Docker()
        if not docker.ping():
            raise AssertionError("no Docker daemon answers on %s; start one with scripts/lib/dockerd.sh "
                                 "ensure_dockerd and export DOCKER_HOST" % docker.socket_path)
        cls.tmp = tempfile.TemporaryDirectory()
        ready = os.path.join(cls.tmp.name, "ready")
        cls.log = open(os.path.join(cls.tmp.name, "server.log"), "wb")
        cls.server = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "server.py"), "--port", "0", "--api-key", KEY,
             "--expired-key", EXPIRED, "--ready-file", ready, "--transition-delay", "0.2",
             "--specs", SPECS], stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while not os.path.exists(ready):
            if cls.server.poll() is not None or time.time() > deadline:
                cls.log.flush()
                with open(cls.log.name) as f:
                    raise AssertionError("the server did not start: " + f.read()[-3000:])
            time.sleep(0.1)
        with open(ready) as f:
            api = f.read().strip()
        cls.api = urllib.parse.urlsplit(api)
        cls.port = cls.api.port
        cls.instance_label = None

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        try:
            cls.server.wait(60)
        except subprocess.TimeoutExpired:
            cls.server.kill()
        cls.log.close()
        with open(cls.log.name) as f:
            text = f.read()
        # Nothing of ours remains on the daemon.
        left = [c for c in Docker().list_by_label("workspace.test.daytona-server.pid=%d" % cls.server.pid)]
        cls.tmp.cleanup()
        assert not left, "containers left behind: %r" % left
        assert "RESPONSE VIOLATES" not in text, text

    # ---- helpers --------------------------------------------------------------------------

    def req(self, method, path, body=None, headers=None, key=KEY, raw=None, ctype=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if ctype:
            h["Content-Type"] = ctype
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        out = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        conn.close()
        return out

    def stats(self):
        return self.req("GET", "/_test/stats").json()

    def create(self, **body):
        r = self.req("POST", "/api/sandbox", body)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_state(self, sid, want, timeout=60):
        deadline = time.time() + timeout
        seen = []
        while time.time() < deadline:
            r = self.req("GET", "/api/sandbox/" + sid)
            if r.status == 404 and want == "gone":
                return None
            self.assertEqual(r.status, 200, r)
            st = r.json()["state"]
            if not seen or seen[-1] != st:
                seen.append(st)
            if st == want:
                return seen
            time.sleep(0.05)
        self.fail("sandbox %s did not reach %s (saw %s)" % (sid, want, seen))

    def started(self, **body):
        d = self.create(**body)
        self.wait_state(d["id"], "started")
        self.addCleanup(self.delete_quietly, d["id"])
        return d

    def delete_quietly(self, sid):
        for _ in range(200):
            r = self.req("DELETE", "/api/sandbox/" + sid)
            if r.status in (200, 404):
                break
            time.sleep(0.1)
        self.wait_state(sid, "gone")

    def tb(self, d, method, sub, **kw):
        base = urllib.parse.urlsplit(d["toolboxProxyUrl"]).path
        return self.req(method, "%s/%s%s" % (base, d["id"], sub), **kw)

    def exec(self, d, command, **kw):
        body = {"command": command}
        body.update(kw)
        return self.tb(d, "POST", "/process/execute", body=body)

    # ---- tests ----------------------------------------------------------------------------

    def test_00_lifecycle_and_process(self):
        d = self.create(labels={"suite": "lifecycle"}, env={"SBX": "one"})
        self.assertEqual(d["state"], "creating")
        self.assertEqual(d["toolboxProxyUrl"], "http://127.0.0.1:%d/toolbox" % self.port)
        self.addCleanup(self.delete_quietly, d["id"])
        self.wait_state(d["id"], "started")
        r = self.exec(d, "echo out; echo err >&2; echo $SBX $X; pwd; exit 3", envs={"X": "two"}, timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"exitCode": 3, "result": "out\nerr\none two\n/home/daytona\n"})
        self.assertEqual(self.exec(d, "pwd", cwd="/tmp").json()["result"], "/tmp\n")
        self.assertEqual(self.exec(d, "pwd", cwd="/nope").json()["exitCode"], -1)
        self.assertEqual(self.exec(d, "  ").status, 400)
        self.assertEqual(self.exec(d, "true", envs={"1X": "y"}).status, 400)
        t0 = time.time()
        r = self.exec(d, "sleep 30 & sleep 20; echo never", timeout=1)
        self.assertEqual(r.status, 408, r)
        self.assertEqual(r.json()["code"], "REQUEST_TIMEOUT")
        self.assertLess(time.time() - t0, 5)
        ps = self.exec(d, "ps -o args").json()["result"]
        self.assertNotIn("sleep", ps)
        # Stop: the toolbox answers 502 while stopping, 400 once stopped; lifecycle calls 409.
        r = self.req("POST", "/api/sandbox/%s/stop" % d["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["desiredState"], "stopped")
        self.assertEqual(self.req("POST", "/api/sandbox/%s/start" % d["id"]).status, 409)
        self.assertEqual(self.req("DELETE", "/api/sandbox/%s" % d["id"]).status, 409)
        self.assertEqual(self.exec(d, "true").status, 502)
        self.wait_state(d["id"], "stopped")
        r = self.exec(d, "true")
        self.assertEqual(r.status, 400)
        self.assertIn("Is the Sandbox started?", r.json()["message"])
        r = self.req("POST", "/api/sandbox/%s/start" % d["id"])
        self.assertEqual((r.status, r.json()["state"]), (200, "started"))
        self.assertEqual(self.exec(d, "echo back").json()["result"], "back\n")
        r = self.req("DELETE", "/api/sandbox/" + d["id"])
        self.assertEqual((r.status, r.json()["state"]), (200, "destroying"))
        self.assertEqual(self.exec(d, "true").status, 502)
        self.wait_state(d["id"], "gone")
        self.assertEqual(self.req("GET", "/api/sandbox/" + d["id"]).status, 404)
        self.assertEqual(self.exec(d, "true").status, 404)

    def test_sessions(self):
        d = self.started()
        self.assertEqual(self.tb(d, "POST", "/process/session", body={"sessionId": "s1"}).status, 201)
        self.assertEqual(self.tb(d, "POST", "/process/session", body={"sessionId": "s1"}).status, 409)
        r = self.tb(d, "POST", "/process/session/s1/exec",
                    body={"command": "cd /tmp; export X=42; echo hello; echo oops >&2; printf nonl", "runAsync": True})
        self.assertEqual(r.status, 202, r)
        cid = r.json()["cmdId"]
        for _ in range(200):
            c = self.tb(d, "GET", "/process/session/s1/command/" + cid).json()
            if "exitCode" in c:
                break
            time.sleep(0.05)
        self.assertEqual(c["exitCode"], 0)
        plain = self.tb(d, "GET", "/process/session/s1/command/%s/logs" % cid)
        self.assertTrue(plain.headers["content-type"].startswith("text/plain"))
        # stdout and stderr are labelled by two processes, so their order varies (as in the daemon).
        self.assertEqual(sorted(plain.body.split(b"\n")), [b"", b"hello", b"nonl", b"oops"])
        raw = self.tb(d, "GET", "/process/session/s1/command/%s/logs" % cid, headers={"X-Daytona-Split-Output": "true"})
        self.assertEqual(sorted(raw.body.split(b"\n")),
                         [b"", b"\x01\x01\x01hello", b"\x01\x01\x01nonl", b"\x02\x02\x02oops"])
        split = self.tb(d, "GET", "/process/session/s1/command/%s/logs" % cid,
                        headers={"X-Daytona-SDK-Version": "0.180.0"}).json()
        self.assertEqual((split["stdout"], split["stderr"]), ("hello\nnonl\n", "oops\n"))
        r = self.tb(d, "POST", "/process/session/s1/exec", body={"command": "pwd; echo $X; cat <<EOF\nheredoc\nEOF\nfalse"})
        self.assertEqual(r.status, 200)
        self.assertEqual((r.json()["output"], r.json()["exitCode"]), ("/tmp\n42\nheredoc\n", 1))
        r = self.tb(d, "POST", "/process/session/s1/exec", body={"command": "echo a; echo b >&2"},
                    headers={"X-Daytona-SDK-Version": "0.200.0"}).json()
        self.assertEqual((r["stdout"], r["stderr"]), ("a\n", "b\n"))
        # A long command: its logs grow; the WebSocket follow stream ends when it does.
        r = self.tb(d, "POST", "/process/session/s1/exec",
                    body={"command": "for i in 1 2 3; do echo line$i; sleep 0.2; done", "runAsync": True})
        cid = r.json()["cmdId"]
        self.assertNotIn("exitCode", self.tb(d, "GET", "/process/session/s1/command/" + cid).json())
        data = self.follow(d, "/process/session/s1/command/%s/logs?follow=true" % cid)
        self.assertEqual(data, b"line1\nline2\nline3\n")
        s = self.tb(d, "GET", "/process/session/s1").json()
        self.assertEqual(len(s["commands"]), 4)
        self.assertEqual(self.tb(d, "DELETE", "/process/session/s1").status, 204)
        self.assertEqual(self.tb(d, "GET", "/process/session/s1").status, 404)

    def follow(self, d, sub):
        base = urllib.parse.urlsplit(d["toolboxProxyUrl"]).path
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET %s/%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (base, d["id"], sub, key, KEY)).encode())
        f = s.makefile("rb")
        status = f.readline()
        self.assertIn(b" 101 ", status)
        accept = None
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"sec-websocket-accept:"):
                accept = line.split(b":", 1)[1].strip().decode()
        self.assertEqual(accept, base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B85").encode()).digest()).decode())
        out = b""
        while True:
            h = f.read(2)
            op, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                n = int.from_bytes(f.read(2), "big")
            elif n == 127:
                n = int.from_bytes(f.read(8), "big")
            payload = f.read(n)
            if op == 0x8:
                self.assertEqual(payload[:2], (1000).to_bytes(2, "big"))
                break
            out += payload
        s.close()
        return out

    def test_files(self):
        d = self.started()
        boundary = "b" + uuid.uuid4().hex
        big = os.urandom(3 << 20)

        def multipart(parts):
            out = b""
            for name, data in parts:
                out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"%s\r\n\r\n" % (
                    boundary, name, '; filename="f"' if name.endswith(".file") else "")).encode() + data + b"\r\n"
            return out + ("--%s--\r\n" % boundary).encode()

        ctype = "multipart/form-data; boundary=" + boundary
        r = self.tb(d, "POST", "/files/bulk-upload", ctype=ctype, raw=multipart([
            ("files[0].path", b"sub/dir/a.txt"), ("files[0].file", b"hello\n"),
            ("files[1].path", b"/tmp/big.bin"), ("files[1].file", big)]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"files": [{"path": "sub/dir/a.txt", "bytes": 6}, {"path": "/tmp/big.bin", "bytes": len(big)}]})
        info = self.tb(d, "GET", "/files/info?path=sub/dir/a.txt").json()
        self.assertEqual((info["name"], info["size"], info["isDir"], info["owner"], info["permissions"]),
                         ("a.txt", 6, False, "1000", "0644"))
        self.assertEqual(self.tb(d, "GET", "/files/info?path=/home/daytona/sub").json()["mode"], "drwxr-xr-x")
        self.assertEqual(self.tb(d, "GET", "/files/info?path=/nope").status, 404)
        r = self.tb(d, "GET", "/files/download?path=/tmp/big.bin")
        self.assertEqual((r.status, r.headers["content-type"], r.body == big), (200, "application/octet-stream", True))
        self.assertEqual(self.tb(d, "GET", "/files/download?path=/tmp").status, 400)
        self.assertEqual(self.tb(d, "GET", "/files/download?path=/nope").status, 404)
        self.assertEqual(self.tb(d, "POST", "/files/folder?path=/tmp/n/m&mode=0700").status, 201)
        self.assertEqual(self.tb(d, "GET", "/files/info?path=/tmp/n/m").json()["permissions"], "0700")
        names = [f["name"] for f in self.tb(d, "GET", "/files?path=/tmp").json()]
        self.assertIn("big.bin", names)
        self.assertEqual(self.tb(d, "DELETE", "/files?path=/tmp/n").status, 400)
        self.assertEqual(self.tb(d, "DELETE", "/files?path=/tmp/n&recursive=true").status, 204)
        self.assertEqual(self.tb(d, "DELETE", "/files?path=/tmp/n").status, 404)
        # Chunked request body.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        base = urllib.parse.urlsplit(d["toolboxProxyUrl"]).path
        body = multipart([("files[0].path", b"c.bin"), ("files[0].file", big)])
        conn.request("POST", "%s/%s/files/bulk-upload" % (base, d["id"]),
                     body=iter([body[i:i + 100000] for i in range(0, len(body), 100000)]),
                     headers={"Authorization": "Bearer " + KEY, "Content-Type": ctype}, encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual((r.status, json.loads(r.read())), (200, {"files": [{"path": "c.bin", "bytes": len(big)}]}))
        conn.close()
        # Uploads the spec layout forbids: counted as rejections.
        before = self.stats()["rejected"]
        r = self.tb(d, "POST", "/files/bulk-upload", ctype=ctype, raw=multipart([("files[0].file", b"x"), ("files[0].path", b"y")]))
        self.assertEqual(r.status, 400)
        r = self.tb(d, "POST", "/files/bulk-upload", ctype=ctype, raw=multipart([("file", b"x")]))
        self.assertEqual(r.status, 400)
        st = self.stats()
        self.assertEqual(st["rejected"], before + 2)
        self.assertIn("before its files[0].path", st["rejections"][-2])

    def test_faults(self):
        # fail=error: create waits, then answers 400 like the real controller; the sandbox exists.
        r = self.req("POST", "/api/sandbox", {"labels": {"test.daytona/fail": "error", "suite": "faults"}})
        self.assertEqual(r.status, 400)
        self.assertIn("Sandbox failed to start", r.json()["message"])
        items = self.req("GET", "/api/sandbox?labels=" + urllib.parse.quote(json.dumps({"suite": "faults"}))).json()["items"]
        self.assertEqual([i["state"] for i in items], ["error"])
        self.assertEqual(self.req("POST", "/api/sandbox/%s/start" % items[0]["id"]).status, 400)
        self.delete_quietly(items[0]["id"])
        # build_failed with buildInfo
        d = self.create(buildInfo={"dockerfileContent": "FROM python:3.12\n"}, cpu=2,
                        labels={"test.daytona/fail": "build_failed"})
        self.assertEqual(d["state"], "pending_build")
        self.addCleanup(self.delete_quietly, d["id"])
        self.wait_state(d["id"], "build_failed")
        # toolbox-502 and conflict-409
        d = self.started(labels={"test.daytona/toolbox-502": "2", "test.daytona/conflict-409": "1"})
        self.assertEqual([self.exec(d, "true").status for _ in range(3)], [502, 502, 200])
        self.assertEqual(self.req("POST", "/api/sandbox/%s/stop" % d["id"]).status, 409)
        self.assertEqual(self.req("POST", "/api/sandbox/%s/stop" % d["id"]).status, 200)
        # slow start: creating/starting last; the create call itself returns "creating"
        # (POST /sandbox waits up to 30 s for "started" but returns the DTO from before waiting)
        t0 = time.time()
        d = self.create(labels={"test.daytona/slow-start": "1.5"})
        self.assertGreater(time.time() - t0, 1.5)
        self.assertEqual(d["state"], "creating")
        self.addCleanup(self.delete_quietly, d["id"])
        self.wait_state(d["id"], "started")
        self.req("POST", "/_test/config", raw=b'{"createWait":0}')
        try:
            d = self.create(labels={"test.daytona/slow-start": "1"})
            self.addCleanup(self.delete_quietly, d["id"])
            self.assertEqual(self.exec(d, "true").status, 502)
            self.assertEqual(self.req("POST", "/api/sandbox/%s/stop" % d["id"]).status, 409)
            self.assertIn("starting", self.wait_state(d["id"], "started"))
        finally:
            self.req("POST", "/_test/config", raw=b'{"createWait":30}')
        # fail-after: a running sandbox goes to error; the toolbox then answers 502
        d = self.started(labels={"test.daytona/fail-after": "0.5"})
        self.wait_state(d["id"], "error")
        self.assertEqual(self.exec(d, "true").status, 502)
        # ephemeral: stop destroys
        d = self.create(autoDeleteInterval=0)
        self.wait_state(d["id"], "started")
        self.assertEqual(self.req("POST", "/api/sandbox/%s/stop" % d["id"]).status, 200)
        self.wait_state(d["id"], "gone")

    def test_list_names_auth(self):
        name = "n-" + uuid.uuid4().hex[:8]
        a = self.started(name=name, labels={"suite": "list"})
        self.started(labels={"suite": "list"})
        self.assertEqual(self.req("POST", "/api/sandbox", {"name": name}).status, 409)
        self.assertEqual(self.req("GET", "/api/sandbox/" + name).json()["id"], a["id"])
        q = "/api/sandbox?limit=1&labels=" + urllib.parse.quote(json.dumps({"suite": "list"}))
        p1 = self.req("GET", q).json()
        self.assertEqual(len(p1["items"]), 1)
        p2 = self.req("GET", q + "&cursor=" + p1["nextCursor"]).json()
        self.assertEqual((len(p2["items"]), p2["nextCursor"]), (1, None))
        self.assertNotIn("env", p1["items"][0])
        self.req("POST", "/_test/config", raw=b'{"listShape":"array"}')
        try:
            arr = self.req("GET", "/api/sandbox?labels=" + urllib.parse.quote(json.dumps({"suite": "list"}))).json()
            self.assertEqual(len(arr), 2)
            self.assertIn("env", arr[0])
        finally:
            self.req("POST", "/_test/config", raw=b'{"listShape":"object"}')
        before = self.stats()["unauthorized"]
        for key in ("wrong", EXPIRED, None):
            r = self.req("GET", "/api/sandbox", key=key)
            self.assertEqual((r.status, r.json()["message"], r.json()["error"]), (401, "Unauthorized", "Unauthorized"))
        r = self.tb(a, "POST", "/process/execute", body={"command": "true"}, key="wrong")
        self.assertEqual((r.status, r.json()["code"]), (401, "UNAUTHORIZED"))
        self.assertEqual(self.stats()["unauthorized"], before + 4)
        r = self.req("POST", "/api/sandbox", {"snapshot": "test-missing-x"})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.req("POST", "/api/sandbox", {"snapshot": "x", "cpu": 2}).status, 400)

    def test_zz_counts(self):
        st = self.stats()
        self.assertGreater(st["validated"], 0)
        self.assertEqual(st["response_violations"], 0, st["response_violation_list"])
        self.assertGreater(st["response_checked"], 0)
        bad = self.req("POST", "/api/sandbox", {"image": "x"})
        self.assertEqual((bad.status, bad.headers.get("x-daytona-test-rejected")), (400, "1"))
        self.assertEqual(self.stats()["rejected"], st["rejected"] + 1)
        self.assertEqual(self.req("POST", "/_test/reset").status, 204)
        st = self.stats()
        self.assertEqual((st["validated"], st["rejected"], st["rejections"]), (0, 0, []))
        for _ in range(100):
            st = self.stats()
            if st["sandboxes_alive"] == 0 and st["containers_alive"] == 0:
                break
            time.sleep(0.1)
        self.assertEqual((st["sandboxes_alive"], st["containers_alive"]), (0, 0))


if __name__ == "__main__":
    unittest.main()
