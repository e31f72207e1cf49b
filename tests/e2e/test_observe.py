#!/usr/bin/python3
"""End-to-end tests of issue 8's observation features: labels (submit, show,
list/wait/cancel by label, bad labels), clean, the events stream (subscribe,
taskctl events) and wait's progress line."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import signal
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
        self.assertIn(self.d.show(ids[0])["state"], ("queued", "running"))
        r = self.d.ok({"id": 1, "op": "wait", "labels": {"grp": "w1"}})
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
                         {"jobs": [], "next": None})
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
                         {"ids": [], "cancelling": [], "next": None})

    def test_selector_with_unknown_field_rejected(self):
        """A misspelt selector field would widen what clean/cancel touch (to
        everything): it is an error, and nothing is changed."""
        done = self.submit_labeled({"grp": "typo"}, ["true"])
        self.d.wait_job(done)
        q = self.submit_labeled({"grp": "typo"}, ["true"], run_at=time.time() + 60)
        self.cancel_at_cleanup(q)
        bad = [
            {"op": "clean", "label": {"grp": "typo"}},
            {"op": "clean", "labels": {"grp": "typo"}, "nmae": "x"},
            {"op": "clean", "labels": {"grp": "typo"}, "ids": [done]},
            {"op": "cancel", "labels": {"grp": "typo"}, "nmae": "x"},
            {"op": "cancel", "labels": {"grp": "typo"}, "state": "queued"},
            {"op": "wait", "labels": {"grp": "typo"}, "older_than": 5},
            {"op": "subscribe", "label": {"grp": "typo"}},
        ]
        for req in bad:
            with self.subTest(req=req):
                r = self.d.request(dict(req, id=1))
                self.assertError(r, "bad_request")
                self.assertIn("unknown field", r["error"]["message"])
        self.assertEqual(self.d.show(done)["state"], "done")
        self.assertEqual(self.d.show(q)["state"], "scheduled")
        # "job" together with a selector keeps its own message
        r = self.d.request({"id": 2, "op": "cancel", "job": q, "labels": {"grp": "typo"}})
        self.assertError(r, "bad_request")
        self.assertIn("not both", r["error"]["message"])

    def test_label_given_twice_cli(self):
        """--label K=A --label K=B: no job has both, and keeping only the last
        would make cancel/clean act on all K=B jobs: a usage error."""
        q = self.submit_labeled({"grp": "twice-b"}, ["true"], run_at=time.time() + 60)
        self.cancel_at_cleanup(q)
        for cmd in (["cancel"], ["clean"], ["list"], ["wait"], ["events"],
                    ["submit", "--name", "t"]):
            with self.subTest(cmd=cmd[0]):
                args = cmd + ["--label", "grp=twice-a", "--label", "grp=twice-b"]
                if cmd[0] == "submit":
                    args += ["--", "true"]
                p = self.d.ctl(*args, timeout=10)
                self.assertRc(p, 2)
                self.assertIn("label 'grp' given twice", p.stderr)
        self.assertEqual(self.d.show(q)["state"], "scheduled")
        self.assertEqual(self.d.list_jobs(name="t"), [])
        # the same label twice with the same value is harmless
        p = self.d.ctl("list", "--label", "grp=twice-b", "--label", "grp=twice-b", "--json")
        self.assertRc(p, 0)
        self.assertEqual(ids_of(json.loads(p.stdout)["jobs"]), [q])

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

    def test_jobs_not_stored_yet_are_not_selected(self):
        """Requests pipelined right behind a submit do not see its job until the
        submit is stored and answered (it may still fail: then it never was)."""
        d = self.start_daemon()
        nid = d.submit(["true"]) + 1
        d.wait_job(nid - 1)
        sel = {"k": "early"}
        with d.connect() as s:
            s.send_raw("".join(json.dumps(r) + "\n" for r in [
                {"id": 1, "op": "submit", "argv": ["true"], "labels": sel,
                 "run_at": time.time() + 60},
                {"id": 2, "op": "cancel", "labels": sel},
                {"id": 3, "op": "cancel", "job": nid},
                {"id": 4, "op": "wait", "labels": sel},
                {"id": 5, "op": "wait", "job": nid},
                {"id": 6, "op": "priority", "job": nid, "priority": 5},
                {"id": 7, "op": "clean", "labels": sel},
                {"id": 8, "op": "list", "labels": sel},
                {"id": 9, "op": "show", "job": nid}]))
            self.assertEqual(self.assertOk(s.recv_id(1))["id"], nid)
            self.assertEqual(self.assertOk(s.recv_id(2))["ids"], [])
            self.assertError(s.recv_id(3), "not_found")
            self.assertEqual(self.assertOk(s.recv_id(4))["jobs"], [])
            self.assertError(s.recv_id(5), "not_found")
            self.assertError(s.recv_id(6), "not_found")
            self.assertEqual(self.assertOk(s.recv_id(7)), {"removed": 0})
            self.assertEqual(self.assertOk(s.recv_id(8)), {"jobs": [], "next": None})
            self.assertError(s.recv_id(9), "not_found")
        self.cancel_at_cleanup(nid, d)
        j = d.show(nid)
        self.assertEqual((j["state"], j["priority"]), ("scheduled", 0))

    def test_storage_failure_with_selects_behind(self):
        """A submit whose store fails, with a cancel and waits by label pipelined
        behind it: its jobs are dropped, never cancelled or waited for (a job
        cancelled before the failed commit was freed while still listed as
        finished: a use-after-free)."""
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from test_durability import try_mount_tmpfs, umount
        mnt, why = try_mount_tmpfs("400k")
        if mnt is None:
            self.skipTest(why)
        self.addCleanup(umount, mnt)
        d = self.start_daemon({"state_dir": os.path.join(mnt, "state")})
        try:
            with open(os.path.join(mnt, "filler"), "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        sel = {"g": "full"}
        for k in range(200):
            with d.connect() as s:
                s.send_raw("".join(json.dumps(r) + "\n" for r in [
                    {"id": 1, "op": "submit",
                     "jobs": [{"type": "noop", "labels": sel, "name": "x" * 200}] * 10},
                    {"id": 2, "op": "wait", "labels": sel},
                    {"id": 3, "op": "cancel", "labels": sel}]))
                r = s.recv_id(1, timeout=20)
                self.assertOk(s.recv_id(2, timeout=20))
                self.assertOk(s.recv_id(3, timeout=20))
            if not r.get("ok"):
                break
        self.assertError(r, "storage_error")
        os.unlink(os.path.join(mnt, "filler"))
        for _ in range(3):
            self.assertEqual(d.wait_job(d.submit(["true"]))["state"], "done")
        self.assertDaemonServes(d)

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

    def test_clean_states_repeated(self):
        # taskctl clean --state A --state B: finished jobs in either state
        d = self.start_daemon()
        done = d.submit(["true"])
        failed = d.submit(["false"])
        slow = d.submit(["sleep", "30"], **{"class": "io"})
        d.wait_state(slow, "running")
        d.cancel(slow)
        for j in (done, failed, slow):
            d.wait_job(j)
        p = d.ctl("clean", "--state", "failed", "--state", "cancelled")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout.strip(), "removed 2 jobs")
        self.assertEqual(ids_of(d.list_jobs()), [done])
        self.assertRc(d.ctl("clean", "--state", "done", "--state", "queued"), 2)
        self.assertEqual(ids_of(d.list_jobs()), [done])

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


def job_events(conn, n, timeout=10):
    """The next n job events on a subscribed connection (other lines are an error)."""
    out = []
    for _ in range(n):
        ev = conn.recv(timeout=timeout)
        assert ev.get("event") == "job", ev
        out.append(ev)
    return out


class EventsTest(E2ETestCase):
    shared_daemon = True

    def subscribe(self, **sel):
        c = self.d.connect()
        self.addCleanup(c.close)
        r = c.call(dict({"id": "sub", "op": "subscribe"}, **sel))
        self.assertEqual(self.assertOk(r), {"subscribed": True})
        return c

    def test_order_of_one_job(self):
        c = self.subscribe()
        jid = self.d.submit(["sh", "-c", "sleep 0.1; exit 4"], name="ev1")
        evs = job_events(c, 3)
        self.assertEqual([(e["id"], e["prev"], e["state"]) for e in evs],
                         [(jid, None, "queued"), (jid, "queued", "running"),
                          (jid, "running", "failed")])
        self.assertEqual(evs[2]["exit_code"], 4)
        self.assertIn("error", evs[2])
        self.assertNotIn("exit_code", evs[0])
        self.assertTrue(all(e["name"] == "ev1" for e in evs))
        ats = [e["at"] for e in evs]
        self.assertEqual(ats, sorted(ats))
        j = self.d.show(jid)
        self.assertAlmostEqual(ats[2], j["finished_at"], places=3)
        # started_at is refined afterwards to when the process really started
        self.assertAlmostEqual(ats[1], j["started_at"], delta=0.05)
        self.assertAlmostEqual(ats[0], j["submitted_at"], places=3)
        # done and cancelled
        self.d.submit(["true"])
        self.assertEqual([e["state"] for e in job_events(c, 3)], ["queued", "running", "done"])
        q = self.d.submit(["sleep", "30"], **{"class": "io"})
        self.cancel_at_cleanup(q)
        self.assertEqual([e["state"] for e in job_events(c, 2)], ["queued", "running"])
        self.d.cancel(q)
        [e] = job_events(c, 1)
        self.assertEqual((e["id"], e["prev"], e["state"]), (q, "running", "cancelled"))
        self.assertEqual(e["error"], self.d.show(q)["error"])
        self.assertTrue(c.no_data_within(0.3), "an event nobody caused")

    def test_job_not_stored_yet_is_not_cancelled(self):
        """A cancel by label pipelined right behind a submit does not see the job
        (its submit is not stored yet): no event about it comes before the one
        that announces it."""
        c = self.subscribe(labels={"grp": "precommit"})
        with self.d.connect() as s:
            s.send_raw(json.dumps({"id": 1, "op": "submit", "argv": ["true"],
                                   "run_at": time.time() + 60,
                                   "labels": {"grp": "precommit"}}) + "\n" +
                       json.dumps({"id": 2, "op": "cancel",
                                   "labels": {"grp": "precommit"}}) + "\n")
            jid = self.assertOk(s.recv_id(1))["id"]
            self.assertEqual(self.assertOk(s.recv_id(2)),
                             {"ids": [], "cancelling": [], "next": None})
        self.cancel_at_cleanup(jid)
        [e] = job_events(c, 1)
        self.assertEqual((e["id"], e["prev"], e["state"]), (jid, None, "scheduled"))
        self.d.cancel(jid)
        [e] = job_events(c, 1)
        self.assertEqual((e["id"], e["prev"], e["state"]), (jid, "scheduled", "cancelled"))
        self.assertTrue(c.no_data_within(0.2))

    def test_first_event_of_a_waiting_or_scheduled_job(self):
        """A job that starts out waiting (--after) or scheduled (--in) is
        announced in that state: no queued->waiting before its announcement."""
        c = self.subscribe(labels={"grp": "firstev"})
        # scheduled, not running: cancelling it ends it at once (no late event)
        dep = self.d.submit(["true"], run_at=time.time() + 60)
        self.cancel_at_cleanup(dep)
        w = self.d.submit(["true"], labels={"grp": "firstev"}, after=[dep])
        self.cancel_at_cleanup(w)
        [e] = job_events(c, 1)
        self.assertEqual((e["id"], e["prev"], e["state"]), (w, None, "waiting"))
        s = self.d.submit(["true"], labels={"grp": "firstev"}, run_at=time.time() + 60)
        self.cancel_at_cleanup(s)
        [e] = job_events(c, 1)
        self.assertEqual((e["id"], e["prev"], e["state"]), (s, None, "scheduled"))
        self.assertTrue(c.no_data_within(0.2))

    def test_filtered(self):
        by_label = self.subscribe(labels={"grp": "e2"})
        by_state = self.subscribe(states=["done"], labels={"grp": "e2"})
        a = self.d.submit(["true"], labels={"grp": "e2"})
        b = self.d.submit(["true"], labels={"grp": "other"})
        self.d.wait_job(a)
        self.d.wait_job(b)
        by_id = self.subscribe(ids=[b + 1])
        c = self.d.submit(["true"], labels={"grp": "e2"})
        self.assertEqual(c, b + 1)
        self.d.wait_job(c)
        self.assertEqual([(e["id"], e["state"]) for e in job_events(by_label, 6)],
                         [(a, "queued"), (a, "running"), (a, "done"),
                          (c, "queued"), (c, "running"), (c, "done")])
        self.assertEqual([(e["id"], e["state"]) for e in job_events(by_state, 2)],
                         [(a, "done"), (c, "done")])
        self.assertEqual([e["state"] for e in job_events(by_id, 3)],
                         ["queued", "running", "done"])
        for conn in (by_label, by_state, by_id):
            self.assertTrue(conn.no_data_within(0.2))

    def test_bad_subscribe(self):
        for sel in ({"states": ["bogus"]}, {"states": []}, {"labels": {}},
                    {"ids": [0]}, {"ids": "1"}, {"labels": {"a b": "c"}}):
            with self.subTest(sel=sel):
                with self.d.connect() as c:
                    self.assertError(c.call(dict({"id": 1, "op": "subscribe"}, **sel)),
                                     "bad_request")
                    # not subscribed: nothing arrives for a new job
                    self.d.submit(["true"])
                    self.assertTrue(c.no_data_within(0.2))
        c = self.subscribe()
        self.assertError(c.call({"id": 2, "op": "subscribe"}), "invalid_state")
        # other requests still work on a subscribed connection
        r = c.call({"id": 3, "op": "status"})
        self.assertOk(r)

    def test_taskctl_events(self):
        base = self.d.status()["subscribers"]
        human = self.d.ctl_popen("events", "--label", "grp=e4")
        js = self.d.ctl_popen("--json", "events", "--state", "failed", "--state", "done")
        # both subscribed once they answer a job event; wait for the subscriptions
        wait_for(lambda: self.d.status()["subscribers"] >= base + 2, what="two subscribers")
        a = self.d.submit(["sh", "-c", "exit 7"], labels={"grp": "e4"}, name="seven")
        self.d.wait_job(a)
        b = self.d.submit(["true"])
        self.d.wait_job(b)
        time.sleep(0.3)
        human.terminate()
        js.terminate()
        out, err = human.communicate(timeout=5)
        lines = out.splitlines()
        self.assertEqual(len(lines), 3, out + err)
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT[0-9:.]+[-+]\d\d:\d\d %d new -> queued seven$" % a)
        self.assertIn("%d queued -> running seven" % a, lines[1])
        self.assertIn("%d running -> failed seven exit=7" % a, lines[2])
        out, err = js.communicate(timeout=5)
        evs = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([(e["id"], e["state"]) for e in evs], [(a, "failed"), (b, "done")])



class EventsEndTest(E2ETestCase):
    """taskctl events tells a stop of taskd (exit 0) from a crash (exit 3)."""

    def subscribed(self, d, *args):
        before = d.status()["subscribers"]
        p = d.ctl_popen(*args)
        wait_for(lambda: d.status()["subscribers"] > before, what="the subscription")
        return p

    def test_stop_is_announced(self):
        d = self.start_daemon()
        raw = d.connect()
        self.addCleanup(raw.close)
        self.assertOk(raw.call({"id": 1, "op": "subscribe"}))
        p = self.subscribed(d, "--json", "events")
        d.stop()
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out, "")  # the shutdown line is not printed as an event
        ev = raw.recv(timeout=10)
        self.assertEqual(ev["event"], "shutdown")

    def test_crash_is_not_a_stop(self):
        d = self.start_daemon()
        p = self.subscribed(d, "events")
        d.signal(signal.SIGKILL)
        d.wait_exit(10)
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 3, err)
        self.assertIn("connection to taskd lost", err)


class SlowSubscriberTest(E2ETestCase):
    def test_never_reading_subscriber(self):
        d = self.start_daemon({"jobs.keep_finished": 1000})
        slow = d.connect()
        self.addCleanup(slow.close)
        slow.sock.setsockopt(__import__("socket").SOL_SOCKET,
                             __import__("socket").SO_RCVBUF, 4096)
        self.assertOk(slow.call({"id": 1, "op": "subscribe"}))
        reader = d.connect()
        self.addCleanup(reader.close)
        self.assertOk(reader.call({"id": 1, "op": "subscribe", "states": ["done"]}))
        # 30,000 jobs: 90,000 events, about 16 MiB, while slow reads nothing (reader
        # reads its "done" events batch by batch, keeping up)
        worst = 0.0
        for n in range(10):
            ids = d.submit_batch([{"type": "noop", "name": "x" * 100}] * 3000)
            t0 = time.monotonic()
            d.status()
            worst = max(worst, time.monotonic() - t0)
            for _ in ids:  # the batch is done
                ev = reader.recv(timeout=60)
                self.assertEqual((ev["event"], ev["state"]), ("job", "done"), ev)
        t0 = time.monotonic()
        st = d.status()
        worst = max(worst, time.monotonic() - t0)
        # (about 80 ms at worst in a plain build, right behind a batch of 3000 jobs; a
        # daemon blocked on the slow subscriber would not answer at all)
        self.assertLess(worst, 3.0, "a request waited %.2fs behind the slow subscriber" % worst)
        self.assertEqual(st["counters"]["event_overflows"], 1)
        # the slow one: what taskd held for it is bounded (4 MiB hard limit, plus one
        # batch's burst of ~0.5 MiB and the socket buffers), then the overflow line, EOF
        data = b""
        slow.sock.settimeout(10)
        while True:
            chunk = slow.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        lines = (slow.buf + data).split(b"\n")
        self.assertEqual(lines[-1], b"")
        last = json.loads(lines[-2])
        self.assertEqual(last["event"], "overflow", last)
        self.assertIn("too slow", last["message"])
        self.assertLess(len(data), 6 << 20,
                        "%d bytes buffered for a subscriber that did not read" % len(data))
        self.assertGreater(len(lines), 1000)
        for l in lines[:-2]:
            self.assertEqual(json.loads(l)["event"], "job")
        # everything else was dropped, not queued: 30,000 to reader, the rest to slow
        self.assertEqual(d.status()["counters"]["events_sent"], 30000 + len(lines) - 2)
        wait_for(lambda: d.status()["subscribers"] == 1, what="the slow subscriber to go")
        self.assertDaemonServes(d)


    def test_burst_does_not_cut_off_reader(self):
        # One batch: 10,000 "queued" events of ~150 bytes (1.4 MiB) in one loop
        # iteration, more than the limit; a subscriber that reads keeps its stream.
        d = self.start_daemon()
        c = d.connect()
        self.addCleanup(c.close)
        self.assertOk(c.call({"id": 1, "op": "subscribe"}))
        ids = d.submit_batch([{"type": "noop", "name": "n" * 60}] * 10000)
        seen = 0
        while seen < 3 * len(ids):
            ev = c.recv(timeout=60)
            self.assertEqual(ev["event"], "job", ev)
            seen += 1
        st = d.status()
        self.assertEqual(st["counters"]["event_overflows"], 0)
        self.assertEqual(st["subscribers"], 1)


@unittest.skipUnless(os.geteuid() == 0, "needs root: runs a subscriber as nobody")
@unittest.skipUnless(RUNUSER, "runuser not found")
class ForeignEventsTest(E2ETestCase):
    # Subscribes as nobody, then submits a job of its own; prints the events
    # it saw within 2 s of the submit answer, as a JSON list.
    CLIENT = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(10)
f = s.makefile("rwb")
def send(o):
    f.write(json.dumps(o).encode() + b"\n"); f.flush()
send({"id": "sub", "op": "subscribe"})
assert json.loads(f.readline())["ok"] is True
print("subscribed", flush=True)
sys.stdin.readline()        # the test submitted root's job
send({"id": "mine", "op": "submit", "type": "noop"})
seen, deadline = [], time.time() + 2
s.settimeout(0.2)
while time.time() < deadline:
    try:
        line = f.readline()
    except (socket.timeout, OSError):
        continue
    if not line:
        break
    seen.append(json.loads(line))
print(json.dumps(seen), flush=True)
"""

    def test_other_users_jobs_invisible(self):
        d = self.start_daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        client = os.path.join(d.tmp, "sub.py")
        with open(client, "w") as f:
            f.write(self.CLIENT)
        os.chmod(client, 0o644)
        root_sub = d.connect()
        self.addCleanup(root_sub.close)
        self.assertOk(root_sub.call({"id": 1, "op": "subscribe"}))
        p = subprocess.Popen([RUNUSER, "-u", "nobody", "--", sys.executable, client, d.sock],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/")
        self.addCleanup(p.stdout.close)
        self.addCleanup(p.stdin.close)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline().strip(), "subscribed")
        roots = d.submit(["true"])
        d.wait_job(roots)
        p.stdin.write("go\n")
        p.stdin.flush()
        seen = json.loads(p.stdout.readline())
        p.wait(timeout=10)
        self.assertTrue(seen, "nobody saw no events at all")
        self.assertEqual({e["id"] for e in seen if e.get("event") == "job"} - {roots},
                         {e["id"] for e in seen if e.get("event") == "job"})
        mine = [e for e in seen if e.get("event") == "job"]
        self.assertEqual([e["state"] for e in mine if "ok" not in e],
                         ["queued", "running", "done"], seen)
        nobody_job = mine[0]["id"]
        self.assertEqual(d.show(nobody_job)["owner"]["uid"], NOBODY)
        # root sees both users' jobs
        evs = job_events(root_sub, 6)
        self.assertEqual(sorted({e["id"] for e in evs}), sorted([roots, nobody_job]))

    def ctl_as_nobody(self, d, *args):
        return subprocess.run([RUNUSER, "-u", "nobody", "--", TASKCTL, "-s", d.sock]
                              + [str(a) for a in args], capture_output=True, text=True,
                              timeout=30, cwd="/", stdin=subprocess.DEVNULL)

    def test_clean_and_cancel_only_own_jobs(self):
        d = self.start_daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        roots_done = d.submit(["true"], labels={"grp": "x"})
        d.wait_job(roots_done)
        roots_running = d.submit(["sleep", "30"], labels={"grp": "x"}, **{"class": "io"})
        self.cancel_at_cleanup(roots_running, d)
        p = self.ctl_as_nobody(d, "submit", "--label", "grp=x", "--type", "noop")
        self.assertRc(p, 0)
        mine = int(p.stdout)
        d.wait_job(mine)
        p = self.ctl_as_nobody(d, "--json", "cancel", "--label", "grp=x")
        self.assertRc(p, 0)
        self.assertEqual(json.loads(p.stdout), {"ids": [], "cancelling": [], "next": None})
        self.assertEqual(d.show(roots_running)["state"], "running")
        p = self.ctl_as_nobody(d, "--json", "wait", "--label", "grp=x")
        self.assertRc(p, 0)
        self.assertEqual(ids_of(json.loads(p.stdout)), [mine])
        p = self.ctl_as_nobody(d, "clean")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout.strip(), "removed 1 job")
        self.assertEqual(ids_of(d.list_jobs()), [roots_done, roots_running])


