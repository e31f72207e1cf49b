"""Shared helpers for the on-demand benchmarks in tests/bench/.

Standard library only (Debian's /usr/bin/python3). Each benchmark script
starts its own taskd on a temporary directory and socket with a generated
config, drives it over the raw protocol (doc/protocol.md), and stops it and
removes the directory at the end, also on Ctrl-C, SIGTERM or an exception.

    with BenchDaemon({"process_pool.mode": "static"}) as d:
        run = run_jobs(d, [job("spin", "0.5", cls="cpu")] * 4)
        print(run.makespan)

Binaries: $TASKD and $TASKCTL, else ../../build/taskd and ../../build/taskctl
relative to this directory.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import taskdconf  # noqa: E402  (the e2e tests' config writer)


def _binary(var, name):
    path = os.environ.get(var)
    if path:
        return os.path.abspath(path)
    return os.path.normpath(os.path.join(HERE, "..", "..", "build", name))


TASKD = _binary("TASKD", "taskd")
TASKCTL = _binary("TASKCTL", "taskctl")

# Debian's PATH for jobs: not a developer's (a pyenv shim for python3 forks a
# dozen shells before python starts, which would dominate short jobs).
JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
START_TIMEOUT = 10.0   # daemon answers status
STOP_TIMEOUT = 10.0    # SIGTERM → exit, then SIGKILL


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# Signals: SIGTERM/SIGHUP behave like Ctrl-C, so `finally`/`with` clean up.

def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def install_signal_handlers():
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


# ---------------------------------------------------------------------------
# Machine

def ncpu():
    """Online CPUs, as the daemon counts them for max_workers = 0."""
    try:
        n = os.sysconf("SC_NPROCESSORS_ONLN")
    except (ValueError, OSError):
        n = os.cpu_count() or 1
    return max(1, int(n))


def usable_cpus():
    """CPUs this process may run on (affinity / cpuset); may be fewer than ncpu()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return ncpu()


# ---------------------------------------------------------------------------
# Config (libconfig text)

BASE_CONFIG = {
    "socket_mode": "0600",
    "log_level": "warn",
    "process_pool": {
        "mode": "static",         # max_workers workers, always
        "min_workers": 1,
        "max_workers": 0,         # 0 = one per CPU
        "min_spare": 1,
        "max_spare": 2,
        "max_jobs_per_worker": 0,
        "max_worker_rss": "512M",
        "idle_timeout": 30,
    },
    "thread_pool": {"min_threads": 2, "max_threads": 256, "idle_timeout": 30},
    "queue": {"max_pending": 100000, "max_pending_per_user": 100000},
    "router": {"default_class": "io", "cpu_ratio": 0.5},
    "jobs": {"default_timeout": 0, "kill_grace": 1, "max_output": "1M",
             "keep_finished": 100000},
    "limits": {"max_frame": "4M", "max_clients": 1024},
}


def render_config(cfg):
    return taskdconf.render(cfg, "tests/bench/benchlib.py")


# ---------------------------------------------------------------------------
# Pipelined client

