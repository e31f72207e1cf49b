"""Handlers (issue 14): job types served by warm worker programs, against a real taskd.

The Python worker is tests/e2e/handler_worker.py (on python/taskd_worker.py),
the C worker build/taskd-echo (examples/echo.c on libtaskd-worker). Every
wait is polled with a bound; nothing relies on a fixed sleep being long enough.
"""

import base64
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, TASKD, TASKCTL, wait_for, pid_gone, main  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "handler_worker.py")
ECHO = os.path.join(os.path.dirname(TASKD), "taskd-echo")
ROOT = os.geteuid() == 0
ME = "root" if ROOT else pwd.getpwuid(os.geteuid()).pw_name


def py(name, **kw):
    """A handler running handler_worker.py; kw: more keys (env as a dict)."""
    h = {"name": name, "command": ["/usr/bin/python3", WORKER], "user": ME,
         "start_timeout": 10, "idle_timeout": 30}
    env = kw.pop("env", {})
    h.update(kw)
    if env:
        h["env"] = ["%s=%s" % kv for kv in env.items()]
    return h


FAST = {"jobs.kill_grace": 0.3}


class HandlerCase(E2ETestCase):
    def daemon(self, handlers, overrides=None):
        o = dict(FAST)
        o.update(overrides or {})
        o["handlers"] = handlers
        return self.start_daemon(o)

    def handler(self, d, name):
        for h in d.status()["handlers"]:
            if h["name"] == name:
                return h
        return None

    def ready_workers(self, d, name, n=1):
        return wait_for(lambda: len([w for w in self.handler(d, name)["workers"]
                                     if w["state"] in ("idle", "busy")]) >= n,
                        what="%d ready workers of %s" % (n, name))

    def run_job(self, d, name, *args, **fields):
        return d.wait_job(d.submit(list(args), type=name, **fields))


