#!/usr/bin/python3
"""C modules (issue 14 point 4, doc/modules.md) against a real taskd.

The modules are built by meson: tests/modules/testmod.c (types tm-io, tm-cpu,
tm-pure: one command per job, see its header), the broken ones of
tests/modules/badmod.c, and the shipped modules/hash.c. Every wait is
polled with a bound.
"""

import base64
import hashlib
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (E2ETestCase, TASKD, TASKCTL, NOBODY, ctl_as_nobody,  # noqa: E402
                     wait_for, pid_gone, main)

MODDIR = os.path.abspath(os.environ.get("TASKD_TEST_MODULES") or os.path.join(
    os.path.dirname(TASKD), "tests"))
TESTMOD = os.path.join(MODDIR, "testmod.so")
HASH = os.path.abspath(os.environ.get("TASKD_HASH_MODULE") or os.path.join(
    os.path.dirname(TASKD), "modules", "hash.so"))
WC = os.path.join(MODDIR, "wc.so")
SRCROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ROOT = os.geteuid() == 0
FAST = {"jobs.kill_grace": 0.3}


def bad(name):
    return os.path.join(MODDIR, "bad-%s.so" % name)


class ModuleCase(E2ETestCase):
    def daemon(self, overrides=None, modules=(TESTMOD, HASH)):
        o = dict(FAST)
        o["modules"] = list(modules)
        o.update(overrides or {})
        return self.start_daemon(o)

    def job(self, d, type_, *args, **fields):
        return d.wait_job(d.submit(list(args), type=type_, **fields))

    def workers(self, d):
        return {w["pid"] for w in d.status()["process_pool"]["workers"]}


