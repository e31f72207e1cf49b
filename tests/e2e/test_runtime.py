"""The daemon at runtime under adverse conditions (issue 12): descriptors jobs
inherit, kill -9 of taskd with jobs running, a stopped worker, a deleted
state directory.

The kill -9 tests restart taskd WITHOUT reaping the dead daemon's leftover
processes first (the harness, a child subreaper, would kill them at stop()):
the new taskd itself must find and kill them before it marks their jobs lost
or runs them again. Everything is polled with a bound.

Standard library only.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, Daemon, TASKCTL, _protected_pids, pid_gone, proc_state,  # noqa: E402
                     wait_for, main)

IO = {"class": "io"}
CPU = {"class": "cpu"}
FINAL = ("done", "failed", "cancelled", "timeout", "lost")
NOBODY = 65534
PYTHON = "/usr/bin/python3"

# Lists the descriptors the process has, with their targets. The directory
# descriptor os.listdir itself uses is closed by the time readlink runs.
LIST_FDS = (
    "import os\n"
    "for f in sorted(os.listdir('/proc/self/fd'), key=int):\n"
    "    try:\n"
    "        print(f, os.readlink('/proc/self/fd/' + f))\n"
    "    except OSError:\n"
    "        pass\n"
)

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
    p = subprocess.run([PYTHON, "-c", NOBODY_CLIENT, d.sock, json.dumps(list(reqs))],
                       capture_output=True, text=True, timeout=60, cwd="/",
                       stdin=subprocess.DEVNULL, user=NOBODY, group=NOBODY, extra_groups=[])
    if p.returncode != 0:
        raise AssertionError("client as nobody failed: %s%s" % (p.stdout, p.stderr))
    return json.loads(p.stdout)


def proc_stat(pid):
    """(state, pgrp, session) of pid, or None when it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return rest[0], int(rest[2]), int(rest[3])


def start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def boot_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


# ---------------------------------------------------------------------------

class InheritedFdsTest(E2ETestCase):
    """Jobs inherit only 0, 1 and 2, whatever runs them (issue 12, defect 4)."""

    OVERRIDES = {"process_pool.mode": "static", "process_pool.max_workers": 1,
                 "thread_pool.min_threads": 1, "thread_pool.max_threads": 2,
                 "socket_mode": "0666"}

    def fds_of(self, d, jid):
        j = d.wait_job(jid, timeout=30)
        self.assertEqual(j["state"], "done", j)
        lines = d.read_output(jid).decode().splitlines()
        return {int(line.split()[0]): line for line in lines}

    def assertOnlyStdio(self, d, jid, what):
        fds = self.fds_of(d, jid)
        extra = [line for fd, line in sorted(fds.items()) if fd > 2]
        self.assertEqual(sorted(fds), [0, 1, 2],
                         "%s (job %d) inherited descriptors: %s" % (what, jid, extra))

    def test_every_pool_and_path(self):
        d = self.start_daemon(self.OVERRIDES)
        lister = [PYTHON, "-c", LIST_FDS]
        cases = []
        # thread pool and process pool, type left out and given as "exec"
        cases.append(("io command", d.submit(lister, **IO)))
        cases.append(("cpu command", d.submit(lister, **CPU)))
        cases.append(("io --type exec", d.submit(lister, type="exec", **IO)))
        cases.append(("cpu --type exec", d.submit(lister, type="exec", **CPU)))
        # after built-ins ran in the same worker and on the threads
        for t, argv in (("noop", []), ("sleep", ["0.05"]), ("sumsq", ["1000"])):
            for cls in (CPU, IO):
                self.assertEqual(d.wait_job(d.submit(type=t, argv=argv, **cls))["state"],
                                 "done")
        cases.append(("cpu command after built-ins", d.submit(lister, **CPU)))
        cases.append(("io command after built-ins", d.submit(lister, **IO)))
        # a spec too large for one datagram reaches the worker in a memfd
        big = {"env": {"BIG": "x" * (100 << 10), "PATH": "/usr/bin:/bin"}}
        cases.append(("cpu command sent in a memfd", d.submit(lister, **big, **CPU)))
        # while a subscriber and a parked wait hold connections open
        with d.connect() as sub, d.connect() as waiter:
            sub.send({"id": 1, "op": "subscribe"})
            self.assertOk(sub.recv())
            slow = d.submit(["sleep", "30"], **IO)
            self.cancel_at_cleanup(slow, d)
            waiter.send({"id": 2, "op": "wait", "job": slow})
            cases.append(("io command with clients", d.submit(lister, **IO)))
            cases.append(("cpu command with clients", d.submit(lister, **CPU)))
            for what, jid in cases:
                with self.subTest(what):
                    self.assertOnlyStdio(d, jid, what)
            d.cancel(slow)
        if os.geteuid() != 0:
            return
        # a root daemon runs other users' commands through taskd --run-as
        os.chmod(d.tmp, 0o755)
        rs = as_nobody(d, {"id": 1, "op": "submit", "argv": lister, "class": "io", "cwd": "/"},
                       {"id": 2, "op": "submit", "argv": lister, "class": "cpu", "cwd": "/"},
                       {"id": 3, "op": "submit", "argv": lister, "class": "cpu", "cwd": "/",
                        "type": "exec"})
        for r, what in zip(rs, ("io as nobody", "cpu as nobody", "cpu --type exec as nobody")):
            with self.subTest(what):
                self.assertOnlyStdio(d, self.assertOk(r)["id"], what)


if __name__ == "__main__":
    main()
