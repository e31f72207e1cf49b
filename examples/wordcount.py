#!/usr/bin/python3
"""A CPU-bound handler: counts the words of its input (or of its arguments).

    handlers = ( { name = "wordcount"; class = "cpu";
                   command = [ "/usr/bin/python3", "/usr/share/doc/taskd/examples/wordcount.py" ]; } );

    taskctl submit --wait --type wordcount --input README.md
    {"words":1234,"lines":210,"top":[["the",80],...]}
"""
import collections

import taskd_worker


def handle(job):
    text = job.input.decode("utf-8", "replace") if job.input else " ".join(job.args)
    words = text.split()
    top = collections.Counter(w.lower() for w in words).most_common(5)
    return {"words": len(words), "lines": text.count("\n"), "top": top}


taskd_worker.serve(handle)
