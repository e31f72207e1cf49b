"""Routing real commands can trust (issue 15), against a real taskd.

Kind keys that see through shells, the route object of `show` and the
router table of `status`, live reclassification (a thread job burning CPU
takes a cpu slot at once; a worker job that waits frees its slot), per-job
cgroups (grandchildren killed on cancel, timeout and exit; the /proc
fallback when cgroups are off or a cgroup cannot be made), limits and their
errors, and the wait reasons of `list` and `show`. Everything is polled
with a bound.
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, wait_for, pid_gone, jobs_of, main  # noqa: E402

CPU = {"class": "cpu"}
IO = {"class": "io"}
BURN = ["sh", "-c", "while :; do :; done"]
LOOP = ["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]  # ~0.4 s of CPU
NAP = ["sh", "-c", "sleep 0.3"]
FAST = {"router.sample_interval": 0.05, "router.reclassify_after": 2}
ONE_WORKER = {"process_pool.mode": "static", "process_pool.max_workers": 1}


def cgroups_of(d):
    return d.status()["resources"]["cgroups"]


def router_table(d):
    return {r["key"]: r for r in d.status()["router"]}


class KeysTest(E2ETestCase):
    """Two scripts behind the same shell learn apart; show says which key decided."""

    shared_daemon = True
    shared_overrides = dict(ONE_WORKER)

    def test_scripts_behind_one_shell_route_apart(self):
        d = self.d
        for argv in (LOOP, NAP):
            d.wait_job(d.submit(argv), timeout=30)
        cpu = d.wait_job(d.submit(LOOP), timeout=30)
        io = d.wait_job(d.submit(NAP), timeout=30)
        self.assertEqual((cpu["routed"], cpu["pool"]), ("cpu", "process"), cpu["route"])
        self.assertEqual((io["routed"], io["pool"]), ("io", "thread"), io["route"])
        r = cpu["route"]
        self.assertEqual(r["by"], "key")
        self.assertEqual(r["key"], "sh -c while [")
        self.assertEqual(r["level"], 0)
        self.assertEqual(r["keys"], ["sh -c while [", "sh"])
        self.assertGreaterEqual(r["samples"], 1)
        self.assertGreaterEqual(r["cpu_ratio"], 0.5)
        self.assertEqual(io["route"]["key"], "sleep")  # one simple command: seen through
        self.assertEqual(io["route"]["keys"], ["sleep", "sh"])
        table = router_table(d)
        for k in ("sh -c while [", "sleep", "sh"):
            self.assertIn(k, table)
            for f in ("samples", "cpu_ratio", "class", "peak_kb"):
                self.assertIn(f, table[k])
        self.assertEqual(table["sh -c while ["]["class"], "cpu")
        self.assertEqual(table["sleep"]["class"], "io")
        # taskctl: the route in show, the router table in status
        p = d.ctl("show", str(cpu["id"]))
        self.assertRc(p, 0)
        self.assertIn('cpu by key "sh -c while ["', p.stdout)
        p = d.ctl("status")
        self.assertRc(p, 0)
        self.assertIn("sh -c while [", p.stdout)
        self.assertIn("PEAK", p.stdout)

    def test_unknown_kind_default_and_named_jobs(self):
        d = self.d
        j = d.wait_job(d.submit(["sh", "-c", "exec true"], name="fresh-name-e2e"))
        self.assertEqual(j["route"]["keys"], ["name:fresh-name-e2e", "true", "sh"])
        j = d.wait_job(d.submit(["env", "LC_ALL=C", "date"], name="fresh-name-2"))
        self.assertEqual(j["route"]["by"], "default")
        self.assertIsNone(j["route"]["key"])
        self.assertEqual(j["route"]["keys"], ["name:fresh-name-2", "date"])
        j = d.wait_job(d.submit(["true"], **CPU))
        self.assertEqual(j["route"]["by"], "class")


class ReclassifyTest(E2ETestCase):
    """Live samples move a running job's slot and teach the router at once."""

    def test_thread_job_burning_cpu_takes_a_cpu_slot(self):
        d = self.start_daemon(dict(FAST, **ONE_WORKER))
        burner = d.submit(BURN, **IO)
        self.cancel_at_cleanup(burner, d)
        j = wait_for(lambda: (lambda j: j if j["route"]["counts_as"] == "cpu" else None)(
            d.show(burner)), 10, what="the io job to be reclassified as cpu")
        self.assertEqual((j["state"], j["pool"]), ("running", "thread"))
        self.assertIsNotNone(j["route"]["reclassified_at"])
        self.assertEqual(j["live"]["source"], cgroups_of(d)["enabled"] and "cgroup" or "proc")
        self.assertGreaterEqual(j["live"]["cpu_ratio"], 0.5)
        # learned at once, while it still runs
        row = router_table(d)["sh -c while :"]
        self.assertEqual((row["class"], row["samples"]), ("cpu", 1))
        self.assertEqual(d.status()["counters"]["jobs_reclassified"], 1)
        # the one worker is idle, but the cpu slot is taken: a cpu job waits
        waiting = d.submit(["true"], **CPU)
        time.sleep(0.3)
        w = d.show(waiting)
        self.assertEqual((w["state"], w["wait_reason"]), ("queued", "slots"),
                         (w, d.show(burner), d.status()["counters"]["jobs_reclassified"]))
        d.cancel(burner)
        self.assertEqual(d.wait_job(waiting)["state"], "done")
        # and the kind now goes to the process pool
        again = d.submit(BURN)
        self.cancel_at_cleanup(again, d)
        j = d.wait_state(again, "running")
        self.assertEqual((j["routed"], j["pool"], j["route"]["key"]),
                         ("cpu", "process", "sh -c while :"))
        d.cancel(again)

    def test_worker_job_that_waits_frees_its_slot(self):
        d = self.start_daemon(dict(FAST, **ONE_WORKER))
        sleeper = d.submit(["sleep", "30"], **CPU)
        self.cancel_at_cleanup(sleeper, d)
        wait_for(lambda: d.show(sleeper)["route"]["counts_as"] == "io", 10,
                 what="the waiting cpu job to count as io")
        # its slot is free: the next cpu job gets a worker of its own and runs
        j = d.wait_job(d.submit(type="spin", argv=["0.05"], **CPU), timeout=30)
        self.assertEqual((j["state"], j["pool"]), ("done", "process"))
        self.assertNotEqual(j["worker"], d.show(sleeper)["worker"])
        self.assertEqual(d.show(sleeper)["state"], "running")

    def test_queued_job_follows_what_the_router_learns(self):
        # one thread, one worker; the kind "flip" is known as io
        d = self.start_daemon(dict(ONE_WORKER, **{"thread_pool.max_threads": 1,
                                                  "thread_pool.min_threads": 1}))
        d.wait_job(d.submit(["sleep", "0.05"], name="flip"))
        blocker = d.submit(["sleep", "30"], **IO)
        self.cancel_at_cleanup(blocker, d)
        d.wait_state(blocker, "running")
        queued = d.submit(LOOP, name="flip")
        self.cancel_at_cleanup(queued, d)
        j = d.show(queued)
        self.assertEqual((j["state"], j["route"]["class"], j["wait_reason"]),
                         ("queued", "io", "slots"))
        # two runs teach the kind cpu; the queued job is decided again and moves
        for _ in range(2):
            d.wait_job(d.submit(LOOP, name="flip", **CPU), timeout=30)
        j = d.wait_job(queued, timeout=30)
        self.assertEqual((j["state"], j["routed"], j["pool"]), ("done", "cpu", "process"))
        self.assertEqual(j["route"]["key"], "name:flip")
        self.assertEqual(d.show(blocker)["state"], "running")

    def test_a_guess_does_not_wait_for_a_cpu_slot(self):
        d = self.start_daemon(dict(FAST, **ONE_WORKER))
        d.wait_job(d.submit(LOOP), timeout=30)  # "sh" is cpu now (and "sh -c while [")
        burner = d.submit(BURN, **CPU)           # the one cpu slot, taken
        self.cancel_at_cleanup(burner, d)
        d.wait_state(burner, "running")
        # a script never seen: only the coarse key "sh" says cpu, no slot is free
        j = d.wait_job(d.submit(["sh", "-c", "sleep 0.1; exit 0"]), timeout=30)
        self.assertEqual((j["state"], j["pool"], j["route"]["by"], j["route"]["key"]),
                         ("done", "thread", "unsure", "sh"))
        self.assertEqual(d.show(burner)["state"], "running")
        # the script it knows waits for the slot as decided
        known = d.submit(LOOP)
        self.cancel_at_cleanup(known, d)
        time.sleep(0.2)
        k = d.show(known)
        self.assertEqual((k["state"], k["wait_reason"], k["route"]["by"]), ("queued", "slots", "key"))

    def test_sampling_off(self):
        d = self.start_daemon({"router.sample_interval": 0})
        burner = d.submit(BURN, **IO)
        self.cancel_at_cleanup(burner, d)
        d.wait_state(burner, "running")
        time.sleep(0.3)
        j = d.show(burner)
        self.assertEqual(j["route"]["counts_as"], "io")
        self.assertEqual(j["live"]["samples"], 0)
        self.assertIn("off", d.ctl("status").stdout)


