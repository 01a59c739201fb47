#!/usr/bin/env python3
"""test_attacks.py: a local user attacks a root vigild in system mode.

vigild runs as root (`vigild --state-dir T --socket T/s.sock`).  The
attacker is the unprivileged test user vigilalice; vigilbob is the other
user who must read nothing of hers.  Every client and every racing process
runs as its user through runuser, so the service knows them only by
SO_PEERCRED.  Root's own files are a 0700 folder holding files with a
unique marker (ROOTD) and a 0755 folder of 0644 files (ROOTF); both are
fingerprinted (type, mode, owner, size, mtime in ns, SHA-256) before and
after every attack.

 1 swap   symlink swap during backups: while a run goes, a process of
          alice swaps a folder of the source for a symlink to ROOTD and
          back (renameat2 RENAME_EXCHANGE, or four renames) as fast as the
          pacing allows; at least 500 swaps inside runs, over runs of her
          backup job (with versions), her tar.gz archive job, and a root
          job over her folder (the worker then has every privilege, so
          only O_NOFOLLOW stands between it and ROOTD).  No byte of the
          marker may appear in any destination file, name, link, version,
          archive member or catalogue; a canary of hers must (the scan
          works).  Every run ends ok or partial, each problem named.
 2 restore  a symlink and a hard link planted at the restore target, and a
          parent folder of the target swapped for a symlink to ROOTD
          during restores (several hundred swaps), for a backup job and an
          archive job, restored by alice and by root.  Nothing outside the
          target changes, and no root file.
 3 planted  files, symlinks and hard links at the engine's temp names
          (.vigil-tmp-<run>-<n>, -added, .vigil-tmp-job.ini), the archive
          temp names (.vigil-tmp-<run>-archive / -manifest), a `.vigil`
          that is a symlink, the reflink staging folder
          (<mount root>/.vigil-staging-r<run>, on an XFS loop mount), and
          the socket path of a real vigild.
 4 hooks  pre and post commands of a job run through the service: they
          run with alice's uid, gid and groups (id -u, -g, -G), and `;`,
          `$()` and backticks reach them as literal argv.
 5 modes  every file vigil made in the state dir and the destinations is
          opened by vigilbob: he reads only copies whose source he could
          read (checked the same way), and `cat` as him agrees.

Needs root (useradd, runuser, loop mounts); exit 77 otherwise, a failure
under CI=true.  --case NAME runs one case."""

import grp
import hashlib
import json
import os
import pwd
import random
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_auth import ensure_users, owned_dir, write_as  # noqa: E402
from vtest import (RC_OK, RC_PARTIAL, Fatal, Service, SockVigil,  # noqa: E402,E501
                   Test, describe, have_root, job_ini, parse_iso, rmtree)

ALICE, BOB = "vigilalice", "vigilbob"
XGROUP = "vigilatk"         # a supplementary group of alice's (case 4)
CASES = ("swap", "restore", "restore-root", "planted", "planted-root",
         "hooks", "modes")
REPRODUCERS = ()                    # known holes, run only when named
SWAP_TRIES = 500            # swaps inside runs, case 1
RESTORE_TRIES = 300         # swaps inside restores, case 2c

# The attacker's racing process.  argv: pairs "PATH" (a real folder at
# PATH, a symlink at PATH.lnk).  stdin: "go PAUSE" starts swapping (one
# swap, then a random pause up to PAUSE s), "stop" ends it with every PATH
# a folder again and prints the swaps made as JSON [[t_to_link, t_back]].
RACER = r"""
import ctypes, json, os, random, select, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def exchange(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)
paths = sys.argv[1:]
targets = {p: os.readlink(p + ".lnk") for p in paths}
strays = 0
def fixup(p):
    # A restore may have made p again while it was away, or replaced the
    # symlink by a folder: put a folder at p and the symlink at p.lnk.
    global strays
    lnk, away = p + ".lnk", p + ".away"
    if os.path.islink(p):
        if os.path.lexists(lnk):
            strays += 1
            os.rename(lnk, "%s.stray%d" % (p, strays))
        os.rename(p, lnk)
    if os.path.lexists(away):
        if os.path.lexists(p):
            strays += 1
            os.rename(p, "%s.stray%d" % (p, strays))
        os.rename(away, p)
    if not os.path.islink(lnk):
        if os.path.lexists(lnk):
            strays += 1
            os.rename(lnk, "%s.stray%d" % (p, strays))
        os.symlink(targets[p], lnk)
def swap(p):
    try:
        return swap1(p)
    except OSError:
        fixup(p)
        return None
def swap1(p):
    lnk, away = p + ".lnk", p + ".away"
    if random.random() < 0.5:
        exchange(p, lnk)            # p is the symlink now
        t0 = time.time()
        time.sleep(random.random() * hold)
        exchange(p, lnk)
    else:
        os.rename(p, away)
        os.rename(lnk, p)           # p is the symlink now
        t0 = time.time()
        time.sleep(random.random() * hold)
        os.rename(p, lnk)
        os.rename(away, p)
    fixup(p)
    return [t0, time.time()]
running, pause, hold, stamps, buf = False, 0.01, 0.0, [], b""
while True:
    r, _, _ = select.select([0], [], [], random.random() * pause
                            if running else None)
    if r:
        c = os.read(0, 4096)
        if not c:
            break
        buf += c
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            w = line.decode().split()
            if w[0] == "go":
                running, pause, stamps = True, float(w[1]), []
                hold = pause / 4
            elif w[0] == "stop":
                running = False
                print(json.dumps(stamps), flush=True)
        continue
    w = swap(random.choice(paths))
    if w is not None:
        stamps.append(w)
"""

# Opens each path given on stdin (one per line, as JSON strings) as the
# user it runs as; prints the list of those it could read (files: one byte
# read; folders: listed).
OPENER = r"""
import json, os, sys
out = []
for line in sys.stdin:
    p = json.loads(line)
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            os.listdir(p)
        else:
            with open(p, "rb") as f:
                f.read(1)
        out.append(p)
    except OSError:
        pass
print(json.dumps(out))
"""

# A pre/post command: records who it runs as and the argv it got.
HOOK = r"""
import json, os, subprocess, sys
def idout(*a):
    return subprocess.run(["id"] + list(a), stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()
st = {}
with open("/proc/self/status") as f:
    for line in f:
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm"):
            st[k] = v.split()
rec = {"argv": sys.argv[2:], "uid": os.getuid(), "euid": os.geteuid(),
       "gid": os.getgid(), "egid": os.getegid(),
       "groups": sorted(os.getgroups()), "id_u": idout("-u"),
       "id_g": idout("-g"), "id_G": idout("-G"), "status": st,
       "cwd": os.getcwd()}
with open(sys.argv[1], "w") as f:
    json.dump(rec, f)
"""


