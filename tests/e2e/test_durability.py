"""Durable jobs (issue 6, Durability): state_dir/taskd.db across restarts and kill -9.

A restart is a new Daemon on the same temp dir (same config file, socket and
state dir): see DurabilityCase.restart(). A kill -9 leaves the job processes
of the dead taskd re-parented to us (the harness is a child subreaper); they
are killed when the dead daemon is stopped.

Environment:
  DURABILITY_SLOW=1   the long cases: 10,000 jobs per crash round, 5 rounds
                      (default 2,000 jobs, 3 rounds); meson's `slow` suite.
  DURABILITY_SEED=N   the seed of the random crash test (printed on every run).

Standard library only.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import E2ETestCase, Daemon, TASKD, jobs_of, wait_for, main  # noqa: E402

SLOW = os.environ.get("DURABILITY_SLOW", "") not in ("", "0")
SEED = int(os.environ.get("DURABILITY_SEED") or random.SystemRandom().randrange(1 << 32))

IO = {"class": "io"}
CPU = {"class": "cpu"}
FINAL = ("done", "failed", "cancelled", "timeout", "lost")
DB = "taskd.db"

# Room for every job a crash run submits: nothing may be pruned or refused.
BIG_QUEUES = {"queue.max_pending": 1000000, "queue.max_pending_per_user": 1000000,
              "jobs.keep_finished": 1000000}
ONE_EACH = {"thread_pool.min_threads": 1, "thread_pool.max_threads": 1,
            "process_pool.mode": "static", "process_pool.max_workers": 1}


def db_path(d):
    return os.path.join(d.state_dir, DB)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def pipeline(d, reqs, chunk=256, timeout=60):
    """Send requests (each with a unique "id") on one connection, a chunk at a time.

    → the responses, in the order of reqs.
    """
    out = []
    with d.connect(timeout) as c:
        for i in range(0, len(reqs), chunk):
            part = reqs[i:i + chunk]
            c.send_raw(b"".join(json.dumps(r).encode() + b"\n" for r in part))
            got = {}
            while len(got) < len(part):
                r = c.recv(timeout)
                got[r.get("id")] = r
            out.extend(got[r["id"]] for r in part)
    return out


def show_many(d, ids):
    """{id: show response} for every id, pipelined."""
    reqs = [{"v": 1, "id": "sh%d" % i, "op": "show", "job": i} for i in ids]
    return dict(zip(ids, pipeline(d, reqs)))


# ---------------------------------------------------------------------------

class DurabilityCase(E2ETestCase):
    """Daemons that can be restarted on the same state dir."""

    def daemon(self, overrides=None):
        d = self.start_daemon(overrides)
        d.overrides = overrides
        return d

    def kill9(self, d):
        """SIGKILL the daemon and wait for it; its leftover job processes are killed."""
        self.assertTrue(d.alive(), "taskd died before the kill; log:\n" + d.log_tail())
        d.signal(signal.SIGKILL)
        rc = d.wait_exit(10)
        self.assertEqual(rc, -signal.SIGKILL)
        d.stop()

    def restart(self, d, overrides=None, stop=True):
        """Stop d (SIGTERM, if it still runs) and start a new taskd on its directory.

        The first daemon's cleanup removes the directory (it runs last) and
        reports the shared log on failure; the new one is only stopped.
        """
        if stop:
            rc = d.stop()
            self.assertIn(rc, (0, -signal.SIGKILL), "taskd exited with %r" % (rc,))
        ov = d.overrides if overrides is None else overrides
        n = Daemon(ov, start=False, tmpdir=d.tmp)
        n.overrides = ov
        self.addCleanup(n.stop)
        n.start()
        return n

    def barrier(self, d):
        """A submit acknowledged: everything changed before it is committed too
        (one transaction writes every dirty job)."""
        return d.submit(type="noop", **IO)

    def wait_all(self, d, ids, timeout=60):
        """Every job in ids final; → {id: job}."""
        def check():
            jobs = {i: r["result"] for i, r in show_many(d, ids).items()}
            return jobs if all(j["state"] in FINAL for j in jobs.values()) else None
        return wait_for(check, timeout, 0.1, what="jobs %s..%s to finish" % (min(ids), max(ids)))

    def assertNextIdAbove(self, d, ids):
        top = max(ids)
        nid = d.submit(type="noop", **IO)
        self.assertGreater(nid, top, "an id was reused: got %d, %d was already handed out"
                           % (nid, top))
        return nid


# ---------------------------------------------------------------------------

class RestartTest(DurabilityCase):
    """Clean restarts (SIGTERM) keep finished jobs, their results and output."""

    def test_clean_restart_keeps_finished_jobs(self):
        d = self.daemon()
        ids = []
        for i in range(3):
            ids.append(d.submit(["sh", "-c", "echo out-%d; echo err-%d >&2" % (i, i)], **IO))
        ids.append(d.submit(["sh", "-c", "echo failing; exit 3"], **IO, name="fails"))
        ids.append(d.submit(type="sumsq", argv=["1000"], **CPU))
        ids.append(d.submit(["sleep", "10"], **IO, timeout=0.3))
        ids.append(d.submit(["sh", "-c", "printf '\\377\\376bin'"], **IO, priority=-3))
        ids.append(d.submit(["no-such-command-e2e-durability"], **IO))
        slow = d.submit(["sleep", "30"], **IO)
        d.wait_state(slow, "running")
        d.cancel(slow)
        ids.append(slow)
        before = self.wait_all(d, ids, timeout=30)
        self.assertEqual([before[i]["state"] for i in ids],
                         ["done"] * 3 + ["failed", "done", "timeout", "done", "failed",
                          "cancelled"])
        outputs = {i: (d.read_output(i), d.read_output(i, "stderr")) for i in ids}
        self.assertEqual(outputs[ids[0]], (b"out-0\n", b"err-0\n"))
        self.assertEqual(outputs[ids[6]][0], b"\xff\xfebin")

        for round_ in range(2):
            d = self.restart(d)
            for i in ids:
                with self.subTest(round=round_, job=i):
                    self.assertEqual(d.show(i), before[i], "job %d changed across a restart" % i)
                    self.assertEqual((d.read_output(i), d.read_output(i, "stderr")),
                                     outputs[i])
                    self.assertIs(d.logs(i)["eof"], True)
            listed = [j["id"] for j in d.list_jobs()]
            self.assertEqual(listed, sorted(ids))
            nid = self.assertNextIdAbove(d, ids)
            before[nid] = d.wait_job(nid)
            self.assertEqual(before[nid]["state"], "done")
            outputs[nid] = (b"", b"")
            ids.append(nid)
        self.assertEqual(d.status()["jobs"]["queued"], 0)

    def test_sigterm_cancels_queued_and_remembers_it(self):
        d = self.daemon(ONE_EACH)
        block = d.submit(["sleep", "30"], **IO)
        d.wait_state(block, "running")
        queued = d.submit_batch([{"argv": ["true"], "class": "io"} for _ in range(5)])
        for i in queued:
            self.assertEqual(d.show(i)["state"], "queued")
        d = self.restart(d)
        self.assertEqual(d.show(block)["state"], "cancelled")
        for i in queued:
            j = d.show(i)
            self.assertEqual(j["state"], "cancelled", j)
        self.assertNextIdAbove(d, queued)


# ---------------------------------------------------------------------------

class CrashQueuedTest(DurabilityCase):
    """kill -9 with a full queue: queued jobs come back, in order; running ones are lost."""

    def test_kill9_with_queued_jobs(self):
        d = self.daemon(ONE_EACH)
        blockers = [d.submit(["sleep", "30"], **IO), d.submit(["sleep", "30"], **CPU)]
        for b in blockers:
            d.wait_state(b, "running")
        rng = random.Random(SEED)
        jobs = []
        for k in range(50):
            cls = rng.choice(("io", "cpu"))
            jobs.append({"type": "sleep", "argv": ["0.02"], "class": cls,
                         "priority": rng.choice((-5, 0, 0, 3, 10)), "name": "q%d" % k})
        # The first queued job of each class must not be the first to run.
        for cls in ("io", "cpu"):
            first = next(j for j in jobs if j["class"] == cls)
            first["priority"] = 10
        ids = []
        for k in range(0, 20):  # single submits
            ids.append(d.submit(**jobs[k]))
        ids += d.submit_batch(jobs[20:35])
        ids += d.submit_batch(jobs[35:50])
        spec = dict(zip(ids, jobs))
        before = {i: d.show(i) for i in ids}
        for i in ids:
            self.assertEqual(before[i]["state"], "queued")
        self.kill9(d)

        d = self.restart(d, stop=False)
        for b in blockers:
            j = d.show(b)
            self.assertEqual(j["state"], "lost", j)
            self.assertIsInstance(j["error"], str)
            self.assertTrue(j["error"].strip(), j)
            self.assertIsNotNone(j["finished_at"])
        after = self.wait_all(d, ids, timeout=60)
        for i in ids:
            self.assertEqual(after[i]["state"], "done", after[i])
            self.assertEqual(after[i]["name"], spec[i]["name"])
            self.assertEqual(after[i]["priority"], spec[i]["priority"])
            self.assertEqual(after[i]["submitted_at"], before[i]["submitted_at"])
        for cls in ("io", "cpu"):
            mine = [i for i in ids if spec[i]["class"] == cls]
            started = sorted(mine, key=lambda i: after[i]["started_at"])
            expected = sorted(mine, key=lambda i: (spec[i]["priority"], i))
            self.assertEqual(
                started, expected,
                "%s jobs did not start in priority, then FIFO order after the restart:\n"
                "  started (id:prio): %s\n  expected:          %s" % (
                    cls, " ".join("%d:%d" % (i, spec[i]["priority"]) for i in started),
                    " ".join("%d:%d" % (i, spec[i]["priority"]) for i in expected)))
        self.assertNextIdAbove(d, ids + blockers)


class CrashRunningTest(DurabilityCase):
    """kill -9 while jobs run: they are lost, and the new daemon serves."""

    def test_kill9_with_running_jobs(self):
        ov = {"thread_pool.min_threads": 1, "thread_pool.max_threads": 12,
              "process_pool.mode": "static", "process_pool.max_workers": 2}
        d = self.daemon(ov)
        ids = [d.submit(["sleep", "5"], **IO) for _ in range(10)]
        ids += [d.submit(type="spin", argv=["5"], **CPU) for _ in range(2)]
        for i in ids:
            d.wait_state(i, "running")
        self.barrier(d)  # the running states are on disk
        self.kill9(d)
        d = self.restart(d, stop=False)
        for i in ids:
            j = d.show(i)
            self.assertEqual(j["state"], "lost", j)
            self.assertTrue(j["error"] and j["error"].strip(), j)
        st = self.assertDaemonServes(d)
        # The barrier (a noop) may have been stored queued: it runs again, briefly.
        st = wait_for(lambda: (lambda s: s if s["jobs"]["running"] == 0 else None)(d.status()),
                      10, what="no job running after the restart")
        self.assertGreaterEqual(st["jobs"]["lost"], 12)  # the barrier may be lost too
        new = [d.submit(type="sleep", argv=["0.1"], **IO),
               d.submit(["sh", "-c", "echo fine"], **IO),
               d.submit(type="spin", argv=["0.1"], **CPU),
               d.submit(["sh", "-c", "echo fine"], **CPU)]
        for i in new:
            self.assertEqual(d.wait_job(i, timeout=30)["state"], "done")
        self.assertEqual(d.read_output(new[3]), b"fine\n")
        self.assertGreater(min(new), max(ids))
        for i in ids:  # still lost: not re-run
            self.assertEqual(d.show(i)["state"], "lost")


# ---------------------------------------------------------------------------

class StreamClient(threading.Thread):
    """Pipelines submit requests on one connection, recording every acknowledgement."""

    WINDOW = 16

    def __init__(self, sock_path, reqs, tally):
        super().__init__(daemon=True)
        self.sock_path = sock_path
        self.reqs = reqs        # [(tag, [names], batch)]
        self.tally = tally      # shared: {"acked_jobs": n, "lock": Lock}
        self.acked = {}         # tag -> [ids]
        self.errors = []        # error responses (none expected)
        self.exc = None         # how the connection ended, if not by finishing
        self.sent = 0

    def encode(self, tag, names, batch):
        if batch:
            req = {"v": 1, "id": tag, "op": "submit",
                   "jobs": [{"type": "noop", "class": "io", "name": n} for n in names]}
        else:
            req = {"v": 1, "id": tag, "op": "submit", "type": "noop", "class": "io",
                   "name": names[0]}
        return json.dumps(req).encode() + b"\n"

    def run(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        inflight = set()
        buf = b""
        try:
            s.connect(self.sock_path)
            while self.sent < len(self.reqs) or inflight:
                while self.sent < len(self.reqs) and len(inflight) < self.WINDOW:
                    tag, names, batch = self.reqs[self.sent]
                    s.sendall(self.encode(tag, names, batch))
                    inflight.add(tag)
                    self.sent += 1
                chunk = s.recv(65536)
                if not chunk:
                    self.exc = "EOF"
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    r = json.loads(line)
                    tag = r.get("id")
                    inflight.discard(tag)
                    if r.get("ok") is True:
                        res = r["result"]
                        got = res["ids"] if "ids" in res else [res["id"]]
                        self.acked[tag] = got
                        with self.tally["lock"]:
                            self.tally["acked_jobs"] += len(got)
                    else:
                        self.errors.append(r)
        except (OSError, ValueError) as e:
            self.exc = e
        finally:
            s.close()


class CrashStreamTest(DurabilityCase):
    """kill -9 at a random moment of a stream of submits: no acknowledged job is lost."""

    N = 10000 if SLOW else 2000
    ROUNDS = 5 if SLOW else 3
    CONNS = 4
    CONFIG = {}  # more daemon settings (subclasses)

    def make_requests(self, rng, rnd):
        """Per connection, a list of (tag, names, batch); N jobs in all."""
        reqs = [[] for _ in range(self.CONNS)]
        n = k = 0
        while n < self.N:
            conn = k % self.CONNS
            if rng.random() < 0.5:
                size = 1
                batch = False
            else:
                size = min(rng.randint(2, 40), self.N - n)
                batch = True
            tag = "r%d-c%d-q%d" % (rnd, conn, k)
            names = ["%s-j%d" % (tag, x) for x in range(size)]
            reqs[conn].append((tag, names, batch))
            n += size
            k += 1
        return reqs

    def test_kill9_during_submit_stream(self):
        seed = SEED
        sys.stderr.write("\n%s: DURABILITY_SEED=%d (N=%d, rounds=%d)\n"
                         % (self.id(), seed, self.N, self.ROUNDS))
        rng = random.Random(seed)
        d = self.daemon(dict(BIG_QUEUES, **{"thread_pool.max_threads": 2}, **self.CONFIG))
        all_acked = {}       # id -> name, every round
        prev_max = 0
        total_acked = 0
        for rnd in range(self.ROUNDS):
            reqs = self.make_requests(rng, rnd)
            tally = {"acked_jobs": 0, "lock": threading.Lock()}
            target = rng.randint(self.N // 20, self.N * 9 // 10)
            extra = rng.uniform(0, 0.005)
            clients = [StreamClient(d.sock, r, tally) for r in reqs]
            t0 = time.monotonic()
            for c in clients:
                c.start()
            deadline = t0 + 120
            while (tally["acked_jobs"] < target and any(c.is_alive() for c in clients)
                   and time.monotonic() < deadline):
                time.sleep(0.0005)
            time.sleep(extra)
            at_kill = tally["acked_jobs"]
            self.kill9(d)
            for c in clients:
                c.join(30)
                self.assertFalse(c.is_alive(), "a client thread hangs")
            elapsed = time.monotonic() - t0
            errors = [e for c in clients for e in c.errors]
            self.assertEqual(errors, [], "error responses before the kill")
            acked = {}
            for c in clients:
                for tag, ids in c.acked.items():
                    names = next(nm for t, nm, _ in c.reqs if t == tag)
                    self.assertEqual(len(ids), len(names), "batch %s: %r" % (tag, ids))
                    for i, nm in zip(ids, names):
                        self.assertNotIn(i, acked, "id %d acknowledged twice" % i)
                        self.assertNotIn(i, all_acked, "id %d acknowledged in an earlier round"
                                         % i)
                        acked[i] = nm
            sent = sum(len(nm) for c in clients for _, nm, _ in c.reqs[:c.sent])
            sys.stderr.write("round %d: kill -9 after %.2fs at %d acknowledged jobs "
                             "(target %d); %d acknowledged, %d sent, %d planned\n"
                             % (rnd, elapsed, at_kill, target, len(acked), sent, self.N))
            self.assertGreater(len(acked), 0)

            d = self.restart(d, stop=False)
            listed = jobs_of(d.ctl_json("list", "--limit", "0", timeout=120))
            ids = [j["id"] for j in listed]
            self.assertEqual(len(ids), len(set(ids)), "duplicate ids in list --limit 0")
            by_name = {}
            for j in listed:
                if j["name"] is not None:  # not the unnamed jobs of assertNextIdAbove
                    by_name.setdefault(j["name"], []).append(j["id"])
            dups = {nm: v for nm, v in by_name.items() if len(v) > 1}
            self.assertEqual(dups, {}, "jobs stored twice")
            # every acknowledged id is there, under its own name
            shown = show_many(d, sorted(acked))
            missing = [i for i, r in shown.items() if r.get("ok") is not True]
            self.assertEqual(missing, [], "acknowledged jobs missing after kill -9 (seed %d, "
                             "round %d): %s" % (seed, rnd, missing[:20]))
            wrong = [(i, r["result"]["name"], acked[i]) for i, r in shown.items()
                     if r["result"]["name"] != acked[i]]
            self.assertEqual(wrong, [], "acknowledged ids hold other jobs")
            # a batch is stored whole or not at all
            for c in clients:
                for tag, names, batch in c.reqs[:c.sent]:
                    present = sum(1 for nm in names if nm in by_name)
                    self.assertIn(present, (0, len(names)),
                                  "request %s half stored (%d of %d)" % (tag, present,
                                                                         len(names)))
            this_round = [j for j in listed if (j["name"] or "").startswith("r%d-" % rnd)]
            self.assertGreaterEqual(len(this_round), len(acked))
            if this_round:
                self.assertGreater(min(j["id"] for j in this_round), prev_max,
                                   "ids of this round are not above the earlier ones")
            total_acked += len(acked)
            all_acked.update(acked)
            self.assertGreaterEqual(len(listed), total_acked)
            # earlier rounds' acknowledged jobs are still there
            self.assertTrue(set(all_acked) <= set(ids),
                            "acknowledged jobs of earlier rounds vanished: %s"
                            % sorted(set(all_acked) - set(ids))[:20])
            nid = self.assertNextIdAbove(d, ids + list(all_acked))
            prev_max = nid
            sys.stderr.write("round %d: %d stored for this round (%d acknowledged), "
                             "%d jobs in all, next id %d\n"
                             % (rnd, len(this_round), len(acked), len(listed), nid))



class CrashStreamIntervalTest(CrashStreamTest):
    """The same with store.fsync = "interval": answers do not wait for fsync,
    yet a kill -9 of the daemon (not of the machine) still loses nothing
    acknowledged, because every answer follows the write to SQLite's log."""

    ROUNDS = 3 if SLOW else 2
    CONFIG = {"store.fsync": "interval", "store.fsync_interval": 1}


