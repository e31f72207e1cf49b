"""Job lifecycle (issue 8): dependencies, delays, retries, pause/resume,
priority changes, fair share; and that all of it survives a restart."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, Daemon, NOBODY, as_nobody, ctl_as_nobody,  # noqa: E402
                     wait_for, jobs_of, main)

IO = {"class": "io"}
SLEEP = {"type": "sleep", "class": "io"}


def sleep_job(sec, **kw):
    j = dict(SLEEP, argv=[str(sec)])
    j.update(kw)
    return j


class DependencyTest(E2ETestCase):
    shared_daemon = True

    def test_chain_runs_in_order(self):
        d = self.d
        a = d.submit(["sh", "-c", "sleep 0.3; date +%s.%N"], **IO)
        b = d.submit(["sh", "-c", "date +%s.%N"], after=[a], **IO)
        c = d.submit(["sh", "-c", "date +%s.%N"], after=[b], **IO)
        self.assertEqual(d.show(b)["state"], "waiting")
        self.assertEqual(d.show(b)["after"], [a])
        jc = d.wait_job(c)
        self.assertEqual(jc["state"], "done")
        ja, jb = d.show(a), d.show(b)
        self.assertLessEqual(ja["finished_at"], jb["started_at"])
        self.assertLessEqual(jb["finished_at"], jc["started_at"])

    def test_fan_in(self):
        d = self.d
        deps = [d.submit(**sleep_job(0.1 * (i + 1))) for i in range(4)]
        last = d.submit(["true"], after=deps, **IO)
        j = d.wait_job(last)
        self.assertEqual(j["state"], "done")
        self.assertEqual(sorted(j["after"]), sorted(deps))
        latest = max(d.show(x)["finished_at"] for x in deps)
        self.assertGreaterEqual(j["started_at"], latest)

    def test_failure_propagates(self):
        d = self.d
        a = d.submit(["sh", "-c", "sleep 0.1; exit 3"], **IO)
        b = d.submit(["true"], after=[a], **IO)
        c = d.submit(["true"], after=[b], **IO)
        jb, jc = d.wait_job(b), d.wait_job(c)
        self.assertEqual(jb["state"], "failed")
        self.assertEqual(jb["error"], "dependency %d failed (failed)" % a)
        self.assertIsNone(jb["started_at"])
        self.assertEqual(jc["state"], "failed")
        self.assertEqual(jc["error"], "dependency %d failed (failed)" % b)

    def test_cancelled_dependency_fails_dependent(self):
        d = self.d
        a = d.submit(**sleep_job(30))
        b = d.submit(["true"], after=[a], **IO)
        d.cancel(a)
        jb = d.wait_job(b)
        self.assertEqual(jb["state"], "failed")
        self.assertEqual(jb["error"], "dependency %d failed (cancelled)" % a)

    def test_after_any_runs_on_failure(self):
        d = self.d
        a = d.submit(["sh", "-c", "sleep 0.1; exit 1"], **IO)
        b = d.submit(["true"], after_any=[a], **IO)
        self.assertEqual(d.show(b)["state"], "waiting")
        self.assertEqual(d.show(b)["after_any"], [a])
        jb = d.wait_job(b)
        self.assertEqual(jb["state"], "done")
        self.assertEqual(d.show(a)["state"], "failed")

    def test_finished_dependencies_resolve_at_once(self):
        d = self.d
        ok = d.submit(["true"], **IO)
        bad = d.submit(["false"], **IO)
        d.wait_job(ok)
        d.wait_job(bad)
        self.assertEqual(d.wait_job(d.submit(["true"], after=[ok], **IO), timeout=5)["state"],
                         "done")
        j = d.wait_job(d.submit(["true"], after=[ok, bad], **IO), timeout=5)
        self.assertEqual(j["state"], "failed")
        self.assertIn("dependency %d failed (failed)" % bad, j["error"])
        self.assertEqual(d.wait_job(d.submit(["true"], after_any=[bad], **IO), timeout=5)["state"],
                         "done")

    def test_cancel_waiting_job(self):
        d = self.d
        a = d.submit(**sleep_job(30))
        self.cancel_at_cleanup(a)
        b = d.submit(["true"], after=[a], **IO)
        r = d.cancel(b)
        self.assertEqual(r["state"], "cancelled")
        self.assertEqual(d.show(b)["state"], "cancelled")
        d.cancel(a)
        time.sleep(0.2)
        self.assertEqual(d.show(b)["state"], "cancelled")

    def test_batch_with_dependencies(self):
        d = self.d
        a = d.submit(**sleep_job(0.1))
        ids = d.submit_batch([{"argv": ["true"], "class": "io", "after": [a]},
                              {"argv": ["true"], "class": "io", "after_any": [a]}])
        for i in ids:
            self.assertEqual(d.wait_job(i)["state"], "done")

    def test_waiting_counted_in_status_and_list(self):
        d = self.d
        a = d.submit(**sleep_job(30))
        self.cancel_at_cleanup(a)
        b = d.submit(["true"], after=[a], **IO)
        self.cancel_at_cleanup(b)
        self.assertGreaterEqual(d.status()["jobs"]["waiting"], 1)
        self.assertIn(b, [j["id"] for j in d.list_jobs(state="waiting")])
        p = d.ctl("list", "--state", "waiting")
        self.assertRc(p, 0)
        self.assertIn("waiting", p.stdout)
        m = d.ctl("metrics").stdout
        self.assertIn('taskd_jobs{state="waiting"}', m)
        self.assertIn('taskd_jobs{state="scheduled"}', m)
        self.assertIn('taskd_jobs{state="paused"}', m)

    def test_bad_dependencies(self):
        d = self.d
        before = d.status()["jobs"]
        nxt = d.submit(["true"], **IO)
        d.wait_job(nxt)
        before = d.status()["jobs"]
        for fields, code in (({"after": [nxt + 1000]}, "not_found"),
                             ({"after_any": [nxt + 1000]}, "not_found"),
                             ({"after": [nxt + 1]}, "not_found"),  # itself: not yet a job
                             ({"after": "1"}, "bad_request"),
                             ({"after": [0]}, "bad_request"),
                             ({"after": [-1]}, "bad_request"),
                             ({"after": [nxt, nxt]}, "bad_request"),
                             ({"after": [nxt], "after_any": [nxt]}, "bad_request"),
                             ({"after": [1.5]}, "bad_request")):
            with self.subTest(fields=fields):
                r = d.request(dict({"v": 1, "id": 1, "op": "submit", "argv": ["true"]},
                                   **fields))
                self.assertError(r, code)
        # A batch cannot refer to its own jobs (they have no ids yet).
        r = d.request({"v": 1, "id": 2, "op": "submit",
                       "jobs": [{"argv": ["true"]}, {"argv": ["true"], "after": [nxt + 1]}]})
        err = self.assertError(r, "not_found")
        self.assertIn("jobs[1]", err["message"])
        self.assertIn("its own batch", err["message"])
        self.assertEqual(d.status()["jobs"], before)
        p = d.ctl("submit", "--after", "x", "--", "true")
        self.assertRc(p, 2)
        p = d.ctl("submit", "--after", str(nxt + 1000), "--", "true")
        self.assertRc(p, 4)
        self.assertIn("no such job", p.stderr)

class DelayTest(E2ETestCase):
    shared_daemon = True

    def test_run_at_on_time(self):
        d = self.d
        ids = []
        for delay in (0.5, 1.0, 1.5):
            at = time.time() + delay
            ids.append((d.submit(type="noop", run_at=at, **IO), at))
        for jid, at in ids:
            j = d.show(jid)
            self.assertEqual(j["state"], "scheduled")
            self.assertAlmostEqual(j["run_at"], at, delta=0.001)
            self.assertAlmostEqual(j["due_at"], at, delta=0.001)
        for jid, at in ids:
            j = d.wait_job(jid)
            self.assertEqual(j["state"], "done")
            self.assertLess(abs(j["started_at"] - at), 0.2,
                            "started %.3f s off its time" % (j["started_at"] - at))

    def test_cli_in_and_at(self):
        d = self.d
        t0 = time.time()
        p = d.ctl("--json", "submit", "--in", "0.8s", "--type", "noop", "--class", "io")
        self.assertRc(p, 0)
        jid = json.loads(p.stdout)["id"]
        j = d.show(jid)
        self.assertEqual(j["state"], "scheduled")
        self.assertAlmostEqual(j["run_at"], t0 + 0.8, delta=0.15)
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 2))
        p = d.ctl("submit", "--at", at, "--type", "noop", "--class", "io")
        self.assertRc(p, 0)
        j2 = d.show(int(p.stdout))
        self.assertEqual(j2["state"], "scheduled")
        self.assertAlmostEqual(j2["run_at"], time.mktime(time.strptime(at, "%Y-%m-%dT%H:%M:%S")),
                               delta=0.001)
        utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        p = d.ctl("--json", "submit", "--at", utc, "--type", "noop")
        self.assertRc(p, 0)
        j3 = json.loads(p.stdout)["id"]
        self.assertAlmostEqual(d.show(j3)["run_at"], time.time() + 3600, delta=2)
        d.cancel(j3)
        self.assertEqual(d.wait_job(jid)["state"], "done")
        self.assertEqual(d.wait_job(j2["id"])["state"], "done")

    def test_cancel_scheduled(self):
        d = self.d
        jid = d.submit(type="noop", run_at=time.time() + 3600, **IO)
        self.assertEqual(d.cancel(jid)["state"], "cancelled")
        self.assertEqual(d.show(jid)["state"], "cancelled")

    def test_delay_after_dependency(self):
        d = self.d
        a = d.submit(**sleep_job(0.2))
        at = time.time() + 1.0
        b = d.submit(type="noop", after=[a], run_at=at, **IO)
        self.assertEqual(d.show(b)["state"], "waiting")
        d.wait_job(a)
        self.assertEqual(d.wait_state(b, "scheduled", timeout=0.9)["state"], "scheduled")
        j = d.wait_job(b)
        self.assertLess(abs(j["started_at"] - at), 0.2)

    def test_bad_times(self):
        d = self.d
        before = d.status()["jobs"]
        for v in (time.time() - 1, 1, 0, -5, "soon", None, 1e300):
            with self.subTest(run_at=v):
                r = d.request({"v": 1, "id": 1, "op": "submit", "argv": ["true"], "run_at": v})
                self.assertError(r, "bad_request")
        r = d.request({"v": 1, "id": 1, "op": "submit", "argv": ["true"],
                       "run_at": time.time() - 10})
        self.assertIn("in the past", self.assertError(r, "bad_request")["message"])
        self.assertEqual(d.status()["jobs"], before)
        p = d.ctl("submit", "--at", "2020-01-01T00:00", "--", "true")
        self.assertRc(p, 4)
        self.assertIn("in the past", p.stderr)
        p = d.ctl("submit", "--at", "9999-12-31T00:00Z", "--", "true")
        self.assertRc(p, 4)
        self.assertIn("at most 1e11", p.stderr)
        for args in (("--in", "0"), ("--in", "-5m"), ("--in", "10x"), ("--in", "m"),
                     ("--at", "tomorrow"), ("--at", "2026-13-01T00:00"),
                     ("--at", "2026-02-30T00:00"), ("--at", "2030-01-01T00:00+25:00"),
                     ("--in", "1m", "--at", "2030-01-01T00:00"), ("--in", "0x10"),
                     ("--in", "1e3")):
            with self.subTest(args=args):
                p = d.ctl("submit", *args, "--", "true")
                self.assertRc(p, 2)
        # a local time skipped by the clocks (not moved an hour on)
        p = d.ctl("submit", "--at", "2030-03-31T02:30", "--", "true",
                  env={"TZ": "Europe/Berlin"})
        self.assertRc(p, 2)
        self.assertIn("does not exist", p.stderr)
        self.assertEqual(d.status()["jobs"], before)


class RetryTest(E2ETestCase):
    shared_daemon = True

    def test_retries_with_backoff(self):
        d = self.d
        jid = d.submit(["sh", "-c", "exit 3"], retries=2, retry_delay=0.3, **IO)
        j = d.wait_job(jid)
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 3)
        self.assertEqual(j["attempt"], 3)
        self.assertEqual(j["retries"], 2)
        a = j["attempts"]
        self.assertEqual([x["attempt"] for x in a], [1, 2])
        self.assertGreaterEqual(d.status()["counters"]["jobs_retried"], 2)
        self.assertEqual([x["state"] for x in a], ["failed", "failed"])
        self.assertEqual([x["exit_code"] for x in a], [3, 3])
        gap1 = a[1]["started_at"] - a[0]["finished_at"]
        gap2 = j["started_at"] - a[1]["finished_at"]
        self.assertGreaterEqual(gap1, 0.29)
        self.assertLess(gap1, 0.5)
        self.assertGreaterEqual(gap2, 0.59)  # doubled
        self.assertLess(gap2, 0.8)

    def test_retry_until_success(self):
        d = self.d
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-retry-")
        self.addCleanup(shutil.rmtree, tmp, True)
        script = 'n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; [ $n -ge 3 ]'
        jid = d.submit(["sh", "-c", script], cwd=tmp, retries=5, retry_delay=0.05, **IO)
        j = d.wait_job(jid)
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["attempt"], 3)
        self.assertEqual(len(j["attempts"]), 2)

    def test_timeout_and_signal_are_retried(self):
        d = self.d
        jid = d.submit(["sleep", "5"], timeout=0.2, retries=1, retry_delay=0, **IO)
        j = d.wait_job(jid)
        self.assertEqual(j["state"], "timeout")
        self.assertEqual(j["attempt"], 2)
        self.assertEqual(j["attempts"][0]["state"], "timeout")
        jid = d.submit(["sh", "-c", "kill -9 $$"], retries=1, retry_delay=0, **IO)
        j = d.wait_job(jid)
        self.assertEqual(j["attempts"][0]["signal"], 9)
        self.assertEqual(j["attempt"], 2)

    def test_scheduled_between_attempts_and_cancel(self):
        d = self.d
        jid = d.submit(["false"], retries=3, retry_delay=60, **IO)
        j = d.wait_state(jid, "scheduled")
        self.assertEqual(j["attempt"], 2)
        self.assertGreater(j["due_at"], time.time() + 50)
        self.assertEqual(d.cancel(jid)["state"], "cancelled")
        j = d.show(jid)
        self.assertEqual(j["state"], "cancelled")
        self.assertEqual(len(j["attempts"]), 1)

    def test_no_retry_on_success_or_cancel(self):
        d = self.d
        j = d.wait_job(d.submit(["true"], retries=3, **IO))
        self.assertEqual((j["state"], j["attempt"], j["attempts"]), ("done", 1, []))
        jid = d.submit(["sleep", "30"], retries=3, **IO)
        d.wait_state(jid, "running")
        d.cancel(jid)
        j = d.wait_job(jid)
        self.assertEqual((j["state"], j["attempt"]), ("cancelled", 1))

    def test_cli_retries(self):
        d = self.d
        p = d.ctl("--json", "submit", "--retries", "1", "--retry-delay", "0.1", "--wait",
                  "--", "sh", "-c", "exit 5")
        self.assertEqual(p.returncode, 5, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["attempt"], 2)
        p = d.ctl("show", j["id"])
        self.assertRc(p, 0)
        self.assertRegex(p.stdout, r"(?m)^attempt: +2$")
        self.assertRegex(p.stdout, r"(?m)^attempts: +#1 failed exit=5$")
        self.assertRegex(p.stdout, r"(?m)^retry_delay: +0.1s$")

    def test_bad_retries(self):
        d = self.d
        before = d.status()["jobs"]
        for f in ({"retries": -1}, {"retries": 1.5}, {"retries": "2"}, {"retries": 100000},
                  {"retry_delay": -1}, {"retry_delay": "1"}, {"retry_delay": 1e9}):
            with self.subTest(fields=f):
                r = d.request(dict({"v": 1, "id": 1, "op": "submit", "argv": ["true"]}, **f))
                self.assertError(r, "bad_request")
        for args in (("--retries", "-1"), ("--retries", "x"), ("--retry-delay", "-2")):
            with self.subTest(args=args):
                self.assertRc(d.ctl("submit", *args, "--", "true"), 2)
        self.assertEqual(d.status()["jobs"], before)


class PauseTest(E2ETestCase):
    def one_thread(self, **ov):
        o = {"thread_pool.min_threads": 1, "thread_pool.max_threads": 1}
        o.update(ov)
        return self.start_daemon(o)

    def test_pause_class_and_resume(self):
        d = self.start_daemon()
        r = d.ok({"op": "pause", "class": "io"})
        self.assertEqual(r["paused"], {"cpu": False, "io": True})
        self.assertEqual(d.status()["paused"], {"cpu": False, "io": True})
        io = d.submit(type="noop", **IO)
        cpu = d.submit(type="noop", **{"class": "cpu"})
        self.assertEqual(d.wait_job(cpu)["state"], "done")
        time.sleep(0.3)
        self.assertEqual(d.show(io)["state"], "queued")
        r = d.ok({"op": "resume", "class": "io"})
        self.assertEqual(r["paused"], {"cpu": False, "io": False})
        self.assertEqual(d.wait_job(io)["state"], "done")
        # all classes, through taskctl; running jobs keep running
        run = d.submit(**sleep_job(0.5))
        d.wait_state(run, "running")
        self.assertRc(d.ctl("pause"), 0)
        self.assertEqual(d.status()["paused"], {"cpu": True, "io": True})
        q1 = d.submit(type="noop", **IO)
        q2 = d.submit(type="noop", **{"class": "cpu"})
        self.assertEqual(d.wait_job(run)["state"], "done")
        time.sleep(0.2)
        self.assertEqual(d.show(q1)["state"], "queued")
        self.assertEqual(d.show(q2)["state"], "queued")
        p = d.ctl("status")
        self.assertIn("paused:", p.stdout)
        self.assertRc(d.ctl("resume", "--class", "cpu"), 0)
        self.assertEqual(d.wait_job(q2)["state"], "done")
        self.assertEqual(d.show(q1)["state"], "queued")
        self.assertRc(d.ctl("resume"), 0)
        self.assertEqual(d.wait_job(q1)["state"], "done")

    def test_pause_and_resume_one_job(self):
        d = self.one_thread()
        block = d.submit(**sleep_job(0.5))
        d.wait_state(block, "running")
        a = d.submit(type="noop", **IO)
        b = d.submit(type="noop", **IO)
        p = d.ctl("pause", a)
        self.assertRc(p, 0)
        self.assertEqual(d.show(a)["state"], "paused")
        self.assertEqual(d.status()["jobs"]["paused"], 1)
        self.assertEqual(d.wait_job(b)["state"], "done")
        time.sleep(0.2)
        self.assertEqual(d.show(a)["state"], "paused")
        self.assertRc(d.ctl("resume", a), 0)
        self.assertEqual(d.wait_job(a)["state"], "done")
        # a paused job can be cancelled
        block = d.submit(**sleep_job(0.5))
        c = d.submit(type="noop", **IO)
        d.ok({"op": "pause", "job": c})
        self.assertEqual(d.cancel(c)["state"], "cancelled")

    def test_priority(self):
        d = self.one_thread()
        block = d.submit(**sleep_job(0.4))
        d.wait_state(block, "running")
        ids = [d.submit(type="noop", **IO) for _ in range(3)]
        r = d.ok({"op": "priority", "job": ids[2], "priority": -5})
        self.assertEqual(r["priority"], -5)
        self.assertRc(d.ctl("priority", ids[1], "-3"), 0)
        js = [d.wait_job(i) for i in ids]
        starts = [j["started_at"] for j in js]
        self.assertLess(starts[2], starts[1])
        self.assertLess(starts[1], starts[0])
        self.assertEqual(d.show(ids[2])["priority"], -5)

    def test_bad_input(self):
        d = self.one_thread()
        block = d.submit(**sleep_job(30))
        self.cancel_at_cleanup(block, d)
        d.wait_state(block, "running")
        q = d.submit(type="noop", **IO)
        before = d.status()
        cases = [
            ({"op": "pause", "job": 99999}, "not_found"),
            ({"op": "resume", "job": 99999}, "not_found"),
            ({"op": "priority", "job": 99999, "priority": 1}, "not_found"),
            ({"op": "pause", "job": block}, "invalid_state"),
            ({"op": "resume", "job": q}, "invalid_state"),
            ({"op": "priority", "job": block, "priority": 1}, "invalid_state"),
            ({"op": "priority", "job": q, "priority": 20}, "bad_request"),
            ({"op": "priority", "job": q, "priority": "1"}, "bad_request"),
            ({"op": "priority", "job": q}, "bad_request"),
            ({"op": "pause", "class": "auto"}, "bad_request"),
            ({"op": "pause", "class": 1}, "bad_request"),
            ({"op": "pause", "job": q, "class": "io"}, "bad_request"),
            ({"op": "pause", "job": "1"}, "bad_request"),
        ]
        for req, code in cases:
            with self.subTest(req=req):
                self.assertError(d.request(dict(req, v=1, id=1)), code)
        after = d.status()
        self.assertEqual(after["jobs"], before["jobs"])
        self.assertEqual(after["paused"], {"cpu": False, "io": False})
        self.assertEqual(d.show(q)["priority"], 0)
        self.assertRc(d.ctl("pause", "99999"), 4)
        self.assertRc(d.ctl("priority", block, "1"), 4)
        self.assertRc(d.ctl("priority", q), 2)
        self.assertRc(d.ctl("priority", q, "99"), 2)
        self.assertRc(d.ctl("pause", "--class", "gpu"), 2)
        self.assertRc(d.ctl("pause", "--class", "io", q), 2)


class RestartTest(E2ETestCase):
    def restart(self, d, kill=False):
        if kill:
            d.signal(signal.SIGKILL)
            d.wait_exit(10)
        d.stop()
        n = Daemon(None, start=False, tmpdir=d.tmp)
        self.addCleanup(n.stop)
        n.start()
        return n

    def test_restart_keeps_dependencies_delays_retries(self):
        d = self.start_daemon()
        a = d.submit(**sleep_job(30))
        b = d.submit(["true"], after=[a], **IO)
        c = d.submit(["true"], after_any=[b], **IO)
        at = time.time() + 2.5
        s = d.submit(type="noop", run_at=at, **IO)
        r = d.submit(["false"], retries=2, retry_delay=2, **IO)
        d.wait_state(r, "scheduled")
        held_block = None
        n = self.restart(d, kill=True)
        # a was running: lost by the crash; b then fails, c runs (after_any)
        self.assertEqual(n.show(a)["state"], "lost")
        jb = n.wait_job(b)
        self.assertEqual(jb["state"], "failed")
        self.assertEqual(jb["error"], "dependency %d failed (lost)" % a)
        self.assertEqual(n.wait_job(c)["state"], "done")
        js = n.show(s)
        self.assertEqual(js["state"], "scheduled")
        js = n.wait_job(s)
        self.assertLess(abs(js["started_at"] - at), 0.2)
        jr = n.show(r)
        self.assertIn(jr["state"], ("scheduled", "running", "failed"))
        jr = n.wait_job(r)
        self.assertEqual(jr["state"], "failed")
        self.assertEqual(jr["attempt"], 3)
        self.assertEqual(len(jr["attempts"]), 2)
        del held_block

    def test_lost_job_with_retries_is_retried(self):
        d = self.start_daemon()
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-retry-")
        self.addCleanup(shutil.rmtree, tmp, True)
        script = 'if [ -e ran ]; then exit 0; fi; touch ran; sleep 30'
        jid = d.submit(["sh", "-c", script], cwd=tmp, retries=1, retry_delay=0.1, **IO)
        d.wait_state(jid, "running")
        wait_for(lambda: os.path.exists(os.path.join(tmp, "ran")), 5)
        dep = d.submit(["true"], after=[jid], **IO)
        n = self.restart(d, kill=True)
        j = n.wait_job(jid)
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["attempt"], 2)
        self.assertEqual(j["attempts"][0]["state"], "lost")
        self.assertEqual(n.wait_job(dep)["state"], "done")

    def test_class_pause_survives_restart(self):
        d = self.start_daemon()
        self.assertEqual(d.ok({"op": "pause", "class": "io"})["paused"],
                         {"cpu": False, "io": True})
        q = d.submit(type="noop", **IO)
        # kill -9: the pause was stored with the commit after the request
        n = self.restart(d, kill=True)
        self.assertEqual(n.status()["paused"], {"cpu": False, "io": True})
        time.sleep(0.3)
        self.assertEqual(n.show(q)["state"], "queued")
        self.assertIn("starting io jobs is paused", n.log_text())
        # a drain starts the paused class's queued jobs, the pause stays stored
        self.assertRc(n.ctl("pause"), 0)
        n.ok({"op": "shutdown", "drain": True})
        self.assertEqual(n.wait_exit(10), 0)
        n = self.restart(n)
        self.assertEqual(n.show(q)["state"], "done")
        self.assertEqual(n.status()["paused"], {"cpu": True, "io": True})
        # resumed: stored as well
        n.ok({"op": "resume", "class": "cpu"})
        n = self.restart(n)
        self.assertEqual(n.status()["paused"], {"cpu": False, "io": True})
        n.ok({"op": "resume"})
        n = self.restart(n, kill=True)
        self.assertEqual(n.status()["paused"], {"cpu": False, "io": False})
        self.assertEqual(n.wait_job(n.submit(type="noop", **IO))["state"], "done")

    def test_pause_and_resume_of_a_restored_queued_job(self):
        d = self.start_daemon()
        d.ok({"op": "pause", "class": "io"})
        q = d.submit(type="noop", **IO)
        n = self.restart(d, kill=True)  # (a shutdown would cancel it)
        self.assertEqual(n.show(q)["state"], "queued")
        self.assertEqual(n.ok({"op": "pause", "job": q})["state"], "paused")
        self.assertEqual(n.ok({"op": "resume", "job": q})["state"], "queued")
        n.ok({"op": "resume", "class": "io"})
        self.assertEqual(n.wait_job(q, timeout=5)["state"], "done")

    def test_graceful_restart_keeps_waiting_and_paused(self):
        d = self.start_daemon({"thread_pool.min_threads": 1, "thread_pool.max_threads": 1})
        block = d.submit(**sleep_job(0.3))
        q = d.submit(type="noop", **IO)
        d.ok({"op": "pause", "job": q})
        w = d.submit(["true"], after=[q], **IO)
        s = d.submit(type="noop", run_at=time.time() + 3600, **IO)
        d.ok({"op": "priority", "job": s, "priority": 7})
        d.wait_job(block)
        n = self.restart(d)
        self.assertEqual(n.show(q)["state"], "paused")
        self.assertEqual(n.show(w)["state"], "waiting")
        self.assertEqual(n.show(w)["after"], [q])
        js = n.show(s)
        self.assertEqual((js["state"], js["priority"]), ("scheduled", 7))
        n.ok({"op": "resume", "job": q})
        self.assertEqual(n.wait_job(w)["state"], "done")
        n.cancel(s)


@unittest.skipUnless(os.geteuid() == 0, "needs root: clients run as nobody against a root taskd")
class UsersTest(E2ETestCase):
    """Other users' jobs: invisible as dependencies, untouchable by pause/priority."""

    shared_daemon = True
    shared_overrides = {"socket_mode": "0666"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.chmod(cls.d.tmp, 0o755)  # nobody must reach the socket

    def test_other_users_job_is_unknown_as_dependency(self):
        d = self.d
        a = d.submit(**sleep_job(30))
        self.cancel_at_cleanup(a)
        p = ctl_as_nobody(d, "submit", "--after", a, "--", "true")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("no such job %d" % a, p.stderr)
        [r] = as_nobody(d, {"id": 1, "op": "submit", "argv": ["true"], "after_any": [a]})
        self.assertError(r, "not_found")

    @unittest.skipUnless(os.geteuid() == 0, "needs root: a root taskd runs nobody's jobs")
    def test_other_users_jobs_get_no_negative_nice(self):
        # A priority below 0 orders the queue; as nice, only root's jobs get it.
        # Only root may give one (nobody's own -10 is forbidden: test_quota.py),
        # also to nobody's jobs, and those still run at taskd's own nice value.
        d = self.d
        # (taskd sets the nice value just after the spawn: read it a little later)
        nice = ["sh", "-c", "sleep 0.2; cut -d' ' -f19 /proc/self/stat"]
        soon = time.time() + 2
        rs = as_nobody(d, {"id": 1, "op": "submit", "argv": nice, "class": "io",
                           "run_at": soon},
                       {"id": 2, "op": "submit", "argv": nice, "class": "cpu",
                        "run_at": soon},
                       {"id": 3, "op": "submit", "argv": nice, "class": "io",
                        "priority": 5})
        ids = [self.assertOk(r)["id"] for r in rs]
        # re-prioritised below 0 by root before they start
        for j, prio in zip(ids[:2], (-10, -20)):
            d.ok({"op": "priority", "job": j, "priority": prio})
        # (a priority of 0 leaves the job at taskd's own nice value: a niced test run)
        base = str(max(0, os.getpriority(os.PRIO_PROCESS, d.pid)))
        for j, want in zip(ids, [base, base, "5"]):
            self.assertEqual(d.wait_job(j)["state"], "done")
            self.assertEqual(d.read_output(j).decode().strip(), want)
        mine = d.submit(nice, priority=-10, **IO)
        self.assertEqual(d.wait_job(mine)["state"], "done")
        self.assertEqual(d.read_output(mine).decode().strip(), "-10")


@unittest.skipUnless(os.geteuid() == 0, "needs root: clients run as nobody against a root taskd")
class FairShareTest(E2ETestCase):
    """root floods the queue, then nobody submits: with fair share they alternate."""

    def flood(self, fair):
        d = self.start_daemon({"socket_mode": "0666", "thread_pool.min_threads": 1,
                               "thread_pool.max_threads": 1, "queue.fair_share": fair})
        os.chmod(d.tmp, 0o755)
        block = d.submit(**sleep_job(0.5))
        d.wait_state(block, "running")
        mine = d.submit_batch([sleep_job(0.02) for _ in range(20)])
        [r] = as_nobody(d, {"id": 1, "op": "submit",
                            "jobs": [sleep_job(0.02) for _ in range(4)]})
        theirs = self.assertOk(r)["ids"]
        for j in theirs:
            self.assertEqual(d.show(j)["owner"]["uid"], NOBODY)
        order = sorted(mine + theirs, key=lambda j: d.wait_job(j)["started_at"])
        return order, mine, theirs

    def test_round_robin_over_users(self):
        order, mine, theirs = self.flood(True)
        # turns alternate: root, nobody, root, nobody, ... then root's rest
        self.assertEqual(order[:8], [x for pair in zip(mine[:4], theirs) for x in pair])
        self.assertEqual(order[8:], mine[4:])

    def test_fair_share_off_is_fifo(self):
        order, mine, theirs = self.flood(False)
        self.assertEqual(order, mine + theirs)

    def test_priority_still_first(self):
        d = self.start_daemon({"socket_mode": "0666", "thread_pool.min_threads": 1,
                               "thread_pool.max_threads": 1})
        os.chmod(d.tmp, 0o755)
        block = d.submit(**sleep_job(0.5))
        d.wait_state(block, "running")
        low = d.submit_batch([sleep_job(0.02, priority=5) for _ in range(5)])
        [r] = as_nobody(d, {"id": 1, "op": "submit",
                            "jobs": [sleep_job(0.02, priority=1) for _ in range(3)]})
        high = self.assertOk(r)["ids"]
        order = sorted(low + high, key=lambda j: d.wait_job(j)["started_at"])
        self.assertEqual(order, high + low)

    def test_users_cannot_touch_others_jobs(self):
        d = self.start_daemon({"socket_mode": "0666", "thread_pool.min_threads": 1,
                               "thread_pool.max_threads": 1})
        os.chmod(d.tmp, 0o755)
        block = d.submit(**sleep_job(30))
        self.cancel_at_cleanup(block, d)
        q = d.submit(type="noop", **IO)
        rs = as_nobody(d, {"id": 1, "op": "pause", "job": q},
                       {"id": 2, "op": "priority", "job": q, "priority": -20},
                       {"id": 3, "op": "pause"},
                       {"id": 4, "op": "resume", "class": "io"})
        for r in rs:
            self.assertError(r, "forbidden")
        j = d.show(q)
        self.assertEqual((j["state"], j["priority"]), ("queued", 0))
        self.assertEqual(d.status()["paused"], {"cpu": False, "io": False})
        # their own queued job they may hold and re-prioritise
        [r] = as_nobody(d, {"id": 1, "op": "submit", "type": "noop", "class": "io"})
        mine = self.assertOk(r)["id"]
        rs = as_nobody(d, {"id": 1, "op": "pause", "job": mine},
                       {"id": 2, "op": "priority", "job": mine, "priority": 3},
                       {"id": 3, "op": "resume", "job": mine})
        self.assertEqual([self.assertOk(r)["state"] for r in rs], ["paused", "paused", "queued"])


class EdgeCaseTest(E2ETestCase):
    """Requests racing the submit's commit, shutdowns, reloads."""

    def one_thread(self, **ov):
        o = {"thread_pool.min_threads": 1, "thread_pool.max_threads": 1}
        o.update(ov)
        return self.start_daemon(o)

    def test_pause_and_resume_before_the_submit_is_stored(self):
        # A job is visible only once its submit is stored and answered
        # (doc/protocol.md): pause/resume pipelined in the same write as the
        # submit find no such job and change nothing; the job is queued once
        # and runs once. Once answered, pause/resume work on it.
        d = self.one_thread()
        block = d.submit(**sleep_job(0.3))
        nxt = block + 1
        reqs = [{"v": 1, "id": 1, "op": "submit", "type": "noop", "class": "io"},
                {"v": 1, "id": 2, "op": "pause", "job": nxt},
                {"v": 1, "id": 3, "op": "resume", "job": nxt},
                {"v": 1, "id": 4, "op": "pause", "job": nxt}]
        with d.connect() as c:
            c.send_raw(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
            rs = {r["id"]: r for r in (c.recv() for _ in reqs)}
            self.assertEqual(self.assertOk(rs[1])["id"], nxt)
            for i in (2, 3, 4):
                self.assertError(rs[i], "not_found")
            # answered: now it is there, and still queued behind the sleeper
            self.assertEqual(self.assertOk(c.call({"id": 5, "op": "pause", "job": nxt}))["state"],
                             "paused")
        d.wait_job(block)
        time.sleep(0.2)
        self.assertEqual(d.show(nxt)["state"], "paused")
        self.assertEqual(d.status()["jobs"]["queued"], 0)
        self.assertIn(d.ok({"op": "resume", "job": nxt})["state"], ("queued", "running"))
        self.assertEqual(d.wait_job(nxt)["state"], "done")
        time.sleep(0.3)
        st = d.status()
        self.assertEqual(st["jobs"]["queued"] + st["jobs"]["running"], 0)
        self.assertEqual(st["counters"]["jobs_started"], 2)
        self.assertDaemonServes(d)

    def test_pause_and_resume_refused_during_shutdown(self):
        # a class paused during a drain would hold the drain forever
        d = self.one_thread()
        block = d.submit(**sleep_job(0.4))
        d.wait_state(block, "running")
        q = d.submit(type="noop", **IO)
        with d.connect() as c:
            c.send({"v": 1, "id": 1, "op": "shutdown", "drain": True})
            self.assertOk(c.recv())
            for req in ({"op": "pause"}, {"op": "pause", "class": "io"},
                        {"op": "pause", "job": q}):
                c.send(dict(req, v=1, id=2))
                self.assertError(c.recv(), "shutting_down")
        self.assertEqual(d.wait_exit(10), 0)
        # without drain: a paused job is not started by a resume during the shutdown
        n = Daemon(None, start=False, tmpdir=d.tmp)
        n.write_config({"thread_pool.min_threads": 1, "thread_pool.max_threads": 1})
        self.addCleanup(n.stop)
        n.start()
        self.assertEqual(n.show(q)["state"], "done")
        block = n.submit(**sleep_job(0.4))
        n.wait_state(block, "running")
        p = n.submit(type="noop", **IO)
        n.ok({"op": "pause", "job": p})
        reqs = [{"v": 1, "id": 1, "op": "shutdown", "drain": False},
                {"v": 1, "id": 2, "op": "resume", "job": p},
                {"v": 1, "id": 3, "op": "resume"}]
        with n.connect() as c:  # in one write: the daemon exits soon after the shutdown
            c.send_raw(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
            self.assertOk(c.recv())
            self.assertError(c.recv(), "shutting_down")
            self.assertError(c.recv(), "shutting_down")
        self.assertEqual(n.wait_exit(10), 0)
        n = Daemon(None, start=False, tmpdir=d.tmp)
        self.addCleanup(n.stop)
        n.start()
        self.assertEqual(n.show(p)["state"], "paused")

    def test_fair_share_switched_off_keeps_submission_order(self):
        ov = {"thread_pool.min_threads": 1, "thread_pool.max_threads": 1}
        d = self.start_daemon(ov)
        block = d.submit(**sleep_job(0.5))
        d.wait_state(block, "running")
        old = [d.submit(type="noop", **IO) for _ in range(3)]
        d.write_config(dict(ov, **{"queue.fair_share": False}))
        self.assertIn("queue.fair_share", d.ok({"op": "reload"})["changed"])
        new = [d.submit(type="noop", **IO) for _ in range(2)]
        order = sorted(old + new, key=lambda j: d.wait_job(j)["started_at"])
        self.assertEqual(order, old + new)

    def test_drain_leaves_dependents_and_delays_for_the_next_start(self):
        # a dependent that became ready during a drain was started as the
        # loop exited: its worker was stopped with the pool (lost)
        d = self.start_daemon()
        a = d.submit(**sleep_job(0.3))
        b = d.submit(["true"], after=[a], **{"class": "cpu"})
        s = d.submit(type="noop", run_at=time.time() + 0.2, **{"class": "cpu"})
        d.wait_state(a, "running")
        d.ok({"op": "shutdown", "drain": True})
        self.assertEqual(d.wait_exit(10), 0)
        n = Daemon(None, start=False, tmpdir=d.tmp)
        self.addCleanup(n.stop)
        n.start()
        self.assertEqual(n.show(a)["state"], "done")
        for j in (b, s):
            jj = n.wait_job(j)
            self.assertEqual((jj["state"], jj["attempts"]), ("done", []))

    def test_batch_priorities_hold_with_met_dependencies(self):
        # a job of a batch whose dependencies already ended does not start
        # before the batch's higher-priority jobs are queued
        d = self.one_thread()
        done = d.submit(type="noop", **IO)
        d.wait_job(done)
        ids = d.submit_batch([dict(SLEEP, argv=["0.2"], priority=5, after=[done]),
                              dict(SLEEP, argv=["0.2"], priority=-5)])
        starts = [d.wait_job(i)["started_at"] for i in ids]
        self.assertLess(starts[1], starts[0])


if __name__ == "__main__":
    main()
