"""Issue 16: unique jobs, re-runs, suspending running jobs, named queues,
job arrays, multi-slot cpu jobs, standard input; each with kill -9 where it
is stored, the bad inputs, and other users."""

import base64
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, Daemon, as_nobody, ctl_as_nobody, pid_gone,  # noqa: E402
                     proc_state, wait_for, main)

IO = {"class": "io"}
ROOT = os.geteuid() == 0


def sleeper(sec):
    return dict(type="sleep", argv=[str(sec)], **IO)


def read_text(path):
    with open(path) as f:
        return f.read().strip()


def b64(data):
    return base64.b64encode(data).decode()


class Restartable(E2ETestCase):
    """Daemons killed (-9) and started again on the same state directory.

    After a kill -9 the dead daemon's job processes are left alone (the
    harness would kill them at stop()): the new taskd must deal with them.
    """

    def daemon(self, overrides=None):
        d = self.start_daemon(overrides)
        d.overrides = overrides
        return d

    def restart(self, d, kill=True, overrides=None):
        if overrides is not None:
            d.overrides = overrides
        if kill:
            self.assertTrue(d.alive(), "taskd died before the kill; log:\n" + d.log_tail())
            d.signal(signal.SIGKILL)
            self.assertEqual(d.wait_exit(10), -signal.SIGKILL)
        else:
            d.stop()
        n = Daemon(d.overrides, start=False, tmpdir=d.tmp)
        n.overrides = d.overrides
        self.addCleanup(n.stop)
        self.addCleanup(self._report_daemon, n)
        n.start()
        return n


# ---------------------------------------------------------------------------
# Unique jobs

class UniqueTest(Restartable):
    shared_daemon = True

    def test_unique_while_pending_or_running(self):
        d = self.d
        a = d.ok({"op": "submit", "unique": "nightly", **sleeper(30)})
        self.assertEqual(a, {"id": a["id"]})
        self.cancel_at_cleanup(a["id"])
        self.assertEqual(d.ok({"op": "submit", "unique": "nightly", **sleeper(1)}),
                         {"id": a["id"], "existing": True})
        d.wait_state(a["id"], "running")
        self.assertEqual(d.ok({"op": "submit", "unique": "nightly", "argv": ["true"], **IO}),
                         {"id": a["id"], "existing": True})
        self.assertEqual(d.show(a["id"])["unique"], "nightly")
        # over: the key is free again
        d.cancel(a["id"])
        d.wait_job(a["id"])
        b = d.submit(["true"], unique="nightly", **IO)
        self.assertNotEqual(b, a["id"])
        self.assertEqual(d.wait_job(b)["state"], "done")
        # taskctl: the id, and a note on stderr
        c = d.submit(**sleeper(30), unique="k2")
        self.cancel_at_cleanup(c)
        p = d.ctl("submit", "--unique", "k2", "--", "true")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout.strip(), str(c))
        self.assertIn("nothing submitted", p.stderr)
        self.assertGreaterEqual(d.status()["counters"]["submits_existing"], 3)

    def test_unique_in_a_batch_and_pipelined(self):
        d = self.d
        r = d.ok({"op": "submit", "jobs": [dict(sleeper(30), unique="b1"),
                                           dict(sleeper(30), unique="b1"),
                                           dict(sleeper(30), unique="b2")]})
        ids = r["ids"]
        for i in set(ids):
            self.cancel_at_cleanup(i)
        self.assertEqual(ids[0], ids[1])
        self.assertNotEqual(ids[0], ids[2])
        self.assertEqual(r["existing"], [1])
        # a later batch: both held already
        r = d.ok({"op": "submit", "jobs": [dict(sleeper(1), unique="b2"), sleeper(0)]})
        self.assertEqual(r["ids"][0], ids[2])
        self.assertEqual(r["existing"], [0])
        # two submits pipelined on one connection, before either is stored
        with d.connect() as c:
            c.send({"id": 1, "op": "submit", "unique": "p1", **sleeper(30)})
            c.send({"id": 2, "op": "submit", "unique": "p1", **sleeper(30)})
            r1, r2 = self.assertOk(c.recv_id(1)), self.assertOk(c.recv_id(2))
        self.cancel_at_cleanup(r1["id"])
        self.assertEqual(r2, {"id": r1["id"], "existing": True})

    def test_unique_bad_input(self):
        d = self.d
        for v in ("", "x" * 257, 5, None, ["a"]):
            with self.subTest(unique=v):
                self.assertError(d.request({"op": "submit", "unique": v, "argv": ["true"]}),
                                 "bad_request")
        self.assertRc(d.ctl("submit", "--unique", "", "--", "true"), 2)

    @unittest.skipUnless(ROOT, "needs root: another user's jobs")
    def test_unique_is_per_user(self):
        d = self.daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        a = d.submit(**sleeper(30), unique="same")
        self.cancel_at_cleanup(a, d)
        [r] = as_nobody(d, {"id": 1, "op": "submit", "unique": "same", **sleeper(30)})
        b = self.assertOk(r)["id"]
        self.cancel_at_cleanup(b, d)
        self.assertNotEqual(a, b)
        self.assertNotIn("existing", self.assertOk(r))

    def test_unique_survives_kill9(self):
        d = self.daemon()
        d.ok({"op": "pause", "class": "io"})
        a = d.submit(["true"], unique="kept", **IO)
        n = self.restart(d)
        self.assertEqual(n.show(a)["state"], "queued")
        self.assertEqual(n.ok({"op": "submit", "unique": "kept", "argv": ["true"], **IO}),
                         {"id": a, "existing": True})
        n.ok({"op": "resume", "class": "io"})
        self.assertEqual(n.wait_job(a)["state"], "done")
        self.assertNotEqual(n.submit(["true"], unique="kept", **IO), a)


