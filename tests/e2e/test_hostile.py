"""Hostile users and hostile bytes: what one user or one job can do to others.

- Output: every byte a job writes comes back byte for byte through every
  taskctl path (logs, logs --follow, --json logs, --stderr, submit --wait).
- Connections: one local user cannot lock the others out with idle
  connections (limits.max_clients_per_user, the reserve kept for root and
  taskd's own user), and idle connections are closed (limits.idle_timeout)
  but never one that is legitimately waiting.
- Terminals: job names, labels, argv and error texts are printed by taskctl
  with their control characters replaced; --json stays exact.
"""

import base64
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, TASKCTL, NOBODY, ctl_as_nobody, wait_for, main  # noqa: E402


def payload(seed, size):
    """Bytes a terminal or a JSON text would choke on: every byte value, NUL runs,
    invalid and cut UTF-8, valid multi-byte text across chunk ends, random data."""
    rnd = random.Random(seed)
    parts = [
        bytes(range(256)) * 3,
        b"a\0b\n", b"\0" * 100,
        b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xe2\x82", b"\xf0\x9f\x98",  # invalid, cut
        b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff\xfe\xfd",        # overlong, surrogate
        "\u00e9\u20ac\U0001F600".encode() * 700,                                   # valid multi-byte
        b"\x1b]0;title\x07\x1b[2J\r\n",
        rnd.randbytes(size),
        "\u20ac".encode() * 3000,
        b"end\0",
    ]
    return b"".join(parts)


