"""The daemon at runtime under adverse conditions (issue 12): descriptors jobs
inherit, kill -9 of taskd with jobs running, a stopped worker, a deleted
state directory.

The kill -9 tests restart taskd WITHOUT reaping the dead daemon's leftover
processes first (the harness, a child subreaper, would kill them at stop()):
the new taskd itself must find and kill them before it marks their jobs lost
or runs them again. Everything is polled with a bound.

Standard library only.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, Daemon, NOBODY, _protected_pids, as_nobody,  # noqa: E402
                     pid_gone, proc_state, wait_for, main)

IO = {"class": "io"}
CPU = {"class": "cpu"}
PYTHON = "/usr/bin/python3"

# Lists the descriptors the process has, with their targets. The directory
# descriptor os.listdir itself uses is closed by the time readlink runs.
LIST_FDS = (
    "import os\n"
    "for f in sorted(os.listdir('/proc/self/fd'), key=int):\n"
    "    try:\n"
    "        print(f, os.readlink('/proc/self/fd/' + f))\n"
    "    except OSError:\n"
    "        pass\n"
)

def proc_stat(pid):
    """(state, pgrp, session) of pid, or None when it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return rest[0], int(rest[2]), int(rest[3])


def start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def boot_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


# ---------------------------------------------------------------------------

class InheritedFdsTest(E2ETestCase):
    """Jobs inherit only 0, 1 and 2, whatever runs them (issue 12, defect 4)."""

    OVERRIDES = {"process_pool.mode": "static", "process_pool.max_workers": 1,
                 "thread_pool.min_threads": 1, "thread_pool.max_threads": 2,
                 "socket_mode": "0666"}

    def fds_of(self, d, jid):
        j = d.wait_job(jid, timeout=30)
        self.assertEqual(j["state"], "done", j)
        lines = d.read_output(jid).decode().splitlines()
        return {int(line.split()[0]): line for line in lines}

    def assertOnlyStdio(self, d, jid, what):
        fds = self.fds_of(d, jid)
        extra = [line for fd, line in sorted(fds.items()) if fd > 2]
        self.assertEqual(sorted(fds), [0, 1, 2],
                         "%s (job %d) inherited descriptors: %s" % (what, jid, extra))

    def test_every_pool_and_path(self):
        d = self.start_daemon(self.OVERRIDES)
        lister = [PYTHON, "-c", LIST_FDS]
        cases = []
        # thread pool and process pool, type left out and given as "exec"
        cases.append(("io command", d.submit(lister, **IO)))
        cases.append(("cpu command", d.submit(lister, **CPU)))
        cases.append(("io --type exec", d.submit(lister, type="exec", **IO)))
        cases.append(("cpu --type exec", d.submit(lister, type="exec", **CPU)))
        # after built-ins ran in the same worker and on the threads
        for t, argv in (("noop", []), ("sleep", ["0.05"]), ("sumsq", ["1000"])):
            for cls in (CPU, IO):
                self.assertEqual(d.wait_job(d.submit(type=t, argv=argv, **cls))["state"],
                                 "done")
        cases.append(("cpu command after built-ins", d.submit(lister, **CPU)))
        cases.append(("io command after built-ins", d.submit(lister, **IO)))
        # a spec too large for one datagram reaches the worker in a memfd
        big = {"env": {"BIG": "x" * (100 << 10), "PATH": "/usr/bin:/bin"}}
        cases.append(("cpu command sent in a memfd", d.submit(lister, **big, **CPU)))
        # while a subscriber and a parked wait hold connections open
        with d.connect() as sub, d.connect() as waiter:
            sub.send({"id": 1, "op": "subscribe"})
            self.assertOk(sub.recv())
            slow = d.submit(["sleep", "30"], **IO)
            self.cancel_at_cleanup(slow, d)
            waiter.send({"id": 2, "op": "wait", "job": slow})
            cases.append(("io command with clients", d.submit(lister, **IO)))
            cases.append(("cpu command with clients", d.submit(lister, **CPU)))
            for what, jid in cases:
                with self.subTest(what):
                    self.assertOnlyStdio(d, jid, what)
            d.cancel(slow)
        if os.geteuid() != 0:
            return
        # a root daemon runs other users' commands through taskd --run-as
        os.chmod(d.tmp, 0o755)
        rs = as_nobody(d, {"id": 1, "op": "submit", "argv": lister, "class": "io", "cwd": "/"},
                       {"id": 2, "op": "submit", "argv": lister, "class": "cpu", "cwd": "/"},
                       {"id": 3, "op": "submit", "argv": lister, "class": "cpu", "cwd": "/",
                        "type": "exec"})
        for r, what in zip(rs, ("io as nobody", "cpu as nobody", "cpu --type exec as nobody")):
            with self.subTest(what):
                self.assertOnlyStdio(d, self.assertOk(r)["id"], what)



