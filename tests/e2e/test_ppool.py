"""The prefork process pool and the cpu/io router (issue 4), against a real taskd.

Worker pids come from `status` (process_pool.workers) and from a job's
"worker" field. Everything is polled with a bound; no test relies on a
fixed sleep being long enough on a loaded machine.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, Daemon, TASKD, wait_for, pid_gone, main  # noqa: E402

CPU = {"class": "cpu"}
IO = {"class": "io"}
AUTO = {"class": "auto"}

SUMSQ_1E8 = "333333328333333350000000"  # sum of i*i for i < 10**8

STATIC1 = {"process_pool.mode": "static", "process_pool.max_workers": 1}
STATIC2 = {"process_pool.mode": "static", "process_pool.max_workers": 2}


def pid_exists(pid):
    return not pid_gone(pid)


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().rstrip(b"\0").replace(b"\0", b" ")


def children(pid):
    kids = []
    for ent in os.listdir("/proc"):
        if ent.isdigit():
            try:
                with open("/proc/%s/stat" % ent) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                kids.append(int(ent))
    return kids


class PoolCase(E2ETestCase):
    """Helpers over process_pool.workers."""

    def workers(self, d):
        return d.status()["process_pool"]["workers"]

    def live(self, d):
        """Workers not on their way out."""
        return [w for w in self.workers(d) if w["state"] != "exiting"]

    def idle_pids(self, d):
        return sorted(w["pid"] for w in self.workers(d) if w["state"] == "idle")

    def wait_idle(self, d, n, exclude=(), timeout=10.0):
        """Wait until exactly n workers exist, all idle, none of them in exclude; their pids."""
        def check():
            ws = self.workers(d)
            pids = [w["pid"] for w in ws]
            if (len(ws) == n and all(w["state"] == "idle" for w in ws)
                    and not set(pids) & set(exclude)):
                return sorted(pids)
            return None
        return wait_for(check, timeout, what="%d idle workers (not %s)" % (n, list(exclude)))

    def run_cpu(self, d, type_="noop", argv=None, timeout=30):
        fields = dict(CPU, type=type_)
        if argv is not None:
            fields["argv"] = argv
        jid = d.submit(**fields)
        return d.wait_job(jid, timeout=timeout)

    def assertProcessJob(self, j, state="done"):
        self.assertEqual(j["state"], state, j)
        self.assertEqual(j["pool"], "process", j)
        self.assertIsInstance(j["worker"], int, j)
        self.assertGreater(j["worker"], 0, j)


class PoolBasicsTest(PoolCase):
    """Status and both classes of jobs on a static pool of two workers."""

    shared_daemon = True
    shared_overrides = dict(STATIC2)

    def setUp(self):
        super().setUp()
        self.pids = self.wait_idle(self.d, 2)

    def test_status_shows_both_pools(self):
        st = self.d.status()
        pp = st["process_pool"]
        for k in ("mode", "min", "max", "workers"):
            self.assertIn(k, pp)
        self.assertEqual(pp["mode"], "static")
        self.assertEqual(pp["max"], 2)
        self.assertEqual(len(pp["workers"]), 2)
        self.assertEqual(len({w["pid"] for w in pp["workers"]}), 2, "worker pids not distinct")
        for w in pp["workers"]:
            for k in ("index", "pid", "state", "job", "jobs_done", "rss_kb", "started_at"):
                self.assertIn(k, w)
            self.assertEqual(w["state"], "idle")
            self.assertIsNone(w["job"])
            self.assertNotEqual(w["pid"], self.d.pid)
            self.assertTrue(pid_exists(w["pid"]))
        self.assertEqual(len({w["index"] for w in pp["workers"]}), 2)
        tp = st["thread_pool"]
        for k in ("threads", "busy", "idle", "max"):
            self.assertIn(k, tp)
        for k in ("pending", "cpu", "io"):
            self.assertIn(k, st["queue"])
            self.assertIsInstance(st["queue"][k], int)
        self.assertIsInstance(st["router"], list)

    def test_status_text(self):
        p = self.d.ctl("status")
        self.assertRc(p, 0)
        for pid in self.pids:
            self.assertIn(str(pid), p.stdout)

    def test_ps_title(self):
        for pid in self.pids:
            t = cmdline(pid)
            self.assertTrue(t.startswith(b"taskd: worker"), t)
            self.assertIn(b"idle", t)
        jid = self.d.submit(type="spin", argv=["30"], **CPU)
        self.cancel_at_cleanup(jid)
        j = self.d.wait_state(jid, "running")
        self.assertIn(j["worker"], self.pids)
        t = wait_for(lambda: (lambda t: t if b"busy" in t else None)(cmdline(j["worker"])),
                     5, what="busy in the worker's title")
        self.assertTrue(t.startswith(b"taskd: worker"), t)
        self.assertIn(str(jid).encode(), t)
        self.d.cancel(jid)
        self.assertEqual(self.d.wait_state(jid, ("cancelled",), timeout=15)["state"],
                         "cancelled")

    def test_sumsq_in_process(self):
        j = self.run_cpu(self.d, "sumsq", ["100000000"], timeout=60)
        self.assertProcessJob(j)
        self.assertEqual(j["result"], SUMSQ_1E8)
        self.assertIn(j["worker"], self.pids)
        self.assertEqual(j["routed"], "cpu")

    def test_sumsq_via_taskctl(self):
        p = self.d.ctl("submit", "--class", "cpu", "--type", "sumsq", "--", "100000000")
        self.assertRc(p, 0)
        jid = int(re.search(r"\d+", p.stdout).group(0))
        j = self.d.wait_job(jid, timeout=60)
        self.assertProcessJob(j)
        self.assertEqual(j["result"], SUMSQ_1E8)
        self.assertIn(j["worker"], self.pids)

    def test_io_sleep_on_thread(self):
        jid = self.d.submit(type="sleep", argv=["0.2"], **IO)
        j = self.d.wait_job(jid)
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["pool"], "thread")
        self.assertEqual(j["routed"], "io")
        self.assertNotIn(j["worker"], self.pids)

    def test_exec_exit_code_and_output(self):
        jid = self.d.submit(["sh", "-c", "echo hi; echo err >&2; exit 3"], **CPU)
        j = self.d.wait_job(jid)
        self.assertProcessJob(j, "failed")
        self.assertEqual(j["exit_code"], 3)
        self.assertIsNone(j["signal"])
        self.assertEqual(self.d.read_output(jid), b"hi\n")
        self.assertEqual(self.d.read_output(jid, "stderr"), b"err\n")
        self.assertEqual(j["stdout_bytes"], 3)
        self.assertIsInstance(j["pid"], int)
        self.assertNotIn(j["pid"], self.pids)

    def test_exec_cwd_env(self):
        jid = self.d.submit(["sh", "-c", 'pwd; echo "$FOO"; echo "${BAR-unset}"'], cwd="/tmp",
                            env={"FOO": "foo bar", "PATH": "/usr/bin:/bin"}, **CPU)
        j = self.d.wait_job(jid)
        self.assertProcessJob(j)
        self.assertEqual(self.d.read_output(jid), b"/tmp\nfoo bar\nunset\n")

    def test_exec_command_not_found(self):
        jid = self.d.submit(["/no/such/command"], **CPU)
        j = self.d.wait_job(jid)
        self.assertEqual((j["state"], j["exit_code"]), ("failed", 127), j)
        self.assertEqual(j["pool"], "process")

    def test_exec_timeout(self):
        t0 = time.monotonic()
        jid = self.d.submit(["sleep", "10"], timeout=0.5, **CPU)
        self.cancel_at_cleanup(jid)
        j = self.d.wait_job(jid, timeout=15)
        self.assertEqual(j["state"], "timeout", j)
        self.assertEqual(j["pool"], "process")
        self.assertLess(time.monotonic() - t0, 8.0)
        self.wait_idle(self.d, 2)

    def test_cancel_running_exec(self):
        jid = self.d.submit(["sleep", "30"], **CPU)
        self.cancel_at_cleanup(jid)
        j = self.d.wait_state(jid, "running")
        self.assertEqual(j["pool"], "process")
        r = self.d.cancel(jid)
        self.assertEqual(r["id"], jid)
        j = self.d.wait_job(jid, timeout=15)
        self.assertEqual(j["state"], "cancelled", j)
        self.wait_idle(self.d, 2)
        self.assertProcessJob(self.run_cpu(self.d))

    def test_cancel_queued_cpu_job(self):
        # both workers busy: the third cpu job waits in the cpu queue
        busy = [self.d.submit(type="spin", argv=["30"], **CPU) for _ in range(2)]
        for b in busy:
            self.cancel_at_cleanup(b)
        jid = self.d.submit(type="noop", **CPU)
        self.cancel_at_cleanup(jid)
        for b in busy:
            self.d.wait_state(b, "running")
        self.assertEqual(self.d.show(jid)["state"], "queued")
        self.assertGreaterEqual(self.d.status()["queue"]["cpu"], 1)
        self.assertEqual(self.d.cancel(jid)["state"], "cancelled")
        for b in busy:
            self.d.cancel(b)
        for b in busy:
            self.assertEqual(self.d.wait_job(b, timeout=15)["state"], "cancelled")
        self.wait_idle(self.d, 2)


class PoolWorkerLifeTest(PoolCase):
    """Cancel, kill -9, recycle: each on its own daemon."""

    def test_cancel_builtin_keeps_worker(self):
        # A built-in type is a module type: it sees the cancel (taskd_stop) and
        # returns within about a millisecond, so its worker stays and serves on.
        d = self.start_daemon(STATIC1)
        [old] = self.wait_idle(d, 1)
        jid = d.submit(type="spin", argv=["30"], **CPU)
        self.cancel_at_cleanup(jid, d)
        j = d.wait_state(jid, "running")
        self.assertEqual(j["worker"], old)
        self.assertEqual(d.cancel(jid)["id"], jid)
        j = d.wait_job(jid, timeout=15)
        self.assertEqual(j["state"], "cancelled", j)
        self.assertLess(j["wall"], 5)
        self.assertEqual(self.wait_idle(d, 1), [old])
        j = self.run_cpu(d, "sumsq", ["1000"])
        self.assertProcessJob(j)
        self.assertEqual(j["worker"], old)
        self.assertEqual(j["result"], "332833500")

    def test_kill_busy_worker(self):
        d = self.start_daemon(STATIC1)
        self.wait_idle(d, 1)
        jid = d.submit(type="spin", argv=["30"], **CPU)
        self.cancel_at_cleanup(jid, d)
        j = d.wait_state(jid, "running")
        victim = j["worker"]
        self.assertIsInstance(victim, int)
        os.kill(victim, signal.SIGKILL)
        j = d.wait_state(jid, ("lost", "failed", "cancelled", "done"), timeout=10)
        self.assertEqual(j["state"], "lost", j)
        self.assertIsInstance(j["error"], str, j)
        self.assertIn("worker", j["error"].lower(), j)
        self.assertIsNotNone(j["finished_at"])
        self.assertTrue(d.alive(), "taskd died with its worker")
        self.assertEqual(d.status()["jobs"]["lost"], 1)
        [new] = self.wait_idle(d, 1, exclude=[victim])
        j2 = self.run_cpu(d, "sumsq", ["10"])
        self.assertProcessJob(j2)
        self.assertEqual(j2["worker"], new)
        self.assertEqual(j2["result"], "285")
        self.assertDaemonServes(d)

    def test_kill_busy_exec_worker(self):
        d = self.start_daemon(STATIC1)
        self.wait_idle(d, 1)
        jid = d.submit(["sleep", "30"], **CPU)
        self.cancel_at_cleanup(jid, d)
        j = d.wait_state(jid, "running")
        victim = j["worker"]
        os.kill(victim, signal.SIGKILL)
        j = d.wait_state(jid, ("lost", "failed", "cancelled", "done"), timeout=10)
        self.assertEqual(j["state"], "lost", j)
        self.assertIn("worker", (j["error"] or "").lower(), j)
        self.wait_idle(d, 1, exclude=[victim])
        self.assertProcessJob(self.run_cpu(d))

    def test_kill_idle_worker(self):
        d = self.start_daemon(STATIC2)
        pids = self.wait_idle(d, 2)
        os.kill(pids[0], signal.SIGKILL)
        now = self.wait_idle(d, 2, exclude=[pids[0]])
        self.assertIn(pids[1], now)
        self.assertTrue(d.alive())
        self.assertEqual(d.status()["jobs"]["lost"], 0)
        self.assertProcessJob(self.run_cpu(d))

    def test_recycle_after_max_jobs(self):
        d = self.start_daemon(dict(STATIC1, **{"process_pool.max_jobs_per_worker": 2}))
        self.wait_idle(d, 1)
        ran = []
        for _ in range(3):
            j = self.run_cpu(d)
            self.assertProcessJob(j)
            ran.append(j["worker"])
        self.assertEqual(ran[0], ran[1], "recycled before max_jobs_per_worker (2) jobs")
        self.assertNotEqual(ran[2], ran[0], "not recycled after max_jobs_per_worker (2) jobs")
        wait_for(lambda: pid_gone(ran[0]), 5, what="the recycled worker to exit")
        self.assertEqual(d.status()["jobs"]["lost"], 0)


class PoolSizingTest(PoolCase):
    def test_dynamic_grow_and_shrink(self):
        d = self.start_daemon({"process_pool.mode": "dynamic", "process_pool.min_workers": 1,
                               "process_pool.max_workers": 2, "process_pool.min_spare": 0,
                               "process_pool.max_spare": 1, "process_pool.idle_timeout": 1})
        wait_for(lambda: len(self.live(d)) == 1, 10, what="1 worker at start")
        ids = d.submit_batch([dict(CPU, type="spin", argv=["1"]) for _ in range(2)])
        for i in ids:
            self.cancel_at_cleanup(i, d)
        wait_for(lambda: sum(w["state"] == "busy" for w in self.workers(d)) == 2, 10,
                 interval=0.02, what="2 busy workers")
        js = [d.wait_job(i, timeout=30) for i in ids]
        for j in js:
            self.assertProcessJob(j)
        self.assertNotEqual(js[0]["worker"], js[1]["worker"])
        # 2 idle now, max_spare = 1: back to at most 1 (and never below min_workers)
        wait_for(lambda: len(self.workers(d)) <= 1, 6, what="shrink to max_spare")
        wait_for(lambda: len(self.idle_pids(d)) == 1, 6, what="1 idle worker (min_workers)")
        self.assertProcessJob(self.run_cpu(d))

    def test_ondemand(self):
        d = self.start_daemon({"process_pool.mode": "ondemand", "process_pool.max_workers": 2,
                               "process_pool.min_workers": 0, "process_pool.min_spare": 0,
                               "process_pool.idle_timeout": 1})
        self.assertEqual(d.status()["process_pool"]["mode"], "ondemand")
        self.assertEqual(self.workers(d), [])
        time.sleep(1.2)  # a maintenance tick passes: still none
        self.assertEqual(self.workers(d), [])
        j = self.run_cpu(d)
        self.assertProcessJob(j)
        wait_for(lambda: self.workers(d) == [], 6, what="the idle worker to go away")
        wait_for(lambda: pid_gone(j["worker"]), 5, what="worker %d to exit" % j["worker"])
        self.assertProcessJob(self.run_cpu(d))  # and a new one comes for the next job

    def test_sighup_resizes(self):
        d = self.start_daemon(STATIC2)
        pids = self.wait_idle(d, 2)
        d.write_config(dict(STATIC1))
        d.signal(signal.SIGHUP)
        wait_for(lambda: len(self.workers(d)) == 1, 10, what="1 worker after SIGHUP")
        st = d.status()["process_pool"]
        self.assertEqual(st["max"], 1)
        self.assertIn(st["workers"][0]["pid"], pids)
        gone = [p for p in pids if p != st["workers"][0]["pid"]]
        wait_for(lambda: pid_gone(gone[0]), 5, what="the surplus worker to exit")
        # and back up
        d.write_config(dict(STATIC2))
        d.signal(signal.SIGHUP)
        self.wait_idle(d, 2)

    def test_reload_with_busy_worker(self):
        # a busy surplus worker finishes its job before it goes
        d = self.start_daemon(STATIC2)
        self.wait_idle(d, 2)
        ids = d.submit_batch([dict(CPU, type="spin", argv=["1"]) for _ in range(2)])
        for i in ids:
            d.wait_state(i, "running")
        d.write_config(dict(STATIC1))
        self.assertOk(d.request({"id": 1, "op": "reload"}))
        for i in ids:
            self.assertEqual(d.wait_job(i, timeout=30)["state"], "done")
        wait_for(lambda: len(self.workers(d)) == 1, 10, what="1 worker after reload")
        self.assertProcessJob(self.run_cpu(d))

    def test_bad_pool_config(self):
        cases = {
            "min_workers > max_workers": {"process_pool.min_workers": 3,
                                          "process_pool.max_workers": 2},
            "max_spare < min_spare": {"process_pool.min_spare": 3, "process_pool.max_spare": 1},
            "unknown mode": {"process_pool.mode": "bogus"},
        }
        with Daemon(start=False) as d:
            for what, over in cases.items():
                with self.subTest(what=what):
                    d.write_config(over)
                    p = subprocess.run([TASKD, "-t", "-c", d.conf], capture_output=True,
                                       text=True, timeout=15, stdin=subprocess.DEVNULL)
                    out = p.stdout + p.stderr
                    self.assertNotEqual(p.returncode, 0, out)
                    self.assertRegex(out, re.escape(d.conf) + r":\d+: *\S")
                    self.assertIn("process_pool", out)

    def test_bad_pool_config_reload_refused(self):
        d = self.start_daemon(STATIC2)
        pids = self.wait_idle(d, 2)
        d.write_config({"process_pool.mode": "bogus"})
        r = d.request({"id": 1, "op": "reload"})
        self.assertError(r, "invalid_config")
        self.assertIn(d.conf + ":", r["error"]["message"])
        d.write_config({"process_pool.min_workers": 3, "process_pool.max_workers": 2})
        self.assertError(d.request({"id": 2, "op": "reload"}), "invalid_config")
        self.assertEqual(d.status()["process_pool"]["mode"], "static")
        self.assertEqual(self.wait_idle(d, 2), pids)


class PoolOrphanTest(PoolCase):
    def test_no_orphan_workers_after_sigkill(self):
        d = self.start_daemon(STATIC2)
        pids = self.wait_idle(d, 2)
        d.proc.kill()
        d.wait_exit(5)
        wait_for(lambda: all(pid_gone(p) for p in pids), 3,
                 what="workers %s to exit after the daemon's SIGKILL" % pids)

    def test_no_orphan_busy_worker_after_sigkill(self):
        d = self.start_daemon(STATIC2)
        pids = self.wait_idle(d, 2)
        jid = d.submit(["sleep", "30"], **CPU)
        j = d.wait_state(jid, "running")
        worker = j["worker"]
        self.assertIn(worker, pids)
        # (a running job's "pid" is null: find the command as the worker's child)
        job_pid = wait_for(lambda: children(worker), 5, what="the job's process")[0]
        d.proc.kill()
        d.wait_exit(5)
        wait_for(lambda: all(pid_gone(p) for p in pids), 3,
                 what="workers %s (busy: %d) to exit after the daemon's SIGKILL"
                 % (pids, worker))
        # The job's own process is not required to die with the daemon: report.
        time.sleep(0.5)
        if pid_gone(job_pid):
            sys.stderr.write("\n  note: the job process %d died with its worker\n" % job_pid)
        else:
            sys.stderr.write("\n  note: the job process %d (sleep 30) survived its worker "
                             "as an orphan (it is killed by the harness)\n" % job_pid)


class RouterTest(PoolCase):
    def test_auto_learns(self):
        d = self.start_daemon(STATIC2)
        self.wait_idle(d, 2)
        self.assertEqual(d.status()["router"], [])
        for _ in range(3):
            self.assertEqual(d.wait_job(d.submit(type="spin", argv=["0.2"], **AUTO),
                                        timeout=30)["state"], "done")
            self.assertEqual(d.wait_job(d.submit(type="sleep", argv=["0.1"], **AUTO),
                                        timeout=30)["state"], "done")
        table = {r["key"]: r for r in d.status()["router"]}
        spin, sleep = "builtin:spin", "builtin:sleep"
        self.assertIn(spin, table, table)
        self.assertIn(sleep, table, table)
        for r in table.values():
            for k in ("key", "samples", "cpu_ratio", "class", "peak_kb"):
                self.assertIn(k, r)
        self.assertEqual(table[spin]["samples"], 3)
        self.assertEqual(table[sleep]["samples"], 3)
        self.assertEqual(table[spin]["class"], "cpu", table)
        self.assertEqual(table[sleep]["class"], "io", table)
        self.assertGreaterEqual(table[spin]["cpu_ratio"], 0.5)
        self.assertLess(table[sleep]["cpu_ratio"], 0.5)
        j = d.wait_job(d.submit(type="spin", argv=["0.05"], **AUTO), timeout=30)
        self.assertEqual((j["class"], j["routed"], j["pool"]), ("auto", "cpu", "process"), j)
        j = d.wait_job(d.submit(type="sleep", argv=["0.05"], **AUTO), timeout=30)
        self.assertEqual((j["class"], j["routed"], j["pool"]), ("auto", "io", "thread"), j)

    def test_auto_exec_keys(self):
        d = self.start_daemon(STATIC2)
        self.wait_idle(d, 2)
        burn = ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]
        for _ in range(3):
            self.assertEqual(d.wait_job(d.submit(["/bin/sleep", "0.1"]))["state"], "done")
        table = {r["key"]: r for r in d.status()["router"]}
        self.assertIn("sleep", table, table)
        self.assertEqual(table["sleep"]["class"], "io")
        # a named job is keyed by its name
        for _ in range(3):
            self.assertEqual(d.wait_job(d.submit(burn, name="burner"), timeout=60)["state"],
                             "done")
        table = {r["key"]: r for r in d.status()["router"]}
        self.assertIn("name:burner", table, table)
        self.assertEqual(table["name:burner"]["class"], "cpu", table)
        # the script behind the name learned too, and the shell as its coarse key
        self.assertEqual(table["sh -c while ["]["class"], "cpu", table)
        self.assertIn("sh", table, table)
        j = d.wait_job(d.submit(["true"], name="burner"), timeout=30)
        self.assertEqual((j["routed"], j["pool"]), ("cpu", "process"), j)

    def test_forced_class_wins(self):
        d = self.start_daemon(STATIC2)
        self.wait_idle(d, 2)
        j = d.wait_job(d.submit(type="spin", argv=["0.05"], **IO))
        self.assertEqual((j["routed"], j["pool"]), ("io", "thread"), j)
        j = d.wait_job(d.submit(type="sleep", argv=["0.05"], **CPU))
        self.assertEqual((j["routed"], j["pool"]), ("cpu", "process"), j)

    def test_unknown_key_uses_default_class(self):
        for default, pool in (("io", "thread"), ("cpu", "process")):
            with self.subTest(default=default):
                d = self.start_daemon(dict(STATIC1, **{"router.default_class": default}))
                j = d.wait_job(d.submit(type="noop", **AUTO))
                self.assertEqual((j["routed"], j["pool"]), (default, pool), j)
                d.cleanup()


class QueueClassTest(PoolCase):
    def test_cpu_flood_does_not_hold_up_io(self):
        d = self.start_daemon(STATIC1)
        self.wait_idle(d, 1)
        jobs = ([dict(CPU, type="spin", argv=["0.5"]) for _ in range(3)]
                + [dict(IO, type="sleep", argv=["0.1"]) for _ in range(5)])
        ids = d.submit_batch(jobs)
        for i in ids:
            self.cancel_at_cleanup(i, d)
        spins, sleeps = ids[:3], ids[3:]
        q = wait_for(lambda: (lambda q: q if q["cpu"] > 0 else None)(d.status()["queue"]), 5,
                     interval=0.01, what="queue.cpu > 0")
        self.assertGreaterEqual(q["pending"], q["cpu"])
        io_done = [d.wait_job(i, timeout=30) for i in sleeps]
        spin_done = [d.wait_job(i, timeout=30) for i in spins]
        for j in io_done:
            self.assertEqual((j["state"], j["pool"]), ("done", "thread"), j)
        for j in spin_done:
            self.assertProcessJob(j)
        last_io = max(j["finished_at"] for j in io_done)
        second_spin = sorted(j["finished_at"] for j in spin_done)[1]
        self.assertLess(last_io, second_spin,
                        "io jobs were held up behind the cpu queue")
        # one worker: the spins ran one after another
        starts = sorted((j["started_at"], j["finished_at"]) for j in spin_done)
        for (s1, f1), (s2, _) in zip(starts, starts[1:]):
            self.assertGreaterEqual(s2, f1 - 0.01, "two cpu jobs ran at once on 1 worker")
        self.assertEqual(d.status()["queue"], {"pending": 0, "cpu": 0, "io": 0})

    def test_cpu_priority_within_class(self):
        d = self.start_daemon(STATIC1)
        self.wait_idle(d, 1)
        blocker = d.submit(type="spin", argv=["0.5"], **CPU)
        d.wait_state(blocker, "running")
        low = d.submit(type="noop", priority=10, **CPU)
        high = d.submit(type="noop", priority=-10, **CPU)
        jl, jh = d.wait_job(low), d.wait_job(high)
        self.assertLessEqual(jh["started_at"], jl["started_at"])


if __name__ == "__main__":
    main()