class CgroupTest(E2ETestCase):
    """Each command in its own cgroup: nothing it starts outlives it."""

    shared_daemon = True
    shared_overrides = dict(FAST)

    def setUp(self):
        super().setUp()
        if not cgroups_of(self.d)["enabled"]:
            self.skipTest("no cgroups here: %s" % cgroups_of(self.d).get("reason"))

    def escaped_pids(self, jid):
        """The job prints a background child's pid and a setsid one's."""
        out = self.d.wait_output(jid, lambda b: b.count(b"\n") >= 2)
        pids = [int(x) for x in out.split()]
        self.assertEqual(len(pids), 2)
        return pids

    def assertGone(self, pids):
        for p in pids:
            wait_for(lambda: pid_gone(p), 5, what="process %d to be gone" % p)

    SCRIPT = ["sh", "-c", "sleep 1000 & echo $!; setsid sleep 1000 & echo $!; wait"]

    def test_cancel_kills_grandchildren(self):
        jid = self.d.submit(self.SCRIPT, **IO)
        self.cancel_at_cleanup(jid)
        pids = self.escaped_pids(jid)
        j = self.d.show(jid)
        self.assertTrue(j["cgroup"] and os.path.isdir(j["cgroup"]), j["cgroup"])
        self.assertIsNone(j["cgroup_error"])
        self.d.cancel(jid)
        j = self.d.wait_job(jid, timeout=15)
        self.assertEqual(j["state"], "cancelled")
        self.assertGone(pids)
        self.assertFalse(os.path.exists(j["cgroup"]))

    def test_timeout_kills_grandchildren_in_a_worker(self):
        jid = self.d.submit(self.SCRIPT, timeout=1, **CPU)
        self.cancel_at_cleanup(jid)
        pids = self.escaped_pids(jid)
        j = self.d.wait_job(jid, timeout=15)
        self.assertEqual((j["state"], j["pool"]), ("timeout", "process"))
        self.assertGone(pids)

    def test_exit_kills_what_it_left(self):
        j = self.d.wait_job(self.d.submit(
            ["sh", "-c", "setsid sleep 1000 & echo $!"], **IO))
        self.assertEqual(j["state"], "done")
        self.assertGone([int(self.d.read_output(j["id"]))])

    def test_tree_cpu_is_counted(self):
        # A grandchild that is nobody's child by the time it ends burns a fixed
        # amount of CPU; the command only waits for its file: its own rusage
        # (it never reaps the burner) would show next to nothing.
        tmp = tempfile.mkdtemp(prefix="taskd-e2e-tree-")
        self.addCleanup(shutil.rmtree, tmp, True)
        burn = "(i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; touch done) &"
        j = self.d.wait_job(self.d.submit(
            ["sh", "-c", "setsid sh -c '%s'; while [ ! -e done ]; do sleep 0.05; done" % burn],
            cwd=tmp, **IO), timeout=60)
        self.assertEqual(j["state"], "done")
        self.assertGreater(j["cpu_user"] + j["cpu_sys"], 0.2, j)

    def test_cgroup_that_cannot_be_made_falls_back(self):
        limit = os.path.join(cgroups_of(self.d)["path"], "cgroup.max.descendants")

        def set_limit(v):
            with open(limit, "w") as f:
                f.write(v)
        set_limit("0")
        self.addCleanup(set_limit, "max")
        jid = self.d.submit(BURN, **IO)
        self.cancel_at_cleanup(jid)
        j = wait_for(lambda: (lambda j: j if j["live"] and j["live"]["samples"] > 0 else None)(
            self.d.show(jid)), 10, what="the job to be sampled")
        self.assertIsNone(j["cgroup"])
        self.assertIn("cannot create cgroup", j["cgroup_error"])
        self.assertEqual(j["live"]["source"], "proc")
        self.assertIn("cgroup_error", self.d.ctl("show", str(jid)).stdout)
        self.d.cancel(jid)
        j = self.d.wait_job(jid)
        self.assertIn("cannot create cgroup", j["cgroup_error"])
        self.assertGreaterEqual(self.d.status()["counters"]["cgroup_failures"], 1)
        # a job with limits is not run without its cgroup (when limits are possible at all)
        if "pids" in cgroups_of(self.d)["controllers"]:
            j = self.d.wait_job(self.d.submit(["true"], pids=10))
            self.assertEqual(j["state"], "failed")
            self.assertIn("limits", j["error"])