# ---------------------------------------------------------------------------

class BadDatabaseTest(DurabilityCase):
    """A database taskd cannot trust: refused at start, never reset or written."""

    def prepared(self):
        """A state dir with a valid database holding a few jobs; taskd stopped."""
        d = self.daemon()
        for i in range(5):
            d.wait_job(d.submit(["sh", "-c", "echo %d" % i], **IO))
        self.assertEqual(d.stop(), 0)
        for ext in ("-wal", "-shm"):
            self.assertFalse(os.path.exists(db_path(d) + ext), "left behind: " + ext)
        return d

    def refused(self, d, *words):
        path = db_path(d)
        snapshot = read_bytes(path)
        t0 = time.monotonic()
        try:
            p = subprocess.run([TASKD, "-c", d.conf, "-s", d.sock], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=10, cwd=d.tmp)
        except subprocess.TimeoutExpired:
            self.fail("taskd started on a bad database (still running after 10 s)")
        elapsed = time.monotonic() - t0
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertLess(elapsed, 5)
        self.assertIn(path, p.stderr)
        for w in words:
            self.assertIn(w, p.stderr)
        self.assertEqual(read_bytes(path), snapshot, "taskd changed the refused database")
        self.assertFalse(os.path.exists(path + "-wal") and os.path.getsize(path + "-wal"),
                         "taskd wrote a WAL next to the refused database")
        return p.stderr

    def test_garbage_database(self):
        d = self.prepared()
        rng = random.Random(SEED)
        with open(db_path(d), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(32768)))
        self.refused(d, "corrupt")

    def test_damaged_pages(self):
        d = self.prepared()
        data = bytearray(read_bytes(db_path(d)))
        page = int.from_bytes(data[16:18], "big")
        page = 65536 if page == 1 else page
        self.assertGreaterEqual(len(data), 3 * page, "a database of %d bytes" % len(data))
        rng = random.Random(SEED)
        for k in range(page, len(data)):  # every page but the first (the header, schema)
            data[k] = rng.randrange(256)
        with open(db_path(d), "wb") as f:
            f.write(data)
        self.refused(d, "corrupt")

    def test_newer_schema(self):
        import sqlite3
        d = self.prepared()
        con = sqlite3.connect(db_path(d))
        con.execute("PRAGMA user_version = 99")
        con.commit()
        con.close()
        for ext in ("-wal", "-shm"):
            if os.path.exists(db_path(d) + ext):
                os.unlink(db_path(d) + ext)
        self.refused(d, "newer")

    def rewrite_record(self, d, jid, change):
        import sqlite3
        con = sqlite3.connect(db_path(d))
        (text,) = con.execute("SELECT record FROM jobs WHERE id = ?", (jid,)).fetchone()
        con.execute("UPDATE jobs SET record = ? WHERE id = ?", (change(text), jid))
        con.commit()
        con.close()
        for ext in ("-wal", "-shm"):
            if os.path.exists(db_path(d) + ext):
                os.unlink(db_path(d) + ext)

    def test_newer_record_version(self):
        # a job record of a later format: refused, never guessed at or rewritten
        d = self.prepared()
        newer = RECORD_VERSION + 1
        self.rewrite_record(d, 3, lambda t: json.dumps(dict(json.loads(t), v=newer)))
        self.refused(d, "job 3: record version %d written by a newer taskd" % newer)

    def test_unreadable_record(self):
        d = self.prepared()
        self.rewrite_record(d, 4, lambda t: t.replace('"status":"exited"', '"status":"crashed"'))
        self.refused(d, "job 4: unreadable record")

    def test_foreign_database(self):
        import sqlite3
        d = self.daemon()
        self.assertEqual(d.stop(), 0)
        os.unlink(db_path(d))
        con = sqlite3.connect(db_path(d))
        con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        con.execute("INSERT INTO accounts VALUES (1, 100)")
        con.commit()
        con.close()
        self.refused(d, "not a taskd database")

    def test_good_database_after_refusals_is_untouched(self):
        # sanity for the helpers: a valid database restarts fine, its jobs intact
        d = self.prepared()
        d = self.restart(d, stop=False)
        jobs = d.list_jobs()
        self.assertEqual([j["state"] for j in jobs], ["done"] * 5)
        self.assertEqual(d.read_output(jobs[4]["id"]), b"4\n")


