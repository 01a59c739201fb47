#!/usr/bin/env python3
"""test_killloop.py: kill -9 the worker at random points of mirror and
archive runs, many times, through the real service.

A real `vigild --user --state-dir T --socket T/s.sock` runs four jobs on
one small source of text-like files: a mirror job (keep-versions = 2, so
runs also version and prune) and three incremental archive jobs (tar.gz
for most rounds, zip, and tar.zst with verify = yes).  Each round:

  1. changes the source a little (edits, new and deleted files, a renamed
     file, now and then a new or removed folder);
  2. starts `vigil run JOB --wait` and SIGKILLs the worker (the child
     vigild forks for the run; pidfd, so never a wrong process) after a
     random delay counted from the worker's birth, drawn from 0 to 1.2 x
     the measured lifetime of such a run, so kills land over the whole run
     (start-up, scan, copy, flush and rename, catalogue, retention or
     manifest, verify) and some just after its end;
  3. checks what the kill left: no torn file (mirror: each destination
     file and each kept version holds a content its path had in some
     generation of the source; archive: every archive under its final name
     is read in full by Python's tarfile/zipfile, and every manifest names
     an archive that is there);
  4. in a quarter of the rounds the next run is killed as well (a kill in
     the recovery run: rescan, temp clean-up, a full archive);
  5. runs the job again to completion and checks: it ends ok; the killed
     run is recorded `failed` naming signal 9 (or `ok` when the kill came
     after its end), none is left `running`; mirror: the destination equals
     the source (treecmp); archive: `vigil restore` of the latest run into
     a new folder equals the source; no temp file anywhere (.vigil-tmp-*,
     .vigil-restore-*, .vigil-staging-*, in the destination, the source,
     the restore folder; nothing unexpected in the state folder); PRAGMA
     integrity_check is ok on vigil.db and on the job's catalogue DB.

vigild must still be up at the end, with no sanitizer report in its log.
Each landed kill is tallied three ways: the phase the worker last reported
(progress events, read by a subscriber on the socket; small archives report
none), the kill's place as a fifth of the run's measured lifetime, and what
it left in the destination (temp files, an archive renamed but not its
manifest, ...).  A self-check first shows that the checks fire on a torn
archive of each format, a torn manifest, a torn mirror file, temp names, a
damaged DB and a stray file in the state folder.

--kills N sets the kills per mode (mirror, archive); --seed S replays a
run's choices (the seed is printed; the timing of kills is not
reproducible, the source's changes and the delays drawn are)."""

import io
import json
import os
import random
import re
import select
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zipfile

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import treecmp  # noqa: E402
from vtest import (RC_FAILED, RC_OK, Fatal, Service, SockVigil, Test,  # noqa: E402,E501
                   describe, find_tmp_leftovers, frame, is_sanitized,
                   job_ini, recv_exact, rmtree, short_path)

KIB = 1024
TMP_PREFIXES = (b".vigil-tmp-", b".vigil-restore-", b".vigil-staging-")
ARCHIVE_EXTS = (".tar.gz", ".tar.zst", ".zip")
# Share of the archive kills per format (the rest is tar.gz).
FORMAT_SHARE = (("zip", 0.2), ("tar.zst", 0.2))


def add_args(ap):
    ap.add_argument("--kills", type=int, default=200,
                    help="kills per mode (mirror, archive); default 200")
    ap.add_argument("--only", choices=("mirror", "archive"),
                    help="run one mode only")


# -- the source -------------------------------------------------------------