class LimitsTest(E2ETestCase):
    shared_daemon = True

    def test_out_of_range_is_bad_request(self):
        bad = [{"memory": 100}, {"memory": -1}, {"memory": "512M"}, {"memory": 1 << 50},
               {"cpus": 0.001}, {"cpus": 5000}, {"cpus": "1"}, {"pids": -1},
               {"pids": 1 << 30}, {"pids": 1.5}]
        for fields in bad:
            with self.subTest(fields=fields):
                r = self.d.request(dict({"id": 1, "op": "submit", "argv": ["true"]}, **fields))
                self.assertError(r, "bad_request")
        r = self.d.request({"id": 1, "op": "submit", "type": "noop", "memory": 1 << 20})
        self.assertError(r, "bad_request")
        for args in (["--memory", "1K"], ["--memory", "lots"], ["--cpus", "0"],
                     ["--cpus", "x"], ["--pids", "0"], ["--pids", "-3"]):
            with self.subTest(args=args):
                self.assertRc(self.d.ctl("submit", *args, "--", "true"), 2)
        self.assertEqual(self.d.status()["jobs"]["queued"], 0)

    def test_without_the_controller_a_clear_error(self):
        cg = cgroups_of(self.d)
        want = [c for c in ("memory", "cpus", "pids")
                if (c if c != "cpus" else "cpu") not in cg["controllers"]]
        if not want:
            self.skipTest("every controller is there")
        field = want[0]
        value = {"memory": 512 << 20, "cpus": 1.5, "pids": 10}[field]
        r = self.d.request({"id": 1, "op": "submit", "argv": ["true"], field: value})
        err = self.assertError(r, "unsupported")
        self.assertIn("cgroup", err["message"])
        p = self.d.ctl("submit", "--" + field, str(value), "--", "true")
        self.assertRc(p, 4)
        self.assertIn("cgroup", p.stderr)

    def test_with_the_controller_the_limit_applies(self):
        cg = cgroups_of(self.d)
        if "pids" not in cg["controllers"]:
            self.skipTest("no pids controller for taskd's cgroups here")
        jid = self.d.submit(["sleep", "30"], pids=7, **IO)
        self.cancel_at_cleanup(jid)
        j = self.d.wait_state(jid, "running")
        self.assertEqual(j["pids"], 7)
        with open(os.path.join(j["cgroup"], "pids.max")) as f:
            self.assertEqual(f.read().strip(), "7")
        self.d.cancel(jid)


