#!/usr/bin/env python3
"""test_archive.py: archive jobs through the real `vigil --state-dir`.

For each format (tar.zst, tar.gz, zip): a hostile generated tree is archived
three times as one incremental chain (full, then incrementals), the tree
changing between runs (edits, deletions, renames, type changes).  Each
archive must be standard: `bsdtar -tf` lists it, `unzip -t` tests the zips,
`gzip -t` / `zstd -t` test the compressed tars, and Python's zipfile and
tarfile read every member.  `vigil restore --as-of` each run into a new
folder must give back that run's tree (treecmp).  A run killed while it
writes leaves no file that looks like an archive or a manifest, and the
next run cleans up and succeeds."""

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gentree  # noqa: E402
import treecmp  # noqa: E402
from vtest import (RC_OK, Test, Vigil, describe, job_ini,  # noqa: E402
                   find_tmp_leftovers)

FORMATS = ("tar.zst", "tar.gz", "zip")
# A restore of an older state through incrementals may differ in these
# only (reported, not failed): hard links whose first name changed later.
SOFT = ("hard links",)
# What the zip format itself cannot hold: mtimes finer than a second,
# xattrs, hard links (each name is its own copy).  libarchive's zip reader
# also turns a '\\' in a name into '/'.
ZIP_SOFT = ("mtime ", "user xattrs", "hard links")


def scan(root, drop_setid):
    e = treecmp.scan(root)
    if drop_setid:
        e = {r: x for r, x in e.items()
             if not (x.type == "file" and x.mode & 0o6000)}
    return e


def archives(dst):
    return sorted(n for n in os.listdir(dst)
                  if not n.startswith(".") and
                  n.endswith((".tar.zst", ".tar.gz", ".zip")))


def manifests(dst):
    d = os.path.join(dst, ".vigil", "archives")
    return sorted(n for n in os.listdir(d) if n.endswith(".manifest")) \
        if os.path.isdir(d) else []


def standard_readers(t, path, fmt):
    name = os.path.basename(path)
    if shutil.which("bsdtar"):
        p = subprocess.run(["bsdtar", "-tf", path], capture_output=True)
        t.check(p.returncode == 0, "bsdtar -tf lists %s" % name,
                describe(p))
    else:
        t.check(False, "bsdtar is installed (packaging/deps.sh)")
    if fmt == "zip":
        p = subprocess.run(["unzip", "-t", path], capture_output=True)
        t.check(p.returncode == 0, "unzip -t passes on %s" % name,
                describe(p))
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            t.check(bad is None, "Python zipfile reads every member of %s"
                    % name, "bad member %r" % bad)
        return
    if fmt == "tar.gz":
        p = subprocess.run(["gzip", "-t", path], capture_output=True)
        t.check(p.returncode == 0, "gzip -t passes on %s (one standard "
                "stream)" % name, describe(p))
        raw = open(path, "rb")
    else:
        p = subprocess.run(["zstd", "-t", "-q", path], capture_output=True)
        t.check(p.returncode == 0, "zstd -t passes on %s" % name,
                describe(p))
        d = subprocess.run(["zstd", "-dc", path], capture_output=True)
        raw = io.BytesIO(d.stdout)
    n = 0
    try:
        with tarfile.open(fileobj=raw, mode="r|*") as tf:
            for m in tf:
                if m.isfile():
                    f = tf.extractfile(m)
                    while f.read(1 << 20):
                        pass
                n += 1
        ok, why = True, ""
    except (tarfile.TarError, OSError, EOFError) as e:
        ok, why = False, repr(e)
    t.check(ok, "Python tarfile reads all %d members of %s" % (n, name), why)


