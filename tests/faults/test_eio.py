#!/usr/bin/env python3
"""test_eio.py: EIO from a real FUSE filesystem under a backup run.

eiofs (eiofs.c, libfuse3) mounts a backing folder read-only and fails with
EIO the read() of every file named *.eio and the listing of the folder
named locked.d.  A backup job (local mode, `vigil --state-dir`) reads the
mount:
  1. mounted clean (nothing fails): the run is ok and the destination
     equals the backing tree;
  2. every file is rewritten in the backing folder, one new *.eio file is
     added, then it is mounted with the faults: the run ends `partial`
     (exit 3); its record names each *.eio file and locked.d with the
     error (Input/output error); eiofs's own log shows the faults reached
     the filesystem; every other file at the destination is the new
     content (treecmp on the rest); each *.eio file and locked.d's files
     keep their old content whole; the new *.eio file is absent (never a
     torn copy); no .vigil-tmp-* is left;
  3. mounted clean again: the run is ok and the destination equals the
     backing tree.
Root with /dev/fuse; exit 77 when eiofs was not built or FUSE cannot
mount (a failure under CI=true)."""

import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import treecmp  # noqa: E402
from vtest import (RC_OK, RC_PARTIAL, Fatal, Test, Vigil, describe,  # noqa: E402,E501
                   find_tmp_leftovers, have_root, job_ini)

N_EIO = 5           # files that fail to read (plus one new one)
N_LOCKED = 4        # files in the folder that fails to list


