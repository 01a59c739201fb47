#!/usr/bin/env python3
"""test_capture_run.py: snapshot-safe copying through the real service.

As root, makes a btrfs, an XFS (reflink=1) and an ext4 image, loop-mounts
them and runs jobs with the real `vigild` (system mode, no session agent:
nobody is logged on, so every file goes to the fallback) and the real
`vigild --run-once`:

  1. the decision: with snapshot = auto the run record (`vigil run --wait
     --json`) says path `fallback` and counts the files as snapshot-btrfs on
     btrfs, reflink on XFS, verified on ext4; snapshot = btrfs on ext4
     fails the run before copying, saying why; logged-off = copy takes no
     snapshot (verified copy);
  2. with a writer that rewrites one file and appends to another (embedded
     sequence numbers, snapdriver), the copies on btrfs and XFS are each one
     moment, and afterwards no snapshot and no staging folder remains;
  3. a live SQLite database with a process committing in WAL mode: the
     copy passes integrity_check, its row count matches its own counter
     (one commit), it counts as sqlite-backup, and its -wal and -shm are
     not copied and the run's warnings name them;
  4. the worker killed mid-copy: the service removes the snapshot when the
     run ends; vigild itself killed mid-copy: the snapshot stays until the
     next start of the service removes it; `vigild --run-once` killed
     mid-copy: the next --run-once removes it.

Needs root, mkfs.btrfs, mkfs.xfs, mkfs.ext4, sqlite3 and loop mounts; exit
77 otherwise (a failure under CI=true)."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vtest import (Fatal, Service, SockVigil, Test, Vigil,  # noqa: E402
                   describe, have_root, job_ini, vigild_children)

RC_OK, RC_PARTIAL = 0, 3

SQL_WRITER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA wal_autocheckpoint = 0")
i = 0
print("ready", flush=True)
while True:
    i += 1
    db.execute("BEGIN IMMEDIATE")
    for k in range(i % 7 + 1):
        db.execute("INSERT INTO t (seq, pad) VALUES (?, randomblob(200))",
                   (i,))
    db.execute("UPDATE state SET txn = ?, n = n + ?", (i, i % 7 + 1))
    db.execute("COMMIT")
    time.sleep(0.001)
"""


def add_args(ap):
    ap.add_argument("--snapdriver", required=True)


