#!/usr/bin/env python3
"""test_nth.py: fail the N-th write, fsync, rename, ... of a backup run, for
N = 1, 2, ... until the run goes through untouched.

A source tree of a few hundred files is mirrored (keep-versions = 3) in
local mode (`vigil --state-dir S run JOB --wait`).  For each call kind, each
round changes the source (rewrites, adds, deletes), runs vigil with the
fault shim (faultshim.so, LD_PRELOAD) failing the N-th call of that kind on
one folder, then checks:
  - the faulted run ended `failed` or `partial` (exit 4 or 3) and its log
    names the error (`vigil log RUN`), or, when the state DB itself failed,
    the CLI printed a clear error naming it; a run that ends ok although a
    fault hit it must leave the destination equal to the source (the engine
    recovered) and the fault must have hit vigil's own files (.vigil/) or a
    call the engine falls back from (copy_file_range), else the fault was
    swallowed: a failure;
  - nothing is torn or lost at the destination: each file holds its old or
    its new content, no file the source still has is missing, and every
    file in the versions area holds a content its path had before;
  - a clean follow-up run ends ok, the destination then equals the source
    (treecmp), no .vigil-tmp-* is left, and PRAGMA integrity_check says ok
    on vigil.db and on the job's catalogue.
The folders faulted: the destination (write, pwrite, copy_file_range,
fsync, fdatasync, syncfs, rename, renameat, renameat2), the source (read
and pread, EIO: the file is listed as a problem and the run goes on,
`partial`), and the state folder (vigil.db and the catalogue: SQLite's
writes and syncs go through libc, which is how the N-th failing
sqlite3_step is reached).

Prints, per call kind, how many N were tried and how many faults were
injected.  The sweep stops at --cap N (default 200) and says so.  By
default every N is tried (about 40 s here); --quick tries every N up to
12, then every 4th (and the three before the first untouched run).

A fault vigil may absorb: copy_file_range (the engine copies with
read/write instead), vigil's own files in .vigil/ (job.ini is a warning by
design), the catalogue (safe to throw away: the run goes on without it and
says so), and SQLite's checkpoint at close (the data stays in the WAL).
Such a run must still be recorded ok and leave the destination equal to the
source."""

import glob
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True     # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import treecmp  # noqa: E402
from vtest import (RC_FAILED, RC_OK, RC_PARTIAL, Fatal, Test, Vigil,  # noqa: E402,E501
                   describe, find_tmp_leftovers, job_ini, short_path)

KIB = 1024
NFILES = 300
NDIRS = 20
REWRITE, ADD, DELETE = 16, 3, 3

# (label, calls counted, folder, errno, calls that always fail)
CASES = [
    ("write", "write", "dst", "EIO", None),
    ("pwrite", "pwrite", "dst", "EIO", "copy_file_range=EXDEV"),
    ("pwrite-enospc", "pwrite", "dst", "ENOSPC", "copy_file_range=EXDEV"),
    ("copy_file_range", "copy_file_range", "dst", "EIO", None),
    ("fsync", "fsync", "dst", "EIO", None),
    ("fdatasync", "fdatasync", "dst", "EIO", None),
    ("syncfs", "syncfs", "dst", "EIO", None),
    ("rename", "rename", "dst", "EIO", None),
    ("renameat", "renameat", "dst", "EIO", None),
    ("renameat2", "renameat2", "dst", "EIO", None),
    ("source-read", "read,pread", "src", "EIO", "copy_file_range=EXDEV"),
    ("db-write", "write", "state", "EIO", None),
    ("db-pwrite", "pwrite", "state", "EIO", None),
    ("db-fsync", "fsync,fdatasync", "state", "EIO", None),
    ("db-rename", "rename,renameat,renameat2", "state", "EIO", None),
    ("db-step", "sqlite3_step", "state", "EIO", None),
]

# Kinds a mirror run here always makes on that folder: if the shim injected
# nothing for one of them, the shim (or the preload) is broken and every
# other check would pass for nothing.
MUST_HIT = ("pwrite", "copy_file_range", "syncfs", "renameat", "source-read",
            "db-pwrite", "db-fsync", "db-step")

ERRNO_TEXT = {"EIO": ("input/output error", "i/o error"),
              "ENOSPC": ("no space left", "disk full", "database or disk is "
                         "full")}


def add_args(ap):
    ap.add_argument("--shim", required=True, help="faultshim.so")
    ap.add_argument("--cap", type=int, default=200)
    ap.add_argument("--case", action="append",
                    help="only these labels (repeatable)")


def digest_bytes(b):
    return hashlib.blake2b(b, digest_size=16).hexdigest()


