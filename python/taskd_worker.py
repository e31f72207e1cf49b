"""Write taskd handler workers in Python (standard library only).

A handler is a job type served by a program you write, kept warm by taskd
(``handlers = (...)`` in taskd.conf; see doc/handlers.md)::

    import taskd_worker

    def handle(job):
        # job.id: the job id; job.args: its argument strings;
        # job.input: its input (bytes); job.deadline: unix time or None;
        # job.cancelled: a threading.Event set when taskd asks to stop.
        return {"words": len(job.input.split())}   # the JSON result

    taskd_worker.serve(handle)

The return value is the job's result (anything json.dumps takes); an
exception makes the job fail with its message. ``serve(handle,
concurrency=N)`` runs up to N jobs at once on threads (for I/O-bound
work: the handler's ``concurrency`` in taskd.conf caps N). Output written
to stdout and stderr while a job runs goes to that job's output files.
"""

import base64
import json
import os
import queue
import socket
import sys
import threading

__all__ = ["Job", "serve", "PROTOCOL"]

PROTOCOL = 1


class Job:
    """One job: id, args (list of str), input (bytes), deadline (float or None)."""

    __slots__ = ("id", "args", "input", "deadline", "cancelled", "_conn")

    def __init__(self, conn, msg):
        self._conn = conn
        self.id = msg["id"]
        self.args = list(msg["args"])
        self.input = base64.b64decode(msg["input"], validate=True)
        self.deadline = msg["deadline"]
        self.cancelled = threading.Event()

    def progress(self, message):
        """Tell taskd how far the job got (shown by `taskctl show` while it runs)."""
        self._conn.send({"t": "progress", "id": self.id, "message": str(message)})


class _Conn:
    def __init__(self, fd):
        self.sock = socket.socket(fileno=fd)
        self.lock = threading.Lock()
        self.reader = self.sock.makefile("rb")

    def send(self, msg):
        line = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        with self.lock:
            self.sock.sendall(line)


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass


def _run(conn, handle, job):
    try:
        value = handle(job)
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise TypeError("the result is not JSON: %s" % e) from None
        reply = '{"t":"result","id":%d,"ok":true,"result":%s}' % (job.id, text)
    except Exception as e:  # noqa: BLE001 - any failure of the handler fails the job
        message = str(e) or type(e).__name__
        reply = json.dumps({"t": "result", "id": job.id, "ok": False, "error": message},
                           separators=(",", ":"), ensure_ascii=False)
    # What the job printed belongs to it: out of our buffers before the result.
    _flush()
    with conn.lock:
        conn.sock.sendall(reply.encode() + b"\n")


def serve(handle, concurrency=1):
    """Serve jobs until taskd closes the connection; returns then."""
    fd = int(os.environ.get("TASKD_WORKER_FD", "3"))
    limit = int(os.environ.get("TASKD_CONCURRENCY", "1"))
    n = max(1, min(int(concurrency), limit))
    conn = _Conn(fd)
    conn.send({"t": "hello", "protocol": PROTOCOL, "concurrency": n})
    jobs = {}
    work = queue.Queue()

    def loop():
        while True:
            job = work.get()
            if job is None:
                return
            _run(conn, handle, job)
            jobs.pop(job.id, None)

    # Jobs run on threads, so that this one can take a cancel while they run.
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for line in conn.reader:
        msg = json.loads(line)
        if msg["t"] == "job":
            job = Job(conn, msg)
            jobs[job.id] = job
            work.put(job)
        elif msg["t"] == "cancel":
            job = jobs.get(msg["id"])
            if job is not None:
                job.cancelled.set()
    # EOF: taskd wants us gone; finish what runs.
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