# ---------------------------------------------------------------------------

class PruneTest(DurabilityCase):
    """jobs.keep_finished across restarts: pruned jobs go with their files, ids are not reused."""

    def out_files(self, d):
        return sorted(os.listdir(os.path.join(d.state_dir, "jobs")))

    def check_pruned(self, d, ids, keep):
        listed = d.list_jobs()
        finished = [j["id"] for j in listed if j["state"] in FINAL]
        self.assertLessEqual(len(finished), keep,
                             "more finished jobs than jobs.keep_finished = %d: %s"
                             % (keep, " ".join("%d:%s" % (j["id"], j["state"]) for j in listed)))
        files = self.out_files(d)
        for i in ids:
            if i in finished:
                continue
            self.assertError(d.request({"id": 1, "op": "show", "job": i}), "not_found")
            self.assertNotIn("%d.out" % i, files)
            self.assertNotIn("%d.err" % i, files)
        return finished

    def test_keep_finished_across_restarts(self):
        ov = {"jobs.keep_finished": 5, "thread_pool.max_threads": 1}
        d = self.daemon(ov)
        ids = [d.submit(["sh", "-c", "echo job-%d" % k], **IO) for k in range(10)]
        # one thread, FIFO: the last one done means all done (earlier ones may be pruned already)
        d.wait_job(ids[-1])
        kept = self.check_pruned(d, ids, 5)
        self.assertEqual(kept, ids[5:])

        # clean restart
        d = self.restart(d)
        kept = self.check_pruned(d, ids, 5)
        self.assertEqual(kept, ids[5:])
        for k, i in enumerate(ids[5:]):
            self.assertEqual(d.read_output(i), b"job-%d\n" % (k + 5))

        # ten more on the restarted daemon: the restored finished jobs count too
        more = [d.submit(["sh", "-c", "echo more-%d" % k], **IO) for k in range(10)]
        d.wait_job(more[-1])
        all_ids = ids + more
        kept = self.check_pruned(d, all_ids, 5)
        self.assertEqual(kept, more[5:])

        # crash: a barrier so that the prunes are committed, kill -9
        d.wait_job(self.barrier(d))
        last = self.barrier(d)
        self.kill9(d)
        d = self.restart(d, stop=False)
        # The last barrier may come back queued (its start is committed
        # lazily) and run now: its end prunes one more. Let it end first.
        d.wait_job(last)
        kept = self.check_pruned(d, all_ids, 5)
        self.assertTrue(set(kept).isdisjoint(ids), kept)
        for i in kept:
            if i in more:
                self.assertEqual(d.read_output(i), b"more-%d\n" % more.index(i))
        self.assertLessEqual(len([f for f in self.out_files(d) if f.endswith(".out")]), 5)
        self.assertNextIdAbove(d, all_ids)

    def test_ids_not_reused_when_everything_was_pruned(self):
        d = self.daemon({"jobs.keep_finished": 0})
        ids = [d.submit(["true"], **IO) for _ in range(3)]
        wait_for(lambda: d.list_jobs() == [], 10, what="every job pruned")
        d = self.restart(d)
        self.assertEqual(d.list_jobs(), [])
        top = self.assertNextIdAbove(d, ids)
        wait_for(lambda: d.list_jobs() == [], 10, what="every job pruned")
        self.barrier(d)
        self.kill9(d)
        d = self.restart(d, stop=False)
        self.assertNextIdAbove(d, ids + [top])