# ---------------------------------------------------------------------------
# Re-runs

class RestartTest(Restartable):
    shared_daemon = True
    shared_overrides = {"queues": [{"name": "q1", "slots": 4}]}

    def test_restart_same_spec(self):
        d = self.d
        a = d.submit(["sh", "-c", 'echo "$GREETING $(cat)" in $PWD; exit 3'], cwd="/tmp",
                     env={"GREETING": "hi", "PATH": "/usr/bin:/bin"}, priority=3,
                     labels={"grp": "rerun"}, retries=1, retry_delay=0, timeout=60,
                     queue="q1", input=b64(b"there"), name="rr", **IO)
        ja = d.wait_job(a)
        self.assertEqual(ja["state"], "failed")
        r = d.ok({"op": "restart", "job": a})
        [e] = r["jobs"]
        self.assertEqual(e["restarted_from"], a)
        jb = d.wait_job(e["id"])
        for k in ("argv", "cwd", "class", "priority", "labels", "retries", "retry_delay",
                  "timeout", "queue", "input_bytes", "name", "type", "slots"):
            self.assertEqual(jb[k], ja[k], k)
        self.assertEqual(jb["restarted_from"], a)
        self.assertEqual(ja["restarted_from"], None)
        self.assertEqual(d.read_output(e["id"]), b"hi there in /tmp\n")
        self.assertEqual(jb["state"], "failed")
        self.assertEqual(jb["attempt"], 2)  # retried like the original
        # taskctl prints the new id
        p = d.ctl("restart", str(a))
        self.assertRc(p, 0)
        self.assertRegex(p.stdout, r"^\d+ \(restart of %d\)\n$" % a)

    def test_restart_selected(self):
        d = self.d
        ok = d.submit(["true"], labels={"sel": "x"}, **IO)
        bad = d.submit(["false"], labels={"sel": "x"}, **IO)
        other = d.submit(["false"], labels={"sel": "y"}, **IO)
        run = d.submit(**sleeper(30), labels={"sel": "x"})
        self.cancel_at_cleanup(run)
        for j in (ok, bad, other):
            d.wait_job(j)
        r = d.ok({"op": "restart", "state": "failed", "labels": {"sel": "x"}})
        self.assertEqual([e["restarted_from"] for e in r["jobs"]], [bad])
        d.wait_job(r["jobs"][0]["id"])
        p = d.ctl("restart", "--state", "done", "--state", "failed", "--label", "sel=x")
        self.assertRc(p, 0)
        froms = sorted(int(x.split()[-1].rstrip(")")) for x in p.stdout.splitlines())
        self.assertEqual(froms, sorted([ok, bad, r["jobs"][0]["id"]]))
        # nothing finished matches: an empty answer, a note
        p = d.ctl("restart", "--label", "sel=none")
        self.assertRc(p, 0)
        self.assertIn("no finished job", p.stderr)

    def test_restart_bad_input(self):
        d = self.d
        run = d.submit(**sleeper(30))
        self.cancel_at_cleanup(run)
        self.assertError(d.request({"op": "restart", "job": run}), "invalid_state")
        self.assertError(d.request({"op": "restart", "job": 999999}), "not_found")
        self.assertError(d.request({"op": "restart"}), "bad_request")
        self.assertError(d.request({"op": "restart", "job": run, "state": "done"}),
                         "bad_request")
        self.assertError(d.request({"op": "restart", "state": "bogus"}), "bad_request")
        self.assertRc(d.ctl("restart", str(run)), 4)
        self.assertRc(d.ctl("restart"), 2)

    def test_restart_keeps_unique_keys(self):
        d = self.d
        a = d.submit(["true"], unique="rk", **IO)
        d.wait_job(a)
        hold = d.submit(**sleeper(30), unique="rk")
        self.cancel_at_cleanup(hold)
        r = d.ok({"op": "restart", "job": a})
        self.assertEqual(r["jobs"], [{"id": hold, "restarted_from": a, "existing": True}])

    def test_restarted_from_survives_kill9(self):
        d = self.daemon()
        a = d.submit(["false"], **IO)
        d.wait_job(a)
        d.ok({"op": "pause", "class": "io"})
        [e] = d.ok({"op": "restart", "job": a})["jobs"]
        n = self.restart(d)
        j = n.show(e["id"])
        self.assertEqual((j["state"], j["restarted_from"]), ("queued", a))
        n.ok({"op": "resume", "class": "io"})
        self.assertEqual(n.wait_job(e["id"])["restarted_from"], a)

    @unittest.skipUnless(ROOT, "needs root: another user's jobs")
    def test_restart_other_users_job_forbidden(self):
        d = self.daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        a = d.submit(["false"], **IO)
        d.wait_job(a)
        [r1, r2] = as_nobody(d, {"id": 1, "op": "restart", "job": a},
                             {"id": 2, "op": "restart", "state": "failed"})
        self.assertError(r1, "forbidden")
        self.assertEqual(self.assertOk(r2), {"jobs": []})
        # root re-runs it for its owner
        [e] = d.ok({"op": "restart", "job": a})["jobs"]
        self.assertEqual(d.show(e["id"])["owner"], d.show(a)["owner"])