class Basics(HandlerCase):
    def test_metrics_per_handler(self):
        d = self.daemon([py("py")])
        self.run_job(d, "py", "echo", "x")
        self.run_job(d, "py", "fail", "no")
        text = d.ctl("metrics").stdout
        def sample(name, **labels):
            want = ",".join('%s="%s"' % kv for kv in labels.items())
            m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
            return float(m.group(1)) if m else None
        self.assertEqual(sample("taskd_handler_jobs_total", handler="py", state="done"), 1)
        self.assertEqual(sample("taskd_handler_jobs_total", handler="py", state="failed"), 1)
        self.assertGreaterEqual(sample("taskd_handler_worker_starts_total", handler="py"), 1)
        self.assertEqual(sample("taskd_handler_queued", handler="py"), 0)
        self.assertGreaterEqual(sample("taskd_handler_workers", handler="py", state="idle"), 1)
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_python_result_input_and_show(self):
        d = self.daemon([py("py")])
        p = d.ctl("submit", "--wait", "--type", "py", "--input", "-", "--", "echo", "a b",
                  input="héllo")
        self.assertRc(p, 0, p.stderr)
        out = p.stdout.strip()
        self.assertEqual(out.count("\n"), 0, "one line of JSON")
        res = __import__("json").loads(out)
        self.assertEqual(res["args"], ["a b"])
        self.assertEqual(res["input"], "héllo")
        # A string result prints as plain text; show has the result, the worker, timings.
        p = d.ctl("submit", "--wait", "--type", "py", "--", "text", "plain", "words")
        self.assertRc(p, 0, p.stderr)
        self.assertEqual(p.stdout, "plain words\n")
        jid = d.submit(["echo"], type="py")
        j = d.wait_job(jid)
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["type"], "py")
        self.assertEqual(j["pool"], "handler")
        self.assertEqual(j["worker"], j["result"]["pid"])
        self.assertIsNotNone(j["wall"])
        self.assertIsNotNone(j["cpu_user"])
        p = d.ctl("wait", str(jid))
        self.assertRc(p, 0)
        self.assertIn('"pid":%d' % j["worker"], p.stdout)
        p = d.ctl("show", str(jid))
        self.assertIn("handler", p.stdout)

    def test_handler_error_exits_1(self):
        d = self.daemon([py("py")])
        p = d.ctl("submit", "--wait", "--type", "py", "--", "fail", "no", "such", "image")
        self.assertRc(p, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("no such image", p.stderr)
        jid = d.submit(["fail", "bad"], type="py")
        j = d.wait_job(jid)
        self.assertEqual((j["state"], j["error"], j["exit_code"]), ("failed", "bad", 1))
        p = d.ctl("wait", str(jid))
        self.assertRc(p, 1)
        self.assertIn("bad", p.stderr)

    def test_unknown_type_names_known_ones(self):
        d = self.daemon([py("thumb")])
        r = d.request({"op": "submit", "type": "thumbs", "argv": []})
        self.assertError(r, "bad_request")
        msg = r["error"]["message"]
        self.assertIn("'thumbs'", msg)
        for t in ("exec", "noop", "sleep", "thumb"):
            self.assertIn(t, msg)
        # the built-in types take no input; it must be base64
        self.assertError(d.request({"op": "submit", "type": "noop", "input": "aGk="}),
                         "bad_request")
        self.assertError(d.request({"op": "submit", "type": "thumb", "input": "not base64!"}),
                         "bad_request")

    def test_c_handler_pipelined(self):
        d = self.daemon([{"name": "echo", "command": [ECHO], "user": ME, "class": "io",
                          "concurrency": 16, "max_workers": 2}])
        n = 300
        r = d.ok({"op": "submit", "jobs": [{"type": "echo", "argv": ["n", str(i)]}
                                           for i in range(n)]})
        ids = r["ids"]
        c = d.connect()
        for i, jid in enumerate(ids):
            c.send({"id": i, "op": "wait", "job": jid})
        for i in range(n):
            resp = c.recv_id(i)
            self.assertTrue(resp["ok"], resp)
            self.assertEqual(resp["result"]["state"], "done")
            self.assertEqual(resp["result"]["result"], "n %d" % i)
        c.close()
        p = d.ctl("submit", "--wait", "--type", "echo", "--input", "-", input="from stdin")
        self.assertRc(p, 0, p.stderr)
        self.assertEqual(p.stdout, "from stdin\n")
        h = self.handler(d, "echo")
        self.assertLessEqual(len(h["workers"]), 2)
        self.assertEqual(h["counters"]["done"], n + 1)

    def test_doc_example_worker(self):
        """The worker without a library in doc/handlers.md works as written."""
        with open(os.path.join(HERE, "..", "..", "doc", "handlers.md")) as f:
            text = f.read()
        code = text.split("### A worker in any language")[1].split("```python\n")[1]
        code = code.split("```")[0]
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-doc-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "raw_worker.py")
        with open(path, "w") as f:
            f.write(code)
        os.chmod(tmp, 0o755)
        d = self.daemon([{"name": "raw", "command": ["/usr/bin/python3", path], "user": ME}])
        j = self.run_job(d, "raw", "a", "b", input=base64.b64encode(b"hello").decode())
        self.assertEqual(j["state"], "done", j)
        self.assertEqual(j["result"], {"bytes": 5, "args": ["a", "b"]})

    def test_stdout_stderr_routing(self):
        d = self.daemon([py("py")])
        # The start banner is written while no job runs: to the daemon's log, named.
        self.ready_workers(d, "py")
        wait_for(lambda: re.search(r"handler py\[\d+\] stderr: worker \d+ starting",
                                   d.log_text()), what="the banner in the log")
        j = d.wait_job(d.submit(["print", "hi", "there"], type="py"))
        self.assertEqual(j["state"], "done")
        self.assertEqual(d.read_output(j["id"], "stdout"), b"to stdout: hi there\n")
        self.assertEqual(d.read_output(j["id"], "stderr"), b"to stderr: hi there\n")
        self.assertEqual(j["stdout_bytes"], len("to stdout: hi there\n"))
        p = d.ctl("submit", "--wait", "--type", "py", "--", "print", "x")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "to stdout: x\nprinted\n")
        self.assertEqual(p.stderr, "to stderr: x\n")


