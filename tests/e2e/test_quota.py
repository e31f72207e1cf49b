"""What one user may take from the others (issue 12, defects 6 and 7).

- Priority: only root and taskd's own user may ask for a priority below 0,
  at submit (single, batch) and with the priority op; anyone else gets
  forbidden, as with nice(1).
- Stored bytes: a user's job descriptions (limits.max_job_bytes_per_user)
  and output files (limits.max_output_per_user) are bounded; beyond, submits
  get quota_exceeded and a running job's output is cut (its error says so).
  Root and taskd's own user are counted, not bounded. Bytes come back when
  jobs end, are cleaned or pruned; a restart counts them again.
- A full disk: submits get storage_error, reads go on.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, Daemon, NOBODY, TASKCTL, as_nobody,  # noqa: E402
                     ctl_as_nobody, wait_for, main)


def sleep_job(sec, **kw):
    j = {"type": "sleep", "class": "io", "argv": [str(sec)]}
    j.update(kw)
    return j


@unittest.skipUnless(os.geteuid() == 0, "needs root: clients run as nobody against a root taskd")
class NegativePriorityTest(E2ETestCase):
    """Defect: nobody's -20 jobs all started before root's 0 ones, past fair share."""

    shared_daemon = True
    shared_overrides = {"socket_mode": "0666", "thread_pool.min_threads": 1,
                        "thread_pool.max_threads": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.chmod(cls.d.tmp, 0o755)  # nobody must reach the socket

    def assertForbidden(self, r, *words):
        msg = self.assertError(r, "forbidden")["message"]
        for w in words:
            self.assertIn(w, msg)

    def test_submit_below_zero_forbidden(self):
        d = self.d
        before = d.status()["counters"]["jobs_submitted"]
        [single, batch, wait] = as_nobody(
            d, {"id": 1, "op": "submit", "type": "noop", "priority": -20},
            {"id": 2, "op": "submit", "jobs": [{"type": "noop"},
                                                {"type": "noop", "priority": -1}]},
            {"id": 3, "op": "submit", "type": "noop", "priority": -5, "wait": True})
        self.assertForbidden(single, "priority -20", "below 0")
        self.assertForbidden(batch, "jobs[1]", "priority -1")
        self.assertForbidden(wait, "priority -5")
        # nothing was queued, not even the batch's first job
        self.assertEqual(d.status()["counters"]["jobs_submitted"], before)
        # 0 and above are anyone's
        rs = as_nobody(d, {"id": 1, "op": "submit", "type": "noop", "priority": 0},
                       {"id": 2, "op": "submit", "jobs": [{"type": "noop", "priority": 19}]})
        for r in rs:
            self.assertOk(r)
        # root may
        j = d.submit(type="noop", priority=-20)
        self.assertEqual(d.wait_job(j)["priority"], -20)

    def test_taskctl_submit_below_zero(self):
        p = ctl_as_nobody(self.d, "submit", "--priority", "-3", "--type", "noop")
        self.assertRc(p, 4)
        self.assertIn("forbidden", p.stderr)
        self.assertIn("below 0", p.stderr)

    def test_priority_op_below_zero_forbidden(self):
        d = self.d
        [r] = as_nobody(d, {"id": 1, "op": "submit", "type": "noop", "priority": 3,
                            "run_at": time.time() + 3600})
        j = self.assertOk(r)["id"]
        self.addCleanup(d.cancel, j)
        rs = as_nobody(d, {"id": 1, "op": "priority", "job": j, "priority": -1},
                       {"id": 2, "op": "priority", "job": j, "priority": 0})
        self.assertForbidden(rs[0], "priority -1")
        self.assertEqual(self.assertOk(rs[1])["priority"], 0)
        p = ctl_as_nobody(d, "priority", j, "-5")
        self.assertRc(p, 4)
        self.assertIn("forbidden", p.stderr)
        self.assertEqual(d.show(j)["priority"], 0)
        # root may set it below 0, even on nobody's job; nobody may then raise it to 0..19
        self.assertEqual(d.ok({"op": "priority", "job": j, "priority": -7})["priority"], -7)
        self.assertEqual(d.show(j)["owner"]["uid"], NOBODY)
        [r] = as_nobody(d, {"id": 1, "op": "priority", "job": j, "priority": -6})
        self.assertForbidden(r)
        [r] = as_nobody(d, {"id": 1, "op": "priority", "job": j, "priority": 2})
        self.assertEqual(self.assertOk(r)["priority"], 2)

    def test_cannot_jump_roots_queue(self):
        # The case: nobody's jobs no longer start before root's 0 ones.
        d = self.d
        block = d.submit(**sleep_job(0.5))
        d.wait_state(block, "running")
        mine = d.submit_batch([sleep_job(0.01) for _ in range(3)])
        [r] = as_nobody(d, {"id": 1, "op": "submit",
                            "jobs": [sleep_job(0.01, priority=-20) for _ in range(3)]})
        self.assertForbidden(r)
        [r] = as_nobody(d, {"id": 1, "op": "submit",
                            "jobs": [sleep_job(0.01) for _ in range(3)]})
        theirs = self.assertOk(r)["ids"]
        order = sorted(mine + theirs, key=lambda j: d.wait_job(j)["started_at"])
        self.assertEqual(order[0], mine[0], "nobody's jobs went first: %r" % order)


def nobody_daemon(case, overrides=None, tmpdir=None):
    o = {"socket_mode": "0666"}
    o.update(overrides or {})
    d = case.start_daemon(o, tmpdir=tmpdir)
    os.chmod(d.tmp, 0o755)  # nobody must reach the socket
    d.overrides = o
    return d


def nobody_ok(case, d, req):
    [r] = as_nobody(d, dict(req, id=1))
    return case.assertOk(r)


def nobody_quota(case, d):
    return nobody_ok(case, d, {"op": "status"})["quota"]


KIB = 1024
ENV = {"PATH": "/usr/bin:/bin", "BIG": "x" * (60 * KIB)}


@unittest.skipUnless(os.geteuid() == 0, "needs root: clients run as nobody against a root taskd")
class JobBytesQuotaTest(E2ETestCase):
    """Defect: 200 scheduled jobs with a 1 MB environment from nobody took 200 MB of
    memory and disk (only 10,000 jobs per user bounded it)."""

    def later(self, **kw):
        j = {"op": "submit", "argv": ["true"], "env": ENV, "run_at": time.time() + 3600}
        j.update(kw)
        return j

    def test_descriptions_bounded(self):
        d = nobody_daemon(self, {"limits.max_job_bytes_per_user": "256K"})
        ids = [nobody_ok(self, d, self.later())["id"] for _ in range(4)]
        q = nobody_quota(self, d)
        self.assertEqual(q["uid"], NOBODY)
        self.assertEqual(q["max_job_bytes"], 256 * KIB)
        self.assertGreater(q["job_bytes"], 4 * 60 * KIB)
        self.assertLess(q["job_bytes"], 256 * KIB)
        before = d.status()["counters"]["jobs_submitted"]
        [r] = as_nobody(d, dict(self.later(), id=1))
        msg = self.assertError(r, "quota_exceeded")["message"]
        self.assertIn("limits.max_job_bytes_per_user", msg)
        self.assertIn(str(q["job_bytes"]), msg)
        self.assertIn(str(256 * KIB), msg)
        # a batch is all or nothing
        [r] = as_nobody(d, {"id": 1, "op": "submit",
                            "jobs": [{"type": "noop", "env": {"A": "b"}},
                                     {"argv": ["true"], "env": ENV}]})
        self.assertError(r, "quota_exceeded")
        self.assertEqual(d.status()["counters"]["jobs_submitted"], before)
        # taskctl says why, exit 4
        big = dict(os.environ, BIG="y" * (80 * KIB))
        p = subprocess.run([TASKCTL, "-s", d.sock, "submit",
                            "--", "true"], env=big, capture_output=True, text=True,
                           timeout=30, cwd="/", stdin=subprocess.DEVNULL, user=NOBODY,
                           group=NOBODY, extra_groups=[])
        self.assertRc(p, 4)
        self.assertIn("quota_exceeded", p.stderr)
        # root and taskd's own user: counted, not bounded
        mine = [d.submit(**{k: v for k, v in self.later().items() if k != "op"})
                for _ in range(6)]
        rq = d.status()["quota"]
        self.assertEqual(rq["uid"], 0)
        self.assertIsNone(rq["max_job_bytes"])
        self.assertGreater(rq["job_bytes"], 6 * 60 * KIB)
        # a job that ends keeps its description (restart runs it again with its
        # environment): still refused; clean gives it back
        for j in ids[:2]:
            nobody_ok(self, d, {"op": "cancel", "job": j})
        self.assertEqual(nobody_quota(self, d)["job_bytes"], q["job_bytes"])
        [r] = as_nobody(d, dict(self.later(), id=1))
        self.assertError(r, "quota_exceeded")
        nobody_ok(self, d, {"op": "clean"})
        self.assertLess(nobody_quota(self, d)["job_bytes"], 2 * 61 * KIB + 4 * KIB)
        nobody_ok(self, d, self.later())
        for j in ids[2:]:
            nobody_ok(self, d, {"op": "cancel", "job": j})
        nobody_ok(self, d, {"op": "clean"})
        self.assertLess(nobody_quota(self, d)["job_bytes"], 61 * KIB)
        for j in mine:
            d.cancel(j)

    def test_array_and_input(self):
        """An array's jobs share one description (counted once); an input counts."""
        import base64
        d = nobody_daemon(self, {"limits.max_job_bytes_per_user": "128K"})
        a = nobody_ok(self, d, self.later(array={"start": 1, "end": 200}))
        self.assertEqual(a["count"], 200)
        jb = nobody_quota(self, d)["job_bytes"]
        self.assertGreater(jb, 60 * KIB)
        self.assertLess(jb, 61 * KIB)
        data = base64.b64encode(b"i" * (40 * KIB)).decode()
        [r] = as_nobody(d, dict(self.later(input=data), id=1))
        msg = self.assertError(r, "quota_exceeded")["message"]
        self.assertIn(str(jb), msg)
        # without its environment it fits: the input's bytes, counted while the job is there
        nobody_ok(self, d, {"op": "submit", "argv": ["cat"], "input": data,
                            "run_at": time.time() + 3600})
        self.assertGreater(nobody_quota(self, d)["job_bytes"], jb + 40 * KIB)
        nobody_ok(self, d, {"op": "cancel", "array": a["array"]})
        nobody_ok(self, d, {"op": "clean", "array": a["array"]})
        self.assertLess(nobody_quota(self, d)["job_bytes"], 41 * KIB)