class Running(ModuleCase):
    shared_daemon = True
    shared_overrides = dict(FAST, modules=[TESTMOD, HASH])

    def test_io_type_on_threads(self):
        j = self.job(self.d, "tm-io", "echo", "hello", "there")
        self.assertEqual((j["state"], j["pool"], j["routed"]), ("done", "thread", "io"))
        self.assertEqual(j["result"], "hello there")
        self.assertEqual(j["type"], "tm-io")
        self.assertIsNone(j["progress"])
        p = self.d.ctl("submit", "--wait", "--type", "tm-io", "--", "json", '{"a": [1, 2]}')
        self.assertRc(p, 0, p.stderr)
        self.assertEqual(p.stdout, '{"a":[1,2]}\n')

    def test_cpu_type_in_workers(self):
        j = self.job(self.d, "tm-cpu", "echo", "in", "a", "worker")
        self.assertEqual((j["state"], j["pool"], j["routed"]), ("done", "process", "cpu"))
        self.assertEqual(j["result"], "in a worker")
        self.assertIn(j["worker"], self.workers(self.d) | {j["worker"]})
        self.assertNotEqual(j["worker"], self.d.pid)
        # JSON and the input travel to the worker and back
        j = self.job(self.d, "tm-cpu", "input", input=base64.b64encode(b"bytes in").decode())
        self.assertEqual(j["result"], {"len": 8, "text": "bytes in"})
        j = self.job(self.d, "tm-cpu", "json", '[true, null, "x"]')
        self.assertEqual(j["result"], [True, None, "x"])

    def test_failures(self):
        for t in ("tm-io", "tm-cpu"):
            j = self.job(self.d, t, "fail", "no such image")
            self.assertEqual((j["state"], j["exit_code"], j["error"]),
                             ("failed", 1, "no such image"), t)
            p = self.d.ctl("submit", "--wait", "--type", t, "--", "fail", "broken")
            self.assertRc(p, 1)
            self.assertIn("broken", p.stderr)
            j = self.job(self.d, t, "badjson")
            self.assertEqual(j["state"], "failed")
            self.assertIn("the result is not JSON", j["error"])

    def test_output(self):
        for t in ("tm-io", "tm-cpu"):
            jid = self.d.submit(["write", "out line\n", "err line\n"], type=t)
            j = self.d.wait_job(jid)
            self.assertEqual((j["state"], j["stdout_bytes"], j["stderr_bytes"]), ("done", 9, 9))
            self.assertEqual(self.d.read_output(jid), b"out line\n")
            self.assertEqual(self.d.read_output(jid, "stderr"), b"err line\n")
            p = self.d.ctl("submit", "--wait", "--type", t, "--", "write", "o\n", "e\n")
            self.assertRc(p, 0, p.stderr)
            self.assertEqual(p.stdout, "o\nwrote\n")
            self.assertEqual(p.stderr, "e\n")

    def test_validate_and_class(self):
        r = self.d.request({"op": "submit", "type": "tm-io", "argv": ["nope"]})
        err = self.assertError(r, "bad_request")
        self.assertEqual(err["message"], "tm-io: no such command 'nope'")
        r = self.d.request({"op": "submit", "type": "tm-io", "argv": ["input"],
                            "input": base64.b64encode(b"please refuse").decode()})
        self.assertEqual(self.assertError(r, "bad_request")["message"],
                         "tm-io: refused by its input")
        r = self.d.request({"op": "submit", "type": "tm-cpu", "argv": ["echo"], "class": "io"})
        self.assertEqual(self.assertError(r, "bad_request")["message"],
                         "job type tm-cpu is class cpu: a job of it cannot be class io")
        r = self.d.request({"op": "submit", "type": "tm-io", "argv": ["echo"],
                            "input": "not base64!"})
        self.assertError(r, "bad_request")
        # an unknown type names the module types too
        r = self.d.request({"op": "submit", "type": "tm-nope", "argv": []})
        msg = self.assertError(r, "bad_request")["message"]
        for t in ("exec", "noop", "tm-io", "tm-cpu", "tm-pure", "hash"):
            self.assertIn(t, msg)

    def test_status(self):
        st = self.d.status()
        mods = {m["module"]: m for m in st["modules"]}
        self.assertEqual(list(mods), ["builtin", "testmod", "hash"])
        self.assertIsNone(mods["builtin"]["path"])
        self.assertEqual(mods["testmod"]["path"], TESTMOD)
        self.assertEqual(mods["testmod"]["version"], "0.1")
        self.assertEqual([(t["name"], t["class"], t["pure"]) for t in mods["testmod"]["types"]],
                         [("tm-io", "io", False), ("tm-cpu", "cpu", False),
                          ("tm-pure", "io", True)])
        self.assertEqual(mods["hash"]["types"][0]["usage"], "[-a ALGORITHM] [--] [FILE...]")
        p = self.d.ctl("status")
        self.assertRc(p, 0, p.stderr)
        self.assertIn("modules:", p.stdout)
        self.assertIn("tm-io (io), tm-cpu (cpu), tm-pure (io)", p.stdout)
        self.assertIn(TESTMOD, p.stdout)

    def test_big_result(self):
        j = self.job(self.d, "tm-io", "big", str(2 << 20))
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["error"], "result too large: 2097152 bytes, limits.max_frame is "
                         "1048576")
        j = self.job(self.d, "tm-cpu", "big", "100000")
        self.assertEqual((j["state"], len(j["result"])), ("done", 100000))