class Failures(HandlerCase):
    def test_crash_is_lost_retried_and_replaced(self):
        d = self.daemon([py("py")])
        self.ready_workers(d, "py")
        first = self.handler(d, "py")["workers"][0]["pid"]
        j = d.wait_job(d.submit(["crash"], type="py", retries=1, retry_delay=0))
        self.assertEqual(j["state"], "lost")
        self.assertIn("exited with status 3", j["error"])
        self.assertEqual(len(j["attempts"]), 1)
        self.assertEqual(j["attempts"][0]["state"], "lost")
        self.assertTrue(pid_gone(first))
        j = self.run_job(d, "py", "echo")
        self.assertEqual(j["state"], "done")
        h = self.handler(d, "py")
        self.assertEqual(h["counters"]["crashes"], 2)
        self.assertEqual(h["counters"]["lost"], 2)
        self.assertIn("exited with status 3", h["last_error"])
        self.assertTrue(d.alive())

    def test_garbage_kills_the_worker(self):
        d = self.daemon([py("py")])
        j = self.run_job(d, "py", "garbage")
        self.assertEqual(j["state"], "lost")
        self.assertIn("protocol error", j["error"])
        self.assertRegex(d.log_text(), r"handler py: killing worker \d+: protocol error: not JSON")
        self.assertEqual(self.run_job(d, "py", "echo")["state"], "done")

    def test_hang_past_timeout(self):
        d = self.daemon([py("py", env={"TEST_IGNORE_TERM": "1"})])
        t0 = time.monotonic()
        j = d.wait_job(d.submit(["hang", "60"], type="py", timeout=0.5))
        self.assertEqual(j["state"], "timeout")
        # cancel at 0.5 s, SIGTERM (ignored) after kill_grace, SIGKILL one more grace later
        self.assertLess(time.monotonic() - t0, 10)
        self.assertTrue(pid_gone(j["worker"]))
        self.assertEqual(self.run_job(d, "py", "echo")["state"], "done")
        h = self.handler(d, "py")
        self.assertEqual(h["counters"]["timeout"], 1)

    def test_cancel_keeps_a_cooperative_worker(self):
        d = self.daemon([py("py")])
        jid = d.submit(["sleep", "60"], type="py")
        d.wait_state(jid, ["running"])
        r = d.ok({"op": "cancel", "job": jid})
        self.assertTrue(r["cancelling"])
        j = d.wait_job(jid)
        self.assertEqual(j["state"], "cancelled")
        # It answered the cancel: the same worker takes the next job.
        self.assertEqual(self.run_job(d, "py", "echo")["worker"], j["worker"])
        # A job that ends itself within its timeout is not touched.
        self.assertEqual(self.run_job(d, "py", "sleep", "0.05", timeout=5)["state"], "done")

    def test_timeout_default_of_the_handler(self):
        d = self.daemon([py("py", timeout=0.3)])
        j = self.run_job(d, "py", "sleep", "30")
        self.assertEqual(j["state"], "timeout")
        self.assertEqual(j["timeout"], 0.3)
        self.assertEqual(self.run_job(d, "py", "sleep", "0.5", timeout=5)["state"], "done")

    def test_huge_result_fails_the_job_only(self):
        d = self.daemon([py("py")], {"limits.max_frame": "64K"})
        j = self.run_job(d, "py", "big", str(200 * 1024))
        self.assertEqual(j["state"], "failed")
        self.assertIn("result too large", j["error"])
        self.assertIn("limits.max_frame", j["error"])
        j2 = self.run_job(d, "py", "big", "1000")
        self.assertEqual(j2["state"], "done")
        self.assertEqual(j2["worker"], j["worker"])

    def test_bad_starts_back_off_and_jobs_wait(self):
        d = self.daemon([py("bye", env={"TEST_MODE": "exit_at_hello"}),
                         py("mute", env={"TEST_MODE": "no_hello"}, start_timeout=0.5),
                         py("v9", env={"TEST_MODE": "bad_hello"}),
                         py("slow", env={"TEST_MODE": "slow_start"})])
        ids = {n: d.submit(["echo"], type=n) for n in ("bye", "mute", "v9", "slow")}
        self.assertEqual(d.wait_job(ids["slow"])["state"], "done")
        h = wait_for(lambda: (lambda h: h if h["counters"]["start_failures"] >= 2 else None)(
            self.handler(d, "bye")), what="two failed starts of bye")
        self.assertRegex(h["last_error"], r"exited with status 1 before hello: cannot start: no database")
        self.assertGreater(h["failures"], 0)
        h = wait_for(lambda: (lambda h: h if h["last_error"] else None)(self.handler(d, "mute")),
                     what="mute's hello timeout")
        self.assertIn("no hello within start_timeout", h["last_error"])
        h = wait_for(lambda: (lambda h: h if h["last_error"] else None)(self.handler(d, "v9")),
                     what="v9's bad hello")
        self.assertIn("speaks protocol 9", h["last_error"])
        for n in ("bye", "mute", "v9"):
            self.assertEqual(d.show(ids[n])["state"], "queued")
        self.assertRegex(d.log_text(), r"handler bye: worker \d+ exited with status 1 before hello")
        p = d.ctl("status")
        self.assertRc(p, 0)
        self.assertIn("cannot start: no database", p.stdout)
        self.assertTrue(d.alive())


