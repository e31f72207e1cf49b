"""NATS for the cluster tests: nats-server processes and a small client.

Used by tests/e2e/test_cluster.py and tests/bench/cluster (standard library
only). NatsServer runs Debian's nats-server with JetStream on a free
loopback port and a store in a temp dir; NatsCluster runs three of them
with routes (a JetStream cluster). Client speaks the NATS text protocol
(PUB, HPUB, SUB, MSG, HMSG) to publish, subscribe and make requests, and
the JetStream API through it, which is all the tests need.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def nats_available():
    return os.access(NATS_SERVER, os.X_OK)


def free_port():
    """A loopback TCP port free right now (the server binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


class NatsServer:
    """One nats-server -js on 127.0.0.1:port with its store in tmp/NAME."""

    def __init__(self, tmp, name="nats", port=None, cluster_port=None, routes=(),
                 cluster_name=None):
        self.tmp = tmp
        self.name = name
        self.port = port or free_port()
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.cluster_name = cluster_name
        self.store = os.path.join(tmp, name + "-store")
        self.log = os.path.join(tmp, name + ".log")
        self.conf = os.path.join(tmp, name + ".conf")
        self.proc = None

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def write_conf(self):
        lines = ['server_name: "%s"' % self.name, "listen: 127.0.0.1:%d" % self.port,
                 'jetstream { store_dir: "%s" }' % self.store]
        if self.cluster_port:
            lines.append('cluster { name: "%s"\n listen: 127.0.0.1:%d\n routes: [%s] }'
                         % (self.cluster_name, self.cluster_port,
                            ", ".join("nats-route://127.0.0.1:%d" % p for p in self.routes)))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, wait=True):
        self.write_conf()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nats-server %s exited: %s" % (self.name, self.log_tail()))
            if port_open(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError("nats-server %s did not listen in %ds: %s"
                           % (self.name, timeout, self.log_tail()))

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class NatsCluster:
    """Three nats-servers with routes between them (JetStream replicas up to 3)."""

    server_class = NatsServer

    def __init__(self, tmp, n=3):
        ports = [free_port() for _ in range(n)]
        cports = [free_port() for _ in range(n)]
        self.servers = [self.server_class(tmp, "nats%d" % i, ports[i], cports[i],
                                   [p for j, p in enumerate(cports) if j != i], "taskd-test")
                        for i in range(n)]

    @property
    def url(self):
        return ",".join(s.url for s in self.servers)

    def start(self):
        for s in self.servers:
            s.start(wait=False)
        for s in self.servers:
            s.wait_ready()
        return self

    def stop(self):
        for s in self.servers:
            s.stop()


class NatsError(Exception):
    pass


class Client:
    """A NATS connection (text protocol over TCP), synchronous and small."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sid = 0
        info = self._line()
        if not info.startswith(b"INFO "):
            raise NatsError("not a NATS server: %r" % info[:80])
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1}\r\nPING\r\n')
        self._expect_pong()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise NatsError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _expect_pong(self):
        while True:
            line = self._line()
            if line == b"PONG":
                return
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode(errors="replace"))

    def flush(self):
        self.sock.sendall(b"PING\r\n")
        self._expect_pong()

    def publish(self, subject, data=b"", reply=None, headers=None):
        if isinstance(data, str):
            data = data.encode()
        r = (" " + reply) if reply else ""
        if headers:
            h = "NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
            h = h.encode()
            self.sock.sendall(b"HPUB %s%s %d %d\r\n" % (subject.encode(), r.encode(), len(h),
                                                         len(h) + len(data)) + h + data + b"\r\n")
        else:
            self.sock.sendall(b"PUB %s%s %d\r\n" % (subject.encode(), r.encode(), len(data))
                              + data + b"\r\n")

    def subscribe(self, subject):
        self.sid += 1
        self.sock.sendall(b"SUB %s %d\r\n" % (subject.encode(), self.sid))
        return self.sid

    def next_msg(self, timeout=5.0):
        """(subject, reply, headers, data) of the next message; NatsError on timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                line = self._line()
                if line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
                    continue
                if line in (b"PONG", b"+OK") or line.startswith(b"INFO"):
                    continue
                parts = line.split()
                if parts[0] == b"MSG":
                    reply = parts[3].decode() if len(parts) == 5 else None
                    data = self._bytes(int(parts[-1]))
                    return parts[1].decode(), reply, {}, data
                if parts[0] == b"HMSG":
                    reply = parts[3].decode() if len(parts) == 6 else None
                    hlen, total = int(parts[-2]), int(parts[-1])
                    raw = self._bytes(total)
                    headers = {}
                    hl = raw[:hlen].decode(errors="replace").split("\r\n")
                    if hl and hl[0].startswith("NATS/1.0"):
                        status = hl[0][len("NATS/1.0"):].strip()
                        if status:
                            headers["Status"] = status.split()[0]
                    for h in hl[1:]:
                        if ":" in h:
                            k, v = h.split(":", 1)
                            headers[k.strip()] = v.strip()
                    return parts[1].decode(), reply, headers, raw[hlen:]
                if parts[0] == b"-ERR":
                    raise NatsError(line.decode(errors="replace"))
        except socket.timeout:
            raise NatsError("no message within %.1fs" % timeout)
        finally:
            self.sock.settimeout(5.0)

    def request(self, subject, data=b"", timeout=5.0, headers=None):
        inbox = "_INBOX.t%d%d" % (os.getpid(), int(time.monotonic() * 1e6))
        sid = self.subscribe(inbox)
        self.publish(subject, data, reply=inbox, headers=headers)
        try:
            _, _, hdrs, payload = self.next_msg(timeout)
        finally:
            self.sock.sendall(b"UNSUB %d\r\n" % sid)
        if hdrs.get("Status") == "503":
            raise NatsError("no responders on %s" % subject)
        return payload

    def js(self, api, body=None, timeout=5.0):
        """A JetStream API request ($JS.API.<api>) → the parsed answer."""
        data = json.dumps(body).encode() if body is not None else b""
        return json.loads(self.request("$JS.API." + api, data, timeout))

    def kv_get(self, bucket, key):
        """The last value of key in a bucket (None if none)."""
        r = self.js("STREAM.MSG.GET.KV_%s" % bucket, {"last_by_subj": "$KV.%s.%s" % (bucket, key)})
        if "error" in r:
            return None
        import base64
        return base64.b64decode(r["message"].get("data", ""))


def tempdir(prefix="taskd-nats-"):
    return tempfile.mkdtemp(prefix=prefix)
