"""End-to-end test harness: a real taskd on a temporary socket.

Used by tests/e2e/test_*.py (run by `meson test`, cwd = tests/e2e, with the
environment variables TASKD and TASKCTL naming the built binaries).
Standard library only.

    class T(E2ETestCase):
        def test_x(self):
            d = self.start_daemon({"thread_pool.max_threads": 1})
            r = d.request({"op": "status"})
            p = d.ctl("status")

Every daemon is stopped (SIGTERM, then SIGKILL after 10 s) and its temp dir
removed even when a test fails: by the test's cleanups, by a context manager
(`with Daemon() as d:`), and by atexit as a last resort. When a test fails,
the tail of the daemon log is printed to stderr.
"""

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import taskdconf

HERE = os.path.dirname(os.path.abspath(__file__))
SRCROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def _find_binary(var, name):
    path = os.environ.get(var)
    if path:
        return os.path.abspath(path)
    for build in ("build", "build-e2e", "builddir"):
        cand = os.path.join(SRCROOT, build, name)
        if os.access(cand, os.X_OK):
            return cand
    return name  # let it fail clearly at exec time


TASKD = _find_binary("TASKD", "taskd")
TASKCTL = _find_binary("TASKCTL", "taskctl")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
RECV_TIMEOUT = 30.0

# ---------------------------------------------------------------------------
# Stray processes: become a child subreaper, so that job processes a daemon
# leaves behind (e.g. after SIGKILL) are re-parented to us and can be killed
# at exit instead of lingering on the machine.

PR_SET_CHILD_SUBREAPER = 36
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
except Exception:  # pragma: no cover - best effort
    pass

_protected_pids = set()   # our own Popen children (daemons, background taskctl)
_live_daemons = []


def _children_of_us():
    me = os.getpid()
    kids = []
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % ent) as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == me:
            kids.append(int(ent))
    return kids


def protect(pid):
    """A child the test started itself (a browser, a server): reap_strays leaves it alone."""
    _protected_pids.add(pid)


def reap_strays():
    """Kill and reap processes re-parented to us that nobody waits for."""
    for pid in _children_of_us():
        if pid in _protected_pids:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass


