#!/usr/bin/env python3
"""treecmp.py: compare two trees, byte for byte and metadata for metadata.

    treecmp.py [options] SRC DST

Walks both trees through directory file descriptors (openat-style), so paths
longer than PATH_MAX work.  `.vigil/` at the root of DST is left out (it is
vigil's own folder).  Compared, per path: type, bytes, mode bits, mtime in ns
(files, symlinks and folders), symlink targets, hard-link structure (the
same groups of names share an inode), sparseness (DST may not use many more
blocks than SRC for a sparse SRC file), user.* xattrs, and the owner when run
as root.  Prints each difference; exits 1 if there is any, 0 otherwise.

As a module: scan(root) -> dict of Entry by relative path (bytes, b"" is the
root), compare(src_entries, dst_entries, ...) -> list of difference strings.
"""

import argparse
import hashlib
import os
import stat
import sys

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vtest import escape_path, short_path  # noqa: E402

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def ftype(mode):
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    return "unknown"


class Entry:
    __slots__ = ("rel", "type", "mode", "uid", "gid", "size", "mtime_ns",
                 "ctime_ns", "ino", "nlink", "blocks", "target", "digest",
                 "xattrs", "error")

    def __init__(self, rel, st):
        self.rel = rel
        self.type = ftype(st.st_mode)
        self.mode = stat.S_IMODE(st.st_mode)
        self.uid, self.gid = st.st_uid, st.st_gid
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns
        self.ctime_ns = st.st_ctime_ns
        self.ino = st.st_ino
        self.nlink = st.st_nlink
        self.blocks = st.st_blocks
        self.target = None
        self.digest = None
        self.xattrs = None
        self.error = None


def _xattrs(fd):
    try:
        names = os.listxattr(fd)
    except OSError:
        return None
    out = {}
    for n in names:
        if n.startswith("user."):
            try:
                out[n] = os.getxattr(fd, n)
            except OSError as e:
                out[n] = "<error %s>" % e.strerror
    return out


def _hash_fd(fd):
    h = hashlib.blake2b(digest_size=20)
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        h.update(b)
    return h.hexdigest()


def scan(root, skip_vigil=False, content=True, xattrs=True, cache=None):
    """Entries of the tree at root, by relative path (bytes).

    skip_vigil: leave out `.vigil` at the root (a destination).
    content: hash regular files (Entry.digest).
    cache: optional dict (ino, size, mtime_ns, ctime_ns) -> digest, reused
    between scans of a tree that changes little.
    """
    entries = {}
    rfd = os.open(os.fsencode(root), os.O_RDONLY | os.O_DIRECTORY |
                  os.O_CLOEXEC)
    try:
        e = Entry(b"", os.fstat(rfd))
        if xattrs:
            e.xattrs = _xattrs(rfd)
        entries[b""] = e
        _walk(rfd, b"", entries, skip_vigil, content, xattrs, cache)
    finally:
        os.close(rfd)
    return entries


def _walk(dfd, rel, entries, skip_vigil, content, xattrs, cache):
    for name in sorted(os.fsencode(n) for n in os.listdir(dfd)):
        if skip_vigil and rel == b"" and name == b".vigil":
            continue
        r = rel + b"/" + name if rel else name
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError as ex:
            # vanished while we looked: record nothing
            if ex.errno == 2:
                continue
            raise
        e = Entry(r, st)
        entries[r] = e
        if e.type == "symlink":
            e.target = os.readlink(name, dir_fd=dfd)
        elif e.type == "dir":
            try:
                cfd = os.open(name, O_DIR, dir_fd=dfd)
            except OSError as ex:
                e.error = "cannot open folder: %s" % ex.strerror
                continue
            try:
                if xattrs:
                    e.xattrs = _xattrs(cfd)
                _walk(cfd, r, entries, skip_vigil, content, xattrs, cache)
            finally:
                os.close(cfd)
        elif e.type == "file" and (content or xattrs):
            key = (e.ino, e.size, e.mtime_ns, e.ctime_ns)
            if content and cache is not None and key in cache and not xattrs:
                e.digest = cache[key]
                continue
            try:
                fd = os.open(name, O_FILE, dir_fd=dfd)
            except OSError as ex:
                e.error = "cannot open: %s" % ex.strerror
                continue
            try:
                if xattrs:
                    e.xattrs = _xattrs(fd)
                if content:
                    if cache is not None and key in cache:
                        e.digest = cache[key]
                    else:
                        e.digest = _hash_fd(fd)
                        if cache is not None:
                            cache[key] = e.digest
            finally:
                os.close(fd)


def _groups(entries):
    """ino -> sorted tuple of relative paths of regular files."""
    by = {}
    for r, e in entries.items():
        if e.type == "file":
            by.setdefault(e.ino, []).append(r)
    return {k: tuple(sorted(v)) for k, v in by.items()}