class Client:
    """One connection; many requests in flight, responses matched by id."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.timeout = timeout
        self.buf = b""
        self.held = {}   # id → response read while looking for another id
        self._next = 0

    def new_id(self, prefix="r"):
        self._next += 1
        return "%s%d" % (prefix, self._next)

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def send_many(self, objs):
        self.sock.sendall(b"".join(json.dumps(o).encode() + b"\n" for o in objs))

    def _recv_one(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("no response from taskd in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise BenchError("no response from taskd in time")
            if not chunk:
                raise BenchError("taskd closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise BenchError("unparsable line from taskd: %r (%s)" % (line[:200], e))
        return obj

    def recv_id(self, rid, timeout=None):
        if rid in self.held:
            return self.held.pop(rid)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            obj = self._recv_one(deadline)
            if obj.get("id") == rid:
                return obj
            self.held[obj.get("id")] = obj

    def recv_any(self, deadline):
        """(response, client receive time), held ones first."""
        if self.held:
            k = next(iter(self.held))
            return self.held.pop(k), time.time()
        obj = self._recv_one(deadline)
        return obj, time.time()

    def call(self, op, timeout=None, **args):
        """One request; its result (BenchError on an error response)."""
        rid = self.new_id(op[:2])
        req = {"v": 1, "id": rid, "op": op}
        req.update(args)
        self.send(req)
        return ok_result(self.recv_id(rid, timeout), req)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ok_result(resp, req=None):
    if resp.get("ok") is not True:
        raise BenchError("taskd refused %s: %s" % (
            json.dumps(req)[:200] if req else "a request", json.dumps(resp.get("error"))))
    return resp.get("result")


# ---------------------------------------------------------------------------
# The daemon

_live = []


class BenchDaemon:
    """A taskd of our own: temp dir, socket, config; stopped and removed on exit."""

    def __init__(self, overrides=None, keep_tmp=False):
        self.tmp = tempfile.mkdtemp(prefix="taskd-bench-")
        self.sock = os.path.join(self.tmp, "taskd.sock")
        self.conf = os.path.join(self.tmp, "taskd.conf")
        self.log = os.path.join(self.tmp, "taskd.log")
        self.keep_tmp = keep_tmp or bool(os.environ.get("BENCH_KEEP_TMP"))
        cfg = json.loads(json.dumps(BASE_CONFIG))
        cfg["state_dir"] = os.path.join(self.tmp, "state")
        self.config = taskdconf.merge(cfg, overrides)
        with open(self.conf, "w") as f:
            f.write(render_config(self.config))
        self.proc = None
        self.logf = None
        _live.append(self)

    def start(self, timeout=START_TIMEOUT):
        for path in (TASKD, TASKCTL):
            if not os.access(path, os.X_OK):
                raise BenchError("%s is not an executable (build first: meson compile -C build; "
                                 "or set TASKD/TASKCTL)" % path)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([TASKD, "-c", self.conf, "-s", self.sock],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, cwd=self.tmp)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("taskd exited with %d at startup; log:\n%s"
                                 % (self.proc.returncode, self.log_tail()))
            try:
                with Client(self.sock, 2.0) as c:
                    c.call("status")
                return self
            except (OSError, BenchError):
                pass
            if time.monotonic() >= deadline:
                raise BenchError("taskd did not answer on %s within %.0f s; log:\n%s"
                                 % (self.sock, timeout, self.log_tail()))
            time.sleep(0.02)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                sys.stderr.write("bench: taskd %d ignored SIGTERM, killing it\n" % self.proc.pid)
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
            self.logf = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self in _live:
                _live.remove(self)
            if self.keep_tmp:
                sys.stderr.write("bench: keeping %s\n" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        # Block SIGINT while stopping, so a second Ctrl-C does not leave a daemon behind.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if exc[0] is not None and exc[0] is not KeyboardInterrupt:
                sys.stderr.write("bench: taskd log tail (%s):\n%s\n" % (self.log, self.log_tail()))
            self.cleanup()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def log_tail(self, n=30):
        try:
            with open(self.log, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    # -- requests
    def client(self, timeout=30.0):
        return Client(self.sock, timeout)

    def call(self, op, timeout=30.0, **args):
        with self.client(timeout) as c:
            return c.call(op, timeout, **args)

    def status(self):
        return self.call("status")

    def ctl(self, *args, timeout=60.0):
        """taskctl -s SOCK ARGS... → CompletedProcess (text)."""
        argv = [TASKCTL, "-s", self.sock] + [str(a) for a in args]
        env = dict(os.environ)
        env.pop("TASKD_SOCKET", None)
        return subprocess.run(argv, env=env, timeout=timeout, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    def ctl_cmd(self, *args):
        """The taskctl command line as a user would type it (socket as $SOCK)."""
        return " ".join(["taskctl", "-s", "$SOCK"] + [str(a) for a in args])

    # -- pools
    def wait_workers(self, want=None, timeout=5.0, appear=1.5):
        """Wait (bounded) until the process pool has `want` idle workers
        (default: its size). Gives up after `appear` seconds when no worker
        shows up at all (no process pool in this build). Returns the number
        of workers in status."""
        t0 = time.monotonic()
        while True:
            pp = self.status().get("process_pool") or {}
            workers = pp.get("workers") or []
            target = want if want is not None else (pp.get("max") or ncpu())
            idle = sum(1 for w in workers if w.get("state") == "idle")
            waited = time.monotonic() - t0
            if idle >= target or waited >= timeout or (not workers and waited >= appear):
                return len(workers)
            time.sleep(0.05)

    def probe_cpu_pool(self, timeout=10.0):
        """Run one class-cpu noop: the pool it ran on ("process" when the pool is live)."""
        r = run_jobs(self, [job("noop", cls="cpu")], timeout=timeout)
        return r.jobs[0].get("pool")


def cleanup_all():
    for d in list(_live):
        try:
            d.cleanup()
        except Exception:
            pass


import atexit  # noqa: E402
atexit.register(cleanup_all)


# ---------------------------------------------------------------------------
# Jobs and runs

def job(type_, *args, cls="auto", name=None):
    j = {"type": type_, "argv": [str(a) for a in args], "class": cls}
    if name:
        j["name"] = name
    return j


class Run:
    """A batch run: jobs (final job objects, in submit order), client times."""

    def __init__(self, t_submit, t_acked, jobs, recv_times):
        self.t_submit = t_submit      # time.time() just before the submit was sent
        self.t_acked = t_acked        # submit answered (ids known)
        self.jobs = jobs
        self.recv_times = recv_times  # time.time() each wait answer arrived
        bad = [j for j in jobs if j.get("state") != "done"]
        if bad:
            raise BenchError("%d job(s) did not finish as done, e.g. %s"
                             % (len(bad), json.dumps(bad[0])[:400]))

    @property
    def last_finish(self):
        return max(j["finished_at"] for j in self.jobs)

    @property
    def makespan(self):
        """First submit (client clock) → last job finished (daemon clock, same host)."""
        return self.last_finish - self.t_submit

    @property
    def makespan_client(self):
        """First submit → last wait answer received."""
        return max(self.recv_times) - self.t_submit

    def select(self, pred):
        return [j for j in self.jobs if pred(j)]

    def cpu_sum(self, jobs=None):
        return sum((j.get("cpu_user") or 0) + (j.get("cpu_sys") or 0)
                   for j in (self.jobs if jobs is None else jobs))

    def max_wall(self, jobs=None):
        return max((j.get("wall") or 0) for j in (self.jobs if jobs is None else jobs))

    def handoff_gaps(self, jobs=None):
        """Per worker (pool, worker id): seconds from one job's finish to the
        next job's start there - the daemon's dispatch overhead when jobs queue."""
        by = {}
        for j in (self.jobs if jobs is None else jobs):
            if j.get("started_at") is None:
                continue
            by.setdefault((j.get("pool"), j.get("worker")), []).append(j)
        gaps = []
        for js in by.values():
            js.sort(key=lambda j: j["started_at"])
            gaps += [b["started_at"] - a["finished_at"] for a, b in zip(js, js[1:])]
        return gaps

    def pools(self, jobs=None):
        """{"process": n, "thread": m} over the jobs."""
        out = {}
        for j in (self.jobs if jobs is None else jobs):
            p = j.get("pool") or "?"
            out[p] = out.get(p, 0) + 1
        return out


def latency(j):
    """Submit → finish, daemon timestamps."""
    return j["finished_at"] - j["submitted_at"]


def run_jobs(d, jobs, timeout=120.0):
    """Submit jobs as one batch, then send every wait at once on the same
    connection and collect the answers by id. Bounded by timeout (seconds)."""
    deadline = time.monotonic() + timeout
    with d.client(timeout) as c:
        req = {"v": 1, "id": "submit", "op": "submit", "jobs": jobs}
        t_submit = time.time()
        c.send(req)
        ids = ok_result(c.recv_id("submit", timeout), {"op": "submit"})["ids"]
        t_acked = time.time()
        if len(ids) != len(jobs):
            raise BenchError("submitted %d jobs, got %d ids" % (len(jobs), len(ids)))
        c.send_many({"v": 1, "id": "w%d" % i, "op": "wait", "job": i} for i in ids)
        got, recv_times = {}, {}
        while len(got) < len(ids):
            resp, t = c.recv_any(deadline)
            rid = resp.get("id")
            if not (isinstance(rid, str) and rid.startswith("w")):
                continue
            got[rid] = ok_result(resp, {"op": "wait", "id": rid})
            recv_times[rid] = t
    final = [got["w%d" % i] for i in ids]
    return Run(t_submit, t_acked, final, [recv_times["w%d" % i] for i in ids])


def kill_children(pids):
    """Interrupted: leave none of these children behind."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


