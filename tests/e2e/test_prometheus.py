#!/usr/bin/python3
"""A real Prometheus (Debian's `prometheus`) scrapes a test taskd's /metrics
every second on loopback, and answers queries about it through its HTTP
API: the target is up with no scrape error, the samples follow the jobs
taskctl submits, and the metadata shows Prometheus negotiated OpenMetrics
(info and unit come only with it). One Prometheus for the file, on a free
port, with its data in a temp dir."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from harness import E2ETestCase, protect, wait_for
import webtest as W

PROMETHEUS = shutil.which("prometheus")

CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: taskd
    static_configs:
      - targets: ["127.0.0.1:%d"]
"""


class PrometheusTest(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if PROMETHEUS is None:
            raise AssertionError("prometheus is not installed: apt-get install prometheus "
                                 "(scripts/setup installs it)")

    def start_prometheus(self, taskd_port):
        tmp = tempfile.mkdtemp(prefix="taskd-prom-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "prometheus.yml")
        with open(conf, "w") as f:
            f.write(CONFIG % taskd_port)
        port = W.free_port()
        log = open(os.path.join(tmp, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([PROMETHEUS, "--config.file=" + conf,
                              "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                              "--web.listen-address=127.0.0.1:%d" % port,
                              "--log.level=warn"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=tmp)
        protect(p.pid)

        def stop():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        self.addCleanup(stop)
        self.prom = "http://127.0.0.1:%d" % port
        self.prom_log = os.path.join(tmp, "prometheus.log")

        def ready():
            if p.poll() is not None:
                with open(self.prom_log, errors="replace") as f:
                    raise AssertionError("prometheus exited: " + f.read()[-2000:])
            try:
                with urllib.request.urlopen(self.prom + "/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(ready, 30, 0.1, what="prometheus to be ready")

    def api(self, path, **params):
        url = self.prom + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def query(self, expr):
        """The value of an instant query with one series, or None."""
        res = self.api("/api/v1/query", query=expr)["result"]
        return float(res[0]["value"][1]) if res else None

    def test_scraped_and_queried(self):
        d = W.start_http_daemon(self, token=True)  # /metrics needs no token
        self.start_prometheus(d.http[1])
        # The target is up and its last scrape went through the parser without error.
        def target_up():
            t = self.api("/api/v1/targets")["activeTargets"]
            return t and t[0]["health"] == "up" and t[0]
        t = wait_for(target_up, 20, 0.2, what="the taskd target to be up")
        self.assertEqual(t["lastError"], "")
        self.assertEqual(self.query('up{job="taskd"}'), 1)
        # Jobs taskctl submits show up in the counters and histograms.
        for argv in (["true"], ["true"], ["sh", "-c", "exit 1"]):
            p = d.ctl("submit", "--wait", "--class", "io", "--", *argv)
            self.assertIn(p.returncode, (0, 1))
        wait_for(lambda: self.query('sum(taskd_jobs_finished_total{class="io"})') == 3, 15, 0.2,
                 what="prometheus to see 3 finished jobs")
        self.assertEqual(self.query('taskd_jobs_finished_total{class="io",state="failed"}'), 1)
        self.assertEqual(self.query('taskd_job_duration_seconds_count{class="io"}'), 3)
        self.assertEqual(self.query('taskd_job_duration_seconds_bucket{class="io",le="+Inf"}'), 3)
        self.assertGreaterEqual(self.query("taskd_store_commit_seconds_count"), 1)
        self.assertEqual(self.query('taskd_build_info{version!=""}'), 1)
        # OpenMetrics was negotiated: the info type and the unit come only with it.
        # (An OpenMetrics info family is named without its _info suffix.)
        meta = self.api("/api/v1/targets/metadata", metric="taskd_build")
        self.assertEqual([m["type"] for m in meta], ["info"])
        meta = self.api("/api/v1/targets/metadata", metric="taskd_jobs_finished")
        self.assertEqual([m["type"] for m in meta], ["counter"])
        meta = self.api("/api/v1/targets/metadata", metric="taskd_job_duration_seconds")
        self.assertEqual(meta[0]["type"], "histogram")
        self.assertEqual(meta[0]["unit"], "seconds")
        # A histogram query works on what it stored.
        q = self.query('histogram_quantile(0.5, sum by (le) '
                       '(taskd_job_duration_seconds_bucket{class="io"}))')
        self.assertIsNotNone(q)
        self.assertGreater(q, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