def python3():
    """A python3 the test users may run (the test's own may live in a
    folder only root can enter)."""
    return next((x for x in ("/usr/bin/python3", "/usr/local/bin/python3")
                 if os.access(x, os.X_OK)), sys.executable)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def tree_state(root, exclude=(), links=True):
    """Everything about a tree that an attack could change: per entry its
    type, mode, owner, size, mtime (ns), link count, and content hash or
    link target.  exclude: absolute paths left out (with their subtrees)."""
    out = {}
    ex = {os.path.abspath(e) for e in exclude}

    def one(p, rel):
        st = os.lstat(p)
        k = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777, st.st_uid,
             st.st_gid, st.st_mtime_ns, st.st_nlink if links else 0)
        if stat.S_ISREG(st.st_mode):
            k += (st.st_size, sha(p))
        elif stat.S_ISLNK(st.st_mode):
            k += (os.readlink(p),)
        out[rel] = k
        if stat.S_ISDIR(st.st_mode):
            for n in sorted(os.listdir(p)):
                c = os.path.join(p, n)
                if c not in ex:
                    one(c, os.path.join(rel, n))
    one(os.path.abspath(root), ".")
    return out


def state_diff(a, b, limit=20):
    d = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            d.append("%s: %r -> %r" % (k, a.get(k), b.get(k)))
    return d[:limit]


class Racer:
    """The attacker's racing process, as alice."""

    def __init__(self, t, paths):
        self.p = subprocess.Popen(
            ["runuser", "-u", ALICE, "--", python3(), "-c", RACER] +
            list(paths), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        t.cleanups.append(self.close)
        self.t = t

    def go(self, pause):
        self.p.stdin.write(b"go %.6f\n" % pause)
        self.p.stdin.flush()

    def stop(self):
        self.p.stdin.write(b"stop\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise Fatal("the racer died: %s" % self.p.stderr.read()
                        .decode("utf-8", "replace"))
        return json.loads(line)

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def inside(stamps, t0, t1):
    """Swaps whose symlink time [a, b] overlaps [t0, t1]."""
    return sum(1 for a, b in stamps if b >= t0 and a <= t1)


def run_window(v, job, rid):
    for r in v.history(job):
        if r["id"] == rid:
            return parse_iso(r.get("started")), parse_iso(r.get("ended"))
    return None, None


class Env:
    """What every case shares: users, the root-only folders, the service."""

    def __init__(self, t):
        self.t = t
        ensure_users(t)
        try:
            grp.getgrnam(XGROUP)
        except KeyError:
            subprocess.run(["groupadd", "-r", XGROUP], check=True)
        if ALICE not in grp.getgrnam(XGROUP).gr_mem:
            subprocess.run(["usermod", "-a", "-G", XGROUP, ALICE],
                           check=True)
        self.pw = {u: pwd.getpwnam(u) for u in (ALICE, BOB)}
        # The many-file trees on tmpfs when there is one.
        base = "/dev/shm" if os.path.isdir("/dev/shm") else t.tmp
        self.base = tempfile.mkdtemp(prefix="vigil-attacks-", dir=base)
        os.chmod(self.base, 0o755)
        if not t.keep:
            t.cleanups.insert(0, lambda: rmtree(self.base))
        self.marker = ("VGLROOT%08x" % random.getrandbits(32)).encode()
        self.canary = ("VGLCANARY%08x" % random.getrandbits(32)).encode()
        # ROOTD: root only, with the marker in contents and a name.
        self.rootd = os.path.join(self.base, "rootonly")
        os.mkdir(self.rootd, 0o700)
        for i in range(5):
            with open(os.path.join(self.rootd, "secret%d" % i), "wb") as f:
                f.write(self.marker * 40 + b"\n")
        with open(os.path.join(self.rootd, self.marker.decode()), "wb") as f:
            f.write(b"named\n")
        os.mkdir(os.path.join(self.rootd, "inner"), 0o700)
        with open(os.path.join(self.rootd, "inner", "deep"), "wb") as f:
            f.write(self.marker + b"\n")
        # ROOTF: root's 0644 files, targets of planted links.
        self.rootf = os.path.join(self.base, "rootfiles")
        os.mkdir(self.rootf, 0o755)
        for i in range(12):
            p = os.path.join(self.rootf, "victim%d" % i)
            with open(p, "wb") as f:
                f.write(b"root's file %d " % i + self.marker + b"\n")
            os.chmod(p, 0o644)
        old = time.time() - 86400 * 30
        for n in os.listdir(self.rootf):
            os.utime(os.path.join(self.rootf, n), (old, old))
        self.home = owned_dir(os.path.join(self.base, "alice"), ALICE,
                              0o755)
        self.rootdst = os.path.join(self.base, "rootdst")
        os.mkdir(self.rootdst, 0o700)
        self.state = t.path("state")
        self.sock = t.path("s.sock")
        self.svc = Service(t, ["--state-dir", self.state, "--socket",
                               self.sock], self.sock,
                           name="vigild-system").start()
        self.va = SockVigil(t, self.sock, as_user=ALICE)
        self.vb = SockVigil(t, self.sock, as_user=BOB)
        self.vr = SockVigil(t, self.sock)
        self.njobs = 0
        self.sources = {}       # destination -> source, for case 5

    def root_state(self):
        return tree_state(self.rootd), tree_state(self.rootf)

    def check_root(self, before, what):
        after = self.root_state()
        d = state_diff(before[0], after[0]) + state_diff(before[1],
                                                         after[1])
        self.t.check(not d, "%s: no root file changed (%d entries of ROOTD "
                     "and ROOTF fingerprinted)" % (what, len(after[0]) +
                                                   len(after[1])),
                     "\n".join(d))

    def import_as(self, who, text):
        """Import jobs as alice (who = 'alice') or root ('root')."""
        self.njobs += 1
        f = os.path.join(self.home, "jobs%d.ini" % self.njobs)
        write_as(f, text, ALICE, 0o644)
        v = self.va if who == "alice" else self.vr
        v.ok("jobs", "import", f)

    def next_run_id(self):
        h = self.vr.history()
        return max([r["id"] for r in h] + [0]) + 1

    def afile(self, path, data, mode=0o644):
        with open(path, "wb") as f:
            f.write(data)
        pw = self.pw[ALICE]
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)

    def adir(self, path, mode=0o755):
        return owned_dir(path, ALICE, mode)

    def asymlink(self, target, path):
        os.symlink(target, path)
        os.lchown(path, self.pw[ALICE].pw_uid, self.pw[ALICE].pw_gid)


