#!/usr/bin/python3
"""End-to-end tests of notifications when jobs end: submit --notify and
jobs.on_finish (run as the submitter, with TASKD_JOB_* in the environment,
once per job whatever its retries), jobs.webhook (a local HTTP server in
this process: the job's JSON, retries, no retry on 4xx, a dead webhook that
never slows jobs or the daemon), bounded queues, jobs.notify_timeout, and
jobs.slow_log (once per run)."""

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import E2ETestCase, TASKCTL, wait_for

RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
NOBODY = 65534


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    return env


def metric(d, name, labels=None):
    """One sample from `taskctl metrics` (labels in the order taskd writes them), or None."""
    text = d.ctl("metrics").stdout
    want = "{%s}" % ",".join('%s="%s"' % kv for kv in labels.items()) if labels else ""
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
    return float(m.group(1)) if m else None


class Hook(http.server.BaseHTTPRequestHandler):
    """Records each POST; answers with the next status of server.answers (then 200)."""

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n)
        srv = self.server
        with srv.lock:
            srv.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
            code = srv.answers.pop(0) if srv.answers else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class NotifyTest(E2ETestCase):

    def out_dir(self, mode=0o755):
        d = tempfile.mkdtemp(prefix="taskd-notify-")
        os.chmod(d, mode)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def hook_server(self, answers=()):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        srv.posts, srv.answers, srv.lock = [], list(answers), threading.Lock()
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        return srv, "http://127.0.0.1:%d/hook?from=taskd" % srv.server_address[1]

    # -- commands

    def test_notify_command(self):
        out = self.out_dir()
        d = self.start_daemon()
        cmd = 'env > %s/env.tmp && pwd > %s/pwd && mv %s/env.tmp %s/env' % ((out,) * 4)
        p = d.ctl("submit", "--env", "FOO=bar baz", "--name", "nt", "--notify", cmd, "--",
                  "sh", "-c", "echo x; exit 3", env={"TASKD_JOB_ID": "spoofed"})
        self.assertRc(p, 0)
        jid = int(p.stdout)
        self.assertEqual(d.wait_job(jid)["exit_code"], 3)
        env = wait_for(lambda: os.path.exists(out + "/env") and read_env(out + "/env"), 10,
                       what="the notify command to run")
        self.assertEqual(env["TASKD_JOB_ID"], str(jid))
        self.assertEqual(env["TASKD_JOB_STATE"], "failed")
        self.assertEqual(env["TASKD_JOB_EXIT_CODE"], "3")
        self.assertEqual(env["TASKD_JOB_SIGNAL"], "")
        self.assertEqual(env["TASKD_JOB_NAME"], "nt")
        self.assertGreater(float(env["TASKD_JOB_WALL"]), 0)
        self.assertEqual(env["FOO"], "bar baz")  # the job's own environment
        with open(out + "/pwd") as f:
            self.assertEqual(f.read().strip(), os.getcwd())  # and its directory
        self.assertEqual(d.show(jid)["notify"], cmd)
        self.assertEqual(d.ctl_json("show", jid)["notify"], cmd)
        # The failure is in the log, once.
        wait_for(lambda: "job %d failed (exit code 3" % jid in d.log_text(), 5,
                 what="the failure in the log")
        wait_for(lambda: metric(d, "taskd_notifications_total",
                                {"kind": "command", "outcome": "ok"}) == 1, 5,
                 what="the command to be counted")

    def test_on_finish_once_per_job(self):
        out = self.out_dir()
        d = self.start_daemon({"jobs.on_finish": [
            "echo $TASKD_JOB_ID $TASKD_JOB_STATE $TASKD_JOB_EXIT_CODE >> %s/a" % out,
            "echo second $TASKD_JOB_ID >> %s/b" % out]})
        ok = d.submit(["true"])
        retried = d.submit(["sh", "-c", "exit 4"], retries=2, retry_delay=0.05)
        running = d.submit(["sleep", "30"], **{"class": "io"})
        d.wait_state(running, "running")
        d.cancel(running)
        for j in (ok, retried, running):
            d.wait_job(j)

        def lines(name):
            with open(os.path.join(out, name)) as f:
                return sorted(f.read().split("\n")[:-1])
        got = wait_for(lambda: os.path.exists(out + "/b") and len(lines("b")) == 3 and
                       len(lines("a")) == 3 and lines("a"), 10, what="three notifications")
        self.assertEqual(got, sorted(["%d done 0" % ok, "%d failed 4" % retried,
                                      "%d cancelled" % running]))
        self.assertEqual(lines("b"), sorted("second %d" % j for j in (ok, retried, running)))
        self.assertEqual(d.show(retried)["attempt"], 3)  # three runs, one notification

    def test_notify_timeout_and_bad_requests(self):
        d = self.start_daemon({"jobs.notify_timeout": 0.5})
        t0 = time.monotonic()
        d.wait_job(d.submit(["true"], notify="sleep 30"))
        wait_for(lambda: "killed after jobs.notify_timeout" in d.log_text(), 10,
                 what="the hanging command to be killed")
        self.assertLess(time.monotonic() - t0, 8)
        for bad in ("", "x" * 4097, 3, ["echo"]):
            r = d.request({"v": 1, "id": 1, "op": "submit", "argv": ["true"], "notify": bad})
            self.assertError(r, "bad_request")
            self.assertIn("notify", r["error"]["message"])
        p = d.ctl("submit", "--notify", "", "--", "true")
        self.assertRc(p, 2)

    @unittest.skipUnless(os.geteuid() == 0 and RUNUSER, "needs root and runuser")
    def test_runs_as_the_submitter(self):
        out = self.out_dir(0o777)
        d = self.start_daemon({"socket_mode": "0666",
                               "jobs.on_finish": ["id -u > %s/on.$TASKD_JOB_ID" % out]})
        os.chmod(d.tmp, 0o755)
        p = subprocess.run([RUNUSER, "-u", "nobody", "--", TASKCTL, "-s", d.sock, "submit",
                            "--notify", "id -u > %s/own.$TASKD_JOB_ID" % out, "--", "true"],
                           capture_output=True, text=True, cwd="/", timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        theirs = int(p.stdout)
        mine = d.submit(["true"], notify="id -u > %s/own.$TASKD_JOB_ID" % out)
        for j in (theirs, mine):
            d.wait_job(j)

        def uid(name):
            path = os.path.join(out, name)
            with open(path) as f:
                text = f.read().strip()
            self.assertEqual(os.stat(path).st_uid, int(text))  # the file is theirs too
            return int(text)
        wait_for(lambda: len(os.listdir(out)) == 4, 10, what="four notifications")
        time.sleep(0.1)
        self.assertEqual(uid("own.%d" % theirs), NOBODY)
        self.assertEqual(uid("on.%d" % theirs), NOBODY)
        self.assertEqual(uid("own.%d" % mine), 0)
        self.assertEqual(uid("on.%d" % mine), 0)

    def test_queue_is_bounded(self):
        d = self.start_daemon({"jobs.on_finish": ["sleep 30"], "jobs.kill_grace": 0.5})
        ids = d.submit_batch([{"type": "noop"}] * 300)
        for j in ids[-5:]:
            d.wait_job(j)
        dropped = wait_for(lambda: metric(d, "taskd_notifications_total",
                                          {"kind": "command", "outcome": "dropped"}), 10,
                           what="dropped notifications")
        self.assertGreaterEqual(dropped, 300 - 256 - 2)
        self.assertLessEqual(metric(d, "taskd_notifications_queued", {"kind": "command"}),
                             256 + 2)
        self.assertIn("queue full", d.log_text())
        # Stopping does not wait for the queue: the running commands are cancelled.
        t0 = time.monotonic()
        d.stop()
        self.assertLess(time.monotonic() - t0, 15)  # not the commands' 30 s
        self.assertIn("commands and 0 webhook posts not sent", d.log_text())

    # -- the webhook

    def test_webhook(self):
        srv, url = self.hook_server()
        d = self.start_daemon({"jobs.webhook": url})
        jid = d.submit(["sh", "-c", "exit 2"], labels={"k": "v"})
        d.wait_job(jid)
        wait_for(lambda: srv.posts, 10, what="the webhook post")
        post = srv.posts[0]
        self.assertEqual(post["path"], "/hook?from=taskd")
        self.assertEqual(post["headers"]["Content-Type"], "application/json")
        self.assertEqual(post["headers"]["Host"], "127.0.0.1:%d" % srv.server_address[1])
        self.assertEqual(json.loads(post["body"]), d.show(jid))
        time.sleep(0.3)
        self.assertEqual(len(srv.posts), 1)
        self.assertEqual(metric(d, "taskd_notifications_total",
                                {"kind": "webhook", "outcome": "ok"}), 1)

    def test_webhook_retries(self):
        srv, url = self.hook_server(answers=[503, 500])
        d = self.start_daemon({"jobs.webhook": url})
        jid = d.submit(["true"])
        d.wait_job(jid)
        # 1 s, then 2 s apart: the third attempt goes through.
        wait_for(lambda: len(srv.posts) == 3, 10, what="three attempts")
        self.assertTrue(all(json.loads(p["body"])["id"] == jid for p in srv.posts))
        self.assertEqual(metric(d, "taskd_webhook_retries_total"), 2)
        # A 4xx is the server's answer: not retried.
        srv.answers = [404]
        j2 = d.submit(["true"])
        d.wait_job(j2)
        wait_for(lambda: len(srv.posts) == 4, 5, what="the fourth post")
        time.sleep(1.5)
        self.assertEqual(len(srv.posts), 4)
        self.assertIn("webhook for job %d answered 404: given up" % j2, d.log_text())

    def test_dead_webhook_never_slows_jobs(self):
        # A peer that takes connections into its backlog and never answers, and one that refuses.
        black = socket.socket()
        black.bind(("127.0.0.1", 0))
        black.listen(1024)
        self.addCleanup(black.close)
        for url in ("http://127.0.0.1:%d/x" % black.getsockname()[1],
                    "http://127.0.0.1:%d/x" % free_port_closed()):
            d = self.start_daemon({"jobs.webhook": url, "thread_pool.max_threads": 8})
            t0 = time.monotonic()
            ids = d.submit_batch([{"argv": ["true"]}] * 40)
            for j in ids:
                d.wait_job(j)
            took = time.monotonic() - t0
            # Had jobs waited for a delivery, one timeout (10 s) would be in there.
            self.assertLess(took, 9.0, "40 jobs took %.1f s with a dead webhook" % took)
            t1 = time.monotonic()
            d.status()
            self.assertLess(time.monotonic() - t1, 0.5)
            queued = metric(d, "taskd_notifications_queued", {"kind": "webhook"})
            self.assertGreater(queued, 0)
            t2 = time.monotonic()
            d.stop()
            self.assertLess(time.monotonic() - t2, 8.0)  # not a post's 10 s timeout
            self.assertIn("webhook posts not sent", d.log_text())

    # -- the slow log

    def test_slow_log_once(self):
        d = self.start_daemon({"jobs.slow_log": 0.3})
        slow = d.submit(["sleep", "1.5"], **{"class": "io"})
        fast = d.submit(["sleep", "0.05"], **{"class": "io"})
        d.wait_job(fast)
        d.wait_job(slow)
        text = d.log_text()
        lines = [l for l in text.splitlines() if "slow: job" in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("slow: job %d " % slow, lines[0])
        self.assertRegex(lines[0], r"pid [1-9][0-9]*: sleep 1\.5$")
        self.assertEqual(metric(d, "taskd_jobs_slow_total"), 1)


def free_port_closed():
    """A loopback port nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":
    unittest.main(verbosity=2)
