"""HTTP/1.1 request-body reading (Content-Length and chunked) and a streaming multipart parser.

Bodies are read in bounded chunks so that gigabyte uploads pass through in constant memory.
"""

from __future__ import annotations

import re


class BodyError(Exception):
    pass


class BodyReader:
    """The request body of one HTTP/1.1 request, decoded from Content-Length or chunked."""

    def __init__(self, rfile, headers):
        self.rfile = rfile
        te = (headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        self.declared_length: int | None = None
        self.remaining = 0
        self.finished = False
        self.bytes_read = 0
        self._chunk_left = 0
        if not self.chunked:
            cl = headers.get("Content-Length")
            if cl is not None:
                try:
                    self.remaining = int(cl)
                except ValueError:
                    raise BodyError("bad Content-Length %r" % cl) from None
                if self.remaining < 0:
                    raise BodyError("bad Content-Length %r" % cl)
                self.declared_length = self.remaining
            self.finished = self.remaining == 0

    @property
    def present(self) -> bool:
        return self.chunked or (self.declared_length or 0) > 0

    def read(self, n: int = 1 << 20) -> bytes:
        """Up to n bytes; b"" at the end of the body."""
        if self.finished:
            return b""
        if not self.chunked:
            data = self.rfile.read1(min(n, self.remaining)) if hasattr(self.rfile, "read1") \
                else self.rfile.read(min(n, self.remaining))
            if not data:
                raise BodyError("connection closed with %d body bytes missing" % self.remaining)
            self.remaining -= len(data)
            self.bytes_read += len(data)
            if self.remaining == 0:
                self.finished = True
            return data
        while self._chunk_left == 0:
            line = self.rfile.readline(1024)
            if not line:
                raise BodyError("connection closed inside a chunked body")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BodyError("bad chunk size line %r" % line[:40]) from None
            if size == 0:
                while True:  # trailers
                    t = self.rfile.readline(8192)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                self.finished = True
                return b""
            self._chunk_left = size
        data = self.rfile.read1(min(n, self._chunk_left)) if hasattr(self.rfile, "read1") \
            else self.rfile.read(min(n, self._chunk_left))
        if not data:
            raise BodyError("connection closed inside a chunk")
        self._chunk_left -= len(data)
        self.bytes_read += len(data)
        if self._chunk_left == 0:
            if self.rfile.read(2) not in (b"\r\n",):
                raise BodyError("chunk not followed by CRLF")
        return data

    def read_all(self, limit: int) -> bytes:
        out = bytearray()
        while True:
            data = self.read(1 << 20)
            if not data:
                return bytes(out)
            out += data
            if len(out) > limit:
                raise BodyError("body larger than %d bytes" % limit)

    def drain(self, limit: int | None = None) -> bool:
        """Reads and discards the rest; False if more than `limit` bytes remain (then the caller
        closes the connection instead)."""
        if self.finished:
            return True
        if limit is not None and not self.chunked and self.remaining > limit:
            return False
        seen = 0
        while True:
            data = self.read(1 << 20)
            if not data:
                return True
            seen += len(data)
            if limit is not None and seen > limit:
                return False


_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_header_params(value: str) -> tuple[str, dict]:
    """'form-data; name="a"; filename="b"' -> ('form-data', {'name': 'a', 'filename': 'b'})."""
    main, _, rest = value.partition(";")
    params = {}
    for m in _PARAM_RE.finditer(";" + rest):
        v = m.group(2).strip()
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[m.group(1).lower()] = v
    return main.strip().lower(), params


class MultipartError(Exception):
    pass


class MultipartReader:
    """Streams the parts of a multipart body. Use next_part() -> Part | None, and read the
    part's data with part.read() until b"" before asking for the next part."""

    def __init__(self, body: BodyReader, boundary: str):
        self.body = body
        self.delim = b"--" + boundary.encode("latin-1")
        self.sep = b"\r\n" + self.delim
        self.buf = bytearray()
        self.eof = False
        self.started = False
        self.done = False
        self.current: Part | None = None

    def _fill(self, want: int) -> bool:
        while len(self.buf) < want and not self.eof:
            data = self.body.read(1 << 20)
            if not data:
                self.eof = True
                break
            self.buf += data
        return len(self.buf) >= want

    def next_part(self) -> "Part | None":
        if self.done:
            return None
        if self.current is not None:
            while self.current.read():
                pass
        if not self.started:
            # Preamble: find the first delimiter (at the start or after CRLF).
            while True:
                self._fill(len(self.delim) + 2)
                i = self.buf.find(self.delim)
                if i >= 0 and (i == 0 or self.buf[i - 2:i] == b"\r\n"):
                    del self.buf[:i + len(self.delim)]
                    break
                if self.eof:
                    raise MultipartError("no multipart boundary %r in the body" % self.delim.decode("latin-1"))
                keep = len(self.delim) + 1
                if len(self.buf) > keep:
                    del self.buf[:len(self.buf) - keep]
                if not self._fill(len(self.buf) + 1):
                    raise MultipartError("no multipart boundary in the body")
            self.started = True
        # After a delimiter: "--" ends the body, else CRLF and headers follow.
        self._fill(2)
        if self.buf[:2] == b"--":
            self.done = True
            return None
        while self.buf[:1] in (b" ", b"\t"):
            del self.buf[:1]
            self._fill(2)
        if self.buf[:2] != b"\r\n":
            raise MultipartError("malformed multipart delimiter line")
        del self.buf[:2]
        headers: dict[str, str] = {}
        while True:
            while b"\r\n" not in self.buf:
                if len(self.buf) > 16384:
                    raise MultipartError("multipart part header too long")
                if not self._fill(len(self.buf) + 1):
                    raise MultipartError("multipart body ends inside part headers")
            i = self.buf.find(b"\r\n")
            line = bytes(self.buf[:i])
            del self.buf[:i + 2]
            if not line:
                break
            name, _, value = line.decode("utf-8", "replace").partition(":")
            headers[name.strip().lower()] = value.strip()
        part = Part(self, headers)
        self.current = part
        return part


class Part:
    def __init__(self, reader: MultipartReader, headers: dict):
        self.reader = reader
        self.headers = headers
        disp, params = parse_header_params(headers.get("content-disposition", ""))
        self.disposition = disp
        self.name = params.get("name")
        self.filename = params.get("filename")
        self.finished = False

    def read(self, n: int = 1 << 20) -> bytes:
        if self.finished:
            return b""
        r = self.reader
        sep = r.sep
        while True:
            i = r.buf.find(sep)
            if i >= 0:
                if i == 0:
                    del r.buf[:len(sep)]
                    self.finished = True
                    return b""
                take = min(i, n)
                data = bytes(r.buf[:take])
                del r.buf[:take]
                return data
            safe = len(r.buf) - (len(sep) - 1)
            if safe > 0:
                take = min(safe, n)
                data = bytes(r.buf[:take])
                del r.buf[:take]
                return data
            if r.eof:
                raise MultipartError("multipart body ends inside a part (no closing boundary)")
            r._fill(len(r.buf) + (1 << 20))

    def read_all(self, limit: int) -> bytes:
        out = bytearray()
        while True:
            d = self.read()
            if not d:
                return bytes(out)
            out += d
            if len(out) > limit:
                raise MultipartError("part %r larger than %d bytes" % (self.name, limit))
