#!/usr/bin/python3
"""End-to-end tests of issue 8's observation features: labels (submit, show,
list/wait/cancel by label, bad labels), clean, the events stream (subscribe,
taskctl events) and wait's progress line."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

from harness import E2ETestCase, TASKCTL, wait_for

NOBODY = 65534
RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")


def ids_of(jobs):
    return [j["id"] for j in jobs]


class LabelTest(E2ETestCase):
    shared_daemon = True

    def submit_labeled(self, labels, argv=("true",), **fields):
        return self.d.submit(list(argv), labels=labels, **fields)

    def test_submit_show_list(self):
        p = self.d.ctl("submit", "--label", "app=web", "--label", "env=prod", "--name", "b1",
                       "--", "true")
        self.assertRc(p, 0)
        jid = int(p.stdout)
        j = self.d.wait_job(jid)
        self.assertEqual(j["labels"], {"app": "web", "env": "prod"})
        self.assertEqual(self.d.ctl_json("show", jid)["labels"], {"app": "web", "env": "prod"})
        plain = self.d.submit(["true"])
        self.assertEqual(self.d.show(plain)["labels"], {})
        # list --label: AND of the labels; --name
        other = self.submit_labeled({"app": "web", "env": "dev"})
        got = ids_of(self.d.ctl_json("list", "--label", "app=web", "--limit", "0")["jobs"])
        self.assertIn(jid, got)
        self.assertIn(other, got)
        self.assertNotIn(plain, got)
        got = ids_of(self.d.ctl_json("list", "--label", "app=web", "--label", "env=prod",
                                     "--limit", "0")["jobs"])
        self.assertEqual(got, [jid])
        self.assertEqual(ids_of(self.d.ctl_json("list", "--name", "b1")["jobs"]), [jid])
        self.assertEqual(self.d.ctl_json("list", "--label", "app=nothing")["jobs"], [])
        # the table shows a LABELS column when a job has labels
        p = self.d.ctl("list", "--label", "app=web", "--label", "env=prod")
        self.assertRc(p, 0)
        self.assertIn("LABELS", p.stdout.splitlines()[0])
        self.assertIn("app=web,env=prod", p.stdout)
        p = self.d.ctl("list", "--state", "queued", "--name", "no-such-name")
        self.assertRc(p, 0)
        self.assertNotIn("LABELS", p.stdout)

    def test_bad_labels_rejected(self):
        before = self.d.list_jobs()
        bad = [
            ([], "must be an object"),
            ({"": "v"}, "bad key"),
            ({"a b": "v"}, "bad key"),
            ({"k" * 65: "v"}, "bad key"),
            ({"k": 1}, "must be a string"),
            ({"k": "v" * 257}, "at most 256 bytes"),
            ({"k%d" % i: "v" for i in range(33)}, "33 labels"),
        ]
        for labels, text in bad:
            with self.subTest(labels=str(labels)[:40]):
                r = self.d.request({"id": 1, "op": "submit", "argv": ["true"],
                                    "labels": labels})
                self.assertError(r, "bad_request")
                self.assertIn(text, r["error"]["message"])
                r = self.d.request({"id": 2, "op": "submit", "jobs": [
                    {"type": "noop"}, {"type": "noop", "labels": labels}]})
                self.assertError(r, "bad_request")
                self.assertTrue(r["error"]["message"].startswith("jobs[1]: "), r)
        # selectors: empty or malformed
        for op in ("list", "wait", "cancel"):
            for sel in ({}, {"a b": "c"}, "a=b"):
                r = self.d.request({"id": 3, "op": op, "labels": sel})
                self.assertError(r, "bad_request")
        r = self.d.request({"id": 4, "op": "cancel", "job": 1, "labels": {"a": "b"}})
        self.assertError(r, "bad_request")
        self.assertEqual(self.d.list_jobs(), before, "a rejected request changed the table")
        # taskctl checks too: usage errors (2), nothing sent
        for arg in ("novalue", "=v", "a b=c", "k" * 65 + "=v", "k=" + "v" * 257):
            with self.subTest(arg=arg[:20]):
                p = self.d.ctl("submit", "--label", arg, "--", "true")
                self.assertRc(p, 2)
                self.assertIn("label", p.stderr)
        many = []
        for i in range(33):
            many += ["--label", "k%d=v" % i]
        self.assertRc(self.d.ctl("submit", *many, "--", "true"), 2)
        self.assertRc(self.d.ctl("wait", "--label", "a=b", "7"), 2)
        self.assertRc(self.d.ctl("cancel", "--label", "bad key=1"), 2)
        self.assertEqual(self.d.list_jobs(), before)

    def test_wait_by_label(self):
        ids = [self.submit_labeled({"grp": "w1"}, ["sleep", "0.%d" % n]) for n in (3, 1, 2)]
        bad = self.submit_labeled({"grp": "w1"}, ["sh", "-c", "sleep 0.2; exit 3"])
        self.submit_labeled({"grp": "w2"}, ["true"])
        t0 = time.monotonic()
        r = self.d.ok({"id": 1, "op": "wait", "labels": {"grp": "w1"}})
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        self.assertEqual(ids_of(r["jobs"]), ids + [bad])
        self.assertTrue(all(j["state"] in ("done", "failed") for j in r["jobs"]))
        # taskctl: exits with the first failure's code, a line per job
        p = self.d.ctl("wait", "--label", "grp=w1")
        self.assertRc(p, 3)
        self.assertEqual(len(p.stdout.splitlines()), 4, p.stdout)
        js = self.d.ctl_json("wait", "--label", "grp=w1", check=False)
        self.assertEqual(ids_of(js), ids + [bad])
        # nothing matches: answered at once, empty
        self.assertEqual(self.d.ok({"id": 2, "op": "wait", "labels": {"grp": "none"}}),
                         {"jobs": []})
        p = self.d.ctl("wait", "--label", "grp=none")
        self.assertRc(p, 0)
        self.assertIn("no job matches", p.stderr)

    def test_wait_by_label_only_existing_jobs(self):
        first = self.submit_labeled({"grp": "w3"}, ["sleep", "0.3"])
        with self.d.connect() as c:
            c.send({"id": "w", "op": "wait", "labels": {"grp": "w3"}})
            time.sleep(0.1)
            later = self.submit_labeled({"grp": "w3"}, ["sleep", "5"])
            self.cancel_at_cleanup(later)
            r = c.recv_id("w", timeout=4)
        self.assertEqual(ids_of(self.assertOk(r)["jobs"]), [first])

    def test_cancel_by_label(self):
        done = self.submit_labeled({"grp": "c1"}, ["true"])
        self.d.wait_job(done)
        running = self.submit_labeled({"grp": "c1"}, ["sleep", "30"], **{"class": "io"})
        self.d.wait_state(running, "running")
        queued = [self.submit_labeled({"grp": "c1"}, ["sleep", "30"], **{"class": "io",
                                                                          "priority": 19})
                  for _ in range(4)]
        for q in queued:
            self.cancel_at_cleanup(q)
        keep = self.submit_labeled({"grp": "c2"}, ["sleep", "30"], **{"class": "io",
                                                                       "priority": 19})
        self.cancel_at_cleanup(keep)
        r = self.d.ok({"id": 1, "op": "cancel", "labels": {"grp": "c1"}})
        self.assertEqual(sorted(r["ids"]), sorted([running] + queued))
        # thread_pool.max_threads is 4: the first three queued ones run too
        self.assertEqual(sorted(r["cancelling"]), [running] + queued[:3])
        for jid in [running] + queued:
            self.assertEqual(self.d.wait_job(jid, timeout=10)["state"], "cancelled")
        self.assertEqual(self.d.show(done)["state"], "done")
        self.assertIn(self.d.show(keep)["state"], ("queued", "running"))
        # again: nothing left to cancel
        p = self.d.ctl("cancel", "--label", "grp=c1")
        self.assertRc(p, 0)
        self.assertIn("no unfinished job matches", p.stderr)
        self.assertEqual(self.d.ctl_json("cancel", "--label", "grp=c1"),
                         {"ids": [], "cancelling": []})

    def test_cancel_by_label_cli(self):
        ids = [self.submit_labeled({"grp": "c3"}, ["sleep", "30"], **{"class": "io",
                                                                       "priority": 19})
               for _ in range(2)]
        p = self.d.ctl("cancel", "--label", "grp=c3")
        self.assertRc(p, 0)
        lines = sorted(p.stdout.split("\n")[:-1])
        self.assertEqual(len(lines), 2, p.stdout)
        for jid in ids:
            self.assertTrue(any(l.startswith("%d cancel" % jid) for l in lines), p.stdout)
        for jid in ids:
            self.assertEqual(self.d.wait_job(jid)["state"], "cancelled")


class LabelRestartTest(E2ETestCase):
    def test_labels_survive_restart(self):
        d = self.start_daemon()
        done = d.submit(["true"], labels={"app": "x", "n": "1"})
        d.wait_job(done)
        queued = d.submit(["true"], labels={"app": "x", "n": "2"}, **{"class": "io"})
        d.wait_job(queued)
        d.stop()
        d.start()
        self.assertEqual(d.show(done)["labels"], {"app": "x", "n": "1"})
        self.assertEqual(d.show(queued)["labels"], {"app": "x", "n": "2"})
        self.assertEqual(ids_of(d.list_jobs(labels={"n": "2"})), [queued])


class CleanTest(E2ETestCase):
    def out_files(self, d, jid):
        return [os.path.exists(os.path.join(d.state_dir, "jobs", "%d.%s" % (jid, ext)))
                for ext in ("out", "err")]

    def test_clean_removes_rows_and_files(self):
        d = self.start_daemon()
        ok = d.submit(["sh", "-c", "echo out; echo err >&2"], labels={"k": "a"})
        bad = d.submit(["sh", "-c", "echo x; exit 1"], labels={"k": "b"})
        old = d.submit(["sh", "-c", "echo y"], labels={"k": "b"}, name="keep-me")
        for j in (ok, bad, old):
            d.wait_job(j)
        running = d.submit(["sleep", "30"], **{"class": "io"})
        self.cancel_at_cleanup(running, d)
        d.wait_state(running, "running")
        self.assertEqual(self.out_files(d, ok), [True, True])
        # a non-final state is refused, nothing removed
        r = d.request({"id": 1, "op": "clean", "state": "running"})
        self.assertError(r, "bad_request")
        self.assertIn("finished jobs only", r["error"]["message"])
        for bad_req in ({"state": "x"}, {"labels": {}}, {"older_than": -1},
                        {"older_than": "1h"}, {"states": ["done", "queued"]}):
            self.assertError(d.request(dict({"id": 2, "op": "clean"}, **bad_req)),
                             "bad_request")
        self.assertRc(d.ctl("clean", "--state", "running"), 2)
        self.assertRc(d.ctl("clean", "--before", "soon"), 2)
        self.assertEqual(len(d.list_jobs()), 4)
        # by state
        self.assertEqual(d.ok({"id": 3, "op": "clean", "state": "failed"}), {"removed": 1})
        self.assertError(d.request({"id": 4, "op": "show", "job": bad}), "not_found")
        self.assertEqual(self.out_files(d, bad), [False, False])
        # by label and name: nothing else matches
        self.assertEqual(d.ok({"id": 5, "op": "clean", "labels": {"k": "b"},
                               "name": "other"}), {"removed": 0})
        # --before: these finished just now
        p = d.ctl("clean", "--before", "1h")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout.strip(), "removed 0 jobs")
        # everything finished: the running job stays
        self.assertEqual(d.ctl_json("clean", "--label", "k=a"), {"removed": 1})
        self.assertEqual(self.out_files(d, ok), [False, False])
        self.assertEqual(d.ctl("clean").stdout.strip(), "removed 1 job")
        self.assertEqual(ids_of(d.list_jobs()), [running])
        self.assertEqual(d.status()["counters"]["jobs_cleaned"], 3)
        d.cancel(running)
        d.wait_job(running)
        # restart on the same state dir: the cleaned jobs stay gone
        d.stop()
        d.start()
        self.assertEqual(ids_of(d.list_jobs()), [running])
        for j in (ok, bad, old):
            self.assertError(d.request({"id": 6, "op": "show", "job": j}), "not_found")
        # ids are never reused
        self.assertGreater(d.submit(["true"]), running)

    def test_clean_before(self):
        d = self.start_daemon()
        a = d.submit(["true"])
        d.wait_job(a)
        time.sleep(1.2)
        b = d.submit(["true"])
        d.wait_job(b)
        self.assertEqual(d.ok({"id": 1, "op": "clean", "older_than": 1.0}), {"removed": 1})
        self.assertEqual(ids_of(d.list_jobs()), [b])
        self.assertEqual(d.ctl_json("clean", "--before", "0"), {"removed": 1})
        self.assertEqual(d.list_jobs(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