def one_format(t, v, fmt, seed, root):
    src, dst = os.path.join(t.tmp, "src-" + fmt), \
        os.path.join(t.tmp, "dst-" + fmt)
    # deep=False: restoring paths longer than PATH_MAX is not supported yet
    # (libarchive's writer refuses them); the walk and the archive handle
    # them, which bsdtar's listing of a deep tree checks in deep_paths().
    gentree.generate(src, seed, files=90, deep=False)
    job = "arc-" + fmt.replace(".", "")
    v.import_jobs(job_ini(job, src, dst, mode="archive", format=fmt,
                          archive="incremental", compression=6,
                          verify="yes"), name=job + ".ini")
    refs, ids = [], []
    for gen in range(3):
        if gen:
            ops = gentree.mutate(src, seed + gen, ops=20)
            t.info("%s generation %d: %d changes" % (fmt, gen + 1, len(ops)))
        p = v.run(job)
        t.check(p.returncode in (RC_OK, 3), "%s run %d ends ok or partial "
                "(got %d)" % (fmt, gen + 1, p.returncode), describe(p))
        refs.append(scan(src, not root))
        ids.append(v.last_run(job)["id"])
    arcs, mans = archives(dst), manifests(dst)
    t.check(len(arcs) == 3 and len(mans) == 3, "%s: three archives and "
            "three manifests (%s)" % (fmt, ", ".join(arcs)))
    t.check(sum("-full." in a for a in arcs) == 1 and
            sum("-incr." in a for a in arcs) == 2, "%s: one full archive, "
            "then incrementals" % fmt, "\n".join(arcs))
    t.check(not find_tmp_leftovers(dst), "%s: no temp files left" % fmt)
    for a in arcs:
        standard_readers(t, os.path.join(dst, a), fmt)
    for k in range(3):
        to = os.path.join(t.tmp, "asof-%s-%d" % (fmt, k))
        args = ["restore", job, "--as-of", str(ids[k]), "--to", to]
        if root:
            args.append("--allow-special")
        p = v.cmd(*args, timeout=180)
        t.check(p.returncode == RC_OK, "%s: restore --as-of run %s exits 0"
                % (fmt, ids[k]), describe(p))
        if not os.path.isdir(to):
            continue
        diffs = treecmp.compare(refs[k], scan(to, not root), owner=False,
                                dir_times=False, root_meta=False,
                                hardlinks=True)
        soft_keys = SOFT if k > 0 else ()
        if fmt == "zip":
            soft_keys += ZIP_SOFT
            diffs = [d for d in diffs if "\\\\" not in d.split(": ")[0]]
        hard = [d for d in diffs if not any(": " + s in d
                                            for s in soft_keys)]
        soft = [d for d in diffs if d not in hard]
        t.check(not hard, "%s: restore --as-of run %s gives back generation "
                "%d (%d entries)" % (fmt, ids[k], k + 1, len(refs[k])),
                "\n".join(hard[:30]))
        if soft:
            t.info("%s as of run %s: %d differences the format or the "
                   "chain cannot avoid (%s)" % (fmt, ids[k], len(soft),
                                                soft[0][:100]))


def deep_paths(t, v):
    """Paths longer than PATH_MAX go into the archive (bsdtar lists them)."""
    src, dst = t.path("deep"), t.path("dst-deep")
    os.mkdir(src)
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(24):
        name = ("d%02d-" % i) + "x" * 200
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    wfd = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(wfd, b"deep")
    os.close(wfd)
    os.close(fd)
    v.import_jobs(job_ini("deep", src, dst, mode="archive"), name="d.ini")
    p = v.run("deep")
    t.check(p.returncode == RC_OK, "a tree deeper than PATH_MAX is "
            "archived", describe(p))
    a = archives(dst)
    if a:
        p = subprocess.run(["bsdtar", "-tf", os.path.join(dst, a[0])],
                           capture_output=True)
        t.check(p.returncode == 0 and any(
            len(x) > 4096 and x.endswith(b"/leaf")
            for x in p.stdout.splitlines()),
            "bsdtar lists the leaf at a path over 4096 bytes", describe(p))


def killed_run(t, v):
    src, dst = t.path("big"), t.path("dst-killed")
    os.mkdir(src)
    for i in range(6):
        with open(os.path.join(src, "f%d" % i), "wb") as f:
            f.write(os.urandom(40 << 20))
    v.import_jobs(job_ini("killed", src, dst, mode="archive",
                          format="tar.gz", compression=9), name="k.ini")
    killed = False
    for delay in (0.4, 0.2, 0.8, 0.1):
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        proc = subprocess.Popen(v.argv("run", "killed", "--wait"),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
            break
        proc.wait()
    t.check(killed, "a run was killed while it wrote")
    if not killed:
        return
    left = archives(dst) if os.path.isdir(dst) else []
    t.check(not left and not manifests(dst) if os.path.isdir(dst) else True,
            "a killed run leaves no complete-looking archive or manifest",
            "\n".join(left))
    p = v.run("killed")
    t.check(p.returncode == RC_OK, "the next run succeeds", describe(p))
    t.check(len(archives(dst)) == 1 and len(manifests(dst)) == 1 and
            not find_tmp_leftovers(dst), "and leaves one archive, one "
            "manifest and no temp files", "\n".join(os.listdir(dst)))


def main(t):
    seed = t.args.seed or 900
    root = os.geteuid() == 0
    v = Vigil(t, t.path("state"))
    for i, fmt in enumerate(FORMATS):
        one_format(t, v, fmt, seed + 10 * i, root)
    deep_paths(t, v)
    killed_run(t, v)


if __name__ == "__main__":
    Test("archive", __doc__.splitlines()[0]).main(main)
