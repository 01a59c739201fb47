#!/usr/bin/env python3
"""test_service.py: the real vigild in user mode, driven by the vigil CLI.

Two services run side by side:
  A  `vigild --user` with XDG_STATE_HOME and XDG_RUNTIME_DIR set and no
     --state-dir or --socket: it must put its state and socket in the user
     places, and the CLI must find it without being told.  It holds one job
     scheduled `daily HH:MM` at the next whole minute (at least 8 s away),
     which must start within 2 s of that minute.  Idle RSS and idle
     wake-ups are measured on it.
  B  `vigild --user --state-dir T --socket T/s.sock`, for everything else:
     run --wait exit codes (0 ok, 3 partial with a FIFO, 4 failed with a
     missing source) and the summary; run without --wait returns at once;
     status and history JSON shapes; dry run; concurrency 1 queues a second
     job; cancel ends a run `cancelled` (exit 5); max-runtime stops a run
     `failed` with a message; a worker killed with SIGKILL ends its run
     `failed` with the reason; SIGTERM mid-run marks the run `interrupted`;
     kill -9 of vigild mid-run, then a restart: the run is `interrupted` and
     the next run completes the backup (destination equals source, no
     .vigil-tmp-* left); bad frames and 200 connections from one uid never
     take the service down.

A long run is a source of many small files (on a tmpfs when there is one,
so that writing and removing them is quick): a run of it takes seconds.
The test waits for the run's progress in `vigil status` before it acts,
never for a fixed time."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import treecmp  # noqa: E402
from vtest import (RC_CANCELLED, RC_ERROR, RC_FAILED, RC_OK, RC_PARTIAL,  # noqa: E402,E501
                   Fatal, Service, SockVigil, Test, describe, find_tmp_leftovers,
                   frame, is_sanitized, job_ini, parse_iso, proc_status,
                   recv_exact, vigild_children)

NFILES = 160000         # files in the long source
RSS_LIMIT_KB = 10 * 1024


def make_small(path, n=5):
    os.makedirs(path)
    for i in range(n):
        with open(os.path.join(path, "f%d.txt" % i), "w") as f:
            f.write("file %d\n" % i)


def make_long(path, nfiles):
    os.makedirs(path)
    per = 1000
    for d in range(0, nfiles, per):
        sub = os.path.join(path, "d%03d" % (d // per))
        os.mkdir(sub)
        for i in range(d, min(nfiles, d + per)):
            with open(os.path.join(sub, "f%06d" % i), "w") as f:
                f.write("%d\n" % i)


def fast_dir(t):
    """A temp folder for the many-file trees: on /dev/shm (tmpfs) when it
    is there, else in the work folder."""
    import tempfile
    from vtest import rmtree
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access(
        "/dev/shm", os.W_OK) else None
    if base is None:
        return t.path("many")
    d = tempfile.mkdtemp(prefix="vigil-service-", dir=base)
    os.chmod(d, 0o755)
    if not t.keep:
        t.cleanups.insert(0, lambda: rmtree(d))
    return d


def run_of(v, job):
    """The running run of job in `vigil status`, or None."""
    for r in v.status().get("running", []):
        if r.get("job") == job:
            return r
    return None


def wait_progress(t, v, job, copied=50, timeout=30):
    """Wait until job's run has copied at least `copied` files; returns the
    status entry of the run."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        r = run_of(v, job)
        if r is not None:
            last = r
            p = r.get("progress") or {}
            if p.get("copied", 0) >= copied:
                return r
        time.sleep(0.05)
    raise Fatal("job %s: no run with %d files copied within %d s (last "
                "status entry %r)" % (job, copied, timeout, last))