def sh(*argv, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise Fatal("%s failed: %s" % (" ".join(argv), describe(p)))
    return p


def subvolumes(mnt):
    p = sh("btrfs", "subvolume", "list", mnt)
    return sorted(line.split()[-1] for line in
                  p.stdout.decode().splitlines() if line.strip())


def staging_left(mnt):
    return [n for n in os.listdir(mnt) if n.startswith(".vigil-staging")]


class Writer:
    """snapdriver's writer: rewrite.dat and append.log in a folder."""

    def __init__(self, t, drv, folder, sync=False):
        self.out = open(t.path("writer-%d.out" % time.monotonic_ns()), "w+")
        self.p = subprocess.Popen([drv, "writer", folder] +
                                  (["--sync"] if sync else []),
                                  stdout=self.out, stderr=self.out)
        t.cleanups.append(self.stop)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            self.out.seek(0)
            if "ready" in self.out.read():
                time.sleep(0.3)
                return
            time.sleep(0.05)
        raise Fatal("the writer did not start")

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def run_json(t, v, job, rc=None):
    p = v.cmd("--json", "run", job, "--wait", timeout=600)
    try:
        rec = json.loads(p.stdout)
    except ValueError:
        raise Fatal("run %s: no JSON record\n%s" % (job, describe(p)))
    if rc is not None:
        t.check(p.returncode == rc, "run %s exits %d" % (job, rc),
                describe(p))
    return rec


def warnings_of(rec):
    return (rec.get("details") or {}).get("warnings") or []


def check_consistent(t, drv, folder, mode, what):
    p = subprocess.run([drv, "check", folder, mode], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    t.check(p.returncode == 0, "%s: %s" % (what, p.stdout.decode().strip()),
            describe(p))


def make_big(folder, n, size):
    os.makedirs(folder, exist_ok=True)
    block = os.urandom(size)
    for i in range(n):
        with open(os.path.join(folder, "big%04d" % i), "wb") as f:
            f.write(block)


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise Fatal("timed out waiting for %s" % what)


def body(t):
    if not have_root():
        t.skip("not root: loop mounts need root")
    for tool in ("mkfs.btrfs", "mkfs.xfs", "mkfs.ext4", "btrfs", "mount",
                 "umount", "sqlite3"):
        if shutil.which(tool) is None:
            t.skip("%s is missing (apt-get install btrfs-progs xfsprogs "
                   "e2fsprogs sqlite3)" % tool)
    drv = t.args.snapdriver
    mnts = {}
    for fs, size, mkfs in (
            ("b", 1536, ["mkfs.btrfs", "-q"]),
            ("x", 768, ["mkfs.xfs", "-q", "-m", "reflink=1"]),
            ("e", 1536, ["mkfs.ext4", "-q", "-F"])):
        img, mnt = t.path(fs + ".img"), t.path(fs)
        with open(img, "wb") as f:
            f.truncate(size << 20)
        os.mkdir(mnt)
        if subprocess.run(mkfs + [img], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            t.skip("%s failed" % mkfs[0])
        p = subprocess.run(["mount", "-o", "loop", img, mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            t.skip("cannot loop-mount %s: %s" % (mkfs[0],
                                                 p.stderr.decode().strip()))
        t.cleanups.append(lambda m=mnt: subprocess.run(
            ["umount", "-l", m], stderr=subprocess.DEVNULL))
        mnts[fs] = mnt
    B, X, E = mnts["b"], mnts["x"], mnts["e"]
    sh("btrfs", "-q", "subvolume", "create", B + "/sv")

    # ---- sources ----
    srcb, srcx, srce = B + "/sv/data", X + "/src", E + "/src"
    for d in (srcb, srcx, srce):
        os.makedirs(d + "/sub")
        for i in range(5):
            with open("%s/sub/f%d" % (d, i), "w") as f:
                f.write("quiet %d\n" % i)
    dbdir = E + "/db"
    os.mkdir(dbdir)
    db = dbdir + "/live.db"
    c = sqlite3.connect(db)
    c.executescript(
        "PRAGMA journal_mode = WAL;"
        "CREATE TABLE t (seq INTEGER, pad BLOB);"
        "CREATE TABLE state (txn INTEGER, n INTEGER);"
        "CREATE TABLE bulk (b BLOB);"
        "INSERT INTO state VALUES (0, 0);"
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        "WHERE x < 5000) INSERT INTO bulk SELECT randomblob(4000) FROM c;")
    c.close()
    bigb = B + "/sv/big"
    make_big(bigb, 300, 1 << 20)
    out = E + "/out"
    os.mkdir(out)

    state = t.path("state")
    os.mkdir(state, 0o700)
    sock = state + "/s.sock"
    jobs = (job_ini("onbtrfs", srcb, out + "/b") +
            job_ini("onxfs", srcx, out + "/x") +
            job_ini("onext4", srce, out + "/e") +
            job_ini("livedb", dbdir, out + "/db") +
            job_ini("bigbtrfs", bigb, out + "/big") +
            job_ini("wantbtrfs", srce, out + "/wb", snapshot="btrfs") +
            job_ini("copyonbtrfs", srcb, out + "/cb", logged_off="copy"))
    svc = Service(t, ["--state-dir", state, "--socket", sock], sock).start()
    v = SockVigil(t, sock)
    jpath = t.path("jobs.ini")
    with open(jpath, "w") as f:
        f.write(jobs)
    v.ok("jobs", "import", jpath)

    # ---- 1 and 2: the decision, and one moment per file ----
    w = Writer(t, drv, srcb, sync=True)
    rec = run_json(t, v, "onbtrfs", RC_OK)
    w.stop()
    cap = rec.get("capture") or {}
    t.check(rec.get("path") == "fallback",
            "nobody logged on: path fallback (%s)" % rec.get("path_reason"),
            rec)
    t.check(set(cap) == {"snapshot-btrfs"} and cap["snapshot-btrfs"] == 7,
            "btrfs: auto chose the btrfs snapshot, 7 files snapshot-btrfs "
            "(%r)" % cap, rec)
    t.check("btrfs snapshot" in (rec.get("path_reason") or ""),
            "btrfs: the record says why", rec)
    check_consistent(t, drv, out + "/b", "--ordered", "btrfs copy")
    t.check(subvolumes(B) == ["sv"] and
            not os.path.exists(B + "/.vigil-snapshots"),
            "btrfs: no snapshot remains (%r)" % subvolumes(B))

    w = Writer(t, drv, srcx)
    rec = run_json(t, v, "onxfs", RC_OK)
    w.stop()
    cap = rec.get("capture") or {}
    t.check(set(cap) == {"reflink"} and cap["reflink"] == 7,
            "xfs: auto chose reflink, 7 files reflink (%r)" % cap, rec)
    check_consistent(t, drv, out + "/x", "--per-file", "xfs copy")
    t.check(staging_left(X) == [], "xfs: no staging folder remains (%r)"
            % staging_left(X))

    rec = run_json(t, v, "onext4", RC_OK)
    cap = rec.get("capture") or {}
    t.check(set(cap) == {"verified"} and cap["verified"] == 5,
            "ext4: auto chose the verified copy, 5 files verified (%r)" % cap,
            rec)
    t.check("no reflink: ext4 cannot clone" in (rec.get("path_reason") or ""),
            "ext4: the record says why no better method: %s"
            % rec.get("path_reason"), rec)

    # an explicit method that cannot be used fails the run, saying why;
    # logged-off = copy takes no snapshot
    rec = run_json(t, v, "wantbtrfs", 4)
    t.check("snapshot = btrfs, but not btrfs" in (rec.get("message") or "")
            and not os.path.exists(out + "/wb"),
            "snapshot = btrfs on ext4: failed before copying: %s"
            % rec.get("message"), rec)
    rec = run_json(t, v, "copyonbtrfs", RC_OK)
    cap = rec.get("capture") or {}
    t.check(set(cap) == {"verified"} and subvolumes(B) == ["sv"],
            "logged-off = copy on btrfs: verified copy, no snapshot (%r)"
            % cap, rec)

    # ---- 3: a live SQLite database ----
    wout = open(t.path("sqlwriter.out"), "w+")
    sw = subprocess.Popen([sys.executable, "-c", SQL_WRITER, db],
                          stdout=wout, stderr=wout)
    t.cleanups.append(lambda: (sw.kill(), sw.wait()))
    wait_for(lambda: os.path.exists(db + "-wal") and
             os.path.getsize(db + "-wal") > 0, 20, "the WAL writer")
    time.sleep(0.5)
    rec = run_json(t, v, "livedb", RC_OK)
    n_after = sqlite3.connect(db, timeout=10).execute(
        "SELECT txn FROM state").fetchone()[0]
    sw.kill()
    sw.wait()
    cap = rec.get("capture") or {}
    t.check(cap.get("sqlite-backup") == 1 and set(cap) == {"sqlite-backup"},
            "live db: captured through the SQLite backup API (%r)" % cap, rec)
    copy = out + "/db/live.db"
    t.check(not os.path.exists(copy + "-wal") and
            not os.path.exists(copy + "-shm"),
            "live db: its -wal and -shm were not copied")
    ws = warnings_of(rec)
    t.check(any("live.db-wal: skipped" in x for x in ws) and
            any("live.db-shm: skipped" in x for x in ws),
            "live db: the run says it skipped them", ws)
    cc = sqlite3.connect("file:%s?mode=ro" % copy, uri=True)
    ic = cc.execute("PRAGMA integrity_check").fetchone()[0]
    txn, n = cc.execute("SELECT txn, n FROM state").fetchone()
    cnt = cc.execute("SELECT count(*) FROM t").fetchone()[0]
    cc.close()
    t.check(ic == "ok", "live db: the copy passes integrity_check (%s)" % ic)
    t.check(cnt == n and txn > 0 and txn <= n_after,
            "live db: one commit's worth: %d rows = the counter %d at "
            "transaction %d (writer at %d after the run)"
            % (cnt, n, txn, n_after))

    # ---- 4: killed mid-copy ----
    def snapshot_taken():
        return len(subvolumes(B)) > 1

    def copying(dest):
        return os.path.isdir(dest) and len(os.listdir(dest)) > 0

    # the worker killed: the service removes the snapshot at the run's end
    p = v.popen("run", "bigbtrfs")
    p.communicate(timeout=60)
    wait_for(lambda: snapshot_taken() and copying(out + "/big"), 60,
             "the big run to copy")
    kids = vigild_children(svc.pid)
    t.check(len(kids) == 1, "one worker runs (%r)" % kids)
    for k in kids:
        os.kill(k, signal.SIGKILL)
    wait_for(lambda: not vigild_children(svc.pid), 30, "the worker's end")
    time.sleep(0.5)
    last = v.json("history", "bigbtrfs", "--json")[0]
    t.check(last.get("status") == "failed",
            "killed worker: its run ended failed (%s)" % last.get("status"),
            last)
    wait_for(lambda: not snapshot_taken(), 10, "the snapshot's removal")
    t.check(subvolumes(B) == ["sv"], "killed worker: the service removed "
            "the snapshot (%r)" % subvolumes(B))

    # vigild killed: the next start removes it
    shutil.rmtree(out + "/big")
    p = v.popen("run", "bigbtrfs")
    p.communicate(timeout=60)
    wait_for(lambda: snapshot_taken() and copying(out + "/big"), 60,
             "the big run to copy again")
    left = subvolumes(B)
    killed = v.json("history", "bigbtrfs", "--json")[0]
    svc.kill()
    time.sleep(0.5)
    t.check(subvolumes(B) == left and len(left) == 2 and
            killed.get("status") == "running",
            "vigild killed mid-copy: the snapshot of its run %s is still "
            "there (%r)" % (killed.get("id"), left))
    svc.start()
    t.check(left[0] not in subvolumes(B) and
            b"removed 1 snapshot" in svc.log(),
            "the next start of vigild removed it (%r)" % subvolumes(B),
            svc.log()[-3000:])
    rec = v.json("log", str(killed.get("id")), "--json")
    t.check(rec.get("status") == "interrupted",
            "that run is interrupted (%s)" % rec.get("status"), rec)

    def idle():
        h = v.json("history", "bigbtrfs", "--json")
        return all(r.get("status") != "running" for r in h)
    wait_for(idle, 300, "runs started by the restart to end")
    t.check(subvolumes(B) == ["sv"] and
            not os.path.exists(B + "/.vigil-snapshots"),
            "no snapshot remains (%r)" % subvolumes(B))
    svc.stop()

    # ---- 5: the same in local mode, vigild --run-once ----
    lstate = t.path("local")
    lv = Vigil(t, lstate)
    lv.import_jobs(jobs, name="jobs-local.ini")
    shutil.rmtree(out + "/big")
    ro = subprocess.Popen([t.args.vigild, "--state-dir", lstate,
                           "--run-once", "bigbtrfs"],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    t.cleanups.append(lambda: ro.poll() is None and ro.kill())
    wait_for(lambda: snapshot_taken() and copying(out + "/big"), 60,
             "the local big run to copy")
    ro.kill()
    ro.wait()
    t.check(len(subvolumes(B)) == 2,
            "vigild --run-once killed mid-copy: its snapshot is still there")
    p = subprocess.run([t.args.vigild, "--state-dir", lstate, "--run-once",
                        "onbtrfs", "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    try:
        rec = json.loads(p.stdout)
    except ValueError:
        raise Fatal("--run-once --json: %s" % describe(p))
    # the destination holds the service's copy: only what changed since
    t.check(p.returncode == 0 and set(rec.get("capture") or {}) ==
            {"snapshot-btrfs"} and "btrfs snapshot" in
            (rec.get("path_reason") or ""),
            "--run-once: read from a btrfs snapshot (%r)"
            % rec.get("capture"), describe(p))
    t.check(subvolumes(B) == ["sv"],
            "the next --run-once removed the killed run's snapshot and its "
            "own (%r)" % subvolumes(B), describe(p))


if __name__ == "__main__":
    Test("capture_run", "snapshot-safe copying through the real service "
         "and --run-once on btrfs, XFS and ext4",
         add_args=add_args).main(body)
