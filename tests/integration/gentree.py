#!/usr/bin/env python3
"""gentree.py: generate (and mutate) hostile file trees from a seed.

    gentree.py generate ROOT SEED [--files N] [--no-deep] ...
    gentree.py mutate ROOT SEED [--ops N]

generate makes a new tree at ROOT: odd names (spaces, newlines, leading
dashes, invalid UTF-8, 255-byte names, unicode), file and folder modes
(setuid, sticky, read-only folders), symlinks (relative, absolute, dangling,
with odd bytes), hard links (also across folders and into a path deeper
than PATH_MAX), sparse files (MiB apparent, few blocks used), empty folders,
files from 0 B to a few MiB, mtimes with nanoseconds (also before 1970 and
far ahead), user.* xattrs, and owners when run as root.  The same seed
gives the same tree.

mutate changes an existing tree: rewrite, append, same-size rewrite with the
old mtime kept (only ctime tells), delete files and folders, rename, add,
turn a file into a folder and back, file <-> symlink, mode-only and
mtime-only changes, add and break hard links, change xattrs.

Everything goes through directory fds, so the deep part works like the rest.
"""

import argparse
import errno
import os
import random
import stat
import sys

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import treecmp  # noqa: E402

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

KIB, MIB = 1024, 1024 * 1024

ODD = [
    b"with space", b"new\nline", b"-dash", b"--double-dash", b"bad\xff\xfe",
    b"\xc3\x28invalid", "na\u00efve-\u65e5\u672c\u8a9e-\U0001f600".encode(),
    b"tab\there", b"back\\slash", b".hidden", b"*?[glob]", b"quote'\"",
    b" leading space", b"trailing space ", b"semi;colon", b"#hash",
    b"%percent", b"UPPER", b"ctrl\x01\x7f", b"=equals", b"dots...",
    "\u00e9\u0301-nfd".encode(),
]

FILE_MODES = [0o644] * 8 + [0o600, 0o755, 0o444, 0o640, 0o700, 0o4755,
                            0o2750, 0o1644, 0o664, 0o400]
DIR_MODES = [0o755] * 6 + [0o700, 0o750, 0o555, 0o1777, 0o2775]


def rand_mtime(rng):
    r = rng.random()
    if r < 0.01:
        return -rng.randrange(1, 10**9) * 10**9 - rng.randrange(10**9)
    if r < 0.02:
        return rng.randrange(4102444800, 4200000000) * 10**9 + \
            rng.randrange(10**9)
    return rng.randrange(10**9, 1700000000) * 10**9 + rng.randrange(10**9)


def rand_size(rng, scale=1.0):
    r = rng.random()
    if r < 0.10:
        n = 0
    elif r < 0.45:
        n = rng.randrange(1, 200)
    elif r < 0.75:
        n = rng.randrange(200, 16 * KIB)
    elif r < 0.93:
        n = rng.randrange(16 * KIB, 256 * KIB)
    elif r < 0.985:
        n = rng.randrange(256 * KIB, 1 * MIB)
    else:
        n = rng.randrange(1 * MIB, 3 * MIB)
    return int(n * scale)


