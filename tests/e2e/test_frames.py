"""Every answer within limits.max_frame, everything still readable (issue 12, defect 10).

With the smallest max_frame taskd allows and many jobs (names, labels, a
long argv, many attempts, long errors): every line taskd sends, answers and
event lines, fits in max_frame; list, a wait by selector, a cancel by
selector and status come in pages that a client follows with "cursor"; and
every taskctl command still shows everything.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, TASKD, wait_for, main  # noqa: E402

FRAME = 16 * 1024          # the smallest limits.max_frame
NJOBS = 300                # done jobs, each of its own kind (router key)
NWAIT = 150                # jobs of a wait by selector
NHANDLERS = 2              # handlers (the C echo worker),
NHWORKERS = 12             # with this many workers each
ECHO = os.path.join(os.path.dirname(TASKD), "taskd-echo")
ME = "root" if os.geteuid() == 0 else __import__("pwd").getpwuid(os.geteuid()).pw_name
NCANCEL = 3500             # jobs of a cancel by selector (more ids than one page holds)


def submit_all(d, jobs):
    """Submit jobs in batches that each fit in a request frame; their ids."""
    ids, chunk, size = [], [], 0
    for j in jobs + [None]:
        n = len(json.dumps(j)) + 2 if j is not None else 0
        if chunk and (j is None or size + n > FRAME - 200):
            r = d.request({"id": 1, "op": "submit", "jobs": chunk})
            if not r.get("ok"):
                raise AssertionError("batch refused: %r" % (r.get("error"),))
            ids += r["result"]["ids"]
            chunk, size = [], 0
        if j is not None:
            chunk.append(j)
            size += n
    return ids


class FramesTest(E2ETestCase):
    shared_daemon = True
    shared_overrides = {"limits.max_frame": "16K", "process_pool.mode": "static",
                        "process_pool.min_workers": 6, "process_pool.max_workers": 6,
                        "thread_pool.min_threads": 4, "thread_pool.max_threads": 4,
                        "log_level": "info",
                        "handlers": [{"name": "echo%d" % i, "command": [ECHO], "user": ME,
                                      "class": "io", "min_workers": NHWORKERS,
                                      "max_workers": NHWORKERS}
                                     for i in range(NHANDLERS)]}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        # Kinds for the router table: each name is its own key (a run of 10 ms teaches it).
        jobs = [{"argv": ["sleep", "0.01"], "class": "auto", "name": "kind-%03d-%s" % (i, "k" * 40),
                 "labels": {"grp": "frames", "n": str(i)}} for i in range(NJOBS)]
        cls.done = submit_all(d, jobs)
        # A description that nearly fills what a job object may take.
        cls.big = d.submit(["echo"] + ["a" * 100] * 120, labels={"grp": "big"},
                           **{"class": "io"})
        # Many attempts, each with a long error (a command that is not there).
        cls.retried = d.submit(["/nonexistent/" + "r" * 900], retries=60, retry_delay=0,
                               **{"class": "io"})
        cls.failed = d.submit(["/nonexistent/" + "x" * 3000], **{"class": "io"})
        for j in cls.done + [cls.big, cls.retried, cls.failed]:
            d.wait_job(j, timeout=60)
        wait_for(lambda: sum(len(h["workers"]) for h in d.ctl_json("status")["handlers"])
                 == NHANDLERS * NHWORKERS, 30, what="the handlers' workers")

    # -- raw protocol: every line within max_frame
    def lines(self, reqs, n=None):
        """Send reqs on one connection; every answer line (raw bytes) checked for size."""
        out = []
        with self.d.connect() as c:
            for r in reqs:
                c.send(r)
            for _ in range(n if n is not None else len(reqs)):
                line = c.recv_line()
                self.assertLessEqual(len(line) + 1, FRAME, "a line of %d bytes: %r..."
                                     % (len(line) + 1, line[:200]))
                out.append(json.loads(line))
        return out

    def pages(self, req, first=None, cont_op=None, merge=("jobs",)):
        """Follow "next" (with cont_op for later pages); the answers, every one in max_frame."""
        got = [first] if first is not None else self.lines([req])
        while got[-1]["result"].get("next") is not None:
            nreq = dict(req, id=len(got), cursor=got[-1]["result"]["next"])
            if cont_op is not None:
                nreq["op"] = cont_op
            [r] = self.lines([nreq])
            self.assertOk(r)
            got.append(r)
            self.assertLess(len(got), 500, "pages never end")
        return got

    def test_list_pages(self):
        answers = self.pages({"id": 0, "op": "list", "limit": 0})
        self.assertGreater(len(answers), 5)
        ids = [j["id"] for a in answers for j in a["result"]["jobs"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(ids, sorted(ids))
        for j in self.done + [self.big, self.retried, self.failed]:
            self.assertIn(j, ids)
        # limit counts over all pages: the most recent 250
        answers = self.pages({"id": 0, "op": "list", "limit": 250})
        got = [j["id"] for a in answers for j in a["result"]["jobs"]]
        self.assertEqual(got, ids[-250:])
        # with a selector
        answers = self.pages({"id": 0, "op": "list", "limit": 0, "labels": {"grp": "frames"}})
        self.assertEqual([j["id"] for a in answers for j in a["result"]["jobs"]], self.done)
        # a bad cursor
        [r] = self.lines([{"id": 1, "op": "list", "cursor": "nonsense"}])
        self.assertError(r, "bad_request")

    def test_show_wait_big_jobs(self):
        rs = self.lines([{"id": i, "op": op, "job": j}
                         for i, (op, j) in enumerate((op, j) for op in ("show", "wait")
                                                     for j in (self.big, self.retried,
                                                               self.failed))])
        for r in rs:
            self.assertOk(r)
        big = rs[0]["result"]
        self.assertEqual(big["argv"], ["echo"] + ["a" * 100] * 120)
        self.assertNotIn("cut", big)
        retried = rs[1]["result"]
        self.assertEqual(retried["attempt"], 61)
        self.assertGreater(retried.get("attempts_omitted", 0), 0)
        self.assertEqual(retried["attempts_omitted"] + len(retried["attempts"]), 60)
        self.assertEqual(retried["attempts"][-1]["attempt"], 60)
        self.assertIn("/nonexistent/", rs[2]["result"]["error"])
        # submit with wait: the same job object
        [r] = self.lines([{"id": 1, "op": "submit", "argv": ["echo"] + ["b" * 100] * 120,
                           "wait": True}])
        self.assertEqual(self.assertOk(r)["argv"][1], "b" * 100)

    def test_job_too_large_refused(self):
        [r] = self.lines([{"id": 1, "op": "submit", "argv": ["echo", "x" * 15000]}])
        msg = self.assertError(r, "bad_request")["message"]
        self.assertIn("limits.max_frame", msg)
        [r] = self.lines([{"id": 1, "op": "submit", "x" * 300: 1}])
        self.assertError(r, "bad_request")
        [r] = self.lines([{"id": "i" * 300, "op": "status"}])
        self.assertError(r, "bad_request")
        self.assertIsNone(r["id"])

    def test_status_pages(self):
        answers = self.pages({"id": 0, "op": "status"})
        self.assertGreater(len(answers), 1)
        keys = [k["key"] for a in answers for k in a["result"]["router"]]
        workers = [w["pid"] for a in answers for w in a["result"]["process_pool"]["workers"]]
        self.assertEqual(len(set(workers)), 6)
        hworkers = {}
        for a in answers:
            self.assertEqual([h["name"] for h in a["result"]["handlers"]],
                             ["echo%d" % i for i in range(NHANDLERS)])
            for h in a["result"]["handlers"]:
                hworkers.setdefault(h["name"], []).extend(w["pid"] for w in h["workers"])
        for pids in hworkers.values():
            self.assertEqual(len(set(pids)), NHWORKERS)
        for i in range(NJOBS):
            self.assertIn("name:kind-%03d-%s" % (i, "k" * 40), keys)
        [r] = self.lines([{"id": 1, "op": "status", "cursor": "L1.2.3"}])
        self.assertError(r, "bad_request")

    def test_wait_by_selector_pages(self):
        d = self.d
        ids = submit_all(d, [{"type": "sleep", "argv": ["0.2"], "class": "io",
                              "name": "w" * 200, "labels": {"grp": "wait"}}
                             for _ in range(NWAIT)])
        [first] = self.lines([{"id": 0, "op": "wait", "labels": {"grp": "wait"}}])
        self.assertOk(first)
        self.assertIsNotNone(first["result"]["next"])
        answers = self.pages({"id": 0, "op": "list", "labels": {"grp": "wait"}}, first=first)
        got = [j for a in answers for j in a["result"]["jobs"]]
        self.assertEqual([j["id"] for j in got], ids)
        self.assertEqual({j["state"] for j in got}, {"done"})
        # jobs submitted after the wait are not part of its pages
        later = d.submit(type="noop", labels={"grp": "wait"})
        answers = self.pages({"id": 0, "op": "list", "labels": {"grp": "wait"}}, first=first)
        self.assertNotIn(later, [j["id"] for a in answers for j in a["result"]["jobs"]])

    def test_cancel_by_selector_pages(self):
        d = self.d
        ids = submit_all(d, [{"type": "noop", "class": "io", "run_at": time.time() + 3600,
                              "labels": {"grp": "cancel"}} for _ in range(NCANCEL)])
        run = d.submit(["sleep", "30"], labels={"grp": "cancel"}, **{"class": "io"})
        d.wait_state(run, "running")
        req = {"id": 0, "op": "cancel", "labels": {"grp": "cancel"}}
        [first] = self.lines([req])
        self.assertOk(first)
        self.assertIsNotNone(first["result"]["next"])
        answers = self.pages(req, first=first)
        got = [i for a in answers for i in a["result"]["ids"]]
        self.assertEqual(got, ids + [run])
        self.assertEqual([i for a in answers for i in a["result"]["cancelling"]], [run])
        # all of them were cancelled by the first request; later pages cancel nothing
        self.assertEqual(d.wait_job(run)["state"], "cancelled")
        self.assertEqual({d.show(i)["state"] for i in ids[::50]}, {"cancelled"})

    def test_metrics_pages(self):
        # with handlers, the metrics text is longer than a frame: pages of whole families
        answers = self.pages({"id": 1, "op": "metrics"})
        self.assertGreater(len(answers), 1, "the metrics text fits one frame: grow the test")
        texts = [a["result"]["text"] for a in answers]
        for t in texts:
            self.assertTrue(t.endswith("\n"), "a page ends inside a line")
        for t in texts[1:]:
            self.assertTrue(t.startswith("# "), "a page starts inside a family")
        text = "".join(texts)
        types = [l.split()[2] for l in text.splitlines() if l.startswith("# TYPE ")]
        self.assertEqual(len(types), len(set(types)), "a family twice")
        self.assertTrue(text.startswith("# HELP taskd_build_info "))
        for h in range(NHANDLERS):
            self.assertIn('handler="echo%d"' % h, text)
        bad = self.lines([{"id": 1, "op": "metrics", "cursor": "L1.2.3"}])[0]
        self.assertEqual(bad["error"]["code"], "bad_request")

    def test_taskctl_metrics(self):
        p = self.d.ctl("metrics")
        self.assertRc(p, 0)
        text = p.stdout
        types = [l.split()[2] for l in text.splitlines() if l.startswith("# TYPE ")]
        self.assertEqual(len(types), len(set(types)), "a family twice")
        self.assertIn("taskd_build_info", types)
        for h in range(NHANDLERS):
            self.assertIn('handler="echo%d"' % h, text)
        doc = self.d.ctl_json("metrics")
        self.assertIsNone(doc["next"])
        self.assertGreater(len(doc["text"]), FRAME)

    def test_events_and_other_answers(self):
        d = self.d
        with d.connect() as sub:
            sub.send({"id": 1, "op": "subscribe", "labels": {"grp": "ev"}})
            self.assertOk(sub.recv())
            j = d.submit(["/nonexistent/" + "e" * 3000], name="\x01" * 256,
                         labels={"grp": "ev"}, **{"class": "io"})
            d.wait_job(j)
            for _ in range(3):
                line = sub.recv_line()
                self.assertLessEqual(len(line) + 1, FRAME)
                ev = json.loads(line)
            self.assertEqual(ev["state"], "failed")
            self.assertTrue(ev["error"].endswith("..."))
        rs = self.lines([{"id": 1, "op": "metrics"}, {"id": 2, "op": "logs", "job": self.big},
                         {"id": 3, "op": "clean", "labels": {"grp": "nothing"}},
                         {"id": 4, "op": "reload"}])
        for r in rs:
            self.assertOk(r)

    def test_no_answer_was_too_big(self):
        # taskd logs a warning for any answer it could not fit: there must be none
        self.test_list_pages()
        self.test_status_pages()
        self.test_metrics_pages()
        self.assertNotIn("exceeds limits.max_frame", self.d.log_text())

    # -- taskctl follows the pages
    def test_taskctl_list(self):
        p = self.d.ctl("list", "--limit", "0")
        self.assertRc(p, 0)
        for i in range(NJOBS):
            self.assertIn("kind-%03d" % i, p.stdout)
        rows = [l for l in p.stdout.splitlines()[1:] if l.strip()]
        doc = self.d.ctl_json("list", "--limit", "0")
        self.assertEqual(len(rows), len(doc["jobs"]))
        self.assertIsNone(doc["next"])
        for j in self.done:
            self.assertIn(j, [x["id"] for x in doc["jobs"]])
        doc = self.d.ctl_json("list", "--label", "grp=frames", "--limit", "0")
        self.assertEqual([x["id"] for x in doc["jobs"]], self.done)

    def test_taskctl_status(self):
        p = self.d.ctl("status")
        self.assertRc(p, 0)
        for i in range(NJOBS):
            self.assertIn("kind-%03d" % i, p.stdout)
        doc = self.d.ctl_json("status")
        self.assertEqual(len(doc["process_pool"]["workers"]), 6)
        for h in doc["handlers"]:
            self.assertEqual(len({w["pid"] for w in h["workers"]}), NHWORKERS)
        self.assertGreaterEqual(len(doc["router"]), NJOBS)
        self.assertIsNone(doc["next"])

    def test_taskctl_wait_and_cancel(self):
        d = self.d
        ids = submit_all(d, [{"type": "noop", "class": "io", "labels": {"grp": "tw"},
                              "name": "t" * 200} for _ in range(NWAIT)])
        p = d.ctl("wait", "--label", "grp=tw")
        self.assertRc(p, 0)
        for i in ids:
            self.assertIn("%d " % i, p.stdout)
        doc = d.ctl_json("wait", "--label", "grp=tw")
        self.assertEqual([j["id"] for j in doc], ids)
        ids = submit_all(d, [{"type": "noop", "class": "io", "labels": {"grp": "tc"},
                              "run_at": time.time() + 3600} for _ in range(NCANCEL)])
        p = d.ctl("cancel", "--label", "grp=tc")
        self.assertRc(p, 0)
        self.assertEqual(p.stdout.split(), [w for i in ids for w in (str(i), "cancelled")])
        self.assertEqual({d.show(i)["state"] for i in ids[::40]}, {"cancelled"})

    def test_taskctl_show_big(self):
        p = self.d.ctl("show", self.big)
        self.assertRc(p, 0)
        self.assertIn("a" * 100, p.stdout)
        p = self.d.ctl("show", self.retried)
        self.assertRc(p, 0)


if __name__ == "__main__":
    main()