def run_sane(t, v, job, rid, what):
    """The run record: ok or partial, and a partial run names each
    problem by path.  Returns the log record."""
    log = v.log(rid)
    probs = log.get("problems") or []
    st = log.get("status")
    good = st in ("ok", "partial") and (
        (st == "ok" and not probs) or
        (st == "partial" and (probs or (log.get("message") or "") or
                              (log.get("details") or {}).get("warnings")))
    ) and all(isinstance(p, dict) and p.get("path") and p.get("problem")
              for p in probs)
    t.check(good, "%s: run %d is %s, %d problem(s) each named by path" %
            (what, rid, st, len(probs)), json.dumps(log, indent=1)[:3000])
    return log


def scan_tree(root, needles):
    """Every needle found under root: in names, link targets, file
    contents, and members of tar/zip archives (names, links, contents).
    Returns (hits: list of (needle, where), files scanned)."""
    hits, n = [], 0

    def look(data, where):
        for nd in needles:
            if nd in data:
                hits.append((nd, where))

    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            look(os.fsencode(name), "name " + p)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                look(os.fsencode(os.readlink(p)), "link " + p)
            elif stat.S_ISREG(st.st_mode):
                n += 1
                with open(p, "rb") as f:
                    look(f.read(), "content " + p)
                if tarfile.is_tarfile(p):
                    with tarfile.open(p) as tf:
                        for m in tf:
                            look(m.name.encode(), "tar name %s:%s" % (
                                p, m.name))
                            look(m.linkname.encode(), "tar link %s:%s" % (
                                p, m.name))
                            if m.isfile():
                                n += 1
                                look(tf.extractfile(m).read(),
                                     "tar member %s:%s" % (p, m.name))
                elif zipfile.is_zipfile(p):
                    with zipfile.ZipFile(p) as zf:
                        for m in zf.infolist():
                            n += 1
                            look(m.filename.encode(), "zip name " + p)
                            look(zf.read(m), "zip member %s:%s" % (
                                p, m.filename))
    return hits, n


# -- case 1: symlink swap during backups --------------------------------------

def make_swap_source(e, src):
    e.adir(src)
    for d in range(8):
        sd = e.adir(os.path.join(src, "d%d" % d))
        for i in range(150):
            e.afile(os.path.join(sd, "f%03d" % i), b"alice %d %d\n" % (d, i)
                    * 20)
    e.afile(os.path.join(src, "canary.txt"), e.canary + b"\n")
    sw = e.adir(os.path.join(src, "swap"))
    for i in range(200):
        e.afile(os.path.join(sw, "s%03d" % i), b"swap %d\n" % i * 20)
    e.adir(os.path.join(sw, "sub"))
    for i in range(50):
        e.afile(os.path.join(sw, "sub", "t%02d" % i), b"sub %d\n" % i)
    e.asymlink(e.rootd, os.path.join(src, "swap.lnk"))


def touch_all(e, src, gen):
    """Rewrite the source's files so that the next run copies (and
    versions) them again."""
    for d, _, files in os.walk(src):
        for n in files:
            p = os.path.join(d, n)
            if n == "canary.txt" or os.path.islink(p):
                continue
            e.afile(p, b"gen %d %s\n" % (gen, n.encode()) * 20)


def case_swap(t, e):
    before = e.root_state()
    src = os.path.join(e.home, "src")
    make_swap_source(e, src)
    dst = os.path.join(e.home, "dst-swap")
    adst = os.path.join(e.home, "dst-swaparc")
    rdst = os.path.join(e.rootdst, "swap")
    e.import_as("alice", job_ini("swap", src, dst, keep_versions=5) +
                job_ini("swaparc", src, adst, mode="archive",
                        format="tar.gz", compression=1))
    e.import_as("root", job_ini("rootswap", src, rdst, keep_versions=5))
    e.sources[dst] = e.sources[adst] = src
    racer = Racer(t, [os.path.join(src, "swap")])
    # Calibrate: one run without the racer.
    t0 = time.monotonic()
    p = e.va.run("swap")
    dur = time.monotonic() - t0
    t.check(p.returncode == RC_OK, "swap: a first run without the racer "
            "ends ok (%.2f s)" % dur, describe(p))
    plan = [("swap", e.va)] * 4 + [("swaparc", e.va)] * 2 + \
        [("rootswap", e.vr)] * 2
    per = SWAP_TRIES // len(plan) + 10
    tries = mid = runs = link_seen = 0
    gen = 0
    durs = {}
    i = 0
    while mid < SWAP_TRIES and runs < 3 * len(plan):
        job, v = plan[i % len(plan)]
        i += 1
        gen += 1
        touch_all(e, src, gen)
        # Pace the swaps so that about `per` fall inside the run.
        d = durs.get(job, dur)
        racer.go(2.0 * d / per)
        p = v.run(job)
        stamps = racer.stop()
        runs += 1
        rec = v.last_run(job)
        t0, t1 = run_window(v, job, rec["id"])
        n = inside(stamps, t0, t1) if t0 and t1 else 0
        durs[job] = max(0.05, (t1 - t0) if t0 and t1 else d)
        tries += len(stamps)
        mid += n
        t.check(p.returncode in (RC_OK, RC_PARTIAL), "swap: run %d of %s "
                "under attack exits 0 or 3 (got %d; %d swaps, %d inside "
                "the run)" % (rec["id"], job, p.returncode, len(stamps), n),
                describe(p))
        run_sane(t, v, job, rec["id"], "swap")
        for root in (dst, rdst):
            q = os.path.join(root, "swap")
            if job != "swaparc" and os.path.islink(q):
                link_seen += 1
    racer.close()
    t.info("swap: %d runs, %d swaps made, %d inside a run (attacker's "
           "races), destination `swap` seen as a symlink after %d runs"
           % (runs, tries, mid, link_seen))
    t.check(mid >= SWAP_TRIES, "swap: at least %d swaps happened inside "
            "runs (%d)" % (SWAP_TRIES, mid))
    hits, n = scan_tree(dst, [e.marker, e.canary])
    hits2, n2 = scan_tree(adst, [e.marker, e.canary])
    hits3, n3 = scan_tree(rdst, [e.marker, e.canary])
    hits4, n4 = scan_tree(e.state, [e.marker])
    allhits = hits + hits2 + hits3 + hits4
    bad = [h for h in allhits if h[0] == e.marker]
    t.check(not bad, "swap: the marker appears nowhere: %d files and "
            "archive members scanned in alice's destination (versions "
            "included), her archives, root's destination and the state "
            "dir" % (n + n2 + n3 + n4),
            "\n".join(w for _, w in bad[:20]))
    can = {r for r, h in (("alice", hits), ("archive", hits2),
                          ("root", hits3)) if any(x[0] == e.canary
                                                  for x in h)}
    t.check(can == {"alice", "archive", "root"}, "swap: the canary is "
            "found in each of the three (the scan reads contents and "
            "archive members): %s" % sorted(can))
    vers = os.path.join(dst, ".vigil", "versions")
    nv = sum(len(f) for _, _, f in os.walk(vers)) if os.path.isdir(vers) \
        else 0
    t.check(nv > 0, "swap: alice's destination holds versions (%d files), "
            "scanned too" % nv)
    narc = len([x for x in os.listdir(adst) if x.endswith(".tar.gz")])
    t.check(narc >= 2, "swap: %d tar.gz archives were scanned" % narc)
    e.check_root(before, "swap")


