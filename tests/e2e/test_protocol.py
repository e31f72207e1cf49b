"""The control protocol over a raw socket (doc/protocol.md)."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, ProtocolError, decode_logs, wait_for, main  # noqa: E402


class ProtocolTest(E2ETestCase):
    shared_daemon = True
    shared_overrides = {"limits.max_frame": "64K", "jobs.max_output": "1K"}

    def count_jobs(self):
        return len(self.d.list_jobs())

    # -- envelope
    def test_id_echoed(self):
        with self.d.connect() as c:
            for rid in (1, 0, -7, 2 ** 53, "abc", "", "ünï", 1.5, True):
                with self.subTest(rid=rid):
                    c.send({"v": 1, "id": rid, "op": "status"})
                    r = c.recv()
                    self.assertOk(r)
                    self.assertEqual(r["id"], rid)
                    self.assertEqual(type(r["id"]), type(rid))

    def test_id_absent_is_null(self):
        r = self.d.request({"v": 1, "op": "status"})
        self.assertOk(r)
        self.assertIn("id", r)
        self.assertIsNone(r["id"])

    def test_error_echoes_id(self):
        r = self.d.request({"v": 1, "id": "e1", "op": "no-such-op"})
        self.assertError(r, "unknown_op")
        self.assertEqual(r["id"], "e1")

    def test_version(self):
        self.assertOk(self.d.request({"id": 1, "op": "status"}))
        self.assertOk(self.d.request({"v": 1, "id": 1, "op": "status"}))
        for v in (2, 0, 99):
            with self.subTest(v=v):
                r = self.d.request({"v": v, "id": 5, "op": "status"})
                self.assertError(r, "unsupported_version")
                self.assertEqual(r["id"], 5)
        r = self.d.request({"v": "1", "id": 6, "op": "status"})
        self.assertIs(r.get("ok"), False, r)
        self.assertIn(r["error"]["code"], ("unsupported_version", "bad_request"))

    def test_status_shape(self):
        st = self.d.status()
        for k in ("version", "pid", "uptime", "jobs", "queue", "process_pool", "thread_pool",
                  "router", "counters"):
            self.assertIn(k, st)
        self.assertEqual(st["pid"], self.d.pid)
        self.assertGreaterEqual(st["uptime"], 0)
        for k in ("threads", "busy", "idle", "max", "queued"):
            self.assertIn(k, st["thread_pool"])
        self.assertIn("pending", st["queue"])

    # -- pipelining
    def test_pipelining_50(self):
        reqs = b"".join(json.dumps({"v": 1, "id": i, "op": "status"}).encode() + b"\n"
                        for i in range(50))
        with self.d.connect() as c:
            c.send_raw(reqs)
            got = [c.recv() for _ in range(50)]
        self.assertEqual(sorted(r["id"] for r in got), list(range(50)))
        self.assertTrue(all(r["ok"] for r in got))

    def test_pipelining_mixed_ops_split_writes(self):
        jid = self.d.submit(["true"])
        reqs = (json.dumps({"id": "a", "op": "status"}) + "\n"
                + json.dumps({"id": "b", "op": "show", "job": jid}) + "\n"
                + json.dumps({"id": "c", "op": "list", "limit": 1}) + "\n").encode()
        with self.d.connect() as c:
            for i in range(len(reqs)):  # one byte at a time
                c.send_raw(reqs[i:i + 1])
            got = {}
            for _ in range(3):
                r = c.recv()
                got[r["id"]] = r
        self.assertEqual(set(got), {"a", "b", "c"})
        self.assertEqual(self.assertOk(got["b"])["id"], jid)

    def test_wait_does_not_block_connection(self):
        jid = self.d.submit(["sleep", "1"], **{"class": "io"})
        with self.d.connect() as c:
            c.send({"id": "w", "op": "wait", "job": jid})
            c.send({"id": "s", "op": "status"})
            r = c.recv(timeout=15)
            self.assertEqual(r.get("id"), "s", "status was held up behind a wait")
            self.assertOk(r)
            w = c.recv_id("w", timeout=15)
            self.assertEqual(self.assertOk(w)["state"], "done")

    # -- submit
    def test_submit_single(self):
        r = self.d.request({"v": 1, "id": 1, "op": "submit", "argv": ["sh", "-c", "echo hi"],
                            "cwd": "/tmp"})
        res = self.assertOk(r)
        self.assertIsInstance(res["id"], int)
        j = self.d.wait_job(res["id"])
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["argv"], ["sh", "-c", "echo hi"])
        self.assertEqual(j["cwd"], "/tmp")
        self.assertEqual(j["type"], "exec")
        self.assertEqual(j["class"], "auto")
        self.assertEqual(j["priority"], 0)
        self.assertIsNone(j["name"])

    def test_batch_submit(self):
        jobs = [{"argv": ["true"]}, {"type": "noop"}, {"type": "sumsq", "argv": ["4"]},
                {"argv": ["sh", "-c", "exit 2"]}, {"type": "sleep", "argv": ["0.1"]}]
        ids = self.d.submit_batch(jobs)
        self.assertEqual(len(ids), 5)
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 5)
        states = [self.d.wait_job(i)["state"] for i in ids]
        self.assertEqual(states, ["done", "done", "done", "failed", "done"])
        self.assertEqual(self.d.show(ids[2])["result"], "14")

    def test_batch_with_invalid_job_queues_nothing(self):
        before = self.count_jobs()
        r = self.d.request({"id": 1, "op": "submit",
                            "jobs": [{"argv": ["true"]}, {"argv": []}, {"argv": ["true"]}]})
        err = self.assertError(r, "bad_request")
        self.assertTrue(err["message"].startswith("jobs[1]: "), err["message"])
        r = self.d.request({"id": 2, "op": "submit",
                            "jobs": [{"argv": ["true"]}, {"argv": ["true"], "priority": 99}]})
        err = self.assertError(r, "bad_request")
        self.assertTrue(err["message"].startswith("jobs[1]: "), err["message"])
        self.assertEqual(self.count_jobs(), before)

    def test_batch_bad_shape(self):
        before = self.count_jobs()
        for jobs in ([], "x", [1], {"argv": ["true"]}):
            with self.subTest(jobs=jobs):
                r = self.d.request({"id": 1, "op": "submit", "jobs": jobs})
                self.assertError(r, "bad_request")
        self.assertEqual(self.count_jobs(), before)

    def test_batch_with_top_level_job_fields(self):
        # "jobs" plus job fields beside it: ambiguous; the fields must not be
        # dropped silently (unknown fields are rejected so typos do not pass)
        before = self.count_jobs()
        r = self.d.request({"id": 1, "op": "submit", "argv": ["true"],
                            "jobs": [{"argv": ["true"]}]})
        self.assertError(r, "bad_request")
        self.assertEqual(self.count_jobs(), before)

    def test_unknown_field_rejected_by_every_op(self):
        """Every op answers a field it does not take with bad_request and
        changes nothing: a misspelt field never passes silently (list,
        logs, priority, status... used to ignore them)."""
        done = self.d.submit(["true"], **{"class": "io"})
        self.d.wait_job(done)
        held = self.d.submit(["true"], **{"class": "io"}, run_at=time.time() + 600)
        self.cancel_at_cleanup(held)
        before = self.count_jobs()
        reloads = self.d.status()["counters"]["reloads"]
        bad = [
            {"op": "submit", "argv": ["true"], "lables": {"a": "b"}},
            {"op": "submit", "jobs": [{"argv": ["true"]}], "wiat": True},
            {"op": "status", "verbose": True},
            {"op": "list", "stat": "done"},
            {"op": "show", "job": done, "fields": ["id"]},
            {"op": "wait", "job": done, "timeout": 5},
            {"op": "subscribe", "state": "done"},
            {"op": "cancel", "job": held, "force": True},
            {"op": "pause", "job": held, "clas": "io"},
            {"op": "resume", "job": held, "now": True},
            {"op": "priority", "job": held, "priority": 3, "prio": 3},
            {"op": "clean", "ids": [done]},
            {"op": "logs", "job": done, "stream": "stdout", "lenght": 10},
            {"op": "shutdown", "drian": True},
            {"op": "reload", "config": "/etc/passwd"},
            {"op": "metrics", "format": "json"},
        ]
        ops = {req["op"] for req in bad}
        self.assertEqual(len(ops), 15, "one request per op")
        for req in bad:
            with self.subTest(op=req["op"]):
                r = self.d.request(dict(req, v=1, id="u"))
                err = self.assertError(r, "bad_request")
                self.assertIn("unknown field", err["message"])
                self.assertIn(req["op"] + " takes", err["message"])
        self.assertEqual(self.count_jobs(), before)
        j = self.d.show(held)
        self.assertEqual((j["state"], j["priority"]), ("scheduled", 0))
        self.assertEqual(self.d.show(done)["state"], "done")
        st = self.assertDaemonServes()
        self.assertEqual(st["counters"]["reloads"], reloads)
        self.assertEqual(st["paused"], {"cpu": False, "io": False})
        self.assertIs(st["stopping"], False)

    # -- wait
    def test_wait_answers_when_finished(self):
        t0 = time.monotonic()
        jid = self.d.submit(["sleep", "0.5"], **{"class": "io"})
        with self.d.connect() as c:
            c.send({"id": "w", "op": "wait", "job": jid})
            r = c.recv_id("w", timeout=15)
            dt = time.monotonic() - t0
        j = self.assertOk(r)
        self.assertGreaterEqual(dt, 0.4, "wait answered before the job could have finished")
        self.assertEqual(j["id"], jid)
        self.assertEqual(j["state"], "done")
        self.assertIsNotNone(j["finished_at"])

    def test_submit_with_wait(self):
        # One request: answered with the finished job (its exit code included).
        t0 = time.monotonic()
        with self.d.connect() as c:
            c.send({"id": "sw", "op": "submit", "argv": ["sh", "-c", "sleep 0.3; exit 3"],
                    "wait": True, "class": "io"})
            self.assertTrue(c.no_data_within(0.15), "answered before the job ended")
            j = self.assertOk(c.recv_id("sw", timeout=15))
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertIsInstance(j["id"], int)
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 3)
        self.assertEqual(self.d.show(j["id"])["state"], "failed")
        # false: a plain submit
        r = self.assertOk(self.d.request({"id": 2, "op": "submit", "type": "noop",
                                          "wait": False}))
        self.assertEqual(set(r), {"id"})
        # a built-in, and a command that cannot start
        j = self.assertOk(self.d.request({"id": 3, "op": "submit", "type": "sumsq",
                                          "argv": ["1000"], "wait": True}))
        self.assertEqual(j["state"], "done")
        j = self.assertOk(self.d.request({"id": 4, "op": "submit", "argv": ["/nonexistent"],
                                          "wait": True}))
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 127)

    def test_submit_with_wait_bad(self):
        before = self.count_jobs()
        r = self.d.request({"id": 1, "op": "submit", "type": "noop", "wait": 1})
        self.assertIn("true or false", self.assertError(r, "bad_request")["message"])
        r = self.d.request({"id": 2, "op": "submit", "jobs": [{"type": "noop"}], "wait": True})
        self.assertIn("single-job submit", self.assertError(r, "bad_request")["message"])
        self.assertEqual(self.count_jobs(), before, "a refused submit queued a job")

    def test_submit_with_wait_counts_as_a_wait(self):
        # Each parked submit-with-wait takes one of the connection's 1024 wait slots.
        jid = self.d.submit(["sleep", "30"], **{"class": "io"})
        self.cancel_at_cleanup(jid)
        self.d.wait_state(jid, "running")
        with self.d.connect(timeout=30) as c:
            c.send_raw(b"".join(json.dumps({"id": i, "op": "wait", "job": jid}).encode()
                                + b"\n" for i in range(1023)))
            c.send({"id": "s", "op": "submit", "argv": ["sleep", "30"], "class": "io",
                    "wait": True, "priority": 19})
            c.send({"id": "over", "op": "submit", "type": "noop", "wait": True})
            self.assertError(c.recv_id("over", timeout=15), "too_many_requests")
            st = self.d.status()
            self.d.cancel(jid)
            for _ in range(1023):
                self.assertEqual(self.assertOk(c.recv(timeout=15))["state"], "cancelled")
            sid = max(j["id"] for j in self.d.list_jobs())
            self.d.cancel(sid)
            j = self.assertOk(c.recv_id("s", timeout=15))
            self.assertEqual(j["state"], "cancelled")
        self.assertFalse(st["stopping"])
        self.assertDaemonServes()

    def test_wait_finished_answers_at_once(self):
        jid = self.d.submit(["true"])
        self.d.wait_job(jid)
        t0 = time.monotonic()
        j = self.d.wait_job(jid)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(j["state"], "done")

    def test_many_waiters(self):
        jid = self.d.submit(["sleep", "0.3"], **{"class": "io"})
        conns = [self.d.connect() for _ in range(5)]
        try:
            for i, c in enumerate(conns):
                c.send({"id": i, "op": "wait", "job": jid})
                c.send({"id": "again", "op": "wait", "job": jid})
            for c in conns:
                for _ in range(2):
                    self.assertEqual(self.assertOk(c.recv(timeout=15))["state"], "done")
        finally:
            for c in conns:
                c.close()

    def test_client_disconnects_with_wait_in_flight(self):
        jid = self.d.submit(["sleep", "0.5"], **{"class": "io"})
        for _ in range(5):
            c = self.d.connect()
            c.send({"id": 1, "op": "wait", "job": jid})
            c.send({"id": 2, "op": "status"})
            c.close()
        self.assertDaemonServes()
        self.assertEqual(self.d.wait_job(jid, timeout=15)["state"], "done")
        time.sleep(0.1)
        self.assertDaemonServes()
        # and a half-sent request on a closed connection
        c = self.d.connect()
        c.send_raw(b'{"op":"wait","job":')
        c.close()
        self.assertDaemonServes()

    def test_half_close_answers_pending(self):
        # A client that sends its requests and then shuts down its write
        # side (as `socat`/`nc -N` do) still gets every answer, the
        # pending wait included, before the daemon closes the connection.
        import socket
        jid = self.d.submit(["sleep", "0.3"], **{"class": "io"})
        with self.d.connect() as c:
            c.send_raw(b'{"id":1,"op":"status"}\n{"id":2,"op":"wait","job":%d}\n' % jid)
            c.sock.shutdown(socket.SHUT_WR)
            got = []
            try:
                for _ in range(2):
                    got.append(c.recv(timeout=15)["id"])
            except ProtocolError:
                pass
        self.assertEqual(sorted(got), [1, 2])

    # -- logs
    def test_logs_utf8(self):
        jid = self.d.submit(["sh", "-c", "printf 'h\\303\\251llo\\n'"])
        self.d.wait_job(jid)
        r = self.d.logs(jid)
        self.assertEqual(r["encoding"], "utf-8")
        self.assertEqual(r["data"], "h\u00e9llo\n")
        self.assertEqual(r["offset"], 0)
        self.assertEqual(r["next_offset"], 7)
        self.assertEqual(r["size"], 7)
        self.assertIs(r["eof"], True)
        self.assertIs(r["truncated"], False)
        e = self.d.logs(jid, "stderr")
        self.assertEqual(e["data"], "")
        self.assertIs(e["eof"], True)

    def test_logs_base64(self):
        jid = self.d.submit(["printf", "\\377\\376"])
        self.d.wait_job(jid)
        r = self.d.logs(jid)
        self.assertEqual(r["encoding"], "base64")
        self.assertEqual(base64.b64decode(r["data"]), b"\xff\xfe")
        self.assertEqual(r["next_offset"], 2)

    def test_logs_offsets(self):
        jid = self.d.submit(["printf", "abcdefghij"])
        self.d.wait_job(jid)
        r = self.d.logs(jid, offset=0, max=4)
        self.assertEqual((r["data"], r["offset"], r["next_offset"], r["size"], r["eof"]),
                         ("abcd", 0, 4, 10, False))
        r = self.d.logs(jid, offset=4, max=100)
        self.assertEqual((r["data"], r["offset"], r["next_offset"], r["eof"]),
                         ("efghij", 4, 10, True))
        r = self.d.logs(jid, offset=10)
        self.assertEqual((r["data"], r["next_offset"], r["eof"]), ("", 10, True))

    def test_logs_running_job_not_eof(self):
        jid = self.d.submit(["sh", "-c", "echo first; exec sleep 30"], **{"class": "io"})
        self.addCleanup(lambda: self.d.request({"op": "cancel", "job": jid}))
        self.d.wait_output(jid, lambda b: b == b"first\n")
        r = self.d.logs(jid)
        self.assertEqual(r["data"], "first\n")
        self.assertIs(r["eof"], False, "eof must stay false while the job runs")

    def test_logs_truncated(self):
        # this daemon has jobs.max_output = 1K
        jid = self.d.submit(["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x; echo done >&2"])
        j = self.d.wait_job(jid)
        self.assertEqual(j["state"], "done")
        data = self.d.read_output(jid)
        self.assertLessEqual(len(data), 1024)
        self.assertGreater(len(data), 0)
        self.assertEqual(set(data), {ord("x")})
        r = self.d.logs(jid)
        self.assertIs(r["truncated"], True)
        self.assertIs(j["stdout_truncated"], True)
        self.assertIs(j["stderr_truncated"], False)
        self.assertEqual(j["stdout_bytes"], 5000)
        self.assertIs(self.d.logs(jid, "stderr")["truncated"], False)

    def test_logs_bad_stream(self):
        jid = self.d.submit(["true"])
        r = self.d.request({"id": 1, "op": "logs", "job": jid, "stream": "stdin"})
        self.assertError(r, "bad_request")

    # -- framing
    def test_frame_too_large_connection_survives(self):
        with self.d.connect() as c:
            c.send_raw(b'{"op":"status","pad":"' + b"x" * 100000 + b'"}\n')
            r = c.recv(timeout=15)
            self.assertError(r, "frame_too_large")
            r = c.call({"id": "after", "op": "status"})
            self.assertOk(r)
        self.assertDaemonServes()

    def test_frame_too_large_without_newline_then_more(self):
        with self.d.connect() as c:
            c.send_raw(b"y" * 70000)
            c.send_raw(b"y" * 70000 + b"\n" + json.dumps({"id": "z", "op": "status"}).encode()
                       + b"\n")
            r = c.recv(timeout=15)
            self.assertError(r, "frame_too_large")
            self.assertOk(c.recv_id("z", timeout=15))

    def test_frame_just_under_limit(self):
        # max_frame is 64K including the newline: a 60000-byte frame is fine
        pad = "x" * (60000 - len('{"id":1,"op":"submit","argv":["true",""]}') - 1)
        line = ('{"id":1,"op":"submit","argv":["true","%s"]}\n' % pad).encode()
        self.assertEqual(len(line), 60000)
        with self.d.connect() as c:
            c.send_raw(line)
            r = c.recv()
        jid = self.assertOk(r)["id"]
        self.assertEqual(self.d.wait_job(jid)["state"], "done")

    def test_two_objects_on_one_line(self):
        with self.d.connect() as c:
            c.send_raw(b'{"id":1,"op":"status"}{"id":2,"op":"status"}\n')
            r = c.recv()
            self.assertError(r, "bad_request")
            self.assertOk(c.call({"id": 3, "op": "status"}))

    def test_crlf_line(self):
        with self.d.connect() as c:
            c.send_raw(b'{"id":1,"op":"status"}\r\n')
            r = c.recv()
            # trailing whitespace is valid JSON
            self.assertOk(r)

    # -- limits on one connection
    def test_too_many_pipelined_waits(self):
        # 1024 waits may be parked on one connection; beyond that each wait
        # is refused with too_many_requests at once, and the connection and
        # the daemon keep working.
        jid = self.d.submit(["sleep", "30"], **{"class": "io"})
        self.cancel_at_cleanup(jid)
        self.d.wait_state(jid, "running")
        n = 1030
        with self.d.connect(timeout=30) as c:
            c.send_raw(b"".join(json.dumps({"id": i, "op": "wait", "job": jid}).encode()
                                + b"\n" for i in range(n)))
            errors = {}
            while len(errors) < n - 1024:
                r = c.recv(timeout=15)
                self.assertIs(r.get("ok"), False, "a wait answered while its job runs: %r" % r)
                errors[r["id"]] = self.assertError(r, "too_many_requests")
            self.assertEqual(sorted(errors), list(range(1024, n)))
            self.assertOk(c.call({"id": "st", "op": "status"}, timeout=15))
            self.assertDaemonServes()
            # another connection is not limited by this one
            with self.d.connect() as other:
                other.send({"id": "o", "op": "wait", "job": jid})
                self.assertTrue(other.no_data_within(0.2))
                self.d.cancel(jid)
                self.assertEqual(self.assertOk(other.recv_id("o", timeout=15))["state"],
                                 "cancelled")
            # and the 1024 parked waits are all answered
            got = set()
            for _ in range(1024):
                r = c.recv(timeout=15)
                self.assertEqual(self.assertOk(r)["state"], "cancelled")
                got.add(r["id"])
            self.assertEqual(got, set(range(1024)))
        self.assertDaemonServes()

    def clients_gauge(self):
        p = self.d.ctl("metrics")
        self.assertRc(p, 0)
        m = re.search(r"^taskd_clients (\d+)$", p.stdout, re.M)
        self.assertIsNotNone(m, "no taskd_clients gauge in:\n" + p.stdout)
        return int(m.group(1))

    def test_half_close_then_close_frees_client(self):
        # A client that sends a wait for a long job, half-closes, then goes
        # away entirely: the daemon must notice and drop the connection
        # (not keep it until the job ends).
        jid = self.d.submit(["sleep", "30"], **{"class": "io"})
        self.cancel_at_cleanup(jid)
        self.d.wait_state(jid, "running")
        base = self.clients_gauge()
        c = self.d.connect()
        try:
            c.send({"id": 1, "op": "wait", "job": jid})
            self.assertTrue(c.no_data_within(0.2))
            wait_for(lambda: self.clients_gauge() >= base + 1, 5,
                     what="taskd_clients to count the waiting client")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertTrue(c.no_data_within(0.3), "the wait was answered early")
        finally:
            c.close()
        wait_for(lambda: self.clients_gauge() <= base, 3,
                 what="taskd_clients to drop after the half-closed client went away "
                 "(base %d)" % base)
        self.assertEqual(self.d.show(jid)["state"], "running")
        # and the same without the half-close
        c = self.d.connect()
        try:
            c.send({"id": 1, "op": "wait", "job": jid})
            wait_for(lambda: self.clients_gauge() >= base + 1, 5,
                     what="taskd_clients to count the waiting client")
        finally:
            c.close()
        wait_for(lambda: self.clients_gauge() <= base, 3,
                 what="taskd_clients to drop after the waiting client went away")
        self.assertDaemonServes()

    def test_last_request_without_newline(self):
        # The last request of a half-closed connection needs no newline.
        with self.d.connect() as c:
            c.send_raw(b'{"id":1,"op":"status"}')
            c.sock.shutdown(socket.SHUT_WR)
            r = c.recv(timeout=10)
            self.assertEqual(r.get("id"), 1)
            self.assertOk(r)
        with self.d.connect() as c:
            c.send_raw(b'{"id":1,"op":"status"}\n{"id":2,"op":"list","limit":1}')
            c.sock.shutdown(socket.SHUT_WR)
            got = {}
            for _ in range(2):
                r = c.recv(timeout=10)
                got[r["id"]] = self.assertOk(r)
            self.assertEqual(set(got), {1, 2})
            # then the daemon closes its side
            with self.assertRaises(ProtocolError):
                c.recv(timeout=5)
        with self.d.connect() as c:
            c.send_raw(b'{"id":1,"op":')
            c.sock.shutdown(socket.SHUT_WR)
            self.assertError(c.recv(timeout=10), "bad_request")
        self.assertDaemonServes()

    # -- shutdown over the protocol is in test_daemon / test_cli


# A small client run as another user: sends the requests given as a JSON
# list on one connection and prints the list of responses as JSON.
FOREIGN_CLIENT = r"""
import json, socket, sys
path, reqs = sys.argv[1], json.loads(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(path)
s.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
buf, out = b"", []
while len(out) < len(reqs):
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed after %d responses: %r" % (len(out), out))
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    out.append(json.loads(line))
print(json.dumps(out))
"""

class DocumentedErrorCodesTest(unittest.TestCase):
    """Every error code taskd can send is in doc/protocol.md's list (issue 12, 11).

    Reads the sources, no daemon: the codes are the TASKD_ERR_* macros the
    daemon uses (include/taskd/protocol.h gives their text) and any code
    written as a literal where an error is made; the list is doc/protocol.md's
    "Error codes" section, one "- `code`" line each.
    """

    ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

    def read(self, *path):
        with open(os.path.join(self.ROOT, *path), encoding="utf-8") as f:
            return f.read()

    def defined(self):
        text = self.read("include", "taskd", "protocol.h")
        return dict(re.findall(r'#define\s+(TASKD_ERR_[A-Z_]+)\s+"([a-z_]+)"', text))

    def sent(self):
        macros = self.defined()
        codes = {}
        ddir = os.path.join(self.ROOT, "daemon")
        for name in sorted(os.listdir(ddir)):
            if not name.endswith(".c"):
                continue
            text = self.read("daemon", name)
            for m in re.findall(r"\bTASKD_ERR_[A-Z_]+\b", text):
                self.assertIn(m, macros, "daemon/%s uses %s, not in protocol.h" % (name, m))
                codes.setdefault(macros[m], name)
            # a code written out where an error is made, instead of its macro
            for m in re.findall(r'(?:reply_err|proto_fail|proto_error_set|close_with|'
                                r'admission_refuse)\s*\([^;"]*?"([a-z]+_[a-z_]+)"', text):
                codes.setdefault(m, name)
        return codes

    def documented(self):
        doc = self.read("doc", "protocol.md")
        m = re.search(r"^## Error codes\n(.*?)(?=^## )", doc, re.M | re.S)
        self.assertIsNotNone(m, "doc/protocol.md has no \"## Error codes\" section")
        return re.findall(r"^- `([a-z_]+)`", m.group(1), re.M)

    def test_every_sent_code_is_documented(self):
        doc = set(self.documented())
        missing = {c: f for c, f in self.sent().items() if c not in doc}
        self.assertEqual(missing, {}, "error codes sent but not in doc/protocol.md's list "
                         "(code: a file sending it)")

    def test_documented_codes_exist(self):
        doc = self.documented()
        self.assertEqual(len(doc), len(set(doc)), "a code listed twice")
        self.assertEqual(sorted(set(doc) - set(self.defined().values())), [],
                         "listed in doc/protocol.md but not defined in protocol.h")
        self.assertEqual(sorted(set(self.defined().values()) - set(doc)), [],
                         "defined in protocol.h but not listed in doc/protocol.md")

    def test_scan_finds_codes(self):
        # the scan itself works: codes every taskd sends are found
        sent = self.sent()
        for code in ("bad_request", "frame_too_large", "frame_timeout", "too_many_requests",
                     "storage_error", "too_many_connections", "idle_timeout"):
            self.assertIn(code, sent)


NOBODY = 65534
RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")


@unittest.skipUnless(os.geteuid() == 0, "needs root: runs clients as nobody against a root taskd")
@unittest.skipUnless(RUNUSER, "runuser not found")
class ForeignUserTest(E2ETestCase):
    """A root taskd and a client running as nobody (SO_PEERCRED decides)."""

    shared_daemon = True
    shared_overrides = {"socket_mode": "0666"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.chmod(cls.d.tmp, 0o755)  # nobody must reach the socket
        cls.client = os.path.join(cls.d.tmp, "foreign_client.py")
        with open(cls.client, "w") as f:
            f.write(FOREIGN_CLIENT)
        os.chmod(cls.client, 0o644)

    def as_nobody(self, *reqs):
        """Send reqs as uid nobody on one connection; the list of responses."""
        p = subprocess.run([RUNUSER, "-u", "nobody", "--", sys.executable, self.client,
                            self.d.sock, json.dumps(list(reqs))], capture_output=True,
                           text=True, timeout=30, cwd="/", stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, "client as nobody failed: %s%s" % (p.stdout, p.stderr))
        return json.loads(p.stdout)

    def ctl_as_nobody(self, *args):
        from harness import TASKCTL
        return subprocess.run([RUNUSER, "-u", "nobody", "--", TASKCTL, "-s", self.d.sock]
                              + [str(a) for a in args], capture_output=True, text=True,
                              timeout=30, cwd="/", stdin=subprocess.DEVNULL)

    def test_peer_is_nobody(self):
        [r] = self.as_nobody({"id": 1, "op": "submit", "type": "noop"})
        j = self.d.wait_job(self.assertOk(r)["id"])
        self.assertEqual(j["owner"], {"uid": NOBODY, "gid": NOBODY})

    def test_shutdown_and_reload_forbidden(self):
        rs = self.as_nobody({"id": 1, "op": "shutdown"},
                            {"id": 2, "op": "shutdown", "drain": True},
                            {"id": 3, "op": "reload"})
        for r in rs:
            self.assertError(r, "forbidden")
        p = self.ctl_as_nobody("shutdown")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("forbidden", (p.stdout + p.stderr).lower())
        self.assertTrue(self.d.alive())
        st = self.assertDaemonServes()
        self.assertIs(st["stopping"], False)
        self.assertEqual(st["counters"]["reloads"], 0)
        self.assertOk(self.d.request({"id": 1, "op": "submit", "type": "noop"}))

    def test_exec_runs_as_submitter(self):
        # In both pools the command runs as nobody, its output files belong to
        # nobody (0600), it cannot read root's files, and it inherits no
        # daemon descriptors.
        script = "id -u; id -g; ls /proc/self/fd | wc -l; cat /etc/shadow"
        rs = self.as_nobody({"id": 1, "op": "submit", "argv": ["sh", "-c", script],
                             "class": "io", "cwd": "/tmp"},
                            {"id": 2, "op": "submit", "argv": ["sh", "-c", script],
                             "class": "cpu", "cwd": "/tmp"})
        for r in rs:
            j = self.d.wait_job(self.assertOk(r)["id"])
            self.assertEqual(j["state"], "failed", j)  # cat /etc/shadow fails
            self.assertEqual(j["owner"], {"uid": NOBODY, "gid": NOBODY})
            out = self.d.read_output(j["id"]).decode()
            uid, gid, nfd = out.split()[:3]
            self.assertEqual((int(uid), int(gid)), (NOBODY, NOBODY), out)
            self.assertLessEqual(int(nfd), 4, "job inherited descriptors: %s" % out)
            self.assertIn("Permission denied", self.d.read_output(j["id"], "stderr").decode())
            for ext in ("out", "err"):
                st = os.stat(os.path.join(self.d.state_dir, "jobs", "%d.%s" % (j["id"], ext)))
                self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o600))

    def test_exec_cwd_checked_as_submitter(self):
        private = os.path.join(self.d.tmp, "private")
        os.mkdir(private, 0o700)
        for cls in ("io", "cpu"):
            [r] = self.as_nobody({"id": 1, "op": "submit", "argv": ["pwd"], "class": cls,
                                  "cwd": private})
            j = self.d.wait_job(self.assertOk(r)["id"])
            self.assertEqual(j["state"], "failed")
            self.assertIn("Permission denied", j["error"] or "", j)

    def test_cwd_not_looked_at_for_other_users(self):
        # A root daemon does not stat another user's cwd at submit (that would
        # tell them what exists under directories they cannot read): the run
        # checks it as them, and the job fails with the reason.
        secret = os.path.join(self.d.tmp, "secret")
        os.makedirs(secret, 0o700, exist_ok=True)
        for path in (os.path.join(secret, "exists"), os.path.join(secret, "missing")):
            if path.endswith("exists"):
                os.makedirs(path, exist_ok=True)
            [r] = self.as_nobody({"id": 1, "op": "submit", "argv": ["pwd"], "cwd": path})
            j = self.d.wait_job(self.assertOk(r)["id"])
            self.assertEqual(j["state"], "failed")
            self.assertIn("Permission denied", j["error"] or "", j)
        [r] = self.as_nobody({"id": 1, "op": "submit", "argv": ["pwd"], "cwd": "relative"})
        self.assertError(r, "bad_request")
        # root's own submits are still checked at once
        r = self.d.request({"id": 2, "op": "submit", "argv": ["pwd"],
                            "cwd": "/nonexistent/e2e/dir"})
        self.assertIn("No such file", self.assertError(r, "bad_request")["message"])

    def test_exec_errors_as_submitter(self):
        [nf, nx] = self.as_nobody({"id": 1, "op": "submit", "argv": ["/nonexistent"]},
                                  {"id": 2, "op": "submit", "argv": ["/etc/shadow"]})
        j = self.d.wait_job(self.assertOk(nf)["id"])
        self.assertEqual((j["state"], j["exit_code"]), ("failed", 127))
        j = self.d.wait_job(self.assertOk(nx)["id"])
        self.assertEqual((j["state"], j["exit_code"]), ("failed", 126))
        self.assertTrue(j["error"])

    def test_router_keys_only_for_root(self):
        # Kind keys are job names and command names of every user: status
        # shows the router table to root and taskd's own user only.
        j = self.d.submit(["sh", "-c", "sleep 0.01"], name="root-secret-kind")
        self.d.wait_job(j)
        keys = [k["key"] for k in self.d.status()["router"]]
        self.assertIn("name:root-secret-kind", keys)
        [st] = self.as_nobody({"id": 1, "op": "status"})
        st = self.assertOk(st)
        self.assertIsNone(st["router"])
        self.assertNotIn("root-secret-kind", json.dumps(st))
        for args in (("status",), ("--json", "status")):
            p = self.ctl_as_nobody(*args)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("root-secret-kind", p.stdout)
        p = self.d.ctl("status")
        self.assertIn("root-secret-kind", p.stdout)

    def test_builtin_accepted(self):
        rs = self.as_nobody({"id": 1, "op": "submit", "type": "noop"},
                            {"id": 2, "op": "submit", "type": "sumsq", "argv": ["10"],
                             "class": "cpu"},
                            {"id": 3, "op": "submit", "jobs": [{"type": "sleep",
                                                                "argv": ["0.01"]}]})
        ids = [self.assertOk(rs[0])["id"], self.assertOk(rs[1])["id"]]
        ids += self.assertOk(rs[2])["ids"]
        for i in ids:
            self.assertEqual(self.d.wait_job(i)["state"], "done")
        self.assertEqual(self.d.show(ids[1])["result"], "285")
        # its own jobs: show and wait work
        rs = self.as_nobody({"id": 1, "op": "show", "job": ids[0]},
                            {"id": 2, "op": "wait", "job": ids[1]})
        self.assertEqual(self.assertOk(rs[0])["id"], ids[0])
        self.assertEqual(self.assertOk(rs[1])["result"], "285")

    def test_roots_job_hidden(self):
        jid = self.d.submit(["sleep", "30"], **{"class": "io"})
        self.cancel_at_cleanup(jid)
        self.d.wait_state(jid, "running")
        done = self.d.submit(["true"])
        self.d.wait_job(done)
        [mine] = self.as_nobody({"id": 1, "op": "submit", "type": "noop"})
        mine = self.assertOk(mine)["id"]
        self.d.wait_job(mine)
        rs = self.as_nobody({"id": "show", "op": "show", "job": jid},
                            {"id": "cancel", "op": "cancel", "job": jid},
                            {"id": "wait", "op": "wait", "job": jid},
                            {"id": "logs", "op": "logs", "job": jid},
                            {"id": "show2", "op": "show", "job": done},
                            {"id": "logs2", "op": "logs", "job": done},
                            {"id": "list", "op": "list", "limit": 0},
                            {"id": "list2", "op": "list", "state": "running"})
        rs = {r["id"]: r for r in rs}
        for k in ("show", "cancel", "wait", "logs", "show2", "logs2"):
            with self.subTest(op=k):
                self.assertError(rs[k], "forbidden")
        self.assertEqual(self.d.show(jid)["state"], "running", "nobody cancelled root's job")
        listed = self.assertOk(rs["list"])["jobs"]
        self.assertIn(mine, [j["id"] for j in listed])
        self.assertEqual([j for j in listed if j["owner"]["uid"] != NOBODY], [],
                         "list as nobody shows other users' jobs")
        self.assertEqual(self.assertOk(rs["list2"])["jobs"], [])
        # root sees both
        ids = [j["id"] for j in self.d.list_jobs()]
        self.assertIn(jid, ids)
        self.assertIn(mine, ids)


class ProtocolShutdownTest(E2ETestCase):
    def test_shutdown_op(self):
        d = self.start_daemon()
        jid = d.submit(["sleep", "30"], **{"class": "io"})
        d.wait_state(jid, "running")
        with d.connect() as c:
            r = c.call({"id": 1, "op": "shutdown", "drain": False})
            res = self.assertOk(r)
            self.assertIs(res["stopping"], True)
            self.assertIs(res["drain"], False)
        rc = d.wait_exit(10)
        self.assertEqual(rc, 0)

    def test_shutdown_answers_waiters(self):
        # a client waiting for a job the shutdown cancels gets its answer
        d = self.start_daemon()
        jid = d.submit(["sleep", "30"], **{"class": "io"})
        d.wait_state(jid, "running")
        with d.connect() as w:
            w.send({"id": "w", "op": "wait", "job": jid})
            self.assertTrue(w.no_data_within(0.2))
            self.assertOk(d.request({"id": 1, "op": "shutdown"}))
            r = w.recv_id("w", timeout=15)
            self.assertEqual(self.assertOk(r)["state"], "cancelled")
        self.assertEqual(d.wait_exit(10), 0)

    def test_shutdown_drain(self):
        d = self.start_daemon()
        jid = d.submit(["sh", "-c", "sleep 0.5; echo finished"], **{"class": "io"})
        d.wait_state(jid, "running")
        with d.connect() as c:
            c.send({"id": "w", "op": "wait", "job": jid})
            r = c.call({"id": 1, "op": "shutdown", "drain": True})
            self.assertIs(self.assertOk(r)["drain"], True)
            r = c.call({"id": 2, "op": "submit", "argv": ["true"]})
            self.assertError(r, "shutting_down")
            w = c.recv_id("w", timeout=15)
            self.assertEqual(self.assertOk(w)["state"], "done")
        self.assertEqual(d.wait_exit(10), 0)


if __name__ == "__main__":
    main()