def add_args(ap):
    ap.add_argument("--shim", help="unused (the fault tests' common "
                    "arguments)")
    ap.add_argument("--eiofs", required=True, help="the eiofs binary")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def content(rel, gen):
    """Some bytes for a file: sizes from tiny to a few hundred KiB, so that
    the copy takes several read() calls."""
    size = (len(rel) * 7919 * (gen + 1)) % (300 * 1024) + 1
    line = ("%s gen %d\n" % (rel, gen)).encode()
    return (line * (size // len(line) + 1))[:size]


def tree_files():
    files = []
    for d in ("", "docs", "docs/deep", "media"):
        for i in range(10):
            files.append(os.path.join(d, "f%02d.txt" % i))
    eio = [os.path.join(d, "bad%d.eio" % i) for i, d in
           enumerate(("", "docs", "docs/deep", "media", "media"))]
    locked = ["locked.d/l%d.txt" % i for i in range(N_LOCKED)]
    return files, eio[:N_EIO], locked


class Mount:
    def __init__(self, t, backing, mnt, log, eio):
        self.t = t
        self.mnt = mnt
        argv = [t.args.eiofs, backing, mnt, "--log", log]
        if eio:
            argv += ["--eio-read", "*.eio", "--eio-dir", "locked.d"]
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        t.cleanups.append(self.unmount)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if os.path.ismount(mnt):
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        out = b""
        if self.p.poll() is not None:
            out = self.p.stdout.read()
        self.unmount()
        t.skip("eiofs could not mount a FUSE filesystem here: %s"
               % out.decode("utf-8", "replace").strip())

    def unmount(self):
        if self.p is None:
            return
        if os.path.ismount(self.mnt):
            subprocess.run(["umount", self.mnt], stderr=subprocess.DEVNULL)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            subprocess.run(["umount", "-l", self.mnt],
                           stderr=subprocess.DEVNULL)
        self.p = None


def filtered(scan, drop):
    return {k: v for k, v in scan.items()
            if not any(k == d or k.startswith(d + b"/") for d in drop)}


def body(t):
    if not os.access(t.args.eiofs, os.X_OK):
        t.skip("eiofs was not built (libfuse3 not found by pkg-config: "
               "install libfuse3-dev)")
    if not have_root():
        t.skip("mounting FUSE needs root here")
    if not os.path.exists("/dev/fuse"):
        t.skip("no /dev/fuse")
    backing, mnt, dst = t.path("backing"), t.path("mnt"), t.path("dst")
    os.makedirs(mnt)
    files, eio, locked = tree_files()
    for rel in files + eio + locked:
        write(os.path.join(backing, rel), content(rel, 0))
    os.symlink("f01.txt", os.path.join(backing, "docs", "link"))
    v = Vigil(t, t.path("state"))
    v.import_jobs(job_ini("eio", mnt, dst))
    log = t.path("eiofs.log")

    # 1. clean
    m = Mount(t, backing, mnt, log, eio=False)
    v.run_expect("eio", rc=RC_OK, what="clean mount")
    diffs, n = treecmp.compare_trees(backing, dst, dir_times=False,
                                     root_meta=False)
    t.check(not diffs, "clean mount: the destination equals the backing "
            "tree (%d entries)" % n, "\n".join(diffs))
    m.unmount()

    # 2. with the faults
    for rel in files + eio + locked:
        write(os.path.join(backing, rel), content(rel, 1))
    fresh = "docs/fresh.eio"
    write(os.path.join(backing, fresh), content(fresh, 1))
    eio_all = eio + [fresh]
    m = Mount(t, backing, mnt, log, eio=True)
    p = v.run_expect("eio", rc=RC_PARTIAL, what="files that fail with EIO")
    m.unmount()
    with open(log) as f:
        injected = f.read().split("\n")
    nread = len([x for x in injected if x.startswith("eio read ")])
    ndir = len([x for x in injected if x.startswith("eio readdir ")])
    t.check(nread >= len(eio_all) and ndir >= 1, "eiofs failed %d reads "
            "and %d listings" % (nread, ndir), "\n".join(injected))
    rec = v.last_run("eio")
    full = v.log(rec["id"])
    probs = {pr.get("path"): pr for pr in full.get("problems", [])}
    t.check(full.get("status") == "partial", "the run is recorded partial",
            str(full.get("status")))
    for rel in eio_all:
        pr = probs.get(rel)
        t.check(pr is not None and "Input/output error" in
                (pr.get("detail") or ""), "the record names %s with the "
                "error (%s)" % (rel, pr and pr.get("detail")),
                describe(p) + "\n" + repr(sorted(probs)))
    pr = probs.get("locked.d")
    t.check(pr is not None and "Input/output error" in
            (pr.get("detail") or ""), "the record names the folder "
            "locked.d that failed to list (%s)" % (pr and pr.get("detail")),
            repr(sorted(probs)))
    out = p.stdout.decode("utf-8", "replace")
    t.check(all(rel in out for rel in eio_all + ["locked.d"]),
            "run --wait's summary lists every faulted path")
    # Everything else is the new content.
    drop = [os.fsencode(x) for x in eio_all + ["locked.d"]]
    s = filtered(treecmp.scan(backing), drop)
    d = filtered(treecmp.scan(dst, skip_vigil=True), drop)
    diffs = treecmp.compare(s, d, dir_times=False, root_meta=False)
    t.check(not diffs, "every other file was copied (%d entries equal "
            "the backing tree)" % len(s), "\n".join(diffs))
    # Nothing torn: the faulted files keep their old content whole.
    torn = []
    for rel in eio + locked:
        with open(os.path.join(dst, rel), "rb") as f:
            if f.read() != content(rel, 0):
                torn.append(rel)
    t.check(not torn, "the %d faulted files and the %d files of locked.d "
            "keep their previous content whole" % (len(eio), len(locked)),
            repr(torn))
    t.check(not os.path.lexists(os.path.join(dst, fresh)),
            "the new file that failed to read is absent, never a torn copy")
    left = find_tmp_leftovers(dst)
    t.check(not left, "no .vigil-tmp-* is left", repr(left))

    # 3. clean again
    m = Mount(t, backing, mnt, log, eio=False)
    v.run_expect("eio", rc=RC_OK, what="clean mount again")
    m.unmount()
    diffs, n = treecmp.compare_trees(backing, dst, dir_times=False,
                                     root_meta=False)
    t.check(not diffs, "after a clean run the destination equals the "
            "backing tree (%d entries)" % n, "\n".join(diffs))
    t.info("FUSE EIO: %d files failed to read (%d read faults injected), "
           "1 folder failed to list (%d listing faults)"
           % (len(eio_all), nread, ndir))


if __name__ == "__main__":
    Test("faults-eio", "EIO from a FUSE filesystem under a backup run",
         add_args=add_args).main(body)