class Stopping(ModuleCase):
    def test_crash_in_a_worker(self):
        d = self.daemon({"process_pool.max_workers": 1})
        before = wait_for(lambda: self.workers(d) or None, what="a worker")
        # the jobs queued behind the crashing one, in the one worker, all run
        d.ok({"op": "pause", "class": "cpu"})
        crash = d.submit(["segv"], type="tm-cpu", retries=1, retry_delay=0.1)
        queued = [d.submit(["echo", str(i)], type="tm-cpu") for i in range(4)]
        d.ok({"op": "resume", "class": "cpu"})
        j = d.wait_job(crash)
        self.assertEqual(j["state"], "lost")
        self.assertEqual(j["attempt"], 2)
        self.assertIn("killed by signal 11", j["error"])
        for i, jid in enumerate(queued):
            q = d.wait_job(jid)
            self.assertEqual((q["state"], q["result"]), ("done", str(i)), q)
        # the worker was replaced (twice); the daemon is up and runs jobs
        self.assertTrue(d.alive())
        after = wait_for(lambda: self.workers(d) or None, what="a new worker")
        self.assertFalse(before & after)
        self.assertEqual(self.job(d, "tm-cpu", "echo", "ok")["result"], "ok")
        self.assertEqual(self.job(d, "tm-io", "echo", "ok")["result"], "ok")

    def test_init_fails_in_workers(self):
        # Loaded in the daemon, refused by init() in a worker: its jobs fail
        # there saying so, the worker stays and runs the other types' jobs.
        d = self.daemon({"process_pool.max_workers": 1}, modules=(TESTMOD, bad("init-worker")))
        j = self.job(d, "bad-type")
        self.assertEqual((j["state"], j["pool"]), ("failed", "process"), j)
        self.assertEqual(j["error"], "job type bad-type is not loaded in this worker (its module "
                         "failed to load here: see taskd's log)")
        self.assertIn("init failed: no licence in a worker", d.log_text())
        self.assertEqual(self.job(d, "tm-cpu", "echo", "ok")["worker"], j["worker"])

    def test_init_crashes_in_workers(self):
        # init() crashes in every worker: no worker starts (the pool backs
        # off, the log says why), the daemon stays up, io jobs run, cpu jobs
        # stay queued: none is lost.
        d = self.daemon({"process_pool.max_workers": 1},
                        modules=(TESTMOD, bad("init-crash-worker")))
        queued = [d.submit(["echo", str(i)], type="tm-cpu") for i in range(3)]
        pp = wait_for(lambda: (lambda p: p if p["spawn_failures"] >= 3 else None)(
            d.status()["process_pool"]), 15, what="failed starts of workers")
        self.assertGreater(pp["backoff"], 0)
        self.assertIn("died: killed by signal 11", d.log_text())
        self.assertTrue(d.alive())
        self.assertEqual(self.job(d, "tm-io", "echo", "io")["result"], "io")
        self.assertEqual([d.show(jid)["state"] for jid in queued], ["queued"] * 3)

    def test_timeouts(self):
        d = self.daemon()
        # a module that stops when taskd_stop() says so: on time, worker kept
        for t in ("tm-io", "tm-cpu"):
            j = self.job(d, t, "wait", "30", timeout=0.3)
            self.assertEqual(j["state"], "timeout", t)
            self.assertLess(j["wall"], 5)
        # one that hangs past its timeout in a worker: killed, replaced
        j = self.job(d, "tm-cpu", "echo", "x")
        pid = j["worker"]
        j = self.job(d, "tm-cpu", "hang", "30", timeout=0.3)
        self.assertEqual(j["state"], "timeout")
        self.assertEqual(j["worker"], pid)
        wait_for(lambda: pid_gone(pid), 5, what="the hung worker to be gone")
        self.assertEqual(self.job(d, "tm-cpu", "echo", "after")["result"], "after")

    def test_cancel(self):
        d = self.daemon()
        for t in ("tm-io", "tm-cpu"):
            jid = d.submit(["progress", "half way: " + t], type=t)
            wait_for(lambda: d.show(jid)["progress"] == "half way: " + t,
                     what="the progress of %s" % t)
            worker = d.show(jid)["worker"]
            d.cancel(jid)
            j = d.wait_job(jid)
            self.assertEqual(j["state"], "cancelled", t)
            self.assertIsNone(j["progress"])
            if t == "tm-cpu":  # it stopped by itself: its worker stays
                self.assertIn(worker, self.workers(d))
        # one that ignores the cancel in a worker: the worker goes after kill_grace
        jid = d.submit(["hang", "30"], type="tm-cpu")
        d.wait_state(jid, ["running"])
        pid = d.show(jid)["worker"]
        d.cancel(jid)
        j = d.wait_job(jid)
        self.assertEqual(j["state"], "cancelled")
        wait_for(lambda: pid_gone(pid), 5, what="the worker (pid %d) of the hung job to be "
                 "gone (job: %r, workers: %r)" % (pid, j, self.workers(d)))
        self.assertTrue(d.alive())


