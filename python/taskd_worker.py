"""Write taskd handler workers in Python (standard library only).

A handler is a job type served by a program you write, kept warm by taskd
(``handlers = (...)`` in taskd.conf; see doc/handlers.md)::

    import taskd_worker

    def handle(job):
        # job.id: the job id; job.args: its argument strings;
        # job.input: its input (bytes); job.deadline: unix time or None;
        # job.cancelled: an event (is_set(), wait(timeout)) set when taskd asks to stop.
        return {"words": len(job.input.split())}   # the JSON result

    taskd_worker.serve(handle)

The return value is the job's result (anything json.dumps takes); an
exception makes the job fail with its message. ``serve(handle,
concurrency=N)`` runs up to N jobs at once on threads (for I/O-bound
work: the handler's ``concurrency`` in taskd.conf caps N). Output written
to stdout and stderr while a job runs goes to that job's output files.

A worker should cost little more memory than the interpreter itself: this
module loads only what Python builds in (_json, binascii, _thread), not
json, base64 or threading, whose imports (re, enum, functools...) would
add a megabyte to every worker.
"""

import _json
import _thread
import binascii
import os
import sys
from _collections import deque

__all__ = ["Job", "Event", "serve", "PROTOCOL"]

PROTOCOL = 1


class Event:
    """Set once, waited for: threading.Event's is_set(), set() and wait()."""

    __slots__ = ("_lock", "_set")

    def __init__(self):
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._set = False

    def is_set(self):
        return self._set

    def set(self):
        if not self._set:
            self._set = True
            self._lock.release()

    def wait(self, timeout=None):
        """True once set (at once if it is), False when timeout seconds passed first."""
        if self._set:
            return True
        if self._lock.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            self._lock.release()
        return self._set


class _Decode:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = {}

    @staticmethod
    def parse_constant(name):
        raise ValueError("not JSON: " + name)


_scan = _json.make_scanner(_Decode())


def _loads(line):
    s = line.decode("utf-8").strip()
    value, end = _scan(s, 0)
    if end != len(s):
        raise ValueError("extra data after the message")
    return value


def _refuse(value):
    raise TypeError("%s is not JSON" % type(value).__name__)


def _dumps(value):
    """Compact JSON, UTF-8 as it is; NaN and infinities refused (taskd would refuse them)."""
    enc = _json.make_encoder({}, _refuse, _json.encode_basestring, None, ":", ",", False, False,
                             False)
    return "".join(enc(value, 0))


class Job:
    """One job: id, args (list of str), input (bytes), deadline (float or None)."""

    __slots__ = ("id", "args", "input", "deadline", "cancelled", "_conn")

    def __init__(self, conn, msg):
        self._conn = conn
        self.id = msg["id"]
        self.args = list(msg["args"])
        self.input = binascii.a2b_base64(msg["input"], strict_mode=True) if msg["input"] else b""
        self.deadline = msg["deadline"]
        self.cancelled = Event()

    def progress(self, message):
        """Tell taskd how far the job got (shown by `taskctl show` while it runs)."""
        self._conn.send({"t": "progress", "id": self.id, "message": str(message)})


class _Conn:
    """Lines on the protocol descriptor (plain reads and writes)."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = _thread.allocate_lock()
        self.reader = os.fdopen(fd, "rb", buffering=65536, closefd=False)

    def write(self, data):
        with self.lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]

    def send(self, msg):
        self.write(_dumps(msg).encode() + b"\n")


class _Queue:
    """A FIFO for the job threads: a waiting get() sleeps on a lock of its own."""

    def __init__(self):
        self.items = deque()
        self.waiters = deque()
        self.mutex = _thread.allocate_lock()

    def put(self, item):
        with self.mutex:
            self.items.append(item)
            if self.waiters:
                self.waiters.popleft().release()

    def get(self):
        while True:
            with self.mutex:
                if self.items:
                    return self.items.popleft()
                w = _thread.allocate_lock()
                w.acquire()
                self.waiters.append(w)
            w.acquire()


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _run(conn, handle, job):
    try:
        value = handle(job)
        try:
            text = _dumps(value)
        except (TypeError, ValueError) as e:
            raise TypeError("the result is not JSON: %s" % e) from None
        reply = '{"t":"result","id":%d,"ok":true,"result":%s}' % (job.id, text)
    except Exception as e:  # noqa: BLE001 - any failure of the handler fails the job
        reply = _dumps({"t": "result", "id": job.id, "ok": False,
                        "error": str(e) or type(e).__name__})
    # What the job printed belongs to it: out of our buffers before the result.
    _flush()
    conn.write(reply.encode() + b"\n")


def serve(handle, concurrency=1):
    """Serve jobs until taskd closes the connection; returns then."""
    fd = int(os.environ.get("TASKD_WORKER_FD", "3"))
    limit = int(os.environ.get("TASKD_CONCURRENCY", "1"))
    n = max(1, min(int(concurrency), limit))
    conn = _Conn(fd)
    conn.send({"t": "hello", "protocol": PROTOCOL, "concurrency": n})
    jobs = {}
    work = _Queue()
    finished = []

    def loop(done):
        try:
            while True:
                job = work.get()
                if job is None:
                    return
                _run(conn, handle, job)
                jobs.pop(job.id, None)
        finally:
            done.release()

    # Jobs run on threads, so that this one can take a cancel while they run.
    for _ in range(n):
        done = _thread.allocate_lock()
        done.acquire()
        finished.append(done)
        _thread.start_new_thread(loop, (done,))
    for line in conn.reader:
        msg = _loads(line)
        if msg["t"] == "job":
            job = Job(conn, msg)
            jobs[job.id] = job
            work.put(job)
        elif msg["t"] == "cancel":
            job = jobs.get(msg["id"])
            if job is not None:
                job.cancelled.set()
    # EOF: taskd wants us gone; finish what runs.
    for _ in finished:
        work.put(None)
    for done in finished:
        done.acquire()