class BinaryOutputTest(E2ETestCase):
    """Defect: output with a NUL byte could not be read back (exit 3, "invalid response")."""

    shared_daemon = True
    # Small frames: logs come in many chunks, so chunk ends fall inside UTF-8 characters.
    shared_overrides = {"limits.max_frame": "16K"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="taskd-e2e-bin-")
        cls.out = payload(1, 60000)
        cls.err = payload(2, 30000)
        for name, data in (("out", cls.out), ("err", cls.err)):
            with open(os.path.join(cls.tmp, name), "wb") as f:
                f.write(data)

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.tmp, True)
        super().tearDownClass()

    def job_script(self, code=0):
        return "cat %s/out; cat %s/err >&2; exit %d" % (self.tmp, self.tmp, code)

    def finished_job(self):
        jid = self.d.submit(["sh", "-c", self.job_script()])
        self.assertEqual(self.d.wait_job(jid)["state"], "done")
        return jid

    def test_issue_sample_nul(self):
        jid = self.d.submit(["printf", "a\\0b\\n"])
        self.d.wait_job(jid)
        p = self.d.ctl("logs", jid, binary=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"a\0b\n")
        doc = json.loads(self.d.ctl("--json", "logs", jid).stdout)
        self.assertEqual(decode(doc), b"a\0b\n")

    def test_logs_every_byte(self):
        jid = self.finished_job()
        p = self.d.ctl("logs", jid, binary=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout), len(self.out))
        self.assertTrue(p.stdout == self.out, "stdout differs")
        p = self.d.ctl("logs", jid, "--stderr", binary=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout == self.err, "stderr differs")

    def test_json_logs_every_byte(self):
        jid = self.finished_job()
        for stream, want, extra in (("stdout", self.out, ()), ("stderr", self.err, ("--stderr",))):
            p = self.d.ctl("--json", "logs", jid, *extra, binary=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            doc = json.loads(p.stdout)
            self.assertEqual(doc["stream"], stream)
            self.assertEqual(doc["size"], len(want))
            self.assertTrue(decode(doc) == want, "%s differs in --json logs" % stream)

    def test_follow_every_byte(self):
        # Written in three bursts while `logs --follow` reads along.
        script = ("head -c 40000 %s/out; sleep 0.4; tail -c +40001 %s/out | head -c 30000; "
                  "sleep 0.4; tail -c +70001 %s/out" % (self.tmp, self.tmp, self.tmp))
        jid = self.d.submit(["sh", "-c", script])
        p = self.d.ctl("logs", jid, "--follow", binary=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout == self.out, "logs --follow differs (%d bytes, want %d)"
                        % (len(p.stdout), len(self.out)))

    def test_submit_wait_every_byte(self):
        p = self.d.ctl("submit", "--wait", "--", "sh", "-c", self.job_script(5), binary=True,
                       timeout=60)
        self.assertEqual(p.returncode, 5, p.stderr[-300:])
        self.assertTrue(p.stdout == self.out, "submit --wait stdout differs")
        self.assertTrue(p.stderr == self.err, "submit --wait stderr differs")

    def test_protocol_sends_nul_as_base64(self):
        # A chunk with NUL bytes is base64 on the wire (a C client reading
        # "\u0000" into a C string would cut it there).
        jid = self.d.submit(["printf", "a\\0b"])
        self.d.wait_job(jid)
        r = self.d.logs(jid)
        self.assertEqual(r["encoding"], "base64")
        self.assertEqual(base64.b64decode(r["data"]), b"a\0b")
        jid = self.d.submit(["printf", "plain text \\342\\202\\254"])
        self.d.wait_job(jid)
        self.assertEqual(self.d.logs(jid)["encoding"], "utf-8")


def decode(doc):
    if doc["encoding"] == "base64":
        return base64.b64decode(doc["data"])
    return doc["data"].encode("utf-8")


class FakeDaemon:
    """A unix socket that answers every request line with `reply` (bytes)."""

    def __init__(self, reply):
        self.tmp = tempfile.mkdtemp(prefix="taskd-e2e-fake-")
        self.sock = os.path.join(self.tmp, "fake.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.sock)
        self.srv.listen(8)
        self.reply = reply
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with c:
                f = c.makefile("rb")
                if f.readline():
                    c.sendall(self.reply)
                    c.shutdown(socket.SHUT_WR)
                    f.read()

    def close(self):
        import shutil
        self.srv.close()
        shutil.rmtree(self.tmp, True)


class FakeDaemonTest(E2ETestCase):
    """taskctl against a server that answers what the test says."""

    def test_nul_in_a_text_chunk(self):
        # "\u0000" is valid JSON: taskctl reads it whatever encoding a taskd chooses.
        chunk = {"data": "a\0b\0", "encoding": "utf-8", "offset": 0, "next_offset": 4,
                 "size": 4, "eof": True, "truncated": False}
        fake = FakeDaemon(json.dumps({"id": 1, "ok": True, "result": chunk}).encode() + b"\n")
        self.addCleanup(fake.close)
        p = subprocess.run([TASKCTL, "-s", fake.sock, "logs", "1"], capture_output=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"a\0b\0")
        p = subprocess.run([TASKCTL, "-s", fake.sock, "--json", "logs", "1"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(decode(json.loads(p.stdout)), b"a\0b\0")

    def test_invalid_response_exit_code(self):
        for reply in (b'{"id":1,"ok":tru\n', b'[1,2]\n', b'{"id":1,"ok":false}\n'):
            fake = FakeDaemon(reply)
            self.addCleanup(fake.close)
            with self.subTest(reply=reply):
                p = subprocess.run([TASKCTL, "-s", fake.sock, "status"], capture_output=True,
                                   text=True, timeout=30, stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 5, p.stderr)
                self.assertIn("invalid response from taskd", p.stderr)


# ---------------------------------------------------------------------------
# Connections

# Run as nobody: opens N connections to the socket, sends a status request on
# each (unless told not to) and reads one line; prints a JSON summary
# {"ok": K, "errors": {code: count, "message": last}, "closed": count}, keeps
# the accepted connections open until its stdin closes; each line "ping" on
# its stdin makes it print how many of them still answer.
NOBODY_CONNS = r"""
import json, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
held, ok, errors, closed = [], 0, {}, 0
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    try:
        s.sendall(b'{"v":1,"id":1,"op":"status"}\n')
    except OSError:
        pass            # closed already: its reason is still to be read
    buf = b""
    try:
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except ConnectionResetError:
        pass
    if b"\n" not in buf:
        closed += 1
        s.close()
        continue
    r = json.loads(buf.split(b"\n")[0])
    if r.get("ok") is True:
        ok += 1
        held.append(s)
        continue
    errors[r["error"]["code"]] = errors.get(r["error"]["code"], 0) + 1
    if "message" in r["error"]:
        errors["message"] = r["error"]["message"]
    # refused: the daemon closes at once
    s.settimeout(5)
    try:
        rest = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        rest = b""
    if rest:
        errors["not closed"] = errors.get("not closed", 0) + 1
    s.close()
print(json.dumps({"ok": ok, "errors": errors, "closed": closed}), flush=True)
for cmd in sys.stdin:       # "ping": how many held connections still answer
    alive = 0
    for s in held:
        try:
            s.sendall(b'{"v":1,"id":2,"op":"status"}\n')
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            alive += b'"ok":true' in buf
        except OSError:
            pass
    print(alive, flush=True)
"""


def nobody_connections(d, n):
    """Start a nobody process holding connections; (process, summary)."""
    p = subprocess.Popen(["/usr/bin/python3", "-c", NOBODY_CONNS, d.sock, str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
                         user=NOBODY, group=NOBODY, extra_groups=[])
    line = p.stdout.readline()
    if not line:
        p.kill()
        p.wait()
        raise AssertionError("the nobody client failed")
    return p, json.loads(line)


def ping(p):
    p.stdin.write("ping\n")
    p.stdin.flush()
    return int(p.stdout.readline())


def release(p):
    p.stdin.close()
    p.stdout.close()
    p.wait(timeout=30)


def clients(d):
    """Connected clients (the metrics gauge; the asking connection included)."""
    text = d.ok({"op": "metrics"})["text"]
    return int(float(re.search(r"^taskd_clients (\S+)$", text, re.M).group(1)))


@unittest.skipUnless(os.geteuid() == 0, "needs root: connections as nobody to a root taskd")
class ConnectionLimitsTest(E2ETestCase):
    """Defect: 2,000 idle connections from nobody made root's taskctl hang."""

    def daemon(self, overrides=None):
        o = {"socket_mode": "0666"}
        o.update(overrides or {})
        d = self.start_daemon(o)
        os.chmod(d.tmp, 0o755)  # nobody must reach the socket
        return d

    def assertPrompt(self, d, what="root"):
        t0 = time.monotonic()
        p = d.ctl("status", timeout=20)
        took = time.monotonic() - t0
        self.assertRc(p, 0, what)
        self.assertLess(took, 10, "status took %.1fs" % took)
        t0 = time.monotonic()
        p = d.ctl("submit", "--wait", "--", "sh", "-c", "echo hi", timeout=20)
        self.assertRc(p, 0, what)
        self.assertEqual(p.stdout, "hi\n")
        self.assertLess(time.monotonic() - t0, 10)

    def test_two_thousand_idle_connections_default_limits(self):
        # The issue's case, with the shipped defaults (harness config without
        # the new keys): nobody gets limits.max_clients_per_user (256) of them.
        d = self.daemon()
        p, got = nobody_connections(d, 2000)
        self.addCleanup(release, p)
        self.assertEqual(got["ok"], 256, got)
        self.assertEqual(got["errors"].get("too_many_connections"), 2000 - 256, got)
        self.assertNotIn("not closed", got["errors"])
        self.assertIn("limits.max_clients_per_user", got["errors"]["message"])
        self.assertPrompt(d)
        # root itself is not bound by the per-user limit
        conns = [d.connect() for _ in range(300)]
        self.addCleanup(lambda: [c.close() for c in conns])
        self.assertOk(conns[-1].call({"id": 1, "op": "status"}))
        st = d.status()
        self.assertGreaterEqual(st["counters"]["connections_refused"], 2000 - 256)
        self.assertEqual(ping(p), 256)

    def test_per_user_limit_error_and_taskctl(self):
        d = self.daemon({"limits.max_clients_per_user": 5})
        p, got = nobody_connections(d, 12)
        self.addCleanup(release, p)
        self.assertEqual(got["ok"], 5, got)
        self.assertEqual(got["errors"].get("too_many_connections"), 7, got)
        self.assertPrompt(d)
        # taskctl as nobody says why and exits 4 (rejected), without hanging
        t0 = time.monotonic()
        q = ctl_as_nobody(d, "status")
        self.assertRc(q, 4)
        self.assertIn("too_many_connections", q.stderr)
        self.assertIn("limits.max_clients_per_user", q.stderr)
        self.assertLess(time.monotonic() - t0, 10)
        release(p)
        # once nobody's connections are gone, nobody is served again
        wait_for(lambda: ctl_as_nobody(d, "status").returncode == 0, 10,
                 what="nobody served again")

    def test_reserve_for_root(self):
        # No per-user limit: nobody fills limits.max_clients up to the reserve
        # (a quarter of 24 here); root still gets in, up to the limit itself.
        d = self.daemon({"limits.max_clients": 24, "limits.max_clients_per_user": 0})
        p, got = nobody_connections(d, 40)
        self.addCleanup(release, p)
        self.assertEqual(got["ok"], 18, got)
        self.assertEqual(got["errors"].get("too_many_connections"), 22, got)
        self.assertIn("limits.max_clients", got["errors"]["message"])
        self.assertPrompt(d)
        # (taskctl's connections above may take a moment to be gone)
        wait_for(lambda: clients(d) == 18 + 1, 10, what="only nobody's 18 connections left")
        conns = [d.connect() for _ in range(6)]
        self.addCleanup(lambda: [c.close() for c in conns])
        for c in conns:
            self.assertOk(c.call({"id": 1, "op": "status"}))
        # all 24 taken: root too gets the error, at once, instead of a hang
        with d.connect() as c:
            try:
                c.send({"id": 1, "op": "status"})
            except BrokenPipeError:
                pass    # closed already: the reason is still there to read
            self.assertError(c.recv(timeout=10), "too_many_connections")

    def test_reload_changes_limits(self):
        d = self.daemon({"limits.max_clients_per_user": 3})
        p, got = nobody_connections(d, 3)
        self.addCleanup(release, p)
        self.assertEqual(got["ok"], 3, got)
        self.assertRc(ctl_as_nobody(d, "status"), 4)
        d.write_config({"socket_mode": "0666", "limits.max_clients_per_user": 5})
        r = d.ok({"op": "reload"})
        self.assertIn("limits.max_clients_per_user", r["changed"])
        q, got = nobody_connections(d, 3)
        self.addCleanup(release, q)
        self.assertEqual(got["ok"], 2, got)     # 3 + 2 = the new limit
        # lowering it keeps the connections open, refuses new ones
        d.write_config({"socket_mode": "0666", "limits.max_clients_per_user": 1})
        d.ok({"op": "reload"})
        self.assertRc(ctl_as_nobody(d, "status"), 4)
        self.assertEqual(ping(p), 3)
        self.assertEqual(ping(q), 2)


class IdleTimeoutTest(E2ETestCase):
    """limits.idle_timeout closes idle connections, never one that waits for something."""

    shared_daemon = True
    shared_overrides = {"limits.idle_timeout": 1}

    def test_idle_connection_closed_with_reason(self):
        with self.d.connect() as c:
            self.assertOk(c.call({"id": 1, "op": "status"}))
            t0 = time.monotonic()
            r = c.recv(timeout=10)
            took = time.monotonic() - t0
            self.assertError(r, "idle_timeout")
            self.assertIsNone(r["id"])
            self.assertIn("limits.idle_timeout", r["error"]["message"])
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 5)
            self.assertEqual(c.sock.recv(100), b"")   # then closed

    def test_active_connection_kept(self):
        with self.d.connect() as c:
            for i in range(8):
                self.assertOk(c.call({"id": i, "op": "status"}))
                time.sleep(0.4)

    def test_waiting_connections_kept(self):
        d = self.d
        jid = d.submit(["sleep", "2.5"])
        w = d.connect()
        self.addCleanup(w.close)
        w.send({"id": "w", "op": "wait", "job": jid})
        sw = d.connect()
        self.addCleanup(sw.close)
        sw.send({"id": "sw", "op": "submit", "argv": ["sleep", "2.5"], "wait": True})
        sub = d.connect()
        self.addCleanup(sub.close)
        self.assertOk(sub.call({"id": "sub", "op": "subscribe", "ids": [jid]}))
        self.assertEqual(self.assertOk(w.recv_id("w", timeout=20))["state"], "done")
        self.assertEqual(self.assertOk(sw.recv_id("sw", timeout=20))["state"], "done")
        evs = []
        while not evs or evs[-1].get("state") != "done":
            evs.append(sub.recv(timeout=10))
        self.assertTrue(all(e.get("event") == "job" for e in evs), evs)
        # taskctl's own waiting commands
        p = d.ctl("submit", "--wait", "--", "sh", "-c", "sleep 2.5; echo late", timeout=30)
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "late\n")
        jid = d.submit(["sleep", "2.5"])
        self.assertRc(d.ctl("wait", jid, timeout=30), 0)
        ev = d.ctl_popen("events", "--state", "done")
        self.addCleanup(stop, ev)
        time.sleep(2.5)
        jid = d.submit(["true"])
        out = ev.stdout.readline()
        self.assertIn("%d running -> done" % jid, out)

    def test_logs_follow_survives(self):
        jid = self.d.submit(["sh", "-c", "echo a; sleep 2.5; echo b"])
        p = self.d.ctl("logs", "--follow", jid, timeout=30)
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "a\nb\n")

    def test_logs_reader_paused(self):
        # `taskctl logs | less`, paused: taskctl blocks writing to the pipe
        # while its connection idles and is closed; it reconnects and goes on.
        data = payload(3, 600000)
        path = os.path.join(self.d.tmp, "big")
        with open(path, "wb") as f:
            f.write(data)
        jid = self.d.submit(["cat", path])
        self.d.wait_job(jid)
        before = self.d.status()["counters"]
        p = subprocess.Popen([TASKCTL, "-s", self.d.sock, "logs", str(jid)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        time.sleep(3)   # idle_timeout is 1 s
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        self.assertTrue(out == data, "output differs after the reconnect")
        after = self.d.status()["counters"]
        self.assertGreaterEqual(after["idle_connections_closed"],
                                before["idle_connections_closed"] + 1)
        # taskctl's two connections, and the status request that counted them
        self.assertGreaterEqual(after["connections"], before["connections"] + 3)


# ---------------------------------------------------------------------------
# Terminal escapes

# A title change, a screen clear, a C1 CSI (U+009B), a forged line.
HOSTILE = "x\x1b]0;pwned\x07\x1b[2J\u009b31m\rback\nFAKE LINE\x7f\x08"
BAD = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def stop(p):
    p.kill()
    p.communicate()


class EscapeTest(E2ETestCase):
    """Defect: show and events printed other users' control characters raw."""

    shared_daemon = True
    shared_overrides = {"router.default_class": "io"}

    def assertClean(self, p, what):
        for name, data in (("stdout", p.stdout), ("stderr", p.stderr)):
            if isinstance(data, str):
                data = data.encode()
            m = BAD.search(data)
            self.assertIsNone(m, "%s: raw control character %r in %s: %r"
                              % (what, m and m.group(), name, data[:600]))
            self.assertNotIn(b"\nFAKE", data, "%s: a forged line in %s" % (what, name))

    def hostile_job(self, argv=None, wait=True):
        argv = argv or ["sh", "-c", "exit 3", HOSTILE]
        jid = self.d.submit(argv, name=HOSTILE, labels={"k": HOSTILE}, **{"class": "auto"})
        if wait:
            self.d.wait_job(jid)
        return jid

    def test_show(self):
        jid = self.hostile_job()
        p = self.d.ctl("show", jid)
        self.assertRc(p, 0)
        self.assertClean(p, "show")
        self.assertIn("pwned", p.stdout)
        # one line per field: nothing forged
        self.assertEqual(len(p.stdout.splitlines()), len(self.d.show(jid)))
        # --json stays exact
        j = self.d.ctl_json("show", jid)
        self.assertEqual(j["name"], HOSTILE)
        self.assertEqual(j["labels"], {"k": HOSTILE})
        self.assertEqual(j["argv"][-1], HOSTILE)

    def test_list_and_status(self):
        jid = self.hostile_job()
        p = self.d.ctl("list")
        self.assertRc(p, 0)
        self.assertClean(p, "list")
        self.assertIn("pwned", p.stdout)
        p = self.d.ctl("status")   # the router table lists the job's name as its kind
        self.assertRc(p, 0)
        self.assertClean(p, "status")
        self.assertIn("pwned", p.stdout)
        [j] = [j for j in self.d.ctl_json("list")["jobs"] if j["id"] == jid]
        self.assertEqual(j["name"], HOSTILE)

    def test_events(self):
        ev = self.d.ctl_popen("events")
        self.addCleanup(stop, ev)
        time.sleep(0.3)
        jid = self.hostile_job()
        lines = []
        while not lines or "-> failed" not in lines[-1]:
            line = ev.stdout.readline()
            self.assertTrue(line, "events ended early")
            lines.append(line)
        stop(ev)
        text = "".join(lines)
        self.assertClean(subprocess.CompletedProcess([], 0, text, ""), "events")
        self.assertEqual(len(lines), 3, lines)   # new -> queued -> running -> failed
        self.assertIn("%d running -> failed" % jid, text)
        ev = self.d.ctl_popen("--json", "events", str(jid + 1))
        self.addCleanup(stop, ev)
        time.sleep(0.3)
        jid = self.hostile_job()
        self.assertEqual(json.loads(ev.stdout.readline())["name"], HOSTILE)

    def test_wait_and_submit_wait_errors(self):
        # The daemon's error text echoes argv[0]: "command not found: ...".
        jid = self.hostile_job([HOSTILE], wait=False)
        p = self.d.ctl("wait", jid)
        self.assertRc(p, 127)
        self.assertClean(p, "wait")
        self.assertIn("command not found", p.stdout)
        p = self.d.ctl("submit", "--wait", "--name", HOSTILE, "--", HOSTILE)
        self.assertRc(p, 127)
        self.assertClean(p, "submit --wait")
        self.assertIn("command not found", p.stderr)
        p = self.d.ctl("--json", "wait", jid)
        self.assertIn(HOSTILE, json.loads(p.stdout)[0]["error"])

    def test_rejection_messages(self):
        # A refusal that echoes the request: cwd that does not exist.
        p = self.d.ctl("submit", "--cwd", "/nonexistent" + HOSTILE, "--", "true")
        self.assertRc(p, 4)
        self.assertClean(p, "submit rejected")
        self.assertIn("nonexistent", p.stderr)

    def test_logs_stay_raw(self):
        # logs prints the job's own bytes, escapes included: that is its purpose.
        jid = self.d.submit(["printf", "\\033[2J\\007"])
        self.d.wait_job(jid)
        p = self.d.ctl("logs", jid, binary=True)
        self.assertEqual(p.stdout, b"\x1b[2J\x07")


if __name__ == "__main__":
    main()
