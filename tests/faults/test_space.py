#!/usr/bin/env python3
"""test_space.py: the state DB's filesystem full, and a destination out of
inodes (root: both use small tmpfs mounts).

  db-full   The state folder (vigil.db and the catalogue) lives on a 2 MiB
            tmpfs.  After a first backup, a filler file leaves only F bytes
            free (F from 0 to 256 KiB) and the source
            changes.  The run must end with a clear error naming the full
            disk (exit 1, 3 or 4), or ok with the destination equal to the
            source (the catalogue is safe to lose; the run says so); nothing
            at the destination may be torn or lost.  With room again, a run
            ends ok, the destination equals the source, no run is left
            `running`, and integrity_check is ok on both DBs.
  inodes    The destination is a tmpfs with nr_inodes = 160.  A first
            backup that fits; then the source grows past the inodes.  The
            run ends failed or partial naming the lack of space, the files
            of the first backup are intact, no .vigil-tmp-* is left; after
            a remount with more inodes a run ends ok and the destination
            equals the source.

Without root: SKIPPED, exit 77 (a failure under CI=true)."""

import os
import random
import subprocess
import sys

sys.dont_write_bytecode = True     # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import treecmp  # noqa: E402
from test_nth import Tree, file_digests, integrity  # noqa: E402
from vtest import (RC_FAILED, RC_OK, RC_PARTIAL, Fatal, Test, Vigil,  # noqa: E402,E501
                   describe, find_tmp_leftovers, have_root, job_ini,
                   short_path)

KIB, MIB = 1024, 1024 * 1024
FULL_WORDS = ("no space", "is full", "disk full", "not enough space",
              "enospc")


def add_args(ap):
    ap.add_argument("--shim", help="unused (same arguments as test_nth)")
    ap.add_argument("--case", action="append",
                    help="db-full or inodes (default both)")


def mount_tmpfs(t, mnt, opts):
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "vigil-test",
                        mnt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        t.skip("mount -t tmpfs -o %s failed: %s"
               % (opts, p.stdout.decode().strip()))
    t.cleanups.append(lambda: subprocess.run(["umount", "-l", mnt]))


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path, leave):
    """Write a filler file in path's filesystem until `leave` bytes are
    free (tmpfs counts whole pages)."""
    filler = os.path.join(path, "filler")
    want = free_bytes(path) - leave
    with open(filler, "ab") as f:
        chunk = b"\0" * (64 * KIB)
        while want > 0:
            n = min(want, len(chunk))
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                break
            want -= n
    return filler


def check_not_torn(t, what, dst, pre, new):
    after = file_digests(dst)
    torn = [r for r, dg in after.items() if dg not in (pre.get(r),
                                                       new.get(r))]
    lost = [r for r in pre if r in new and r not in after]
    t.check(not torn and not lost, "%s: no file torn or lost at the "
            "destination (%d files)" % (what, len(after)),
            "\n".join(["torn: %s" % r for r in torn[:10]] +
                      ["lost: %s" % r for r in lost[:10]]))


