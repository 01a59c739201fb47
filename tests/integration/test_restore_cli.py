#!/usr/bin/env python3
"""test_restore_cli.py: `vigil restore` against recorded generations.

A hostile tree is mirrored three times with keep-versions = 3, the source
changing between runs; each generation is recorded (a scan with content
hashes).  Restoring --as-of each run (and --as-of a time) into --to folders
must give back that generation: files, contents, symlinks, and, for the
latest, metadata and hard links.  Setuid and setgid bits are left out of the comparison: the CLI restores
without owners and drops them on purpose.  Back in the original location, restore
leaves a newer file alone unless --overwrite, brings back deleted files
(absolute and destination-relative paths), changes nothing with --dry-run,
and never writes through a symlink planted at the target."""

import datetime
import os
import sys
import time

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gentree  # noqa: E402
import treecmp  # noqa: E402
from vtest import (RC_OK, Test, Vigil, describe, job_ini, rmtree,  # noqa: E402,E501
                   short_path)

# Differences a restore of an older run may show when only metadata changed
# in between (the versions area keeps replaced and deleted files, not
# metadata-only changes); reported, not failed.
# Likewise a folder that was empty and then deleted: the versions area
# holds folders only to hold versioned files (docs/architecture.md).
SOFT = ("mode ", "mtime ", "owner ", "hard links", "user xattrs",
        "missing in destination (source has a dir)")


def no_setid(entries):
    """The CLI restores without owners, so it drops setuid and setgid bits
    (restore.c: a restored file belongs to the restoring user); compare
    without them."""
    for e in entries.values():
        e.mode &= ~0o6000
    return entries


def scan(root):
    return no_setid(treecmp.scan(root))


def split(diffs):
    hard, soft = [], []
    for d in diffs:
        (soft if any(": " + s in d for s in SOFT) else hard).append(d)
    return hard, soft


def restore(t, v, job, *args, rc=RC_OK, what=None):
    p = v.cmd("restore", job, *args, timeout=180)
    if rc is not None:
        t.check(p.returncode == rc, "%s: restore exits %d (got %d)"
                % (what or " ".join(args), rc, p.returncode), describe(p))
    return p


def main(t):
    seed = t.args.seed or 500
    src, dst = t.path("src"), t.path("dst")
    gentree.generate(src, seed, files=110)
    v = Vigil(t, t.path("state"))
    job = "rst"
    v.import_jobs(job_ini(job, src, dst, mode="mirror", keep_versions=3,
                          max_delete=100))
    refs, ids = [], []
    as_of_time = None
    for gen in range(3):
        if gen:
            ops = gentree.mutate(src, seed + gen, ops=25)
            t.info("generation %d: %d changes (%s)" % (
                gen + 1, len(ops), ", ".join(sorted(set(
                    o.split()[0] for o in ops)))))
        v.run_expect(job, rc=RC_OK, what="backup generation %d" % (gen + 1))
        refs.append(scan(src))
        ids.append(v.last_run(job)["id"])
        if gen == 1:
            # a whole second after run 2 ended and before run 3 starts
            now = time.time()
            as_of_time = int(now) + 1
            time.sleep(as_of_time + 1.05 - now)
    t.info("runs %s" % ids)

    for k in range(3):
        to = t.path("asof%d" % (k + 1))
        restore(t, v, job, "--as-of", str(ids[k]), "--to", to,
                what="--as-of run %s" % ids[k])
        if not os.path.isdir(to):
            t.check(False, "--as-of run %s created %s" % (ids[k], to))
            continue
        latest = k == 2
        diffs = treecmp.compare(refs[k], scan(to), owner=False,
                                dir_times=False, root_meta=False,
                                hardlinks=latest)
        hard, soft = (diffs, []) if latest else split(diffs)
        t.check(not hard, "--as-of run %s gives back generation %d (%d "
                "entries, %d differences)" % (ids[k], k + 1, len(refs[k]),
                                              len(hard)),
                "\n".join(hard[:40]))
        if soft:
            t.info("--as-of run %s: %d metadata-only differences (not kept "
                   "by versions):\n         %s" % (ids[k], len(soft),
                                                   "\n         ".join(
                                                       soft[:8])))

    # --as-of a time: local time, and the time history prints
    stamp = datetime.datetime.fromtimestamp(as_of_time).strftime(
        "%Y-%m-%d %H:%M:%S")
    to = t.path("asof-time")
    restore(t, v, job, "--as-of", stamp, "--to", to,
            what="--as-of \"%s\" (between runs 2 and 3)" % stamp)
    if os.path.isdir(to):
        hard, _ = split(treecmp.compare(refs[1], scan(to),
                                        owner=False, dir_times=False,
                                        root_meta=False, hardlinks=False))
        t.check(not hard, "--as-of a time between runs 2 and 3 gives back "
                "generation 2", "\n".join(hard[:40]))
    h = [r for r in v.history(job) if r.get("id") == ids[1]]
    ended = h[0].get("ended") if h else None
    to = t.path("asof-histtime")
    p = restore(t, v, job, "--as-of", str(ended), "--to", to, rc=None)
    t.check(p.returncode == RC_OK, "--as-of accepts the time as `vigil "
            "history` prints it (%s)" % ended, describe(p))
    # malformed fractions are refused with a clear message, nothing made
    if ended and "." in str(ended):
        base = str(ended).split(".")[0]
        for bad in (base + ".-12Z", base + ".1234Z", base + ".5Zjunk",
                    base + ".Z", base + ".5"):
            to = t.path("asof-bad")
            p = restore(t, v, job, "--as-of", bad, "--to", to, rc=None)
            t.check(p.returncode != RC_OK and b"as-of" in p.stderr and
                    not os.path.exists(to), "--as-of %s is refused, naming "
                    "--as-of, and nothing is restored" % bad, describe(p))
        to = t.path("asof-tenths")
        p = restore(t, v, job, "--as-of", base + ".9Z", "--to", to, rc=None)
        t.check(p.returncode == RC_OK, "--as-of with tenths of a second "
                "(%s.9Z) is read as 900 ms" % base, describe(p))

    restore_in_place(t, v, job, src, refs[2])
    planted_symlinks(t, v, job, refs[2], ids[2])


