#!/usr/bin/python3
"""A handler worker for tests/e2e/test_handlers.py, built on python/taskd_worker.py.

Each job's first argument says what to do (echo, sleep, hang, fail, crash,
garbage, big, print, print_once, leak, whoami, spin); TEST_MODE in the environment
makes the whole worker misbehave at start (slow_start, no_hello,
exit_at_hello, bad_hello).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import taskd_worker  # noqa: E402

hoard = []


def handle(job):
    what = job.args[0] if job.args else "echo"
    rest = job.args[1:]
    if what == "echo":
        return {"args": rest, "input": job.input.decode("utf-8", "replace"), "pid": os.getpid()}
    if what == "text":
        return " ".join(rest)
    if what == "sleep":  # cooperative: a cancel ends it
        if job.cancelled.wait(float(rest[0])):
            raise RuntimeError("cancelled")
        return "slept"
    if what == "hang":  # deaf to cancels: taskd must kill the worker
        time.sleep(float(rest[0]))
        return "woke"
    if what == "fail":
        raise ValueError(" ".join(rest))
    if what == "crash":
        os._exit(3)
    if what == "garbage":
        os.write(int(os.environ["TASKD_WORKER_FD"]), b"this is not json\n")
        time.sleep(5)
        return "unreachable"
    if what == "big":
        return "x" * int(rest[0])
    if what == "print":
        print("to stdout: " + " ".join(rest))
        print("to stderr: " + " ".join(rest), file=sys.stderr)
        return "printed"
    if what == "print_once":  # prints and fails, then is quiet the next time (a file in rest[0])
        mark = os.path.join(rest[0], "printed-%d" % job.id)
        if not os.path.exists(mark):
            open(mark, "w").close()
            print("to stdout: first attempt")
            raise ValueError("first attempt")
        return "quiet"
    if what == "leak":
        hoard.append(bytearray(int(rest[0]) << 20))
        for i in range(0, len(hoard[-1]), 4096):
            hoard[-1][i] = 1
        return os.getpid()
    if what == "whoami":
        return {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(), "cwd": os.getcwd(),
                "env": os.environ.get("GREETING")}
    if what == "spin":
        n = 0
        for _ in range(int(rest[0])):
            n += 1
        return n
    raise ValueError("unknown action %r" % what)


mode = os.environ.get("TEST_MODE", "")
if os.environ.get("TEST_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL stops it
print("worker %d starting" % os.getpid(), file=sys.stderr, flush=True)
if mode == "slow_start":
    time.sleep(1.0)
elif mode == "no_hello":
    time.sleep(3600)
elif mode == "exit_at_hello":
    print("cannot start: no database", file=sys.stderr, flush=True)
    sys.exit(1)
elif mode == "bad_hello":
    os.write(int(os.environ["TASKD_WORKER_FD"]), b'{"t":"hello","protocol":9,"concurrency":1}\n')
    time.sleep(3600)
taskd_worker.serve(handle, concurrency=int(os.environ.get("TEST_CONCURRENCY", "1")))
