#!/usr/bin/env python3
"""test_auth.py: authorisation of the system-mode service, as root.

vigild runs as root in system mode (`vigild --state-dir T --socket
T/s.sock`, socket 0666).  Three unprivileged test users: alice and bob own
jobs; carol is in the admin group `vigil`.  Every client is started as its
user with runuser, so the service knows it only by SO_PEERCRED.

  - alice's jobs run as alice: the copies are hers, and a file in her
    source that only root may read is reported unreadable (partial) and
    never copied;
  - bob tries every request against alice's jobs and runs: jobs show, run
    (with and without --wait, --dry-run), history, log, cancel of her
    running run, import with owner = alice, import --replace, export, jobs
    list, status, restore, and the progress events of her run.  Each is
    refused with a clear error or shows only bob's own business, and
    nothing of alice's changes (her jobs file, her runs, her destination);
  - a job of bob's that names alice's source copies nothing of hers;
  - root and carol (group vigil) see everyone's jobs and runs.

Needs root (useradd, runuser); exit 77 otherwise, a failure under CI=true."""

import grp
import json
import os
import pwd
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import treecmp  # noqa: E402
from vtest import (RC_ERROR, RC_OK, RC_PARTIAL, Fatal, Service,  # noqa: E402,E501
                   SockVigil, Test, describe, have_root, job_ini, rmtree)

ALICE, BOB, CAROL = "vigilalice", "vigilbob", "vigilcarol"
ADMIN_GROUP = "vigil"
NLONG = 60000

# Events a subscriber as another user must never see, read by a small
# client that runs as that user.  It subscribes, then collects frames until
# it has seen a run-finished event (argv[3] == "finish"), until a line or
# EOF arrives on stdin (argv[3] == "stdin"), or until argv[2] seconds pass.
# A fixed listening window lost the run's last events on a slow (sanitizer)
# build.
LISTENER = r"""
import json, select, socket, struct, sys, time
path, secs, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
def send(o):
    b = json.dumps(o).encode()
    s.sendall(struct.pack(">I", len(b)) + b)
send({"id": 1, "method": "hello", "params": {"version": 1, "role": "client"}})
send({"id": 2, "method": "subscribe", "params": {"topics": [
    "progress", "run-started", "run-finished", "job-changed", "alert"]}})
print("subscribed", flush=True)
buf, msgs, deadline = b"", [], time.monotonic() + secs
done = False
watch = [s, sys.stdin] if mode == "stdin" else [s]
while not done and time.monotonic() < deadline:
    r, _, _ = select.select(watch, [], [],
                            max(0.01, deadline - time.monotonic()))
    if sys.stdin in r:
        break
    if s not in r:
        continue
    c = s.recv(65536)
    if not c:
        break
    buf += c
    while len(buf) >= 4:
        n = struct.unpack(">I", buf[:4])[0]
        if len(buf) < 4 + n:
            break
        m = json.loads(buf[4:4 + n])
        msgs.append(m)
        buf = buf[4 + n:]
        if mode == "finish" and m.get("event") == "run-finished":
            done = True
print(json.dumps(msgs))
"""


def ensure_users(t):
    try:
        grp.getgrnam(ADMIN_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "-r", ADMIN_GROUP], check=True)
    for u in (ALICE, BOB, CAROL):
        try:
            pwd.getpwnam(u)
        except KeyError:
            subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin",
                            "-d", "/nonexistent", u], check=True)
    if CAROL not in grp.getgrnam(ADMIN_GROUP).gr_mem:
        subprocess.run(["usermod", "-a", "-G", ADMIN_GROUP, CAROL],
                       check=True)
    for u in (ALICE, BOB):
        if u in grp.getgrnam(ADMIN_GROUP).gr_mem:
            raise Fatal("%s is in group %s: the test needs it out"
                        % (u, ADMIN_GROUP))


def owned_dir(path, user, mode=0o700):
    os.makedirs(path, exist_ok=True)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)
    return path


def write_as(path, text, user, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)


def refused(t, p, what, words):
    """A refusal: exit 1, and stderr says what is wrong."""
    err = p.stderr.decode("utf-8", "replace").lower()
    t.check(p.returncode == RC_ERROR and any(w in err for w in words),
            "bob: %s is refused (exit %d: %s)" % (
                what, p.returncode, err.strip().splitlines()[0]
                if err.strip() else "no message"), describe(p))


def alice_state(va, dsts):
    """What must not change: alice's jobs file, her runs, her copies."""
    export = va.ok("jobs", "export").stdout
    runs = va.history()
    trees = {d: treecmp.scan(d, skip_vigil=False, xattrs=False)
             for d in dsts}
    return export, runs, trees


