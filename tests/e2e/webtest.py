"""HTTP helpers for the tests of taskd's HTTP endpoint (test_http, test_prometheus,
test_dashboard, test_notify). Standard library only.

    d = start_http_daemon(self, token=True)      # a taskd with http.listen on a free port
    st, hdrs, body = get(d, "/api/status")       # with the token
    st, hdrs, body = get(d, "/metrics", token=None)
    for ev, data in sse(d, "/api/events", until=...): ...
"""

import http.client
import json
import os
import secrets
import socket
import time

from harness import wait_for

def free_port():
    """A TCP port free on 127.0.0.1 right now (for programs that need one given)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_token(directory):
    token = secrets.token_urlsafe(24)
    path = os.path.join(directory, "http.token")
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path


def http_overrides(d_tmp, token=True, extra=None):
    """Config overrides for an endpoint on 127.0.0.1 (a free port); (overrides, token)."""
    o = {"http.listen": "127.0.0.1:0"}
    tok = None
    if token:
        tok, path = write_token(d_tmp)
        o["http.token_file"] = path
    o.update(extra or {})
    return o, tok


def start_http_daemon(case, token=True, extra=None, **kw):
    """A taskd (case.start_daemon) serving HTTP; d.http = (host, port), d.token."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="taskd-e2e-")
    o, tok = http_overrides(tmp, token, extra)
    d = case.start_daemon(o, tmpdir=tmp, **kw)
    attach_http(d, tok)
    return d


def attach_http(d, token):
    addr = d.status()["http"]
    host, _, port = addr.rpartition(":")
    d.http = (host.strip("[]"), int(port))
    d.token = token
    return d


def request(d, path, method="GET", headers=None, token="default", body=None, timeout=10):
    """One request on a new connection: (status, headers dict (lower-case keys), body bytes)."""
    h = dict(headers or {})
    if token == "default":
        token = d.token
    if token is not None:
        h["Authorization"] = "Bearer " + token
    c = http.client.HTTPConnection(d.http[0], d.http[1], timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def get(d, path, **kw):
    return request(d, path, **kw)


def get_json(d, path, **kw):
    st, h, body = request(d, path, **kw)
    return st, json.loads(body) if body else None


def raw(d, data, read_timeout=5.0):
    """Send raw bytes on a new connection; what comes back until the peer closes or timeout."""
    s = socket.create_connection(d.http, timeout=read_timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


class SSE:
    """A Server-Sent Events stream: next_event() -> (event name, data) or None on timeout."""

    def __init__(self, d, path="/api/events", token="default", timeout=10):
        if token == "default":
            token = d.token
        self.sock = socket.create_connection(d.http, timeout=timeout)
        auth = "Authorization: Bearer %s\r\n" % token if token else ""
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sAccept: text/event-stream"
                           "\r\n\r\n" % (path, auth)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill(timeout)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.decode().partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.text = b""  # de-chunked body not yet parsed into events

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("stream closed")
        self.buf += chunk

    def _dechunk(self):
        if not self.chunked:
            self.text += self.buf
            self.buf = b""
            return
        while b"\r\n" in self.buf:
            size_line, _, rest = self.buf.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if len(rest) < n + 2:
                return
            if n == 0:
                raise EOFError("stream ended")
            self.text += rest[:n]
            self.buf = rest[n + 2:]

    def next_event(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            while b"\n\n" in self.text:
                block, _, self.text = self.text.partition(b"\n\n")
                name, data = "message", []
                for line in block.decode().split("\n"):
                    if line.startswith(":") or not line:
                        continue
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "event":
                        name = v
                    elif k == "data":
                        data.append(v)
                if data:
                    return name, "\n".join(data)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self._fill(left)
            except socket.timeout:
                return None

    def close(self):
        self.sock.close()