def case_db_full(t):
    mnt = t.path("statefs")
    mount_tmpfs(t, mnt, "size=2m,mode=0755")
    state = os.path.join(mnt, "state")
    src, dst = t.path("db-src"), t.path("db-dst")
    tree = Tree(src, 11)
    v = Vigil(t, state)
    v.import_jobs(job_ini("j", src, dst, mode="mirror", keep_versions=3))
    v.run_expect("j", rc=RC_OK, what="first backup")
    nfail = nok = 0
    for leave in (0, 4 * KIB, 16 * KIB, 24 * KIB, 32 * KIB, 40 * KIB,
                  48 * KIB, 56 * KIB, 64 * KIB, 96 * KIB, 128 * KIB,
                  256 * KIB):
        what = "state fs with %d KiB free" % (leave // KIB)
        tree.mutate()
        pre, new = file_digests(dst), file_digests(src)
        filler = fill(mnt, leave)
        t.info("%s (statvfs says %d KiB)" % (what, free_bytes(mnt) // KIB))
        p = v.run("j")
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        if p.returncode == RC_OK:
            nok += 1
            d, _ = treecmp.compare_trees(src, dst)
            t.check(not d, "%s: exit 0, and the destination equals the "
                    "source" % what, "\n".join(d[:20]))
        else:
            nfail += 1
            t.check(p.returncode in (1, RC_PARTIAL, RC_FAILED) and
                    any(w in out.lower() for w in FULL_WORDS),
                    "%s: exit %d with an error naming the full disk: %s"
                    % (what, p.returncode, out.strip().splitlines()[-1]
                       if out.strip() else "(nothing printed)"), out)
        t.check(p.returncode >= 0, "%s: vigil did not die of a signal"
                % what, describe(p))
        check_not_torn(t, what, dst, pre, new)
        os.unlink(filler)
        v.run_expect("j", rc=RC_OK, what="%s, room again" % what)
        d, _ = treecmp.compare_trees(src, dst)
        t.check(not d, "%s: after it the destination equals the source"
                % what, "\n".join(d[:20]))
        running = [r["id"] for r in v.history("j")
                   if r.get("status") == "running"]
        t.check(not running, "%s: no run left `running`" % what,
                repr(running))
        left = find_tmp_leftovers(dst)
        t.check(not left, "%s: no .vigil-tmp-* left" % what,
                "\n".join(short_path(x) for x in left))
        integrity(t, state, what)
    t.info("db-full: %d runs failed cleanly, %d went through" % (nfail, nok))
    t.check(nfail > 0, "a full state filesystem made at least one run fail "
            "(else this test proves nothing)")


def case_inodes(t):
    mnt = t.path("dstfs")
    mount_tmpfs(t, mnt, "size=64m,nr_inodes=160,mode=0755")
    dst = os.path.join(mnt, "dst")
    src = t.path("in-src")
    os.mkdir(src)
    rng = random.Random(3)
    for i in range(60):
        with open(os.path.join(src, "old%03d" % i), "wb") as f:
            f.write(rng.randbytes(rng.randrange(0, 8 * KIB)))
    v = Vigil(t, t.path("in-state"))
    v.import_jobs(job_ini("j", src, dst, mode="mirror", keep_versions=2))
    v.run_expect("j", rc=RC_OK, what="first backup, fits")
    d, _ = treecmp.compare_trees(src, dst)
    t.check(not d, "first backup equals the source", "\n".join(d[:20]))
    # grow past the inodes, and change some old files (versions are due)
    for i in range(0, 60, 6):
        with open(os.path.join(src, "old%03d" % i), "wb") as f:
            f.write(rng.randbytes(rng.randrange(0, 8 * KIB)))
    os.mkdir(os.path.join(src, "many"))
    for i in range(200):
        with open(os.path.join(src, "many", "n%03d" % i), "wb") as f:
            f.write(b"%d\n" % i)
    pre, new = file_digests(dst), file_digests(src)
    p = v.run("j")
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    t.check(p.returncode in (RC_PARTIAL, RC_FAILED),
            "out of inodes: the run ends failed or partial (exit %d)"
            % p.returncode, describe(p))
    rec = v.last_run("j")
    logtext = v.ok("log", str(rec["id"])).stdout.decode("utf-8", "replace")
    t.check(any(w in (logtext + out).lower() for w in FULL_WORDS),
            "out of inodes: `vigil log %s` names the lack of space"
            % rec["id"], logtext)
    check_not_torn(t, "out of inodes", dst, pre, new)
    left = find_tmp_leftovers(dst)
    t.check(not left, "out of inodes: no .vigil-tmp-* left",
            "\n".join(short_path(x) for x in left))
    p = subprocess.run(["mount", "-o", "remount,nr_inodes=2000", mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise Fatal("remount with more inodes: %s" % p.stdout.decode())
    v.run_expect("j", rc=RC_OK, what="with inodes again")
    d, _ = treecmp.compare_trees(src, dst)
    t.check(not d, "with inodes again the destination equals the source",
            "\n".join(d[:20]))
    t.check(not find_tmp_leftovers(dst), "no .vigil-tmp-* left after it")
    integrity(t, t.path("in-state"), "inodes")


def main(t):
    if not have_root():
        t.skip("the tmpfs mounts need root")
    cases = t.args.case or ["db-full", "inodes"]
    for c in cases:
        print("-- %s" % c)
        {"db-full": case_db_full, "inodes": case_inodes}[c](t)


if __name__ == "__main__":
    Test("faults_space", "state DB's filesystem full; destination out of "
         "inodes", add_args=add_args).main(main)