class RunAs(ModuleCase):
    def setUp(self):
        super().setUp()
        if not ROOT:
            self.skipTest("needs root: jobs of nobody on a root taskd")

    def test_nobody_cannot_read_through_a_module(self):
        d = self.daemon({"socket_mode": "0666"})
        os.chmod(d.tmp, 0o755)
        secret = os.path.join(d.tmp, "secret")
        with open(secret, "w") as f:
            f.write("root only\n")
        os.chmod(secret, 0o600)
        for t in ("tm-io", "tm-cpu"):
            p = ctl_as_nobody(d, "submit", "--wait", "--type", t, "--", "read", secret)
            self.assertRc(p, 1)
            self.assertIn("Permission denied", p.stderr)
            p = ctl_as_nobody(d, "--json", "submit", "--wait", "--type", t, "--", "ids")
            ids = json.loads(p.stdout)["result"]
            self.assertEqual((ids["euid"], ids["egid"]), (NOBODY, NOBODY), t)
            self.assertNotIn(0, ids["groups"])
            # root can, through the same module
            self.assertEqual(self.job(d, t, "read", secret)["result"], {"bytes": 10})
        # the shipped hash module: no /etc/shadow for nobody, its own file is fine
        p = ctl_as_nobody(d, "submit", "--wait", "--type", "hash", "--", "/etc/shadow")
        self.assertRc(p, 1)
        self.assertIn("/etc/shadow: Permission denied", p.stderr)
        p = ctl_as_nobody(d, "submit", "--wait", "--class", "cpu", "--type", "hash", "--",
                          "/etc/shadow")
        self.assertRc(p, 1)
        self.assertIn("Permission denied", p.stderr)
        self.assertEqual(self.job(d, "hash", "/etc/shadow")["state"], "done")
        # output files belong to the submitter
        p = ctl_as_nobody(d, "--json", "submit", "--wait", "--type", "tm-io", "--",
                          "write", "mine\n", "")
        jid = json.loads(p.stdout)["id"]
        out = os.path.join(d.state_dir, "jobs", "%d.out" % jid)
        self.assertEqual(os.stat(out).st_uid, NOBODY)
        self.assertEqual(ctl_as_nobody(d, "logs", jid).stdout, "mine\n")
        # the daemon kept its own ids
        with open("/proc/%d/status" % d.pid) as f:
            uid_line = [line for line in f if line.startswith("Uid:")][0]
        self.assertEqual(uid_line.split()[1:], ["0", "0", "0", "0"])


