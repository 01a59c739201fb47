#!/usr/bin/env python3
"""test_kill.py: kill -9 vigil at random points of a mirror run, many times.

A tree of a few thousand files (some of several MiB) is mirrored with
keep-versions = 2.  Each round changes the source (so the run has work),
starts `vigil run JOB --wait`, and kills its whole process group with
SIGKILL after a random delay of 0-300 ms, so kills land in the scan, copy,
rename and retention phases.  Then:
  - no destination file is torn: each one (and each file in the versions
    area) holds a content its path had in some generation of the source;
  - a clean run ends ok, the destination equals the source (treecmp), and no
    .vigil-tmp-* is left anywhere.
At the end no run record may be left `running`."""

import os
import random
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import treecmp  # noqa: E402
from vtest import (RC_OK, Fatal, Test, Vigil, describe, find_tmp_leftovers,  # noqa: E402,E501
                   job_ini, short_path)

KIB, MIB = 1024, 1024 * 1024


def make_tree(src, rng, nfiles, nbig):
    os.mkdir(src)
    dirs = [""]
    for i in range(max(4, nfiles // 50)):
        d = os.path.join(rng.choice(dirs), "d%03d" % i)
        os.mkdir(os.path.join(src, d))
        dirs.append(d)
    for i in range(nfiles):
        write(os.path.join(src, rng.choice(dirs), "f%05d" % i), rng,
              rng.randrange(0, 12 * KIB))
    for i in range(nbig):
        write(os.path.join(src, rng.choice(dirs), "big%02d" % i), rng,
              rng.randrange(2 * MIB, 6 * MIB))
    return dirs


def write(path, rng, size):
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))


def change(src, rng, dirs, big):
    """Change the source; `big` rounds rewrite multi-MiB files too."""
    files = []
    for d, _, fs in os.walk(src):
        files += [os.path.join(d, f) for f in fs]
    small = [f for f in files if not os.path.basename(f).startswith("big")]
    bigs = [f for f in files if os.path.basename(f).startswith("big")]
    n = 0
    for f in rng.sample(small, min(len(small), rng.randrange(20, 300))):
        write(f, rng, rng.randrange(0, 12 * KIB))
        n += 1
    if big:
        for f in rng.sample(bigs, min(len(bigs), 2)):
            write(f, rng, rng.randrange(2 * MIB, 6 * MIB))
            n += 1
    for f in rng.sample(small, min(len(small), rng.randrange(0, 15))):
        if os.path.exists(f):
            os.unlink(f)
            n += 1
    for i in range(rng.randrange(0, 20)):
        write(os.path.join(src, rng.choice(dirs),
                           "n%06d" % rng.randrange(10**6)), rng,
              rng.randrange(0, 8 * KIB))
        n += 1
    return n


def record(gens, src, cache):
    for rel, e in treecmp.scan(src, xattrs=False, cache=cache).items():
        if e.type == "file":
            gens.setdefault(rel, set()).add(e.digest)


def torn(gens, dst, cache):
    """Destination files whose content no source generation had."""
    bad = []
    ents = treecmp.scan(dst, skip_vigil=False, xattrs=False, cache=cache)
    nfiles = nversions = 0
    for rel, e in ents.items():
        if e.type != "file":
            continue
        name = rel.rsplit(b"/", 1)[-1]
        if name.startswith(b".vigil-tmp-"):
            continue            # a killed run's temp file: allowed, for now
        if rel.startswith(b".vigil/"):
            parts = rel.split(b"/")
            if len(parts) < 4 or parts[1] != b"versions":
                continue        # job.ini, manifests
            orig = b"/".join(parts[3:])
            nversions += 1
        else:
            orig = rel
            nfiles += 1
        if e.digest not in gens.get(orig, ()):
            bad.append("%s: content (%d bytes) matches no generation of %s"
                       % (short_path(rel), e.size, short_path(orig)))
    return bad, nfiles, nversions


def main(t):
    seed = t.args.seed or 4711
    rng = random.Random(seed)
    rounds = 20 if t.args.quick else 55
    src, dst = t.path("src"), t.path("dst")
    dirs = make_tree(src, rng, 2500, 6)
    gens = {}
    scache, dcache = {}, {}
    record(gens, src, scache)
    t.info("source: %d files, %d folders" % (len(gens), len(dirs)))
    v = Vigil(t, t.path("state"))
    job = "kill"
    v.import_jobs(job_ini(job, src, dst, mode="mirror", keep_versions=2,
                          max_delete=100))

    kills = landed = 0
    durations = []
    delays = []
    failures_before = t.nfailed
    for rnd in range(rounds):
        big = rnd % 3 == 0
        if rnd > 0:
            change(src, rng, dirs, big)
            record(gens, src, scache)
        delay = rng.uniform(0, 0.3)
        argv = v.argv("run", job, "--wait")
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True,
                             env=v.env)
        time.sleep(delay)
        rc = p.poll()
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        kills += 1
        delays.append(delay)
        mid = rc is None
        landed += mid
        bad, nf, nv = torn(gens, dst, dcache) if os.path.isdir(dst) \
            else ([], 0, 0)
        t.check(not bad, "round %d: kill after %3.0f ms (%s): no torn file "
                "among %d files and %d versions"
                % (rnd, delay * 1000, "mid-run" if mid else
                   "late: the run had ended, exit %s" % rc, nf, nv),
                "\n".join(bad[:20]))
        t0 = time.monotonic()
        q = v.run(job)
        durations.append(time.monotonic() - t0)
        t.check(q.returncode == RC_OK, "round %d: the clean run after the "
                "kill exits 0 (%.0f ms)" % (rnd, durations[-1] * 1000),
                describe(q))
        diffs = treecmp.compare(
            treecmp.scan(src, xattrs=False, cache=scache),
            treecmp.scan(dst, skip_vigil=True, xattrs=False, cache=dcache),
            xattrs=False)
        left = find_tmp_leftovers(dst)
        t.check(not diffs and not left, "round %d: after the clean run the "
                "destination equals the source, no temp files" % rnd,
                "\n".join(diffs[:20] + [short_path(x) for x in left]))
        if t.nfailed - failures_before > 10:
            raise Fatal("too many failures, stopping after round %d" % rnd)
    t.check(kills >= 50 or t.args.quick, "%d kills (at least 50)" % kills)
    t.check(landed >= kills // 3, "%d of %d kills landed mid-run (the rest "
            "after the run had ended)" % (landed, kills))
    durations.sort()
    t.info("clean runs: median %.0f ms, max %.0f ms; kill delays 0-%.0f ms"
           % (durations[len(durations) // 2] * 1000, durations[-1] * 1000,
              max(delays) * 1000))
    h = v.history(job, limit=100000)
    st = {}
    for r in h:
        st[r.get("status")] = st.get(r.get("status"), 0) + 1
    t.info("run records by status: %s" % st)
    t.check("running" not in st, "no run record is left `running` after "
            "the kills (%d records)" % len(h), repr(st))


if __name__ == "__main__":
    Test("kill", "kill -9 at random points, then check nothing is torn "
         "and a clean run completes").main(main)