def file_digests(root, skip_vigil=True):
    """{relpath (str): digest} of the regular files under root."""
    out = {}
    for dp, dns, fns in os.walk(root):
        rel_dir = os.path.relpath(dp, root)
        if rel_dir == ".":
            rel_dir = ""
            if skip_vigil and ".vigil" in dns:
                dns.remove(".vigil")
        for fn in fns:
            p = os.path.join(dp, fn)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                out[os.path.join(rel_dir, fn)] = digest_bytes(f.read())
    return out


def version_digests(dst):
    """[(relpath, digest, stamp)] of every file in the versions area."""
    out = []
    vroot = os.path.join(dst, ".vigil", "versions")
    if not os.path.isdir(vroot):
        return out
    for stamp in os.listdir(vroot):
        sroot = os.path.join(vroot, stamp)
        if not os.path.isdir(sroot) or os.path.islink(sroot):
            continue
        for rel, d in file_digests(sroot, skip_vigil=False).items():
            out.append((rel, d, stamp))
    return out


class Tree:
    """The source: NFILES files in NDIRS folders; each generation rewrites,
    adds and deletes a few.  hist[rel] holds every content rel ever had."""

    def __init__(self, root, seed):
        self.root = root
        self.rng = random.Random(seed)
        self.gen = 0
        self.files = []
        self.hist = {}
        os.mkdir(root)
        for d in range(NDIRS):
            os.mkdir(os.path.join(root, "d%02d" % d))
        os.mkdir(os.path.join(root, "empty"))
        os.symlink("d00/f0000", os.path.join(root, "link"))
        for i in range(NFILES):
            self._write("d%02d/f%04d" % (i % NDIRS, i))

    def _write(self, rel):
        data = self.rng.randbytes(self.rng.choice(
            (0, 1, 100, 4 * KIB, 6 * KIB, 16 * KIB)) +
            self.rng.randrange(0, 512))
        with open(os.path.join(self.root, rel), "wb") as f:
            f.write(data)
        self.hist.setdefault(rel, set()).add(digest_bytes(data))
        if rel not in self.files:
            self.files.append(rel)

    def mutate(self):
        self.gen += 1
        for rel in self.rng.sample(self.files, REWRITE):
            self._write(rel)
        for k in range(ADD):
            self._write("d%02d/g%03d-%d" % (self.rng.randrange(NDIRS),
                                            self.gen, k))
        for rel in self.rng.sample(self.files, DELETE):
            os.unlink(os.path.join(self.root, rel))
            self.files.remove(rel)


def shim_env(t, case, prefix, n, log):
    label, calls, _, err, always = case
    pre = [t.args.shim]
    if t.asan_lib:
        pre.insert(0, t.asan_lib)
    env = {"LD_PRELOAD": ":".join(pre),
           "VIGIL_FAULT_CALL": calls,
           "VIGIL_FAULT_N": str(n),
           "VIGIL_FAULT_ERRNO": err,
           "VIGIL_FAULT_PATH_PREFIX": prefix,
           "VIGIL_FAULT_LOG": log}
    if always:
        env["VIGIL_FAULT_ALWAYS"] = always
    if t.asan_lib:
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                               ":verify_asan_link_order=0").lstrip(":")
    return env


def read_shim_log(log):
    injected, counted = [], None
    try:
        with open(log) as f:
            for line in f:
                w = line.split()
                if w and w[0] == "inject":
                    injected.append((w[1], int(w[2]), " ".join(w[4:])))
                elif w and w[0] == "count":
                    counted = int(w[2])
    except FileNotFoundError:
        pass
    return injected, counted


def integrity(t, state, what):
    dbs = [os.path.join(state, "vigil.db")] + sorted(
        glob.glob(os.path.join(state, "catalogue", "*", "*.db")))
    bad = []
    for p in dbs:
        if not os.path.exists(p):
            bad.append("%s: missing" % p)
            continue
        try:
            c = sqlite3.connect(p)
            r = c.execute("PRAGMA integrity_check").fetchall()
            c.close()
        except sqlite3.Error as e:
            r = [(str(e),)]
        if r != [("ok",)]:
            bad.append("%s: %r" % (p, r[:5]))
    return t.check(not bad and len(dbs) >= 2, "%s: integrity_check ok on "
                   "vigil.db and %d catalogue(s)" % (what, len(dbs) - 1),
                   "\n".join(bad))


def mentions(text, err):
    text = text.lower()
    return any(w in text for w in ERRNO_TEXT.get(err, (err.lower(),)))


def under(path, root):
    return path == root or path.startswith(root + "/")