class Hash(ModuleCase):
    shared_daemon = True
    shared_overrides = dict(FAST, modules=[HASH])

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="taskd-hash-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_digests(self):
        files = [self.write("a", b""), self.write("b", b"hello\n"),
                 self.write("c", os.urandom(3 << 20) + b"end")]
        for algo in ("sha256", "sha512", "sha1", "md5", "sha3-256", "blake2b512"):
            for cls in ("io", "cpu"):
                j = self.job(self.d, "hash", "-a", algo, *files, **{"class": cls})
                self.assertEqual(j["state"], "done", j["error"])
                self.assertEqual(j["result"]["algorithm"], algo)
                want = []
                for f in files:
                    with open(f, "rb") as fh:
                        data = fh.read()
                    want.append({"path": f, "size": len(data),
                                 "digest": hashlib.new(algo, data).hexdigest()})
                self.assertEqual(j["result"]["files"], want, (algo, cls))

    def test_cli(self):
        path = self.write("x y.txt", b"some text\n")
        p = self.d.ctl("submit", "--wait", "--type", "hash", "--cwd", self.dir, "--",
                       "x y.txt")
        self.assertRc(p, 0, p.stderr)
        res = json.loads(p.stdout)
        self.assertEqual(res["files"][0]["digest"],
                         hashlib.sha256(b"some text\n").hexdigest())
        # relative paths: taskctl's own directory
        p = subprocess.run([TASKCTL, "-s", self.d.sock, "submit",
                            "--wait", "--type", "hash", "--", "-a", "sha512", "x y.txt"],
                           capture_output=True, text=True, cwd=self.dir, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["files"][0]["path"], "x y.txt")
        # the input instead of files
        p = self.d.ctl("submit", "--wait", "--type", "hash", "--input", path)
        self.assertRc(p, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {
            "algorithm": "sha256", "size": 10,
            "digest": hashlib.sha256(b"some text\n").hexdigest()})

    def test_bad_input(self):
        os.mkfifo(os.path.join(self.dir, "fifo"))
        for args, want in ((["-a", "sha7"], "hash: unknown algorithm 'sha7'"),
                           (["-x"], "hash: unknown option '-x'"),
                           (["-a"], "hash: -a needs an ALGORITHM"),
                           ([""], "hash: an empty FILE name")):
            r = self.d.request({"op": "submit", "type": "hash", "argv": args})
            self.assertIn(want, self.assertError(r, "bad_request")["message"])
        r = self.d.request({"op": "submit", "type": "hash", "argv": ["f"], "input": "aGk="})
        self.assertIn("give FILEs or an input, not both",
                      self.assertError(r, "bad_request")["message"])
        for name, want in (("nonexistent", "No such file or directory"),
                           ("fifo", "not a regular file"), (".", "Is a directory")):
            j = self.job(self.d, "hash", name, cwd=self.dir)
            self.assertEqual(j["state"], "failed")
            self.assertEqual(j["error"], "%s: %s" % (name, want))


class Example(ModuleCase):
    """examples/wc.c, the example of doc/modules.md, built as a user would build it."""

    def test_wc(self):
        d = self.daemon(modules=[WC])
        tmp = tempfile.mkdtemp(prefix="taskd-wc-")
        self.addCleanup(shutil.rmtree, tmp, True)
        texts = {"a": b"one two\nthree\n", "b \"q\"": b"", "c": b"  x\ty  z" * 1000}
        for name, data in texts.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
        p = self.d_ctl(d, tmp, "submit", "--wait", "--type", "wc", "--", *texts)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"files": [
            {"path": n, "lines": t.count(b"\n"), "words": len(t.split()), "bytes": len(t)}
            for n, t in texts.items()]})
        j = self.job(d, "wc", "missing", cwd=tmp)
        self.assertEqual((j["state"], j["error"]), ("failed", "missing: No such file or directory"))
        r = d.request({"op": "submit", "type": "wc", "argv": []})
        self.assertEqual(self.assertError(r, "bad_request")["message"], "wc: expected FILE...")
        # wait: the JSON result in the job's line
        jid = d.submit(["a"], type="wc", cwd=tmp)
        p = d.ctl("wait", jid)
        self.assertRc(p, 0, p.stderr)
        self.assertIn(' result={"files":[{"path":"a","lines":2,"words":3,"bytes":14}]}',
                      p.stdout)

    def d_ctl(self, d, cwd, *args):
        return subprocess.run([TASKCTL, "-s", d.sock] + list(args), capture_output=True,
                              text=True, cwd=cwd, timeout=30)

    def test_doc_shows_the_example(self):
        with open(os.path.join(SRCROOT, "doc", "modules.md")) as f:
            doc = f.read()
        with open(os.path.join(SRCROOT, "examples", "wc.c")) as f:
            src = f.read()
        self.assertIn("```c\n" + src + "```\n", doc,
                      "doc/modules.md's complete example is not examples/wc.c")


