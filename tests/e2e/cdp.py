"""Headless Chromium driven over its DevTools protocol, standard library only.

Used by tests/e2e/test_dashboard.py:

    with Browser() as b:                 # one Chromium per test file
        page = b.page()
        page.navigate("http://127.0.0.1:9181/")
        page.wait_for("document.readyState === 'complete'")
        page.evaluate("1 + 1")           # -> 2
        page.screenshot("/tmp/x.png")
        page.errors                      # console errors, uncaught exceptions, failed loads

Chromium (Debian's `chromium`) runs headless with a fresh profile in a temp
directory and without any background networking (this machine's network is
closed: component updates, sync and the like would only log errors). It
listens for DevTools on a free loopback port it picks itself
(--remote-debugging-port=0, read back from DevToolsActivePort). The
WebSocket client below is the minimum RFC 6455 needs for that: a client
handshake, masked text frames out, text/binary/continuation/ping/close in.
"""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--no-default-browser-check", "--password-store=basic", "--use-mock-keychain",
    "--window-size=1280,1000", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(Exception):
    pass


class WebSocket:
    """A blocking client WebSocket (ws:// only) for one DevTools target."""

    def __init__(self, url, timeout=10.0):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CDPError("websocket handshake: connection closed")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise CDPError("websocket handshake refused: %r" % head[:200])

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise CDPError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_text(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def recv_text(self, timeout):
        """The next text message; None when timeout passes first."""
        self.sock.settimeout(timeout)
        parts = []
        try:
            while True:
                b0, b1 = self._recv_exact(2)
                fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._recv_exact(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._recv_exact(8))[0]
                mask = self._recv_exact(4) if b1 & 0x80 else None
                payload = self._recv_exact(n)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                if op == 0x8:
                    raise CDPError("websocket closed by Chromium")
                if op == 0x9:  # ping: answer with the same payload
                    self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) +
                                      b"\0\0\0\0" + payload)
                    continue
                if op in (0x1, 0x2, 0x0):
                    parts.append(payload)
                    if fin:
                        return b"".join(parts).decode()
        except socket.timeout:
            if parts:
                raise CDPError("websocket: message cut short")
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Page:
    """One tab: commands, events, console errors."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []
        self.errors = []
        self.console = []
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(domain + ".enable")

    def _note(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append((p.get("type"), text))
            if p.get("type") in ("error", "assert"):
                self.errors.append("console.%s: %s" % (p.get("type"), text))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: %s %s" % (d.get("text", ""),
                                                    d.get("exception", {}).get("description", "")))
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") == "error":
                self.errors.append("log: %s (%s)" % (e.get("text"), e.get("url", "")))
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            self.errors.append("load failed: %s" % p.get("errorText"))
        self.events.append(msg)

    def call(self, method, timeout=15.0, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send_text(json.dumps({"id": my, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("%s: no answer within %.0f s" % (method, timeout))
            raw = self.ws.recv_text(left)
            if raw is None:
                continue
            msg = json.loads(raw)
            if msg.get("id") == my:
                if "error" in msg:
                    raise CDPError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self._note(msg)

    def pump(self, seconds):
        """Take in events for a while."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            raw = self.ws.recv_text(left)
            if raw is not None:
                self._note(json.loads(raw))

    def navigate(self, url, timeout=15.0):
        self.events = []
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise CDPError("no load event for %s within %.0f s" % (url, timeout))
            self.pump(0.05)

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise CDPError("evaluate %r: %s" % (expr, r["exceptionDetails"].get("text")))
        return r.get("result", {}).get("value")

    def wait_for(self, expr, timeout=10.0, interval=0.05):
        """Poll expr until it is truthy; its value, or CDPError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.evaluate(expr)
            if v:
                return v
            if time.monotonic() > deadline:
                raise CDPError("timed out after %.1f s waiting for %s" % (timeout, expr))
            self.pump(interval)

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def close(self):
        self.ws.close()


class Browser:
    """A headless Chromium with a fresh profile; stop() kills it and removes the profile."""

    def __init__(self, binary=None, start_timeout=30.0):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise CDPError("chromium is not installed (apt-get install chromium)")
        self.dir = tempfile.mkdtemp(prefix="taskd-chromium-")
        self.log = open(os.path.join(self.dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [self.binary] + CHROMIUM_FLAGS + ["--user-data-dir=" + os.path.join(self.dir, "profile"),
                                              "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        port_file = os.path.join(self.dir, "profile", "DevToolsActivePort")
        deadline = time.monotonic() + start_timeout
        self.port = None
        while self.port is None:
            if self.proc.poll() is not None:
                raise CDPError("chromium exited with %d: %s" % (self.proc.returncode, self.log_tail()))
            try:
                with open(port_file) as f:
                    first = f.readline().strip()
                if first:
                    self.port = int(first)
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise CDPError("chromium did not open its DevTools port within %.0f s"
                               % start_timeout)
            time.sleep(0.05)

    def log_tail(self, n=2000):
        try:
            with open(os.path.join(self.dir, "chromium.log"), "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def _json(self, path, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path)
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()

    def page(self):
        """A new tab."""
        t = self._json("/json/new?about:blank", method="PUT")
        return Page(t["webSocketDebuggerUrl"])

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
