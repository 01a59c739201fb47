#!/usr/bin/env python3
"""test_busy.py: vigil.db held by another process, and many CLIs at once.

1. Another process (Python's sqlite3) holds vigil.db with BEGIN EXCLUSIVE,
   once for 8 s and once for longer than the store's busy timeout (10 s),
   while the CLI in local mode (`vigil --state-dir`) and against a running
   `vigild --user` asks for history, jobs list, log, run --wait, run and
   jobs import.  Each command either waits and succeeds once the lock goes,
   or exits 1 with a message that names the database, says another process
   holds it and what to do; never SQLite's own "database is locked".  The
   service stays up and answers status afterwards; a run that ends while
   the database is held is recorded once the lock goes, and the runs asked
   for complete (destination equals source).
2. Twenty CLIs at once while a run goes on in the service (status --json,
   history, log, jobs list/show, jobs import, run of the running job, which
   is refused as already running, cancel of another job's run): no
   "database is locked" text reaches anyone, every CLI exits with a
   documented code, and the run completes ok.  A few rounds.  Then twenty
   `vigil --state-dir` processes at once on one state folder (history,
   jobs list/show, log, import, and one run) for a few rounds.

The figures printed: seconds each command waited, CLIs run, refusals."""

import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import treecmp  # noqa: E402
from vtest import (RC_CANCELLED, RC_ERROR, RC_OK, SANITIZER, Fatal,  # noqa: E402,E501
                   Service, SockVigil, Test, Vigil, describe,
                   find_tmp_leftovers, job_ini)

# The short hold is under the busy timeout by a margin: every command must
# wait and succeed.  Held exactly as long as the timeout (10 s), a writer
# that met the lock at once timed out as the locker, late under load,
# was about to let go: right, but a coin toss for a test.
HOLD = 8.0              # seconds the database is held, under BUSY_MS
LONG_HOLD = 13.0        # longer than the store's busy timeout (10 s)
BUSY_MS = 10000         # STORE_BUSY_MS, db/store.h

# What SQLite says on its own when a lock is not granted: never for users.
RAW_BUSY = re.compile(rb"database is locked|database table is locked|"
                      rb"SQLITE_BUSY|SQLITE_LOCKED|database schema is locked",
                      re.I)

LOCKER = r"""
import sqlite3, sys, time
hold = float(sys.argv[1])
conns = []
for p in sys.argv[2:]:
    c = sqlite3.connect(p, isolation_level=None, timeout=30)
    c.execute("BEGIN EXCLUSIVE")
    # A write too, so that the lock is a writer's with pages in flight.
    c.execute("INSERT OR REPLACE INTO settings (key, value) "
              "VALUES ('test-busy', 'held')")
    conns.append(c)
print("locked", flush=True)
time.sleep(hold)
for c in conns:
    c.execute("ROLLBACK")
print("released", flush=True)
"""