class Source:
    """A small tree of compressible text files, changed a little each
    round.  gens: relpath (bytes) -> set of content digests it has had."""

    def __init__(self, root, rng):
        self.root = root
        self.rng = rng
        words = set()
        while len(words) < 400:
            words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                              for _ in range(rng.randrange(2, 10))))
        words = sorted(words)
        # Contents are slices of one long text, each with its own header
        # line (so that no two writes give the same bytes).
        self.blob = " ".join(rng.choice(words) for _ in range(
            200000)).encode()
        self.nwrite = 0
        self.dirs = [""]
        self.gens = {}
        self.cache = {}
        os.mkdir(root)
        while len(self.dirs) < 9:
            self.new_dir()
        for i in range(160):
            self.write(os.path.join(rng.choice(self.dirs), "f%04d.txt" % i),
                       rng.randrange(0, 6 * KIB))
        for i in range(3):
            self.write(os.path.join(rng.choice(self.dirs), "big%d.txt" % i),
                       rng.randrange(64 * KIB, 192 * KIB))
        self.record()

    def text(self, size):
        self.nwrite += 1
        head = b"write %d\n" % self.nwrite
        off = self.rng.randrange(0, len(self.blob) - size)
        return (head + self.blob[off:off + size])[:size]

    def write(self, rel, size):
        with open(os.path.join(self.root, rel), "wb") as f:
            f.write(self.text(size))

    def new_dir(self):
        # Names come from small pools (here and for new files): kept
        # versions are per path, so the versions area stays bounded
        # however many rounds run.
        d = os.path.join(self.rng.choice(self.dirs[:8]),
                         "d%02d" % self.rng.randrange(1, 30))
        if d in self.dirs or os.path.lexists(os.path.join(self.root, d)):
            return False
        os.mkdir(os.path.join(self.root, d))
        self.dirs.append(d)
        return True

    def files(self):
        out = []
        cut = len(self.root) + 1
        for d, _, fs in os.walk(self.root):
            rel = d[cut:]
            out += [rel + "/" + f if rel else f for f in fs]
        return sorted(out)

    def change(self):
        """A few edits; returns how many entries changed."""
        rng, n = self.rng, 0
        files = self.files()
        small = [f for f in files if not os.path.basename(f).startswith("b")]
        for f in rng.sample(small, min(len(small), rng.randrange(3, 25))):
            self.write(f, rng.randrange(0, 6 * KIB))
            n += 1
        if rng.random() < 0.3:
            big = [f for f in files if os.path.basename(f).startswith("b")]
            if big:
                self.write(rng.choice(big), rng.randrange(64 * KIB,
                                                          192 * KIB))
                n += 1
        for f in rng.sample(small, max(0, min(len(small) - 120,
                                              rng.randrange(0, 6)))):
            os.unlink(os.path.join(self.root, f))
            n += 1
        for _ in range(rng.randrange(0, 8)):
            self.write(os.path.join(rng.choice(self.dirs),
                                    "n%02d.txt" % rng.randrange(30)),
                       rng.randrange(0, 4 * KIB))
            n += 1
        files = self.files()
        if files and rng.random() < 0.5:
            a = rng.choice(files)
            b = os.path.join(rng.choice(self.dirs),
                             "r%02d.txt" % rng.randrange(20))
            os.rename(os.path.join(self.root, a), os.path.join(self.root, b))
            n += 1
        r = rng.random()
        if r < 0.08:
            n += self.new_dir()
        elif r < 0.14 and len(self.dirs) > 4:
            # a leaf folder and what it holds
            leaves = [d for d in self.dirs[1:] if not any(
                x.startswith(d + "/") for x in self.dirs)]
            d = rng.choice(leaves)
            rmtree(os.path.join(self.root, d))
            self.dirs.remove(d)
            n += 1
        self.record()
        return n

    def record(self):
        for rel, e in self.scan().items():
            if e.type == "file":
                self.gens.setdefault(rel, set()).add(e.digest)

    def scan(self):
        return treecmp.scan(self.root, xattrs=False, cache=self.cache)


# -- the service's side: worker processes and progress events ----------------

def children(pid):
    """Direct children of pid (all its threads)."""
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


