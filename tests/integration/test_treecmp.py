#!/usr/bin/env python3
"""test_treecmp.py: the comparison tool the other tests trust must be able to
fail.  Two trees generated from the same seed compare equal; then each kind
of difference, planted in a fresh copy, is reported by treecmp, and with the
right words."""

import os
import sys

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gentree  # noqa: E402
import treecmp  # noqa: E402
from vtest import Test, rmtree  # noqa: E402

O_DIR = gentree.O_DIR


def pick(entries, kind, pred=lambda e: True):
    for rel in sorted(entries):
        e = entries[rel]
        if rel and e.type == kind and pred(e):
            return rel
    raise AssertionError("no %s in the generated tree" % kind)


def main(t):
    seed = t.args.seed or 11
    a = t.path("a")
    counts = gentree.generate(a, seed, files=60)
    t.info("tree: %s" % counts)
    ref = treecmp.scan(a)
    t.check(counts["deep_bytes"] > 4096,
            "the generated tree holds a path past PATH_MAX (%d bytes)"
            % counts["deep_bytes"])
    t.check(any(treecmp.is_sparse(e) for e in ref.values()),
            "the generated tree holds sparse files")
    n = [0]

    def fresh():
        n[0] += 1
        b = t.path("b%d" % n[0])
        gentree.generate(b, seed, files=60)
        return b

    b = fresh()
    diffs = treecmp.compare(ref, treecmp.scan(b))
    t.check(not diffs, "same seed, same tree: no differences (%d entries)"
            % len(ref), "\n".join(diffs))
    rmtree(b)

    def case(what, expect, perturb, **kw):
        b = fresh()
        rfd = os.open(b, O_DIR)
        try:
            perturb(b, rfd)
        finally:
            os.close(rfd)
        diffs = treecmp.compare(ref, treecmp.scan(b, skip_vigil=True), **kw)
        t.check(any(expect in d for d in diffs),
                "%s is reported (%r)" % (what, expect),
                "\n".join(diffs) or "no differences reported")
        rmtree(b)

    f = pick(ref, "file", lambda e: e.size > 100 and e.nlink == 1)
    deep = max((r for r in ref if ref[r].type == "file"), key=len)
    d = pick(ref, "dir")
    ln = pick(ref, "symlink")
    hl = pick(ref, "file", lambda e: e.nlink > 1)
    sp = pick(ref, "file", lambda e: treecmp.is_sparse(e) and e.size > 1 << 20)
    xa = pick(ref, "file", lambda e: e.xattrs)

    def keep_times(pfd, name, e):
        os.utime(name, ns=(e.mtime_ns, e.mtime_ns), dir_fd=pfd,
                 follow_symlinks=False)

    def flip_byte(rel):
        def p(b, rfd):
            with gentree._At(rfd, rel) as (pfd, name):
                fd = os.open(name, os.O_RDWR, dir_fd=pfd)
                c = os.pread(fd, 1, 50)
                os.pwrite(fd, bytes([c[0] ^ 1]), 50)
                os.close(fd)
                keep_times(pfd, name, ref[rel])
        return p

    case("same-size content change", "content differs", flip_byte(f))
    case("content change past PATH_MAX", "content differs", flip_byte(deep))

    def chmod(b, rfd):
        with gentree._At(rfd, f) as (pfd, name):
            os.chmod(name, ref[f].mode ^ 0o010, dir_fd=pfd)
    case("mode change", "mode", chmod)

    def mtime1(rel):
        def p(b, rfd):
            with gentree._At(rfd, rel) as (pfd, name):
                m = ref[rel].mtime_ns + 1
                os.utime(name, ns=(m, m), dir_fd=pfd, follow_symlinks=False)
        return p
    case("file mtime off by 1 ns", "mtime", mtime1(f))
    case("folder mtime off by 1 ns", "mtime", mtime1(d))
    case("symlink mtime off by 1 ns", "mtime", mtime1(ln))

    def retarget(b, rfd):
        with gentree._At(rfd, ln) as (pfd, name):
            os.unlink(name, dir_fd=pfd)
            os.symlink(b"elsewhere", name, dir_fd=pfd)
            keep_times(pfd, name, ref[ln])
    case("symlink target", "symlink target", retarget)

    def unlink(b, rfd):
        with gentree._At(rfd, hl) as (pfd, name):
            e = ref[hl]
            fd = os.open(name, os.O_RDONLY, dir_fd=pfd)
            data = os.read(fd, e.size + 1)
            os.close(fd)
            os.unlink(name, dir_fd=pfd)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT, e.mode, dir_fd=pfd)
            os.write(fd, data)
            os.fchmod(fd, e.mode)
            os.fchown(fd, e.uid, e.gid)
            for k, v in (e.xattrs or {}).items():
                os.setxattr(fd, k, v)
            os.fchmod(fd, e.mode)
            os.close(fd)
            keep_times(pfd, name, e)
    case("a broken hard link", "hard links", unlink)

    def fill(b, rfd):
        with gentree._At(rfd, sp) as (pfd, name):
            e = ref[sp]
            fd = os.open(name, os.O_RDWR, dir_fd=pfd)
            data = b""
            while True:
                c = os.read(fd, 1 << 20)
                if not c:
                    break
                data += c
            os.pwrite(fd, data, 0)      # same bytes, holes now allocated
            os.fsync(fd)
            os.close(fd)
            keep_times(pfd, name, e)
    case("a sparse file made dense", "sparse", fill)

    def xattr(b, rfd):
        with gentree._At(rfd, xa) as (pfd, name):
            fd = os.open(name, os.O_RDONLY, dir_fd=pfd)
            os.setxattr(fd, "user.vigil.test", b"changed")
            os.close(fd)
    case("a user xattr", "xattrs", xattr)

    def extra(b, rfd):
        with gentree._At(rfd, d + b"/new") as (pfd, name):
            os.close(os.open(b"extra", os.O_CREAT | os.O_WRONLY, 0o644,
                             dir_fd=pfd))
            keep_times(pfd, b".", ref[d])
    case("an extra file", "extra in destination", extra)

    def missing(b, rfd):
        with gentree._At(rfd, f) as (pfd, name):
            os.unlink(name, dir_fd=pfd)
    case("a missing file", "missing in destination", missing)

    def retype(b, rfd):
        with gentree._At(rfd, f) as (pfd, name):
            os.unlink(name, dir_fd=pfd)
            os.mkdir(name, dir_fd=pfd)
    case("file became a folder", "type file, destination has dir", retype)

    def dotvigil(b, rfd):
        os.mkdir(b".vigil", dir_fd=rfd)
        os.utime(rfd, ns=(ref[b""].mtime_ns, ref[b""].mtime_ns))
        with gentree._At(rfd, d + b"/x") as (pfd, name):
            os.mkdir(b".vigil", dir_fd=pfd)
            keep_times(pfd, b".", ref[d])
    case(".vigil below the root is not left out", "extra in destination",
         dotvigil)

    # .vigil at the root is left out: plant only that
    b = fresh()
    os.mkdir(os.path.join(b, ".vigil"))
    os.utime(b, ns=(ref[b""].mtime_ns, ref[b""].mtime_ns))
    diffs = treecmp.compare(ref, treecmp.scan(b, skip_vigil=True))
    t.check(not diffs, ".vigil at the destination root is left out",
            "\n".join(diffs))
    rmtree(b)

    if os.geteuid() == 0:
        def chown(b, rfd):
            with gentree._At(rfd, f) as (pfd, name):
                os.chown(name, 4321, 4321, dir_fd=pfd)
                os.chmod(name, ref[f].mode, dir_fd=pfd)
        case("an owner change (root)", "owner", chown)
    else:
        t.info("not root: owner comparison not exercised")

    # the mutate step really changes things, of many kinds
    m = t.path("m")
    gentree.generate(m, seed, files=60)
    ops = gentree.mutate(m, seed, ops=40)
    kinds = sorted(set(o.split(" ", 1)[0] for o in ops))
    diffs = treecmp.compare(ref, treecmp.scan(m))
    t.check(len(ops) == 40 and len(kinds) >= 10 and diffs,
            "mutate made %d changes of %d kinds (%s); treecmp sees %d "
            "differences" % (len(ops), len(kinds), ", ".join(kinds),
                             len(diffs)))


if __name__ == "__main__":
    Test("treecmp", "treecmp detects every kind of difference",
         needs_binaries=False).main(main)