# ---------------------------------------------------------------------------

class LeftoverCase(E2ETestCase):
    """kill -9 of taskd, then a new taskd on the same state directory."""

    def kill9_and_restart(self, d, overrides=None):
        """SIGKILL d and start a new taskd on its directory, leaving d's job
        processes alone (no reap_strays): the new taskd must deal with them."""
        self.assertTrue(d.alive(), "taskd died before the kill; log:\n" + d.log_tail())
        d.signal(signal.SIGKILL)
        self.assertEqual(d.wait_exit(10), -signal.SIGKILL)
        n = Daemon(overrides, start=False, tmpdir=d.tmp)
        self.track(n)
        n.start()
        return n

    def job_dir(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-leftover-")
        os.chmod(tmp, 0o777)
        self.addCleanup(shutil.rmtree, tmp, True)
        return tmp

    def read_pids(self, path):
        """The pids a job wrote to path (once it has written them all)."""
        def check():
            with open(path) as f:
                text = f.read()
            return [int(x) for x in text.split()] if text.endswith("\n") else None
        return wait_for(check, 10, what="the job to write its pids to %s" % path)

    def assertAlive(self, pids, what):
        for pid in pids:
            self.assertFalse(pid_gone(pid), "%s: process %d is gone already" % (what, pid))

    def assertGone(self, pids, what):
        alive = [(p, proc_state(p)) for p in pids if not pid_gone(p)]
        self.assertEqual(alive, [], "%s: still running after the restart" % what)


# A job of two processes (a shell and its child, one group and session) that
# writes both pids to the file "pids" in its directory, then waits.
TWO_PROCS = ["sh", "-c", 'sleep 60 & echo $$ $! > pids.tmp; mv pids.tmp pids; wait']


class LeftoverJobsTest(LeftoverCase):
    """What a killed taskd leaves running is killed by the next start (defect 1)."""

    def crash_with_job(self, fields, submit=None):
        d = self.start_daemon()
        tmp = self.job_dir()
        jid = (submit or d.submit)(TWO_PROCS, cwd=tmp, **fields)
        self.cancel_at_cleanup(jid, d)
        d.wait_state(jid, "running")
        pids = self.read_pids(os.path.join(tmp, "pids"))
        d.submit(type="noop", **IO)  # a barrier: the running state is committed
        n = self.kill9_and_restart(d)
        return n, jid, pids, tmp

    def check_lost(self, n, jid, pids):
        # The new taskd answered: by then nothing of the old run may be left.
        self.assertGone(pids, "job %d" % jid)
        j = n.show(jid)
        self.assertEqual(j["state"], "lost", j)
        self.assertIn("killed", j["error"], j)
        # its own running time, from its process's start to its kill
        self.assertIsInstance(j["wall"], float, j)
        self.assertGreater(j["wall"], 0.0, j)
        self.assertLess(j["wall"], time.time() - j["started_at"] + 0.5, j)
        return j

    def test_io_job_killed_then_lost(self):
        n, jid, pids, _ = self.crash_with_job(IO)
        self.check_lost(n, jid, pids)

    def test_cpu_job_killed_then_lost(self):
        # the worker dies with taskd (PR_SET_PDEATHSIG); its command does not
        n, jid, pids, _ = self.crash_with_job(CPU)
        self.check_lost(n, jid, pids)

    def test_retry_starts_only_after_the_old_run_is_gone(self):
        d = self.start_daemon()
        tmp = self.job_dir()
        # attempt 1 records its pids and hangs; attempt 2 notes whether the
        # processes of attempt 1 still exist, then ends
        # (stat is read once: a zombie reaped between two reads is not alive)
        script = ('if [ -e pids ]; then for p in $(cat pids); do '
                  's=$(cat /proc/$p/stat 2>/dev/null) || continue; '
                  'case "$s" in *") Z "*|*") X "*) ;; *) echo "$p alive: $s" >> beside;; esac; '
                  'done; exit 0; fi; ' + TWO_PROCS[2])
        jid = d.submit(["sh", "-c", script], cwd=tmp, retries=1, retry_delay=0, **IO)
        self.cancel_at_cleanup(jid, d)
        d.wait_state(jid, "running")
        pids = self.read_pids(os.path.join(tmp, "pids"))
        d.submit(type="noop", **IO)
        n = self.kill9_and_restart(d)
        self.assertGone(pids, "attempt 1 of job %d" % jid)
        j = n.wait_job(jid, timeout=30)
        self.assertEqual(j["state"], "done", j)
        self.assertEqual(j["attempt"], 2, j)
        self.assertEqual(j["attempts"][0]["state"], "lost", j)
        beside = os.path.join(tmp, "beside")
        if os.path.exists(beside):
            with open(beside) as f:
                self.fail("attempt 2 ran beside attempt 1: " + f.read())

    @unittest.skipUnless(os.geteuid() == 0, "needs root: a root taskd runs nobody's jobs")
    def test_other_users_jobs_killed_then_lost(self):
        d = self.start_daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        tmp = self.job_dir()
        dirs = [os.path.join(tmp, c) for c in ("io", "cpu")]
        for p in dirs:
            os.mkdir(p)
            os.chmod(p, 0o777)
        rs = as_nobody(d, *({"id": i, "op": "submit", "argv": TWO_PROCS, "cwd": p,
                             "class": os.path.basename(p)} for i, p in enumerate(dirs)))
        ids = [self.assertOk(r)["id"] for r in rs]
        for i in ids:
            self.cancel_at_cleanup(i, d)
            d.wait_state(i, "running")
        pids = [self.read_pids(os.path.join(p, "pids")) for p in dirs]
        for ps in pids:
            for p in ps:
                self.assertEqual(os.stat("/proc/%d" % p).st_uid, NOBODY)
        d.submit(type="noop", **IO)
        n = self.kill9_and_restart(d)
        for jid, ps in zip(ids, pids):
            self.check_lost(n, jid, ps)


class LeftoverRecordsTest(LeftoverCase):
    """The records in STATE_DIR/live: identity checks, workers, a start that
    was not committed yet (defect 1)."""

    def live_dir(self, d):
        path = os.path.join(d.state_dir, "live")
        os.makedirs(path, 0o700, exist_ok=True)
        return path

    def write_record(self, d, name, pid, start, boot=None, at=None):
        with open(os.path.join(self.live_dir(d), name), "w") as f:
            f.write("%d %d %s %.6f\n" % (pid, start, boot or boot_id(), at or time.time()))

    def sleeper(self, *argv):
        p = subprocess.Popen(list(argv) or ["sleep", "60"], start_new_session=True,
                             stdin=subprocess.DEVNULL)
        _protected_pids.add(p.pid)
        self.addCleanup(lambda: (p.kill(), p.wait(), _protected_pids.discard(p.pid)))
        return p

    def test_records_are_checked_before_killing(self):
        d = Daemon(None, start=False)
        self.track(d)
        worker = self.sleeper()          # a worker left by a dead taskd
        job = self.sleeper("sh", "-c", "sleep 60 & wait")  # a job of an unknown id
        recycled = self.sleeper()        # its pid was reused: another start time
        other_boot = self.sleeper()      # recorded before a reboot
        wait_for(lambda: len([p for p in os.listdir("/proc") if p.isdigit() and
                              proc_stat(int(p)) and proc_stat(int(p))[2] == job.pid]) == 2,
                 5, what="the job's child")
        self.write_record(d, "worker-%d" % worker.pid, worker.pid, start_ticks(worker.pid))
        self.write_record(d, "job-999", job.pid, start_ticks(job.pid))
        self.write_record(d, "worker-%d" % recycled.pid, recycled.pid,
                          start_ticks(recycled.pid) - 1)
        self.write_record(d, "job-998", other_boot.pid, start_ticks(other_boot.pid),
                          boot="00000000-0000-0000-0000-000000000000")
        with open(os.path.join(self.live_dir(d), "job-997"), "w") as f:
            f.write("garbage\n")
        members = [int(p) for p in os.listdir("/proc") if p.isdigit() and proc_stat(int(p))
                   and proc_stat(int(p))[2] == job.pid]
        d.start()
        self.assertGone([worker.pid], "the recorded worker")
        self.assertGone(members, "the recorded job's session")
        self.assertAlive([recycled.pid], "a process with a recorded pid but another start time")
        self.assertAlive([other_boot.pid], "a process recorded before a reboot")
        self.assertEqual(sorted(os.listdir(self.live_dir(d))),
                         sorted("worker-%d" % w["pid"] for w in d.status()["process_pool"]
                                ["workers"]),
                         "the records of the dead taskd are removed")
        log = d.log_text()
        self.assertIn("job-997", log)

    def test_start_not_yet_committed(self):
        # The store still has the job waiting for its time, but a record says
        # its command was started: the start was not committed before the crash.
        d = self.start_daemon()
        jid = d.submit(["true"], run_at=time.time() + 3600, retries=0, **IO)
        self.assertEqual(d.stop(), 0)
        proc = self.sleeper()
        self.write_record(d, "job-%d" % jid, proc.pid, start_ticks(proc.pid), at=time.time() - 5)
        n = Daemon(None, start=False, tmpdir=d.tmp)
        self.track(n)
        n.start()
        self.assertGone([proc.pid], "the job's uncommitted run")
        j = n.show(jid)
        self.assertEqual(j["state"], "lost", j)
        self.assertIn("killed", j["error"], j)
        self.assertIsNotNone(j["started_at"], j)



# ---------------------------------------------------------------------------

class StoppedWorkerTest(E2ETestCase):
    """A worker stopped with SIGSTOP: its job's timeout still holds, and a job
    that ends meanwhile reports its own wall time (defect 11)."""

    OVERRIDES = {"process_pool.mode": "static", "process_pool.max_workers": 1,
                 "jobs.kill_grace": 0.5}

    def idle_worker(self, d, exclude=()):
        def check():
            ws = d.status()["process_pool"]["workers"]
            if len(ws) == 1 and ws[0]["state"] == "idle" and ws[0]["pid"] not in exclude:
                return ws[0]["pid"]
            return None
        return wait_for(check, 15, what="an idle worker (not %s)" % (list(exclude),))

    def stop_worker(self, pid):
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(lambda: pid_gone(pid) or os.kill(pid, signal.SIGCONT))
        wait_for(lambda: proc_state(pid) in ("T", "t", None), 5, what="worker %d to stop" % pid)

    def test_timeout_enforced_by_the_daemon(self):
        d = self.start_daemon(self.OVERRIDES)
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-stopped-")
        self.addCleanup(shutil.rmtree, tmp, True)
        jobs = [("command", dict(argv=["sh", "-c", "echo $$ > pid; exec sleep 60"], cwd=tmp)),
                ("built-in", dict(type="spin", argv=["60"]))]
        for what, fields in jobs:
            with self.subTest(what):
                worker = self.idle_worker(d)
                jid = d.submit(timeout=1, **fields, **CPU)
                self.cancel_at_cleanup(jid, d)
                j = d.wait_state(jid, "running")
                self.assertEqual(j["worker"], worker)
                cmd = None
                if what == "command":
                    cmd = int(wait_for(lambda: open(os.path.join(tmp, "pid")).read().strip(),
                                       5, what="the job's pid"))
                self.stop_worker(worker)
                t0 = time.monotonic()
                j = d.wait_job(jid, timeout=30)
                took = time.monotonic() - t0
                self.assertEqual(j["state"], "timeout", j)
                # timeout 1 s + kill_grace 0.5 s + the daemon's slack, with room for a busy machine
                self.assertLess(took, 8, "the timeout took %.1f s to hold" % took)
                if cmd is not None:
                    wait_for(lambda: pid_gone(cmd), 5, what="the job's process %d to die" % cmd)
                wait_for(lambda: pid_gone(worker), 5, what="the stopped worker to be killed")
                new = self.idle_worker(d, exclude=(worker,))
                j = d.wait_job(d.submit(type="sumsq", argv=["10"], **CPU))
                self.assertEqual((j["state"], j["result"], j["worker"]), ("done", "285", new))


    def test_wall_is_the_jobs_own_time(self):
        # the job ends while its worker is stopped: its wall time is its own
        d = self.start_daemon(self.OVERRIDES)
        worker = self.idle_worker(d)
        jid = d.submit(["sleep", "1"], **CPU)
        # (once the worker reported the command's pid: "pid" in show)
        wait_for(lambda: d.show(jid)["pid"], 10, what="job %d to start its command" % jid)
        self.stop_worker(worker)
        time.sleep(3)
        os.kill(worker, signal.SIGCONT)
        j = d.wait_job(jid, timeout=30)
        self.assertEqual(j["state"], "done", j)
        self.assertGreaterEqual(j["wall"], 0.9, j)
        self.assertLess(j["wall"], 2.0, "wall %.2f s counts the worker's stop" % j["wall"])
        self.assertLess(j["finished_at"] - j["started_at"], 2.0, j)



# ---------------------------------------------------------------------------

class StorageLostTest(E2ETestCase):
    """The state directory or the database deleted under a running taskd:
    submits are refused with storage_error, reads go on (defect 9)."""

    def check_refused(self, d, old):
        """Every way to submit is refused; status, list, show still answer."""
        db = os.path.join(d.state_dir, "taskd.db")
        r = d.request({"id": 1, "op": "submit", "argv": ["true"]})
        err = self.assertError(r, "storage_error")
        self.assertIn(db, err["message"])
        self.assertError(d.request({"id": 2, "op": "submit", "jobs": [{"argv": ["true"]}]}),
                         "storage_error")
        self.assertError(d.request({"id": 3, "op": "submit", "type": "noop", "wait": True}),
                         "storage_error")
        p = d.ctl("submit", "--", "true")
        self.assertRc(p, 4)
        self.assertIn(db, p.stderr)
        # reads go on
        st = d.status()
        self.assertIn(db, st["storage_error"])
        self.assertEqual(d.show(old)["state"], "done")
        self.assertEqual([j["id"] for j in d.list_jobs()], [old])
        p = d.ctl("status")
        self.assertRc(p, 0)
        self.assertIn("storage:", p.stdout)
        self.assertIn(db, p.stdout)
        self.assertRegex(d.log_text(), r"taskd\[error\]: .*%s" % db)
        self.assertTrue(d.alive())

    def daemon_with_a_job(self):
        """A taskd whose database holds one finished job; (d, its id)."""
        d = self.start_daemon()
        old = d.submit(["true"], **IO)
        self.assertEqual(d.wait_job(old)["state"], "done")
        self.assertIsNone(d.status()["storage_error"])
        return d, old

    def test_state_dir_deleted(self):
        d, old = self.daemon_with_a_job()
        shutil.rmtree(d.state_dir)
        self.check_refused(d, old)

    def test_database_deleted(self):
        d, old = self.daemon_with_a_job()
        os.unlink(os.path.join(d.state_dir, "taskd.db"))
        self.check_refused(d, old)

    def test_state_dir_replaced(self):
        d, old = self.daemon_with_a_job()
        os.rename(d.state_dir, d.state_dir + ".old")
        os.mkdir(d.state_dir)
        self.check_refused(d, old)

    def test_seen_without_submits(self):
        d, _ = self.daemon_with_a_job()
        shutil.rmtree(d.state_dir)
        # nothing is committed meanwhile: the periodic check finds it
        wait_for(lambda: d.status()["storage_error"], 5, what="status to say storage_error")
        self.assertRegex(d.log_text(), r"taskd\[error\]: storage lost: ")


if __name__ == "__main__":
    main()