class FallbackTest(E2ETestCase):
    """cgroups.enable = "off": /proc does the measuring, one clear line says so."""

    def test_proc_fallback(self):
        d = self.start_daemon(dict(FAST, **{"cgroups.enable": "off"}))
        cg = cgroups_of(d)
        self.assertFalse(cg["enabled"])
        self.assertIn("cgroups.enable", cg["reason"])
        self.assertIn("cgroups: off", d.log_text())
        burner = d.submit(BURN, **IO)
        self.cancel_at_cleanup(burner, d)
        j = wait_for(lambda: (lambda j: j if j["route"]["counts_as"] == "cpu" else None)(
            d.show(burner)), 10, what="reclassification through /proc")
        self.assertEqual(j["live"]["source"], "proc")
        self.assertIsNone(j["cgroup"])
        self.assertGreater(j["live"]["rss_kb"], 0)
        d.cancel(burner)
        self.assertEqual(d.wait_job(burner)["state"], "cancelled")
        # a background child is still killed with its process group
        jid = d.submit(["sh", "-c", "sleep 1000 & echo $!; wait"], **IO)
        child = int(d.wait_output(jid, lambda b: b.endswith(b"\n")))
        d.cancel(jid)
        d.wait_job(jid)
        wait_for(lambda: pid_gone(child), 5, what="the background child to be gone")
        r = d.request({"id": 1, "op": "submit", "argv": ["true"], "memory": 64 << 20})
        self.assertIn("cgroups.enable", self.assertError(r, "unsupported")["message"])
        self.assertIn("off (", d.ctl("status").stdout)


