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
from harness import E2ETestCase, TASKCTL, wait_for, main  # noqa: E402

NOBODY = 65534


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
    shared_overrides = {"limits.max_frame": "8K"}

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