# ---------------------------------------------------------------------------

class GroupCommitTest(DurabilityCase):
    def test_batch_of_500_acknowledged_quickly(self):
        d = self.daemon(BIG_QUEUES)
        jobs = [{"type": "noop", "class": "io", "name": "g%d" % k} for k in range(500)]
        t0 = time.monotonic()
        ids = d.submit_batch(jobs)
        dt = time.monotonic() - t0
        sys.stderr.write("\n500-job batch acknowledged in %.3fs\n" % dt)
        self.assertLess(dt, 3.0)
        self.assertEqual(len(ids), 500)
        self.assertEqual(len(set(ids)), 500)

        # the same number as single submits, pipelined on one connection
        reqs = [{"v": 1, "id": k, "op": "submit", "type": "noop", "class": "io",
                 "name": "s%d" % k} for k in range(500)]
        t0 = time.monotonic()
        resp = pipeline(d, reqs, chunk=500)
        dt = time.monotonic() - t0
        sys.stderr.write("500 pipelined single submits acknowledged in %.3fs\n" % dt)
        self.assertTrue(all(r.get("ok") for r in resp), [r for r in resp if not r.get("ok")][:3])
        singles = [r["result"]["id"] for r in resp]
        self.assertLess(dt, 10.0)

        self.kill9(d)
        d = self.restart(d, stop=False)
        shown = show_many(d, ids + singles)
        self.assertEqual([i for i, r in shown.items() if not r.get("ok")], [])
        self.assertNextIdAbove(d, ids + singles)


