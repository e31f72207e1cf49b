"""Bad input: a clear error, nothing changed, and the daemon keeps serving."""

import json
import resource
import time
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, ProtocolError, main, wait_for  # noqa: E402


def line(obj):
    return json.dumps(obj).encode() + b"\n"


class BadInputTest(E2ETestCase):
    shared_daemon = True
    shared_overrides = {"limits.max_frame": "64K"}

    def job_ids(self):
        return [j["id"] for j in self.d.list_jobs()]

    def rejected(self, data, code, same_conn=True):
        """Send raw data on a fresh connection; expect one error with code.

        Also checks that no job appeared, that the same connection (when
        same_conn) and a new one still answer status, and the daemon lives.
        """
        if isinstance(data, dict):
            data = line(data)
        before = self.job_ids()
        with self.d.connect(timeout=15) as c:
            c.send_raw(data)
            r = c.recv()
            err = self.assertError(r, code)
            if same_conn:
                st = c.call({"id": "after", "op": "status"})
                self.assertOk(st, "connection unusable after %s" % code)
        self.assertDaemonServes()
        self.assertEqual(self.job_ids(), before, "a rejected request changed the job table")
        return r

    def bad_submit(self, unparsable=False, **fields):
        """A submit with fields (None = leave out) must be a bad_request.

        unparsable: the JSON itself is invalid for the parser (e.g. a NUL
        escape or an integer beyond 64 bits), so the id cannot be echoed.
        """
        req = {"v": 1, "id": "bad", "op": "submit", "argv": ["true"]}
        req.update(fields)
        req = {k: v for k, v in req.items() if v is not None}
        r = self.rejected(req, "bad_request")
        if unparsable:
            self.assertIn(r["id"], ("bad", None))
        else:
            self.assertEqual(r["id"], "bad")
        return r

    # -- framing and JSON
    def test_malformed_json(self):
        for data in (b'{"op":"status"\n', b'{op:status}\n', b"not json\n", b'{"op":"status",}\n',
                     b"{\"op\":'status'}\n", b'{"id":1,"op":"status"} x\n', b"\x00\n",
                     b'{"op":"status"}\x00\n'):
            with self.subTest(data=data):
                self.rejected(data, "bad_request")

    def test_not_an_object(self):
        for data in (b"[1,2]\n", b'"x"\n', b"42\n", b"null\n", b"true\n", b"[]\n"):
            with self.subTest(data=data):
                self.rejected(data, "bad_request")

    def test_unknown_op(self):
        r = self.rejected({"v": 1, "id": 3, "op": "frobnicate"}, "unknown_op")
        self.assertEqual(r["id"], 3)

    def test_bad_op(self):
        self.rejected({"v": 1, "id": 3}, "bad_request")
        self.rejected({"v": 1, "id": 3, "op": 7}, "bad_request")
        self.rejected({"v": 1, "id": 3, "op": None}, "bad_request")

    def test_bad_version_type(self):
        r = self.d.request({"v": "one", "id": 1, "op": "status"})
        self.assertIs(r.get("ok"), False, r)
        self.assertIn(r["error"]["code"], ("bad_request", "unsupported_version"))
        self.assertDaemonServes()

    def test_id_not_scalar(self):
        for rid in ([1], {"a": 1}):
            with self.subTest(rid=rid):
                r = self.d.request({"v": 1, "id": rid, "op": "status"})
                # either rejected, or echoed unchanged
                if r.get("ok") is False:
                    self.assertEqual(r["error"]["code"], "bad_request")
                else:
                    self.assertEqual(r["id"], rid)
        self.assertDaemonServes()

    # -- job descriptions
    def test_argv(self):
        self.bad_submit(argv=[])
        self.bad_submit(argv="ls")
        self.bad_submit(argv=["ls", 1])
        self.bad_submit(argv=["ls", None])
        self.bad_submit(argv=[["ls"]])
        self.bad_submit(argv=None)  # missing for exec
        self.bad_submit(argv=["a"] * 5000)  # > TASKD_MAX_ARGS
        self.bad_submit(argv=["a\u0000b"], unparsable=True)

    def test_class(self):
        for c in ("gpu", "", "CPU", 1, None):
            if c is None:
                continue
            with self.subTest(c=c):
                self.bad_submit(**{"class": c})

    def test_type(self):
        for t in ("bogus", "", 3):
            with self.subTest(t=t):
                self.bad_submit(type=t)

    def test_priority(self):
        for p in (20, -21, "x", 1.5, "0", True, 2 ** 31, -2 ** 63):
            with self.subTest(p=p):
                self.bad_submit(priority=p)
        self.bad_submit(priority=10 ** 30, unparsable=True)

    def test_priority_bounds_accepted(self):
        for p in (-20, 19):
            jid = self.d.submit(["true"], priority=p)
            self.assertEqual(self.d.wait_job(jid)["priority"], p)

    def test_priority_huge_number(self):
        self.rejected(b'{"v":1,"id":1,"op":"submit","argv":["true"],"priority":1e400}\n',
                      "bad_request")
        self.rejected(b'{"v":1,"id":1,"op":"submit","argv":["true"],'
                      b'"priority":123456789012345678901234567890}\n', "bad_request")

    def test_timeout(self):
        for t in (-1, -0.5, "10", None):
            if t is None:
                continue
            with self.subTest(t=t):
                self.bad_submit(timeout=t)
        self.rejected(b'{"v":1,"id":1,"op":"submit","argv":["true"],"timeout":1e400}\n',
                      "bad_request")

    def test_unknown_field(self):
        self.bad_submit(colour="blue")
        self.bad_submit(tiemout=5)
        self.bad_submit(owner={"uid": 0, "gid": 0})  # never taken from the request
        r = self.rejected({"v": 1, "id": 1, "op": "submit",
                           "jobs": [{"argv": ["true"], "colour": "blue"}]}, "bad_request")
        self.assertTrue(r["error"]["message"].startswith("jobs[0]: "), r)

    def test_batch_item_with_envelope_fields(self):
        # "op", "id" and "v" belong to the request, not to a job of a batch
        for field, value in (("op", "submit"), ("id", 5), ("v", 1)):
            with self.subTest(field=field):
                r = self.rejected({"v": 1, "id": "b", "op": "submit",
                                   "jobs": [{"type": "noop"}, {"type": "noop", field: value}]},
                                  "bad_request")
                self.assertEqual(r["id"], "b")
                self.assertTrue(r["error"]["message"].startswith("jobs[1]: "), r)
                self.assertIn(field, r["error"]["message"])

    def test_name(self):
        self.bad_submit(name="n" * 300)
        self.bad_submit(name=5)
        self.bad_submit(name="\u00e9" * 129)  # 258 bytes of UTF-8 (the limit is in bytes)
        jid = self.d.submit(["true"], name="\u00e9" * 128)
        self.assertEqual(self.d.wait_job(jid)["name"], "\u00e9" * 128)
        jid = self.d.submit(["true"], name="n" * 256)
        self.assertEqual(self.d.wait_job(jid)["name"], "n" * 256)

    def test_cwd(self):
        self.bad_submit(cwd="/nonexistent/e2e/dir")
        self.bad_submit(cwd="tmp")  # relative
        self.bad_submit(cwd="/etc/passwd")  # not a directory
        self.bad_submit(cwd=7)

    def test_env(self):
        self.bad_submit(env=["FOO=bar"])
        self.bad_submit(env={"FOO": 1})
        self.bad_submit(env={"FOO": None})
        self.bad_submit(env={"A=B": "x"})
        self.bad_submit(env="FOO=bar")
        self.bad_submit(env={"K%d" % i: "" for i in range(4097)})  # > TASKD_MAX_ENV

    def test_builtin_args(self):
        for t, argv in (("sleep", ["-1"]), ("sleep", ["x"]), ("sleep", []), ("spin", ["-1"]),
                        ("sumsq", ["abc"]), ("sumsq", ["-5"]), ("sumsq", ["1.5"]),
                        ("count", ["x"]), ("sleep", ["nan"]), ("spin", ["inf"])):
            with self.subTest(type=t, argv=argv):
                self.bad_submit(type=t, argv=argv)

    def test_bad_job_ref(self):
        for op in ("show", "wait", "cancel", "logs"):
            for job in ("abc", "1", [1], None):
                with self.subTest(op=op, job=job):
                    req = {"v": 1, "id": 1, "op": op}
                    if job is not None:
                        req["job"] = job
                    self.rejected(req, "bad_request")
            for job in (-1, 1.5, 0):
                with self.subTest(op=op, job=job):
                    r = self.d.request({"v": 1, "id": 1, "op": op, "job": job})
                    self.assertIs(r.get("ok"), False, r)
                    self.assertIn(r["error"]["code"], ("bad_request", "not_found"))
        self.assertDaemonServes()

    def test_bad_list_args(self):
        self.rejected({"v": 1, "id": 1, "op": "list", "state": "sleeping"}, "bad_request")
        self.rejected({"v": 1, "id": 1, "op": "list", "limit": -1}, "bad_request")
        self.rejected({"v": 1, "id": 1, "op": "list", "limit": "x"}, "bad_request")

    def test_bad_logs_args(self):
        jid = self.d.submit(["true"])
        self.d.wait_job(jid)
        self.rejected({"v": 1, "id": 1, "op": "logs", "job": jid, "stream": "both"},
                      "bad_request")
        self.rejected({"v": 1, "id": 1, "op": "logs", "job": jid, "offset": -1},
                      "bad_request")

    # -- unknown jobs
    def test_unknown_job_big_ids(self):
        for op in ("show", "wait", "cancel", "logs"):
            with self.subTest(op=op):
                self.rejected({"v": 1, "id": 1, "op": op, "job": 2 ** 63 - 1}, "not_found")
                r = self.d.request(b'{"id":1,"op":"%s","job":18446744073709551615}\n'
                                   % op.encode())
                self.assertIs(r.get("ok"), False, r)
                self.assertIn(r["error"]["code"], ("bad_request", "not_found"))
        self.assertDaemonServes()

    def test_unknown_job(self):
        for op in ("show", "wait", "cancel", "logs"):
            with self.subTest(op=op):
                self.rejected({"v": 1, "id": 1, "op": op, "job": 987654321}, "not_found")
                p = self.d.ctl(op, "987654321")
                self.assertEqual(p.returncode, 4, "taskctl %s of an unknown id: %s%s"
                                 % (op, p.stdout, p.stderr))
                self.assertTrue(p.stderr.strip())

    def test_cancel_finished(self):
        jid = self.d.submit(["true"])
        self.d.wait_job(jid)
        self.rejected({"v": 1, "id": 1, "op": "cancel", "job": jid}, "invalid_state")
        p = self.d.ctl("cancel", jid)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertEqual(self.d.show(jid)["state"], "done")

    def test_command_not_found(self):
        jid = self.d.submit(["/no/such/command"])
        j = self.d.wait_job(jid)
        self.assertEqual((j["state"], j["exit_code"]), ("failed", 127))
        self.assertDaemonServes()

    # -- hostile framing
    def test_frame_over_max(self):
        self.rejected(b'{"op":"status","x":"' + b"a" * 100000 + b'"}\n', "frame_too_large")
        self.rejected(b"[" * 70000 + b"\n", "frame_too_large")

    def test_invalid_utf8(self):
        self.rejected(b'{"id":1,"op":"status","x":"\xff\xfe"}\n', "bad_request")
        self.rejected(b'{"id":1,"op":"submit","argv":["echo","\xc3\x28"]}\n', "bad_request")
        self.rejected(b'{"id":1,"op":"submit","argv":["echo","\xed\xa0\x80"]}\n', "bad_request")

    def test_deep_nesting(self):
        self.rejected(b"[" * 10000 + b"\n", "bad_request")
        self.rejected(b"[" * 10000 + b"]" * 10000 + b"\n", "bad_request")
        self.rejected(b'{"op":"submit","argv":' + b"[" * 10000 + b"]" * 10000 + b"}\n",
                      "bad_request")
        self.rejected(b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"\n", "bad_request")

    def test_empty_lines(self):
        for data in (b"\n", b"   \n", b"\r\n", b"\n\n\n"):
            with self.subTest(data=data):
                with self.d.connect(timeout=15) as c:
                    c.send_raw(data)
                    c.send({"id": "st", "op": "status"})
                    for _ in range(10):
                        r = c.recv()
                        if r.get("id") == "st":
                            self.assertOk(r)
                            break
                        self.assertError(r, "bad_request")
                    else:
                        self.fail("no status answer after empty lines")
        self.assertDaemonServes()

    def test_garbage_bytes(self):
        data = bytes(range(256)) * 20 + b"\n"
        with self.d.connect(timeout=15) as c:
            c.send_raw(data)
            c.send({"id": "st", "op": "status"})
            for _ in range(50):
                r = c.recv()
                if r.get("id") == "st":
                    self.assertOk(r)
                    break
                self.assertIs(r.get("ok"), False, r)
        self.assertDaemonServes()

    def test_many_connections(self):
        socks = []
        try:
            for i in range(100):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(self.d.sock)
                socks.append(s)
            for i, s in enumerate(socks):
                if i % 3 == 0:
                    s.sendall(b'{"id":1,"op":"stat')   # half a request
                elif i % 3 == 1:
                    s.sendall(line({"id": i, "op": "status"}))  # reply never read
        finally:
            for s in socks:
                s.close()
        self.assertDaemonServes()
        # and 100 at once that all get served
        conns = [self.d.connect(timeout=20) for _ in range(100)]
        try:
            for i, c in enumerate(conns):
                c.send({"id": i, "op": "status"})
            for i, c in enumerate(conns):
                self.assertEqual(c.recv()["id"], i)
        finally:
            for c in conns:
                c.close()
        self.assertDaemonServes()

    def test_reset_with_unread_output(self):
        # a client asking for a big answer and vanishing without reading it
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.d.sock)
            s.sendall(line({"id": 1, "op": "list", "limit": 0}) * 50)
            s.close()
        self.assertDaemonServes()

    def test_zz_daemon_still_fine(self):
        # runs last (alphabetical order): the daemon survived everything above
        self.assertTrue(self.d.alive())
        os.kill(self.d.pid, 0)
        p = self.d.ctl("status")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertDaemonServes()



