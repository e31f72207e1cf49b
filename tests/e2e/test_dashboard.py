#!/usr/bin/python3
"""The dashboard in a real browser: headless Chromium (Debian's `chromium`),
driven over its DevTools protocol (cdp.py), loads taskd's page with the
token, shows a job submitted by taskctl within a second, follows it to its
end, opens its page with the output, and logs no console error, uncaught
exception or failed load throughout. A screenshot is written as a test
artifact (TASKD_ARTIFACTS, default the build's meson-logs; the path is
printed). One Chromium for the whole file."""

import os
import sys
import time
import unittest

from harness import E2ETestCase, protect
import cdp
import webtest as W

ARTIFACTS = os.environ.get("TASKD_ARTIFACTS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "meson-logs")


def row_selector(table, jid):
    return "document.querySelector('#%s tr[data-id=\"%d\"]')" % (table, jid)


class DashboardTest(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cdp.find_chromium() is None:
            raise AssertionError("chromium is not installed: apt-get install chromium "
                                 "(scripts/setup installs it)")
        cls.browser = cdp.Browser()
        cls.addClassCleanup(cls.browser.stop)
        protect(cls.browser.proc.pid)

    def setUp(self):
        super().setUp()
        self.d = W.start_http_daemon(self, extra={"thread_pool.max_threads": 4})
        self.page = self.browser.page()
        self.addCleanup(self.page.close)

    def open_dashboard(self):
        base = "http://127.0.0.1:%d" % self.d.http[1]
        self.page.navigate(base + "/?access_token=" + self.d.token)
        self.page.wait_for("document.getElementById('live').textContent === 'live'", 10)
        self.page.wait_for("document.getElementById('version').textContent.startsWith('v')", 5)
        # The token left the address bar: the cookie carries it.
        self.assertEqual(self.page.evaluate("location.search"), "")
        return base

    def assertNoErrors(self):
        self.page.pump(0.2)
        self.assertEqual(self.page.errors, [], "the page logged errors")

    def test_live_job(self):
        self.open_dashboard()
        # A job submitted by taskctl shows up within a second.
        t0 = time.monotonic()
        p = self.d.ctl("submit", "--name", "dash", "--", "sh", "-c",
                       "echo hello from the dashboard test; sleep 1.5; echo bye")
        self.assertRc(p, 0)
        jid = int(p.stdout)
        self.page.wait_for(row_selector("running", jid) + " !== null", 1.0, interval=0.02)
        seen = time.monotonic() - t0
        self.assertLess(seen, 1.0)
        self.page.wait_for(row_selector("running", jid) +
                           ".children[1].textContent.includes('dash — sh -c')", 3)
        # Its end: in the finished list with its exit code.
        self.page.wait_for(row_selector("recent", jid) + " !== null", 10)
        self.assertEqual(self.page.evaluate(row_selector("recent", jid) +
                                            ".children[3].textContent"), "0")
        self.assertIsNone(self.page.evaluate(row_selector("running", jid)))
        # The counters and the chart follow the status events.
        self.page.wait_for("Number(document.getElementById('q-pending').textContent) === 0", 5)
        self.page.wait_for("document.querySelector('#states').textContent.includes('done')", 5)
        # Its page: command, attempts, output.
        self.page.evaluate("location.hash = '#/jobs/%d'" % jid)
        self.page.wait_for("document.getElementById('job-output').textContent"
                           ".includes('hello from the dashboard test')", 5)
        fields = self.page.evaluate("document.getElementById('job-fields').textContent")
        self.assertIn("sh -c echo hello", fields)
        self.assertEqual(self.page.evaluate(
            "document.querySelectorAll('#job-attempts tr').length"), 1)
        self.page.evaluate("document.getElementById('tab-stderr').click()")
        self.page.wait_for("document.getElementById('job-output').textContent === '(nothing)'", 5)
        self.page.evaluate("location.hash = '#/'")
        self.page.wait_for("!document.getElementById('overview').classList.contains('hidden')", 5)
        self.assertNoErrors()
        sys.stderr.write("\n(dashboard showed job %d %.0f ms after taskctl submitted it)\n"
                         % (jid, seen * 1000))

    def test_screenshot(self):
        self.open_dashboard()
        # Something to look at: finished jobs of each kind, running ones, a queue.
        for argv in (["true"], ["sh", "-c", "exit 3"], ["sleep", "0.2"]):
            self.d.wait_job(self.d.submit(argv))
        for i in range(3):
            jid = self.d.submit(["sleep", "30"], name="long-%d" % i, **{"class": "io"})
            self.cancel_at_cleanup(jid, self.d)
        self.d.submit(["sleep", "1"], **{"class": "io"})
        self.page.wait_for("document.querySelectorAll('#running tr').length >= 3", 5)
        self.page.wait_for("document.querySelectorAll('#recent tr').length >= 3", 5)
        time.sleep(2.5)  # a few status events: the chart has bars
        self.page.pump(0.1)
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.abspath(os.path.join(ARTIFACTS, "dashboard.png"))
        n = self.page.screenshot(path)
        self.assertGreater(n, 10000)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        sys.stderr.write("\n(screenshot of the dashboard: %s)\n" % path)
        self.assertNoErrors()

    def test_unauthorized_page_says_so(self):
        base = "http://127.0.0.1:%d" % self.d.http[1]
        self.page.navigate(base + "/?access_token=wrong-token-wrong-token")
        body = self.page.evaluate("document.body.textContent")
        self.assertIn("unauthorized", body)
        self.assertNotIn("Running jobs", body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
