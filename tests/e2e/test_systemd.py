"""systemd integration: notify protocol, watchdog, socket activation, journal logging."""

import os
import shutil
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, Daemon, wait_for, main  # noqa: E402


class NotifyReceiver:
    """A fake $NOTIFY_SOCKET: collects the datagrams taskd sends."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.messages = []  # (monotonic time, {key: value})

    def poll(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def keys(self):
        """Every KEY=VALUE in arrival order, as "KEY=VALUE" strings (without STATUS/WATCHDOG)."""
        self.poll()
        out = []
        for _, f in self.messages:
            for k, v in f.items():
                if k not in ("STATUS", "WATCHDOG", "MONOTONIC_USEC"):
                    out.append("%s=%s" % (k, v))
        return out

    def wait_for(self, pred, timeout=10, what="notification"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if pred():
                return
            time.sleep(0.02)
        raise AssertionError("no %s; got %r" % (what, [m for _, m in self.messages]))

    def statuses(self):
        self.poll()
        return [f["STATUS"] for _, f in self.messages if "STATUS" in f]

    def count(self, key, value):
        self.poll()
        return sum(1 for _, f in self.messages if f.get(key) == value)

    def close(self):
        self.sock.close()


class NotifyTest(E2ETestCase):
    def start_notified(self, env=None, overrides=None):
        d = Daemon(overrides, start=False, env=None)
        self.track(d)
        rx = NotifyReceiver(os.path.join(d.tmp, "notify.sock"))
        self.addCleanup(rx.close)
        d.env = dict({"NOTIFY_SOCKET": rx.path}, **(env or {}))
        d.start()
        return d, rx

    def test_ready_status_reload_stopping(self):
        d, rx = self.start_notified()
        rx.wait_for(lambda: rx.count("READY", "1") >= 1, what="READY=1")
        self.assertTrue(rx.statuses(), "no STATUS= with READY=1")
        self.assertRegex(rx.statuses()[0], r"^0 running \(0 cpu, 0 io\), 0 queued, \d+/\d+ workers busy$")

        # STATUS= follows the work: a running io job shows up within ~1 s.
        jid = d.submit(type="sleep", argv=["3"], **{"class": "io"})
        rx.wait_for(lambda: any(s.startswith("1 running (0 cpu, 1 io)") for s in rx.statuses()),
                    what="STATUS with 1 running io job")
        d.cancel(jid)

        # SIGHUP: RELOADING=1 (with MONOTONIC_USEC) then READY=1 again.
        d.signal(signal.SIGHUP)
        rx.wait_for(lambda: rx.count("READY", "1") >= 2, what="READY=1 after SIGHUP")
        seq = rx.keys()
        self.assertIn("RELOADING=1", seq)
        self.assertLess(seq.index("RELOADING=1"), len(seq) - 1 - seq[::-1].index("READY=1"))
        self.assertTrue(any("MONOTONIC_USEC" in f for _, f in rx.messages if "RELOADING" in f),
                        "RELOADING=1 without MONOTONIC_USEC")

        # taskctl reload does the same.
        self.assertEqual(d.ctl("reload").returncode, 0)
        rx.wait_for(lambda: rx.count("READY", "1") >= 3, what="READY=1 after taskctl reload")
        self.assertEqual(rx.count("RELOADING", "1"), 2)

        # A refused reload still ends with READY=1 (the old config stays in force).
        with open(d.conf, "a") as f:
            f.write("\nbogus_key = 1;\n")
        self.assertEqual(d.ctl("reload").returncode, 4)
        rx.wait_for(lambda: rx.count("READY", "1") >= 4, what="READY=1 after a refused reload")

        d.ctl("shutdown")
        self.assertEqual(d.wait_exit(15), 0)
        rx.wait_for(lambda: rx.count("STOPPING", "1") == 1, what="STOPPING=1")

    def test_watchdog_pings(self):
        # WATCHDOG_USEC=400 ms: taskd pings every 200 ms from its event loop.
        d, rx = self.start_notified(env={"WATCHDOG_USEC": "400000"})
        rx.wait_for(lambda: rx.count("READY", "1") >= 1, what="READY=1")
        time.sleep(0.3)
        rx.poll()
        before = rx.count("WATCHDOG", "1")
        t0 = time.monotonic()
        time.sleep(2.0)
        rx.poll()
        pings = rx.count("WATCHDOG", "1") - before
        rate = pings / (time.monotonic() - t0)
        self.assertGreaterEqual(rate, 3.0, "watchdog pings too rare: %d in 2 s" % pings)
        self.assertLessEqual(rate, 7.0, "watchdog pings too frequent: %d in 2 s" % pings)

    def test_no_watchdog_without_usec(self):
        d, rx = self.start_notified()
        rx.wait_for(lambda: rx.count("READY", "1") >= 1, what="READY=1")
        time.sleep(0.5)
        self.assertEqual(rx.count("WATCHDOG", "1"), 0)

    def test_journal_prefix(self):
        # JOURNAL_STREAM naming our log file's dev:ino: lines carry <N> priorities.
        d = Daemon(start=False)
        self.track(d)
        open(d.log, "ab").close()
        st = os.stat(d.log)
        d.env = {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}
        d.start()
        wait_for(lambda: "<6>taskd" in d.log_text(), 5, what="<6> prefixed log line")
        # A JOURNAL_STREAM that is not our stderr is ignored (plain timestamped lines).
        d2 = Daemon(start=False, env={"JOURNAL_STREAM": "1:1"})
        self.track(d2)
        d2.start()
        self.assertNotIn("<6>", d2.log_text())
        self.assertRegex(d2.log_text(), r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} taskd\[info\]")


@unittest.skipUnless(shutil.which("systemd-socket-activate"), "systemd-socket-activate missing")
class SocketActivationTest(E2ETestCase):
    def test_serves_passed_socket(self):
        d = Daemon(start=False)
        self.track(d)
        d.wrapper = ["systemd-socket-activate", "-l", d.sock]
        d.start()
        log = d.log_text()
        self.assertIn("socket passed by systemd", log)
        p = d.ctl("submit", "--wait", "--", "sh", "-c", "echo activated")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "activated\n")
        self.assertEqual(d.status()["socket"], d.sock)
        d.ctl("shutdown")
        self.assertEqual(d.wait_exit(15), 0)
        # The socket belongs to systemd: taskd never removes it.
        self.assertTrue(os.path.exists(d.sock), "taskd removed the passed socket")

    def test_two_sockets_refused(self):
        d = Daemon(start=False)
        self.track(d)
        d.wrapper = ["systemd-socket-activate", "-l", d.sock,
                     "-l", d.sock + "2"]
        with self.assertRaises(Exception):
            d.start(timeout=5)
        self.assertIn("taskd uses exactly one", d.log_text())


if __name__ == "__main__":
    main()