# ---------------------------------------------------------------------------
# Suspending running jobs

def group_stopped(pgid):
    """Every process of the group stopped (T). A shell stopped while it vforks a
    command (dash does) waits in D until its child, stopped too, execs: it runs no
    more than a stopped one, so D counts when a T of the group is its child. A
    child that ended just as its shell was stopped stays a zombie (Z) until the
    shell runs again to reap it: it runs nothing either."""
    states, parents = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid:
            states[int(name)] = fields[0]
            parents[int(name)] = int(fields[1])
    stopped = {p for p, st in states.items() if st in ("T", "t")}
    vforking = {parents[p] for p in stopped}
    return bool(stopped) and all(p in stopped or (st == "D" and p in vforking) or st in ("Z", "X")
                                 for p, st in states.items())


TICKER = ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo $i; i=$((i+1)); sleep 0.01; done"]
# Says so when it is continued by a signal (a frozen cgroup sends none).
CONT_TICKER = ["sh", "-c", "trap 'echo CONT' CONT; i=0; "
               "while [ $i -lt 200 ]; do echo $i; i=$((i+1)); sleep 0.01; done"]


def cgroup_frozen(path):
    """The cgroup's processes are all frozen (cgroup.events: frozen 1)."""
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return "frozen 1" in f.read().split("\n")
    except OSError:
        return False


def wait_suspended(d, j, pids):
    """Job j is stopped: its cgroup frozen when it runs in one, else each of
    pids (its group's processes) in state T."""
    cg = d.show(j)["cgroup"]
    if cg is not None:
        wait_for(lambda: cgroup_frozen(cg), 15, what="job %d's cgroup frozen" % j)
        return
    for pid in pids:
        wait_for(lambda: proc_state(pid) == "T", 15, what="process %d stopped" % pid)