def rand_bytes(rng, n):
    if n == 0:
        return b""
    if rng.random() < 0.3:           # compressible
        chunk = rng.randbytes(min(n, 64))
        return (chunk * (n // len(chunk) + 1))[:n]
    return rng.randbytes(n)


class Namer:
    def __init__(self, rng, odd=True):
        self.rng = rng
        self.n = 0
        self.odd = odd

    def __call__(self):
        self.n += 1
        tag = str(self.n).encode()
        r = self.rng.random()
        if not self.odd or r < 0.55:
            return b"f" + tag
        if r < 0.60:                    # 255 bytes, ASCII
            return (tag + b"-L" + b"L" * 255)[:255]
        if r < 0.63:                    # 255 bytes, two-byte characters
            s = tag + b"-"
            while len(s) + 2 <= 255:
                s += "\u00e9".encode()
            return s + b"x" * (255 - len(s))
        base = self.rng.choice(ODD)
        if self.rng.random() < 0.5:
            return base + b"." + tag
        return tag + b"_" + base


def _open_rel(root_fd, parts):
    """Open the folder at parts (list of names) under root_fd."""
    fd = os.dup(root_fd)
    for p in parts:
        nfd = os.open(p, O_DIR, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


def _set_xattr(fd, rng, state):
    if not state.get("xattrs", True):
        return
    try:
        os.setxattr(fd, "user.vigil.test", rng.randbytes(rng.randrange(1, 40)))
        if rng.random() < 0.3:
            os.setxattr(fd, "user.second", b"")
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            state["xattrs"] = False
        else:
            raise


def _write_file(dfd, name, rng, size, mode, state, mtime=None):
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o600, dir_fd=dfd)
    try:
        os.write(fd, rand_bytes(rng, size)) if size else None
        if rng.random() < 0.08:
            _set_xattr(fd, rng, state)
        if state.get("owners") and rng.random() < 0.3:
            os.fchown(fd, *rng.choice(state["owners"]))
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.utime(name, ns=(rand_mtime(rng), mtime or rand_mtime(rng)),
             dir_fd=dfd, follow_symlinks=False)


def _write_sparse(dfd, name, rng, kind, state):
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o644, dir_fd=dfd)
    try:
        size = rng.randrange(2, 7) * MIB
        if kind == "holes":             # data islands between holes
            os.ftruncate(fd, size)
            for _ in range(3):
                off = rng.randrange(0, size - 64 * KIB) & ~4095
                os.pwrite(fd, rng.randbytes(64 * KIB), off)
        elif kind == "empty":           # all hole
            os.ftruncate(fd, 8 * MIB)
        elif kind == "tail":            # hole, then data at the end
            os.pwrite(fd, rng.randbytes(10 * KIB), size - 10 * KIB)
        else:                           # data, then a hole to the end
            os.write(fd, rng.randbytes(20 * KIB))
            os.ftruncate(fd, size)
    finally:
        os.close(fd)
    os.utime(name, ns=(rand_mtime(rng), rand_mtime(rng)), dir_fd=dfd,
             follow_symlinks=False)


def generate(root, seed, files=250, deep=True, sparse=True, hardlinks=True,
             odd=True, xattrs=True, owners=None, max_depth=4, scale=1.0):
    """Make a new tree at root (which must not exist).  Returns a dict of
    counts by kind."""
    rng = random.Random(seed)
    name = Namer(rng, odd)
    if owners is None:
        owners = [(0, 0), (1234, 5678), (65534, 65534)] \
            if os.geteuid() == 0 else []
    state = {"xattrs": xattrs, "owners": owners}
    counts = dict(files=0, dirs=1, symlinks=0, hardlinks=0, sparse=0,
                  empty_dirs=0, deep_bytes=0, long_names=0)
    os.mkdir(root, 0o700)
    rfd = os.open(os.fsencode(root), O_DIR)
    dirs = [[]]             # folders as lists of names, root first
    made_files = []         # (parts, name)
    try:
        # folders
        ndirs = max(3, files // 12)
        for _ in range(ndirs):
            parent = rng.choice([d for d in dirs if len(d) < max_depth])
            n = name()
            pfd = _open_rel(rfd, parent)
            try:
                os.mkdir(n, 0o700, dir_fd=pfd)
            finally:
                os.close(pfd)
            dirs.append(parent + [n])
            counts["dirs"] += 1
        # files
        for _ in range(files):
            parent = rng.choice(dirs)
            n = name()
            pfd = _open_rel(rfd, parent)
            try:
                _write_file(pfd, n, rng, rand_size(rng, scale),
                            rng.choice(FILE_MODES), state)
            finally:
                os.close(pfd)
            made_files.append((parent, n))
            counts["files"] += 1
            counts["long_names"] += len(n) == 255
        # symlinks
        for i in range(max(6, files // 15)):
            parent = rng.choice(dirs)
            k = i % 7
            if k == 0 and made_files:
                fp, fn = rng.choice(made_files)
                tgt = b"/".join([b".."] * len(parent) + fp + [fn])
            elif k == 1:
                tgt = b"/etc/hostname"
            elif k == 2:
                tgt = b"/nonexistent/dangling/target"
            elif k == 3:
                tgt = b"dangling-relative"
            elif k == 4:
                tgt = b"weird\xff\ntarget with space"
            elif k == 5:
                tgt = b"/".join([b".."] * len(parent)) or b"."
            else:
                tgt = b"a/" * 400 + b"long"
            n = name()
            pfd = _open_rel(rfd, parent)
            try:
                os.symlink(tgt, n, dir_fd=pfd)
                if owners and rng.random() < 0.3:
                    os.chown(n, *rng.choice(owners), dir_fd=pfd,
                             follow_symlinks=False)
                os.utime(n, ns=(rand_mtime(rng), rand_mtime(rng)),
                         dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(pfd)
            counts["symlinks"] += 1
        # hard links: groups of 2-3 names, often across folders
        if hardlinks and made_files:
            for _ in range(max(3, files // 30)):
                fp, fn = rng.choice(made_files)
                for _ in range(rng.randrange(1, 3)):
                    dp = rng.choice(dirs)
                    n = name()
                    sfd = _open_rel(rfd, fp)
                    dfd = _open_rel(rfd, dp)
                    try:
                        os.link(fn, n, src_dir_fd=sfd, dst_dir_fd=dfd,
                                follow_symlinks=False)
                    finally:
                        os.close(sfd)
                        os.close(dfd)
                    counts["hardlinks"] += 1
        # sparse files
        if sparse:
            for kind in ("holes", "empty", "tail", "head"):
                parent = rng.choice(dirs)
                pfd = _open_rel(rfd, parent)
                try:
                    _write_sparse(pfd, name()[:240] + b".sparse", rng, kind, state)
                finally:
                    os.close(pfd)
                counts["sparse"] += 1
        # empty folders, one nested
        for _ in range(3):
            parent = rng.choice(dirs)
            n = name()
            pfd = _open_rel(rfd, parent)
            try:
                os.mkdir(n, 0o755, dir_fd=pfd)
                if rng.random() < 0.5:
                    os.mkdir(n + b"/inner-empty", 0o700, dir_fd=pfd)
                    dirs.append(parent + [n, b"inner-empty"])
            finally:
                os.close(pfd)
            dirs.append(parent + [n])
            counts["empty_dirs"] += 1
        # a path deeper than PATH_MAX, with a file, a symlink and a hard
        # link from a shallow file at the bottom
        if deep:
            parent = rng.choice(dirs[:3])
            parts = list(parent)
            depth_bytes = sum(len(p) + 1 for p in parts)
            i = 0
            while depth_bytes < 4096 + 600:
                i += 1
                n = (b"deep%02d-" % i) + b"d" * 192
                pfd = _open_rel(rfd, parts)
                try:
                    os.mkdir(n, 0o755, dir_fd=pfd)
                finally:
                    os.close(pfd)
                parts.append(n)
                dirs.append(list(parts))
                depth_bytes += len(n) + 1
            pfd = _open_rel(rfd, parts)
            try:
                _write_file(pfd, b"bottom file", rng, 3000, 0o640, state)
                made_files.append((list(parts), b"bottom file"))
                os.symlink(b"bottom file", b"bottom link", dir_fd=pfd)
                os.utime(b"bottom link", ns=(rand_mtime(rng), rand_mtime(rng)),
                         dir_fd=pfd, follow_symlinks=False)
                if hardlinks and made_files:
                    fp, fn = made_files[0]
                    sfd = _open_rel(rfd, fp)
                    try:
                        os.link(fn, b"linked from shallow", src_dir_fd=sfd,
                                dst_dir_fd=pfd, follow_symlinks=False)
                    finally:
                        os.close(sfd)
                    counts["hardlinks"] += 1
            finally:
                os.close(pfd)
            counts["deep_bytes"] = depth_bytes + len(b"bottom file")
        # folder modes, owners and mtimes last, deepest first (writing into
        # a folder changes its mtime; a 0555 folder must be filled first)
        for parts in sorted(dirs, key=len, reverse=True):
            if parts:
                pfd = _open_rel(rfd, parts[:-1])
                n = parts[-1]
            else:
                pfd, n = os.dup(rfd), None
            try:
                fd = os.open(n, O_DIR, dir_fd=pfd) if n else os.dup(pfd)
                try:
                    if rng.random() < 0.1:
                        _set_xattr(fd, rng, state)
                    if owners and n and rng.random() < 0.2:
                        os.fchown(fd, *rng.choice(owners))
                    os.fchmod(fd, rng.choice(DIR_MODES) if n else 0o755)
                    os.utime(fd, ns=(rand_mtime(rng), rand_mtime(rng)))
                finally:
                    os.close(fd)
            finally:
                os.close(pfd)
    finally:
        os.close(rfd)
    return counts


# -- mutate --------------------------------------------------------------

def _split(rel):
    parts = rel.split(b"/")
    return parts[:-1], parts[-1]


class _At:
    """(parent fd, name) of a relative path; a context manager."""

    def __init__(self, rfd, rel):
        self.parts, self.name = _split(rel)
        self.rfd = rfd

    def __enter__(self):
        self.fd = _open_rel(self.rfd, self.parts)
        # a 0555 parent: let us write (as non-root); restored by the caller
        st = os.fstat(self.fd)
        self.mode = stat.S_IMODE(st.st_mode)
        if os.geteuid() != 0 and not self.mode & 0o200:
            os.fchmod(self.fd, self.mode | 0o700)
        return self.fd, self.name

    def __exit__(self, *a):
        if os.geteuid() != 0 and not self.mode & 0o200:
            os.fchmod(self.fd, self.mode)
        os.close(self.fd)


def _rm_at(dfd, name):
    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dfd)
        return
    fd = os.open(name, O_DIR, dir_fd=dfd)
    try:
        os.fchmod(fd, 0o700)
        for n in os.listdir(fd):
            _rm_at(fd, os.fsencode(n))
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dfd)


OPS = ["modify", "modify", "sneaky", "append", "delete-file", "delete-dir",
       "rename", "rename", "add-file", "add-file", "file-to-dir",
       "dir-to-file", "file-to-symlink", "symlink-to-file", "chmod", "touch",
       "touch-dir", "hardlink-add", "hardlink-break", "xattr",
       "symlink-retarget"]


def mutate(root, seed, ops=30):
    """Apply ops random changes; returns a list of "op path" strings."""
    rng = random.Random(seed * 7919 + 17)
    name = Namer(rng)
    name.n = 100000 + rng.randrange(100000)
    state = {"xattrs": True, "owners": []}
    done = []
    rfd = os.open(os.fsencode(root), O_DIR)
    try:
        for _ in range(ops * 3):
            if len(done) >= ops:
                break
            ents = treecmp.scan(root, content=False, xattrs=False)
            files = [r for r, e in ents.items() if e.type == "file"]
            dirs = [r for r, e in ents.items() if e.type == "dir" and r]
            links = [r for r, e in ents.items() if e.type == "symlink"]
            multi = [r for r in files if ents[r].nlink > 1]
            op = rng.choice(OPS)
            pool = {"modify": files, "sneaky": files, "append": files,
                    "delete-file": files, "delete-dir": dirs,
                    "rename": files + dirs + links, "file-to-dir": files,
                    "dir-to-file": dirs, "file-to-symlink": files,
                    "symlink-to-file": links, "chmod": files + dirs,
                    "touch": files + links, "touch-dir": dirs,
                    "hardlink-add": files, "hardlink-break": multi,
                    "xattr": files, "symlink-retarget": links,
                    "add-file": [b""] + dirs}[op]
            if not pool:
                continue
            rel = rng.choice(pool)
            _apply(rfd, ents, op, rel, rng, name, state, dirs)
            done.append("%s %s" % (op, treecmp.short_path(rel)))
    finally:
        os.close(rfd)
    return done


def _apply(rfd, ents, op, rel, rng, name, state, dirs):
    e = ents[rel]
    if op == "add-file":
        with _At(rfd, (rel + b"/" if rel else b"") + b"new") as (pfd, _):
            _write_file(pfd, name(), rng, rand_size(rng), 0o644, state)
        return
    with _At(rfd, rel) as (pfd, n):
        if op in ("modify", "append", "sneaky"):
            fd = os.open(n, os.O_RDWR | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                if op == "append":
                    os.lseek(fd, 0, os.SEEK_END)
                    os.write(fd, rng.randbytes(rng.randrange(1, 5000)))
                elif op == "sneaky":       # same size, same mtime
                    if e.size == 0:
                        os.write(fd, b"!")
                    else:
                        os.pwrite(fd, bytes(b ^ 0x5A for b in os.pread(
                            fd, min(e.size, 4096), 0)), 0)
                else:
                    os.ftruncate(fd, 0)
                    os.write(fd, rand_bytes(rng, rand_size(rng)))
            finally:
                os.close(fd)
            if op == "sneaky" and e.size:
                os.utime(n, ns=(e.mtime_ns, e.mtime_ns), dir_fd=pfd,
                         follow_symlinks=False)
            else:
                os.utime(n, ns=(rand_mtime(rng), rand_mtime(rng)),
                         dir_fd=pfd, follow_symlinks=False)
        elif op in ("delete-file", "delete-dir"):
            _rm_at(pfd, n)
        elif op == "rename":
            dest = rng.choice([b""] + [d for d in dirs
                                       if not d.startswith(rel + b"/")
                                       and d != rel])
            dfd = _open_rel(rfd, dest.split(b"/") if dest else [])
            try:
                os.rename(n, name(), src_dir_fd=pfd, dst_dir_fd=dfd)
            finally:
                os.close(dfd)
        elif op == "file-to-dir":
            os.unlink(n, dir_fd=pfd)
            os.mkdir(n, 0o750, dir_fd=pfd)
            fd = os.open(n, O_DIR, dir_fd=pfd)
            try:
                _write_file(fd, b"inside", rng, rand_size(rng), 0o644, state)
                os.utime(fd, ns=(rand_mtime(rng), rand_mtime(rng)))
            finally:
                os.close(fd)
        elif op == "dir-to-file":
            _rm_at(pfd, n)
            _write_file(pfd, n, rng, rand_size(rng), 0o600, state)
        elif op == "file-to-symlink":
            os.unlink(n, dir_fd=pfd)
            os.symlink(b"was-a-file", n, dir_fd=pfd)
        elif op == "symlink-to-file":
            os.unlink(n, dir_fd=pfd)
            _write_file(pfd, n, rng, rand_size(rng), 0o644, state)
        elif op == "symlink-retarget":
            os.unlink(n, dir_fd=pfd)
            os.symlink(b"retargeted/" + name(), n, dir_fd=pfd)
            os.utime(n, ns=(rand_mtime(rng), rand_mtime(rng)), dir_fd=pfd,
                     follow_symlinks=False)
        elif op == "chmod":
            m = rng.choice(DIR_MODES if e.type == "dir" else FILE_MODES)
            if m == e.mode:
                m ^= 0o020
            os.chmod(n, m, dir_fd=pfd)
        elif op in ("touch", "touch-dir"):
            os.utime(n, ns=(rand_mtime(rng), rand_mtime(rng)), dir_fd=pfd,
                     follow_symlinks=False)
        elif op == "hardlink-add":
            dest = rng.choice([b""] + dirs)
            dfd = _open_rel(rfd, dest.split(b"/") if dest else [])
            try:
                os.link(n, name(), src_dir_fd=pfd, dst_dir_fd=dfd,
                        follow_symlinks=False)
            finally:
                os.close(dfd)
        elif op == "hardlink-break":   # replace one name with a copy
            fd = os.open(n, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                data = b""
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    data += b
            finally:
                os.close(fd)
            tmp = b"copy-" + name()
            wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600,
                          dir_fd=pfd)
            try:
                os.write(wfd, data)
                os.fchmod(wfd, e.mode)
            finally:
                os.close(wfd)
            os.utime(tmp, ns=(e.mtime_ns, e.mtime_ns), dir_fd=pfd)
            os.rename(tmp, n, src_dir_fd=pfd, dst_dir_fd=pfd)
        elif op == "xattr":
            fd = os.open(n, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                _set_xattr(fd, rng, state)
            finally:
                os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("root")
    g.add_argument("seed", type=int)
    g.add_argument("--files", type=int, default=250)
    g.add_argument("--no-deep", action="store_true")
    g.add_argument("--no-sparse", action="store_true")
    g.add_argument("--no-hardlinks", action="store_true")
    g.add_argument("--plain-names", action="store_true")
    m = sub.add_parser("mutate")
    m.add_argument("root")
    m.add_argument("seed", type=int)
    m.add_argument("--ops", type=int, default=30)
    a = ap.parse_args()
    if a.cmd == "generate":
        c = generate(a.root, a.seed, files=a.files, deep=not a.no_deep,
                     sparse=not a.no_sparse, hardlinks=not a.no_hardlinks,
                     odd=not a.plain_names)
        print(" ".join("%s=%d" % kv for kv in sorted(c.items())))
    else:
        for line in mutate(a.root, a.seed, a.ops):
            print(line)


if __name__ == "__main__":
    main()
