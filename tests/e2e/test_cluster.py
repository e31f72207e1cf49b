"""Cluster mode (issue 18, doc/cluster.md): real nats-servers with JetStream on
loopback (free ports, temp stores) and several taskd nodes on this machine.

Each test starts its own nats-server(s) and nodes and stops them. Skipped
when nats-server is not installed or taskd was built without cluster
support (scripts/setup installs both, so CI runs them).

CLUSTER_SLOW=1 runs the heavy sizes (the `slow` suite): more jobs per
scenario; the default sizes keep each scenario meaningful and short.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import natsfix  # noqa: E402
from harness import TASKD, E2ETestCase, main, wait_for  # noqa: E402

SLOW = os.environ.get("CLUSTER_SLOW") == "1"
ACK_WAIT = 2  # seconds before the job of a silent node goes to another


def cluster_built():
    """Does this taskd take a cluster group (built with libnats)?"""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write('cluster = { url = "nats://127.0.0.1:1"; };\n')
        f.flush()
        p = subprocess.run([TASKD, "-t", "-c", f.name], capture_output=True, text=True)
    return p.returncode == 0


SKIP = None
if not natsfix.nats_available():
    SKIP = "nats-server is not installed (apt-get install nats-server)"
elif not cluster_built():
    SKIP = "taskd was built without cluster support (libnats)"


class Server(natsfix.NatsServer):
    """A nats-server the harness does not take for a stray (it reaps those)."""

    def start(self, wait=True):
        super().start(wait)
        harness._protected_pids.add(self.proc.pid)
        return self


class Cluster(natsfix.NatsCluster):
    server_class = Server


@unittest.skipIf(SKIP is not None, SKIP or "")
class ClusterCase(E2ETestCase):
    """Helpers: nats-servers and nodes that are stopped when the test ends."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="taskd-cluster-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))

    def nats(self, port=None):
        s = Server(self.tmp, "nats%d" % time.monotonic_ns(), port=port)
        self.addCleanup(s.stop)
        self.addCleanup(self._report_nats, s)
        return s.start()

    def nats_cluster(self):
        c = Cluster(self.tmp)
        self.addCleanup(c.stop)
        for s in c.servers:
            self.addCleanup(self._report_nats, s)
        return c.start()

    def _report_nats(self, s):
        if self._failed():
            sys.stderr.write("\n----- %s: log tail -----\n%s\n" % (s.name, s.log_tail(15)))

    def node(self, name, url, ready=True, **overrides):
        cfg = {"cluster.url": url, "cluster.node": name, "cluster.ack_wait": ACK_WAIT,
               "process_pool.mode": "static", "process_pool.min_workers": 2,
               "process_pool.max_workers": 2, "thread_pool.max_threads": 8,
               "log_level": "info"}
        cfg.update(overrides)
        d = self.start_daemon(cfg)
        if ready:
            self.wait_ready(d)
        return d

    def cluster_status(self, d):
        return d.status()["cluster"]

    def wait_ready(self, d, timeout=30):
        wait_for(lambda: self.cluster_status(d)["state"] == "ready", timeout,
                 what="node %s ready" % d.sock)

    def wait_all(self, d, label, n, timeout=120, listed=20):
        """Wait (on node d) for the n jobs labelled t=label to end; their objects."""
        self.wait_listed(d, label, n, listed)
        r = d.ok({"v": 1, "id": "w", "op": "wait", "labels": {"t": label}}, timeout=timeout)
        jobs = r["jobs"]
        # The answer's other pages come from list (doc/protocol.md "Pages").
        while r.get("next") is not None:
            r = d.ok({"v": 1, "id": "l", "op": "list", "labels": {"t": label},
                      "cursor": r["next"]})
            jobs += r["jobs"]
        self.assertEqual(len(jobs), n)
        return jobs

    def wait_known(self, d, jid, timeout=5):
        """Until node d's mirror has job jid (submitted on another node: within moments)."""
        wait_for(lambda: d.request({"v": 1, "id": "k", "op": "show", "job": jid})["ok"],
                 timeout, what="job %d known to %s" % (jid, d.sock))

    def wait_listed(self, d, label, n, timeout=20):
        """Until node d's mirror lists all n jobs of label t=label."""
        return wait_for(lambda: len(d.list_jobs(labels={"t": label})) == n or None, timeout,
                        what="%d jobs t=%s listed" % (n, label))

    def submit_spread(self, nodes, label, n, job):
        """n jobs (job: a job description) submitted in batches, a share to each node."""
        ids = []
        per = (n + len(nodes) - 1) // len(nodes)
        for i, d in enumerate(nodes):
            k = min(per, n - i * per)
            batch = [dict(job, labels={"t": label}) for _ in range(k)]
            for start in range(0, k, 1000):
                ids += d.submit_batch(batch[start:start + 1000])
        self.assertEqual(len(ids), n)
        self.assertEqual(len(set(ids)), n, "job ids are unique in the cluster")
        return ids