def main(t):
    if not have_root():
        t.skip("needs root: creates test users and runs vigild as root")
    ensure_users(t)
    uid = {u: pwd.getpwnam(u).pw_uid for u in (ALICE, BOB, CAROL)}

    # Fixtures: each user's folders are theirs, 0700.
    ah = owned_dir(t.path("alice"), ALICE)
    bh = owned_dir(t.path("bob"), BOB)
    asrc = owned_dir(os.path.join(ah, "src"), ALICE)
    for i in range(5):
        write_as(os.path.join(asrc, "note%d.txt" % i), "alice %d\n" % i,
                 ALICE)
    # Only root may read this one; alice's worker must not copy it.
    with open(os.path.join(asrc, "root-only.txt"), "w") as f:
        f.write("root's secret\n")
    os.chmod(os.path.join(asrc, "root-only.txt"), 0o600)
    a2src = owned_dir(os.path.join(ah, "src2"), ALICE)
    write_as(os.path.join(a2src, "plan.txt"), "alice's plan\n", ALICE)
    bsrc = owned_dir(os.path.join(bh, "src"), BOB)
    write_as(os.path.join(bsrc, "bob.txt"), "bob\n", BOB)

    # alice's long source, on tmpfs when there is one.
    import tempfile
    base = "/dev/shm" if os.path.isdir("/dev/shm") else t.tmp
    many = tempfile.mkdtemp(prefix="vigil-auth-", dir=base)
    os.chmod(many, 0o755)
    t.cleanups.insert(0, lambda: rmtree(many))
    along = os.path.join(many, "long")
    os.mkdir(along)
    for d in range(NLONG // 1000):
        sub = os.path.join(along, "d%02d" % d)
        os.mkdir(sub)
        for i in range(1000):
            with open(os.path.join(sub, "f%04d" % i), "w") as f:
                f.write("%d\n" % i)
    subprocess.run(["chown", "-R", "%s:" % ALICE, along], check=True)
    os.chmod(along, 0o700)
    along_dst = owned_dir(os.path.join(many, "long-dst-parent"), ALICE)

    adst = os.path.join(ah, "dst")
    a2dst = os.path.join(ah, "dst2")
    bdst = os.path.join(bh, "dst")
    ajobs = (job_ini("docs", asrc, adst) + job_ini("alicejob", a2src, a2dst)
             + job_ini("alicelong", along, os.path.join(along_dst, "d")))
    bjobs = job_ini("docs", bsrc, bdst)
    write_as(os.path.join(ah, "jobs.ini"), ajobs, ALICE, 0o600)
    write_as(os.path.join(bh, "jobs.ini"), bjobs, BOB, 0o600)

    sock = t.path("s.sock")
    svc = Service(t, ["--state-dir", t.path("state"), "--socket", sock],
                  sock, name="vigild-system").start()
    mode = os.stat(sock).st_mode & 0o777
    t.check(mode == 0o666, "system mode: the socket is 0666, auth is by "
            "SO_PEERCRED (got %o)" % mode)
    va = SockVigil(t, sock, as_user=ALICE)
    vb = SockVigil(t, sock, as_user=BOB)
    vc = SockVigil(t, sock, as_user=CAROL)
    vr = SockVigil(t, sock)
    va.ok("jobs", "import", os.path.join(ah, "jobs.ini"))
    vb.ok("jobs", "import", os.path.join(bh, "jobs.ini"))

    # -- alice's runs run as alice ------------------------------------------
    p = va.run_expect("docs", rc=RC_PARTIAL, what="alice: a source with a "
                      "file only root may read")
    out = p.stdout.decode("utf-8", "replace")
    t.check("root-only.txt" in out and "unreadable" in out,
            "alice: the summary names root-only.txt as unreadable",
            describe(p))
    t.check(not os.path.exists(os.path.join(adst, "root-only.txt")),
            "alice: the root-only file was not copied")
    bad = []
    for d, _, fs in os.walk(adst):
        for n in [d] + [os.path.join(d, f) for f in fs]:
            if os.lstat(n).st_uid != uid[ALICE]:
                bad.append(n)
    t.check(os.path.exists(os.path.join(adst, "note0.txt")) and not bad,
            "alice: every copy in her destination is owned by alice (the "
            "worker ran as her)", "\n".join(bad[:10]))
    va.run_expect("alicejob", rc=RC_OK, what="alice")
    arun = va.last_run("alicejob")["id"]
    vb.run_expect("docs", rc=RC_OK, what="bob, his own job")
    brun = vb.last_run("docs")["id"]

    before = alice_state(va, [adst, a2dst])

    # -- bob against alice's running run ------------------------------------
    # A python3 bob may run (the test's own may live under /root).
    py = next((x for x in ("/usr/bin/python3", "/usr/local/bin/python3")
               if os.access(x, os.X_OK)), sys.executable)
    lis = subprocess.Popen(["runuser", "-u", BOB, "--", py,
                            "-c", LISTENER, sock, "120", "stdin"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    # The same listener as alice proves that there are events to hear.
    alis = subprocess.Popen(["runuser", "-u", ALICE, "--", py,
                             "-c", LISTENER, sock, "120", "finish"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lis.stdout.readline()   # "subscribed"
    alis.stdout.readline()
    time.sleep(0.2)
    p = va.cmd("run", "alicelong")
    lrun = None
    end = time.monotonic() + 20
    while time.monotonic() < end:
        st = vr.status()
        r = [x for x in st["running"] if x.get("job") == "alicelong"]
        if r and (r[0].get("progress") or {}).get("copied", 0) > 0:
            lrun = r[0]["run"]
            break
        time.sleep(0.05)
    if lrun is None:
        raise Fatal("alice's long run did not start: %s" % describe(p))
    p = vb.cmd("cancel", str(lrun))
    refused(t, p, "cancel of alice's running run %d" % lrun,
            ["not running", "not found", "permission"])
    st = vb.status()
    t.check(not [j for j in st["jobs"] if j.get("owner") != BOB] and
            not [r for r in st["running"] if r.get("job") == "alicelong"],
            "bob: status lists none of alice's jobs and not her running "
            "run", json.dumps(st, indent=1))
    st = vr.status()
    t.check([x["job"] for x in st["running"]] == ["alicelong"],
            "root: status shows alice's run still running after bob's "
            "cancel", json.dumps(st["running"]))
    end = time.monotonic() + 60
    while time.monotonic() < end and [
            x for x in vr.status()["running"] if x["run"] == lrun]:
        time.sleep(0.1)
    rec = [x for x in va.history("alicelong") if x["id"] == lrun]
    t.check(rec and rec[0]["status"] == "ok",
            "alice's long run ended ok, not cancelled by bob",
            json.dumps(rec))
    aout = aerr = b""
    try:
        aout, aerr = alis.communicate(timeout=90)
        amsgs = json.loads(aout.decode().strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        alis.kill()
        amsgs = []
        t.check(False, "alice's event listener: %s" % e,
                b"stdout:\n" + aout + b"\nstderr:\n" + aerr)
    out = err = b""
    try:
        # The service writes each event to every subscriber in one pass:
        # once alice's listener has her run-finished, bob's has been sent
        # everything it would ever get about that run.
        time.sleep(0.5)
        out, err = lis.communicate(input=b"stop\n", timeout=30)
        msgs = json.loads(out.decode().strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        lis.kill()
        msgs = None
        t.check(False, "bob's event listener: %s" % e,
                b"stdout:\n" + out + b"\nstderr:\n" + err)
    topics = sorted({m["event"] for m in amsgs if "event" in m and
                     m.get("data", {}).get("run") == lrun})
    t.check(topics == ["progress", "run-finished", "run-started"],
            "alice, subscribed the same way, hears her run's events (%s)"
            % ", ".join(topics))
    if msgs is not None:
        evs = [m for m in msgs if "event" in m]
        sub = [m for m in msgs if m.get("id") == 2]
        t.check(sub and sub[0].get("ok") is True and not evs,
                "bob, subscribed to progress and run events, hears nothing "
                "of alice's run (%d events)" % len(evs),
                json.dumps(msgs[:5], indent=1))

    # -- every other request ------------------------------------------------
    nf = ["no job", "not found", "permission", "may not", "only root"]
    refused(t, vb.cmd("jobs", "show", "alicejob"), "jobs show alicejob", nf)
    refused(t, vb.cmd("jobs", "show", "%s:docs" % ALICE),
            "jobs show %s:docs" % ALICE, nf)
    refused(t, vb.cmd("run", "alicejob", "--wait"), "run alicejob --wait", nf)
    refused(t, vb.cmd("run", "alicejob"), "run alicejob", nf)
    refused(t, vb.cmd("run", "alicejob", "--dry-run"),
            "run alicejob --dry-run", nf)
    refused(t, vb.cmd("run", "%s:docs" % ALICE, "--wait"),
            "run %s:docs" % ALICE, nf)
    refused(t, vb.cmd("history", "alicejob"), "history alicejob", nf)
    refused(t, vb.cmd("history", "%s:docs" % ALICE),
            "history %s:docs" % ALICE, nf)
    refused(t, vb.cmd("log", str(arun)), "log of alice's run %d" % arun,
            nf + ["no run"])
    rdir = owned_dir(os.path.join(bh, "restore-to"), BOB)
    refused(t, vb.cmd("restore", "alicejob", "--to", rdir),
            "restore alicejob --to his folder", nf)
    refused(t, vb.cmd("restore", "%s:docs" % ALICE, "--to", rdir),
            "restore %s:docs --to his folder" % ALICE, nf)
    t.check(os.listdir(rdir) == [], "bob: nothing was restored for him")

    h = vb.history()
    t.check(h and all(r.get("owner") == BOB for r in h) and
            brun in [r["id"] for r in h],
            "bob: history lists only his own runs (%d)" % len(h),
            json.dumps(h, indent=1))
    jl = vb.json("jobs", "list", "--json")
    t.check([(j.get("name"), j.get("owner")) for j in jl] ==
            [("docs", BOB)], "bob: jobs list shows only his job",
            json.dumps(jl, indent=1))
    exp = vb.ok("jobs", "export").stdout.decode("utf-8", "replace")
    t.check(bsrc in exp and asrc not in exp and a2src not in exp and
            "alicejob" not in exp,
            "bob: jobs export holds only his jobs", exp)

    # Import as alice: owner = alice in bob's file.
    f = os.path.join(bh, "as-alice.ini")
    write_as(f, job_ini("planted", bsrc, os.path.join(bh, "planted"),
                        owner=ALICE), BOB)
    refused(t, vb.cmd("jobs", "import", f), "jobs import with owner = "
            "alice", ["owner", "root"])
    write_as(f, job_ini("docs", bsrc, os.path.join(bh, "planted"),
                        owner=ALICE) + job_ini("alicejob", bsrc, bdst), BOB)
    refused(t, vb.cmd("jobs", "import", "--replace", f),
            "jobs import --replace of a file naming alice as owner",
            ["owner", "root"])
    # --replace of his own file must leave alice's jobs alone.
    f2 = os.path.join(bh, "replace.ini")
    write_as(f2, bjobs, BOB)
    vb.ok("jobs", "import", "--replace", f2)
    # A job of bob's that reads alice's source copies nothing of hers.
    f3 = os.path.join(bh, "snoop.ini")
    sdst = os.path.join(bh, "snoop")
    write_as(f3, job_ini("snoop", asrc, sdst), BOB)
    p = vb.cmd("jobs", "import", f3)
    if p.returncode == RC_OK:
        p = vb.run("snoop")
        t.check(p.returncode != RC_OK, "bob: a job of his naming alice's "
                "source does not end ok (exit %d)" % p.returncode,
                describe(p))
    got = []
    if os.path.isdir(sdst):
        for d, _, fs in os.walk(sdst):
            got += [x for x in fs if x.startswith("note")]
    t.check(not got, "bob: his job naming alice's source copied none of "
            "her files", "\n".join(got))

    after = alice_state(va, [adst, a2dst])
    t.check(after[0] == before[0], "alice: her jobs file is unchanged",
            before[0] + b"\n----\n" + after[0])
    old_ids = {r["id"]: r for r in before[1]}
    now_ids = {r["id"]: r for r in after[1]}
    t.check(all(now_ids.get(i) == r for i, r in old_ids.items()) and
            set(now_ids) - set(old_ids) == {lrun},
            "alice: her runs are unchanged (the only new one is her own "
            "long run)", json.dumps(after[1], indent=1))
    diffs = []
    for d in before[2]:
        diffs += treecmp.compare(before[2][d], after[2][d], owner=True)
    t.check(not diffs, "alice: her destinations are unchanged",
            "\n".join(diffs[:20]))

    # -- root and the vigil group see everything -----------------------------
    for who, v in (("root", vr), ("carol (group vigil)", vc)):
        st = v.status()
        owners = sorted({j.get("owner") for j in st["jobs"]})
        t.check(owners == sorted([ALICE, BOB]),
                "%s: status lists alice's and bob's jobs" % who,
                json.dumps(st["jobs"], indent=1))
        h = v.history()
        t.check({r.get("owner") for r in h} >= {ALICE, BOB},
                "%s: history lists everyone's runs" % who)
        p = v.cmd("jobs", "show", "%s:alicejob" % ALICE, "--json")
        t.check(p.returncode == RC_OK and b"alicejob" in p.stdout,
                "%s: jobs show %s:alicejob works" % (who, ALICE),
                describe(p))
        p = v.cmd("log", str(arun), "--json")
        t.check(p.returncode == RC_OK, "%s: log of alice's run works" % who,
                describe(p))

    rc = svc.stop()
    t.check(rc == 0, "the system-mode service stops cleanly (exit %r)" % rc)
    log = svc.log()
    t.check(b"Sanitizer" not in log and b"runtime error" not in log,
            "no sanitizer report in vigild's log", log)


if __name__ == "__main__":
    Test("auth", "authorisation of the system-mode service: every "
         "cross-user request is refused").main(main)