class SuspendTest(Restartable):
    shared_daemon = True
    shared_overrides = {"process_pool.mode": "static", "process_pool.min_workers": 1,
                        "process_pool.max_workers": 1}

    def output_size(self, d, j):
        return d.logs(j)["size"]

    def assertStopped(self, d, j):
        """It is stopped (its runner stops it a moment after the answer): its
        cgroup frozen where it has one, else its process group stopped; and its
        output stops growing."""
        js = d.show(j)
        if js["cgroup"] is not None:
            wait_for(lambda: cgroup_frozen(js["cgroup"]), 15, what="job %d's cgroup frozen" % j)
        else:
            pid = js["pid"]
            wait_for(lambda: group_stopped(pid), 15, what="job %d's process group stopped" % j)
        a = self.output_size(d, j)
        time.sleep(0.3)
        self.assertEqual(self.output_size(d, j), a)

    def suspend_and_resume(self, cls):
        d = self.d
        j = d.submit(TICKER, **{"class": cls})
        self.cancel_at_cleanup(j)
        d.wait_output(j, lambda b: b.count(b"\n") >= 3)
        self.assertEqual(d.ok({"op": "pause", "job": j}), {"id": j, "state": "suspended"})
        js = d.show(j)
        self.assertEqual(js["state"], "suspended")
        self.assertIsNotNone(js["suspended_at"])
        self.assertStopped(d, j)
        self.assertEqual(d.ok({"op": "resume", "job": j}), {"id": j, "state": "running"})
        done = d.wait_job(j)
        self.assertEqual(done["state"], "done")
        self.assertGreater(done["suspended_for"], 0.25)
        self.assertIsNone(done["suspended_at"])
        self.assertEqual(d.read_output(j).count(b"\n"), 400)

    def test_suspend_in_the_process_pool(self):
        self.suspend_and_resume("cpu")

    def test_suspend_on_a_thread(self):
        self.suspend_and_resume("io")

    def test_frozen_job_is_not_told(self):
        # in its own cgroup a job is frozen: no SIGCONT reaches its handlers on resume
        d = self.d
        for cls in ("io", "cpu"):
            with self.subTest(cls=cls):
                j = d.submit(CONT_TICKER, **{"class": cls})
                self.cancel_at_cleanup(j)
                d.wait_output(j, lambda b: b.count(b"\n") >= 3)
                if d.show(j)["cgroup"] is None:
                    self.skipTest("no cgroup for the job here: %s" % d.show(j)["cgroup_error"])
                d.ok({"op": "pause", "job": j})
                self.assertStopped(d, j)
                d.ok({"op": "resume", "job": j})
                self.assertEqual(d.wait_job(j)["state"], "done")
                out = d.read_output(j)
                self.assertEqual(out.count(b"\n"), 200)
                self.assertNotIn(b"CONT", out)

    def test_timeout_stops_while_suspended(self):
        d = self.d
        j = d.submit(["sh", "-c", "sleep 0.8; echo ok"], timeout=1.5, **IO)
        d.wait_state(j, "running")
        d.ok({"op": "pause", "job": j})
        time.sleep(1.6)  # past the timeout, all of it suspended
        d.ok({"op": "resume", "job": j})
        jd = d.wait_job(j)
        self.assertEqual(jd["state"], "done", jd)
        self.assertEqual(d.read_output(j), b"ok\n")

    def test_cancel_a_suspended_job(self):
        d = self.d
        for cls in ("io", "cpu"):
            with self.subTest(cls=cls):
                j = d.submit(["sleep", "30"], **{"class": cls})
                d.wait_state(j, "running")
                d.ok({"op": "pause", "job": j})
                r = d.ok({"op": "cancel", "job": j})
                self.assertEqual(r, {"id": j, "state": "suspended", "cancelling": True})
                t0 = time.monotonic()
                self.assertEqual(d.wait_job(j)["state"], "cancelled")
                self.assertLess(time.monotonic() - t0, 10)

    def test_slot_given_back_and_taken_again(self):
        # one worker, one cpu slot: a suspended cpu job lets another run, and resumes after it
        d = self.d
        a = d.submit(["sleep", "30"], **{"class": "cpu"})
        self.cancel_at_cleanup(a)
        d.wait_state(a, "running")
        b = d.submit(["sh", "-c", "sleep 0.6"], **{"class": "cpu"})
        self.assertEqual(d.show(b)["wait_reason"], "slots")
        d.ok({"op": "pause", "job": a})
        d.wait_state(b, "running")  # on a worker started beyond max_workers
        r = d.ok({"op": "resume", "job": a})
        self.assertEqual(r, {"id": a, "state": "suspended", "resuming": True})
        self.assertEqual(d.show(a)["wait_reason"], "slots")
        self.assertEqual(d.wait_job(b)["state"], "done")
        d.wait_state(a, "running")
        d.cancel(a)

    def test_bad_requests(self):
        d = self.d
        b = d.submit(type="sleep", argv=["30"], **IO)  # a built-in: nothing of its own to stop
        self.cancel_at_cleanup(b)
        d.wait_state(b, "running")
        self.assertError(d.request({"op": "pause", "job": b}), "invalid_state")
        j = d.submit(["true"], **IO)
        d.wait_job(j)
        self.assertError(d.request({"op": "pause", "job": j}), "invalid_state")
        self.assertError(d.request({"op": "resume", "job": j}), "invalid_state")
        s = d.submit(["sleep", "30"], **IO)
        self.cancel_at_cleanup(s)
        d.wait_state(s, "running")
        self.assertError(d.request({"op": "resume", "job": s}), "invalid_state")
        p = d.ctl("pause", str(s))
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "%d suspended\n" % s)
        self.assertRc(d.ctl("pause", str(s)), 4)  # already suspended
        p = d.ctl("resume", str(s))
        self.assertEqual(p.stdout, "%d running\n" % s)

    def test_suspended_when_taskd_dies(self):
        # lost at the next start (or retried): its stopped group is killed, not left stopped
        d = self.daemon()
        # exec, not a child in the foreground: a shell stopped while it vforks a
        # command (dash does) stays in D, not T, until that child execs
        two = ["sh", "-c", "sleep 30 & echo $! > child.$$; exec sleep 30"]
        jobs = [d.submit(two, cwd=d.tmp, **{"class": c}) for c in ("io", "cpu")]
        r = d.submit(["sh", "-c", "test -e ran && exit 0; : > ran; exec sleep 30"], retries=1,
                     retry_delay=0, cwd=d.tmp, **IO)
        pids, mine = [], {}
        for j in jobs + [r]:
            d.wait_state(j, "running")
            pid = wait_for(lambda: d.show(j)["pid"], 5)
            mine[j] = [pid]
            if j != r:
                mine[j].append(int(wait_for(
                    lambda: read_text(os.path.join(d.tmp, "child.%d" % pid)), 5)))
            pids += mine[j]
            d.ok({"op": "pause", "job": j})
        for j in jobs + [r]:
            try:
                wait_suspended(d, j, mine[j])
            except AssertionError as e:
                raise AssertionError("%s (now: %r, jobs %r)" % (
                    e, [(p, proc_state(p)) for p in pids],
                    [(k, d.show(k)["state"], d.show(k)["pid"]) for k in jobs + [r]])) from None
        n = self.restart(d)
        for j in jobs:
            jl = n.show(j)
            self.assertEqual(jl["state"], "lost")
            self.assertIn("killed when taskd started again", jl["error"])
        self.assertEqual([p for p in pids if not pid_gone(p)], [])
        self.assertEqual(n.wait_job(r)["state"], "done")  # its retry