class Events(threading.Thread):
    """A subscriber on the socket: the phases each run reported, in order."""

    def __init__(self, sock_path):
        super().__init__(daemon=True)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(sock_path)
        self.s.sendall(frame({"id": 1, "method": "hello",
                              "params": {"version": 1, "role": "client"}}))
        self._read()
        self.s.sendall(frame({"id": 2, "method": "subscribe", "params": {
            "topics": ["progress", "run-finished"]}}))
        self.lock = threading.Lock()
        self.phases = {}        # run id -> [phase, ...] (changes only)
        self.finished = set()
        self.error = None
        self.start()

    def _read(self):
        hdr = recv_exact(self.s, 4)
        if hdr is None:
            return None
        body = recv_exact(self.s, struct.unpack(">I", hdr)[0])
        return None if body is None else json.loads(body)

    def run(self):
        try:
            while True:
                m = self._read()
                if m is None:
                    self.error = "the service closed the connection"
                    return
                ev, d = m.get("event"), m.get("data") or {}
                with self.lock:
                    if ev == "progress" and isinstance(d.get("run"), int):
                        ph = self.phases.setdefault(d["run"], [])
                        if not ph or ph[-1] != d.get("phase"):
                            ph.append(d.get("phase"))
                    elif ev == "run-finished":
                        rid = d.get("run", d.get("id"))
                        if isinstance(rid, int):
                            self.finished.add(rid)
        except (OSError, ValueError) as e:
            self.error = repr(e)

    def last_phase(self, rid, timeout=1.0):
        """The last phase run rid reported (None: no progress at all).
        Waits for its run-finished event so that nothing is in flight."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if rid in self.finished:
                    break
            time.sleep(0.005)
        with self.lock:
            ph = self.phases.get(rid)
            return ph[-1] if ph else None


class Killer:
    """Starts runs through the CLI and kills their worker."""

    def __init__(self, t, svc, v):
        self.t, self.svc, self.v = t, svc, v

    def run(self, job, delay):
        """Run job; SIGKILL its worker `delay` s after the worker appears
        (None: let it finish).  Returns a dict: rc, out, lifetime (s, when
        the worker ended by itself before the delay), signalled."""
        before = set(children(self.svc.pid))
        waiter = self.v.popen("run", job, "--wait")
        end = time.monotonic() + 30
        pid = None
        while pid is None:
            new = set(children(self.svc.pid)) - before
            if new:
                if len(new) > 1:
                    raise Fatal("%d new children of vigild for one run: %r"
                                % (len(new), sorted(new)))
                pid = new.pop()
                break
            if waiter.poll() is not None:
                # The whole run went by between two looks (this process
                # starved on a loaded machine): nothing was killed.
                out, err = waiter.communicate(timeout=30)
                return {"rc": waiter.returncode, "out": out + err,
                        "lifetime": None, "signalled": False,
                        "unseen": True}
            if time.monotonic() > end:
                waiter.kill()
                out, err = waiter.communicate(timeout=30)
                raise Fatal("run %s: no worker was seen in 30 s\n%s%s"
                            % (job, out.decode("utf-8", "replace"),
                               err.decode("utf-8", "replace")))
            time.sleep(0.0002)
        born = time.monotonic()
        try:
            pfd = os.pidfd_open(pid)
            # the pid still names vigild's child (not a reused pid)
            if pid not in children(self.svc.pid):
                os.close(pfd)
                pfd = None
        except ProcessLookupError:
            pfd = None          # already gone and reaped
        lifetime, signalled = None, False
        if pfd is not None:
            try:
                p = select.poll()
                p.register(pfd, select.POLLIN)
                wait_ms = None if delay is None else delay * 1000
                if p.poll(wait_ms):
                    lifetime = time.monotonic() - born
                else:
                    try:
                        signal.pidfd_send_signal(pfd, signal.SIGKILL)
                        signalled = True
                    except ProcessLookupError:  # it ended just now
                        lifetime = time.monotonic() - born
            finally:
                os.close(pfd)
        out, err = waiter.communicate(timeout=120)
        return {"rc": waiter.returncode, "out": out + err,
                "lifetime": lifetime, "signalled": signalled,
                "unseen": False}


# -- checks -----------------------------------------------------------------

def tmp_leftovers(root):
    """Temp-looking names anywhere under root."""
    if not os.path.isdir(root):
        return []
    out = list(find_tmp_leftovers(root))
    for d, dirs, fs in os.walk(os.fsencode(root)):
        for n in dirs + fs:
            if n.startswith(TMP_PREFIXES[1:]):
                out.append(os.path.relpath(os.path.join(d, n),
                                           os.fsencode(root)))
    return out


def state_leftovers(state):
    """Files in the state folder other than the DBs and their WAL/SHM."""
    out = []
    for d, _, fs in os.walk(state):
        rel = os.path.relpath(d, state)
        for f in fs:
            base = f
            for suf in ("-wal", "-shm"):
                if base.endswith(suf):
                    base = base[:-len(suf)]
            ok = (rel == "." and base == "vigil.db") or (
                rel.startswith("catalogue/") and base.endswith(".db") and
                base[:-3].isdigit())
            if not ok:
                out.append(os.path.join(rel, f))
    return out


def integrity(path):
    """PRAGMA integrity_check of one DB, opened read-only."""
    if not os.path.exists(path):
        return "missing"
    try:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True,
                              timeout=10)
        try:
            rows = con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()
    except sqlite3.Error as e:
        return "error: %s" % e
    return "; ".join(str(r[0]) for r in rows)


def torn_mirror(src, dst, cache):
    """Destination files (and kept versions) whose content no generation of
    their source path had."""
    bad = []
    nf = nv = 0
    if not os.path.isdir(dst):
        return bad, nf, nv
    ents = treecmp.scan(dst, skip_vigil=False, xattrs=False, cache=cache)
    for rel, e in ents.items():
        if e.type != "file":
            continue
        if rel.rsplit(b"/", 1)[-1].startswith(b".vigil-tmp-"):
            continue        # the killed run's temp file: the rerun removes it
        if rel.startswith(b".vigil/"):
            parts = rel.split(b"/")
            if len(parts) < 4 or parts[1] != b"versions":
                continue    # job.ini
            orig = b"/".join(parts[3:])
            nv += 1
        else:
            orig = rel
            nf += 1
        if e.digest not in src.gens.get(orig, ()):
            bad.append("%s: content (%d bytes) matches no generation of %s"
                       % (short_path(rel), e.size, short_path(orig)))
    return bad, nf, nv


def read_archive(path):
    """Read every member of an archive in full; None when fine, else why."""
    try:
        if path.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
                return None if bad is None else "bad member %r" % bad
        if path.endswith(".tar.gz"):
            raw = open(path, "rb")
        else:
            p = subprocess.run(["zstd", "-dcq", path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            if p.returncode != 0:
                return "zstd -d: exit %d: %s" % (
                    p.returncode, p.stderr.decode("utf-8", "replace"))
            raw = io.BytesIO(p.stdout)
        with raw, tarfile.open(fileobj=raw, mode="r|*") as tf:
            for m in tf:
                if m.isfile():
                    f = tf.extractfile(m)
                    while f.read(1 << 20):
                        pass
        return None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError,
            ValueError) as e:
        return repr(e)


def parse_manifest(raw):
    """(archive name, None) for a whole manifest (archive_int.h: the
    magic first, `end <entries> <deleted>` last, matching its E and D
    lines), else (name or None, why)."""
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    name = None
    ne = nd = 0
    for ln in lines:
        if ln.startswith(b"archive ") and name is None:
            name = ln[8:].decode("utf-8", "replace")
        elif ln.startswith(b"E "):
            ne += 1
        elif ln.startswith(b"D "):
            nd += 1
    if not lines or lines[0] != b"vigil-archive 1":
        return name, "no magic line"
    if not raw.endswith(b"\n"):
        return name, "no newline at the end"
    end = lines[-1].split()
    if len(end) != 3 or end[0] != b"end":
        return name, "no end line (last: %r)" % lines[-1][:60]
    if not (end[1].isdigit() and end[2].isdigit()) or \
            (int(end[1]), int(end[2])) != (ne, nd):
        return name, "end line says %s %s, the manifest has %d E and %d D" \
            % (end[1].decode(), end[2].decode(), ne, nd)
    if name is None:
        return None, "no archive line"
    return name, None


class ArchiveDest:
    """What an archive job's destination holds; archives are read once
    each (they never change under their final name)."""

    def __init__(self, dst):
        self.dst = dst
        self.read_ok = {}       # name -> (ino, size, mtime_ns)
        self.man_cache = {}
        self.nread = 0

    def archives(self):
        if not os.path.isdir(self.dst):
            return []
        return sorted(n for n in os.listdir(self.dst)
                      if not n.startswith(".") and n.endswith(ARCHIVE_EXTS))

    def manifests(self):
        """Manifest name -> (the archive it names, why it is not whole
        or None).  Manifests never change under their final name: each is
        read once."""
        d = os.path.join(self.dst, ".vigil", "archives")
        if not os.path.isdir(d):
            return {}
        out = {}
        for n in os.listdir(d):
            if not n.endswith(".manifest"):
                continue
            if n not in self.man_cache:
                with open(os.path.join(d, n), "rb") as f:
                    self.man_cache[n] = parse_manifest(f.read())
            out[n] = self.man_cache[n]
        return out

    def check(self):
        """Problems: unreadable archives, manifests naming a missing
        archive; and the archives no manifest names (kept as information:
        a run killed between the two renames)."""
        bad = []
        for n in self.archives():
            p = os.path.join(self.dst, n)
            st = os.stat(p)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self.read_ok.get(n) == key:
                continue
            why = read_archive(p)
            self.nread += 1
            if why is None:
                self.read_ok[n] = key
            else:
                bad.append("%s (%d bytes): unreadable: %s"
                           % (n, st.st_size, why))
        mans = self.manifests()
        have = set(self.archives())
        for m, (a, why) in sorted(mans.items()):
            if why is not None:
                bad.append("manifest %s is not whole: %s" % (m, why))
            elif a not in have:
                bad.append("manifest %s names %r, which is not there"
                           % (m, a))
        orphans = sorted(have - set(a for a, _ in mans.values()))
        return bad, orphans


# -- one mode's loop --------------------------------------------------------

class Tally:
    def __init__(self, mode):
        self.mode = mode
        self.kills = 0          # workers we meant to kill
        self.landed = 0         # ... that were still running: run failed
        self.late = 0           # ... that had ended: run ok
        self.double = 0         # kills of the recovery run
        self.unseen = 0         # late ones whose worker was never seen
        self.perjob = {}        # job -> [kills, landed]
        self.phases = {}        # last phase reported -> kills landed
        self.fractions = [0] * 5    # landed kills by fifth of the run
        self.rounds = 0
        self.t0 = time.monotonic()
        self.round_times = []
        self.orphans = set()
        self.stages = {}        # what the landed kill left -> kills
        self.steps = {}         # step -> total seconds
        self.lives = []         # measured lifetimes after the first

    def step(self, name, since):
        self.steps[name] = self.steps.get(name, 0.0) + \
            time.monotonic() - since

    def report(self, t):
        dt = time.monotonic() - self.t0
        rt = sorted(self.round_times) or [0]
        t.info("%s: %d kills in %d rounds (%d of them in the recovery run "
               "after a kill): %d landed mid-run, %d after the run had "
               "ended (%d of them before this test saw the worker at all); "
               "%.1f s, a round median %.0f ms, max %.0f ms"
               % (self.mode, self.kills, self.rounds, self.double,
                  self.landed, self.late, self.unseen, dt,
                  rt[len(rt) // 2] * 1000, rt[-1] * 1000))
        t.info("%s: kills (landed) per job: %s" % (self.mode, ", ".join(
            "%s %d (%d)" % (k, v[0], v[1])
            for k, v in sorted(self.perjob.items()))))
        t.info("%s: landed kills by the phase the worker last reported: %s"
               % (self.mode, ", ".join("%s %d" % (k or "(none yet)", v)
                                        for k, v in sorted(
                                            self.phases.items(),
                                            key=lambda x: -x[1]))))
        t.info("%s: landed kills by fifth of the run's measured lifetime: "
               "%s" % (self.mode, " / ".join(str(x) for x in
                                              self.fractions)))
        if self.lives:
            t.info("%s: lifetimes measured again every 40 rounds of a job: "
                   "%s ms" % (self.mode, ", ".join("%.0f" % (x * 1000)
                                                   for x in self.lives)))
        t.info("%s: time per round by step (ms, mean): %s"
               % (self.mode, ", ".join("%s %.0f" % (k, 1000 * v / max(
                   1, self.rounds)) for k, v in self.steps.items())))
        t.info("%s: landed kills by what they left: %s"
               % (self.mode, ", ".join("%s %d" % x for x in sorted(
                   self.stages.items(), key=lambda x: -x[1]))))


def calibrate(t, k, src, job, n=5):
    """Median lifetime of the worker of a changed-source run."""
    lives = []
    for _ in range(3 * n):
        src.change()
        r = k.run(job, None)
        if r["rc"] != RC_OK:
            raise Fatal("calibration run of %s: exit %s\n%s"
                        % (job, r["rc"], r["out"].decode("utf-8",
                                                         "replace")))
        if r["lifetime"] is not None:
            lives.append(r["lifetime"])
        if len(lives) == n:
            break
    if not lives:
        raise Fatal("calibration of %s: no worker was seen in %d runs"
                    % (job, 3 * n))
    lives.sort()
    return lives[len(lives) // 2], lives


class Job:
    def __init__(self, name, dst, fmt=None):
        self.name, self.dst, self.fmt = name, dst, fmt
        self.life = None            # measured lifetime, s
        self.rlife = []             # lifetimes of recovery runs
        self.arc = ArchiveDest(dst) if fmt else None
        self.dcache = {}


def stage(job, rid):
    """Where a killed run stood, from what it left in the destination
    (its temp names and final names carry its run id)."""
    if not os.path.isdir(job.dst):
        return "nothing written"
    tmp = b".vigil-tmp-%d-" % rid
    if job.arc is None:
        left = [x for x in find_tmp_leftovers(job.dst)
                if x.rsplit(b"/", 1)[-1].startswith(tmp)]
        if left:
            return "temp files written, not yet renamed"
        vd = os.path.join(job.dst, ".vigil", "versions")
        if os.path.isdir(vd) and any(n.endswith("-r%d" % rid) or
                                     n.endswith("-r%d.added" % rid)
                                     for n in os.listdir(vd)):
            return "versions kept, no temp file left"
        return "no temp file, no version of its own"
    mdir = os.path.join(job.dst, ".vigil", "archives")
    names = set(os.listdir(job.dst))
    mnames = set(os.listdir(mdir)) if os.path.isdir(mdir) else set()
    if any(n.endswith("-r%d.manifest" % rid) for n in mnames):
        return "after the manifest's rename"
    if any("-r%d-" % rid in n for n in names if not n.startswith(".")):
        return "between the archive's and the manifest's rename"
    if os.fsdecode(tmp) + "archive" in names:
        return "while writing the archive"
    return "before the archive was created"


def history(v, job, n=4):
    return v.history(job, limit=n)


def one_round(t, k, v, src, job, tally, rng, state, restore_root, rnd,
              double):
    """One round of one job; returns False when too broken to go on."""
    t0 = time.monotonic()
    label = "%s r%d" % (job.name, rnd)
    nchanged = src.change()
    tally.step("change", t0)
    kills = []
    for i in range(2 if double else 1):
        if i == 0:
            life = job.life
        else:
            rl = sorted(job.rlife[-15:]) or [job.life]
            life = rl[len(rl) // 2]
        delay = rng.uniform(0, 1.2 * life)
        t1 = time.monotonic()
        r = k.run(job.name, delay)
        tally.step("killed run", t1)
        r["delay"], r["life"] = delay, life
        tally.kills += 1
        tally.double += i
        pj = tally.perjob.setdefault(job.name, [0, 0])
        pj[0] += 1
        h = history(v, job.name, 1)
        rec = h[0] if h else {}
        r["rec"] = rec
        kills.append(r)
        st, msg = rec.get("status"), rec.get("message") or ""
        if st == "failed" and "signal 9" in msg:
            tally.landed += 1
            pj[1] += 1
            ph = k.events.last_phase(rec.get("id"))
            tally.phases[ph] = tally.phases.get(ph, 0) + 1
            tally.fractions[min(4, int(5 * delay / life))] += 1
            where = stage(job, rec.get("id"))
            tally.stages[where] = tally.stages.get(where, 0) + 1
            ok = r["signalled"] and r["rc"] == RC_FAILED
        elif st == "ok":
            tally.late += 1
            tally.unseen += r["unseen"]
            ok = not r["signalled"] or r["rc"] == RC_OK
        else:
            ok = False
        if not ok or rec.get("status") == "running":
            t.check(False, "%s: the killed run (kill %.1f ms after the "
                    "worker started) is recorded failed by signal 9, or "
                    "ok when the kill came late" % (label, delay * 1000),
                    "record: %s\nwaiter exit %s, signalled %s\n%s"
                    % (json.dumps(rec), r["rc"], r["signalled"],
                       r["out"].decode("utf-8", "replace")))
        # what the kill left, before anything cleans it up
        if job.arc is None:
            bad, nf, nv = torn_mirror(src, job.dst, job.dcache)
            if bad:
                t.check(False, "%s: after a kill %.1f ms in, no torn file "
                        "among %d files and %d versions (seed %s)"
                        % (label, delay * 1000, nf, nv, t.seed),
                        "\n".join(bad[:20]))
        else:
            bad, orphans = job.arc.check()
            tally.orphans.update((job.name, o) for o in orphans)
            if bad:
                t.check(False, "%s: after a kill %.1f ms in, every archive "
                        "under its final name reads in full and every "
                        "manifest names one that is there (seed %s)"
                        % (label, delay * 1000, t.seed), "\n".join(bad[:20]))

    # the run to completion
    t1 = time.monotonic()
    r = k.run(job.name, None)
    tally.step("run to the end", t1)
    t1 = time.monotonic()
    if r["lifetime"] is not None:
        job.rlife.append(r["lifetime"])
    h = history(v, job.name, 3)
    prev = [x for x in h if x.get("id") in
            [kk["rec"].get("id") for kk in kills]]
    stuck = [x for x in h if x.get("status") == "running"]
    problems = []
    if r["rc"] != RC_OK or not h or h[0].get("status") != "ok":
        problems.append("the run after the kill: exit %s, record %s\n%s"
                        % (r["rc"], json.dumps(h[:1]),
                           r["out"].decode("utf-8", "replace")))
    if stuck or len(prev) != len(kills):
        problems.append("run records left running or missing: %s"
                        % json.dumps(h))
    if job.arc is None:
        diffs = treecmp.compare(
            src.scan(), treecmp.scan(job.dst, skip_vigil=True, xattrs=False,
                                     cache=job.dcache), xattrs=False)
        if diffs:
            problems.append("destination differs from the source:\n" +
                            "\n".join(diffs[:20]))
    else:
        bad, orphans = job.arc.check()
        problems += bad
        if orphans:
            problems.append("after a complete run, archives that no "
                            "manifest names are still there (the run must "
                            "remove them): %s" % ", ".join(orphans))
        to = os.path.join(restore_root, "r%d" % rnd)
        tally.step("checks", t1)
        t1 = time.monotonic()
        p = v.cmd("restore", job.name, "--to", to, timeout=120)
        tally.step("restore", t1)
        t1 = time.monotonic()
        if p.returncode != 0:
            problems.append("restore of the latest run: exit %d\n%s"
                            % (p.returncode, describe(p)))
        else:
            diffs = treecmp.compare(
                src.scan(), treecmp.scan(to, xattrs=False), xattrs=False,
                owner=False, dir_times=False, root_meta=False,
                max_report=10 ** 9)
            if job.fmt == "zip":    # zip keeps whole seconds
                diffs = [d for d in diffs if not zip_mtime_only(d)]
            if diffs:
                problems.append("restore of the latest run differs from "
                                "the source:\n" + "\n".join(diffs[:20]))
            left = tmp_leftovers(to)
            if left:
                problems.append("temp files in the restore folder: %s"
                                % [short_path(x) for x in left[:10]])
        rmtree(to)
    for where, root in (("destination", job.dst), ("source", src.root)):
        left = tmp_leftovers(root)
        if left:
            problems.append("temp files in the %s: %s"
                            % (where, [short_path(x) for x in left[:10]]))
    left = state_leftovers(state)
    if left:
        problems.append("unexpected files in the state folder: %s" % left)
    for db in [os.path.join(state, "vigil.db")] + catalogues(state):
        ic = integrity(db)
        if ic != "ok":
            problems.append("PRAGMA integrity_check of %s: %s"
                            % (os.path.relpath(db, state), ic))
    tally.step("checks", t1)
    tally.rounds += 1
    tally.round_times.append(time.monotonic() - t0)
    what = ", ".join("kill %.1f/%.1f ms -> %s%s" % (
        kk["delay"] * 1000, kk["life"] * 1000,
        kk["rec"].get("status"), "" if kk["rec"].get("status") != "failed"
        else " in " + str(k.events.last_phase(kk["rec"].get("id"))))
        for kk in kills)
    if problems:
        t.check(False, "%s (%d changes; %s): then a run ends ok, the %s "
                "equals the source, no temp files, integrity ok (seed %s)"
                % (label, nchanged, what, "destination" if job.arc is None
                   else "restore", t.seed), "\n".join(problems))
        return False
    return True


def zip_mtime_only(diff):
    """A file mtime difference of less than 2 s (zip keeps whole, and
    in its DOS field even, seconds)."""
    m = re.search(r": mtime -?\d+ ns, destination -?\d+ ns "
                  r"\(off by ([-+]\d+) ns\)$", diff)
    return m is not None and abs(int(m.group(1))) < 2 * 10 ** 9


def catalogues(state):
    out = []
    d = os.path.join(state, "catalogue")
    for root, _, fs in os.walk(d):
        out += [os.path.join(root, f) for f in fs if f.endswith(".db")]
    return sorted(out)


def loop(t, k, v, src, jobs, nkills, rng, state, mode):
    tally = Tally(mode)
    restore_root = t.path("restore-" + mode)
    os.mkdir(restore_root)
    # kills left per job: tar.gz most, zip and tar.zst a share each; each
    # round draws its job in proportion, so the formats interleave
    left = {}
    if mode == "mirror":
        left[jobs[0].name] = nkills
    else:
        rest = nkills
        for j in jobs:
            share = dict(FORMAT_SHARE).get(j.fmt)
            if share is not None:
                left[j.name] = int(nkills * share)
                rest -= left[j.name]
        left[[j for j in jobs if j.fmt == "tar.gz"][0].name] = rest
    byname = {j.name: j for j in jobs}
    for j in jobs:
        j.life, lives = calibrate(t, k, src, j.name)
        j.since = 0
        t.info("%s: a changed-source run's worker lives %s ms (median %.1f "
               "ms): kills drawn from 0-%.1f ms after its start"
               % (j.name, "/".join("%.0f" % (x * 1000) for x in lives),
                  j.life * 1000, 1.2 * j.life * 1000))
    fails = 0
    rnd = 0
    while sum(left.values()) > 0:
        pick = rng.randrange(sum(left.values()))
        for name in sorted(left):
            if pick < left[name]:
                break
            pick -= left[name]
        job = byname[name]
        double = left[name] >= 2 and rng.random() < 0.25
        left[name] -= 2 if double else 1
        job.since += 1
        if job.since >= 40:     # the source drifts: measure again
            job.life, lives = calibrate(t, k, src, job.name)
            job.since = 0
            tally.lives.append(job.life)
        if not one_round(t, k, v, src, job, tally, rng, state, restore_root,
                         rnd, double):
            fails += 1
            if fails >= 5:
                raise Fatal("%s: five failed rounds, stopping (seed %s)"
                            % (mode, t.seed))
        rnd += 1
        if rnd % 50 == 0:
            t.info("%s: %d rounds, %d kills, %.0f s"
                   % (mode, rnd, tally.kills, time.monotonic() - tally.t0))
    tally.report(t)
    t.check(tally.kills >= nkills, "%s: %d kills of the worker (asked %d)"
            % (mode, tally.kills, nkills))
    t.check(tally.landed >= tally.kills // 3, "%s: %d of %d kills "
            "landed mid-run (at least a third)"
            % (mode, tally.landed, tally.kills))
    t.check(fails == 0, "%s: every round: nothing torn, then a run ends ok "
            "with the %s equal to the source, no temp file, and both DBs "
            "pass integrity_check (%d rounds)"
            % (mode, "destination" if mode == "mirror" else
               "latest restore", tally.rounds))
    if mode == "archive":
        for j in jobs:
            j.arc.read_ok.clear()
            bad, orphans = j.arc.check()
            t.check(not bad, "%s: at the end all %d archives read in full "
                    "(%d manifests)" % (j.name, len(j.arc.archives()),
                                        len(j.arc.manifests())),
                    "\n".join(bad[:20]))
        t.info("archive: %d kills left a complete archive that no "
               "manifest names (killed between the archive's rename and "
               "the manifest's); each was removed by the next run: %s"
               % (len(tally.orphans), ", ".join(
                   o for _, o in sorted(tally.orphans)[:5])))
    return tally


def self_check(t):
    """The checks fire on what they look for: a torn archive of each
    format, a torn mirror file, temp names, a damaged DB, a stray file in
    the state folder."""
    d = t.path("selfcheck")
    os.mkdir(d)
    data = os.urandom(256 * KIB)
    missed = []

    def torn_copy(name, whole):
        with open(os.path.join(d, name), "wb") as f:
            f.write(whole)
        with open(os.path.join(d, "torn-" + name), "wb") as f:
            f.write(whole[:len(whole) * 2 // 3])
        if read_archive(os.path.join(d, name)) is not None:
            missed.append("%s: a whole archive reads as bad" % name)
        if read_archive(os.path.join(d, "torn-" + name)) is None:
            missed.append("%s: a torn archive reads as whole" % name)

    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w:gz") as tf:
        ti = tarfile.TarInfo("f")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    torn_copy("a.tar.gz", b.getvalue())
    zstd = subprocess.run(["zstd", "-q", "-c"], input=gz_to_tar(
        b.getvalue()), stdout=subprocess.PIPE)
    torn_copy("a.tar.zst", zstd.stdout)
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("f", data)
    torn_copy("a.zip", b.getvalue())

    man = (b"vigil-archive 1\nrun 3\ntime 1\nkind full\nformat tar.gz\n"
           b"archive a.tar.gz\nparent -\nE f ok 3 1 - a\nE d ok 0 1 - b\n"
           b"D c\nend 2 1\n")
    if parse_manifest(man) != ("a.tar.gz", None):
        missed.append("a whole manifest: %r" % (parse_manifest(man),))
    for cut in (len(man) - 1, len(man) - 5, len(man) // 2):
        if parse_manifest(man[:cut])[1] is None:
            missed.append("a manifest cut at %d bytes reads as whole" % cut)

    class Src:
        gens = {}
    m = os.path.join(d, "mirror")
    os.mkdir(m)
    with open(os.path.join(m, "f"), "wb") as f:
        f.write(data)
    Src.gens = {b"f": {treecmp.scan(m, xattrs=False)[b"f"].digest}}
    if torn_mirror(Src, m, {})[0]:
        missed.append("a whole mirror file is seen as torn")
    with open(os.path.join(m, "f"), "r+b") as f:
        f.truncate(len(data) // 2)
    if not torn_mirror(Src, m, {})[0]:
        missed.append("a half-written mirror file is not seen as torn")
    os.makedirs(os.path.join(m, "x", "y"))
    for n in ("x/.vigil-tmp-7-1", "x/y/.vigil-restore-3", ".vigil-tmp-7-"
              "archive"):
        open(os.path.join(m, n), "w").close()
    if len(tmp_leftovers(m)) != 3:
        missed.append("temp names: %r of 3 found" % tmp_leftovers(m))
    st = os.path.join(d, "state")
    os.makedirs(os.path.join(st, "catalogue", "0"))
    db = os.path.join(st, "catalogue", "0", "1.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE x (a INTEGER PRIMARY KEY, b TEXT)")
    con.execute("CREATE INDEX xb ON x (b)")
    con.executemany("INSERT INTO x (b) VALUES (?)",
                    [("row %d %s" % (i, "y" * 50),) for i in range(3000)])
    con.commit()
    con.close()
    if integrity(db) != "ok":
        missed.append("a sound DB fails integrity_check: %s" % integrity(db))
    with open(db, "r+b") as f:     # overwrite the middle of an index page
        f.seek(os.path.getsize(db) - 3 * 4096 + 100)
        f.write(os.urandom(2000))
    if integrity(db) == "ok":
        missed.append("a damaged DB passes integrity_check")
    open(os.path.join(st, "vigil.db"), "w").close()
    open(os.path.join(st, "vigil.db-wal"), "w").close()
    open(os.path.join(st, "vigil.db.tmp"), "w").close()
    if state_leftovers(st) != ["./vigil.db.tmp"]:
        missed.append("state folder: %r" % state_leftovers(st))
    rmtree(d)
    t.check(not missed, "self-check: the checks see a torn tar.gz, tar.zst "
            "and zip, a torn manifest, a torn mirror file, temp names, a "
            "damaged DB and a stray file in the state folder",
            "\n".join(missed))


def gz_to_tar(gz):
    import gzip
    return gzip.decompress(gz)


def main(t):
    t.seed = t.args.seed if t.args.seed is not None else \
        int.from_bytes(os.urandom(3), "big")
    rng = random.Random(t.seed)
    nkills = max(1, t.args.kills if not t.args.quick else
                 min(t.args.kills, 20))
    t.info("seed %d (rerun with --seed %d), %d kills per mode"
           % (t.seed, t.seed, nkills))
    self_check(t)
    state = t.path("state")
    sock = t.path("s.sock")
    svc = Service(t, ["--user", "--state-dir", state, "--socket", sock],
                  sock).start()
    san = is_sanitized(svc.pid)
    t.info("vigild pid %d%s" % (svc.pid, ", built with ASan" if san else ""))
    v = SockVigil(t, sock)
    src = Source(t.path("src"), rng)
    nbytes = sum(os.path.getsize(os.path.join(src.root, f))
                 for f in src.files())
    t.info("source: %d files in %d folders, %d KiB"
           % (len(src.files()), len(src.dirs), nbytes // KIB))
    mirror = Job("mirror", t.path("dst-mirror"))
    arcs = [Job("arc-gz", t.path("dst-gz"), "tar.gz"),
            Job("arc-zip", t.path("dst-zip"), "zip"),
            Job("arc-zst", t.path("dst-zst"), "tar.zst")]
    ini = job_ini(mirror.name, src.root, mirror.dst, mode="mirror",
                  keep_versions=2, max_delete=100)
    for j in arcs:
        extra = {"verify": "yes"} if j.fmt == "tar.zst" else {}
        ini += job_ini(j.name, src.root, j.dst, mode="archive", format=j.fmt,
                       archive="incremental", **extra)
    v.import_jobs(ini)
    for j in [mirror] + arcs:
        p = v.run(j.name)
        if p.returncode != RC_OK:
            raise Fatal("first run of %s: %s" % (j.name, describe(p)))
    k = Killer(t, svc, v)
    k.events = Events(sock)
    t0 = time.monotonic()
    tallies = []
    if t.args.only in (None, "mirror"):
        tallies.append(loop(t, k, v, src, [mirror], nkills, rng, state,
                            "mirror"))
    if t.args.only in (None, "archive"):
        tallies.append(loop(t, k, v, src, arcs, nkills, rng, state,
                            "archive"))
    h = v.history(limit=100000)
    st = {}
    for r in h:
        st[r.get("status")] = st.get(r.get("status"), 0) + 1
    t.info("run records by status: %s" % json.dumps(st, sort_keys=True))
    t.check("running" not in st, "no run record is left running (%d "
            "records)" % len(h))
    t.check(svc.alive() and v.status()["service"]["pid"] == svc.pid,
            "vigild is still up after %d worker kills"
            % sum(x.kills for x in tallies))
    t.check(k.events.error is None, "the event subscriber stayed connected",
            k.events.error)
    rc = svc.stop()
    t.check(rc == 0, "vigild stops cleanly on SIGTERM (exit %r)" % rc)
    log = svc.log()
    t.check(b"Sanitizer" not in log and b"runtime error" not in log,
            "no sanitizer report in vigild's log", log)
    t.info("totals: %s; %.1f s in all"
           % ("; ".join("%s %d kills (%d mid-run, %d late)" % (
               x.mode, x.kills, x.landed, x.late) for x in tallies),
              time.monotonic() - t0))


if __name__ == "__main__":
    Test("killloop", "kill -9 the worker at random points of mirror and "
         "archive runs, then run again and check", add_args=add_args
         ).main(main)
