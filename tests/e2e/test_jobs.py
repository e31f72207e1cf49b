"""Job execution semantics (doc/protocol.md, doc/routing.md)."""

import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, wait_for, pid_gone, main  # noqa: E402

IO = {"class": "io"}
DEFAULT_PATH = "PATH=/usr/local/bin:/usr/bin:/bin"


def sumsq(n):
    return (n - 1) * n * (2 * n - 1) // 6 if n > 0 else 0


class JobsTest(E2ETestCase):
    shared_daemon = True

    def run_job(self, argv=None, wait_timeout=30, **fields):
        jid = self.d.submit(argv, **fields)
        return self.d.wait_job(jid, timeout=wait_timeout)

    # -- exit status
    def test_exit_zero_is_done(self):
        j = self.run_job(["true"])
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["exit_code"], 0)
        self.assertIsNone(j["signal"])
        self.assertIsNone(j["error"])

    def test_exit_nonzero_is_failed(self):
        for code in (1, 2, 42, 255):
            with self.subTest(code=code):
                j = self.run_job(["sh", "-c", "exit %d" % code])
                self.assertEqual(j["state"], "failed")
                self.assertEqual(j["exit_code"], code)
                self.assertIsNone(j["signal"])

    def test_killed_by_signal(self):
        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1):
            with self.subTest(sig=sig.name):
                j = self.run_job(["sh", "-c", "kill -%d $$" % sig])
                self.assertEqual(j["state"], "failed")
                self.assertEqual(j["signal"], int(sig))
                self.assertIsNone(j["exit_code"])

    def test_command_not_found(self):
        j = self.run_job(["no-such-command-e2e-jobs"])
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 127)
        self.assertTrue(j["error"])
        j = self.run_job(["/nonexistent/dir/cmd"])
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 127)
        self.assertTrue(j["error"])

    def test_not_executable(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-noexec-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        path = os.path.join(tmp, "script")
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho hi\n")
        os.chmod(path, 0o644)
        j = self.run_job([path])
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 126)
        self.assertTrue(j["error"])
        j = self.run_job(["/tmp"])  # a directory
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 126)

    # -- timeout
    def test_timeout(self):
        t0 = time.monotonic()
        j = self.run_job(["sleep", "10"], wait_timeout=15, **IO, **{"timeout": 0.5})
        elapsed = time.monotonic() - t0
        self.assertEqual(j["state"], "timeout")
        self.assertLess(elapsed, 6)
        self.assertGreaterEqual(j["wall"], 0.4)
        self.assertLess(j["wall"], 5)
        p = self.d.ctl("wait", j["id"])
        self.assertEqual(p.returncode, 124, p.stderr)

    def test_timeout_term_ignored_gets_kill_after_grace(self):
        # kill_grace is 1 s in this daemon
        j = self.run_job(["sh", "-c", "trap '' TERM; sleep 30"], wait_timeout=20, **IO,
                         **{"timeout": 0.3})
        self.assertEqual(j["state"], "timeout")
        self.assertGreaterEqual(j["wall"], 0.3 + 0.8, "SIGKILL came before kill_grace")
        self.assertLess(j["wall"], 8)

    def test_finishes_before_timeout(self):
        j = self.run_job(["sh", "-c", "exit 0"], **{"timeout": 10})
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["exit_code"], 0)

    def test_builtin_timeout(self):
        j = self.run_job(type="sleep", argv=["10"], wait_timeout=15, **IO, **{"timeout": 0.3})
        self.assertEqual(j["state"], "timeout")
        self.assertLess(j["wall"], 5)

    # -- cancel of a running job (queued: see SingleThreadTest)
    def test_cancel_running(self):
        jid = self.d.submit(["sleep", "30"], **IO)
        self.cancel_at_cleanup(jid)
        self.d.wait_state(jid, "running")
        r = self.d.cancel(jid)
        self.assertEqual(r["id"], jid)
        self.assertEqual(r["state"], "running")
        self.assertIs(r["cancelling"], True)
        t0 = time.monotonic()
        j = self.d.wait_job(jid, timeout=15)
        self.assertLess(time.monotonic() - t0, 6)
        self.assertEqual(j["state"], "cancelled")
        r = self.d.request({"id": 1, "op": "cancel", "job": jid})
        self.assertError(r, "invalid_state")

    def test_cancel_term_ignored(self):
        jid = self.d.submit(["sh", "-c", "trap '' TERM; echo $$; sleep 30"], **IO)
        self.cancel_at_cleanup(jid)
        pid = int(self.d.wait_output(jid, lambda b: b.endswith(b"\n")))
        t0 = time.monotonic()
        self.d.cancel(jid)
        j = self.d.wait_job(jid, timeout=15)
        dt = time.monotonic() - t0
        self.assertEqual(j["state"], "cancelled")
        self.assertGreaterEqual(dt, 0.8, "SIGKILL came before kill_grace (1 s)")
        self.assertLess(dt, 8)
        wait_for(lambda: pid_gone(pid), 5, what="job process to be gone")

    def test_cancel_builtin_sleep(self):
        jid = self.d.submit(type="sleep", argv=["30"], **IO)
        self.cancel_at_cleanup(jid)
        self.d.wait_state(jid, "running")
        self.d.cancel(jid)
        t0 = time.monotonic()
        j = self.d.wait_job(jid, timeout=15)
        self.assertLess(time.monotonic() - t0, 6)
        self.assertEqual(j["state"], "cancelled")

    def test_cancel_kills_background_children(self):
        jid = self.d.submit(["sh", "-c", "sleep 30 & echo $!; wait"], **IO)
        self.cancel_at_cleanup(jid)
        out = self.d.wait_output(jid, lambda b: b.endswith(b"\n"))
        child = int(out)
        self.d.cancel(jid)
        j = self.d.wait_job(jid, timeout=15)
        self.assertEqual(j["state"], "cancelled")
        wait_for(lambda: pid_gone(child), 5, what="background child %d to be gone" % child)

    def test_cancel_with_escaped_child_holding_output(self):
        # The child leaves the process group (setsid) and keeps stdout open:
        # the job must still finish when cancelled.
        jid = self.d.submit(["sh", "-c", "setsid sleep 30 & echo $!; wait"], **IO)
        self.cancel_at_cleanup(jid)
        out = self.d.wait_output(jid, lambda b: b.endswith(b"\n"))
        child = int(out)
        def kill_child():
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        self.addCleanup(kill_child)
        self.d.cancel(jid)
        j = self.d.wait_job(jid, timeout=15)
        self.assertEqual(j["state"], "cancelled")
        self.assertLess(j["wall"], 10)
        self.assertDaemonServes()

    # -- output
    def test_output_1mb_text_exact(self):
        expected = "".join("%d\n" % i for i in range(1, 200001)).encode()
        self.assertGreater(len(expected), 1 << 20)
        j = self.run_job(["seq", "1", "200000"])
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["stdout_bytes"], len(expected))
        self.assertIs(j["stdout_truncated"], False)
        got = self.d.read_output(j["id"])
        self.assertEqual(len(got), len(expected))
        self.assertTrue(got == expected, "1 MB of output differs")

    def test_output_1mb_binary_exact(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-bin-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "blob")
        blob = random.Random(7).randbytes(1 << 20)
        with open(path, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o755)
        os.chmod(path, 0o644)
        j = self.run_job(["sh", "-c", 'cat "$1"; cat "$1" >&2', "sh", path])
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["stdout_bytes"], len(blob))
        self.assertTrue(self.d.read_output(j["id"]) == blob, "binary stdout differs")
        self.assertTrue(self.d.read_output(j["id"], "stderr") == blob, "binary stderr differs")

    def test_stdin_is_dev_null(self):
        j = self.run_job(["sh", "-c", "readlink /proc/$$/fd/0; cat; echo rc=$?"], wait_timeout=15)
        self.assertEqual(j["state"], "done")
        self.assertEqual(self.d.read_output(j["id"]), b"/dev/null\nrc=0\n")

    def test_no_leaked_fds(self):
        # only 0, 1, 2 (and the fd ls itself opens for /proc/self/fd)
        j = self.run_job(["sh", "-c", "ls /proc/$$/fd"])
        fds = sorted(int(x) for x in self.d.read_output(j["id"]).split())
        self.assertEqual(fds[:3], [0, 1, 2])
        self.assertLessEqual(len(fds), 4, "job inherited daemon fds: %r" % fds)

    # -- cwd and env
    def test_cwd(self):
        j = self.run_job(["pwd"], cwd="/tmp")
        self.assertEqual(self.d.read_output(j["id"]), b"/tmp\n")
        self.assertEqual(j["cwd"], "/tmp")
        j = self.run_job(["pwd"])
        self.assertEqual(self.d.read_output(j["id"]), b"/\n", "default cwd is /")

    def test_env_default(self):
        j = self.run_job(["/usr/bin/env"])
        self.assertEqual(self.d.read_output(j["id"]).decode(), DEFAULT_PATH + "\n")

    def test_env_given(self):
        env = {"FOO": "bar", "PATH": "/usr/bin:/bin", "SPACES": "a b  c", "EMPTY": "",
               "UNI": "\u00e9t\u00e9"}
        j = self.run_job(["/usr/bin/env"], env=env)
        lines = sorted(self.d.read_output(j["id"]).decode().splitlines())
        self.assertEqual(lines, sorted("%s=%s" % kv for kv in env.items()))

    def test_env_path_used_for_lookup(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-path-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        with open(os.path.join(tmp, "e2e-hello"), "w") as f:
            f.write("#!/bin/sh\necho from-path\n")
        os.chmod(os.path.join(tmp, "e2e-hello"), 0o755)
        j = self.run_job(["e2e-hello"], env={"PATH": tmp + ":/usr/bin:/bin"})
        self.assertEqual(j["state"], "done")
        self.assertEqual(self.d.read_output(j["id"]), b"from-path\n")

    # -- built-ins
    def test_builtin_noop(self):
        j = self.run_job(type="noop")
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["type"], "noop")

    def test_builtin_sleep(self):
        j = self.run_job(type="sleep", argv=["0.3"], **IO)
        self.assertEqual(j["state"], "done")
        self.assertGreaterEqual(j["wall"], 0.25)
        self.assertLess(j["cpu_user"] + j["cpu_sys"], 0.2)

    def test_builtin_spin(self):
        j = self.run_job(type="spin", argv=["0.3"])
        self.assertEqual(j["state"], "done")
        self.assertGreaterEqual(j["cpu_user"] + j["cpu_sys"], 0.25)
        self.assertGreaterEqual(j["wall"], 0.25)

    def test_builtin_sumsq(self):
        for n in (0, 1, 10, 1000, 100000000):
            with self.subTest(n=n):
                j = self.run_job(type="sumsq", argv=[str(n)], wait_timeout=60)
                self.assertEqual(j["state"], "done")
                self.assertEqual(j["result"], str(sumsq(n)))

    def test_builtin_count(self):
        j = self.run_job(type="count", argv=["100000"])
        self.assertEqual(j["state"], "done")
        if j["result"] is not None:
            self.assertEqual(j["result"], "100000")

    # -- result fields
    def test_resource_fields(self):
        before = time.time()
        j = self.run_job(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
        after = time.time()
        self.assertEqual(j["state"], "done")
        self.assertGreater(j["max_rss_kb"], 0)
        self.assertGreater(j["wall"], 0)
        self.assertGreater(j["cpu_user"] + j["cpu_sys"], 0)
        for k in ("submitted_at", "started_at", "finished_at"):
            self.assertIsInstance(j[k], (int, float), k)
            self.assertGreaterEqual(j[k], before - 1, k)
            self.assertLessEqual(j[k], after + 1, k)
        self.assertLessEqual(j["submitted_at"], j["started_at"])
        self.assertLessEqual(j["started_at"], j["finished_at"])
        self.assertAlmostEqual(j["wall"], j["finished_at"] - j["started_at"], delta=0.5)
        self.assertIn(j["routed"], ("cpu", "io"))
        self.assertEqual(j["pool"], {"cpu": "process", "io": "thread"}[j["routed"]])
        self.assertIsNotNone(j["worker"])
        self.assertEqual(j["owner"], {"uid": os.getuid(), "gid": os.getgid()})

    def test_running_job_fields(self):
        jid = self.d.submit(["sleep", "30"], **IO)
        self.cancel_at_cleanup(jid)
        j = self.d.wait_state(jid, "running")
        self.assertIsNone(j["finished_at"])
        self.assertIsNone(j["exit_code"])
        self.assertIsNotNone(j["started_at"])

    def test_routing_explicit_class(self):
        j = self.run_job(type="spin", argv=["0.05"], **{"class": "cpu"})
        self.assertEqual((j["class"], j["routed"], j["pool"]), ("cpu", "cpu", "process"))
        j = self.run_job(type="spin", argv=["0.05"], **{"class": "io"})
        self.assertEqual((j["class"], j["routed"], j["pool"]), ("io", "io", "thread"))

    # -- many jobs
    def test_batch_200_all_done(self):
        jobs = [{"argv": ["true"]} if i % 2 else {"type": "noop"} for i in range(200)]
        ids = self.d.submit_batch(jobs)
        self.assertEqual(len(ids), 200)
        self.assertEqual(ids, sorted(ids))
        with self.d.connect(timeout=60) as c:
            c.send_raw(b"".join(json.dumps({"id": i, "op": "wait", "job": i}).encode() + b"\n"
                                for i in ids))
            got = {}
            for _ in ids:
                r = c.recv(timeout=60)
                got[r["id"]] = r
        self.assertEqual(set(got), set(ids))
        bad = {i: r for i, r in got.items() if not r.get("ok") or r["result"]["state"] != "done"}
        self.assertEqual(bad, {})
        st = self.d.status()
        self.assertEqual(st["jobs"]["queued"], 0)
        # list without a limit: the 100 most recent, in id order
        listed = [j["id"] for j in self.d.ok({"id": 1, "op": "list"})["jobs"]]
        self.assertEqual(listed, ids[-100:])


class SingleThreadTest(E2ETestCase):
    """One pool thread: queued jobs stay queued while a blocker runs."""
    shared_daemon = True
    shared_overrides = {"thread_pool.min_threads": 1, "thread_pool.max_threads": 1}

    def blocker(self):
        jid = self.d.submit(["sleep", "30"], **IO)
        def cancel():
            try:
                if self.d.alive():
                    self.d.request({"id": "c", "op": "cancel", "job": jid}, timeout=5)
            except Exception:
                pass
        self.addCleanup(cancel)
        self.d.wait_state(jid, "running")
        return jid

    def test_cancel_queued(self):
        b = self.blocker()
        jid = self.d.submit(["true"], **IO)
        self.assertEqual(self.d.show(jid)["state"], "queued")
        r = self.d.cancel(jid)
        self.assertEqual(r["id"], jid)
        self.assertEqual(r["state"], "cancelled", "a queued job is cancelled at once")
        j = self.d.show(jid)
        self.assertEqual(j["state"], "cancelled")
        self.assertIsNone(j["started_at"])
        self.assertEqual(self.d.wait_job(jid)["state"], "cancelled")
        self.assertError(self.d.request({"id": 1, "op": "cancel", "job": jid}), "invalid_state")
        p = self.d.ctl("wait", jid)
        self.assertEqual(p.returncode, 1)
        self.d.cancel(b)
        self.assertEqual(self.d.wait_job(b, timeout=15)["state"], "cancelled")

    def test_priority_order(self):
        b = self.blocker()
        prios = [5, -5, 0, -5, 5]
        ids = self.d.submit_batch([{"argv": ["sleep", "0.05"], "class": "io", "priority": p}
                                   for p in prios])
        for i in ids:
            self.assertEqual(self.d.show(i)["state"], "queued")
        self.d.cancel(b)
        jobs = [self.d.wait_job(i, timeout=20) for i in ids]
        self.assertTrue(all(j["state"] == "done" for j in jobs), jobs)
        order = [j["id"] for j in sorted(jobs, key=lambda j: j["started_at"])]
        expected = [ids[1], ids[3], ids[2], ids[0], ids[4]]
        self.assertEqual(order, expected, "start order by priority, FIFO within one")

    def test_priority_order_many(self):
        b = self.blocker()
        rnd = random.Random(11)
        prios = [rnd.randint(-20, 19) for _ in range(20)] + [-20, 19, 0, 0]
        ids = self.d.submit_batch([{"argv": ["true"], "class": "io", "priority": p}
                                   for p in prios])
        self.d.cancel(b)
        jobs = [self.d.wait_job(i, timeout=30) for i in ids]
        order = [j["id"] for j in sorted(jobs, key=lambda j: (j["started_at"], j["id"]))]
        expected = [i for _, i in sorted(zip(prios, ids))]
        self.assertEqual(order, expected)

    def test_status_counts_queue(self):
        b = self.blocker()
        ids = self.d.submit_batch([{"argv": ["true"], "class": "io"} for _ in range(3)])
        st = self.d.status()
        self.assertGreaterEqual(st["jobs"]["queued"], 3)
        self.assertGreaterEqual(st["jobs"]["running"], 1)
        self.assertEqual(st["thread_pool"]["max"], 1)
        wait_for(lambda: self.d.status()["thread_pool"]["busy"] == 1, 5,
                 what="thread_pool.busy == 1 while the blocker runs")
        self.d.cancel(b)
        for i in ids:
            self.d.wait_job(i)


class KeepFinishedTest(E2ETestCase):
    def test_keep_finished_prunes(self):
        d = self.start_daemon({"jobs.keep_finished": 5})
        ids = []
        for _ in range(10):
            jid = d.submit(["true"])
            d.wait_job(jid)
            ids.append(jid)

        def pruned():
            fin = [j for j in d.list_jobs() if j["state"] not in ("queued", "running")]
            return fin if len(fin) <= 5 else None
        fin = wait_for(pruned, 5, what="finished jobs pruned to keep_finished=5")
        self.assertEqual([j["id"] for j in fin], ids[-len(fin):], "the newest are kept")
        self.assertIn(ids[-1], [j["id"] for j in fin])
        r = d.request({"id": 1, "op": "show", "job": ids[0]})
        self.assertError(r, "not_found")
        p = d.ctl("show", ids[0])
        self.assertEqual(p.returncode, 4)
        # ids are never reused
        self.assertGreater(d.submit(["true"]), ids[-1])


class DefaultTimeoutTest(E2ETestCase):
    def test_default_timeout(self):
        d = self.start_daemon({"jobs.default_timeout": 0.5})
        jid = d.submit(["sleep", "10"], **IO)
        j = d.wait_job(jid, timeout=15)
        self.assertEqual(j["state"], "timeout")
        jid = d.submit(["sleep", "1"], **IO, **{"timeout": 0})
        self.assertEqual(d.wait_job(jid, timeout=15)["state"], "done", "timeout 0 = none")


class QueueLimitTest(E2ETestCase):
    def test_queue_full(self):
        d = self.start_daemon({"thread_pool.min_threads": 1, "thread_pool.max_threads": 1,
                               "queue.max_pending": 3})
        b = d.submit(["sleep", "30"], **IO)
        d.wait_state(b, "running")
        ids = [d.submit(["true"], **IO) for _ in range(3)]
        before = [j["id"] for j in d.list_jobs()]
        r = d.request({"id": 1, "op": "submit", "argv": ["true"], "class": "io"})
        self.assertError(r, "queue_full")
        p = d.ctl("submit", "--", "true")
        self.assertEqual(p.returncode, 4, p.stderr)
        d.cancel(ids[0])
        # one slot free: a batch of two does not fit, and queues nothing
        r = d.request({"id": 2, "op": "submit", "jobs": [{"argv": ["true"]}, {"argv": ["true"]}]})
        self.assertError(r, "queue_full")
        self.assertEqual([j["id"] for j in d.list_jobs()], before)
        ids.append(d.submit(["true"], **IO))
        d.cancel(b)
        for i in ids[1:]:
            self.assertEqual(d.wait_job(i)["state"], "done")

    def test_queue_full_per_user(self):
        d = self.start_daemon({"thread_pool.min_threads": 1, "thread_pool.max_threads": 1,
                               "queue.max_pending": 100, "queue.max_pending_per_user": 2})
        b = d.submit(["sleep", "30"], **IO)
        d.wait_state(b, "running")
        ids = [d.submit(["true"], **IO) for _ in range(2)]
        r = d.request({"id": 1, "op": "submit", "argv": ["true"], "class": "io"})
        self.assertError(r, "queue_full")
        self.assertIn("max_pending_per_user", r["error"]["message"])
        d.cancel(ids[0])  # a cancelled job no longer counts
        ids.append(d.submit(["true"], **IO))
        d.cancel(b)
        for i in ids[1:]:
            self.assertEqual(d.wait_job(i)["state"], "done")


class RouterTest(E2ETestCase):
    def test_router_learns(self):
        d = self.start_daemon({"router.default_class": "io", "router.cpu_ratio": 0.5})
        first = d.wait_job(d.submit(type="spin", argv=["0.2"]))
        self.assertEqual(first["routed"], "io", "unknown kind → default_class")
        for _ in range(2):
            d.wait_job(d.submit(type="spin", argv=["0.2"]))
        for _ in range(3):
            d.wait_job(d.submit(type="sleep", argv=["0.1"]))
        table = {e["key"]: e for e in d.status()["router"]}
        spin, sleep = "builtin:spin", "builtin:sleep"
        self.assertIn(spin, table)
        self.assertGreaterEqual(table[spin]["samples"], 3)
        self.assertGreaterEqual(table[spin]["cpu_ratio"], 0.5)
        self.assertEqual(table[spin]["class"], "cpu")
        self.assertIn(sleep, table)
        self.assertLess(table[sleep]["cpu_ratio"], 0.5)
        self.assertEqual(table[sleep]["class"], "io")
        j = d.wait_job(d.submit(type="spin", argv=["0.05"]))
        self.assertEqual((j["class"], j["routed"]), ("auto", "cpu"))
        j = d.wait_job(d.submit(type="sleep", argv=["0.05"]))
        self.assertEqual((j["class"], j["routed"]), ("auto", "io"))


if __name__ == "__main__":
    main()