def remove_cgroups(path):
    """What a daemon killed with SIGKILL left of its cgroup subtree: killed and removed."""
    if not path or not os.path.isdir(path):
        return
    for name in os.listdir(path):
        sub = os.path.join(path, name)
        if not name.startswith("job-") or not os.path.isdir(sub):
            continue
        try:
            with open(os.path.join(sub, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
        deadline = time.monotonic() + 2
        while os.path.isdir(sub) and time.monotonic() < deadline:
            try:
                os.rmdir(sub)
            except OSError:
                time.sleep(0.01)
    try:
        os.rmdir(path)
    except OSError:
        pass


def proc_state(pid):
    """'R', 'S', 'Z', ... or None when the process does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def pid_gone(pid):
    """True when pid no longer runs (absent, or a zombie: reaped here if ours)."""
    st = proc_state(pid)
    if st is None:
        return True
    if st == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except OSError:
            pass
        return True
    return False


@atexit.register
def _atexit_cleanup():
    for d in list(_live_daemons):
        try:
            d.stop()
        except Exception:
            pass
        try:
            d.cleanup()
        except Exception:
            pass
    reap_strays()


# ---------------------------------------------------------------------------
# Polling

def wait_for(cond, timeout=10.0, interval=0.05, what="condition"):
    """Poll cond() until it returns a truthy value; return it. AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
            last_exc = None
        except (OSError, ValueError, KeyError, TypeError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise AssertionError(msg)
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Config

DEFAULT_CONFIG = {
    "socket_mode": "0600",
    "log_level": "debug",
    "process_pool": {
        "mode": "dynamic",
        "min_workers": 1,
        "max_workers": 2,
        "min_spare": 1,
        "max_spare": 2,
        "max_jobs_per_worker": 1000,
        "max_worker_rss": "512M",
        "idle_timeout": 30,
    },
    "thread_pool": {"min_threads": 1, "max_threads": 4, "idle_timeout": 30},
    "queue": {"max_pending": 100000, "max_pending_per_user": 10000},
    "router": {"default_class": "io", "cpu_ratio": 0.5},
    "jobs": {"default_timeout": 0, "kill_grace": 1, "max_output": "16M",
             "keep_finished": 10000},
    "limits": {"max_frame": "1M", "max_clients": 1024},
}


def render_config(cfg):
    """A dict of (nested dicts of) scalars → libconfig text."""
    return taskdconf.render(cfg, "tests/e2e/harness.py")


# ---------------------------------------------------------------------------
# Raw protocol connection

class ProtocolError(Exception):
    pass


class Conn:
    """One raw connection to the control socket, for pipelined use."""

    def __init__(self, path, timeout=RECV_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # With a timeout the socket is non-blocking, and a unix socket whose
        # listen backlog is full refuses at once (EAGAIN) instead of waiting
        # like a blocking connect (libtaskd's) does: retry until the timeout.
        deadline = time.monotonic() + (timeout or RECV_TIMEOUT)
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
        self.buf = b""
        self.pending = []  # responses read but not yet returned by recv_id

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def recv_line(self, timeout=None):
        """Next raw line (bytes, without newline). ProtocolError on EOF/timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError("no response within %.1fs" % (timeout or self.timeout))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise ProtocolError("no response within %.1fs" % (timeout or self.timeout))
            if not chunk:
                raise ProtocolError("connection closed by daemon (buffered: %r)" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def recv(self, timeout=None):
        """Next response, parsed (a dict)."""
        if self.pending:
            return self.pending.pop(0)
        line = self.recv_line(timeout)
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolError("daemon sent an unparsable line %r: %s" % (line[:200], e))
        if not isinstance(obj, dict):
            raise ProtocolError("daemon sent a non-object %r" % (obj,))
        return obj

    def recv_id(self, rid, timeout=None):
        """The response with id rid; others are kept for later recv()."""
        for i, r in enumerate(self.pending):
            if r.get("id") == rid:
                return self.pending.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError("no response with id %r" % (rid,))
            line = self.recv_line(left)
            obj = json.loads(line.decode("utf-8"))
            if obj.get("id") == rid:
                return obj
            self.pending.append(obj)

    def call(self, obj, timeout=None):
        """Send obj (must carry an id) and return the response with that id."""
        self.send(obj)
        return self.recv_id(obj.get("id"), timeout)

    def no_data_within(self, seconds):
        """True if nothing arrives within seconds (the connection stays open)."""
        if self.pending or b"\n" in self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if chunk:
            self.buf += chunk
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# The daemon

class DaemonError(Exception):
    pass


class Daemon:
    """A taskd on a temp socket with a generated config.

    overrides: {"thread_pool.max_threads": 1, "jobs.max_output": "1K", ...}
    (dotted keys into the configuration, man/taskd.conf.5.in; None removes a key).
    """

    def __init__(self, overrides=None, start=True, extra_args=(), tmpdir=None, env=None,
                 wrapper=()):
        self.tmp = tmpdir or tempfile.mkdtemp(prefix="taskd-e2e-")
        self.sock = os.path.join(self.tmp, "taskd.sock")
        self.conf = os.path.join(self.tmp, "taskd.conf")
        self.log = os.path.join(self.tmp, "taskd.log")
        self.state_dir = os.path.join(self.tmp, "state")
        self.extra_args = list(extra_args)
        self.env = env          # extra environment variables for taskd
        self.wrapper = list(wrapper)  # e.g. systemd-socket-activate -l SOCK
        self.proc = None
        self.returncode = None
        self.cgroup_dir = None  # the daemon's cgroup subtree, from status
        self._cleaned = False
        self.write_config(overrides)
        _live_daemons.append(self)
        if start:
            self.start()

    # -- config
    def config_dict(self, overrides=None):
        cfg = json.loads(json.dumps(DEFAULT_CONFIG))
        cfg["state_dir"] = self.state_dir
        return taskdconf.merge(cfg, overrides)

    def write_config(self, overrides=None, text=None):
        """Write the config file (generated from overrides, or the given text)."""
        if text is None:
            text = render_config(self.config_dict(overrides))
        tmpname = self.conf + ".new"
        with open(tmpname, "w") as f:
            f.write(text)
        os.replace(tmpname, self.conf)

    # -- lifecycle
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=START_TIMEOUT, ready="status"):
        """Start taskd and wait until it is ready (bounded by timeout).

        ready="status": a status request is answered (the event loop runs);
        ready="socket": the socket merely accepts connections.
        """
        self.logf = open(self.log, "ab")
        argv = self.wrapper + [TASKD, "-c", self.conf, "-s", self.sock] + self.extra_args
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, cwd=self.tmp, env=env)
        _protected_pids.add(self.proc.pid)
        self.returncode = None
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise DaemonError("taskd exited with %d during startup; log:\n%s"
                                  % (rc, self.log_tail()))
            if self.accepts() and (ready == "socket" or self._answers_status()):
                return self
            if time.monotonic() >= deadline:
                self.stop()
                raise DaemonError("taskd did not accept connections on %s within %.0fs; log:\n%s"
                                  % (self.sock, timeout, self.log_tail()))
            time.sleep(0.02)

    def accepts(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1.0)
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def _answers_status(self):
        try:
            r = self.request({"v": 1, "id": "ready", "op": "status"}, timeout=2.0)
        except (OSError, ProtocolError, ValueError):
            return False
        cg = (((r.get("result") or {}).get("resources") or {}).get("cgroups") or {})
        if cg.get("enabled") and cg.get("path"):
            self.cgroup_dir = cg["path"]
        return r.get("ok") is True

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the daemon to exit; its exit code, or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                sys.stderr.write("harness: taskd %d ignored SIGTERM for %.0fs, killing it\n"
                                 % (self.proc.pid, timeout))
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        _protected_pids.discard(self.proc.pid)
        try:
            self.logf.close()
        except Exception:
            pass
        reap_strays()
        return self.returncode

    def cleanup(self):
        if self._cleaned:
            return
        self.stop()
        self._cleaned = True
        remove_cgroups(self.cgroup_dir)
        if self in _live_daemons:
            _live_daemons.remove(self)
        report = self.sanitizer_report()
        if os.environ.get("E2E_KEEP_TMP"):
            sys.stderr.write("harness: keeping %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if report:
            raise AssertionError("taskd reported a sanitizer error:\n" + report)

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer")

    def sanitizer_report(self):
        """The daemon log from the first sanitizer report on, or ""."""
        text = self.log_text()
        at = [text.find(m) for m in self.SANITIZER_MARKS if m in text]
        return text[min(at):][:6000] if at else ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    # -- log
    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- taskctl
    def ctl_env(self, env=None):
        e = dict(os.environ)
        e.pop("TASKD_SOCKET", None)
        if env:
            for k, v in env.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
        return e

    def ctl(self, *args, input=None, env=None, timeout=30, socket_arg=True, binary=False):
        """Run taskctl -s SOCK ARGS... → CompletedProcess (text, or bytes if binary)."""
        argv = [TASKCTL] + (["-s", self.sock] if socket_arg else []) + [str(a) for a in args]
        return subprocess.run(argv, input=input, env=self.ctl_env(env), timeout=timeout,
                              capture_output=True, text=not binary,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def ctl_json(self, *args, env=None, timeout=30, check=True):
        """taskctl -s SOCK --json ARGS... → parsed stdout (AssertionError if rc != 0 and check)."""
        p = self.ctl("--json", *args, env=env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("taskctl --json %s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(map(str, args)), p.returncode, p.stdout, p.stderr))
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError("taskctl --json %s printed no JSON (%s): %r"
                                 % (" ".join(map(str, args)), e, p.stdout[:500]))

    def ctl_popen(self, *args, env=None):
        """Start taskctl in the background (stdout/stderr piped, text)."""
        argv = [TASKCTL, "-s", self.sock] + [str(a) for a in args]
        p = subprocess.Popen(argv, env=self.ctl_env(env), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _protected_pids.add(p.pid)
        return p

    # -- raw protocol
    def connect(self, timeout=RECV_TIMEOUT):
        return Conn(self.sock, timeout)

    def request(self, obj, timeout=RECV_TIMEOUT):
        """Send one request on a new connection; the parsed response."""
        with self.connect(timeout) as c:
            if isinstance(obj, (bytes, str)):
                c.send_raw(obj)
            else:
                c.send(obj)
            return c.recv(timeout)

    def ok(self, obj, timeout=RECV_TIMEOUT):
        """request() that must succeed; returns the result."""
        r = self.request(obj, timeout)
        if r.get("ok") is not True:
            raise AssertionError("request %r failed: %r" % (obj, r))
        return r.get("result")

    # -- job helpers over the raw protocol
    def submit(self, argv=None, **fields):
        req = {"v": 1, "id": "s", "op": "submit"}
        if argv is not None:
            req["argv"] = list(argv)
        req.update(fields)
        return self.ok(req)["id"]

    def submit_batch(self, jobs):
        return self.ok({"v": 1, "id": "b", "op": "submit", "jobs": jobs})["ids"]

    def show(self, job):
        return self.ok({"v": 1, "id": "sh", "op": "show", "job": job})

    def wait_job(self, job, timeout=RECV_TIMEOUT):
        return self.ok({"v": 1, "id": "w", "op": "wait", "job": job}, timeout=timeout)

    def wait_state(self, job, states, timeout=10.0):
        if isinstance(states, str):
            states = (states,)
        return wait_for(lambda: (lambda j: j if j["state"] in states else None)(self.show(job)),
                        timeout, what="job %s to reach %s" % (job, "/".join(states)))

    def status(self):
        return self.ok({"v": 1, "id": "st", "op": "status"})

    def list_jobs(self, **args):
        """Every job a list selects: all its pages (doc/protocol.md "Pages")."""
        req = {"v": 1, "id": "l", "op": "list", "limit": 0}
        req.update(args)
        r = self.ok(req)
        jobs = r["jobs"]
        while r.get("next") is not None:
            r = self.ok(dict(req, cursor=r["next"]))
            jobs += r["jobs"]
        return jobs

    def cancel(self, job):
        return self.ok({"v": 1, "id": "c", "op": "cancel", "job": job})

    def logs(self, job, stream="stdout", offset=0, max=None):
        req = {"v": 1, "id": "lg", "op": "logs", "job": job, "stream": stream, "offset": offset}
        if max is not None:
            req["max"] = max
        return self.ok(req)

    def read_output(self, job, stream="stdout"):
        """The whole captured stream as bytes, following next_offset until eof."""
        out = b""
        offset = 0
        for _ in range(100000):
            r = self.logs(job, stream, offset)
            out += decode_logs(r)
            if r["next_offset"] == offset and not r["eof"]:
                raise AssertionError("logs made no progress at offset %d: %r" % (offset, r))
            offset = r["next_offset"]
            if r["eof"]:
                return out
        raise AssertionError("logs never reached eof")

    def wait_output(self, job, predicate, stream="stdout", timeout=10.0):
        """Poll the job's output (from offset 0) until predicate(bytes) holds; return it."""
        def check():
            r = self.logs(job, stream, 0)
            data = decode_logs(r)
            return data if predicate(data) else None
        return wait_for(check, timeout, what="output of job %s" % job)


# Another user, for a root daemon's multi-user behaviour (tests that use it need root).
NOBODY = 65534


def ctl_as_nobody(d, *args):
    """taskctl -s SOCK ARGS... run as uid/gid nobody → CompletedProcess (text)."""
    return subprocess.run([TASKCTL, "-s", d.sock] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=30, cwd="/", stdin=subprocess.DEVNULL,
                          user=NOBODY, group=NOBODY, extra_groups=[])


# Requests as another user: a client process with uid/gid nobody.
NOBODY_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
reqs = json.loads(sys.argv[2])
s.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
f = s.makefile("rb")
print(json.dumps([json.loads(f.readline()) for _ in reqs]))
"""


def as_nobody(d, *reqs):
    """Send reqs as uid nobody on one connection; the list of responses."""
    p = subprocess.run(["/usr/bin/python3", "-c", NOBODY_CLIENT, d.sock, json.dumps(list(reqs))],
                       capture_output=True, text=True, timeout=60, cwd="/",
                       stdin=subprocess.DEVNULL, user=NOBODY, group=NOBODY, extra_groups=[])
    if p.returncode != 0:
        raise AssertionError("client as nobody failed: %s%s" % (p.stdout, p.stderr))
    return json.loads(p.stdout)


def decode_logs(r):
    import base64
    if r.get("encoding") == "base64":
        return base64.b64decode(r["data"])
    return r["data"].encode("utf-8")


# ---------------------------------------------------------------------------
# Test case base

class E2ETestCase(unittest.TestCase):
    """Base class: start_daemon() with automatic cleanup, log tail on failure.

    A class may set `shared_overrides` (dict) and `shared_daemon = True` to
    get one daemon for all its tests as self.d (started in setUpClass).
    """

    shared_daemon = False
    shared_overrides = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d = None
        if cls.shared_daemon:
            d = Daemon(cls.shared_overrides, start=False)
            cls.addClassCleanup(d.cleanup)
            d.start()
            cls.d = d

    def setUp(self):
        super().setUp()
        self._daemons = []  # shared ones, reported on failure
        if self.d is not None:
            self._daemons.append(self.d)
            self.assertTrue(self.d.alive(), "the shared taskd died before this test; log:\n"
                            + self.d.log_tail())
        self.addCleanup(self._report_failure)

    def _failed(self):
        # (outcome.success is reset while a cleanup runs; look at the result)
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        for t, _ in (getattr(result, "errors", []) + getattr(result, "failures", [])):
            if t is self or getattr(t, "test_case", None) is self:
                return True
        return False

    def _report_failure(self):
        for d in self._daemons:
            self._report_daemon(d)

    def _report_daemon(self, d):
        if not (self._failed() or os.environ.get("E2E_VERBOSE")):
            return
        sys.stderr.write("\n----- %s: taskd log tail (%s) -----\n%s\n-----\n"
                         % (self.id(), d.log, d.log_tail(60)))
        if d.proc is not None and d.proc.poll() is not None:
            sys.stderr.write("(taskd exited with %s)\n" % d.proc.returncode)

    def start_daemon(self, overrides=None, **kw):
        """A daemon for this test only, stopped and removed by its cleanups."""
        d = Daemon(overrides, start=False, **kw)
        self.addCleanup(d.cleanup)
        self.addCleanup(self._report_daemon, d)  # LIFO: runs before d.cleanup
        d.start()
        return d

    def cancel_at_cleanup(self, jid, d=None):
        """Cancel job jid (on d, default the shared daemon) when the test ends, pass or fail."""
        d = d or self.d

        def cancel():
            try:
                if d.alive():
                    d.request({"id": "cleanup", "op": "cancel", "job": jid}, timeout=5)
            except Exception:
                pass
        self.addCleanup(cancel)

    def track(self, d):
        """Clean up (and report on failure) a Daemon made by the test itself."""
        self.addCleanup(d.cleanup)
        self.addCleanup(self._report_daemon, d)
        return d

    # -- assertions
    def assertError(self, resp, code, msg=None):
        """resp is an error response with error.code == code and a non-empty message."""
        self.assertIsInstance(resp, dict, msg)
        self.assertIs(resp.get("ok"), False, "expected an error %s, got %r" % (code, resp))
        err = resp.get("error")
        self.assertIsInstance(err, dict, "error is not an object: %r" % (resp,))
        self.assertEqual(err.get("code"), code, "wrong error code in %r" % (resp,))
        self.assertIsInstance(err.get("message"), str, resp)
        self.assertTrue(err["message"].strip(), "empty error message in %r" % (resp,))
        return err

    def assertOk(self, resp, msg=None):
        self.assertIsInstance(resp, dict, msg)
        self.assertIs(resp.get("ok"), True, "expected success, got %r" % (resp,))
        self.assertIn("result", resp)
        return resp["result"]

    def assertRc(self, p, rc, msg=""):
        self.assertEqual(p.returncode, rc, "%s taskctl %s exited %d (want %d)\nstdout: %s\nstderr: %s"
                         % (msg, " ".join(p.args[1:]), p.returncode, rc, p.stdout, p.stderr))

    def assertDaemonServes(self, d=None):
        d = d or self.d
        self.assertTrue(d.alive(), "taskd died; log:\n" + d.log_tail())
        st = d.status()
        self.assertIsInstance(st, dict)
        return st


def jobs_of(x):
    """A list of jobs from `list --json` output (a list, or {"jobs": [...]})."""
    if isinstance(x, dict) and "jobs" in x:
        return x["jobs"]
    if isinstance(x, list):
        return x
    raise AssertionError("not a job list: %r" % (x,))


def main():
    unittest.main(verbosity=2)