def is_sparse(e):
    return e.type == "file" and e.blocks * 512 + 4096 < e.size


def compare(src, dst, owner=None, superset=False, dir_times=True,
            root_meta=True, hardlinks=True, sparse=True, xattrs=True,
            max_report=200):
    """Differences between two scans, as strings.

    superset: DST may hold extra paths (backup mode never deletes).
    dir_times: compare folder mtimes.  root_meta: compare the roots' mode,
    mtime and owner.  owner: compare uid/gid (default: when running as root).
    """
    if owner is None:
        owner = os.geteuid() == 0
    diffs = []

    def d(rel, msg):
        diffs.append("%s: %s" % (short_path(rel) or "<root>", msg))

    for rel, s in src.items():
        t = dst.get(rel)
        if t is None:
            d(rel, "missing in destination (source has a %s)" % s.type)
            continue
        if s.error or t.error:
            d(rel, "unreadable: source %s, destination %s"
              % (s.error, t.error))
        if s.type != t.type:
            d(rel, "type %s, destination has %s" % (s.type, t.type))
            continue
        is_root = rel == b""
        if is_root and not root_meta:
            pass
        else:
            if s.type != "symlink" and s.mode != t.mode:
                d(rel, "mode %04o, destination %04o" % (s.mode, t.mode))
            if owner and (s.uid, s.gid) != (t.uid, t.gid):
                d(rel, "owner %d:%d, destination %d:%d"
                  % (s.uid, s.gid, t.uid, t.gid))
            if (s.type != "dir" or dir_times) and s.mtime_ns != t.mtime_ns:
                d(rel, "mtime %d ns, destination %d ns (off by %+d ns)"
                  % (s.mtime_ns, t.mtime_ns, t.mtime_ns - s.mtime_ns))
        if s.type == "symlink" and s.target != t.target:
            d(rel, "symlink target %s, destination %s"
              % (escape_path(s.target), escape_path(t.target)))
        if s.type == "file":
            if s.size != t.size:
                d(rel, "size %d, destination %d" % (s.size, t.size))
            elif s.digest is not None and t.digest is not None and \
                    s.digest != t.digest:
                d(rel, "content differs (same size %d)" % s.size)
            if sparse and is_sparse(s):
                slack = max(16, s.blocks // 10)     # 16 blocks = 8 KiB
                if t.blocks > s.blocks + slack:
                    d(rel, "sparse file not sparse: %d blocks allocated in "
                      "source, %d in destination (%d bytes apparent)"
                      % (s.blocks, t.blocks, s.size))
        if xattrs and s.xattrs is not None and t.xattrs is not None and \
                s.xattrs != t.xattrs:
            d(rel, "user xattrs %r, destination %r"
              % (sorted(s.xattrs.items()), sorted(t.xattrs.items())))
    if not superset:
        for rel, t in dst.items():
            if rel not in src:
                d(rel, "extra in destination (a %s)" % t.type)
    if hardlinks:
        sg, tg = _groups(src), _groups(dst)
        seen = set()
        for rel, s in src.items():
            if s.type != "file" or rel in seen:
                continue
            want = sg[s.ino]
            seen.update(want)
            t = dst.get(rel)
            if t is None or t.type != "file":
                continue
            have = tg[t.ino]
            ok = set(want) <= set(have) if superset else want == have
            if not ok:
                d(rel, "hard links: source links {%s}, destination {%s}"
                  % (", ".join(short_path(x) for x in want),
                     ", ".join(short_path(x) for x in have)))
    if len(diffs) > max_report:
        n = len(diffs)
        diffs = diffs[:max_report] + ["... %d more differences"
                                      % (n - max_report)]
    return diffs


def compare_trees(src_root, dst_root, skip_vigil=True, **kw):
    s = scan(src_root)
    t = scan(dst_root, skip_vigil=skip_vigil)
    return compare(s, t, **kw), len(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--keep-vigil", action="store_true",
                    help="compare DST/.vigil too")
    ap.add_argument("--superset", action="store_true",
                    help="allow extra paths in DST")
    ap.add_argument("--no-dir-times", action="store_true")
    ap.add_argument("--no-root-meta", action="store_true")
    ap.add_argument("--no-owner", action="store_true")
    ap.add_argument("--no-hardlinks", action="store_true")
    a = ap.parse_args()
    diffs, n = compare_trees(a.src, a.dst, skip_vigil=not a.keep_vigil,
                             superset=a.superset,
                             dir_times=not a.no_dir_times,
                             root_meta=not a.no_root_meta,
                             owner=False if a.no_owner else None,
                             hardlinks=not a.no_hardlinks)
    for x in diffs:
        print(x)
    print("%d entries compared, %d differences" % (n, len(diffs)),
          file=sys.stderr)
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