# ---------------------------------------------------------------------------

def try_mount_tmpfs(size):
    """A small tmpfs on a new temp dir → its path, or (None, why)."""
    if os.geteuid() != 0:
        return None, "needs root (mounts a tmpfs)"
    mnt = tempfile.mkdtemp(prefix="taskd-e2e-full-")
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs",
                            mnt], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        os.rmdir(mnt)
        return None, "mount failed: %s" % e
    if p.returncode != 0:
        os.rmdir(mnt)
        return None, "mount -t tmpfs failed: %s" % p.stderr.strip()
    return mnt, None


def umount(mnt):
    p = subprocess.run(["umount", mnt], capture_output=True, timeout=10)
    if p.returncode != 0:
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=10)
    shutil.rmtree(mnt, ignore_errors=True)


class DiskFullTest(DurabilityCase):
    def test_disk_full_gives_storage_error(self):
        mnt, why = try_mount_tmpfs("600k")
        if mnt is None:
            self.skipTest(why)
        self.addCleanup(umount, mnt)  # after the daemons' cleanups (LIFO)
        state = os.path.join(mnt, "state")
        d = self.daemon(dict(BIG_QUEUES, **{"state_dir": state}))

        def free():
            st = os.statvfs(mnt)
            return st.f_bavail * st.f_frsize

        def fill(path, limit=None):
            """Write zeros to path until the file system is full (or limit bytes)."""
            n = 0
            try:
                with open(path, "wb") as f:
                    while limit is None or n < limit:
                        f.write(b"\0" * 4096)
                        f.flush()
                        n += 4096
            except OSError:
                pass
            return n

        acked = {}  # id -> name

        def submit_batch(tag, k):
            names = ["%s-%d-%d-%s" % (tag, k, x, "x" * 200) for x in range(10)]
            r = d.request({"v": 1, "id": k, "op": "submit",
                           "jobs": [{"type": "noop", "class": "io", "name": nm}
                                    for nm in names]}, timeout=30)
            if r.get("ok") is True:
                acked.update(zip(r["result"]["ids"], names))
            return r, names

        for k in range(3):  # acknowledged before the disk fills up
            r, _ = submit_batch("early", k)
            self.assertOk(r)
        # a job that will finish while the disk is full
        flag = os.path.join(d.tmp, "finish-now")
        gated = d.submit(["sh", "-c", "while [ ! -e %s ]; do sleep 0.05; done; exit 7" % flag],
                         **IO, name="gated")
        acked[gated] = "gated"
        d.wait_state(gated, "running")
        self.barrier(d)
        # room set aside by the test, freed later; then jobs writing output fill the rest
        reserve = os.path.join(mnt, "reserve")
        self.assertGreater(fill(reserve, 256 * 1024), 128 * 1024)
        writers = []
        for k in range(20):
            if free() < 32 * 1024:
                break
            jid = d.submit(["head", "-c", "65536", "/dev/zero"], **IO)
            writers.append(jid)
            d.wait_job(jid, timeout=30)
        self.assertDaemonServes(d)
        fill(os.path.join(mnt, "filler"))  # whatever the jobs left
        # submits with big records until the store cannot grow
        failed = None
        for k in range(300):
            r, names = submit_batch("full", k)
            if r.get("ok") is not True:
                failed = (r, names)
                break
        self.assertIsNotNone(failed, "300 batches fit on a full 600k file system?")
        self.assertError(failed[0], "storage_error")
        sys.stderr.write("\nstorage_error after %d acknowledged jobs (%d output writers): %s\n"
                         % (len(acked), len(writers), failed[0]["error"]["message"]))
        st = self.assertDaemonServes(d)
        self.assertIsInstance(st["jobs"], dict)
        names = {j["name"] for j in d.list_jobs()}
        self.assertTrue(names.isdisjoint(failed[1]), "a refused batch was partly kept")
        # a single submit is refused the same way
        r = d.request({"v": 1, "id": "one", "op": "submit", "type": "noop", "class": "io",
                       "name": "refused-single"})
        if r.get("ok") is True:  # the failed batch's rollback left room for one
            acked[r["result"]["id"]] = "refused-single"
        else:
            self.assertError(r, "storage_error")

        with open(flag, "w"):
            pass
        j = d.wait_job(gated, timeout=10)
        self.assertEqual((j["state"], j["exit_code"]), ("failed", 7))

        # room again: submits work again
        os.unlink(reserve)
        nid = wait_for(lambda: (lambda r: r["result"]["id"] if r.get("ok") else None)(
            d.request({"v": 1, "id": "again", "op": "submit", "type": "noop", "class": "io",
                       "name": "after-full"})), 10, 0.2,
            what="a submit to succeed once there is room")
        acked[nid] = "after-full"
        self.assertDaemonServes(d)

        # and everything acknowledged survives kill -9
        self.kill9(d)
        d = self.restart(d, stop=False)
        shown = show_many(d, sorted(acked))
        missing = [i for i, r in shown.items() if not r.get("ok")]
        self.assertEqual(missing, [], "acknowledged jobs lost after a full disk")
        self.assertEqual({i: r["result"]["name"] for i, r in shown.items()}, acked)
        j = d.show(gated)
        self.assertEqual((j["state"], j["exit_code"]), ("failed", 7),
                         "a job that finished while the disk was full lost its result, "
                         "although the store had room again before the kill")
        states = {}
        for r in shown.values():
            states[r["result"]["state"]] = states.get(r["result"]["state"], 0) + 1
        sys.stderr.write("after the restart, acknowledged jobs by state: %s\n" % states)
        names = {j["name"] for j in d.list_jobs()}
        self.assertTrue(names.isdisjoint(failed[1]), "a refused batch came back")
        self.assertDaemonServes(d)