class SuspendSignalsTest(E2ETestCase):
    """Without cgroups a suspended job's process group gets SIGSTOP and SIGCONT."""

    shared_daemon = True
    shared_overrides = {"cgroups.enable": "off"}

    def test_stopped_and_continued_by_signals(self):
        d = self.d
        self.assertFalse(d.status()["resources"]["cgroups"]["enabled"])
        for cls in ("io", "cpu"):
            with self.subTest(cls=cls):
                j = d.submit(CONT_TICKER, **{"class": cls})
                self.cancel_at_cleanup(j)
                d.wait_output(j, lambda b: b.count(b"\n") >= 3)
                pid = d.show(j)["pid"]
                d.ok({"op": "pause", "job": j})
                wait_for(lambda: group_stopped(pid), 15, what="job %d's group stopped" % j)
                d.ok({"op": "resume", "job": j})
                self.assertEqual(d.wait_job(j)["state"], "done")
                self.assertIn(b"CONT", d.read_output(j))  # the shell's trap saw the SIGCONT


@unittest.skipUnless(ROOT, "needs root: another user's jobs")
class SuspendUsersTest(E2ETestCase):
    shared_daemon = True
    shared_overrides = {"socket_mode": "0666"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.chmod(cls.d.tmp, 0o755)

    def test_other_users_jobs(self):
        d = self.d
        j = d.submit(["sleep", "30"], **IO)
        self.cancel_at_cleanup(j)
        d.wait_state(j, "running")
        [p, q] = as_nobody(d, {"id": 1, "op": "pause", "job": j},
                           {"id": 2, "op": "pause", "queue": "none"})
        self.assertError(p, "forbidden")
        self.assertError(q, "forbidden")
        self.assertEqual(d.show(j)["state"], "running")


# ---------------------------------------------------------------------------
# Named queues

QUEUES = [{"name": "gpu", "slots": 1}, {"name": "net", "slots": 2}]


class QueueTest(Restartable):

    def test_queue_slots_status_pause(self):
        d = self.daemon({"queues": QUEUES})
        a = d.submit(["sleep", "30"], queue="gpu", **IO)
        b = d.submit(["true"], queue="gpu", **IO)
        c = d.submit(["true"], **IO)  # no queue: not held up by gpu
        for j in (a, b):
            self.cancel_at_cleanup(j, d)
        d.wait_state(a, "running")
        self.assertEqual(d.wait_job(c)["state"], "done")
        jb = d.show(b)
        self.assertEqual((jb["state"], jb["wait_reason"], jb["queue"]), ("queued", "queue", "gpu"))
        qs = {q["name"]: q for q in d.status()["queues"]}
        self.assertEqual(qs["gpu"], {"name": "gpu", "slots": 1, "running": 1, "queued": 1,
                                     "paused": False, "removed": False})
        self.assertEqual(qs["net"]["slots"], 2)
        p = d.ctl("status")
        self.assertIn("gpu", p.stdout)
        # paused: nothing more starts from it
        self.assertEqual(d.ok({"op": "pause", "queue": "gpu"}), {"queue": "gpu", "paused": True})
        d.cancel(a)
        d.wait_job(a)
        time.sleep(0.2)
        jb = d.show(b)
        self.assertEqual((jb["state"], jb["wait_reason"]), ("queued", "paused"))
        self.assertRc(d.ctl("resume", "--queue", "gpu"), 0)
        self.assertEqual(d.wait_job(b)["state"], "done")
        # bad input
        self.assertError(d.request({"op": "submit", "argv": ["true"], "queue": "nope"}),
                         "bad_request")
        self.assertError(d.request({"op": "submit", "argv": ["true"], "queue": "a b"}),
                         "bad_request")
        self.assertError(d.request({"op": "pause", "queue": "nope"}), "bad_request")
        self.assertError(d.request({"op": "pause", "queue": "gpu", "class": "io"}),
                         "bad_request")
        self.assertRc(d.ctl("submit", "--queue", "nope", "--", "true"), 4)

    def test_queue_survives_kill9_with_its_pause(self):
        d = self.daemon({"queues": QUEUES})
        d.ok({"op": "pause", "queue": "net"})
        a = d.submit(["true"], queue="net", **IO)
        n = self.restart(d)
        ja = n.show(a)
        self.assertEqual((ja["state"], ja["wait_reason"], ja["queue"]), ("queued", "paused", "net"))
        self.assertTrue({q["name"]: q for q in n.status()["queues"]}["net"]["paused"])
        n.ok({"op": "resume", "queue": "net"})
        self.assertEqual(n.wait_job(a)["state"], "done")
        n2 = self.restart(n, kill=False)
        self.assertFalse({q["name"]: q for q in n2.status()["queues"]}["net"]["paused"])

    def test_reload_adds_resizes_removes(self):
        d = self.daemon({"queues": [{"name": "gpu", "slots": 1}]})
        jobs = [d.submit(["sleep", "30"], queue="gpu", **IO) for _ in range(3)]
        for j in jobs:
            self.cancel_at_cleanup(j, d)
        d.wait_state(jobs[0], "running")
        self.assertEqual(d.show(jobs[1])["state"], "queued")
        # more slots: a second one starts
        d.write_config({"queues": [{"name": "gpu", "slots": 2}, {"name": "new", "slots": 1}]})
        r = d.ok({"op": "reload"})
        self.assertIn("queues", r["changed"])
        d.wait_state(jobs[1], "running")
        self.assertEqual(d.show(jobs[2])["wait_reason"], "queue")
        self.assertEqual(d.submit(["true"], queue="new", **IO) > 0, True)
        # removed: its queued job stays queued, with the reason; new submits are refused
        d.write_config({"queues": []})
        d.ok({"op": "reload"})
        js = d.show(jobs[2])
        self.assertEqual((js["state"], js["wait_reason"]), ("queued", "queue_removed"))
        gpu = {q["name"]: q for q in d.status()["queues"]}["gpu"]
        self.assertEqual((gpu["removed"], gpu["queued"], gpu["running"]), (True, 1, 2))
        self.assertError(d.request({"op": "submit", "argv": ["true"], "queue": "gpu"}),
                         "bad_request")
        d.cancel(jobs[0])
        d.cancel(jobs[1])
        time.sleep(0.2)
        self.assertEqual(d.show(jobs[2])["state"], "queued")
        # ... and across a restart; back in the configuration, it runs
        n = self.restart(d, overrides={"queues": []})
        self.assertEqual(n.show(jobs[2])["wait_reason"], "queue_removed")
        n.write_config({"queues": [{"name": "gpu", "slots": 1}]})
        n.ok({"op": "reload"})
        n.wait_state(jobs[2], "running")
        # a drain does not wait for a job that cannot start
        m = self.daemon({"queues": [{"name": "gone", "slots": 1}]})
        k = m.submit(["true"], queue="gone", **IO)
        m.wait_job(k)
        m.ok({"op": "pause", "queue": "gone"})
        k = m.submit(["true"], queue="gone", **IO)
        m.ok({"op": "shutdown", "drain": True})
        self.assertEqual(m.wait_exit(10), 0)

    def test_bad_queue_configs(self):
        for queues, want in (
                ([{"name": "a", "slots": 0}], "slots must be"),
                ([{"name": "a b", "slots": 1}], "name must be"),
                ([{"name": "a", "slots": 1}, {"name": "a", "slots": 2}], "named twice"),
                ([{"name": "a", "slots": 1, "x": 1}], "unknown key 'x'"),
                ([{"slots": 1}], "needs a name")):
            with self.subTest(queues=queues):
                d = Daemon({"queues": queues}, start=False)
                self.track(d)
                with self.assertRaises(Exception):
                    d.start(timeout=5)
                self.assertIn(want, d.log_text())
        d = self.daemon({"queues": QUEUES})
        d.write_config({"queues": [{"name": "x", "slots": -1}]})
        self.assertError(d.request({"op": "reload"}), "invalid_config")
        self.assertEqual(len(d.status()["queues"]), 2)


# ---------------------------------------------------------------------------
# Job arrays

class ArrayTest(Restartable):
    shared_daemon = True

    def test_array_env_counts_list_wait(self):
        d = self.d
        r = d.ok({"op": "submit", "argv": ["sh", "-c", "echo $TASKD_ARRAY_ID:$TASKD_ARRAY_INDEX"],
                  "array": {"start": 10, "end": 20, "step": 5}, **IO})
        a = r["array"]
        self.assertEqual(r, {"id": a, "array": a, "first": a, "last": a + 2, "count": 3})
        w = d.ok({"op": "wait", "array": a})["jobs"]
        self.assertEqual([j["id"] for j in w], [a, a + 1, a + 2])
        self.assertEqual([j["array_index"] for j in w], [10, 15, 20])
        self.assertEqual({j["array"] for j in w}, {a})
        self.assertEqual([d.read_output(j["id"]) for j in w],
                         [b"%d:%d\n" % (a, i) for i in (10, 15, 20)])
        s = d.ok({"op": "show", "array": a})
        self.assertEqual((s["count"], s["start"], s["end"], s["step"], s["max"]),
                         (3, 10, 20, 5, None))
        self.assertEqual(s["states"]["done"], 3)
        self.assertEqual(s["removed"], 0)
        self.assertEqual(len(d.list_jobs(array=a)), 3)
        # taskctl
        p = d.ctl("submit", "--array", "1-4%2", "--wait", "--", "true")
        self.assertRc(p, 0)
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 5)
        b = int(lines[0])
        self.assertRc(d.ctl("show", "--array", b), 0)
        p = d.ctl("list", "--array", b)
        self.assertEqual(len(p.stdout.splitlines()), 5)  # a header and 4 jobs
        p = d.ctl("--json", "show", "--array", b)
        self.assertEqual(json.loads(p.stdout)["states"]["done"], 4)

    def test_array_max(self):
        d = self.d
        r = d.ok({"op": "submit", "argv": ["sh", "-c", "sleep 0.3"],
                  "array": {"start": 1, "end": 6, "max": 2}, **IO})
        a = r["array"]
        seen = []

        def all_done():
            s = d.ok({"op": "show", "array": a})
            seen.append(s["states"]["running"])
            waiting = [j["wait_reason"] for j in d.list_jobs(array=a) if j["state"] == "queued"]
            self.assertTrue(set(waiting) <= {"array"}, waiting)
            return s["states"]["done"] == 6
        wait_for(all_done, 30, interval=0.05)
        self.assertLessEqual(max(seen), 2)
        # never more than 2 at once, by their own times
        events = sorted([(j["started_at"], 1) for j in d.list_jobs(array=a)] +
                        [(j["finished_at"], -1) for j in d.list_jobs(array=a)])
        at_once = peak = 0
        for _, step in events:
            at_once += step
            peak = max(peak, at_once)
        self.assertLessEqual(peak, 2)

    def test_array_cancel_and_input(self):
        d = self.d
        r = d.ok({"op": "submit", "argv": ["sleep", "30"], "array": {"start": 0, "end": 99},
                  **IO})
        a = r["array"]
        p = d.ctl("cancel", "--array", a)
        self.assertRc(p, 0)
        self.assertEqual(len(p.stdout.splitlines()), 100)
        w = d.ok({"op": "wait", "array": a})["jobs"]
        self.assertEqual({j["state"] for j in w}, {"cancelled"})
        # one input for all its jobs
        r = d.ok({"op": "submit", "argv": ["cat"], "array": {"start": 1, "end": 3},
                  "input": b64(b"shared\n"), **IO})
        w = d.ok({"op": "wait", "array": r["array"]})["jobs"]
        self.assertEqual([d.read_output(j["id"]) for j in w], [b"shared\n"] * 3)
        self.assertEqual(w[0]["input_bytes"], 7)

    def test_array_bad_input(self):
        d = self.d
        for arr in ({"start": 5, "end": 1}, {"start": 1, "end": 5, "step": 0},
                    {"start": -1, "end": 5}, {"start": 0, "end": 2000000},
                    {"start": 1, "end": 5, "max": -1}, {"start": 1}, "1-5",
                    {"start": 1, "end": 2, "x": 1}, {"start": 0, "end": 10 ** 10}):
            with self.subTest(array=arr):
                self.assertError(d.request({"op": "submit", "argv": ["true"], "array": arr}),
                                 "bad_request")
        self.assertError(d.request({"op": "submit", "argv": ["true"], "wait": True,
                                    "array": {"start": 1, "end": 2}}), "bad_request")
        self.assertError(d.request({"op": "submit", "jobs": [
            {"argv": ["true"], "array": {"start": 1, "end": 2}}]}), "bad_request")
        self.assertError(d.request({"op": "show", "array": 99999999}), "not_found")
        self.assertError(d.request({"op": "list", "array": "x"}), "bad_request")
        for spec in ("5-1", "1-5:0", "a-b", "1-", "-5", "1-5%", "1-5%x", "1-2000000"):
            with self.subTest(spec=spec):
                self.assertRc(d.ctl("submit", "--array", spec, "--", "true"), 2)
        self.assertEqual(d.status()["jobs"]["queued"], 0)

    def test_array_kill9_midway(self):
        # 8 jobs, one at a time: killed mid-way, the rest run after the restart, each once
        d = self.daemon()
        log = os.path.join(d.tmp, "ran")
        r = d.ok({"op": "submit", "argv": ["sh", "-c", "echo $TASKD_ARRAY_INDEX >> %s; sleep 0.2"
                                           % log], "array": {"start": 1, "end": 8, "max": 1},
                  "retries": 1, "retry_delay": 0, **IO})
        a = r["array"]
        wait_for(lambda: d.ok({"op": "show", "array": a})["states"]["done"] >= 3, 30)
        n = self.restart(d)
        w = n.ok({"op": "wait", "array": a}, timeout=60)["jobs"]
        self.assertEqual([j["array_index"] for j in w], list(range(1, 9)))
        self.assertEqual({j["state"] for j in w}, {"done"})
        with open(log) as f:
            runs = [int(x) for x in f.read().split()]
        # each index ran once, but the one killed mid-run, which ran again (its retry)
        self.assertEqual(sorted(set(runs)), list(range(1, 9)))
        self.assertLessEqual(len(runs), 9)
        s = n.ok({"op": "show", "array": a})
        self.assertEqual((s["states"]["done"], s["count"]), (8, 8))

    def test_array_pruned_jobs_stay_gone(self):
        d = self.daemon({"jobs.keep_finished": 2})
        r = d.ok({"op": "submit", "argv": ["true"], "array": {"start": 1, "end": 6}, **IO})
        a = r["array"]
        wait_for(lambda: d.ok({"op": "show", "array": a})["states"]["done"] == 2 and
                 d.ok({"op": "show", "array": a})["removed"] == 4, 30)
        n = self.restart(d)
        s = n.ok({"op": "show", "array": a})
        self.assertEqual((s["states"]["done"], s["removed"], s["states"]["queued"]), (2, 4, 0))
        self.assertEqual(len(n.list_jobs(array=a)), 2)
        # the last ones go: the array with them
        n.ok({"op": "clean", "array": a})
        self.assertError(n.request({"op": "show", "array": a}), "not_found")
        m = self.restart(n, kill=False)
        self.assertError(m.request({"op": "show", "array": a}), "not_found")
        self.assertGreater(m.submit(["true"], **IO), a + 5)

    @unittest.skipUnless(ROOT, "needs root: another user's jobs")
    def test_other_users_array(self):
        d = self.daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        a = d.ok({"op": "submit", "argv": ["sleep", "30"], "array": {"start": 1, "end": 3},
                  **IO})["array"]
        self.addCleanup(lambda: d.alive() and d.request({"op": "cancel", "array": a}))
        rs = as_nobody(d, {"id": 1, "op": "show", "array": a},
                       {"id": 2, "op": "list", "array": a},
                       {"id": 3, "op": "cancel", "array": a},
                       {"id": 4, "op": "restart", "array": a})
        self.assertError(rs[0], "forbidden")
        self.assertEqual(self.assertOk(rs[1])["jobs"], [])
        self.assertEqual(self.assertOk(rs[2])["ids"], [])
        self.assertEqual(self.assertOk(rs[3])["jobs"], [])
        self.assertEqual(d.ok({"op": "show", "array": a})["states"]["cancelled"], 0)


