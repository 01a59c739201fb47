#!/usr/bin/env python3
"""test_faults.py: per-file problems never sink a run; disk full fails it
cleanly.

  --case diskfull    a small tmpfs as destination (root): a run that does not
                     fit ends failed (exit 4) naming the lack of space, files
                     of the earlier backup stay intact, no temp file is left,
                     and a run that fits again succeeds.
  --case fifo        a FIFO and a socket in the source: the run does not hang
                     (30 s limit), ends partial (exit 3), and `vigil log RUN`
                     lists both by path; the other files are copied.
  --case deep        a tree 1,100 folders deep (deeper than the walks go):
                     backup and archive runs end partial naming the folder
                     at the limit "too-deep", copy what is above it, and
                     do not crash.
  --case threads    VIGIL_COPY_THREADS set to junk is named in a warning and
                     ignored; 0 (no copier threads) and 3 give the same
                     copy as the default.
  --case unreadable  a chmod 000 file and folder, backed up by an
                     unprivileged test user (root ignores modes, so as root
                     this could not fail): listed by path, exit 3, the other
                     files copied.

Without root, diskfull and unreadable print SKIPPED and exit 77 (a failure
under CI=true)."""

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import treecmp  # noqa: E402
from vtest import (RC_FAILED, RC_OK, RC_PARTIAL, Test, Vigil, describe,  # noqa: E402,E501
                   escape_path, find_tmp_leftovers, have_root, job_ini,
                   rmtree, short_path)

KIB, MIB = 1024, 1024 * 1024


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=20).hexdigest()


def problem_listed(t, v, job, rels, what):
    """Check that the last run of job lists each rel (bytes) by path in both
    `vigil log RUN` forms; return the record."""
    rec = v.last_run(job)
    log = v.log(rec["id"])
    # docs/protocol.md: the problem files are under "problems" ("files"
    # is the count of files seen); the first CLI contract called it "files"
    files = log.get("problems")
    if not isinstance(files, list) and isinstance(log.get("files"), list):
        files = log["files"]
    t.check(isinstance(files, list), "%s: log --json has a problems list"
            % what, repr(log)[:2000])
    files = files or []
    p = v.ok("log", str(rec["id"]))
    text = p.stdout.decode("utf-8", "replace")
    for rel in rels:
        esc = escape_path(rel)
        hits = [f for f in files if isinstance(f, dict) and
                (f.get("path") == esc or
                 str(f.get("path", "")).endswith("/" + esc))]
        t.check(hits and all(h.get("problem") for h in hits),
                "%s: log --json lists %s with a problem (%s)"
                % (what, esc, hits[0].get("problem") if hits else "absent"),
                "problems: %r" % files)
        t.check(esc in text, "%s: `vigil log %s` shows %s"
                % (what, rec["id"], esc), text)
    return rec


# -- disk full ---------------------------------------------------------------

