#!/usr/bin/python3
"""End-to-end tests of the HTTP endpoint (http.listen): /metrics (checked by
promtool), the token, routes and methods, the API against the socket's own
answers, the event stream, and bad input: malformed requests, huge headers
and bodies, slow clients, 1,000 idle connections, foreign Host headers, and
the rules of who sees what (a root taskd without a token; a unix socket
path, where each user sees their own jobs)."""

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import unittest

from harness import Daemon, E2ETestCase, TASKCTL, TASKD, wait_for
import webtest as W

RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
PROMTOOL = shutil.which("promtool")


def metric(text, name, labels=None):
    """The value of one sample in exposition text (labels: dict that must match), or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if labels is None or all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


class HttpTest(E2ETestCase):
    """One taskd with a token for most tests."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-")
        o, tok = W.http_overrides(tmp, True, {"http.timeout": 2, "http.max_connections": 32})
        d = Daemon(o, start=False, tmpdir=tmp)
        cls.addClassCleanup(d.cleanup)
        d.start()
        W.attach_http(d, tok)
        cls.d = d

    def serves(self):
        """The endpoint and the socket both answer, quickly."""
        t0 = time.monotonic()
        st, _, body = W.get(self.d, "/api/status")
        self.assertEqual(st, 200, body)
        self.assertIn("version", json.loads(body))
        self.assertLess(time.monotonic() - t0, 2.0, "the endpoint answered slowly")
        self.assertEqual(self.d.status()["version"], json.loads(body)["version"])

    # -- /metrics

    def test_metrics_formats(self):
        jid = self.d.submit(["true"], **{"class": "io"})
        self.d.wait_job(jid)
        st, h, body = W.get(self.d, "/metrics", token=None)  # no token needed
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode()
        self.assertIn("# TYPE taskd_jobs_finished_total counter", text)
        self.assertGreaterEqual(metric(text, "taskd_jobs_finished_total",
                                       {"class": "io", "state": "done"}), 1)
        self.assertGreaterEqual(metric(text, "taskd_job_duration_seconds_count",
                                       {"class": "io"}), 1)
        self.assertEqual(metric(text, "taskd_job_duration_seconds_bucket",
                                {"class": "io", "le": "+Inf"}),
                         metric(text, "taskd_job_duration_seconds_count", {"class": "io"}))
        self.assertIsNotNone(metric(text, "taskd_store_commit_seconds_count"))
        self.assertIsNotNone(metric(text, "taskd_process_pool_workers", {"state": "idle"}))
        self.assertIsNotNone(metric(text, "taskd_http_connections"))
        self.assertEqual(metric(text, "taskd_build_info"), 1)
        self.assertFalse(text.rstrip().endswith("# EOF"))
        # What Prometheus asks for: OpenMetrics, ending in # EOF.
        st, h, body = W.get(self.d, "/metrics", token=None, headers={
            "Accept": "application/openmetrics-text;version=1.0.0,"
                      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"],
                         "application/openmetrics-text; version=1.0.0; charset=utf-8")
        om = body.decode()
        self.assertTrue(om.endswith("# EOF\n"))
        self.assertIn("# TYPE taskd_jobs_finished counter", om)
        self.assertIn("# UNIT taskd_job_duration_seconds seconds", om)
        self.assertIn("# TYPE taskd_build info", om)
        # HEAD: the headers only.
        st, h, body = W.request(self.d, "/metrics", method="HEAD", token=None)
        self.assertEqual(st, 200)
        self.assertEqual(body, b"")

    @unittest.skipUnless(PROMTOOL, "promtool not installed (apt-get install prometheus)")
    def test_promtool_check(self):
        self.d.wait_job(self.d.submit(["sh", "-c", "exit 3"]))
        _, _, body = W.get(self.d, "/metrics", token=None)
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        # Nothing to say: no lint problem either.
        self.assertEqual(p.stdout.strip() + p.stderr.strip(), b"")

    # -- the token, routes, methods

    def test_token_required(self):
        for path in ("/", "/app.js", "/api/status", "/api/jobs", "/api/jobs/1",
                     "/api/events", "/nope"):
            for tok in (None, "wrong-token-wrong-token", self.d.token + "x", ""):
                st, h, body = W.get(self.d, path, token=tok)
                self.assertEqual(st, 401, (path, tok, body))
                self.assertEqual(h.get("www-authenticate"), 'Bearer realm="taskd"')
                self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")
                self.assertNotIn(b"version", body)
        # In the query: the page sets a cookie for the browser's next requests.
        st, h, body = W.get(self.d, "/?access_token=" + self.d.token, token=None)
        self.assertEqual(st, 200)
        self.assertIn(b"<title>taskd</title>", body)
        cookie = h["set-cookie"]
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        st, _, _ = W.get(self.d, "/api/status", token=None,
                         headers={"Cookie": cookie.split(";")[0]})
        self.assertEqual(st, 200)
        st, _, _ = W.get(self.d, "/api/status", token=None, headers={"Cookie": "taskd_token=x"})
        self.assertEqual(st, 401)
        st, _, _ = W.get(self.d, "/api/status?access_token=nope", token=None)
        self.assertEqual(st, 401)

    def test_pages_and_headers(self):
        st, h, body = W.get(self.d, "/")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        self.assertIn("script-src 'self'", h["content-security-policy"])
        self.assertEqual(h["x-content-type-options"], "nosniff")
        self.assertIn(b'src="/app.js"', body)
        for path, ctype in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
            st, h, body = W.get(self.d, path)
            self.assertEqual(st, 200, path)
            self.assertTrue(h["content-type"].startswith(ctype), h)
            self.assertGreater(len(body), 500)
            st, _, body = W.get(self.d, path, headers={"If-None-Match": h["etag"]})
            self.assertEqual(st, 304)
            self.assertEqual(body, b"")

    def test_large_answers_not_delayed(self):
        # An answer over 16 KiB ends in a small TCP segment: without TCP_NODELAY it
        # waits for the client's delayed ACK (40 ms) on every request of a connection.
        import http.client
        c = http.client.HTTPConnection(*self.d.http, timeout=10)
        self.addCleanup(c.close)
        times = []
        for _ in range(15):
            t0 = time.monotonic()
            c.request("GET", "/app.js", headers={"Authorization": "Bearer " + self.d.token})
            r = c.getresponse()
            body = r.read()
            times.append(time.monotonic() - t0)
            self.assertEqual(r.status, 200)
        self.assertGreater(len(body), 16384)
        # Held by Nagle, every answer waits at least the 40 ms ACK delay; without, on a
        # busy machine too, some answer comes at once.
        self.assertLess(min(times), 0.035, "fastest answer %.1f ms" % (min(times) * 1000))

    def test_not_found(self):
        for path in ("/nope", "/api", "/api/", "/api/nope", "/api/jobs/abc", "/api/jobs/1/nope",
                     "/api/status/x", "/../etc/passwd", "/app.js/x"):
            st, _, body = W.get(self.d, path)
            self.assertEqual(st, 404, path)
            self.assertEqual(json.loads(body)["error"]["code"], "not_found", path)
        st, _, body = W.get(self.d, "/api/jobs/999999")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["error"]["message"], "no such job 999999")

    def test_read_only(self):
        before = self.d.status()["jobs"]
        body = json.dumps({"argv": ["touch", "/tmp/taskd-http-was-here"]}).encode()
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            for path in ("/api/jobs", "/api/status", "/api/jobs/1", "/", "/metrics"):
                st, h, resp = W.request(self.d, path, method=method, body=body,
                                        headers={"Content-Type": "application/json"})
                self.assertEqual(st, 405, (method, path, resp))
                self.assertEqual(h["allow"], "GET, HEAD")
        self.assertEqual(self.d.status()["jobs"], before)
        self.assertFalse(os.path.exists("/tmp/taskd-http-was-here"))

    def test_bad_queries(self):
        for q, code in (("state=bogus", "bad_request"), ("limit=x", "bad_request"),
                        ("bogus=1", "bad_request"), ("label=novalue", "bad_request"),
                        ("name=%ff", "bad_request")):
            st, body = W.get_json(self.d, "/api/jobs?" + q)
            self.assertEqual(st, 400, q)
            self.assertEqual(body["error"]["code"], code, q)
        st, body = W.get_json(self.d, "/api/jobs/1/logs?stream=both")
        self.assertIn(st, (400, 404))

    def test_foreign_host_header(self):
        st, _, body = W.get(self.d, "/api/status", headers={"Host": "evil.example"})
        self.assertEqual(st, 403)
        self.assertIn(b"loopback host names only", body)
        st, _, _ = W.get(self.d, "/metrics", headers={"Host": "rebind.example:80"}, token=None)
        self.assertEqual(st, 403)
        st, _, _ = W.get(self.d, "/api/status", headers={"Host": "localhost:%d" % self.d.http[1]})
        self.assertEqual(st, 200)

    # -- the API answers like the socket

    def test_api_same_as_socket(self):
        jid = self.d.submit(["sh", "-c", "echo out; echo err >&2; exit 2"],
                            labels={"suite": "http"}, name="api-same")
        self.d.wait_job(jid)
        st, body = W.get_json(self.d, "/api/jobs/%d" % jid)
        self.assertEqual(st, 200)
        self.assertEqual(body, self.d.ctl_json("show", jid))
        self.assertEqual(body, self.d.show(jid))
        self.assertEqual(body["exit_code"], 2)
        st, body = W.get_json(self.d, "/api/jobs?label=suite=http&limit=0")
        self.assertEqual(body, self.d.ctl_json("list", "--label", "suite=http", "--limit", "0"))
        self.assertEqual([j["id"] for j in body["jobs"]], [jid])
        st, body = W.get_json(self.d, "/api/jobs?name=api-same&state=failed")
        self.assertEqual([j["id"] for j in body["jobs"]], [jid])
        st, body = W.get_json(self.d, "/api/jobs?id=%d&id=%d&limit=0" % (jid, jid + 100000))
        self.assertEqual([j["id"] for j in body["jobs"]], [jid])
        for stream, text in (("stdout", "out\n"), ("stderr", "err\n")):
            st, body = W.get_json(self.d, "/api/jobs/%d/logs?stream=%s" % (jid, stream))
            self.assertEqual(st, 200)
            self.assertEqual(body, self.d.logs(jid, stream))
            self.assertEqual(body["data"], text)
        st, body = W.get_json(self.d, "/api/jobs/%d/logs?offset=1&max=2" % jid)
        self.assertEqual(body, self.d.logs(jid, "stdout", 1, 2))
        self.assertEqual(body["data"], "ut")
        st, body = W.get_json(self.d, "/api/status")
        self.assertEqual(set(body), set(self.d.ctl_json("status")))

    # -- the event stream

    def test_event_stream(self):
        s = W.SSE(self.d, "/api/events?label=suite=sse")
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200)
        self.assertEqual(s.headers["content-type"], "text/event-stream")
        ev = s.next_event(3)
        self.assertIsNotNone(ev, "no event within 3 s")
        self.assertEqual(ev[0], "status")
        self.assertIn("thread_pool", json.loads(ev[1]))
        other = self.d.submit(["true"], labels={"suite": "other"})
        jid = self.d.submit(["true"], labels={"suite": "sse"})
        states = []
        deadline = time.monotonic() + 10
        while "done" not in states and time.monotonic() < deadline:
            ev = s.next_event(2)
            if ev is None or ev[0] != "job":
                continue
            e = json.loads(ev[1])
            self.assertEqual(e["id"], jid, "an event of a job the selector leaves out")
            states.append(e["state"])
        self.assertEqual(states, ["queued", "running", "done"])
        self.d.wait_job(other)
        # Streams end when the connection does: the gauge comes back down.
        s.close()
        wait_for(lambda: metric(W.get(self.d, "/metrics", token=None)[2].decode(),
                                "taskd_http_streams") == 0, 20, what="the stream to be gone")

    # -- bad input

    def test_malformed_requests(self):
        for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                     b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
                     b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     b"GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                     b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            out = W.raw(self.d, data, read_timeout=3)
            if out:
                status = int(out.split(b" ", 2)[1])
                self.assertTrue(400 <= status < 500 or status == 200 and b"/metrics" in data,
                                (data, out[:200]))
            self.serves()

    def test_huge_headers_and_bodies(self):
        big = b"X-Big: " + b"a" * 100000 + b"\r\n"
        out = W.raw(self.d, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big + b"\r\n")
        self.assertTrue(out == b"" or re.match(rb"HTTP/1\.[01] (413|400|431)", out), out[:100])
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
        out = W.raw(self.d, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n")
        self.assertTrue(out == b"" or re.match(rb"HTTP/1\.[01] (413|400|431)", out), out[:100])
        # A body bigger than 4 KiB is refused before it is read to the end.
        s = socket.create_connection(self.d.http, timeout=5)
        s.sendall(b"POST /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000"
                  b"\r\n\r\n" + b"x" * 65536)
        resp = s.recv(4096)
        s.close()
        self.assertRegex(resp, rb"^HTTP/1\.1 413")
        self.serves()

    def test_slow_client(self):
        # http.timeout is 2 here: a request must be complete 2 s after the connection.
        s = socket.create_connection(self.d.http, timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        closed = None
        while time.monotonic() - t0 < 8:
            self.serves()  # others are served meanwhile
            try:
                s.sendall(b"X-Drip: 1\r\n")
                s.settimeout(0.3)
                if s.recv(100) == b"":
                    closed = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = time.monotonic() - t0
                break
        self.assertIsNotNone(closed, "a dripping client kept its connection for 8 s")
        self.assertLess(closed, 6)  # http.timeout 2 s, checked every second, slack for load
        # A connection that says nothing at all goes the same way.
        s2 = socket.create_connection(self.d.http, timeout=10)
        self.addCleanup(s2.close)
        t0 = time.monotonic()
        self.assertEqual(s2.recv(100), b"")
        self.assertLess(time.monotonic() - t0, 6)

    def test_thousand_idle_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        socks = []
        self.addCleanup(lambda: [x.close() for x in socks])
        for _ in range(1000):
            x = socket.socket()
            x.setblocking(False)
            try:
                x.connect(self.d.http)
            except BlockingIOError:
                pass
            socks.append(x)
        time.sleep(0.5)
        t0 = time.monotonic()
        st, _, body = W.get(self.d, "/metrics", token=None, timeout=5)
        self.assertEqual(st, 200)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.serves()
        p = self.d.ctl("status")
        self.assertRc(p, 0)
        # The daemon holds no more than http.max_connections (32 here) of them.
        fds = len(os.listdir("/proc/%d/fd" % self.d.pid))
        self.assertLess(fds, 200, "taskd holds %d descriptors" % fds)
        text = W.get(self.d, "/metrics", token=None)[2].decode()
        self.assertLessEqual(metric(text, "taskd_http_connections"), 32 + 1)
        self.assertGreater(metric(text, "taskd_http_evicted_total"), 0)


class HttpRulesTest(E2ETestCase):
    """Daemons of their own: who may read what, reload, startup errors."""

    @unittest.skipUnless(os.geteuid() == 0, "the rule is for a taskd running as root")
    def test_root_without_token(self):
        d = W.start_http_daemon(self, token=False)
        self.assertIn("http.token_file is not set", d.log_text())
        st, _, body = W.get(d, "/api/status")
        self.assertEqual(st, 403)
        self.assertIn(b"token_file", body)
        self.assertEqual(W.get(d, "/")[0], 403)
        self.assertEqual(W.get(d, "/api/events")[0], 403)
        self.assertEqual(W.get(d, "/metrics")[0], 200)
        self.assertEqual(W.get(d, "/nope")[0], 404)

    def test_token_reload(self):
        d = W.start_http_daemon(self)
        old = d.token
        new = "a-brand-new-token-" + "x" * 20
        with open(os.path.join(d.tmp, "http.token"), "w") as f:
            f.write(new + "\n")
        self.assertRc(d.ctl("reload"), 0)
        self.assertEqual(W.get(d, "/api/status", token=old)[0], 401)
        self.assertEqual(W.get(d, "/api/status", token=new)[0], 200)
        # A token file that cannot be used: the reload goes on, the token stays.
        with open(os.path.join(d.tmp, "http.token"), "w") as f:
            f.write("short\n")
        self.assertRc(d.ctl("reload"), 0)
        wait_for(lambda: "the old token stays" in d.log_text(), 5, what="the warning")
        self.assertEqual(W.get(d, "/api/status", token=new)[0], 200)

    def test_remote_peers(self):
        addr = machine_address()
        if addr is None:
            self.skipTest("no address but loopback on this machine")
        d = W.start_http_daemon(self, token=False, extra={"http.listen": "0.0.0.0:0",
                                                          "http.allow_remote": True})
        # status says 0.0.0.0:PORT: reach it through the machine's own address, not loopback.
        d.http = (addr, d.http[1])
        st, _, body = W.get(d, "/api/status", headers={"Host": "taskd.example"})
        self.assertEqual(st, 403)
        self.assertIn(b"other hosts only with http.token_file", body)
        self.assertEqual(W.get(d, "/metrics", headers={"Host": "taskd.example"})[0], 200)

    def test_startup_errors(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        d = Daemon({"http.listen": "127.0.0.1:%d" % busy.getsockname()[1]}, start=False)
        self.track(d)
        with self.assertRaises(Exception):
            d.start(timeout=5)
        self.assertIn("Address already in use", d.log_text())
        d2 = Daemon({"http.listen": "0.0.0.0:1"}, start=False)
        self.track(d2)
        p = subprocess.run([TASKD, "-t", "-c", d2.conf], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not a loopback address: set http.allow_remote = true", p.stderr)

    @unittest.skipUnless(os.geteuid() == 0 and RUNUSER, "needs root and runuser")
    def test_unix_socket_per_user(self):
        import tempfile
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-")
        os.chmod(tmp, 0o755)
        path = os.path.join(tmp, "http.sock")
        d = self.start_daemon({"http.listen": path, "http.socket_mode": "0666",
                               "socket_mode": "0666"}, tmpdir=tmp)
        wait_for(lambda: os.path.exists(path), 5, what="the http socket")
        mine = d.submit(["true"])
        d.wait_job(mine)
        p = subprocess.run([RUNUSER, "-u", "nobody", "--", TASKCTL, "-s", d.sock, "submit",
                            "--type", "noop"], capture_output=True, text=True, cwd="/",
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        theirs = int(p.stdout)
        d.wait_job(theirs)
        client = os.path.join(tmp, "get.py")
        with open(client, "w") as f:
            f.write(UNIX_GET)
        os.chmod(client, 0o644)

        def get_as(user, target):
            argv = ["/usr/bin/python3", client, path, target]
            if user != "root":
                argv = [RUNUSER, "-u", user, "--"] + argv
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")
            self.assertEqual(out.returncode, 0, out.stderr)
            status, _, body = out.stdout.partition("\n")
            return int(status), json.loads(body)

        st, body = get_as("nobody", "/api/jobs?limit=0")
        self.assertEqual(st, 200)
        self.assertEqual([j["id"] for j in body["jobs"]], [theirs])
        st, body = get_as("nobody", "/api/jobs/%d" % mine)
        self.assertEqual(st, 403)
        self.assertEqual(body["error"]["code"], "forbidden")
        st, body = get_as("root", "/api/jobs?limit=0")
        self.assertEqual(sorted(j["id"] for j in body["jobs"]), sorted([mine, theirs]))


def machine_address():
    """An IPv4 address of this machine that is not loopback, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent: it picks the outgoing address
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


# Run as another user: GET a path over the unix socket; prints the status, then the body.
UNIX_GET = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(("GET %s HTTP/1.0\r\n\r\n" % sys.argv[2]).encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
print(int(head.split(b" ")[1]))
print(body.decode())
"""


if __name__ == "__main__":
    unittest.main(verbosity=2)