class Locker:
    """A second process that holds the given databases with BEGIN
    EXCLUSIVE for `hold` seconds."""

    def __init__(self, t, dbs, hold):
        self.t = t
        self.p = subprocess.Popen([sys.executable, "-c", LOCKER, str(hold)]
                                  + list(dbs), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        t.cleanups.append(self.kill)
        line = self.p.stdout.readline()
        if line.strip() != b"locked":
            raise Fatal("the locker did not take the lock: %r %r"
                        % (line, self.p.stderr.read()))
        self.t0 = time.monotonic()
        self.hold = hold

    def wait(self):
        out, err = self.p.communicate(timeout=self.hold + 30)
        self.released = time.monotonic() - self.t0
        if self.p.returncode != 0 or b"released" not in out:
            raise Fatal("the locker failed: %r %r" % (out, err))
        return self.released

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class Cli:
    """One CLI process started now; finish() collects it."""

    def __init__(self, v, label, *args):
        self.label = label
        self.args = args
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(v.argv(*args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=v.env)

    def finish(self, timeout=60):
        try:
            self.out, self.err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.out, self.err = self.p.communicate()
            self.rc = None
            self.dt = time.monotonic() - self.t0
            return self
        self.rc = self.p.returncode
        self.dt = time.monotonic() - self.t0
        return self

    def describe(self):
        return "argv: %s\nexit: %s after %.2f s\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, self.args)), self.rc, self.dt,
            self.out.decode("utf-8", "replace")[-1500:],
            self.err.decode("utf-8", "replace")[-1500:])


def make_tree(path, n, tag="v1"):
    os.makedirs(path, exist_ok=True)
    per = 500
    for i in range(n):
        sub = os.path.join(path, "d%02d" % (i // per))
        if i % per == 0:
            os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "f%05d" % i), "w") as f:
            f.write("%s %d\n" % (tag, i))


def touch_some(path, every, tag):
    """Rewrite every `every`-th file of a make_tree tree."""
    n = 0
    for d in sorted(os.listdir(path)):
        for i, name in enumerate(sorted(os.listdir(os.path.join(path, d)))):
            if i % every == 0:
                with open(os.path.join(path, d, name), "a") as f:
                    f.write("%s\n" % tag)
                n += 1
    return n


def fast_dir(t, name):
    """A folder on /dev/shm when there is one (many small files)."""
    import tempfile
    from vtest import rmtree
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = tempfile.mkdtemp(prefix="vigil-busy-%s-" % name, dir="/dev/shm")
        os.chmod(d, 0o755)
        if not t.keep:
            t.cleanups.insert(0, lambda: rmtree(d))
        return d
    d = t.path(name)
    os.makedirs(d)
    return d


def same_tree(t, src, dst, what):
    diffs, n = treecmp.compare_trees(src, dst)
    left = find_tmp_leftovers(dst)
    t.check(not diffs and not left, "%s: destination equals the source "
            "(%d entries), no temp files" % (what, n),
            "\n".join(diffs[:20] + [repr(x) for x in left[:20]]))


def clear_message(c, db):
    """The message a CLI must give when the database stayed busy: which
    database, what happened, what to do."""
    e = c.err.decode("utf-8", "replace")
    return (db in e and "another process holds the database" in e and
            "try again" in e)


def check_cli(t, c, what, allowed=(RC_OK, RC_ERROR)):
    """Common checks: exited, documented code, no raw SQLite busy text, no
    sanitizer report.  Returns True when all hold."""
    ok = c.rc in allowed
    raw = RAW_BUSY.search(c.out) or RAW_BUSY.search(c.err)
    san = SANITIZER.search(c.err)
    if not ok or raw or san:
        t.check(False, "%s: %s exits with a documented code %s (got %s), "
                "no raw 'database is locked', no sanitizer report"
                % (what, c.label, "/".join(map(str, allowed)), c.rc),
                c.describe())
        return False
    return True


# -- 1. BEGIN EXCLUSIVE ------------------------------------------------------

def start_service(t, name, src, jobs):
    sdir = t.path(name)
    os.makedirs(sdir)
    sock = os.path.join(sdir, "s.sock")
    svc = Service(t, ["--user", "--state-dir", sdir, "--socket", sock], sock,
                  name="vigild-" + name).start()
    sv = SockVigil(t, sock)
    ini = "".join(job_ini(n, src, t.path(name + "-" + n), **k)
                  for n, k in jobs)
    sv.import_jobs(ini, name=name + ".ini")
    sv.ok("run", "j", "--wait")
    return {"svc": svc, "sv": sv, "run": sv.last_run("j")["id"],
            "db": os.path.join(sdir, "vigil.db"),
            "ini": t.path(name + ".ini"), "name": name}


def setup_busy(t):
    src = t.path("b-src")
    make_tree(src, 20)
    # Local mode.
    lv = Vigil(t, t.path("b-local"))
    lv.import_jobs(job_ini("j", src, t.path("b-local-j")) +
                   job_ini("k", src, t.path("b-local-k")),
                   name="b-local.ini")
    lv.ok("run", "j", "--wait")
    # Service A: a run ends while the database is held; reads; runs
    # queued behind it (concurrency 1) start after it is recorded.
    a = start_service(t, "b-svcA", src, [("j", {}), ("k", {}),
                                         ("slow", {"pre": "/bin/sleep 1"})])
    # Service B: writers (run, import) wait on the database at once.
    b = start_service(t, "b-svcB", src, [("j", {}), ("k", {})])
    return {"src": src, "lv": lv, "lrun": lv.last_run("j")["id"],
            "ldb": t.path("b-local", "vigil.db"),
            "lini": t.path("b-local.ini"), "A": a, "B": b}


def wait_idle(sv, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = sv.status()
        if not st["running"]:
            return st
        time.sleep(0.1)
    return st


def busy_round(t, b, hold):
    """Hold the three databases for `hold` seconds; the CLIs ask
    meanwhile."""
    lv, A, B = b["lv"], b["A"], b["B"]
    longer = hold * 1000 > BUSY_MS
    tag = "hold %.0f s" % hold
    loglen = len(A["svc"].log())
    # A run that ends while the database is held (its pre sleeps 1 s).
    slow = A["sv"].popen("run", "slow", "--wait")
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if any(r.get("job") == "slow" for r in A["sv"].status()["running"]):
            break
        time.sleep(0.02)
    else:
        raise Fatal("%s: the slow run did not start" % tag)
    lk = Locker(t, [b["ldb"], A["db"], B["db"]], hold)
    sa, sb = A["sv"], B["sv"]
    clis = [
        ("local", Cli(lv, "local history", "history")),
        ("local", Cli(lv, "local history --json", "history", "--json")),
        ("local", Cli(lv, "local jobs list", "jobs", "list")),
        ("local", Cli(lv, "local log", "log", str(b["lrun"]))),
        ("local-w", Cli(lv, "local run j --wait", "run", "j", "--wait")),
        ("local-w", Cli(lv, "local jobs import", "jobs", "import",
                        b["lini"])),
        ("A", Cli(sa, "A status --json", "status", "--json")),
        ("A", Cli(sa, "A history --json", "history", "--json")),
        ("A", Cli(sa, "A jobs list", "jobs", "list")),
        ("A", Cli(sa, "A log", "log", str(A["run"]))),
        ("A", Cli(sa, "A run j --wait (queued)", "run", "j", "--wait")),
        ("A", Cli(sa, "A run k (queued)", "run", "k")),
        ("B", Cli(sb, "B status --json", "status", "--json")),
        ("B", Cli(sb, "B history --json", "history", "--json")),
        ("B-w", Cli(sb, "B run j --wait", "run", "j", "--wait")),
    ]
    # B's run reaches the service first: its start waits the busy timeout.
    time.sleep(0.5)
    clis.append(("B-w", Cli(sb, "B jobs import", "jobs", "import",
                            B["ini"])))
    for _, c in clis:
        c.finish(timeout=hold + 40)
    released = lk.wait()
    try:
        out, err = slow.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        slow.kill()
        out, err = slow.communicate()
    t.info("%s: the lock was held %.1f s" % (tag, released))
    nwait = nfail = 0
    for kind, c in clis:
        where = {"l": b["ldb"], "A": A["db"], "B": B["db"]}[kind[0]]
        t.info("%s: %-26s exit %s after %5.2f s" % (tag, c.label, c.rc,
                                                     c.dt))
        if not check_cli(t, c, tag):
            continue
        if c.rc == RC_OK:
            if c.dt > 1.0:
                nwait += 1
            continue
        nfail += 1
        t.check(clear_message(c, where), "%s: %s failed with a clear "
                "message (the database, another process holds it, try "
                "again)" % (tag, c.label), c.describe())
        # Only what has to write may fail, and only after the busy timeout.
        t.check(kind.endswith("-w") and c.dt >= BUSY_MS / 1000.0 - 0.5,
                "%s: %s failed only as a writer, after the busy timeout"
                % (tag, c.label), c.describe())
    for kind, c in clis:
        if kind == "local":
            # Reads never need the writer's lock (WAL): at once.
            t.check(c.rc == RC_OK and c.dt < 5.0, "%s: %s succeeded "
                    "without waiting (%.2f s)" % (tag, c.label, c.dt),
                    c.describe())
        elif kind in ("A", "B"):
            t.check(c.rc == RC_OK, "%s: %s succeeded (%.2f s)"
                    % (tag, c.label, c.dt), c.describe())
    if not longer:
        t.check(nfail == 0, "%s: every command succeeded once the lock "
                "went (%d waited for it)" % (tag, nwait))
    else:
        t.check(nfail >= 3, "%s: writers that waited longer than the busy "
                "timeout failed with the clear message (%d: local run and "
                "import, one of B's)" % (tag, nfail))
        brun = [c for k, c in clis if c.label == "B run j --wait"][0]
        t.check(brun.rc == RC_ERROR, "%s: B's run that could not start is "
                "refused with the reason, not left `queued` for ever"
                % tag, brun.describe())
    # The services are up, the same processes, and answer.
    for S in (A, B):
        t.check(S["svc"].alive(), "%s: %s is still running"
                % (tag, S["name"]), S["svc"].log()[-2000:])
        st = wait_idle(S["sv"])
        t.check(st["service"].get("pid") == S["svc"].pid and
                not st["running"], "%s: %s answers status afterwards, and "
                "its runs end" % (tag, S["name"]), json.dumps(st["running"]))
        h = S["sv"].history()
        t.check(not any(r.get("status") == "running" for r in h),
                "%s: %s: no run is left `running` in the history"
                % (tag, S["name"]),
                json.dumps([r for r in h if r.get("status") == "running"]))
    # The run that ended while the database was held is recorded.
    rec = A["sv"].last_run("slow")
    t.check(slow.returncode == RC_OK and rec.get("status") == "ok",
            "%s: the run that ended while the database was held is "
            "recorded ok once the lock went (run --wait exit %s, status %s)"
            % (tag, slow.returncode, rec.get("status")),
            out.decode() + err.decode() + json.dumps(rec))
    alog = A["svc"].log()[loglen:]
    retried = b"cannot record the run yet" in alog
    if longer:
        t.check(retried and b"recorded after" in alog, "%s: its record "
                "failed past the busy timeout and was written again once "
                "the lock went" % tag, alog[-2000:])
    # The queued runs ran after it.
    for job in ("j", "k"):
        r = A["sv"].last_run(job)
        t.check(r.get("status") == "ok" and r.get("trigger") == "manual" and
                r["id"] > rec["id"], "%s: A's queued run of %s ran after "
                "it, ok" % (tag, job), json.dumps(r))
    # Runs asked for complete; the database is whole.
    lv.ok("run", "j", "--wait")
    B["sv"].ok("run", "j", "--wait")
    same_tree(t, b["src"], t.path("b-local-j"), "%s: local j" % tag)
    same_tree(t, b["src"], t.path("b-svcA-j"), "%s: A j" % tag)
    same_tree(t, b["src"], t.path("b-svcB-j"), "%s: B j" % tag)
    return nwait, nfail


def busy(t):
    b = setup_busy(t)
    w1, f1 = busy_round(t, b, HOLD)
    w2, f2 = busy_round(t, b, LONG_HOLD)
    for S in (b["A"], b["B"]):
        log = S["svc"].log()
        t.check(not RAW_BUSY.search(log) and not SANITIZER.search(log),
                "%s's log has no raw 'database is locked' and no "
                "sanitizer report" % S["name"], log[-3000:])
        S["svc"].stop()
    t.info("BEGIN EXCLUSIVE: held %.0f s then %.0f s; %d commands waited "
           "and succeeded, %d failed clearly" % (HOLD, LONG_HOLD, w1 + w2,
                                                  f1 + f2))


# -- 2. twenty CLIs at once --------------------------------------------------

def twenty_service(t, rounds):
    src = fast_dir(t, "src")
    nfiles = 2000
    make_tree(src, nfiles)
    dst = fast_dir(t, "dst")
    osrc = t.path("other-src")
    make_tree(osrc, 5)
    sdir = t.path("m-svc")
    os.makedirs(sdir)
    sock = os.path.join(sdir, "s.sock")
    svc = Service(t, ["--user", "--state-dir", sdir, "--socket", sock], sock,
                  name="vigild-many").start()
    sv = SockVigil(t, sock)
    # The run stays in progress through its post command (3 s) after
    # the copy, whatever the speed of the machine.
    ini = (job_ini("long", src, dst, post="/bin/sleep 3") +
           job_ini("other", osrc, t.path("other-dst"), pre="/bin/sleep 4"))
    sv.import_jobs(ini, name="m-jobs.ini")
    # Two runs at once (the long one and another job to cancel): the
    # service reads `concurrency` from its settings at start.
    svc.stop()
    import sqlite3
    db = sqlite3.connect(os.path.join(sdir, "vigil.db"))
    with db:
        db.execute("INSERT OR REPLACE INTO settings VALUES "
                   "('concurrency', '2')")
    db.close()
    svc.start()
    prev = None
    total = refused = cancelled = 0
    for rnd in range(rounds):
        if rnd:
            touch_some(src, 3, "round %d" % rnd)
        waiter = sv.popen("run", "long", "--wait")
        other = sv.popen("run", "other", "--wait")
        # Wait until the long run copies and the other one runs.
        end = time.monotonic() + 30
        lrun = orun = None
        while time.monotonic() < end:
            st = sv.status()
            for r in st["running"]:
                if r.get("job") == "long" and (r.get("progress") or {}).get(
                        "copied", 0) >= 1:
                    lrun = r["run"]
                if r.get("job") == "other":
                    orun = r["run"]
            if lrun and orun:
                break
            time.sleep(0.02)
        if not (lrun and orun):
            raise Fatal("round %d: the runs did not start (%r)"
                        % (rnd, sv.status()["running"]))
        logrun = prev if prev else lrun
        mix = (
            [("status", "status", "--json")] * 4 +
            [("history", "history", "--json")] * 3 +
            [("history", "history", "long")] * 2 +
            [("log", "log", str(logrun))] * 2 +
            [("jobs", "jobs", "list")] * 2 +
            [("jobs", "jobs", "show", "long")] +
            [("import", "jobs", "import", t.path("m-jobs.ini"))] +
            [("again", "run", "long")] * 2 +
            [("again", "run", "long", "--wait")] +
            [("cancel", "cancel", str(orun))] +
            [("cancel-x", "cancel", str(lrun + 1000))]
        )
        assert len(mix) == 20
        clis = [(m[0], Cli(sv, "%s" % " ".join(m[1:]), *m[1:]))
                for m in mix]
        still = any(r.get("job") == "long" for r in sv.status()["running"])
        bad = 0
        for kind, c in clis:
            c.finish(timeout=120)
            total += 1
            if not check_cli(t, c, "round %d" % rnd):
                bad += 1
                continue
            e = c.err.decode("utf-8", "replace")
            if kind == "again":
                refused += 1
                if not t.check(c.rc == RC_ERROR and "already running" in e
                               and "run %d" % lrun in e,
                               "round %d: `%s` is refused: the job is "
                               "already running (run %d)" % (rnd, c.label,
                                                             lrun),
                               c.describe()):
                    bad += 1
            elif kind == "cancel":
                cancelled += 1
                if not t.check(c.rc == RC_OK, "round %d: cancel of the "
                               "other job's run %d exits 0" % (rnd, orun),
                               c.describe()):
                    bad += 1
            elif kind == "cancel-x":
                if not t.check(c.rc == RC_ERROR and "not running" in e,
                               "round %d: cancel of a run that is not "
                               "running says so" % rnd, c.describe()):
                    bad += 1
            elif c.rc != RC_OK:
                bad += 1
                t.check(False, "round %d: %s exits 0" % (rnd, c.label),
                        c.describe())
            elif "--json" in c.args:
                try:
                    json.loads(c.out)
                except ValueError:
                    bad += 1
                    t.check(False, "round %d: %s prints JSON"
                            % (rnd, c.label), c.describe())
        t.check(bad == 0, "round %d: 20 CLIs at once during run %d (%s "
                "while they ran): each exited as documented, no raw "
                "'database is locked'" % (rnd, lrun, "still running" if
                                          still else "it ended"))
        try:
            wout, werr = waiter.communicate(timeout=120)
            oout, oerr = other.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            waiter.kill()
            other.kill()
            raise Fatal("round %d: a run --wait did not end" % rnd)
        rec = [r for r in sv.history("long") if r["id"] == lrun]
        t.check(waiter.returncode == RC_OK and rec and
                rec[0]["status"] == "ok", "round %d: run %d of the long job "
                "completes ok" % (rnd, lrun), wout + werr)
        orec = [r for r in sv.history("other") if r["id"] == orun]
        t.check(other.returncode == RC_CANCELLED and orec and
                orec[0]["status"] == "cancelled", "round %d: the other "
                "job's run %d is recorded cancelled (run --wait exit %s)"
                % (rnd, orun, other.returncode), oout + oerr)
        same_tree(t, src, dst, "round %d" % rnd)
        prev = lrun
    t.check(svc.alive(), "vigild is still running after %d rounds" % rounds)
    log = svc.log()
    t.check(not RAW_BUSY.search(log) and not SANITIZER.search(log),
            "vigild's log has no raw 'database is locked' and no "
            "sanitizer report", log[-3000:])
    svc.stop()
    t.info("service: %d rounds, %d CLIs, %d refused as already running, "
           "%d cancels of another job" % (rounds, total, refused, cancelled))


def twenty_local(t, rounds):
    src = t.path("l-src")
    make_tree(src, 300)
    dst = t.path("l-dst")
    lv = Vigil(t, t.path("m-local"))
    lv.import_jobs(job_ini("loc", src, dst) + job_ini("idle", src,
                   t.path("l-idle")), name="l-jobs.ini")
    lv.ok("run", "loc", "--wait")
    total = 0
    for rnd in range(rounds):
        touch_some(src, 4, "round %d" % rnd)
        last = lv.last_run("loc")["id"]
        mix = (
            [("run", "run", "loc", "--wait")] +
            [("r", "history", "--json")] * 4 +
            [("r", "history", "loc")] * 3 +
            [("r", "jobs", "list")] * 3 +
            [("r", "jobs", "show", "loc")] * 2 +
            [("r", "jobs", "export")] * 2 +
            [("r", "log", str(last))] * 3 +
            [("w", "jobs", "import", t.path("l-jobs.ini"))] * 2
        )
        assert len(mix) == 20
        clis = [(m[0], Cli(lv, " ".join(m[1:]), *m[1:])) for m in mix]
        bad = 0
        slowest = 0.0
        for kind, c in clis:
            c.finish(timeout=120)
            total += 1
            slowest = max(slowest, c.dt)
            if not check_cli(t, c, "local round %d" % rnd):
                bad += 1
            elif c.rc != RC_OK:
                bad += 1
                t.check(False, "local round %d: %s exits 0" % (rnd, c.label),
                        c.describe())
        t.check(bad == 0, "local round %d: 20 `vigil --state-dir` at once "
                "(one run): all exit 0, no raw 'database is locked' "
                "(slowest %.2f s)" % (rnd, slowest))
        rec = lv.last_run("loc")
        t.check(rec["status"] == "ok" and rec["id"] > last,
                "local round %d: the run is recorded ok" % rnd,
                json.dumps(rec))
        same_tree(t, src, dst, "local round %d" % rnd)
    t.info("local: %d rounds, %d CLIs" % (rounds, total))


def body(t):
    which = t.args.part
    if which in ("all", "busy"):
        busy(t)
    if which in ("all", "many"):
        rounds = 2 if t.args.quick else 3
        twenty_service(t, rounds)
        twenty_local(t, rounds)


def add_args(ap):
    ap.add_argument("--part", choices=("all", "busy", "many"), default="all")


if __name__ == "__main__":
    Test("busy", "vigil.db held by another process; twenty CLIs at once",
         add_args=add_args).main(body)