# ---------------------------------------------------------------------------
# Multi-slot cpu jobs

class SlotsTest(E2ETestCase):
    shared_daemon = True
    shared_overrides = {"process_pool.mode": "static", "process_pool.min_workers": 2,
                        "process_pool.max_workers": 2}

    def test_slots_hold_the_cpu_queue(self):
        d = self.d
        big = d.submit(["sleep", "0.8"], slots=2)
        small = d.submit(["true"], **{"class": "cpu"})
        d.wait_state(big, "running")
        js = d.show(small)
        self.assertEqual((js["state"], js["wait_reason"]), ("queued", "slots"))
        jb = d.wait_job(big)
        self.assertEqual((jb["slots"], jb["class"], jb["pool"]), (2, "cpu", "process"))
        self.assertGreaterEqual(d.wait_job(small)["started_at"], jb["finished_at"] - 0.05)

    def test_slots_bad_input(self):
        d = self.d
        for v in (0, 3, 1025, "2", 1.5):
            with self.subTest(slots=v):
                self.assertError(d.request({"op": "submit", "argv": ["true"], "slots": v}),
                                 "bad_request")
        self.assertError(d.request({"op": "submit", "argv": ["true"], "slots": 2, "class": "io"}),
                         "bad_request")
        self.assertRc(d.ctl("submit", "--slots", "0", "--", "true"), 2)
        self.assertRc(d.ctl("submit", "--slots", "3", "--", "true"), 4)