class SingleNodeTest(E2ETestCase):
    def test_local_is_accepted_without_a_cluster(self):
        """A single node keeps every job: "local" changes nothing there."""
        d = self.start_daemon()
        jid = d.submit(["true"], local=True)
        self.assertEqual(d.wait_job(jid)["state"], "done")
        self.assertNotIn("node", d.show(jid), "a single node's job object is unchanged")
        self.assertIsNone(d.status()["cluster"])
        self.assertError(d.request({"v": 1, "id": 1, "op": "submit", "argv": ["true"],
                                    "local": 1}), "bad_request")


class ClusterConfigTest(unittest.TestCase):
    def test_check_reports_file_and_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write('log_level = "info";\ncluster = {\n url = "nats://127.0.0.1:4222";\n'
                    ' node = "web.1";\n};\n')
            f.flush()
            p = subprocess.run([TASKD, "-t", "-c", f.name], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("%s:4: cluster.node: invalid value 'web.1'" % f.name, p.stderr)


class BadInputTest(ClusterCase):
    def test_nats_down_at_start(self):
        """No NATS at start: the node says so, retries with backoff, then gets going."""
        port = natsfix.free_port()
        d = self.node("n1", "nats://127.0.0.1:%d" % port, ready=False)
        st = wait_for(lambda: (lambda s: s if s["error"] else None)(self.cluster_status(d)),
                      10, what="a connection error in status")
        self.assertEqual(st["state"], "connecting")
        self.assertFalse(st["connected"])
        self.assertRegex(st["error"], "(?i)refused|no server|connect")
        p = d.ctl("submit", "--", "true")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("the cluster is not ready (connecting", p.stderr)
        wait_for(lambda: "cannot reach NATS at nats://127.0.0.1:%d" % port in d.log_text(), 10,
                 what="the log line")
        time.sleep(1.5)
        tries = d.log_text().count("cannot reach NATS")
        self.assertLess(tries, 8, "a log line per attempt, not with backoff")
        self.nats(port)
        self.wait_ready(d, 20)
        self.assertIsNone(self.cluster_status(d)["error"])
        jid = int(d.ctl("submit", "--", "true").stdout)
        self.assertEqual(d.wait_job(jid)["state"], "done")

    def test_stream_with_wrong_settings(self):
        s = self.nats()
        with natsfix.Client(s.port) as c:
            r = c.js("STREAM.CREATE.TASKD", {"name": "TASKD", "subjects": ["TASKD.jobs.>"],
                                              "retention": "limits", "storage": "file"})
            self.assertNotIn("error", r)
        d = self.node("n1", s.url, ready=False)
        st = wait_for(lambda: (lambda s: s if s["state"] == "failed" else None)(
            self.cluster_status(d)), 20, what="the setup to fail")
        self.assertIn("stream TASKD exists with settings taskd cannot use: its retention is "
                      "limits, taskd needs a work queue", st["error"])
        p = d.ctl("submit", "--", "true")
        self.assertEqual(p.returncode, 4)
        self.assertIn("retention is limits", p.stderr)
        self.assertIn("stream TASKD exists with settings", d.log_text())
        self.assertDaemonServes(d)

    def test_single_node_features_refused(self):
        """What holds only on one node is refused in cluster mode, and nothing is submitted."""
        s = self.nats()
        d = self.node("n1", s.url, queues=[{"name": "gpu", "slots": 1}])
        cmd = {"v": 1, "id": "s", "op": "submit", "argv": ["true"], "class": "io"}
        for extra, word in (({"input": "aGk="}, "input"), ({"unique": "k"}, "unique"),
                            ({"queue": "gpu"}, "queue"), ({"slots": 2, "class": "cpu"}, "slots"),
                            ({"array": {"start": 1, "end": 3}}, "array")):
            r = d.request(dict(cmd, **extra))
            self.assertError(r, "bad_request")
            self.assertIn(word, r["error"]["message"])
            self.assertIn("cluster mode", r["error"]["message"])
        r = d.request({"v": 1, "id": "b", "op": "submit",
                       "jobs": [{"argv": ["true"]}, {"argv": ["true"], "unique": "k"}]})
        self.assertError(r, "bad_request")
        jid = int(d.ctl("submit", "--class", "io", "--", "true").stdout)
        self.assertEqual(d.wait_job(jid)["state"], "done")
        r = d.request({"v": 1, "id": "r", "op": "restart", "job": jid})
        self.assertError(r, "bad_request")
        self.assertIn("cluster mode", r["error"]["message"])
        self.assertEqual([j["id"] for j in d.list_jobs()], [jid])
        self.assertDaemonServes(d)

    def test_message_that_is_not_a_job(self):
        s = self.nats()
        d = self.node("n1", s.url)
        with natsfix.Client(s.port) as c:
            for body in (b"hello", b'{"v":9}', b'{"v":1,"state":"queued"}', b"\xff\x00"):
                ack = json.loads(c.request("TASKD.jobs.io", body))
                self.assertIn("seq", ack)
        jid = int(d.ctl("submit", "--class", "io", "--", "true").stdout)
        self.assertEqual(d.wait_job(jid)["state"], "done")
        wait_for(lambda: self.cluster_status(d)["counters"]["dropped"] == 4, 10,
                 what="4 messages dropped")
        self.assertEqual(d.log_text().count("not a taskd job"), 4)
        with natsfix.Client(s.port) as c:
            wait_for(lambda: c.js("STREAM.INFO.TASKD")["state"]["messages"] == 0, 10,
                     what="the stream to be empty: every message acknowledged")
        self.assertDaemonServes(d)


class ThreeNodesTest(ClusterCase):
    def test_many_jobs_spread_and_seen_from_every_node(self):
        n = 10000 if SLOW else 2000
        s = self.nats()
        nodes = [self.node("n%d" % i, s.url) for i in (1, 2, 3)]
        # The events of the whole cluster, from one node.
        ev = nodes[2].connect(timeout=60)
        self.addCleanup(ev.close)
        self.assertOk(ev.call({"id": "sub", "op": "subscribe", "labels": {"t": "big"},
                               "states": ["done"]}))
        # Read as they come (a subscriber that does not read is cut off: overflow).
        done, lines = set(), []

        def read_events():
            deadline = time.monotonic() + 180
            while len(done) < n and time.monotonic() < deadline:
                e = ev.recv(timeout=deadline - time.monotonic())
                lines.append(e)
                if "id" not in e:
                    return
                done.add(e["id"])
        reader = threading.Thread(target=read_events, daemon=True)
        reader.start()
        t0 = time.monotonic()
        ids = self.submit_spread(nodes, "big", n, {"type": "noop", "class": "io"})
        jobs = self.wait_all(nodes[0], "big", n)
        took = time.monotonic() - t0
        self.assertEqual({j["state"] for j in jobs}, {"done"})
        ran = {}
        for j in jobs:
            ran[j["node"]] = ran.get(j["node"], 0) + 1
        sys.stderr.write("\n%d jobs in %.1fs through 3 nodes: %s\n" % (n, took, ran))
        self.assertEqual(set(ran), {"n1", "n2", "n3"}, "every node ran jobs: %r" % ran)
        # A job submitted on one node runs on another (n1 took the first share of ids).
        per = (n + 2) // 3
        on_n1 = set(ids[:per])
        moved = sum(1 for j in jobs if j["id"] in on_n1 and j["node"] != "n1")
        self.assertGreater(moved, 0, "jobs submitted on n1 ran on n2 or n3")
        reader.join(60)
        self.assertEqual(len(done), n, "node n3 saw every job of the cluster end: %r"
                         % lines[-1:])
        # show from a node that did not run the job.
        for j in jobs[:50]:
            other = next(d for i, d in enumerate(nodes) if "n%d" % (i + 1) != j["node"])
            got = other.show(j["id"])
            self.assertEqual((got["state"], got["node"], got["result"]),
                             ("done", j["node"], None))
        # Every node knows every node.
        st = self.cluster_status(nodes[1])
        self.assertEqual([x["node"] for x in st["nodes"]], ["n1", "n2", "n3"])
        for x in st["nodes"]:
            self.assertEqual(x["io"]["slots"], 8)
            self.assertEqual(x["state"], "ready")
        p = nodes[1].ctl("status")
        self.assertIn("cluster:", p.stdout)
        self.assertRegex(p.stdout, r"n3 +vm|n3 ")

    def test_workflow_across_nodes(self):
        s = self.nats()
        n1, n2, n3 = (self.node("n%d" % i, s.url) for i in (1, 2, 3))
        # Output of a job that ran elsewhere, and wait from another node.
        a = int(n1.ctl("submit", "--local", "--", "sh", "-c", "echo out-of-a; sleep 0.3").stdout)
        # Another node's mirror has it within moments (the bucket's watch).
        self.wait_known(n2, a)
        ja = n2.wait_job(a)
        self.assertEqual((ja["state"], ja["node"]), ("done", "n1"))
        self.assertEqual(n2.read_output(a), b"out-of-a\n")
        p = n3.ctl("logs", a)
        self.assertEqual((p.returncode, p.stdout), (0, "out-of-a\n"))
        # A dependency submitted on another node than its job; a delay; retries.
        self.wait_known(n3, a)
        b = int(n2.ctl("submit", "--after", a, "--", "true").stdout)
        c = int(n3.ctl("submit", "--in", "1s", "--", "true").stdout)
        flag = os.path.join(self.tmp, "flag")
        r = int(n1.ctl("submit", "--retries", "2", "--retry-delay", "0.2", "--", "sh", "-c",
                       "test -e %s || { touch %s; exit 1; }" % (flag, flag)).stdout)
        for d, jid in ((n3, b), (n1, c), (n2, r)):
            self.wait_known(d, jid)
        self.assertEqual(n3.wait_job(b)["state"], "done")
        jc = n1.wait_job(c)
        self.assertEqual(jc["state"], "done")
        self.assertGreaterEqual(jc["started_at"], jc["run_at"] - 0.05)
        jr = n2.wait_job(r)
        self.assertEqual((jr["state"], jr["attempt"]), ("done", 2))
        self.assertEqual([x["state"] for x in jr["attempts"]], ["failed"])
        # Cancel from another node: running there, and queued in the cluster.
        x = int(n1.ctl("submit", "--local", "--", "sleep", "30").stdout)
        self.wait_known(n3, x)
        wait_for(lambda: n3.show(x)["state"] == "running", 10, what="job running")
        p = n3.ctl("cancel", x)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_known(n2, x)
        jx = n2.wait_job(x)
        self.assertEqual((jx["state"], jx["node"]), ("cancelled", "n1"))
        y = int(n2.ctl("submit", "--in", "1h", "--", "true").stdout)
        self.wait_known(n1, y)
        self.assertEqual(n1.show(y)["state"], "scheduled")
        self.assertEqual(n1.cancel(y)["state"], "cancelled")
        self.wait_known(n3, y)
        self.assertEqual(n3.wait_job(y)["state"], "cancelled")
        # pause acts on the jobs a node holds.
        p = n1.ctl("pause", y)
        self.assertEqual(p.returncode, 4)
        # The node that has the output is gone: a clear error.
        n1.stop()
        p = n2.ctl("logs", a)
        self.assertEqual(p.returncode, 4)
        self.assertRegex(p.stderr, "node n1, which ran job %d.*(not connected|did not answer)"
                         % a)


class StopTest(ClusterCase):
    def test_stop_hands_jobs_back(self):
        """SIGTERM of a node: what it holds goes to the other nodes; nothing is cancelled."""
        s = self.nats()
        n1 = self.node("n1", s.url)
        ids = n1.submit_batch([{"argv": ["sleep", "1"], "class": "io", "labels": {"t": "st"}}
                               for _ in range(12)])
        wait_for(lambda: sum(1 for j in n1.list_jobs(labels={"t": "st"})
                             if j["state"] == "running") == 8, 10, what="8 running on n1")
        n2 = self.node("n2", s.url)
        self.wait_listed(n2, "st", 12)
        n1.stop()
        self.assertEqual(n1.returncode, 0)
        self.assertIn("stopped, handed back to the cluster", n1.log_text())
        jobs = self.wait_all(n2, "st", 12, timeout=60)
        self.assertEqual({j["state"] for j in jobs}, {"done"})
        self.assertEqual({j["node"] for j in jobs}, {"n2"})
        # The 8 that ran on n1 ran again (marked); the 4 queued there just moved.
        self.assertEqual(sum(1 for j in jobs if j["redelivered"]), 8)
        self.assertEqual({j["redelivered_from"] for j in jobs if j["redelivered"]}, {"n1"})
        self.assertEqual(sorted(j["id"] for j in jobs), sorted(ids))
        # n1 left the nodes' list at once.
        self.assertEqual([x["node"] for x in self.cluster_status(n2)["nodes"]], ["n2"])

    def test_drain_finishes_what_runs(self):
        s = self.nats()
        n1 = self.node("n1", s.url)
        ids = n1.submit_batch([{"argv": ["sleep", "0.5"], "class": "io", "labels": {"t": "dr"}}
                               for _ in range(3)])
        wait_for(lambda: all(n1.show(i)["state"] == "running" for i in ids), 10,
                 what="running")
        p = n1.ctl("shutdown", "--drain")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(n1.wait_exit(30), 0)
        n2 = self.node("n2", s.url)
        jobs = self.wait_all(n2, "dr", 3)
        self.assertEqual([(j["state"], j["node"], j["redelivered"]) for j in jobs],
                         [("done", "n1", False)] * 3)

    def test_clean_and_limits(self):
        s = self.nats()
        n1, n2 = self.node("n1", s.url), self.node("n2", s.url)
        jid = int(n1.ctl("submit", "--", "true").stdout)
        self.wait_known(n2, jid)
        self.assertEqual(n2.wait_job(jid)["state"], "done")
        self.assertEqual(n2.ok({"v": 1, "id": "c", "op": "clean"})["removed"], 1)
        wait_for(lambda: not n1.request({"v": 1, "id": "k", "op": "show", "job": jid})["ok"],
                 5, what="n1 to forget the cleaned job")
        # A start time beyond what the bucket keeps is refused, not lost.
        p = n1.ctl("submit", "--in", "30d", "--", "true")
        self.assertEqual(p.returncode, 4)
        self.assertIn("more than cluster.keep", p.stderr)
        r = n1.request({"v": 1, "id": 1, "op": "submit", "argv": ["true"], "local": "yes"})
        self.assertError(r, "bad_request")


class NodeKilledTest(ClusterCase):
    def test_kill9_one_node_mid_run(self):
        """Every job still ends done; only jobs the dead node held run twice, marked."""
        n = 600 if SLOW else 240
        s = self.nats()
        nodes = [self.node("n%d" % i, s.url) for i in (1, 2, 3)]
        runs = os.path.join(self.tmp, "runs")
        job = {"argv": ["sh", "-c", 'echo "$0" >> %s; sleep 0.3' % runs, "x"], "class": "io"}
        ids = []
        for i, d in enumerate(nodes):
            batch = []
            for k in range(n // 3):
                j = dict(job, labels={"t": "k9"})
                j["argv"] = job["argv"][:3] + ["%s-%d" % (d.sock, k)]
                batch.append(j)
            ids += d.submit_batch(batch)
        # Mid-run: n1 runs some of them.
        wait_for(lambda: sum(1 for j in nodes[1].list_jobs(labels={"t": "k9"})
                             if j["node"] == "n1" and j["state"] == "running") > 0, 20,
                 what="n1 running jobs")
        held = [j["id"] for j in nodes[1].list_jobs(labels={"t": "k9"})
                if j["node"] == "n1" and j["state"] == "running"]
        nodes[0].proc.kill()
        nodes[0].proc.wait()
        jobs = self.wait_all(nodes[1], "k9", len(ids), timeout=180)
        self.assertEqual({j["state"] for j in jobs}, {"done"}, "none lost")
        redelivered = [j for j in jobs if j["redelivered"]]
        self.assertTrue(redelivered, "the jobs n1 was running went to other nodes")
        for j in redelivered:
            # null: n1 took it and was killed before it wrote a word about it.
            self.assertIn(j["redelivered_from"], ("n1", None))
            self.assertIn(j["node"], ("n2", "n3"))
        # Duplicates: which commands ran twice (the killed node's runs go on until killed).
        time.sleep(0.5)
        with open(runs) as f:
            lines = f.read().split()
        count = {}
        for x in lines:
            count[x] = count.get(x, 0) + 1
        args = {j["id"]: j["argv"][3] for j in jobs}
        dup = [i for i, a in args.items() if count.get(a, 0) > 1]
        self.assertEqual(len(count), len(ids), "every job ran")
        red_ids = {j["id"] for j in redelivered}
        for i in dup:
            self.assertIn(i, red_ids, "a job that ran twice is marked redelivered")
        sys.stderr.write("\nkill -9 of n1 with %d jobs: %d running on n1 at the kill, %d "
                         "redelivered, %d ran twice\n" % (len(ids), len(held), len(red_ids),
                                                          len(dup)))
        self.assertLessEqual(len(red_ids), 8 + 2 + 64,
                             "at most what n1 could hold (its slots and its own queue)")


class NatsRestartTest(ClusterCase):
    def test_restart_of_nats_server(self):
        """Nothing acknowledged is lost when the only nats-server restarts mid-run."""
        n = 1000 if SLOW else 200
        s = self.nats()
        n1, n2 = self.node("n1", s.url), self.node("n2", s.url)
        ids = self.submit_spread([n1, n2], "rs", n,
                                 {"argv": ["sleep", "0.05"], "class": "io"})
        wait_for(lambda: sum(1 for j in n1.list_jobs(labels={"t": "rs"})
                             if j["state"] == "done") > 10, 30, what="some jobs done")
        s.stop()
        wait_for(lambda: self.cluster_status(n1)["state"] == "connecting", 15,
                 what="n1 to notice")
        s.start()
        self.wait_ready(n1, 30)
        self.wait_ready(n2, 30)
        more = n1.submit_batch([{"argv": ["true"], "class": "io", "labels": {"t": "rs"}}])
        jobs = self.wait_all(n2, "rs", len(ids) + 1, timeout=180)
        self.assertEqual({j["state"] for j in jobs}, {"done"})
        self.assertEqual(sorted(j["id"] for j in jobs), sorted(ids + more))


class NatsClusterTest(ClusterCase):
    def test_one_server_killed_mid_run(self):
        """Three nats-servers, replicas 3: one killed mid-run, jobs keep flowing."""
        n = 600 if SLOW else 150
        c = self.nats_cluster()
        nodes = [self.node("n%d" % i, c.url, ready=False, **{"cluster.replicas": 3})
                 for i in (1, 2, 3)]
        for d in nodes:
            self.wait_ready(d, 60)
        ids = self.submit_spread(nodes, "nc", n, {"argv": ["sleep", "0.05"], "class": "io"})
        wait_for(lambda: sum(1 for j in nodes[0].list_jobs(labels={"t": "nc"})
                             if j["state"] == "done") > 10, 30, what="some jobs done")
        c.servers[0].kill()
        # A node that was connected to it refuses submits (unavailable) until it reconnected.
        batch = [{"argv": ["true"], "class": "io", "labels": {"t": "nc"}} for _ in range(10)]

        def submit():
            r = nodes[1].request({"v": 1, "id": "b", "op": "submit", "jobs": batch})
            if not r["ok"]:
                self.assertEqual(r["error"]["code"], "unavailable", r)
                return None
            return r["result"]["ids"]
        later = wait_for(submit, 30, what="a submit after the kill")
        # A node whose bucket watches were on the killed server sees nothing new
        # until it finds them silent (the heartbeats of 5 s) and watches again.
        jobs = self.wait_all(nodes[2], "nc", n + 10, timeout=180, listed=60)
        self.assertEqual({j["state"] for j in jobs}, {"done"})
        self.assertEqual(sorted(j["id"] for j in jobs), sorted(ids + later))
        # Every node's mirror goes on.
        for d in nodes[:2]:
            wait_for(lambda: [j["state"] for j in d.list_jobs(labels={"t": "nc"})] ==
                     ["done"] * (n + 10), 60, what="%s to see every job done" % d.sock)


if __name__ == "__main__":
    main()