def wait_no_run(v, job, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if run_of(v, job) is None:
            return True
        time.sleep(0.1)
    return False


def hist(v, job):
    return v.history(job)


def run_by_id(v, job, rid):
    for r in v.history(job):
        if r.get("id") == rid:
            return r
    return None


# -- A: user mode with the XDG places, the schedule, idle costs --------------

def start_scheduled(t):
    xdg_state = t.path("A-xdg-state")
    rt = t.path("A-runtime")
    os.makedirs(rt, mode=0o700)
    env = {"XDG_STATE_HOME": xdg_state, "XDG_RUNTIME_DIR": rt}
    sock = os.path.join(rt, "vigil", "vigil.sock")
    svc = Service(t, ["--user"], sock, env=env, name="vigild-A").start()
    # The CLI finds the user-mode socket by itself: no --socket, no
    # VIGIL_SOCKET, only XDG_RUNTIME_DIR.
    va = SockVigil(t, None, env=env)
    st = va.status()
    t.check(st["service"].get("pid") == svc.pid and
            st["service"].get("socket") == sock and
            st["service"].get("mode") == "user",
            "A: vigil without --socket finds the user-mode socket "
            "$XDG_RUNTIME_DIR/vigil/vigil.sock", json.dumps(st["service"]))
    t.check(os.path.exists(os.path.join(xdg_state, "vigil", "vigil.db")),
            "A: --user keeps its state in $XDG_STATE_HOME/vigil")
    mode = os.stat(sock).st_mode & 0o777
    t.check(mode == 0o600, "A: the user-mode socket is 0600 (got %o)" % mode)

    # The next whole minute at least 8 s away, in local time as the
    # schedule is.
    now = time.time()
    due = (int(now) // 60 + 1) * 60
    if due - now < 8:
        due += 60
    hhmm = time.strftime("%H:%M", time.localtime(due))
    src, dst = t.path("A-src"), t.path("A-dst")
    make_small(src)
    va.import_jobs(job_ini("timed", src, dst, schedule="daily " + hhmm),
                   name="A-jobs.ini")
    st = va.status()
    job = [j for j in st["jobs"] if j.get("name") == "timed"]
    nxt = parse_iso(job[0].get("next_run")) if job else None
    t.check(nxt == due, "A: status shows the next run of `daily %s` at %s"
            % (hhmm, time.strftime("%H:%M:%S", time.localtime(due))),
            json.dumps(job))
    t.info("A: job `timed` is due at %s (in %.1f s)"
           % (time.strftime("%H:%M:%S", time.localtime(due)), due - now))
    return svc, va, due, src, dst


def check_scheduled(t, svc, va, due, src, dst):
    end = due + 30
    while True:
        h = va.history("timed")
        if (h and h[0].get("status") not in ("running", None)) or \
                time.time() > end:
            break
        time.sleep(0.25)
    if not t.check(len(h) == 1, "A: the scheduled job ran once by itself "
                   "(%d runs)" % len(h), json.dumps(h, indent=1)):
        return
    r = h[0]
    started = parse_iso(r.get("started"))
    delta = started - due if started is not None else None
    t.info("A: due %.3f, started %.3f: %+.3f s" % (due, started or 0,
                                                   delta or 0))
    t.check(r.get("trigger") == "schedule" and r.get("status") == "ok",
            "A: the run's trigger is schedule and it ended ok",
            json.dumps(r))
    t.check(delta is not None and abs(delta) <= 2.0,
            "A: the scheduled run started within 2 s of its due time "
            "(%+.3f s)" % (delta if delta is not None else float("nan")))
    diffs, n = treecmp.compare_trees(src, dst)
    t.check(not diffs, "A: the scheduled run copied the source (%d "
            "entries)" % n, "\n".join(diffs))


def idle_costs(t, svc, label):
    """Idle RSS and wake-ups of a service after a few requests."""
    pid = svc.pid
    san = is_sanitized(pid)
    rss = proc_status(pid, "VmRSS")
    t.info("%s: idle VmRSS %d kB (%.2f MiB)%s" % (
        label, rss, rss / 1024.0, " under ASan: not checked" if san else ""))
    if not san:
        t.check(rss is not None and rss < RSS_LIMIT_KB,
                "%s: idle RSS %d kB is under 10 MiB" % (label, rss))
    time.sleep(0.5)
    out = t.path("%s-strace.txt" % label)

    def switches():
        return sum(_task_switches(pid, tid)
                   for tid in os.listdir("/proc/%d/task" % pid))

    # A scheduled run may fall into the window (a worker is forked and
    # reaped): that is work, not idling, so measure again.
    for attempt in range(3):
        c0 = switches()
        p = subprocess.Popen(["strace", "-f", "-p", str(pid), "-e",
                              "trace=epoll_wait,epoll_pwait,epoll_pwait2",
                              "-o", out], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        time.sleep(3.0)
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        c1 = switches()
        try:
            with open(out) as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        if not lines and b"attach" in err:
            t.check(False, "%s: strace could not attach to vigild" % label,
                    err)
            return
        if not any("+++ exited" in ln or "SIGCHLD" in ln for ln in lines):
            break
        t.info("%s: a run happened during the idle window; measuring "
               "again" % label)
    returned = [ln for ln in lines if "resumed>" in ln or
                ("= " in ln and "<unfinished" not in ln)]
    returned = [ln for ln in returned if "ERESTART" not in ln and
                "= ?" not in ln]
    t.info("%s: 3 s idle under strace: %d epoll calls returned; %d "
           "voluntary context switches over the same 3 s" % (
               label, len(returned), c1 - c0))
    t.check(len(returned) <= 1, "%s: no wake-ups while idle (%d epoll "
            "calls returned in 3 s)" % (label, len(returned)),
            "\n".join(lines))


def _task_switches(pid, tid):
    try:
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- B: everything else ------------------------------------------------------

def exit_codes(t, v, paths):
    p = v.run_expect("ok", rc=RC_OK, what="a job of plain files")
    out = p.stdout.decode("utf-8", "replace")
    t.check("status ok" in out and "files" in out and "capture" in out,
            "run --wait prints the run summary (status, files, capture)",
            describe(p))
    diffs, _ = treecmp.compare_trees(paths["ok"], paths["ok-dst"])
    t.check(not diffs, "the ok run copied the source", "\n".join(diffs))

    p = v.run_expect("fifo", rc=RC_PARTIAL, what="a FIFO in the source")
    out = p.stdout.decode("utf-8", "replace")
    t.check("status partial" in out and "pipe" in out,
            "the partial run's summary names the FIFO", describe(p))

    os.rmdir(paths["gone"])
    t0 = time.monotonic()
    p = v.run_expect("gone", rc=RC_FAILED, what="a source removed after "
                     "import", timeout=30)
    t.check(time.monotonic() - t0 < 10 and
            paths["gone"] in p.stdout.decode("utf-8", "replace"),
            "the failed run ends at once and its summary names the missing "
            "source", describe(p))
    p = v.cmd("run", "gone")
    t.check(p.returncode == RC_OK and b"failed" in p.stdout,
            "run without --wait of a job that fails its pre-run check says "
            "so", describe(p))


def shapes(t, v):
    st = v.status()
    t.check(all(k in st for k in ("service", "sessions", "jobs", "running"))
            and isinstance(st["service"], dict)
            and isinstance(st["sessions"], list)
            and isinstance(st["jobs"], list)
            and isinstance(st["running"], list),
            "status --json: an object with service, sessions, jobs, running",
            json.dumps(st, indent=1))
    ok = [j for j in st["jobs"] if j.get("name") == "ok"]
    t.check(len(ok) == 1 and ok[0].get("last_status") == "ok" and
            ok[0].get("last_run") and "next_run" in ok[0],
            "status --json: a job has its last run, next run and last result",
            json.dumps(ok))
    h = v.history()
    keys = ("id", "job", "status", "path", "started", "ended", "files",
            "bytes", "capture")
    bad = [r for r in h if not all(k in r for k in keys) or
           not isinstance(r["capture"], dict) or
           parse_iso(r["started"]) is None or parse_iso(r["ended"]) is None]
    t.check(h and not bad, "history --json: each of %d runs has %s" % (
        len(h), ", ".join(keys)), json.dumps(bad[:2], indent=1))
    t.check([r["id"] for r in h] == sorted((r["id"] for r in h),
                                           reverse=True),
            "history --json is newest first")
    okrun = [r for r in h if r["job"] == "ok"][0]
    # nobody closes apps here: the fallback's method for the temp folder's
    # filesystem (verified copy, or reflink / btrfs snapshot where it can)
    cap = okrun["capture"]
    t.check(okrun["files"] == 5 and sum(cap.values()) == 5 and
            set(cap) <= {"verified", "reflink", "snapshot-btrfs"},
            "history: the ok run counts its 5 files, captured by the "
            "fallback", json.dumps(okrun))


def dry_run(t, v, paths):
    with open(os.path.join(paths["ok"], "new-file.txt"), "w") as f:
        f.write("new\n")
    before = len(v.history())
    p = v.cmd("run", "ok", "--dry-run", timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    t.check(p.returncode == RC_OK and "new-file.txt" in out and
            "summary:" in out,
            "run --dry-run prints the plan (the new file, a summary)",
            describe(p))
    t.check(len(v.history()) == before and not os.path.exists(
        os.path.join(paths["ok-dst"], "new-file.txt")),
        "the dry run recorded nothing and copied nothing")


def cancel_and_queue(t, v):
    """A long run; a second job queues behind it (concurrency 1); cancel
    ends the first `cancelled` and the second then runs."""
    waiter = v.popen("run", "long-cancel", "--wait")
    r = wait_progress(t, v, "long-cancel")
    rid = r["run"]
    t0 = time.monotonic()
    p = v.cmd("run", "ok", timeout=30)
    dt = time.monotonic() - t0
    t.check(p.returncode == RC_OK and b"queued" in p.stdout and dt < 3,
            "run without --wait returns at once (%.2f s) and says the run "
            "is queued behind the running one" % dt, describe(p))
    st = v.status()
    running = [x["job"] for x in st["running"]]
    okjob = [j for j in st["jobs"] if j["name"] == "ok"][0]
    t.check(running == ["long-cancel"] and not okjob.get("running"),
            "concurrency 1: only the first job runs, the second waits",
            json.dumps(st["running"]))
    t.check(isinstance(r.get("progress"), dict) and all(
        k in r["progress"] for k in ("phase", "files", "bytes", "current")),
        "status shows the running run's progress (phase, files, bytes, "
        "current path)", json.dumps(r))
    p = v.cmd("cancel", str(rid))
    t.check(p.returncode == RC_OK, "vigil cancel %d exits 0" % rid,
            describe(p))
    try:
        out, err = waiter.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        waiter.kill()
        raise Fatal("run --wait did not end after cancel")
    t.check(waiter.returncode == RC_CANCELLED,
            "the waiting `run --wait` of the cancelled run exits 5 (got %d)"
            % waiter.returncode, out + err)
    rec = run_by_id(v, "long-cancel", rid)
    t.check(rec and rec["status"] == "cancelled" and "cancelled by" in
            (rec.get("message") or ""),
            "the run is recorded cancelled, saying by whom",
            json.dumps(rec))
    if not wait_no_run(v, "ok"):
        t.check(False, "the queued job ran after the cancelled one")
        return
    end = time.monotonic() + 30
    okruns = []
    while time.monotonic() < end:
        okruns = [x for x in v.history("ok") if x["trigger"] == "manual"]
        if len(okruns) >= 2 and okruns[0]["status"] != "running":
            break
        time.sleep(0.1)
    t.check(len(okruns) >= 2 and okruns[0]["status"] == "ok" and
            parse_iso(okruns[0]["started"]) >= parse_iso(rec["ended"]) - 0.01,
            "the queued job started once the first had ended",
            json.dumps(okruns[:1]) + "\n" + json.dumps(rec))


def max_runtime(t, v):
    t0 = time.monotonic()
    p = v.run_expect("long-maxrt", rc=RC_FAILED,
                     what="max-runtime = 2s on a long run", timeout=90)
    dt = time.monotonic() - t0
    rec = v.last_run("long-maxrt")
    t.info("max-runtime 2s: the run ended after %.2f s (%d files copied of "
           "%d)" % (dt, rec.get("counts", {}).get("copied", -1), NFILES))
    t.check(rec["status"] == "failed" and "max-runtime" in
            (rec.get("message") or "") and 2.0 <= dt < 10,
            "the run stopped at max-runtime, failed, with a message saying "
            "so (%.2f s)" % dt, json.dumps(rec) + "\n" + describe(p))


def worker_killed(t, v, svc):
    waiter = v.popen("run", "long-worker", "--wait")
    r = wait_progress(t, v, "long-worker")
    kids = vigild_children(svc.pid)
    if not t.check(len(kids) == 1, "one worker process runs the run "
                   "(children of vigild: %r)" % kids):
        waiter.kill()
        return
    os.kill(kids[0], signal.SIGKILL)
    out, err = waiter.communicate(timeout=60)
    rec = run_by_id(v, "long-worker", r["run"])
    t.check(waiter.returncode == RC_FAILED and rec and
            rec["status"] == "failed" and "signal 9" in
            (rec.get("message") or ""),
            "a worker killed with SIGKILL: the run ends failed, naming the "
            "signal (exit 4)", json.dumps(rec) + "\n" + (out + err).decode(
                "utf-8", "replace"))
    t.check(svc.alive() and v.status()["service"]["pid"] == svc.pid,
            "the service still answers after its worker was killed")


def sigterm_midrun(t, v, svc):
    waiter = v.popen("run", "long-term", "--wait")
    r = wait_progress(t, v, "long-term")
    svc.signal(signal.SIGTERM)
    rc = svc.wait(40)
    t.check(rc == 0, "SIGTERM mid-run: vigild stops cleanly, exit 0 (got "
            "%r)" % rc)
    out, err = waiter.communicate(timeout=30)
    t.check(not svc.alive(), "vigild is gone after SIGTERM")
    t.check(not os.path.exists(svc.socket),
            "a cleanly stopped vigild removes its socket")
    p = v.cmd("status")
    t.check(p.returncode == RC_ERROR and b"vigild" in p.stderr,
            "vigil against a stopped service exits 1 and says how to start "
            "it", describe(p))
    svc.start()
    rec = run_by_id(v, "long-term", r["run"])
    t.check(rec and rec["status"] == "interrupted",
            "the run stopped by SIGTERM is recorded interrupted",
            json.dumps(rec))


def kill9_midrun(t, v, svc, paths):
    waiter = v.popen("run", "long-kill", "--wait")
    r = wait_progress(t, v, "long-kill", copied=200)
    worker = vigild_children(svc.pid)
    svc.signal(signal.SIGKILL)
    svc.wait(10)
    waiter.communicate(timeout=30)
    time.sleep(0.2)
    alive = [w for w in worker if os.path.exists("/proc/%d" % w) and
             not open("/proc/%d/stat" % w).read().split(") ")[1]
             .startswith("Z")]
    t.check(not alive, "the worker dies with the killed vigild (%r left)"
            % alive)
    svc.start()
    rec = run_by_id(v, "long-kill", r["run"])
    t.check(rec and rec["status"] == "interrupted",
            "kill -9 of vigild mid-run, restart: that run is interrupted",
            json.dumps(rec))
    # missed = run-once (the default): the interrupted run counts as
    # missed, and one catch-up run starts with the service.
    t0 = time.monotonic()
    t.check(wait_no_run(v, "long-kill", timeout=120),
            "the catch-up run ends")
    t.info("the completing run took %.1f s" % (time.monotonic() - t0))
    runs = v.history("long-kill")
    t.check([(x["status"], x["trigger"]) for x in runs] ==
            [("ok", "missed"), ("interrupted", "manual")],
            "history of the job: interrupted, then a catch-up run (trigger "
            "missed) that ended ok", json.dumps(runs, indent=1))
    diffs, n = treecmp.compare_trees(paths["long"], paths["long-kill"])
    t.check(not diffs, "after it the destination equals the source (%d "
            "entries)" % n, "\n".join(diffs[:20]))
    left = find_tmp_leftovers(paths["long-kill"])
    t.check(not left, "no .vigil-tmp-* is left (%d)" % len(left),
            "\n".join(x.decode("utf-8", "replace") for x in left[:20]))


def hostile_clients(t, v, svc):
    def conn():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(svc.socket)       # blocking: a full backlog waits
        s.settimeout(5)
        return s

    def dropped(s):
        """The server closes s (maybe after an error frame)."""
        try:
            while True:
                hdr = recv_exact(s, 4)
                if hdr is None:
                    return True
                n = struct.unpack(">I", hdr)[0]
                if n > (1 << 20) or recv_exact(s, n) is None:
                    return True
        except socket.timeout:
            return False
        except OSError:
            return True
        finally:
            s.close()

    hello = frame({"id": 1, "method": "hello",
                   "params": {"version": 1, "role": "client"}})
    cases = [
        ("a zero-length frame", b"\x00\x00\x00\x00"),
        ("a 0xFFFFFFFF length prefix", b"\xff\xff\xff\xff"),
        ("a length just over 1 MiB", struct.pack(">I", (1 << 20) + 1)),
        ("garbage JSON", frame(b"{\"id\": 1, \"method\": ")),
        ("a JSON array", frame(b"[1, 2, 3]")),
        ("invalid UTF-8", frame(b"{\"id\": 1, \"method\": \"\xff\xfe\"}")),
        ("a request before hello", frame({"id": 1, "method": "status"})),
        ("hello with a wrong version", frame({"id": 1, "method": "hello",
                                              "params": {"version": 99,
                                                         "role": "client"}})),
        ("garbage after hello", hello + frame(b"not json at all")),
        ("a zero-length frame after hello", hello + b"\x00\x00\x00\x00"),
    ]
    rss0 = proc_status(svc.pid, "VmRSS")
    for what, data in cases:
        s = conn()
        s.sendall(data)
        d = dropped(s)
        st = v.status()
        t.check(d and svc.alive() and st["service"]["pid"] == svc.pid,
                "bad frame (%s): that client is dropped, the service answers"
                % what)
    # A half frame, then the client goes away.
    s = conn()
    s.sendall(hello + b"\x00\x00\x01\x00{\"id\"")
    s.close()
    rss1 = proc_status(svc.pid, "VmRSS")
    t.check(v.status()["service"]["pid"] == svc.pid,
            "a client that leaves mid-frame does not hurt the service")
    t.info("RSS across the bad frames: %d -> %d kB" % (rss0, rss1))

    # 200 connections from one uid: those over the per-uid cap are refused
    # and closed; the service lives; all is well once they are gone.
    socks = []
    for i in range(200):
        try:
            socks.append(conn())
        except OSError as e:
            t.info("connection %d: %s" % (i, e))
            break
    time.sleep(0.5)
    refused = 0
    for s in socks:
        s.setblocking(False)
        try:
            b = s.recv(65536)
            # A refusal is an error frame then EOF, or EOF at once.
            refused += 1 if b == b"" or b"limit" in b else 0
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
    t.info("200 connections from one uid: %d refused by the per-uid cap"
           % refused)
    # server.h: 32 connections per uid by default.
    t.check(len(socks) == 200 and refused == 200 - 32 and svc.alive(),
            "200 connections from one uid: the 168 over the cap of 32 are "
            "refused, the service lives (%d refused)" % refused)
    for s in socks:
        s.close()
    time.sleep(0.3)
    t.check(v.status()["service"]["pid"] == svc.pid,
            "after the 200 connections close, the service answers")


def socket_choice(t, v, svc_b, sock_a):
    """--socket beats VIGIL_SOCKET, which beats the user-mode socket."""
    env = dict(v.env)
    env["VIGIL_SOCKET"] = svc_b.socket
    p = subprocess.run([v.bin, "status", "--json"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pid = json.loads(p.stdout)["service"]["pid"] if p.returncode == 0 \
        else None
    t.check(pid == svc_b.pid, "VIGIL_SOCKET names the service to use",
            describe(p))
    env["VIGIL_SOCKET"] = sock_a
    p = subprocess.run([v.bin, "--socket", svc_b.socket, "status", "--json"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pid = json.loads(p.stdout)["service"]["pid"] if p.returncode == 0 \
        else None
    t.check(pid == svc_b.pid, "--socket wins over VIGIL_SOCKET", describe(p))


def main(t):
    if not any(os.access(os.path.join(d, "strace"), os.X_OK)
               for d in os.environ.get("PATH", "").split(":")):
        t.skip("strace is needed to count idle wake-ups")
    a_svc, va, due, a_src, a_dst = start_scheduled(t)

    many = fast_dir(t)
    paths = {"ok": t.path("src-ok"), "ok-dst": t.path("dst-ok"),
             "fifo": t.path("src-fifo"), "gone": t.path("src-gone"),
             "long": os.path.join(many, "src-long")}
    make_small(paths["ok"])
    make_small(paths["fifo"], 2)
    os.mkfifo(os.path.join(paths["fifo"], "a-pipe"))
    os.makedirs(paths["gone"])
    t0 = time.monotonic()
    make_long(paths["long"], NFILES)
    t.info("long source: %d files written in %.1f s"
           % (NFILES, time.monotonic() - t0))
    jobs = job_ini("ok", paths["ok"], paths["ok-dst"])
    jobs += job_ini("fifo", paths["fifo"], t.path("dst-fifo"))
    jobs += job_ini("gone", paths["gone"], t.path("dst-gone"))
    for name, extra in (("cancel", {}), ("maxrt", {"max_runtime": "2s",
                                                   "verify": "yes"}),
                        ("worker", {}), ("term", {}), ("kill", {})):
        paths["long-" + name] = os.path.join(many, "dst-long-" + name)
        jobs += job_ini("long-" + name, paths["long"],
                        paths["long-" + name], **extra)

    sock = t.path("s.sock")
    svc = Service(t, ["--user", "--state-dir", t.path("state"), "--socket",
                      sock], sock, name="vigild-B").start()
    v = SockVigil(t, sock)
    v.import_jobs(jobs)
    # A second import while the service holds jobs: it reloads them and
    # keeps the unchanged ones.
    v.import_jobs(job_ini("extra", paths["ok"], t.path("dst-extra")),
                  name="extra.ini")
    st = v.status()
    t.check(svc.alive() and len(st["jobs"]) == 9 and
            "extra" in [j["name"] for j in st["jobs"]],
            "a second import while the service runs: it reloads its jobs "
            "(%d) and goes on" % len(st["jobs"]), svc.log())

    def timed(fn, *a):
        t0 = time.monotonic()
        fn(*a)
        t.info("(%s: %.1f s)" % (fn.__name__, time.monotonic() - t0))

    timed(socket_choice, t, v, svc, a_svc.socket)
    timed(exit_codes, t, v, paths)
    timed(shapes, t, v)
    timed(dry_run, t, v, paths)
    timed(cancel_and_queue, t, v)
    timed(max_runtime, t, v)
    timed(worker_killed, t, v, svc)
    timed(sigterm_midrun, t, v, svc)
    timed(kill9_midrun, t, v, svc, paths)
    timed(hostile_clients, t, v, svc)
    timed(idle_costs, t, svc, "B")

    # A: a few requests, then idle; then its scheduled run.
    for _ in range(3):
        va.status()
        va.history()
    idle_costs(t, a_svc, "A")
    check_scheduled(t, a_svc, va, due, a_src, a_dst)

    rc = svc.stop()
    t.check(rc == 0, "B stops cleanly on SIGTERM (exit %r)" % rc)
    rc = a_svc.stop()
    t.check(rc == 0, "A stops cleanly on SIGTERM (exit %r)" % rc)
    for s in (svc, a_svc):
        log = s.log()
        t.check(b"Sanitizer" not in log and b"runtime error" not in log,
                "%s: no sanitizer report in its log" % s.name, log)


if __name__ == "__main__":
    Test("service", "the real vigild in user mode: schedule, runs, cancel, "
         "limits, crashes, hostile clients, idle costs").main(main)