# ---------------------------------------------------------------------------
# Standard input

class InputTest(Restartable):
    shared_daemon = True
    shared_overrides = {"limits.max_frame": "64K", "limits.max_input": "1M"}

    def test_input_from_file_and_stdin(self):
        d = self.d
        data = os.urandom(300000)  # over max_frame once in base64: the input may be
        path = os.path.join(d.tmp, "in.bin")
        with open(path, "wb") as f:
            f.write(data)
        p = d.ctl("submit", "--input", path, "--wait", "--", "sha256sum", binary=True)
        self.assertRc(p, 0)
        import hashlib
        self.assertEqual(p.stdout.split()[0].decode(), hashlib.sha256(data).hexdigest())
        p = d.ctl("submit", "--input", "-", "--wait", "--", "tr", "a-z", "A-Z", input="abc\n")
        self.assertEqual(p.stdout, "ABC\n")
        j = d.submit(["cat"], input=b64(b"x" * 10), **IO)
        self.assertEqual(d.wait_job(j)["input_bytes"], 10)
        self.assertIsNone(d.wait_job(d.submit(["true"], **IO))["input_bytes"])
        # an empty input is none: stdin reads nothing either way
        j = d.submit(["wc", "-c"], input="", **IO)
        self.assertIsNone(d.wait_job(j)["input_bytes"])
        self.assertEqual(d.read_output(j), b"0\n")

    def test_input_bad(self):
        d = self.d
        self.assertError(d.request({"op": "submit", "argv": ["cat"], "input": "!!"}),
                         "bad_request")
        self.assertError(d.request({"op": "submit", "argv": ["cat"], "input": 5}), "bad_request")
        self.assertError(d.request({"op": "submit", "type": "noop", "input": b64(b"x")}),
                         "bad_request")
        r = d.request({"op": "submit", "argv": ["cat"], "input": b64(b"x" * (1024 * 1024 + 1))})
        self.assertError(r, "bad_request")
        self.assertIn("limits.max_input", r["error"]["message"])
        # only the input may take a line past max_frame
        r = d.request({"op": "submit", "argv": ["cat", "y" * 70000], "input": b64(b"x")})
        self.assertError(r, "frame_too_large")
        p = d.ctl("submit", "--input", "/nonexistent", "--", "cat")
        self.assertRc(p, 1)
        self.assertEqual(d.status()["jobs"]["queued"], 0)

    def test_input_survives_kill9(self):
        d = self.daemon()
        d.ok({"op": "pause", "class": "io"})
        j = d.submit(["cat"], input=b64(b"kept\n"), **IO)
        n = self.restart(d)
        n.ok({"op": "resume", "class": "io"})
        self.assertEqual(n.wait_job(j)["state"], "done")
        self.assertEqual(n.read_output(j), b"kept\n")
        # removed with the job
        n.ok({"op": "clean", "state": "done"})
        self.assertFalse(os.path.exists(os.path.join(n.state_dir, "jobs", "%d.in" % j)))

    @unittest.skipUnless(ROOT, "needs root: a root taskd runs nobody's jobs")
    def test_input_of_another_users_job(self):
        d = self.daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        p = ctl_as_nobody(d, "submit", "--input", "/etc/hostname", "--wait", "--", "cat")
        self.assertRc(p, 0)
        with open("/etc/hostname") as f:
            self.assertEqual(p.stdout, f.read())


if __name__ == "__main__":
    main()