class Vanished(HandlerCase):
    def test_command_disappears_later(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-gone-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        exe = os.path.join(tmp, "echo-copy")
        shutil.copy(ECHO, exe)
        d = self.daemon([{"name": "e", "command": [exe], "user": ME}])
        self.assertEqual(self.run_job(d, "e", "hi")["state"], "done")
        pid = self.handler(d, "e")["workers"][0]["pid"]
        os.unlink(exe)
        os.kill(pid, signal.SIGKILL)
        h = wait_for(lambda: (lambda h: h if h["last_error"] and "cannot execute" in
                              h["last_error"] else None)(self.handler(d, "e")),
                     what="a failed start of the vanished command")
        self.assertIn("No such file or directory", h["last_error"])
        jid = d.submit(["x"], type="e")
        self.assertEqual(d.show(jid)["state"], "queued")
        p = d.ctl("status")
        self.assertIn("cannot execute", p.stdout)
        # Back in place: the next start (after its backoff) serves the waiting job.
        shutil.copy(ECHO, exe)
        self.assertEqual(d.wait_job(jid)["state"], "done")


class Sizing(HandlerCase):
    def test_recycle_by_jobs(self):
        d = self.daemon([py("py", max_jobs_per_worker=3)])
        pids = [self.run_job(d, "py", "echo")["worker"] for _ in range(4)]
        self.assertEqual(len(set(pids[:3])), 1)
        self.assertNotEqual(pids[3], pids[0])
        self.assertEqual(self.handler(d, "py")["counters"]["recycled"], 1)

    def test_recycle_by_rss(self):
        d = self.daemon([py("py", max_worker_rss="60M")])
        a = self.run_job(d, "py", "leak", "80")
        self.assertEqual(a["state"], "done")
        self.assertGreater(a["max_rss_kb"], 60 * 1024)
        b = self.run_job(d, "py", "echo")
        self.assertNotEqual(b["worker"], a["worker"])
        self.assertTrue(wait_for(lambda: pid_gone(a["worker"]), what="the big worker gone"))

    def test_idle_timeout_shrinks_to_min(self):
        d = self.daemon([py("py", min_workers=0, max_workers=3, idle_timeout=0.5, **{"class": "io"})])
        ids = [d.submit(["sleep", "0.5"], type="py") for _ in range(3)]
        pids = {d.wait_job(i)["worker"] for i in ids}
        self.assertEqual(len(pids), 3, "three workers for three jobs at once")
        wait_for(lambda: self.handler(d, "py")["workers"] == [], timeout=10,
                 what="idle workers retired")
        for pid in pids:
            self.assertTrue(wait_for(lambda: pid_gone(pid), what="worker gone"))

    def test_io_jobs_share_a_worker(self):
        d = self.daemon([py("py", min_workers=1, max_workers=4, concurrency=8, **{"class": "io"},
                            env={"TEST_CONCURRENCY": "8"})])
        self.ready_workers(d, "py")
        ids = [d.submit(["sleep", "0.3"], type="py") for _ in range(6)]
        jobs = [d.wait_job(i) for i in ids]
        self.assertEqual(len({j["worker"] for j in jobs}), 1)
        self.assertTrue(all(j["routed"] == "io" for j in jobs))

    def test_cpu_jobs_share_the_cpu_budget(self):
        # One cpu slot (the process pool's size): cpu handler jobs run one at a time.
        d = self.daemon([py("py", min_workers=2, max_workers=2, **{"class": "cpu"})],
                        {"process_pool.max_workers": 1, "process_pool.min_workers": 1})
        self.ready_workers(d, "py", 2)
        a, b = (d.submit(["sleep", "0.4"], type="py") for _ in range(2))
        ja, jb = d.wait_job(a), d.wait_job(b)
        first, second = sorted((ja, jb), key=lambda j: j["started_at"])
        self.assertGreaterEqual(second["started_at"], first["finished_at"] - 0.01)
        # --class against the handler's fixed class is refused.
        self.assertError(d.request({"op": "submit", "type": "py", "class": "io"}), "bad_request")


class Reload(HandlerCase):
    def test_add_change_remove(self):
        d = self.daemon([py("a", max_workers=1, **{"class": "io"}),
                         py("b", env={"GREETING": "hi"})])
        before = self.run_job(d, "b", "whoami")
        self.assertEqual(before["result"]["env"], "hi")
        # a: one worker, busy; two more jobs of a wait in its queue.
        busy = d.submit(["sleep", "1"], type="a")
        d.wait_state(busy, ["running"])
        queued = [d.submit(["echo"], type="a") for _ in range(2)]
        # Reload: a removed, b changed, c added.
        o = dict(FAST)
        o["handlers"] = [py("b", env={"GREETING": "bonjour"}), py("c")]
        d.write_config(o)
        r = d.ok({"op": "reload"})
        self.assertIn("handlers.a", r["changed"])
        self.assertIn("handlers.b", r["changed"])
        self.assertIn("handlers.c", r["changed"])
        for q in queued:
            j = d.wait_job(q)
            self.assertEqual((j["state"], j["error"]), ("failed", "handler removed"))
        # The running job of the removed handler finishes in its worker.
        self.assertEqual(d.wait_job(busy)["state"], "done")
        after = self.run_job(d, "b", "whoami")
        self.assertEqual(after["result"]["env"], "bonjour")
        self.assertNotEqual(after["worker"], before["worker"])
        self.assertEqual(self.run_job(d, "c", "echo")["state"], "done")
        self.assertError(d.request({"op": "submit", "type": "a"}), "bad_request")
        wait_for(lambda: self.handler(d, "a") is None, what="handler a gone")


def _no_user():
    h = py("x")
    del h["user"]
    return h


CONFIG_ERRORS = [
    ([py("x", command=["/nonexistent/worker"])],
     r"handlers\[0\] \(x\)\.command: /nonexistent/worker: No such file"),
    ([py("x", command=["/etc/passwd"])], r"\(x\)\.command: .*not executable"),
    ([py("x", command=["python3"])], r"\(x\)\.command: .*absolute path"),
    ([py("noop")], r"handlers\[0\]\.name: 'noop' is a built-in job type"),
    ([py("x"), py("x")], r"handlers\[1\] \(x\)\.name: a second handler"),
    ([py("x", colour="blue")], r"handlers\[0\] \(x\): unknown key 'colour'"),
    ([py("x", min_workers=3, max_workers=2)], r"\(x\)\.min_workers: 3 is more"),
    ([py("x", users=["no-such-user-here"])], r"\(x\)\.users: .*no such user"),
    ([py("x", **{"class": "gpu"})], r"\(x\)\.class: invalid value 'gpu'"),
    ([{"command": [ECHO]}], r"handlers\[0\]: needs a name"),
] + ([([_no_user()], r"\(x\)\.user: taskd runs as root")] if ROOT else [])


class Lifecycle(HandlerCase):
    def test_stop_cancels_running_jobs_and_leaves_no_worker(self):
        d = self.daemon([py("py"), py("deaf", env={"TEST_IGNORE_TERM": "1"})])
        a = d.submit(["sleep", "60"], type="py")
        b = d.submit(["hang", "60"], type="deaf")
        d.wait_state(a, ["running"])
        d.wait_state(b, ["running"])
        pids = [w["pid"] for h in d.status()["handlers"] for w in h["workers"]]
        t0 = time.monotonic()
        self.assertEqual(d.stop(), 0)
        # cancel, SIGTERM after kill_grace (0.3 s), SIGKILL one more later
        self.assertLess(time.monotonic() - t0, 8)
        for pid in pids:
            self.assertTrue(wait_for(lambda: pid_gone(pid), what="worker %d gone" % pid))
        d.start()
        self.assertEqual(d.show(a)["state"], "cancelled")
        self.assertEqual(d.show(b)["state"], "cancelled")

    def test_jobs_survive_a_restart(self):
        d = self.daemon([py("py")])
        done = d.wait_job(d.submit(["echo", "x"], type="py", input="aGk="))
        later = d.submit(["echo", "y"], type="py", input="aG8=", run_at=time.time() + 1.5)
        self.assertEqual(d.show(later)["state"], "scheduled")
        self.assertEqual(d.stop(), 0)
        d.start()
        self.assertEqual(d.show(done["id"])["result"], done["result"])
        j = d.wait_job(later)
        self.assertEqual(j["state"], "done")
        self.assertEqual((j["result"]["args"], j["result"]["input"]), (["y"], "ho"))

    def test_queued_job_of_a_handler_gone_at_restart(self):
        d = self.daemon([py("mute", env={"TEST_MODE": "no_hello"}), py("other")])
        jid = d.submit(["echo"], type="mute")
        self.assertEqual(d.show(jid)["state"], "queued")  # its worker never says hello
        # (a stop would cancel it: a crash leaves it queued in the store)
        d.signal(signal.SIGKILL)
        d.wait_exit(10)
        o = dict(FAST)
        o["handlers"] = [py("other")]
        d.write_config(o)
        d.start()
        j = d.wait_job(jid)
        self.assertEqual((j["state"], j["error"]), ("failed", "handler removed"))


class Config(HandlerCase):
    def check(self, handlers, pattern):
        d = self.start_daemon(dict(FAST))
        o = dict(FAST)
        o["handlers"] = handlers
        d.write_config(o)
        p = subprocess.run([TASKD, "-t", "-c", d.conf], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, re.escape(d.conf) + r":\d+: .*" + pattern)
        # and a reload of it is refused, the old configuration kept
        r = d.request({"op": "reload"})
        self.assertError(r, "invalid_config")

    def test_errors(self):
        for case in CONFIG_ERRORS:
            with self.subTest(case=case[1]):
                self.check(*case)

    def test_ok(self):
        d = self.start_daemon(dict(FAST))
        o = dict(FAST)
        o["handlers"] = [py("x", env={"A": "1"}, max_worker_rss="1G", timeout=2.5)]
        d.write_config(o)
        p = subprocess.run([TASKD, "-t", "-c", d.conf], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)


class RunAs(HandlerCase):
    def setUp(self):
        super().setUp()
        if not ROOT:
            self.skipTest("needs root")

    def test_workers_run_as_the_user(self):
        nobody = pwd.getpwnam("nobody")
        d = self.daemon([py("py", user="nobody", cwd="/tmp")])
        j = self.run_job(d, "py", "whoami")
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["result"]["uid"], nobody.pw_uid)
        self.assertEqual(j["result"]["gid"], nobody.pw_gid)
        self.assertEqual(j["result"]["cwd"], "/tmp")

    def test_users_and_groups(self):
        nobody = pwd.getpwnam("nobody")
        nogroup = grp.getgrgid(nobody.pw_gid).gr_name
        d = self.daemon([py("mine", users=["root"]), py("theirs", groups=[nogroup]),
                         py("anyone")], {"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)

        for name, rc in (("mine", 4), ("theirs", 0), ("anyone", 0)):
            p = subprocess.run([TASKCTL, "-s", d.sock, "submit",
                                "--wait", "--type", name, "--", "text", "ok"],
                               capture_output=True, text=True, user=nobody.pw_uid,
                               group=nobody.pw_gid, extra_groups=[])
            self.assertEqual(p.returncode, rc, (name, p.stdout, p.stderr))
            if rc == 4:
                self.assertIn("forbidden", p.stderr)
                self.assertIn("handler mine", p.stderr)
        # root may use every handler
        self.assertEqual(self.run_job(d, "mine", "text", "x")["state"], "done")


if __name__ == "__main__":
    main()