class WaitReasonTest(E2ETestCase):
    shared_daemon = True
    shared_overrides = {"thread_pool.max_threads": 1, "thread_pool.min_threads": 1}

    def test_reasons(self):
        d = self.d
        blocker = d.submit(["sleep", "30"], **IO)
        self.cancel_at_cleanup(blocker)
        d.wait_state(blocker, "running")
        self.assertIsNone(d.show(blocker)["wait_reason"])
        slots = d.submit(["true"], **IO)
        after = d.submit(["true"], after=[slots], **IO)
        later = d.submit(["true"], run_at=time.time() + 3600, **IO)
        held = d.submit(["true"], **IO)
        self.assertOk(d.request({"id": 1, "op": "pause", "job": held}))
        for jid in (slots, after, later, held):
            self.cancel_at_cleanup(jid)
        want = {slots: ("queued", "slots"), after: ("waiting", "dependency"),
                later: ("scheduled", "scheduled"), held: ("paused", "paused")}
        for jid, (state, why) in want.items():
            j = d.show(jid)
            self.assertEqual((j["state"], j["wait_reason"]), (state, why), jid)
        listed = {j["id"]: j for j in jobs_of(d.ctl_json("list"))}
        for jid, (state, why) in want.items():
            self.assertEqual(listed[jid]["wait_reason"], why)
        out = d.ctl("list").stdout
        self.assertIn("queued (slots)", out)
        # a paused class: its queued jobs wait for that
        self.assertOk(d.request({"id": 2, "op": "pause", "class": "io"}))
        self.assertEqual(d.show(slots)["wait_reason"], "paused")
        self.assertOk(d.request({"id": 3, "op": "resume", "class": "io"}))
        self.assertEqual(d.show(slots)["wait_reason"], "slots")
        d.cancel(blocker)
        self.assertEqual(d.wait_job(slots)["state"], "done")
        self.assertIsNone(d.show(slots)["wait_reason"])

    def test_memory(self):
        d = self.start_daemon({"limits.memory_budget": "1M", "router.sample_interval": 0.05})
        # teach the kind's peak (a few MB of python), then two at once do not fit
        hog = ["python3", "-c", "import time; b = bytearray(8 << 20); time.sleep(0.5)"]
        first = d.wait_job(d.submit(hog, **IO), timeout=30)
        self.assertGreater(first["mem_peak_kb"], 1024)
        a, b = d.submit(hog, **IO), d.submit(hog, **IO)
        j = d.wait_state(a, "running")
        w = wait_for(lambda: (lambda j: j if j["state"] == "queued" else None)(d.show(b)), 5,
                     what="the second to wait")
        self.assertEqual(w["wait_reason"], "memory")
        self.assertIn("queued (memory)", d.ctl("list").stdout)
        # larger than the whole budget: it runs alone, then the next one
        self.assertEqual(d.wait_job(b, timeout=30)["state"], "done")
        self.assertLessEqual(d.wait_job(a)["finished_at"], d.show(b)["started_at"] + 0.05)
        mem = d.status()["resources"]["memory"]
        self.assertEqual((mem["budget"], mem["budget_kb"], mem["running"]), ("1M", 1024, 0))


if __name__ == "__main__":
    main()