def case_diskfull(t):
    if not have_root():
        t.skip("disk full needs a tmpfs mount, which needs root")
    mnt = t.path("small")
    os.mkdir(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0755",
                        "vigil-test", mnt], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if p.returncode != 0:
        t.skip("mount -t tmpfs failed: %s" % p.stdout.decode().strip())
    t.cleanups.append(lambda: subprocess.run(["umount", "-l", mnt]))
    src, dst = t.path("src"), os.path.join(mnt, "dst")
    os.mkdir(src)
    rng = __import__("random").Random(5)
    for i in range(12):
        write(os.path.join(src, "old%02d" % i), rng.randbytes(100 * KIB))
    old = {n: digest(os.path.join(src, n)) for n in os.listdir(src)}
    v = Vigil(t, t.path("state"))
    v.import_jobs(job_ini("full", src, dst, mode="mirror", keep_versions=2))
    v.run_expect("full", rc=RC_OK, what="first backup, fits")
    d, _ = treecmp.compare_trees(src, dst)
    t.check(not d, "first backup equals the source", "\n".join(d))

    # grow past the 6 MiB and change one old file (a version is due)
    write(os.path.join(src, "old00"), rng.randbytes(100 * KIB))
    new00 = digest(os.path.join(src, "old00"))
    for i in range(3):
        write(os.path.join(src, "big%d" % i), rng.randbytes(3 * MIB))
    p = v.run_expect("full", rc=RC_FAILED, what="backup that does not fit")
    out = (p.stdout + p.stderr).decode("utf-8", "replace").lower()
    t.check(any(w in out for w in ("no space", "enospc", "disk full",
                                   "not enough space")),
            "the failure names the lack of space", describe(p))
    rec = v.last_run("full")
    t.check(rec.get("status") == "failed", "the run record says failed (%s)"
            % rec.get("status"), repr(rec))
    intact = [n for n in old if n != "old00" and
              os.path.exists(os.path.join(dst, n)) and
              digest(os.path.join(dst, n)) == old[n]]
    t.check(len(intact) == len(old) - 1, "%d of %d untouched old files "
            "intact at the destination" % (len(intact), len(old) - 1))
    d00 = digest(os.path.join(dst, "old00")) \
        if os.path.exists(os.path.join(dst, "old00")) else None
    t.check(d00 in (old["old00"], new00), "the changed file is old or new, "
            "never torn (%s)" % ("old" if d00 == old["old00"] else
                                 "new" if d00 == new00 else repr(d00)))
    left = find_tmp_leftovers(dst)
    t.check(not left, "no .vigil-tmp-* left on the full disk",
            "\n".join(short_path(x) for x in left))
    for n in list(os.listdir(dst)):
        if n.startswith("big"):
            sz = os.path.getsize(os.path.join(dst, n))
            t.check(sz == 3 * MIB, "a big file at the destination is whole "
                    "(%s, %d bytes)" % (n, sz))
    # make room: the next run completes
    for i in range(3):
        os.unlink(os.path.join(src, "big%d" % i))
    v.run_expect("full", rc=RC_OK, what="run after the source shrank")
    d, _ = treecmp.compare_trees(src, dst)
    t.check(not d, "after making room the destination equals the source",
            "\n".join(d))


# -- FIFO and socket ---------------------------------------------------------

def case_fifo(t):
    src, dst = t.path("src"), t.path("dst")
    os.mkdir(src)
    os.mkdir(os.path.join(src, "sub"))
    for i in range(5):
        write(os.path.join(src, "f%d" % i), b"data %d\n" % i)
    fifo = b"sub/a fifo\nwith newline"
    os.mkfifo(os.path.join(os.fsencode(src), fifo))
    sock_rel = b"sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(src, "sock"))
    t.cleanups.append(s.close)
    v = Vigil(t, t.path("state"))
    v.import_jobs(job_ini("fifo", src, dst, mode="mirror"))
    p = v.run("fifo", timeout=30)
    t.check(p.returncode == RC_PARTIAL, "a FIFO and a socket in the source: "
            "the run ends partial, exit 3 (got %d), within 30 s"
            % p.returncode, describe(p))
    out = p.stdout.decode("utf-8", "replace")
    t.check(escape_path(fifo) in out, "the run summary lists the FIFO by "
            "path", describe(p))
    problem_listed(t, v, "fifo", [fifo, sock_rel], "fifo")
    for i in range(5):
        f = os.path.join(dst, "f%d" % i)
        t.check(os.path.isfile(f) and open(f, "rb").read() ==
                b"data %d\n" % i, "other file f%d copied" % i)
    t.check(os.path.isdir(os.path.join(dst, "sub")), "its folder copied")
    rec = v.last_run("fifo")
    t.check(rec.get("status") == "partial", "history says partial (%s)"
            % rec.get("status"))
    # a writer holding the FIFO open must not matter either: run again
    p = v.run("fifo", timeout=30)
    t.check(p.returncode == RC_PARTIAL, "second run: still partial, no hang "
            "(exit %d)" % p.returncode, describe(p))


# -- a hostile, very deep tree -----------------------------------------------

