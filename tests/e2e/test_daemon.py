"""taskd as a program: options, config checking, socket handling, signals."""

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, Daemon, TASKD, HERE, render_config, wait_for,  # noqa: E402
                     pid_gone, main)

REPO_CONF = os.path.normpath(os.path.join(HERE, "..", "..", "conf", "taskd.conf"))


def run_taskd(*args, timeout=15):
    return subprocess.run([TASKD] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def config_with_line3(d, bad_line, drop=()):
    """A config whose line 3 is bad_line; the rest is the harness config minus drop."""
    cfg = d.config_dict()
    for k in drop:
        cfg.pop(k, None)
    rest = render_config(cfg).split("\n", 1)[1]  # without its comment line
    return "# line 1\nlog_level = \"debug\";\n" + bad_line + "\n" + rest.replace(
        'log_level = "debug";\n', "")


BAD_LINE3 = {
    "unknown key": ("no_such_key = 1;", ()),
    "syntax error": ("this is not valid", ()),
    "out of range": ("thread_pool = { min_threads = 1; max_threads = -3; idle_timeout = 30; };",
                     ("thread_pool",)),
    "ratio out of range": ("router = { default_class = \"io\"; cpu_ratio = 7.5; };", ("router",)),
    "bad enum": ("router = { default_class = \"gpu\"; cpu_ratio = 0.5; };", ("router",)),
    "wrong type": ("thread_pool = { min_threads = \"two\"; max_threads = 4; };",
                   ("thread_pool",)),
}


class OptionsTest(E2ETestCase):
    def test_version(self):
        p = run_taskd("-V")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout + p.stderr, r"\d+\.\d+\.\d+")

    def test_help(self):
        p = run_taskd("-h")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex((p.stdout + p.stderr).lower(), r"usage")

    def test_bad_option(self):
        for args in (["-Z"], ["--no-such-option"], ["-c"]):
            with self.subTest(args=args):
                p = run_taskd(*args)
                self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
                self.assertTrue(p.stderr.strip())

    def test_check_good_config(self):
        with Daemon(start=False) as d:
            p = run_taskd("-t", "-c", d.conf)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertFalse(os.path.exists(d.sock), "-t must not create the socket")

    def test_check_repo_config(self):
        self.assertTrue(os.path.exists(REPO_CONF), REPO_CONF)
        p = run_taskd("-t", "-c", REPO_CONF)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_check_bad_config(self):
        with Daemon(start=False) as d:
            for what, (bad, drop) in BAD_LINE3.items():
                with self.subTest(what=what):
                    d.write_config(text=config_with_line3(d, bad, drop))
                    p = run_taskd("-t", "-c", d.conf)
                    out = p.stdout + p.stderr
                    self.assertNotEqual(p.returncode, 0, out)
                    self.assertIn(d.conf + ":3:", out)
                    self.assertRegex(out, re.escape(d.conf) + r":3: *\S")

    def test_missing_config(self):
        with Daemon(start=False) as d:
            missing = os.path.join(d.tmp, "missing.conf")
            p = run_taskd("-t", "-c", missing)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(missing, p.stdout + p.stderr)
            p = run_taskd("-c", missing, "-s", d.sock)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(missing, p.stderr)

    def test_bad_config_refuses_to_start(self):
        with Daemon(start=False) as d:
            d.write_config(text=config_with_line3(d, *BAD_LINE3["unknown key"]))
            p = run_taskd("-c", d.conf, "-s", d.sock)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(d.conf + ":3:", p.stderr)


class SocketTest(E2ETestCase):
    def test_stale_socket_replaced(self):
        d = self.track(Daemon(start=False))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(d.sock)
        s.close()
        self.assertTrue(stat.S_ISSOCK(os.stat(d.sock).st_mode))
        d.start()
        self.assertDaemonServes(d)

    def test_second_daemon_refused(self):
        d = self.start_daemon()
        p = run_taskd("-c", d.conf, "-s", d.sock)
        self.assertNotEqual(p.returncode, 0)
        msg = p.stderr
        self.assertTrue(d.sock in msg or "socket" in msg.lower(), msg)
        self.assertIn("running", msg.lower())
        self.assertTrue(os.path.exists(d.sock), "the second taskd removed the first's socket")
        self.assertDaemonServes(d)
        self.assertEqual(d.ctl("status").returncode, 0)

    def test_socket_path_too_long(self):
        with Daemon(start=False) as d:
            long_path = os.path.join(d.tmp, "s" * 200 + ".sock")
            p = run_taskd("-c", d.conf, "-s", long_path)
            self.assertNotEqual(p.returncode, 0)
            self.assertTrue(p.stderr.strip())
            self.assertIn("long", p.stderr.lower())

    def test_socket_mode(self):
        for mode in ("0600", "0660"):
            with self.subTest(mode=mode):
                d = self.start_daemon({"socket_mode": mode})
                st = os.stat(d.sock)
                self.assertTrue(stat.S_ISSOCK(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), int(mode, 8))