def pick(ref, pred):
    for rel in sorted(ref, key=lambda r: (r.count(b"/"), r)):
        e = ref[rel]
        if rel and pred(rel, e):
            return rel
    raise AssertionError("no suitable entry")


def entry_diffs(ref, rel, root):
    got = scan(root)
    return treecmp.compare({rel: ref[rel]}, {rel: got[rel]} if rel in got
                           else {}, owner=False, superset=True,
                           hardlinks=False)


def restore_in_place(t, v, job, src, ref):
    def plain(r, e):        # a simple printable name, for matching output
        return e.type == "file" and e.nlink == 1 and e.size > 0 and \
            all(0x21 <= c < 0x7f for c in r) and b"\\" not in r and \
            not r.startswith(b"-")
    f = pick(ref, plain)
    fa = os.path.join(os.fsencode(src), f)
    with open(fa, "wb") as fh:
        fh.write(b"newer local edit\n")
    future = time.time_ns() + 3600 * 10**9
    os.utime(fa, ns=(future, future))
    p = restore(t, v, job, fa, what="restore of a newer file, in place")
    t.check(open(fa, "rb").read() == b"newer local edit\n",
            "a file newer than the backup is left alone without "
            "--overwrite (%s)" % short_path(f), describe(p))
    t.check(b"newer" in p.stdout + p.stderr, "restore says it left a newer "
            "file alone", describe(p))
    restore(t, v, job, fa, "--overwrite", what="restore --overwrite")
    d = entry_diffs(ref, f, src)
    t.check(not d, "--overwrite brings back the backed-up file", "\n".join(d))

    # deleted, restored by its path relative to the destination root
    g = pick(ref, lambda r, e: plain(r, e) and r != f)
    os.unlink(os.path.join(os.fsencode(src), g))
    restore(t, v, job, g, what="restore of a deleted file by relative path")
    d = entry_diffs(ref, g, src)
    t.check(not d, "a deleted file comes back, content and metadata (%s)"
            % short_path(g), "\n".join(d))

    # dry run changes nothing
    hfile = pick(ref, lambda r, e: plain(r, e) and r not in (f, g))
    ha = os.path.join(os.fsencode(src), hfile)
    os.unlink(ha)
    p = restore(t, v, job, ha, "--dry-run", what="restore --dry-run")
    t.check(not os.path.lexists(ha), "--dry-run restores nothing",
            describe(p))
    t.check(os.path.basename(hfile) in p.stdout, "--dry-run lists the file "
            "it would restore", describe(p))

    # a whole folder deleted from the source, everything restored in place
    sub = pick(ref, lambda r, e: e.type == "dir" and b"/" not in r and
               any(x.startswith(r + b"/") for x in ref))
    rmtree(os.path.join(os.fsencode(src), sub))
    restore(t, v, job, what="restore of everything in place")
    diffs = treecmp.compare(ref, scan(src), owner=False,
                            dir_times=False, root_meta=False)
    t.check(not diffs, "after deleting %s (and %s), a full restore in place "
            "gives back the backed-up tree" % (short_path(sub),
                                              short_path(hfile)),
            "\n".join(diffs[:40]))


def planted_symlinks(t, v, job, ref, rid):
    victim = t.path("victim")
    os.mkdir(victim)
    with open(os.path.join(victim, "precious"), "w") as fh:
        fh.write("precious\n")
    to = os.fsencode(t.path("planted"))
    os.mkdir(to)
    d = pick(ref, lambda r, e: e.type == "dir" and b"/" not in r and
             any(x.startswith(r + b"/") and ref[x].type == "file"
                 for x in ref))
    f = pick(ref, lambda r, e: e.type == "file" and b"/" not in r)
    os.symlink(os.fsencode(victim), os.path.join(to, d))
    os.symlink(os.path.join(os.fsencode(victim), b"precious"),
               os.path.join(to, f))
    p = restore(t, v, job, "--to", to, "--overwrite", "--as-of", str(rid),
                rc=None)
    t.info("restore into a folder with planted symlinks: exit %d"
           % p.returncode)
    t.check(sorted(os.listdir(victim)) == ["precious"] and
            open(os.path.join(victim, "precious")).read() == "precious\n",
            "restore never writes through a symlink planted at the target "
            "(%s -> victim, %s -> victim/precious)" % (short_path(d),
                                                       short_path(f)),
            describe(p) + "\nvictim holds %s" % os.listdir(victim))


if __name__ == "__main__":
    Test("restore_cli", "restore --as-of, --to, in place, --overwrite, "
         "--dry-run").main(main)
