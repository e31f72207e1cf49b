"""taskctl against a real taskd: the CLI contract (doc/design.md "taskctl", man/taskctl.1.in)."""

import json
import os
import re
import socket
import sys
import tempfile
import shutil
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, Daemon, TASKCTL, jobs_of, wait_for, pid_gone,  # noqa: E402
                     main)
import subprocess  # noqa: E402

JOB_FIELDS = ["id", "state", "type", "class", "routed", "pool", "worker", "name", "argv",
              "priority", "owner", "exit_code", "signal", "cpu_user", "cpu_sys", "max_rss_kb",
              "wall", "submitted_at", "started_at", "finished_at", "result", "error"]


class CliTest(E2ETestCase):
    shared_daemon = True

    # -- helpers
    def submit(self, *args, env=None):
        """taskctl submit ARGS → the printed job id."""
        p = self.d.ctl("submit", *args, env=env)
        self.assertRc(p, 0)
        out = p.stdout.strip()
        self.assertRegex(out, r"^\d+$", "submit should print just the job id")
        return int(out)

    def show(self, jid):
        j = self.d.ctl_json("show", jid)
        self.assertIsInstance(j, dict)
        self.assertEqual(j.get("id"), jid)
        return j

    def by_name(self, name):
        js = [j for j in self.d.list_jobs() if j.get("name") == name]
        self.assertEqual(len(js), 1, "expected one job named %s" % name)
        return js[0]

    # -- submit
    def test_submit_wait_exit_code_and_output(self):
        p = self.d.ctl("submit", "--wait", "--", "sh", "-c", "echo hello; echo oops >&2; exit 3")
        self.assertRc(p, 3)
        self.assertIn("hello", p.stdout.splitlines())
        self.assertNotIn("oops", p.stdout)
        self.assertIn("oops", p.stderr)

    def test_submit_prints_id(self):
        jid = self.submit("--", "sleep", "5")
        self.cancel_at_cleanup(jid)
        self.assertGreater(jid, 0)
        j = self.show(jid)
        self.assertIn(j["state"], ("queued", "running"))
        self.assertEqual(j["argv"], ["sleep", "5"])
        self.assertEqual(j["type"], "exec")

    def test_submit_ids_increase(self):
        a = self.submit("--type", "noop")
        b = self.submit("--type", "noop")
        self.assertGreater(b, a)

    def test_submit_json(self):
        r = self.d.ctl_json("submit", "--type", "noop")
        self.assertIsInstance(r, dict)
        self.assertIsInstance(r.get("id"), int)
        self.assertEqual(self.d.wait_job(r["id"])["state"], "done")

    def test_submit_options_recorded(self):
        jid = self.submit("--name", "cli-opts", "--priority", "7", "--class", "io", "--",
                          "true")
        j = self.d.wait_job(jid)
        self.assertEqual(j["name"], "cli-opts")
        self.assertEqual(j["priority"], 7)
        self.assertEqual(j["class"], "io")
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["owner"]["uid"], os.getuid())
        self.assertEqual(j["owner"]["gid"], os.getgid())

    def test_submit_sumsq(self):
        jid = self.submit("--type", "sumsq", "--", "10")
        p = self.d.ctl("wait", jid)
        self.assertRc(p, 0)
        j = self.show(jid)
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["type"], "sumsq")
        self.assertEqual(j["argv"], ["10"])
        self.assertEqual(j["result"], "285")

    def test_submit_wait_killed_by_signal(self):
        p = self.d.ctl("submit", "--wait", "--", "sh", "-c", "kill -9 $$")
        self.assertRc(p, 137)

    def test_submit_wait_timeout(self):
        t0 = time.monotonic()
        p = self.d.ctl("submit", "--wait", "--name", "cli-timeout", "--timeout", "0.5", "--",
                       "sleep", "10")
        self.assertRc(p, 124)
        self.assertLess(time.monotonic() - t0, 8, "timeout 0.5 took too long")
        self.assertEqual(self.by_name("cli-timeout")["state"], "timeout")

    def test_submit_wait_command_not_found(self):
        p = self.d.ctl("submit", "--wait", "--", "no-such-command-e2e-xyz")
        self.assertRc(p, 127)
        jid = self.submit("--", "no-such-command-e2e-xyz")
        self.assertRc(self.d.ctl("wait", jid), 127)
        j = self.show(jid)
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["exit_code"], 127)
        self.assertIsInstance(j["error"], str)
        self.assertTrue(j["error"].strip())

    def test_submit_wait_not_executable(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-cli-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "script")
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho hi\n")
        os.chmod(path, 0o644)
        self.assertRc(self.d.ctl("submit", "--wait", "--", path), 126)

    def test_submit_cwd(self):
        jid = self.submit("--cwd", "/tmp", "--", "pwd")
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertEqual(self.d.ctl("logs", jid).stdout, "/tmp\n")
        p = self.d.ctl("submit", "--wait", "--cwd", "/tmp", "--", "pwd")
        self.assertRc(p, 0)
        self.assertIn("/tmp", p.stdout.splitlines())

    def test_submit_default_cwd_is_callers(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-cwd-")
        self.addCleanup(shutil.rmtree, tmp, True)
        p = subprocess.run([TASKCTL, "-s", self.d.sock, "submit", "--", "pwd"], cwd=tmp,
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertRc(p, 0)
        jid = int(p.stdout.strip())
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertEqual(self.d.ctl("logs", jid).stdout.strip(), os.path.realpath(tmp))

    def test_submit_env(self):
        jid = self.submit("--env", "FOO=bar", "--env", "BAZ=a=b c", "--", "sh", "-c",
                          'echo "$FOO|$BAZ"')
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertEqual(self.d.ctl("logs", jid).stdout, "bar|a=b c\n")

    def test_submit_env_default_is_callers(self):
        env = {"E2E_CLI_MARK": "mark-42"}
        jid = self.submit("--", "sh", "-c", 'echo "[$E2E_CLI_MARK]"', env=env)
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertEqual(self.d.ctl("logs", jid).stdout, "[mark-42]\n")

    def test_submit_no_env(self):
        env = {"E2E_CLI_MARK": "mark-42"}
        jid = self.submit("--no-env", "--", "sh", "-c", 'echo "[$E2E_CLI_MARK]"', env=env)
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertEqual(self.d.ctl("logs", jid).stdout, "[]\n")
        # --no-env plus --env: only the added variable
        jid = self.submit("--no-env", "--env", "ONLY=1", "--", "sh", "-c",
                          'echo "[$E2E_CLI_MARK][$ONLY]"', env=env)
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertEqual(self.d.ctl("logs", jid).stdout, "[][1]\n")

    def test_submit_env_overrides_callers(self):
        env = {"E2E_CLI_MARK": "old"}
        jid = self.submit("--env", "E2E_CLI_MARK=new", "--", "sh", "-c", 'echo "$E2E_CLI_MARK"',
                          env=env)
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertEqual(self.d.ctl("logs", jid).stdout, "new\n")

    # -- status
    def test_status_human(self):
        p = self.d.ctl("status")
        self.assertRc(p, 0)
        self.assertTrue(p.stdout.strip())

    def test_status_json(self):
        st = self.d.ctl_json("status")
        for k in ("version", "pid", "uptime", "jobs", "thread_pool", "process_pool", "router"):
            self.assertIn(k, st)
        self.assertEqual(st["pid"], self.d.pid)
        for k in ("queued", "running", "done", "failed", "cancelled", "timeout", "lost"):
            self.assertIn(k, st["jobs"])
            self.assertIsInstance(st["jobs"][k], int)
        for k in ("threads", "busy", "idle", "max"):
            self.assertIn(k, st["thread_pool"])
        self.assertEqual(st["thread_pool"]["max"], 4)
        self.assertIsInstance(st["router"], list)

    # -- list / show
    def test_list(self):
        jid = self.submit("--name", "cli-list", "--", "true")
        self.assertRc(self.d.ctl("wait", jid), 0)
        p = self.d.ctl("list")
        self.assertRc(p, 0)
        self.assertRegex(p.stdout, r"(?m)^\s*%d\b" % jid)
        js = jobs_of(self.d.ctl_json("list"))
        self.assertIn(jid, [j["id"] for j in js])
        ids = [j["id"] for j in js]
        self.assertEqual(ids, sorted(ids), "list is in id order")

    def test_list_state(self):
        done = self.submit("--", "true")
        self.assertRc(self.d.ctl("wait", done), 0)
        running = self.submit("--", "sleep", "30")
        self.cancel_at_cleanup(running)
        self.d.wait_state(running, "running")
        js = jobs_of(self.d.ctl_json("list", "--state", "done", "--limit", "0"))
        self.assertTrue(js)
        self.assertTrue(all(j["state"] == "done" for j in js), js)
        ids = [j["id"] for j in js]
        self.assertIn(done, ids)
        self.assertNotIn(running, ids)
        p = self.d.ctl("list", "--state", "done")
        self.assertRc(p, 0)
        self.assertNotRegex(p.stdout, r"(?m)^\s*%d\b" % running)

    def test_list_limit(self):
        ids = [self.submit("--type", "noop") for _ in range(3)]
        for i in ids:
            self.d.wait_job(i)
        js = jobs_of(self.d.ctl_json("list", "--limit", "2"))
        self.assertEqual([j["id"] for j in js], ids[1:], "limit keeps the most recent jobs")

    def test_show_human(self):
        jid = self.submit("--", "true")
        self.assertRc(self.d.ctl("wait", jid), 0)
        p = self.d.ctl("show", jid)
        self.assertRc(p, 0)
        self.assertRegex(p.stdout, r"\b%d\b" % jid)
        self.assertIn("done", p.stdout)

    def test_show_json_fields(self):
        jid = self.submit("--name", "cli-show", "--", "sh", "-c", "exit 5")
        self.assertRc(self.d.ctl("wait", jid), 5)
        j = self.show(jid)
        for k in JOB_FIELDS:
            self.assertIn(k, j)
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["type"], "exec")
        self.assertEqual(j["name"], "cli-show")
        self.assertEqual(j["argv"], ["sh", "-c", "exit 5"])
        self.assertEqual(j["exit_code"], 5)
        self.assertIsNone(j["signal"])
        self.assertIn(j["routed"], ("cpu", "io"))
        self.assertIn(j["pool"], ("process", "thread"))
        self.assertEqual(j["owner"]["uid"], os.getuid())
        self.assertEqual(j["owner"]["gid"], os.getgid())
        self.assertIsInstance(j["wall"], (int, float))
        self.assertLessEqual(j["submitted_at"], j["started_at"])
        self.assertLessEqual(j["started_at"], j["finished_at"])

    # -- logs
    def test_logs_exact(self):
        script = "printf 'line1\\n  line2 \\303\\274\\n\\tno-newline'; printf 'err1\\nerr2' >&2"
        jid = self.submit("--", "sh", "-c", script)
        self.assertRc(self.d.ctl("wait", jid), 0)
        p = self.d.ctl("logs", jid)
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "line1\n  line2 \u00fc\n\tno-newline")
        p = self.d.ctl("logs", jid, "--stderr")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "err1\nerr2")

    def test_logs_binary_and_large(self):
        jid = self.submit("--", "printf", "a\\377\\376b")
        self.assertRc(self.d.ctl("wait", jid), 0)
        p = self.d.ctl("logs", jid, binary=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"a\xff\xfeb")
        jid = self.submit("--", "seq", "1", "200000")
        self.assertRc(self.d.ctl("wait", jid), 0)
        p = self.d.ctl("logs", jid, binary=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        expected = "".join("%d\n" % i for i in range(1, 200001)).encode()
        self.assertEqual(len(p.stdout), len(expected))
        self.assertTrue(p.stdout == expected, "logs of 1 MB differ")

    def test_logs_empty(self):
        jid = self.submit("--", "true")
        self.assertRc(self.d.ctl("wait", jid), 0)
        p = self.d.ctl("logs", jid)
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "")

    def test_logs_follow(self):
        jid = self.submit("--", "sh", "-c", "echo a; sleep 0.7; echo b")
        p = self.d.ctl("logs", jid, "--follow", timeout=20)
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "a\nb\n")

    # -- wait
    def test_wait_exit_code(self):
        jid = self.submit("--", "sh", "-c", "sleep 0.2; exit 9")
        self.assertRc(self.d.ctl("wait", jid), 9)
        jid = self.submit("--", "true")
        self.assertRc(self.d.ctl("wait", jid), 0)

    def test_wait_several(self):
        a = self.submit("--", "true")
        b = self.submit("--", "sh", "-c", "exit 5")
        c = self.submit("--", "sh", "-c", "sleep 0.3; exit 7")
        self.assertRc(self.d.ctl("wait", a, b, c), 5)
        d = self.submit("--", "sh", "-c", "sleep 0.2")
        self.assertRc(self.d.ctl("wait", a, d), 0)

    def test_wait_json(self):
        jid = self.submit("--", "true")
        p = self.d.ctl("--json", "wait", jid)
        self.assertRc(p, 0)
        import json
        json.loads(p.stdout)

    # -- cancel
    def test_cancel_running(self):
        jid = self.submit("--", "sleep", "30")
        self.cancel_at_cleanup(jid)
        self.d.wait_state(jid, "running")
        p = self.d.ctl("cancel", jid)
        self.assertRc(p, 0)
        t0 = time.monotonic()
        self.assertRc(self.d.ctl("wait", jid), 1)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(self.show(jid)["state"], "cancelled")

    def test_cancel_several(self):
        a = self.submit("--", "sleep", "30")
        b = self.submit("--", "sleep", "30")
        self.cancel_at_cleanup(a)
        self.cancel_at_cleanup(b)
        p = self.d.ctl("cancel", a, b)
        self.assertRc(p, 0)
        self.assertRc(self.d.ctl("wait", a, b), 1)
        self.assertEqual(self.show(a)["state"], "cancelled")
        self.assertEqual(self.show(b)["state"], "cancelled")

    def test_rejected_exit_4(self):
        p = self.d.ctl("show", "999999999")
        self.assertRc(p, 4)
        self.assertTrue(p.stderr.strip())
        jid = self.submit("--", "true")
        self.assertRc(self.d.ctl("wait", jid), 0)
        self.assertRc(self.d.ctl("cancel", jid), 4)

    # -- other commands
    def test_reload(self):
        self.assertRc(self.d.ctl("reload"), 0)
        self.assertDaemonServes()

    def test_metrics(self):
        p = self.d.ctl("metrics")
        self.assertRc(p, 0)
        lines = [l for l in p.stdout.splitlines() if l.strip() and not l.startswith("#")]
        self.assertTrue(lines, "metrics printed nothing")
        for l in lines:
            self.assertRegex(l, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+", "not Prometheus text")

    # -- bench
    def test_bench(self):
        import json
        p = self.d.ctl("bench", "-n", "200", "-c", "2", "-P", "8", "--json", timeout=120)
        self.assertRc(p, 0)
        r = json.loads(p.stdout)
        self.assertEqual(r["jobs"], 200)
        self.assertEqual(r["failed"], 0)
        self.assertGreater(r["jobs_per_sec"], 0)
        self.assertGreater(r["seconds"], 0)
        lat = r["latency_us"]
        self.assertEqual(sorted(lat), ["max", "p50", "p90", "p99"])
        self.assertLessEqual(lat["p50"], lat["p90"])
        self.assertLessEqual(lat["p90"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["max"])
        self.assertGreater(lat["max"], 0)
        self.assertEqual(p.stderr, "", "no progress line when stderr is not a terminal")
        # human output; exec jobs, one that fails
        p = self.d.ctl("bench", "-n", "20", "-P", "4", "--", "true", timeout=120)
        self.assertRc(p, 0)
        self.assertIn("jobs/s", p.stdout)
        self.assertRegex(p.stdout, r"\bp50\b.*\bp99\b")
        p = self.d.ctl("--json", "bench", "-n", "5", "--", "false", timeout=120)
        self.assertRc(p, 1)
        self.assertEqual(json.loads(p.stdout)["failed"], 5)
        p = self.d.ctl("--json", "bench", "-n", "4", "-c", "2", "--type", "sumsq", "--", "3",
                       timeout=120)
        self.assertRc(p, 0)
        self.assertEqual(json.loads(p.stdout)["jobs"], 4)

    def test_bench_usage_errors(self):
        for args in (["-n", "0"], ["-n", "10000001"], ["-c", "1001"], ["-P", "10001"],
                     ["-P", "0"], ["--class", "gpu"], ["--type", "exec"], ["-n", "x"]):
            with self.subTest(args=args):
                p = self.d.ctl("bench", *args)
                self.assertRc(p, 2)
                self.assertTrue(p.stderr.strip(), "usage error without a message")
        p = self.d.ctl("bench", "-n", "2", "--type", "no-such-type")
        self.assertRc(p, 4)

    # -- socket selection and errors
    def test_socket_from_env(self):
        p = self.d.ctl("status", socket_arg=False, env={"TASKD_SOCKET": self.d.sock})
        self.assertRc(p, 0)
        # -s wins over TASKD_SOCKET
        p = self.d.ctl("status", env={"TASKD_SOCKET": "/nonexistent/taskd.sock"})
        self.assertRc(p, 0)

    def test_unreachable(self):
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-nod-")
        self.addCleanup(shutil.rmtree, tmp, True)
        missing = os.path.join(tmp, "none.sock")
        stale = os.path.join(tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()
        for path in (missing, stale):
            for cmd in (["status"], ["submit", "--", "true"], ["--json", "list"]):
                with self.subTest(path=os.path.basename(path), cmd=cmd):
                    p = subprocess.run([TASKCTL, "-s", path] + cmd, capture_output=True,
                                       text=True, timeout=30, stdin=subprocess.DEVNULL)
                    self.assertRc(p, 3)
                    self.assertIn("cannot connect to", p.stderr)
                    self.assertIn("is taskd running?", p.stderr)
        p = subprocess.run([TASKCTL, "status"], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, TASKD_SOCKET=missing), stdin=subprocess.DEVNULL)
        self.assertRc(p, 3)
        self.assertIn(missing, p.stderr)

    def test_usage_errors(self):
        for args in (["no-such-command"], ["--bogus-option", "status"], ["status", "--bogus"],
                     ["submit", "--priority", "x", "--", "true"], ["wait"], ["show"],
                     ["submit", "--class", "gpu", "--", "true"]):
            with self.subTest(args=args):
                p = self.d.ctl(*args)
                self.assertRc(p, 2)
                self.assertTrue(p.stderr.strip(), "usage error without a message")

    def test_no_args_usage(self):
        p = subprocess.run([TASKCTL], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        self.assertRc(p, 2)


class PrunedSubmitWaitTest(E2ETestCase):
    """jobs.keep_finished = 0: a job is gone the moment it ends."""

    shared_daemon = True
    shared_overrides = {"jobs.keep_finished": 0}

    def test_exit_code_of_a_pruned_job(self):
        # Defect: the separate `wait` arrived after the job was pruned: exit 4 "no such job".
        for _ in range(3):
            p = self.d.ctl("submit", "--wait", "--", "sh", "-c", "echo out; exit 7")
            self.assertRc(p, 7)
            self.assertNotIn("no such job", p.stderr)
            # its output went with it: said so, not printed
            self.assertIn("output", p.stderr)
            self.assertIn("jobs.keep_finished", p.stderr)
        p = self.d.ctl("submit", "--wait", "--", "true")
        self.assertRc(p, 0)
        p = self.d.ctl("--json", "submit", "--wait", "--", "sh", "-c", "exit 7")
        self.assertRc(p, 7)
        j = json.loads(p.stdout)
        self.assertEqual((j["state"], j["exit_code"]), ("failed", 7))
        p = self.d.ctl("submit", "--wait", "--", "sh", "-c", "kill -9 $$")
        self.assertRc(p, 137)

    def test_builtin_result_of_a_pruned_job(self):
        # the result travels in the job object: printed, and no word about output it never had
        p = self.d.ctl("submit", "--wait", "--type", "sumsq", "--", "10")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout, "285\n")
        self.assertEqual(p.stderr, "")


class CliShutdownTest(E2ETestCase):
    def test_shutdown(self):
        d = self.start_daemon()
        p = d.ctl("shutdown")
        self.assertRc(p, 0)
        rc = d.wait_exit(10)
        self.assertIsNotNone(rc, "taskd still running 10 s after shutdown")
        self.assertEqual(rc, 0)

    def test_shutdown_cancels_running(self):
        d = self.start_daemon()
        jid = d.submit(["sh", "-c", "echo $$; exec sleep 30"])
        out = d.wait_output(jid, lambda b: b.endswith(b"\n"))
        pid = int(out)
        p = d.ctl("shutdown")
        self.assertRc(p, 0)
        rc = d.wait_exit(10)
        self.assertEqual(rc, 0)
        wait_for(lambda: pid_gone(pid), 5, what="job process %d to be gone" % pid)


if __name__ == "__main__":
    main()