@unittest.skipUnless(os.geteuid() == 0, "needs root: clients run as nobody against a root taskd")
class OutputQuotaTest(E2ETestCase):
    """Output was capped per job (jobs.max_output) but not per user."""

    LIMITS = {"limits.max_output_per_user": "100K", "jobs.max_output": "1M",
              "thread_pool.min_threads": 2}

    def run_as_nobody(self, d, script, **kw):
        job = nobody_ok(self, d, dict({"op": "submit", "argv": ["sh", "-c", script],
                                       "class": "io", "wait": True}, **kw))
        self.assertEqual(job["owner"]["uid"], NOBODY)
        return job

    def test_output_cut_at_the_quota(self):
        d = nobody_daemon(self, self.LIMITS)
        j = self.run_as_nobody(d, "head -c 300000 /dev/zero; echo done >&2")
        self.assertEqual(j["state"], "done", j)
        self.assertTrue(j["stdout_truncated"], j)
        self.assertEqual(j["stdout_bytes"], 300000)
        self.assertIn("limits.max_output_per_user", j["error"] or "", j)
        self.assertEqual(len(d.read_output(j["id"])), 100 * KIB)
        q = nobody_quota(self, d)
        self.assertEqual((q["output_bytes"], q["max_output"]), (100 * KIB, 100 * KIB))
        # full: no more submits
        [r] = as_nobody(d, {"id": 1, "op": "submit", "type": "noop"})
        msg = self.assertError(r, "quota_exceeded")["message"]
        self.assertIn("limits.max_output_per_user", msg)
        self.assertIn(str(100 * KIB), msg)
        p = ctl_as_nobody(d, "show", j["id"])
        self.assertIn("limits.max_output_per_user", p.stdout)
        # root is not bounded
        mine = d.submit(["head", "-c", "300000", "/dev/zero"], **{"class": "io"})
        r = d.wait_job(mine)
        self.assertFalse(r["stdout_truncated"], r)
        self.assertIsNone(r["error"])
        self.assertEqual(len(d.read_output(mine)), 300000)
        # clean gives it back
        nobody_ok(self, d, {"op": "clean"})
        self.assertEqual(nobody_quota(self, d)["output_bytes"], 0)
        j = self.run_as_nobody(d, "echo again")
        self.assertEqual((j["state"], j["error"]), ("done", None))

    def test_running_jobs_count(self):
        # Two jobs of nobody start at once, each with the whole quota left;
        # together they pass it: the once-a-second check counts what the one
        # still running has written so far and stops its output, though
        # neither reached the quota alone. (A worker process is told the
        # same way as when a job starts with nothing left: see below.)
        d = nobody_daemon(self, dict(self.LIMITS, **{"limits.max_output_per_user": "300K"}))
        fast = "head -c 200000 /dev/zero"
        slow = "sleep 0.3; i=0; while [ $i -lt 80 ]; do printf '%3072s' x; sleep 0.05; " \
               "i=$((i+1)); done"
        rs = as_nobody(d, {"id": 1, "op": "submit", "argv": ["sh", "-c", fast], "class": "io"},
                       {"id": 2, "op": "submit", "argv": ["sh", "-c", slow], "class": "io"})
        a, b = [d.wait_job(self.assertOk(r)["id"], timeout=30) for r in rs]
        self.assertFalse(a["stdout_truncated"], a)
        self.assertTrue(b["stdout_truncated"], b)
        self.assertEqual(b["stdout_bytes"], 80 * 3072)
        self.assertIn("limits.max_output_per_user", b["error"] or "", b)
        kept = len(d.read_output(b["id"]))
        self.assertLess(kept, 80 * 3072)
        self.assertGreaterEqual(200000 + kept, 300 * KIB - 3 * KIB)
        self.assertEqual(nobody_quota(self, d)["output_bytes"], 200000 + kept)

    def test_stopped_from_the_start(self):
        # A job that starts when its owner's quota is used up keeps nothing.
        d = nobody_daemon(self, self.LIMITS)
        for cls in ("io", "cpu"):
            with self.subTest(cls=cls):
                # both queued before the first starts (later: after it ends), whatever the load
                d.ok({"op": "pause", "class": cls})
                first = nobody_ok(self, d, {"op": "submit", "class": cls,
                                            "argv": ["head", "-c", "200000", "/dev/zero"]})["id"]
                later = nobody_ok(self, d, {"op": "submit", "argv": ["echo", "late"],
                                            "class": cls, "after": [first]})["id"]
                d.ok({"op": "resume", "class": cls})
                self.assertTrue(d.wait_job(first)["stdout_truncated"])
                j = d.wait_job(later)
                self.assertEqual(j["state"], "done", j)
                self.assertTrue(j["stdout_truncated"], j)
                self.assertEqual(j["stdout_bytes"], 5)
                self.assertEqual(d.read_output(later), b"")
                self.assertIn("limits.max_output_per_user", j["error"] or "", j)
                nobody_ok(self, d, {"op": "clean"})

    def test_handler_jobs_count(self):
        # A handler job's output files and its stored result are its output too.
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handler_worker.py")
        d = nobody_daemon(self, dict(self.LIMITS, handlers=[
            {"name": "py", "command": ["/usr/bin/python3", worker], "user": "root",
             "start_timeout": 10}]))
        j = nobody_ok(self, d, {"op": "submit", "type": "py", "argv": ["print", "x" * 100],
                                "wait": True})
        self.assertEqual(j["state"], "done", j)
        used = nobody_quota(self, d)["output_bytes"]
        self.assertEqual(used, len(d.read_output(j["id"])) + len(d.read_output(j["id"], "stderr"))
                         + len(json.dumps(j["result"])))
        self.assertGreater(used, 200)
        j = nobody_ok(self, d, {"op": "submit", "type": "py", "argv": ["big", "110000"],
                                "wait": True})
        self.assertEqual(j["state"], "done", j)
        self.assertGreater(nobody_quota(self, d)["output_bytes"], 100 * KIB)
        [r] = as_nobody(d, {"id": 1, "op": "submit", "type": "py", "argv": ["echo"]})
        self.assertError(r, "quota_exceeded")
        nobody_ok(self, d, {"op": "clean"})
        self.assertEqual(nobody_quota(self, d)["output_bytes"], 0)

    def test_module_jobs_count(self):
        # A module job's output files are bounded like a command's, on
        # threads and in a worker; one that starts with the quota used up
        # keeps nothing (a worker is told with the job, not after it).
        testmod = os.path.join(os.path.abspath(os.environ.get("TASKD_TEST_MODULES") or
                                                "../../build/tests"), "testmod.so")
        d = nobody_daemon(self, dict(self.LIMITS, modules=[testmod]))
        for t, cls in (("tm-io", "io"), ("tm-cpu", "cpu")):
            with self.subTest(type=t):
                # both queued before the first starts (later: after it)
                d.ok({"op": "pause", "class": cls})
                first = nobody_ok(self, d, {"op": "submit", "type": t,
                                            "argv": ["write", "x" * 70000, "e" * 40000]})["id"]
                later = nobody_ok(self, d, {"op": "submit", "type": t, "after": [first],
                                            "argv": ["write", "late\n", "late\n"]})["id"]
                d.ok({"op": "resume", "class": cls})
                j = d.wait_job(first)
                self.assertEqual((j["state"], j["stdout_bytes"], j["stderr_bytes"]),
                                 ("done", 70000, 40000), j)
                self.assertEqual((j["stdout_truncated"], j["stderr_truncated"]), (False, True))
                self.assertIn("limits.max_output_per_user", j["error"] or "", j)
                self.assertEqual(len(d.read_output(first)), 70000)
                self.assertEqual(d.read_output(first, "stderr"), b"e" * (100 * KIB - 70000))
                j = d.wait_job(later)
                self.assertEqual((j["state"], j["stdout_bytes"]), ("done", 5), j)
                self.assertEqual((d.read_output(later), d.read_output(later, "stderr")),
                                 (b"", b""))
                self.assertIn("limits.max_output_per_user", j["error"] or "", j)
                # their files and their results ("wrote")
                self.assertEqual(nobody_quota(self, d)["output_bytes"], 100 * KIB + 10)
                nobody_ok(self, d, {"op": "clean"})

    def test_handler_retry_appends(self):
        # A handler job that never wrote output counts its result only; one whose
        # retry wrote nothing still has its first run's bytes (retries append).
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handler_worker.py")
        d = nobody_daemon(self, dict(self.LIMITS, handlers=[
            {"name": "py", "command": ["/usr/bin/python3", worker], "user": "root",
             "start_timeout": 10}]))
        quiet = nobody_ok(self, d, {"op": "submit", "type": "py", "argv": ["text", "hi"],
                                    "wait": True})
        self.assertEqual(quiet["state"], "done", quiet)
        self.assertEqual(d.read_output(quiet["id"]), b"")
        result = len(json.dumps(quiet["result"]))
        self.assertEqual(nobody_quota(self, d)["output_bytes"], result)
        j = nobody_ok(self, d, {"op": "submit", "type": "py", "argv": ["print_once", d.tmp],
                                "retries": 1, "retry_delay": 0, "wait": True})
        self.assertEqual((j["state"], j["attempt"]), ("done", 2), j)
        out, err = d.read_output(j["id"]), d.read_output(j["id"], "stderr")
        self.assertIn(b"first attempt", out)
        self.assertEqual(nobody_quota(self, d)["output_bytes"],
                         result + len(out) + len(err) + len(json.dumps(j["result"])))

    def test_restart_counts_again(self):
        d = nobody_daemon(self, self.LIMITS)
        self.run_as_nobody(d, "head -c 60000 /dev/zero")
        self.run_as_nobody(d, "head -c 50000 /dev/zero >&2")
        q = nobody_quota(self, d)
        self.assertEqual(q["output_bytes"], 100 * KIB)
        job_bytes = q["job_bytes"]
        d.stop()
        n = Daemon(d.overrides, start=False, tmpdir=d.tmp)
        self.addCleanup(n.stop)
        n.start()
        q = nobody_quota(self, n)
        self.assertEqual((q["output_bytes"], q["job_bytes"]), (100 * KIB, job_bytes))
        [r] = as_nobody(n, {"id": 1, "op": "submit", "type": "noop"})
        self.assertError(r, "quota_exceeded")
        # pruning gives it back too
        n.write_config(text=None, overrides=dict(d.overrides, **{"jobs.keep_finished": 0}))
        n.ok({"op": "reload"})
        self.assertEqual(n.ok({"op": "submit", "type": "noop", "wait": True})["state"], "done")
        self.assertEqual(nobody_quota(self, n)["output_bytes"], 0)
        self.assertOk(as_nobody(n, {"id": 1, "op": "submit", "type": "noop"})[0])