def bare_spin(n, seconds, parallel):
    """Reference without taskd: n forked children each burning `seconds` of
    CPU, at most `parallel` at once. Returns the makespan (s). Measured under
    the same machine load as the taskd runs next to it, so taskd/bare shows
    taskd's own overhead even on a busy machine."""
    t0 = time.monotonic()
    running, left = set(), n
    try:
        while left or running:
            while left and len(running) < parallel:
                pid = os.fork()
                if pid == 0:  # child: burn CPU, never return into the caller
                    try:
                        end = time.process_time() + seconds
                        while time.process_time() < end:
                            pass
                    finally:
                        os._exit(0)
                running.add(pid)
                left -= 1
            pid, _ = os.wait()
            running.discard(pid)
    finally:
        kill_children(running)
    return time.monotonic() - t0


def bare_commands(argvs, parallel):
    """Reference without taskd: the commands run as plain children, at most
    `parallel` at once, output discarded, with Debian's PATH. Returns the
    makespan (s), measured under the machine's load of the moment."""
    env = {"PATH": JOB_PATH}
    t0 = time.monotonic()
    running, left = set(), list(argvs)
    try:
        while left or running:
            while left and len(running) < parallel:
                pid = os.posix_spawnp(left[0][0], left[0], env,
                                      file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null",
                                                     os.O_RDONLY, 0),
                                                    (os.POSIX_SPAWN_OPEN, 1, "/dev/null",
                                                     os.O_WRONLY, 0),
                                                    (os.POSIX_SPAWN_DUP2, 1, 2)])
                left.pop(0)
                running.add(pid)
            pid, _ = os.wait()
            running.discard(pid)
    finally:
        kill_children(running)
    return time.monotonic() - t0


