"""What one user may take from the others (issue 12, defects 6 and 7).

- Priority: only root and taskd's own user may ask for a priority below 0,
  at submit (single, batch) and with the priority op; anyone else gets
  forbidden, as with nice(1).
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, NOBODY, as_nobody, ctl_as_nobody, main)  # noqa: E402


def sleep_job(sec, **kw):
    j = {"type": "sleep", "class": "io", "argv": [str(sec)]}
    j.update(kw)
    return j


@unittest.skipUnless(os.geteuid() == 0, "needs root: clients run as nobody against a root taskd")
class NegativePriorityTest(E2ETestCase):
    """Defect: nobody's -20 jobs all started before root's 0 ones, past fair share."""

    shared_daemon = True
    shared_overrides = {"socket_mode": "0666", "thread_pool.min_threads": 1,
                        "thread_pool.max_threads": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.chmod(cls.d.tmp, 0o755)  # nobody must reach the socket

    def assertForbidden(self, r, *words):
        msg = self.assertError(r, "forbidden")["message"]
        for w in words:
            self.assertIn(w, msg)

    def test_submit_below_zero_forbidden(self):
        d = self.d
        before = d.status()["counters"]["jobs_submitted"]
        [single, batch, wait] = as_nobody(
            d, {"id": 1, "op": "submit", "type": "noop", "priority": -20},
            {"id": 2, "op": "submit", "jobs": [{"type": "noop"},
                                                {"type": "noop", "priority": -1}]},
            {"id": 3, "op": "submit", "type": "noop", "priority": -5, "wait": True})
        self.assertForbidden(single, "priority -20", "below 0")
        self.assertForbidden(batch, "jobs[1]", "priority -1")
        self.assertForbidden(wait, "priority -5")
        # nothing was queued, not even the batch's first job
        self.assertEqual(d.status()["counters"]["jobs_submitted"], before)
        # 0 and above are anyone's
        rs = as_nobody(d, {"id": 1, "op": "submit", "type": "noop", "priority": 0},
                       {"id": 2, "op": "submit", "jobs": [{"type": "noop", "priority": 19}]})
        for r in rs:
            self.assertOk(r)
        # root may
        j = d.submit(type="noop", priority=-20)
        self.assertEqual(d.wait_job(j)["priority"], -20)

    def test_taskctl_submit_below_zero(self):
        p = ctl_as_nobody(self.d, "submit", "--priority", "-3", "--type", "noop")
        self.assertRc(p, 4)
        self.assertIn("forbidden", p.stderr)
        self.assertIn("below 0", p.stderr)

    def test_priority_op_below_zero_forbidden(self):
        d = self.d
        [r] = as_nobody(d, {"id": 1, "op": "submit", "type": "noop", "priority": 3,
                            "run_at": time.time() + 3600})
        j = self.assertOk(r)["id"]
        self.addCleanup(d.cancel, j)
        rs = as_nobody(d, {"id": 1, "op": "priority", "job": j, "priority": -1},
                       {"id": 2, "op": "priority", "job": j, "priority": 0})
        self.assertForbidden(rs[0], "priority -1")
        self.assertEqual(self.assertOk(rs[1])["priority"], 0)
        p = ctl_as_nobody(d, "priority", j, "-5")
        self.assertRc(p, 4)
        self.assertIn("forbidden", p.stderr)
        self.assertEqual(d.show(j)["priority"], 0)
        # root may set it below 0, even on nobody's job; nobody may then raise it to 0..19
        self.assertEqual(d.ok({"op": "priority", "job": j, "priority": -7})["priority"], -7)
        self.assertEqual(d.show(j)["owner"]["uid"], NOBODY)
        [r] = as_nobody(d, {"id": 1, "op": "priority", "job": j, "priority": -6})
        self.assertForbidden(r)
        [r] = as_nobody(d, {"id": 1, "op": "priority", "job": j, "priority": 2})
        self.assertEqual(self.assertOk(r)["priority"], 2)

    def test_cannot_jump_roots_queue(self):
        # The case: nobody's jobs no longer start before root's 0 ones.
        d = self.d
        block = d.submit(**sleep_job(0.5))
        d.wait_state(block, "running")
        mine = d.submit_batch([sleep_job(0.01) for _ in range(3)])
        [r] = as_nobody(d, {"id": 1, "op": "submit",
                            "jobs": [sleep_job(0.01, priority=-20) for _ in range(3)]})
        self.assertForbidden(r)
        [r] = as_nobody(d, {"id": 1, "op": "submit",
                            "jobs": [sleep_job(0.01) for _ in range(3)]})
        theirs = self.assertOk(r)["ids"]
        order = sorted(mine + theirs, key=lambda j: d.wait_job(j)["started_at"])
        self.assertEqual(order[0], mine[0], "nobody's jobs went first: %r" % order)


if __name__ == "__main__":
    main()