# -- case 2: restore attacks -------------------------------------------------

def make_restore_source(e, src):
    e.adir(src)
    for i in range(10):
        e.afile(os.path.join(src, "f%d" % i), b"top %d\n" % i)
    e.adir(os.path.join(src, "sub"))
    for i in range(300):
        e.afile(os.path.join(src, "sub", "g%03d" % i), b"sub %d\n" % i * 30)
    e.adir(os.path.join(src, "deep", "a", "b"))
    for i in range(100):
        e.afile(os.path.join(src, "deep", "a", "b", "h%03d" % i),
                b"deep %d\n" % i * 30)


def restore(e, who, job, to, *extra):
    v = e.va if who == "alice" else e.vr
    name = job if who == "alice" else "%s:%s" % (ALICE, job)
    return v.cmd("restore", name, "--to", to, *extra, timeout=300)


def case_restore(t, e):
    src = os.path.join(e.home, "rsrc")
    make_restore_source(e, src)
    dst = os.path.join(e.home, "rdst")
    adst = os.path.join(e.home, "rarc")
    e.import_as("alice", job_ini("rjob", src, dst) +
                job_ini("rarc", src, adst, mode="archive", format="tar.gz",
                        compression=1))
    e.sources[dst] = e.sources[adst] = src
    for j in ("rjob", "rarc"):
        e.va.run_expect(j, rc=RC_OK, what="restore: the backup")
    outside = [e.base]
    ntarget = 0

    def target():
        nonlocal ntarget
        ntarget += 1
        return e.adir(os.path.join(e.home, "rt%d" % ntarget))

    # (a) symlinks planted at the target, to a root file and ROOTD;
    # (b) a hard link at the target to a root file alice cannot write.
    hl_user = None
    for job in ("rjob", "rarc"):
        for who in ("alice", "root"):
            T = target()
            e.asymlink(os.path.join(e.rootf, "victim1"),
                       os.path.join(T, "f0"))
            e.asymlink(e.rootd, os.path.join(T, "sub"))
            e.asymlink(e.rootf, os.path.join(T, "deep"))
            # Fingerprints before the hard link: replacing the planted
            # name brings root's file back to one link.
            before = e.root_state()
            out_before = tree_state(e.base, exclude=[T])
            try:
                subprocess.run(["runuser", "-u", ALICE, "--", "ln",
                                os.path.join(e.rootf, "victim2"),
                                os.path.join(T, "f1")], check=True,
                               stderr=subprocess.PIPE)
                hl_user = True
            except subprocess.CalledProcessError as ex:
                hl_user = False if hl_user is None else hl_user
                hl_err = ex.stderr.decode().strip()
                os.link(os.path.join(e.rootf, "victim2"),
                        os.path.join(T, "f1"))
            p = restore(e, who, job, T, "--overwrite")
            t.check(p.returncode in (0, 1), "restore (a,b) %s by %s: exits "
                    "0 or 1 (%d)" % (job, who, p.returncode), describe(p))
            e.check_root(before, "restore (a,b) %s by %s" % (job, who))
            d = state_diff(out_before, tree_state(e.base, exclude=[T]))
            t.check(not d, "restore (a,b) %s by %s: nothing outside the "
                    "target changed" % (job, who), "\n".join(d))
            f0, f1 = os.path.join(T, "f0"), os.path.join(T, "f1")
            kinds = []
            for q, want in ((f0, b"top 0\n"), (f1, b"top 1\n")):
                if os.path.islink(q):
                    kinds.append("%s kept as a symlink" % os.path.basename(
                        q))
                    ok = os.path.basename(q).encode() in p.stderr
                else:
                    with open(q, "rb") as f:
                        ok = f.read() == want and os.stat(q).st_nlink == 1
                    kinds.append("%s replaced by the backup copy" %
                                 os.path.basename(q))
                t.check(ok, "restore (a,b) %s by %s: %s" % (
                    job, who, kinds[-1]), describe(p))
            t.info("restore (a,b) %s by %s: %s; sub and deep: %s" % (
                job, who, ", ".join(kinds), "symlinks kept, error named"
                if os.path.islink(os.path.join(T, "sub")) else "replaced"))
    if hl_user:
        t.info("restore (b): alice could hard-link root's file herself")
    else:
        t.info("restore (b): protected_hardlinks stopped alice linking "
               "root's file (%s); root made the link" % hl_err)

    # (c) a parent folder of the target swapped for a symlink to ROOTD
    # (sub) or ROOTF (deep/a) while restores run.
    T = target()
    e.adir(os.path.join(T, "deep"))
    for q, ln in (("sub", e.rootd), ("deep/a", e.rootf)):
        e.adir(os.path.join(T, q))
        e.asymlink(ln, os.path.join(T, q + ".lnk"))
    racer = Racer(t, [os.path.join(T, "sub"), os.path.join(T, "deep", "a")])
    before = e.root_state()
    out_before = tree_state(e.base, exclude=[T])
    plan = [("rjob", "alice"), ("rjob", "root"), ("rarc", "alice"),
            ("rarc", "root")]
    per = RESTORE_TRIES // 8 + 5
    dur = {}
    mid = tries = n = 0
    rcs = {}
    while mid < RESTORE_TRIES and n < 48:
        job, who = plan[n % len(plan)]
        n += 1
        for r, _, fs in os.walk(T):     # so that every file is written
            for f in fs:
                os.utime(os.path.join(r, f), (1, 1), follow_symlinks=False)
        racer.go(2.0 * dur.get((job, who), 0.3) / per)
        t0 = time.time()
        p = restore(e, who, job, T, "--overwrite")
        t1 = time.time()
        stamps = racer.stop()
        dur[(job, who)] = max(0.05, t1 - t0)
        k = inside(stamps, t0, t1)
        mid += k
        tries += len(stamps)
        rcs.setdefault((job, who), []).append(p.returncode)
        if p.returncode not in (0, 1):
            t.check(False, "restore (c): %s by %s exits %d" % (
                job, who, p.returncode), describe(p))
    racer.close()
    t.info("restore (c): %d restores, %d swaps, %d inside a restore; exit "
           "codes %s" % (n, tries, mid, json.dumps(
               {"%s by %s" % k: v for k, v in rcs.items()})))
    t.check(mid >= RESTORE_TRIES, "restore (c): at least %d swaps inside "
            "restores (%d)" % (RESTORE_TRIES, mid))
    e.check_root(before, "restore (c)")
    d = state_diff(out_before, tree_state(e.base, exclude=[T]))
    t.check(not d, "restore (c): nothing outside the target changed",
            "\n".join(d))
    # Restoring the original locations as root: alice's source itself is
    # now a symlink to ROOTF.  Nothing may land in ROOTF.
    os.rename(src, src + ".moved")
    e.asymlink(e.rootf, src)
    before = e.root_state()
    p = e.vr.cmd("restore", "%s:rjob" % ALICE, "--overwrite")
    e.check_root(before, "restore to the original place, whose folder "
                 "alice swapped for a symlink to ROOTF, by root (exit %d)"
                 % p.returncode)
    os.unlink(src)
    os.rename(src + ".moved", src)