DEPTH = 1100        # more than ENGINE_MAX_DEPTH (1024)
LIMIT = 1024


def make_deep(root, depth):
    """root/d/d/.../d, depth folders, with a file f in each; built with
    directory fds (the path is far past PATH_MAX)."""
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(depth):
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644,
                          dir_fd=fd), "wb") as f:
            f.write(b"level %d\n" % i)
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)


def deep_levels(root):
    """How many levels of root hold their file f with the right content."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    n = 0
    try:
        while True:
            try:
                with open(os.open("f", os.O_RDONLY, dir_fd=fd), "rb") as f:
                    if f.read() != b"level %d\n" % n:
                        break
                n += 1
                nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            except OSError:
                break
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    return n


def case_deep(t):
    sys.setrecursionlimit(20000)    # the helpers that walk trees recurse
    src, dst, adst = t.path("src"), t.path("dst"), t.path("adst")
    make_deep(src, DEPTH)
    v = Vigil(t, t.path("state"))
    v.import_jobs(job_ini("deep", src, dst) + "\n" +
                  job_ini("deeparc", src, adst, mode="archive",
                          format="tar.gz"))
    for job in ("deep", "deeparc"):
        p = v.run(job, timeout=120)
        t.check(p.returncode == RC_PARTIAL, "%s: a tree %d folders deep: "
                "the run ends partial, exit 3 (got %d)"
                % (job, DEPTH, p.returncode), describe(p))
        rec = v.last_run(job)
        log = v.log(rec["id"])
        probs = [f for f in log.get("problems") or []
                 if isinstance(f, dict) and f.get("problem") == "too-deep"]
        t.check(len(probs) == 1, "%s: one folder is named too-deep (%d)"
                % (job, len(probs)), repr(log)[:1500])
        depth = probs[0]["path"].count("/") if probs else -1
        t.check(LIMIT - 2 <= depth <= LIMIT + 2, "%s: the folder named is "
                "at the limit, %d levels down (%d)" % (job, LIMIT, depth))
    n = deep_levels(dst)
    t.check(LIMIT - 2 <= n <= LIMIT + 2, "backup: the %d levels above the "
            "limit are copied (%d)" % (LIMIT, n))
    arcs = [f for f in os.listdir(adst) if f.endswith(".tar.gz")]
    t.check(len(arcs) == 1, "archive: one archive written (%s)" % arcs)
    t.check(find_tmp_leftovers(dst) == [], "no temp file left")


# -- the copier threads knob --------------------------------------------------

def case_threads(t):
    src = t.path("src")
    os.mkdir(src)
    for d in range(5):
        os.mkdir(os.path.join(src, "d%d" % d))
        for i in range(40):
            write(os.path.join(src, "d%d" % d, "f%d" % i),
                  b"content %d %d\n" % (d, i) * (i + 1))
    for n, val in enumerate(("abc", "-1", "0", "3")):
        dst = t.path("dst%d" % n)
        v = Vigil(t, t.path("state%d" % n),
                  env=dict(os.environ, VIGIL_COPY_THREADS=val))
        v.import_jobs(job_ini("th", src, dst))
        p = v.run("th", timeout=60)
        t.check(p.returncode == RC_OK, "VIGIL_COPY_THREADS=%s: the run "
                "ends ok (exit %d)" % (val, p.returncode), describe(p))
        warned = b"VIGIL_COPY_THREADS" in p.stderr
        t.check(warned == (val in ("abc", "-1")), "VIGIL_COPY_THREADS=%s: "
                "%s" % (val, "named in a warning" if val in ("abc", "-1")
                        else "no warning"), describe(p))
        diffs = treecmp.compare(treecmp.scan(src), treecmp.scan(
            dst, skip_vigil=True))
        t.check(not diffs, "VIGIL_COPY_THREADS=%s: destination equals "
                "source" % val, "\n".join(diffs[:20]))


# -- unreadable, as an unprivileged user -------------------------------------

USER = "vigiltest"


def ensure_user(t):
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    p = subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin",
                        "-c", "vigil test user", USER],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        t.skip("cannot create the test user %s: %s"
               % (USER, p.stdout.decode().strip()))
    return pwd.getpwnam(USER)


def case_unreadable(t):
    if not have_root():
        t.skip("the chmod 000 test runs as an unprivileged user, which "
               "needs root to set up")
    if not shutil.which("runuser"):
        t.skip("runuser is missing")
    pw = ensure_user(t)
    uid, gid = pw.pw_uid, pw.pw_gid
    # fixtures in a fresh folder under /tmp that the user can reach
    fix = tempfile.mkdtemp(prefix="vigil-unreadable-", dir="/tmp")
    os.chmod(fix, 0o755)
    t.cleanups.append(lambda: rmtree(fix))
    bindir = os.path.join(fix, "bin")
    os.mkdir(bindir)
    for b in (t.args.vigil, t.args.vigild):
        shutil.copy2(b, bindir)
    vigil = os.path.join(bindir, os.path.basename(t.args.vigil))
    src, out, state = (os.path.join(fix, x) for x in ("src", "out", "state"))
    dst = os.path.join(out, "dst")
    os.mkdir(src)
    os.mkdir(out)
    os.mkdir(state, 0o700)
    os.mkdir(os.path.join(src, "locked"))
    for i in range(4):
        write(os.path.join(src, "ok%d" % i), b"readable %d\n" % i)
    write(os.path.join(src, "secret file"), b"nobody may read this\n")
    write(os.path.join(src, "locked", "inside"), b"behind a locked folder\n")
    for root, dirs, files in os.walk(fix):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)
    os.chmod(os.path.join(src, "secret file"), 0)
    os.chmod(os.path.join(src, "locked"), 0)
    # the precondition that makes the test able to fail
    p = subprocess.run(["runuser", "-u", USER, "--", "cat",
                        os.path.join(src, "secret file")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not t.check(p.returncode != 0, "precondition: %s cannot read the "
                   "chmod 000 file" % USER, describe(p)):
        return
    v = Vigil(t, state, binary=vigil, as_user=USER,
              env={"HOME": fix, "XDG_STATE_HOME": state})
    v.import_jobs(job_ini("unreadable", src, dst, mode="backup"),
                  name="unreadable.ini")
    p = v.run("unreadable", timeout=60)
    t.check(p.returncode == RC_PARTIAL, "run as %s ends partial, exit 3 "
            "(got %d)" % (USER, p.returncode), describe(p))
    out_text = p.stdout.decode("utf-8", "replace")
    t.check("secret file" in out_text, "the run summary lists the "
            "unreadable file", describe(p))
    problem_listed(t, v, "unreadable", [b"secret file", b"locked"],
                   "unreadable")
    for i in range(4):
        f = os.path.join(dst, "ok%d" % i)
        t.check(os.path.isfile(f) and open(f, "rb").read() ==
                b"readable %d\n" % i, "readable file ok%d copied" % i)
    st = os.stat(os.path.join(dst, "ok0")) if os.path.exists(
        os.path.join(dst, "ok0")) else None
    t.check(st is not None and st.st_uid == uid, "copies belong to %s, the "
            "user who ran the job" % USER)
    leaked = os.path.exists(os.path.join(dst, "secret file")) and \
        open(os.path.join(dst, "secret file"), "rb").read() != b""
    t.check(not leaked, "no content of the unreadable file at the "
            "destination")


def main(t):
    {"diskfull": case_diskfull, "fifo": case_fifo, "deep": case_deep,
     "threads": case_threads,
     "unreadable": case_unreadable}[t.args.case](t)


if __name__ == "__main__":
    t = Test("faults", "disk full, FIFOs and unreadable files",
             add_args=lambda ap: ap.add_argument(
                 "--case", required=True,
                 choices=["diskfull", "fifo", "deep", "threads",
                          "unreadable"]))
    t.name = "faults-" + t.args.case
    t.main(main)