@unittest.skipUnless(os.geteuid() == 0, "needs root: mounts a small tmpfs")
class DiskFullTest(E2ETestCase):
    """A full disk: submits are refused with storage_error, everything else goes on."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="taskd-e2e-full-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state = os.path.join(self.tmp, "state")
        os.mkdir(self.state, 0o700)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                            self.state], capture_output=True, text=True)
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % p.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", self.state])

    def fill(self):
        path = os.path.join(self.state, "filler")
        with open(path, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        return path

    def test_commit_fails_reads_go_on(self):
        d = self.start_daemon({"thread_pool.min_threads": 1}, tmpdir=self.tmp)
        done = d.submit(["sh", "-c", "echo before"], **{"class": "io"})
        d.wait_job(done)
        filler = self.fill()
        # batches until a commit needs a page the disk does not have
        for _ in range(200):
            r = d.request({"id": 1, "op": "submit",
                           "jobs": [{"type": "noop", "name": "n" * 200}] * 500})
            if not r["ok"]:
                break
        err = self.assertError(r, "storage_error")
        self.assertIn("full", err["message"])
        # reads still work
        self.assertEqual(d.show(done)["state"], "done")
        self.assertEqual(d.read_output(done), b"before\n")
        self.assertTrue(d.list_jobs())
        self.assertIs(d.status()["stopping"], False)
        self.assertRc(d.ctl("list", "--limit", "5"), 0)
        self.assertRc(d.ctl("logs", done), 0)
        # room again: submits are stored again
        os.unlink(filler)
        j = wait_for(lambda: d.request({"id": 1, "op": "submit", "type": "noop"}).get(
            "result", {}).get("id"), 10, what="a submit stored again")
        self.assertEqual(d.wait_job(j)["state"], "done")


if __name__ == "__main__":
    main()