class ConnectionLimitTest(E2ETestCase):
    """Clients that stall inside a request, and floods of connections."""

    def fd_count(self, d):
        return len(os.listdir("/proc/%d/fd" % d.pid))

    def test_stalled_partial_frame_is_closed(self):
        d = self.start_daemon({"limits.stall_timeout": 1})
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(10)
        s.connect(d.sock)
        s.sendall(b'{"v":1,"id":7,"op":"sta')
        t0 = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        waited = time.monotonic() - t0
        self.assertGreaterEqual(waited, 0.9, "closed before stall_timeout")
        self.assertLess(waited, 5, "stalled client kept for too long")
        resp = json.loads(data.splitlines()[0])
        self.assertError(resp, "frame_timeout")
        # an idle connection (no partial request) is left alone
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(idle.close)
        idle.connect(d.sock)
        time.sleep(2.2)
        idle.sendall(line({"id": 1, "op": "status"}))
        idle.settimeout(5)
        self.assertIn(b'"ok":true', idle.recv(65536))
        self.assertTrue(d.alive())

    def test_two_thousand_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 4096)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        if want < 2100:
            self.skipTest("open-files limit %d is below 2100" % want)
        d = self.start_daemon({"limits.max_clients": 5000})
        base = self.fd_count(d)
        socks = []
        try:
            for _ in range(2000):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                # A full listen backlog refuses a unix-socket connect (EAGAIN)
                # rather than queueing it: try again while the daemon catches up.
                deadline = time.monotonic() + 10
                while True:
                    try:
                        s.connect(d.sock)
                        socks.append(s)
                        break
                    except (BlockingIOError, InterruptedError):
                        if time.monotonic() > deadline:
                            s.close()
                            break
                        time.sleep(0.002)
                    except OSError:
                        s.close()
                        break
            self.assertGreaterEqual(len(socks), 1500, "too few connections made")
            # the daemon keeps answering while they are all open
            self.assertDaemonServes(d)
            wait_for(lambda: self.fd_count(d) >= base + 1000, 20,
                     what="the daemon accepting the connections")
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: self.fd_count(d) <= base + 2, 20,
                 what="descriptors back to the baseline %d (now %d)" % (base, self.fd_count(d)))
        self.assertDaemonServes(d)
        self.assertTrue(d.alive())


if __name__ == "__main__":
    main()