# ---------------------------------------------------------------------------

# The record version this taskd writes (daemon/record.h RECORD_VERSION).
RECORD_VERSION = 5

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


class RecordMigrationTest(DurabilityCase):
    """A taskd.db written by taskd 0.1.0 loads, and its jobs look as they did.

    tests/e2e/fixtures/records-v1.db was made by that release
    (fixtures/make-records-v1-db): jobs in every state, killed with -9 while
    job 10 ran (11 queued behind it, 12 paused, 13 waiting for 10, 14
    scheduled). records-v1.show.json is how that release showed the jobs a
    restart does not change.
    """

    OV = {"thread_pool.min_threads": 1, "thread_pool.max_threads": 1,
          "process_pool.mode": "static", "process_pool.max_workers": 1,
          "process_pool.min_workers": 1}

    def on_fixture(self):
        d = Daemon(self.OV, start=False)
        d.overrides = self.OV
        self.track(d)
        os.makedirs(d.state_dir)
        shutil.copyfile(os.path.join(FIXTURES, "records-v1.db"), db_path(d))
        d.start()
        return d

    # Job fields added since 0.1.0 by issue 15 (doc/protocol.md "Job object"):
    # a job of that release ran with no limits and in no cgroup, and its peak
    # memory was not measured; how it was routed is its class, or unknown.
    ADDED = {"memory": None, "cpus": None, "pids": None, "mem_peak_kb": None,
             "cgroup": None, "cgroup_error": None, "live": None, "wait_reason": None}

    def check_jobs(self, d, expected):
        for want in expected:
            with self.subTest(job=want["id"]):
                got = d.show(want["id"])
                route = got.pop("route")
                by = "class" if want["class"] != "auto" else "unknown"
                if want["routed"] is not None:
                    self.assertEqual((route["by"], route["class"]), (by, want["routed"]))
                else:  # never ran: queued (then routed) or not
                    self.assertIn((route["by"], route["class"]),
                                  ((None, None), (by, want["class"])))
                self.assertEqual((route["key"], route["level"], route["counts_as"],
                                  route["reclassified_at"]), (None, None, None, None))
                self.assertTrue(route["keys"] and all(isinstance(k, str) for k in route["keys"]))
                reason = want["state"] if want["state"] in ("paused", "scheduled") else None
                self.assertEqual(got, dict(want, **dict(self.ADDED, wait_reason=reason)))

    def test_release_0_1_0_database(self):
        with open(os.path.join(FIXTURES, "records-v1.show.json")) as f:
            expected = json.load(f)
        # Since 0.1.0, a wall time never measured (0: job 1, lost by a restart)
        # is shown as null (doc/protocol.md "Job object"); nothing else differs.
        # The job object has had "notify" since (null: no command when the job ends),
        # and the fields of record versions 4 and 5, with what a 0.1.0 job has of them.
        for j in expected:
            if j["wall"] == 0:
                j["wall"] = None
            j["notify"] = None
            j.update(unique=None, queue=None, slots=1, input_bytes=None, restarted_from=None,
                     array=None, array_index=None, suspended_at=None, suspended_for=0.0,
                     wait_reason={"paused": "paused", "scheduled": "scheduled"}.get(j["state"]))
        self.assertEqual([j["id"] for j in expected], [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 15])
        d = self.on_fixture()
        self.check_jobs(d, expected)
        j = d.show(10)
        self.assertEqual((j["state"], j["error"]),
                         ("lost", "taskd stopped while the job was running"))
        j = d.wait_job(11)
        self.assertEqual((j["state"], j["priority"], j["labels"]), ("done", 3, {"k": "v"}))
        j = d.wait_job(13)
        self.assertEqual((j["state"], j["error"]), ("failed", "dependency 10 failed (lost)"))
        self.assertEqual(d.show(12)["state"], "paused")
        self.assertEqual(d.show(14)["due_at"], 4102444800.0)
        self.assertNextIdAbove(d, range(1, 16))
        after = {i: d.show(i) for i in (10, 11, 13)}
        self.assertIn("migrating 15 stored job records (oldest version 1) to record version %d"
                      % RECORD_VERSION, d.log_text())
        # Stopped: every row is now a record of the current version.
        self.assertEqual(d.stop(), 0)
        self.assertCurrentRecords(db_path(d), range(1, 17))
        # Started again: the same jobs, unchanged, and nothing left to migrate.
        d = self.restart(d, stop=False)
        self.check_jobs(d, expected)
        for i, want in after.items():
            self.assertEqual(d.show(i), want)
        self.assertNotIn("migrating", d.log_text().split("taskd stopped")[-1])

    def assertCurrentRecords(self, path, ids):
        import sqlite3
        con = sqlite3.connect(path)
        try:
            rows = con.execute("SELECT id, state, record FROM jobs ORDER BY id").fetchall()
        finally:
            con.close()
        self.assertEqual([r[0] for r in rows], list(ids))
        for jid, state, text in rows:
            with self.subTest(row=jid):
                rec = json.loads(text)
                self.assertEqual(rec["v"], RECORD_VERSION)
                self.assertNotIn("route_key", rec)
                self.assertIn(rec["route"]["by"], ("class", "unknown", "key", "default"))
                self.assertIn("limits", rec["spec"])
                self.assertIn("mem_peak_kb", rec["result"])
                self.assertNotIn("res", rec)
                self.assertNotIn("life", rec)
                self.assertNotIn("t", rec["result"])
                self.assertNotIn("rss_kb", rec["result"])
                self.assertIn(rec["spec"]["type"], ("exec", "noop", "sumsq"))
                self.assertIn(rec["spec"]["class"], ("cpu", "io", "auto"))
                self.assertIn(rec["routed"], ("cpu", "io", "auto"))
                self.assertIn(rec["pool"], ("thread", "process", None))
                self.assertIn(rec["result"]["status"],
                              ("exited", "signaled", "timeout", "cancelled", "failed", "lost"))


if __name__ == "__main__":
    sys.stderr.write("test_durability: DURABILITY_SEED=%d%s\n"
                     % (SEED, " (slow)" if SLOW else ""))
    main()