def case_restore_root(t, e):
    """Root restores ROOT'S OWN jobs into places a user controls: an
    archive restore must not follow a parent folder swapped for a symlink
    mid-restore (scheduler/archive_restore.c: a child confined by chroot
    to the target), and a restore to the original place must not follow
    a source folder swapped for a symlink (scheduler/restore.c:
    plat_open_dir_safe)."""
    src = os.path.join(e.home, "rrsrc")
    make_restore_source(e, src)
    e.import_as("root", job_ini(
        "rootarc", src, os.path.join(e.rootdst, "rootarc"), mode="archive",
        format="tar.gz", compression=1) + job_ini(
        "rootbak", src, os.path.join(e.rootdst, "rootbak")))
    for j in ("rootarc", "rootbak"):
        e.vr.run_expect(j, rc=RC_OK, what="restore-root: the backup")
    T = e.adir(os.path.join(e.home, "rrt"))
    e.adir(os.path.join(T, "sub"))
    e.asymlink(e.rootd, os.path.join(T, "sub.lnk"))
    racer = Racer(t, [os.path.join(T, "sub")])
    before = e.root_state()
    mid = 0
    for k in range(12):
        racer.go(0.005)
        t0 = time.time()
        e.vr.cmd("restore", "rootarc", "--to", T, "--overwrite")
        t1 = time.time()
        mid += inside(racer.stop(), t0, t1)
    racer.close()
    e.check_root(before, "restore-root: root's archive job restored by "
                 "root into alice's folder, %d swaps of a parent inside "
                 "restores" % mid)
    os.rename(src, src + ".moved")
    e.asymlink(e.rootf, src)
    before = e.root_state()
    p = e.vr.cmd("restore", "rootbak", "--overwrite")
    e.check_root(before, "restore-root: root's backup job restored by "
                 "root to the original place, alice's source folder "
                 "swapped for a symlink to ROOTF (exit %d)" % p.returncode)
    os.unlink(src)
    os.rename(src + ".moved", src)


# -- case 3: pre-planted paths -----------------------------------------------

def plant_tmp(e, folder, run_ids, target, n=40):
    for r in run_ids:
        for i in range(1, n + 1):
            e.asymlink(target, os.path.join(folder, ".vigil-tmp-%d-%d" %
                                            (r, i)))


def case_planted(t, e):
    planted(t, e, False)


def case_planted_root(t, e):
    """Reproducers of two holes in root's jobs whose destination a user
    can write (not in the default run: the fixes belong in
    scheduler/engine_dest.c and scheduler/archive.c): the versions
    list's temp file .vigil-tmp-<run>-added is opened with O_TRUNC and
    no O_EXCL, so a hard link planted there (root makes it here; a user
    can where protected_hardlinks is 0) has root's file overwritten; and
    an archive job makes .vigil/archives through a `.vigil` symlink."""
    planted(t, e, True)