class ReloadTest(E2ETestCase):
    def max_threads(self, d):
        return d.status()["thread_pool"]["max"]

    def test_sighup_applies_pool_size(self):
        d = self.start_daemon()
        self.assertEqual(self.max_threads(d), 4)
        d.write_config({"thread_pool.max_threads": 7})
        d.signal(signal.SIGHUP)
        wait_for(lambda: self.max_threads(d) == 7, 5, what="thread_pool.max == 7 after SIGHUP")
        jid = d.submit(["true"])
        self.assertEqual(d.wait_job(jid)["state"], "done")
        d.write_config({"thread_pool.max_threads": 2})
        d.signal(signal.SIGHUP)
        wait_for(lambda: self.max_threads(d) == 2, 5, what="thread_pool.max == 2 after SIGHUP")

    def test_ctl_reload_applies_pool_size(self):
        d = self.start_daemon()
        d.write_config({"thread_pool.max_threads": 3})
        p = d.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for(lambda: self.max_threads(d) == 3, 5, what="thread_pool.max == 3 after reload")
        jid = d.submit(["true"])
        self.assertEqual(d.wait_job(jid)["state"], "done")

    def test_sighup_broken_config_keeps_old(self):
        d = self.start_daemon()
        d.write_config(text=config_with_line3(d, *BAD_LINE3["syntax error"]))
        d.signal(signal.SIGHUP)
        wait_for(lambda: (d.conf + ":3") in d.log_text(), 5,
                 what="the log to report %s:3" % d.conf)
        self.assertTrue(d.alive())
        self.assertEqual(self.max_threads(d), 4)
        jid = d.submit(["true"])
        self.assertEqual(d.wait_job(jid)["state"], "done")
        # a later good file still applies
        d.write_config({"thread_pool.max_threads": 6})
        d.signal(signal.SIGHUP)
        wait_for(lambda: self.max_threads(d) == 6, 5, what="thread_pool.max == 6 after SIGHUP")

    def test_ctl_reload_broken_config(self):
        d = self.start_daemon()
        d.write_config(text=config_with_line3(
            d, "thread_pool = { min_threads = 1; max_threads = -3; idle_timeout = 30; };",
            ("thread_pool",)))
        p = d.ctl("reload")
        self.assertEqual(p.returncode, 4, p.stdout + p.stderr)
        self.assertIn(":3", p.stderr)
        self.assertEqual(self.max_threads(d), 4)
        jid = d.submit(["true"])
        self.assertEqual(d.wait_job(jid)["state"], "done")


class SignalTest(E2ETestCase):
    def stop_with(self, sig):
        d = self.start_daemon()  # kill_grace = 1
        jid = d.submit(["sh", "-c", "echo $$; exec sleep 30"], **{"class": "io"})
        pid = int(d.wait_output(jid, lambda b: b.endswith(b"\n")))
        self.assertFalse(pid_gone(pid))
        t0 = time.monotonic()
        d.signal(sig)
        rc = d.wait_exit(1 + 6)
        self.assertIsNotNone(rc, "taskd still running %.0fs after %s" % (7, sig.name))
        self.assertEqual(rc, 0, "exit code after %s" % sig.name)
        wait_for(lambda: pid_gone(pid), 3, what="job process %d to be gone" % pid)
        return time.monotonic() - t0

    def test_sigterm(self):
        self.stop_with(signal.SIGTERM)

    def test_sigint(self):
        self.stop_with(signal.SIGINT)

    def test_sigterm_idle(self):
        d = self.start_daemon()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait_exit(5), 0)

    def test_signal_right_after_socket_ready(self):
        # Once the socket accepts connections, a supervisor may signal the
        # daemon: SIGTERM must already mean a clean shutdown (exit 0), and
        # SIGHUP a reload, never the default action (death).
        for i in range(15):
            sig = (signal.SIGTERM, signal.SIGHUP)[i % 2]
            with self.subTest(i=i, sig=sig.name):
                d = self.track(Daemon(start=False))
                d.start(ready="socket")
                d.signal(sig)
                if sig == signal.SIGTERM:
                    self.assertEqual(d.wait_exit(10), 0)
                else:
                    time.sleep(0.1)
                    self.assertTrue(d.alive(), "taskd died of SIGHUP (rc %s)" % d.proc.poll())
                    self.assertDaemonServes(d)
                d.cleanup()

    def test_sigpipe_ignored(self):
        d = self.start_daemon()
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.sock)
            s.sendall(b'{"op":"list","limit":0}\n' * 200)
            s.close()
        time.sleep(0.2)
        self.assertDaemonServes(d)


if __name__ == "__main__":
    main()