def one_round(t, v, tree, dst, state, case, n, stats):
    """Returns True when the run went through untouched (nothing injected
    and exit 0)."""
    label, calls, where, err, always = case
    prefix = {"dst": dst, "src": tree.root, "state": state}[where]
    tree.mutate()
    pre = file_digests(dst)
    new = file_digests(tree.root)
    last = v.history("j", limit=1)
    last_id = last[0]["id"] if last else 0
    log = t.path("shim-%s-%d.log" % (label, n))
    v.env = dict(t.base_env, **shim_env(t, case, prefix, n, log))
    try:
        p = v.run("j")
    finally:
        v.env = dict(t.base_env)
    injected, counted = read_shim_log(log)
    stats["tried"] += 1
    what = "%s N=%d" % (label, n)
    if not injected:
        ok = t.check(p.returncode == RC_OK, "%s: nothing injected (%s "
                     "calls counted), the run ends ok" % (what, counted),
                     describe(p))
        if ok:
            d, _ = treecmp.compare_trees(tree.root, dst)
            t.check(not d, "%s: the untouched run leaves the destination "
                    "equal to the source" % what, "\n".join(d[:20]))
        return True
    stats["injected"] += len(injected)
    ipaths = [x[2] for x in injected]
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    h = v.history("j", limit=1)
    rec = h[0] if h and h[0]["id"] != last_id else None
    logtext = ""
    if rec is not None:
        lp = v.cmd("log", str(rec["id"]))
        logtext = lp.stdout.decode("utf-8", "replace")

    # 1. the outcome
    if p.returncode in (RC_PARTIAL, RC_FAILED):
        stats["failed"] += 1
        t.check(rec is not None and rec.get("status") in
                ("partial", "failed"), "%s: exit %d, the run is recorded "
                "%s" % (what, p.returncode, rec.get("status") if rec else
                        "(no new run)"), out)
        t.check(mentions(logtext + out, err), "%s: the error (%s) is named "
                "in `vigil log %s`" % (what, err, rec["id"] if rec else "?"),
                logtext + "\n" + out)
        if where == "src":
            t.check(p.returncode == RC_PARTIAL, "%s: a source read error "
                    "ends the run partial, not failed (exit %d)"
                    % (what, p.returncode), out)
    elif p.returncode == 1 and where == "state":
        # the state DB failed: no run to log, the CLI says why
        stats["db_error"] += 1
        t.check(mentions(out, err) and ("database" in out.lower() or
                                        "catalogue" in out.lower()),
                "%s: exit 1 with a clear error naming the database: %s"
                % (what, out.strip().splitlines()[-1] if out.strip()
                   else "(nothing printed)"), out)
    elif p.returncode == RC_OK:
        d, _ = treecmp.compare_trees(tree.root, dst)
        own = all(under(x, os.path.join(dst, ".vigil")) for x in ipaths)
        sqlite_dir = where == "state" and all(x == state for x in ipaths)
        recovered = calls == "copy_file_range"
        if recovered or own or sqlite_dir or where == "state":
            stats["absorbed"] += 1
            stats["absorbed_at"].add(
                "%s %s" % (injected[0][0], short_path(
                    os.path.relpath(ipaths[0], prefix))))
        ok = t.check(not d, "%s: exit 0 although %s failed (%s): the "
                     "destination equals the source"
                     % (what, injected[0][0], short_path(ipaths[0])),
                     "\n".join(d[:20]))
        if where == "state":
            # The run is recorded ok, so the state must say so: a write
            # SQLite reported failed may not pass unnoticed.
            t.check(rec is not None and rec.get("status") == "ok" and
                    rec["id"] > last_id, "%s: the ok run is in the history"
                    % what, out)
        elif not (recovered or own):
            t.check(False, "%s: the fault on %s (%s) was swallowed: the "
                    "run says ok" % (what, short_path(ipaths[0]),
                                     injected[0][0]), out)
        elif ok and own:
            t.info("%s: fault on vigil's own %s absorbed (run ok)"
                   % (what, short_path(os.path.relpath(ipaths[0], dst))))
        if where == "state":
            warned = [x for x in out.splitlines() if "run finished" not in x
                      and x.startswith("vigil:")]
            t.info("%s: %s %s absorbed (run ok)%s" % (
                what, injected[0][0], short_path(os.path.relpath(
                    ipaths[0], state)), "; said: " + warned[0][:160]
                if warned else "; nothing said"))
    else:
        t.check(False, "%s: exit %d (expected 3 or 4%s)"
                % (what, p.returncode, ", or 1 for the DB"
                   if where == "state" else ""), describe(p))

    # 2. nothing torn, nothing lost
    after = file_digests(dst)
    torn = ["%s: neither old nor new content" % r for r, dg in after.items()
            if dg not in (pre.get(r), new.get(r))]
    lost = [r for r in pre if r in new and r not in after]
    t.check(not torn and not lost, "%s: no file torn or lost at the "
            "destination (%d files)" % (what, len(after)),
            "\n".join(torn[:10] + ["lost: %s" % r for r in lost[:10]]))
    vbad = ["%s (%s)" % (r, s) for r, dg, s in version_digests(dst)
            if dg not in tree.hist.get(r, ())]
    t.check(not vbad, "%s: every kept version holds a content its path had"
            % what, "\n".join(vbad[:10]))

    # 3. a clean run repairs everything
    p2 = v.run("j")
    t.check(p2.returncode == RC_OK, "%s: the follow-up run ends ok" % what,
            describe(p2))
    d, _ = treecmp.compare_trees(tree.root, dst)
    t.check(not d, "%s: after it the destination equals the source" % what,
            "\n".join(d[:20]))
    running = [r["id"] for r in v.history("j") if r.get("status") ==
               "running"]
    t.check(not running, "%s: no run is left `running` in the history"
            % what, "running: %r" % running)
    left = find_tmp_leftovers(dst)
    t.check(not left, "%s: no .vigil-tmp-* left" % what,
            "\n".join(short_path(x) for x in left))
    integrity(t, state, what)
    return False