def planted(t, e, root_holes):
    src = os.path.join(e.home, "psrc")
    e.adir(os.path.join(src, "sub"))
    for i in range(20):
        e.afile(os.path.join(src, "a%02d" % i), b"a %d\n" % i)
        e.afile(os.path.join(src, "sub", "b%02d" % i), b"b %d\n" % i)
    v1 = os.path.join(e.rootf, "victim3")

    # Engine temp names, for alice's job and for a root job whose
    # destination sits in alice's folder (its worker is root).
    for who in (("root",) if root_holes else ("alice", "root")):
        dst = os.path.join(e.home, "pdst-" + who)
        job = "plant" + who
        e.import_as(who, job_ini(job, src, dst, keep_versions=3))
        v = e.va if who == "alice" else e.vr
        # Before the first run: .vigil, .vigil/versions and the temp
        # names are alice's.
        e.adir(dst)
        e.adir(os.path.join(dst, ".vigil"))
        e.adir(os.path.join(dst, ".vigil", "versions"))
        r = e.next_run_id()
        ids = [r, r + 1]
        plant_tmp(e, dst, ids, v1)
        e.adir(os.path.join(dst, "sub"))
        plant_tmp(e, os.path.join(dst, "sub"), ids, e.rootd)
        e.asymlink(v1, os.path.join(dst, ".vigil", ".vigil-tmp-job.ini"))
        before = e.root_state()
        # -added is opened with O_TRUNC: a hard link there to a root file
        # alice cannot write (root makes it: protected_hardlinks stops
        # her) for her job, a symlink for root's (see case_planted_root).
        for x in ids:
            q = os.path.join(dst, ".vigil", "versions",
                             ".vigil-tmp-%d-added" % x)
            if who == "alice" or root_holes:
                os.link(os.path.join(e.rootf, "victim4"), q)
            else:
                e.asymlink(os.path.join(e.rootf, "victim4"), q)
        for k in range(2):
            if k:
                for i in range(20):
                    e.afile(os.path.join(src, "a%02d" % i), b"A %d\n" % i)
            p = v.run(job)
            rid = v.last_run(job)["id"]
            t.check(p.returncode in (RC_OK, RC_PARTIAL), "planted temp "
                    "names, %s's job, run %d: exits 0 or 3 (%d)" % (
                        who, rid, p.returncode), describe(p))
            log = run_sane(t, v, job, rid, "planted temp names, %s's job"
                           % who)
            t.info("planted temp names, %s's job, run %d: %s, problems: %s"
                   % (who, rid, log.get("status"), "; ".join(
                       "%s %s" % (x.get("path"), x.get("problem"))
                       for x in (log.get("problems") or [])[:4])))
        e.check_root(before, "planted temp names, %s's job" % who)
        wrong = []
        for i in range(20):
            q = os.path.join(dst, "a%02d" % i)
            if os.path.islink(q) or not os.path.isfile(q) or \
                    open(q, "rb").read() != b"A %d\n" % i:
                wrong.append(q)
        t.check(not wrong, "planted temp names, %s's job: every copy is a "
                "regular file with the source's content" % who,
                "\n".join(wrong))

    if root_holes:
        dst = e.adir(os.path.join(e.home, "pvig-root-archive"))
        e.asymlink(e.rootd, os.path.join(dst, ".vigil"))
        e.import_as("root", job_ini("pvigroot", src, dst, mode="archive",
                                    format="tar.gz"))
        before = e.root_state()
        p = e.vr.run("pvigroot")
        e.check_root(before, "`.vigil` planted as a symlink to ROOTD, "
                     "root's archive job (exit %d)" % p.returncode)
        return
    # Archive temp names, and a `.vigil` that is a symlink.
    for who in ("alice", "root"):
        dst = e.adir(os.path.join(e.home, "parc-" + who))
        job = "parc" + who
        e.import_as(who, job_ini(job, src, dst, mode="archive",
                                 format="tar.gz", compression=1))
        v = e.va if who == "alice" else e.vr
        e.adir(os.path.join(dst, ".vigil"))
        e.adir(os.path.join(dst, ".vigil", "archives"))
        r = e.next_run_id()
        for x in (r, r + 1):
            e.asymlink(os.path.join(e.rootf, "victim6"), os.path.join(
                dst, ".vigil-tmp-%d-archive" % x))
            e.asymlink(os.path.join(e.rootf, "victim7"), os.path.join(
                dst, ".vigil", "archives", ".vigil-tmp-%d-manifest" % x))
        before = e.root_state()
        p = v.run(job)
        rid = v.last_run(job)["id"]
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        t.check(p.returncode in (RC_OK, RC_PARTIAL) or
                ("creating the" in out and "File exists" in out),
                "planted archive temp names, %s's job: the run ends ok or "
                "names the problem (exit %d)" % (who, p.returncode),
                describe(p))
        t.info("planted archive temp names, %s's job: exit %d: %s" % (
            who, p.returncode, " / ".join(x.strip() for x in
                                          out.splitlines()
                                          if "message" in x)))
        e.check_root(before, "planted archive temp names, %s's job" % who)
        for x in (r, r + 1):
            for q in (os.path.join(dst, ".vigil-tmp-%d-archive" % x),
                      os.path.join(dst, ".vigil", "archives",
                                   ".vigil-tmp-%d-manifest" % x)):
                if os.path.lexists(q):
                    t.check(os.path.islink(q), "%s is still alice's "
                            "symlink, not written through" % q)
    for who, kind in (("alice", "backup"), ("root", "backup"),
                      ("alice", "archive")):
        dst = e.adir(os.path.join(e.home, "pvig-%s-%s" % (who, kind)))
        e.asymlink(e.rootd, os.path.join(dst, ".vigil"))
        job = "pvig%s%s" % (who, kind)
        keys = {"mode": "archive", "format": "tar.gz"} if kind == \
            "archive" else {"keep_versions": 2}
        e.import_as(who, job_ini(job, src, dst, **keys))
        v = e.va if who == "alice" else e.vr
        before = e.root_state()
        p = v.run(job)
        e.check_root(before, "`.vigil` planted as a symlink to ROOTD, "
                     "%s's %s job (exit %d)" % (who, kind, p.returncode))
        t.check(os.path.islink(os.path.join(dst, ".vigil")) or
                p.returncode in (RC_OK, RC_PARTIAL),
                "`.vigil` symlink, %s's %s job: refused or replaced" % (
                    who, kind), describe(p))

    staging(t, e)
    socket_path(t, e)