def router_table(d):
    return {r.get("key"): r for r in (d.status().get("router") or [])}


def teach_router(d, lessons, rounds=4, timeout=30.0):
    """Run class-auto jobs until the router decides as wanted.

    lessons: [(job, key, wanted_class)]. Each round runs one of each lesson.
    Returns the router rows for the keys (bounded: `rounds` rounds at most).
    """
    for _ in range(rounds):
        run_jobs(d, [l[0] for l in lessons], timeout=timeout)
        table = router_table(d)
        if all(table.get(key, {}).get("class") == want for _, key, want in lessons):
            break
    table = router_table(d)
    return {key: table.get(key) for _, key, _ in lessons}


# ---------------------------------------------------------------------------
# Numbers and tables

def percentile(values, p):
    """p in [0, 100], linear interpolation between closest ranks (numpy's default)."""
    vs = sorted(values)
    if not vs:
        return float("nan")
    if len(vs) == 1:
        return vs[0]
    k = (len(vs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(vs) - 1)
    return vs[lo] + (vs[hi] - vs[lo]) * (k - lo)


def median(values):
    return statistics.median(values)


class Stopwatch:
    """with Stopwatch() as sw: ...; sw.elapsed (seconds, monotonic)."""

    def __enter__(self):
        self.t0 = time.monotonic()
        self.elapsed = None
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.t0


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        return "%.*f" % (digits, v)
    return str(v)


def print_table(headers, rows, out=None):
    """Aligned text table; numbers right-aligned, text left-aligned."""
    out = out or sys.stdout
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))

    def numeric(s):
        try:
            float(s.rstrip("x%"))
            return True
        except ValueError:
            return False

    def line(r):
        parts = []
        for i, c in enumerate(r):
            parts.append(c.rjust(widths[i]) if numeric(c) else c.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out.write(line(headers) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write(line(r) + "\n")
    out.flush()


def verdict(ok):
    return "ok" if ok else "MISSED"


def machine_line():
    n, u = ncpu(), usable_cpus()
    s = "machine: %d CPU%s online" % (n, "" if n == 1 else "s")
    if u != n:
        s += " (%d usable by this process)" % u
    try:
        with open("/proc/loadavg") as f:
            s += ", load average %s" % " ".join(f.read().split()[:3])
    except OSError:
        pass
    return s


def pool_line(d):
    """One line about the process pool: live or not (cpu jobs fall back to threads)."""
    pp = d.status().get("process_pool") or {}
    workers = pp.get("workers") or []
    pool = d.probe_cpu_pool()
    if pool == "process":
        return True, "process pool: live (%s, %d workers)" % (pp.get("mode"), len(workers))
    return False, ("process pool: NOT live (class cpu jobs ran on the %s pool; status shows "
                   "%d workers) - cpu rows below measure threads" % (pool, len(workers)))


def main_wrapper(fn):
    """Run fn(), turning Ctrl-C and BenchError into a clean exit (daemons are cleaned up)."""
    install_signal_handlers()
    try:
        return fn() or 0
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except BenchError as e:
        sys.stderr.write("bench: %s\n" % e)
        return 1
    finally:
        cleanup_all()