# Kinds a run makes hundreds of calls of: N=1..12, then every STEP-th up
# to CAP (each tried N is a whole run; the N just before the first
# untouched run are tried too).
STRIDED = {"db-step": (7, 1500)}


def strided_ns(step, cap):
    n = 1
    while n <= cap:
        yield n
        n += 1 if n < 12 else step


def sweep_ns(full, cap):
    """N to try: all of them with full, else 1..12 then every 4th."""
    n = 1
    while n <= cap:
        yield n
        n += 1 if (full or n < 12) else 4


def find_asan(binary):
    try:
        out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout.decode()
    except OSError:
        return None
    for line in out.splitlines():
        w = line.split()
        if w and w[0].startswith("libasan") and len(w) >= 3:
            return w[2]
    return None


def main(t):
    if not os.access(t.args.shim, os.R_OK):
        raise Fatal("--shim %s: not readable" % t.args.shim)
    full = not t.args.quick
    t.asan_lib = find_asan(t.args.vigil)
    t.base_env = dict(os.environ, LC_ALL="C.UTF-8")
    t.info("sweep: %s, cap %d%s" % ("every N" if full else
                                    "N=1..12 then every 4th", t.args.cap,
                                    ", vigil has ASan" if t.asan_lib else ""))
    cases = [c for c in CASES if not t.args.case or c[0] in t.args.case]
    if not cases:
        raise Fatal("no case matches %r" % t.args.case)
    summary = []
    for case in cases:
        label = case[0]
        base = t.path(label)
        os.mkdir(base)
        src, dst, state = (os.path.join(base, x) for x in
                           ("src", "dst", "state"))
        tree = Tree(src, zlib.crc32(label.encode()) ^ (t.args.seed or 0))
        v = Vigil(t, state)
        v.env = dict(t.base_env)
        v.import_jobs(job_ini("j", src, dst, mode="mirror", keep_versions=3),
                      name="%s.ini" % label)
        v.run_expect("j", rc=RC_OK, what="%s: first backup" % label)
        stats = {"tried": 0, "injected": 0, "failed": 0, "db_error": 0,
                 "absorbed": 0, "absorbed_at": set()}
        t0 = time.monotonic()
        done = False
        last_n = 0
        if label in STRIDED:
            ns = strided_ns(*STRIDED[label])
            case_full, case_cap = False, STRIDED[label][1]
        else:
            ns = sweep_ns(full, t.args.cap)
            case_full, case_cap = full, t.args.cap
        for n in ns:
            last_n = n
            if one_round(t, v, tree, dst, state, case, n, stats):
                done = True
                break
        if done and not case_full and last_n > 12:
            # the sampled sweep skipped some N: try the ones just before
            for n in range(last_n - 3, last_n):
                if one_round(t, v, tree, dst, state, case, n, stats):
                    break
        capped = "" if done else " (cap %d reached)" % case_cap
        line = ("%-16s N tried %3d, faults injected %3d: %d failed/partial, "
                "%d DB errors, %d absorbed; untouched from N=%s%s, %.1f s"
                % (label, stats["tried"], stats["injected"], stats["failed"],
                   stats["db_error"], stats["absorbed"],
                   last_n if done else "?", capped,
                   time.monotonic() - t0))
        if stats["absorbed_at"]:
            line += "\n%18sabsorbed at: %s" % (
                "", ", ".join(sorted(stats["absorbed_at"])[:6]))
        summary.append(line)
        t.check(done, "%s: the sweep reached a run that goes through "
                "untouched%s" % (label, capped))
        if label in MUST_HIT:
            t.check(stats["injected"] > 0, "%s: the shim injected faults "
                    "(%d)" % (label, stats["injected"]))
    print("\n== faults per call kind")
    for line in summary:
        print("   " + line)


if __name__ == "__main__":
    Test("faults_nth", "fail the N-th call of each kind; nothing torn",
         add_args=add_args).main(main)