def staging(t, e):
    """The reflink staging folder at the root of an XFS loop mount that
    every user may write (like a shared scratch disk)."""
    if not shutil.which("mkfs.xfs"):
        return staging_skip(t, "mkfs.xfs is missing")
    img, mnt = e.t.path("x.img"), e.t.path("xfs")
    with open(img, "wb") as f:
        f.truncate(320 << 20)
    os.mkdir(mnt)
    p = subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", img],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        return staging_skip(t, "mkfs.xfs: %s" % p.stdout.decode())
    p = subprocess.run(["mount", "-o", "loop", img, mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        return staging_skip(t, "loop mount: %s" % p.stdout.decode())
    t.cleanups.append(lambda: subprocess.run(["umount", "-l", mnt]))
    os.chmod(mnt, 0o1777)
    src = e.adir(os.path.join(mnt, "asrc"))
    for i in range(10):
        e.afile(os.path.join(src, "x%d" % i), b"on xfs %d\n" % i * 100)
    dst = os.path.join(e.home, "stgdst")
    e.sources[dst] = src
    e.import_as("alice", job_ini("stg", src, dst))
    # root's file on the same filesystem, for a planted hard link
    xroot = os.path.join(mnt, "rootfiles")
    os.mkdir(xroot, 0o755)
    vic = os.path.join(xroot, "victim")
    with open(vic, "wb") as f:
        f.write(b"root's file on xfs " + e.marker + b"\n")
    os.chmod(vic, 0o644)
    p = e.va.run("stg")
    rid = e.va.last_run("stg")["id"]
    log = e.va.log(rid)
    t.check(p.returncode == RC_OK and (log.get("capture") or {}).get(
        "reflink"), "staging: a first run clones through the staging "
        "folder (capture %s)" % json.dumps(log.get("capture")), describe(p))

    def plant_symlink(path):
        e.asymlink(e.rootd, path)

    def plant_file(path):
        e.afile(path, b"alice's file\n")

    def plant_alice_dir(path):
        e.adir(path, 0o777)
        e.asymlink(e.rootd, os.path.join(path, "link"))
        e.adir(os.path.join(path, "d"))
        e.asymlink(e.rootd, os.path.join(path, "d", "l2"))
        os.link(vic, os.path.join(path, "hard"))    # root: see case 2b

    def plant_bob_dir(path):
        owned_dir(path, BOB, 0o777)
        write_as(os.path.join(path, "bobs"), "bob's\n", BOB)

    for what, plant, accepted in (
            ("a symlink to ROOTD", plant_symlink, False),
            ("a regular file", plant_file, False),
            ("bob's folder", plant_bob_dir, False),
            ("alice's own folder with links to ROOTD and root's file",
             plant_alice_dir, True)):
        r = e.next_run_id()
        paths = [os.path.join(mnt, ".vigil-staging-r%d" % x)
                 for x in (r, r + 1)]
        for q in paths:
            plant(q)
        kept = {q: tree_state(q) for q in paths}
        before = e.root_state()
        xbefore = tree_state(xroot, links=False)
        for i in range(10):
            e.afile(os.path.join(src, "x%d" % i), b"%s %d\n" % (
                what.encode(), i) * 100)
        p = e.va.run("stg")
        rid = e.va.last_run("stg")["id"]
        log = e.va.log(rid)
        cap = log.get("capture") or {}
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        e.check_root(before, "staging planted as %s" % what)
        d = state_diff(xbefore, tree_state(xroot, links=False))
        t.check(not d, "staging planted as %s: root's file on the XFS "
                "mount is unchanged" % what, "\n".join(d))
        if accepted:
            t.check(p.returncode == RC_OK and cap.get("reflink"),
                    "staging planted as %s: taken over as her leftover and "
                    "emptied, clones made (capture %s)" % (
                        what, json.dumps(cap)), describe(p))
        else:
            t.check(p.returncode in (RC_OK, RC_PARTIAL) and
                    not cap.get("reflink") and "staging" in text,
                    "staging planted as %s: refused, the run falls back and "
                    "says why (capture %s)" % (what, json.dumps(cap)),
                    describe(p))
            d = state_diff(kept[paths[0]], tree_state(paths[0]))
            t.check(not d, "staging planted as %s: left untouched" % what,
                    "\n".join(d))
        with open(os.path.join(dst, "x3"), "rb") as f:
            t.check(f.read() == b"%s 3\n" % what.encode() * 100,
                    "staging planted as %s: the copy is right" % what)
        for q in paths:
            if os.path.islink(q) or os.path.isfile(q):
                os.unlink(q)
            elif os.path.isdir(q):
                rmtree(q)


def staging_skip(t, why):
    t.check(not t.ci, "staging: cannot run here: %s" % why)
    if not t.ci:
        t.info("staging: not tested: %s" % why)


def socket_path(t, e):
    """A real vigild refuses a symlink planted at its socket path and a
    socket folder that others may write (tests/unit/test_server.c checks
    the same in-process)."""
    d = os.path.join(e.base, "sockdir")
    os.mkdir(d, 0o755)
    vic = os.path.join(e.rootf, "victim9")
    os.symlink(vic, os.path.join(d, "s.sock"))
    d2 = os.path.join(e.base, "sockdir-open")
    os.mkdir(d2)
    os.chmod(d2, 0o777)     # not sticky (a sticky one is allowed)
    for what, sock in (("a symlink at the socket path",
                        os.path.join(d, "s.sock")),
                       ("a socket folder anyone may write",
                        os.path.join(d2, "s.sock"))):
        before = e.root_state()
        try:
            p = subprocess.run([t.args.vigild, "--state-dir",
                                t.path("state2"), "--socket", sock],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=10)
        except subprocess.TimeoutExpired:
            t.check(False, "socket: vigild refuses %s (it started)" % what)
            continue
        t.check(p.returncode != 0 and b"sock" in p.stdout.lower(),
                "socket: vigild refuses %s (exit %d: %s)" % (
                    what, p.returncode, p.stdout.decode().strip()
                    .splitlines()[-1] if p.stdout.strip() else ""),
                p.stdout)
        e.check_root(before, "socket: %s" % what)
    t.check(os.path.islink(os.path.join(d, "s.sock")), "socket: the "
            "planted symlink is left alone")


# -- case 4: hooks in service mode -------------------------------------------

def case_hooks(t, e):
    hook = os.path.join(e.home, "hook.py")
    e.afile(hook, HOOK.encode(), 0o755)
    outd = e.adir(os.path.join(e.home, "hookout"))
    src = e.adir(os.path.join(e.home, "hsrc"))
    e.afile(os.path.join(src, "f"), b"x\n")
    words = ["a;b", "$(touch pwned1)", "`touch pwned2`", "--option=x y",
             "c&&d|e>f"]
    arg = " ".join('"%s"' % w for w in words)
    py = python3()
    e.import_as("alice", job_ini(
        "hook", src, os.path.join(e.home, "hdst"),
        pre="%s %s %s/pre.json %s" % (py, hook, outd, arg),
        post="%s %s %s/post.json %s" % (py, hook, outd, arg)))
    e.sources[os.path.join(e.home, "hdst")] = src
    e.va.run_expect("hook", rc=RC_OK, what="hooks")
    pw = e.pw[ALICE]
    groups = sorted(os.getgrouplist(ALICE, pw.pw_gid))
    for ph in ("pre", "post"):
        f = os.path.join(outd, ph + ".json")
        if not t.check(os.path.exists(f), "hooks: the %s command ran" % ph):
            continue
        with open(f) as fh:
            r = json.load(fh)
        ids = (r["uid"], r["euid"], r["gid"], r["egid"])
        t.check(ids == (pw.pw_uid,) * 2 + (pw.pw_gid,) * 2 and
                r["status"]["Uid"] == [str(pw.pw_uid)] * 4 and
                r["status"]["Gid"] == [str(pw.pw_gid)] * 4,
                "hooks: %s ran as alice: uid/euid/suid/fsuid %s, gid %s "
                "(alice is %d:%d)" % (ph, r["status"]["Uid"],
                                      r["status"]["Gid"], pw.pw_uid,
                                      pw.pw_gid), json.dumps(r))
        t.check(r["id_u"] == str(pw.pw_uid) and r["id_g"] == str(pw.pw_gid)
                and sorted(int(x) for x in r["id_G"].split()) == groups and
                r["groups"] == groups,
                "hooks: %s: id -u %s, id -g %s, id -G %s are alice's (her "
                "groups %s, %s included)" % (ph, r["id_u"], r["id_g"],
                                             r["id_G"], groups, XGROUP),
                json.dumps(r))
        t.check(int(r["status"]["CapEff"][0], 16) == 0 and
                int(r["status"]["CapPrm"][0], 16) == 0,
                "hooks: %s has no capabilities (CapEff %s)" % (
                    ph, r["status"]["CapEff"][0]))
        t.check(r["argv"] == words, "hooks: %s got `;`, `$()`, backticks, "
                "`&&`, `|`, `>` as literal argv" % ph, json.dumps(r["argv"]))
        cwd = r["cwd"]
    pw_files = [os.path.join(d, n) for d in (outd, e.home, cwd, "/",
                                             e.state)
                for n in ("pwned1", "pwned2")
                if os.path.exists(os.path.join(d, n))]
    t.check(not pw_files, "hooks: no shell ran the words (no pwned "
            "files in the hook's folder %s or elsewhere)" % cwd,
            "\n".join(pw_files))


# -- case 5: modes -----------------------------------------------------------

def bob_can_read(paths):
    p = subprocess.run(["runuser", "-u", BOB, "--", python3(), "-c",
                        OPENER], input="\n".join(json.dumps(x) for x in
                                                 paths).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    if p.returncode != 0:
        raise Fatal("opener as bob failed: %s" % describe(p))
    return set(json.loads(p.stdout))


def bob_cat(path):
    return subprocess.run(["runuser", "-u", BOB, "--", "cat", path],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def all_paths(root):
    out = [root]
    for d, dirs, files in os.walk(root):
        out += [os.path.join(d, n) for n in dirs + files
                if not os.path.islink(os.path.join(d, n))]
    return out


def case_modes(t, e):
    import sqlite3
    src = e.adir(os.path.join(e.home, "msrc"))
    e.afile(os.path.join(src, "pub.txt"), b"public\n", 0o644)
    e.afile(os.path.join(src, "priv.txt"), b"private\n", 0o600)
    e.adir(os.path.join(src, "privdir"), 0o700)
    e.afile(os.path.join(src, "privdir", "inner.txt"), b"inner\n", 0o644)
    e.adir(os.path.join(src, "pubdir"), 0o755)
    e.afile(os.path.join(src, "pubdir", "priv2.txt"), b"p2\n", 0o600)
    e.afile(os.path.join(src, "pubdir", "pub2.txt"), b"q2\n", 0o644)
    db = os.path.join(src, "pubdir", "mail.db")
    c = sqlite3.connect(db)
    c.executescript("PRAGMA journal_mode=WAL; CREATE TABLE t(x);"
                    "INSERT INTO t VALUES ('private mail');")
    c.close()
    pw = e.pw[ALICE]
    for n in os.listdir(os.path.dirname(db)):
        if n.startswith("mail.db"):
            os.chown(os.path.join(os.path.dirname(db), n), pw.pw_uid,
                     pw.pw_gid)
            os.chmod(os.path.join(os.path.dirname(db), n), 0o600)
    dst = os.path.join(e.home, "mdst")
    adst = os.path.join(e.home, "marc")
    zdst = os.path.join(e.home, "mzip")
    e.import_as("alice", job_ini("modes", src, dst, keep_versions=3) +
                job_ini("modesarc", src, adst, mode="archive",
                        format="tar.gz") +
                job_ini("modeszip", src, zdst, mode="archive", format="zip"))
    e.sources[dst] = e.sources[adst] = e.sources[zdst] = src
    for k in range(2):
        for n in ("pub.txt", "priv.txt", "privdir/inner.txt",
                  "pubdir/priv2.txt"):
            q = os.path.join(src, n)
            mode = os.stat(q).st_mode & 0o777
            e.afile(q, b"gen %d\n" % k, mode)
        for j in ("modes", "modesarc", "modeszip"):
            e.va.run_expect(j, rc=RC_OK, what="modes")

    # Every file and folder vigil made: the state dir, and each
    # destination; the expected rule maps a destination path to its
    # source (versions too); vigil's own files have none.
    checked = []    # (path, source or None)
    for p in all_paths(e.state):
        checked.append((p, None))
    # The destinations of the other cases where the test planted nothing.
    dests = sorted(d for d in e.sources if os.path.isdir(d))
    for d in dests:
        s = e.sources.get(d)
        for p in all_paths(d):
            # case 1's racer renames swap to swap.away for a moment; a
            # run may have copied it under that name
            rel = os.path.relpath(p, d).replace("swap.away", "swap")
            parts = rel.split(os.sep)
            if rel == ".":
                checked.append((p, s))
            elif parts[0] == ".vigil":
                if len(parts) >= 4 and parts[1] == "versions" and s:
                    checked.append((p, os.path.join(s, *parts[3:])))
                elif len(parts) == 3 and parts[1] == "versions" and s and \
                        os.path.isdir(p):
                    checked.append((p, s))
                else:
                    checked.append((p, None))
            elif s and os.path.lexists(os.path.join(s, rel)):
                checked.append((p, os.path.join(s, rel)))
            else:
                checked.append((p, None))   # archives, unknown
    can = bob_can_read([p for p, _ in checked] +
                       [s for _, s in checked if s])
    leaks = []
    readable = 0
    for p, s in checked:
        if p in can:
            readable += 1
            if s is None or s not in can:
                leaks.append("%s (source %s)" % (p, s))
    t.info("modes: %d files and folders checked as bob (%d in the state "
           "dir, %d destinations); %d readable by him" % (
               len(checked), len(all_paths(e.state)), len(dests),
               readable))
    t.check(not leaks, "modes: bob reads nothing vigil made unless he "
            "could read its source", "\n".join(leaks[:30]))
    pub = os.path.join(dst, "pub.txt")
    t.check(pub in can and bob_cat(pub), "modes: bob does read the copy "
            "of a public file (the check can see a readable file)")
    cats = [os.path.join(e.state, "vigil.db"),
            os.path.join(dst, "priv.txt"),
            os.path.join(dst, "pubdir", "priv2.txt"),
            os.path.join(dst, "pubdir", "mail.db"),
            os.path.join(dst, ".vigil", "job.ini")]
    cats += [p for p, _ in checked if p.endswith((".tar.gz", ".zip",
                                                  ".manifest", "-wal",
                                                  "-shm", ".db"))]
    cats += [p for p, _ in checked if "/versions/" in p and
             p.endswith("priv.txt")]
    cats = sorted(set(q for q in cats if os.path.isfile(q)))
    got = [q for q in cats if bob_cat(q)]
    t.check(not got and len(cats) >= 8, "modes: `cat` as bob fails on %d "
            "files: vigil.db and its -wal/-shm, catalogues, private "
            "copies and versions, the SQLite copy, job.ini, archives and "
            "manifests" % len(cats), "\n".join(got))


def main(t):
    if not have_root():
        t.skip("needs root: creates test users, runs vigild as root and "
               "loop-mounts XFS")
    if shutil.which("runuser") is None:
        t.skip("runuser is missing")
    e = Env(t)
    cases = [t.args.case] if t.args.case else list(CASES)
    fns = {"swap": case_swap, "restore": case_restore,
           "planted": case_planted, "hooks": case_hooks,
           "modes": case_modes, "restore-root": case_restore_root,
           "planted-root": case_planted_root}
    for c in cases:
        t0 = time.monotonic()
        print("-- case %s" % c)
        fns[c](t, e)
        t.info("case %s: %.1f s" % (c, time.monotonic() - t0))
    rc = e.svc.stop()
    t.check(rc == 0, "the system-mode service stops cleanly (exit %r)" % rc)
    log = e.svc.log()
    t.check(b"Sanitizer" not in log and b"runtime error" not in log,
            "no sanitizer report in vigild's log", log)


if __name__ == "__main__":
    Test("attacks", "a local user attacks a root vigild: symlink swaps, "
         "restore targets, planted paths, hooks, modes",
         add_args=lambda ap: ap.add_argument("--case", choices=CASES +
                                                 REPRODUCERS)
         ).main(main)
