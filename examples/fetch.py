#!/usr/bin/python3
"""An I/O-bound handler taking many jobs at once (threads): fetches files or URLs.

    handlers = ( { name = "fetch"; class = "io"; concurrency = 32;
                   command = [ "/usr/bin/python3", "/usr/share/doc/taskd/examples/fetch.py" ]; } );

    taskctl submit --wait --type fetch -- file:///etc/hostname
    {"url":"file:///etc/hostname","bytes":7,"sha256":"..."}

Each job waits on the network (or the disk), not the CPU, so one Python
process serves up to 32 of them at once on threads (serve(..., concurrency=32)).
A job cancelled while it waits is answered at its next check.
"""
import hashlib
import urllib.request

import taskd_worker


def handle(job):
    if len(job.args) != 1:
        raise ValueError("usage: fetch URL")
    h = hashlib.sha256()
    n = 0
    with urllib.request.urlopen(job.args[0], timeout=30) as r:
        while True:
            if job.cancelled.is_set():
                raise RuntimeError("cancelled")
            chunk = r.read(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return {"url": job.args[0], "bytes": n, "sha256": h.hexdigest()}


taskd_worker.serve(handle, concurrency=32)