def set_pty_size(fd, cols, rows=24):
    import fcntl
    import struct
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def run_on_pty(argv, timeout=30, cols=None, resize=None):
    """Run argv with stderr on a pseudo-terminal, stdout on a pipe: (rc, stdout, tty bytes).
    cols: the terminal's width (default: none set); resize: (after seconds, new width)."""
    import pty
    master, slave = pty.openpty()
    if cols is not None:
        set_pty_size(slave, cols)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    try:
        if resize is not None:
            time.sleep(resize[0])
            set_pty_size(master, resize[1])
            p.send_signal(28)  # SIGWINCH, as the terminal would
        os.close(slave)
        out = p.communicate(timeout=timeout)[0]
    finally:
        p.kill()
        p.wait()
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    return p.returncode, out.decode(), data.decode()


FRAME = re.compile(r"wait: (\d+)/(\d+) finished \(done (\d+), failed (\d+)\), (\d+) running, "
                   r"(\d+) queued, [0-9.hms]+ elapsed, eta (\S+)")


class ProgressTest(E2ETestCase):
    shared_daemon = True

    def frames(self, tty):
        return [tuple(int(x) for x in m.groups()[:6]) for m in FRAME.finditer(tty)]

    def test_progress_by_ids(self):
        ids = [self.d.submit(["sleep", str(x)], **{"class": "io"}) for x in (0.4, 0.8, 1.2)]
        bad = self.d.submit(["sh", "-c", "sleep 0.6; exit 5"], **{"class": "io"})
        argv = [TASKCTL, "-s", self.d.sock, "wait"] + [str(i) for i in ids + [bad]]
        t0 = time.monotonic()
        rc, out, tty = run_on_pty(argv)
        took = time.monotonic() - t0
        self.assertEqual(rc, 5, out + tty)
        # stdout: the usual lines, in completion order
        self.assertEqual([int(l.split()[0]) for l in out.splitlines()],
                         [ids[0], bad, ids[1], ids[2]])
        frames = self.frames(tty)
        # a few times a second over ~1.2 s, and the line ends cleared
        self.assertGreaterEqual(len(frames), int(took * 3), tty)
        self.assertTrue(tty.endswith("\r\033[K"), repr(tty[-80:]))
        for f in frames:
            self.assertEqual(f[1], 4)
            self.assertEqual(f[0], f[2] + f[3])
            self.assertEqual(f[0] + f[4] + f[5], 4)
        self.assertIn((0, 4, 0, 0, 4, 0), frames, "never showed the 4 running")
        self.assertTrue(any(f[2] == 1 and f[3] == 1 for f in frames), frames)
        self.assertTrue(any(f[0] == 3 for f in frames), frames)
        finished = [f[0] for f in frames]
        self.assertEqual(finished, sorted(finished), "progress went backwards")
        # an eta once something finished
        etas = [m.group(7) for m in FRAME.finditer(tty)]
        self.assertTrue(any(e != "?" for e in etas), etas)

    def test_progress_by_label(self):
        ids = [self.d.submit(["sleep", str(x)], labels={"grp": "p2"}, **{"class": "io"})
               for x in (0.3, 0.7)]
        rc, out, tty = run_on_pty([TASKCTL, "-s", self.d.sock, "wait", "--label", "grp=p2"])
        self.assertEqual(rc, 0, out + tty)
        self.assertEqual([int(l.split()[0]) for l in out.splitlines()], ids)
        frames = self.frames(tty)
        self.assertTrue(frames, tty)
        self.assertTrue(all(f[1] == 2 for f in frames), frames)
        self.assertTrue(any(f[0] == 1 for f in frames), frames)
        self.assertTrue(tty.endswith("\r\033[K"), repr(tty[-80:]))

    def test_progress_line_fits_the_terminal(self):
        """A line wider than the terminal would wrap, and \\r could not take the
        wrapped row back: it is cut to the width, read again after a resize."""
        jid = self.d.submit(["sleep", "1.5"], **{"class": "io"})
        rc, out, tty = run_on_pty([TASKCTL, "-s", self.d.sock, "wait", str(jid)], cols=40,
                                  resize=(0.6, 200))
        self.assertEqual(rc, 0, out + tty)
        drawn = [d for d in tty.split("\r\033[K") if d]
        self.assertTrue(drawn, repr(tty))
        narrow = [d for d in drawn if not FRAME.search(d)]
        self.assertTrue(narrow, drawn)
        for d in narrow:
            self.assertLessEqual(len(d), 39, repr(d))
            self.assertTrue(d.startswith("wait: "), repr(d))
        # after the resize, whole lines again
        self.assertTrue(FRAME.search(tty), drawn)

    def test_progress_follows_a_retry(self):
        jid = self.d.submit(["sh", "-c", "sleep 0.3; exit 2"], retries=1, retry_delay=0.5,
                            **{"class": "io"})
        rc, out, tty = run_on_pty([TASKCTL, "-s", self.d.sock, "wait", str(jid)])
        self.assertEqual(rc, 2, out + tty)
        states = []
        for f in self.frames(tty):
            st = "finished" if f[0] else "running" if f[4] else "queued"
            if not states or states[-1] != st:
                states.append(st)
        # running, then back to waiting for the retry, running again; the end is the answer
        self.assertEqual(states[-3:], ["running", "queued", "running"], tty)
        self.assertEqual(self.d.show(jid)["attempt"], 2)

    def test_interrupted_progress_clears_line(self):
        import pty
        jid = self.d.submit(["sleep", "30"], **{"class": "io"})
        self.cancel_at_cleanup(jid)
        master, slave = pty.openpty()
        p = subprocess.Popen([TASKCTL, "-s", self.d.sock, "wait", str(jid)],
                             stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        data = b""
        while b"running" not in data:
            data += os.read(master, 65536)
        p.send_signal(2)
        self.assertEqual(p.wait(timeout=10), -2)
        p.stdout.close()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        self.assertTrue(data.endswith(b"\r\033[K"), repr(data[-80:]))
        self.assertEqual(self.d.show(jid)["state"], "running", "interrupting wait touched the job")

    def test_error_message_not_on_the_progress_line(self):
        """taskctl's own error (here: the daemon is gone) takes the progress line
        off first, so the message starts a clean line."""
        import pty
        d = self.start_daemon()
        jid = d.submit(["sleep", "30"], **{"class": "io"})
        master, slave = pty.openpty()
        p = subprocess.Popen([TASKCTL, "-s", d.sock, "wait", str(jid)],
                             stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        data = b""
        while b"running" not in data:
            data += os.read(master, 65536)
        d.signal(9)
        self.assertEqual(p.wait(timeout=10), 3)
        p.stdout.close()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        d.wait_exit(10)
        text = data.decode()
        at = text.index("taskctl: connection to taskd lost")
        self.assertTrue(text[:at].endswith("\r\033[K"), repr(text[-160:]))

    def test_no_progress_without_terminal(self):
        ids = [self.d.submit(["sleep", "0.3"]), self.d.submit(["true"])]
        p = self.d.ctl("wait", *ids)
        self.assertRc(p, 0)
        self.assertEqual(p.stderr, "")
        self.assertEqual(sorted(int(l.split()[0]) for l in p.stdout.splitlines()), sorted(ids))
        # --json on a terminal: no line either
        jid = self.d.submit(["true"])
        rc, out, tty = run_on_pty([TASKCTL, "-s", self.d.sock, "--json", "wait", str(jid)])
        self.assertEqual(rc, 0)
        self.assertEqual(tty, "")
        self.assertEqual(json.loads(out)[0]["id"], jid)


if __name__ == "__main__":
    unittest.main(verbosity=2)