class Configuration(ModuleCase):
    def check(self, modules, handlers=None):
        """taskd -t on a config with these modules: (rc, stderr, path)."""
        tmp = tempfile.mkdtemp(prefix="taskd-modconf-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "taskd.conf")
        with open(path, "w") as f:
            f.write("# modules\nlog_level = \"warn\";\nmodules = (\n")
            f.write(",\n".join('  "%s"' % m for m in modules))
            f.write("\n);\n")
            if handlers:
                f.write('handlers = ( { name = "%s"; command = [ "/bin/cat" ]; user = "%s"; } );\n'
                        % (handlers, pwd.getpwuid(os.geteuid()).pw_name))
        p = subprocess.run([TASKD, "-t", "-c", path], capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stderr.strip(), path

    def test_taskd_t(self):
        rc, err, path = self.check([TESTMOD, HASH])
        self.assertEqual(rc, 0, err)
        rc, err, path = self.check([TESTMOD, "/nonexistent/x.so"])
        self.assertEqual(rc, 1)
        self.assertEqual(err, "%s:5: modules[1] (/nonexistent/x.so): cannot open: No such "
                         "file or directory" % path)
        rc, err, path = self.check([bad("abi")])
        self.assertEqual(err, "%s:4: modules[0] (%s): module ABI version 99; this taskd loads "
                         "version 1" % (path, bad("abi")))
        rc, err, path = self.check([TESTMOD, bad("dup-testmod")])
        self.assertIn(":5: modules[1] (%s): type tm-io: also a type of module testmod (%s)"
                      % (bad("dup-testmod"), TESTMOD), err)
        rc, err, path = self.check([bad("no-symbol")])
        self.assertIn("no symbol taskd_module_v1", err)
        rc, err, path = self.check([TESTMOD], handlers="tm-cpu")
        self.assertEqual(rc, 1)
        self.assertIn("handlers[0] (tm-cpu).name: is a job type of module testmod", err)
        rc, err, path = self.check(["relative/x.so"])
        self.assertIn("expected an absolute path, or the name of a module in", err)

    def test_reload_keeps_the_loaded_modules(self):
        d = self.daemon(modules=[TESTMOD])
        o = dict(FAST, modules=[HASH])
        d.write_config(o)
        r = d.ok({"op": "reload"})
        self.assertIn("modules", r["changed"])
        wait_for(lambda: "modules changes take effect after a restart" in d.log_text(),
                 what="the reload's warning")
        self.assertEqual([m["module"] for m in d.status()["modules"]], ["builtin", "testmod"])
        self.assertEqual(self.job(d, "tm-io", "echo", "still")["result"], "still")
        # the new set after a restart; a handler named like a loaded type is refused by reload
        d.write_config(dict(o, handlers=[{"name": "tm-io", "command": ["/bin/cat"],
                                          "user": pwd.getpwuid(os.geteuid()).pw_name}]))
        r = d.request({"op": "reload"})
        self.assertIn("handlers[0].name: 'tm-io' is a job type of a module",
                      self.assertError(r, "invalid_config")["message"])

    def test_stored_jobs_across_a_restart(self):
        d = self.daemon()
        j = self.job(d, "tm-io", "json", '{"kept": true}')
        i = self.job(d, "tm-cpu", "input", input=base64.b64encode(b"in").decode())
        d.stop()
        d.start()
        self.assertEqual(d.show(j["id"])["result"], {"kept": True})
        self.assertEqual(d.show(i["id"])["result"], {"len": 2, "text": "in"})
        # without the module, its stored jobs are still shown (as their type's name)
        d.stop()
        d.write_config(dict(FAST, modules=[HASH]))
        d.start()
        s = d.show(j["id"])
        self.assertEqual((s["type"], s["result"]), ("tm-io", {"kept": True}))


if __name__ == "__main__":
    main()
