#!/usr/bin/env python3
"""test_differential.py: mirror generated hostile trees with the real vigil and
compare the destination with the source, byte for byte and metadata for
metadata (leaving out .vigil/).  Then mutate the source and mirror again.
rsync -aH --delete runs on the same trees as a reference; its differences are
printed as information (it drops sparseness, xattrs without -X, and paths
past PATH_MAX; vigil must not).

Also: a no-change run copies nothing; a dry run changes nothing; backup mode
deletes nothing; --rescan repairs a tampered destination; max-delete aborts
before touching anything; excluded files are never deleted."""

import os
import subprocess
import sys

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gentree  # noqa: E402
import treecmp  # noqa: E402
from vtest import (RC_FAILED, RC_OK, Test, Vigil, copied_count, describe,  # noqa: E402,E501
                   find_tmp_leftovers, job_ini, short_path)


def diff_report(t, what, diffs, limit=40):
    return t.check(not diffs, "%s: destination equals source (%d "
                   "differences)" % (what, len(diffs)),
                   "\n".join(diffs[:limit]))


KINDS = ["sparse file not sparse", "user xattrs", "hard links",
         "missing in destination", "extra in destination", "content differs",
         "symlink target", "unreadable", "type ", "size ", "mtime ", "mode ",
         "owner "]


def classify(d):
    for k in KINDS:
        if ": " + k in d:
            return k.strip()
    return "other"


def rsync_ref(t, src, dst, label):
    """rsync -aH --delete as the reference; print its differences by kind."""
    p = subprocess.run(["rsync", "-aH", "--delete", src + "/", dst + "/"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    diffs, _ = treecmp.compare_trees(src, dst, skip_vigil=False,
                                     max_report=10**6)
    kinds = {}
    for d in diffs:
        k = classify(d)
        kinds[k] = kinds.get(k, 0) + 1
    t.info("reference rsync -aH --delete (%s): exit %d, %d differences%s"
           % (label, p.returncode, len(diffs),
              "".join("\n         %4d %s" % (n, k)
                      for k, n in sorted(kinds.items()))))
    return len(diffs)


def run_and_compare(t, v, job, src, dst, what, *flags, **kw):
    p = v.run_expect(job, *flags, rc=RC_OK, what=what)
    diffs, n = treecmp.compare_trees(src, dst, **kw)
    diff_report(t, "%s (%d entries)" % (what, n), diffs)
    left = find_tmp_leftovers(dst)
    t.check(not left, "%s: no .vigil-tmp-* left at the destination" % what,
            "\n".join(short_path(x) for x in left))
    return p


def mirror_seeds(t, v):
    base = t.args.seed or 1000
    nseeds = 2 if t.args.quick else 4
    totals = dict(vigil=0, rsync=0)
    for i in range(nseeds):
        seed = base + i
        root = t.path("seed%d" % seed)
        os.mkdir(root)
        src, dst, rdst = (os.path.join(root, x) for x in ("src", "dst",
                                                          "rsync"))
        counts = gentree.generate(src, seed, files=180 + 40 * i)
        t.info("seed %d: %s" % (seed, " ".join(
            "%s=%d" % kv for kv in sorted(counts.items()))))
        job = "diff-%d" % seed
        v.import_jobs(job_ini(job, src, dst, mode="mirror", max_delete=100,
                              keep_versions=2))
        run_and_compare(t, v, job, src, dst, "seed %d first mirror" % seed)
        totals["rsync"] += rsync_ref(t, src, rdst, "seed %d first" % seed)

        # no change: nothing copied
        v.run_expect(job, rc=RC_OK, what="seed %d no-change run" % seed)
        rec = v.last_run(job)
        c = copied_count(rec)
        if c is None:
            c = copied_count(v.log(rec["id"]))
        t.check(c == 0, "seed %d: a no-change run copies 0 files (record "
                "says %r)" % (seed, c), "record: %r" % (rec,))

        # mutate; a dry run first must change nothing
        ops = gentree.mutate(src, seed, ops=35)
        kinds = sorted(set(o.split()[0] for o in ops))
        t.info("seed %d: %d changes: %s" % (seed, len(ops), ", ".join(kinds)))
        before = treecmp.scan(dst)
        p = v.run_expect(job, "--dry-run", rc=RC_OK,
                         what="seed %d dry run" % seed)
        t.check(p.stdout.strip(), "seed %d: the dry run prints a plan" % seed,
                describe(p))
        after = treecmp.scan(dst)
        d = treecmp.compare(before, after, owner=True)
        t.check(not d, "seed %d: the dry run changed nothing at the "
                "destination (.vigil included)" % seed, "\n".join(d[:30]))

        run_and_compare(t, v, job, src, dst, "seed %d after %d changes"
                        % (seed, len(ops)))
        totals["rsync"] += rsync_ref(t, src, rdst, "seed %d after changes"
                                     % seed)
        # a second round of changes on the same destination
        ops = gentree.mutate(src, seed + 5000, ops=25)
        run_and_compare(t, v, job, src, dst, "seed %d after %d more changes"
                        % (seed, len(ops)))
    t.info("rsync reference total: %d differences over %d seeds (vigil must "
           "have 0)" % (totals["rsync"], nseeds))


def backup_mode(t, v):
    seed = (t.args.seed or 1000) + 77
    root = t.path("backup")
    os.mkdir(root)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    gentree.generate(src, seed, files=150)
    job = "bk"
    v.import_jobs(job_ini(job, src, dst, mode="backup"))
    run_and_compare(t, v, job, src, dst, "backup first run")
    d1 = treecmp.scan(dst, skip_vigil=True, content=False, xattrs=False)
    ops = gentree.mutate(src, seed, ops=40)
    deletes = sum(1 for o in ops if o.startswith("delete")
                  or o.startswith("rename") or o.startswith("dir-to-file"))
    v.run_expect(job, rc=RC_OK, what="backup after %d changes (%d delete "
                 "or move)" % (len(ops), deletes))
    s2 = treecmp.scan(src)
    d2 = treecmp.scan(dst, skip_vigil=True)
    diffs = treecmp.compare(s2, d2, superset=True)
    diff_report(t, "backup: every source entry at the destination", diffs)
    gone = []
    for rel in d1:
        if rel in d2:
            continue
        # explained only by a folder in the source that became a non-folder
        parts = rel.split(b"/")
        explained = any(
            d1.get(b"/".join(parts[:k]), None) is not None
            and d1[b"/".join(parts[:k])].type == "dir"
            and b"/".join(parts[:k]) in s2
            and s2[b"/".join(parts[:k])].type != "dir"
            for k in range(1, len(parts)))
        if not explained:
            gone.append(rel)
    t.check(not gone, "backup: nothing deleted at the destination (%d "
            "entries before, %d after)" % (len(d1), len(d2)),
            "\n".join(short_path(g) for g in gone[:30]))
    extra = sum(1 for r in d2 if r not in s2)
    t.check(extra > 0, "backup: the destination still holds %d entries the "
            "source no longer has" % extra)


def tamper(t, v):
    root = t.path("rescan")
    os.mkdir(root)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    gentree.generate(src, 4242, files=80, deep=True)
    job = "rescan"
    v.import_jobs(job_ini(job, src, dst, mode="mirror"))
    run_and_compare(t, v, job, src, dst, "rescan job first run")
    ents = treecmp.scan(dst, skip_vigil=True, content=False, xattrs=False)
    files = sorted(r for r, e in ents.items()
                   if e.type == "file" and e.nlink == 1 and e.size > 10)
    links = sorted(r for r, e in ents.items() if e.type == "symlink")
    rfd = os.open(dst, gentree.O_DIR)
    done = []
    try:
        with gentree._At(rfd, files[0]) as (pfd, n):      # grows
            fd = os.open(n, os.O_WRONLY | os.O_APPEND, dir_fd=pfd)
            os.write(fd, b"tampered")
            os.close(fd)
            done.append("appended to " + short_path(files[0]))
        with gentree._At(rfd, files[1]) as (pfd, n):      # mtime only
            os.utime(n, ns=(1, 123456789), dir_fd=pfd)
            done.append("mtime of " + short_path(files[1]))
        with gentree._At(rfd, files[2]) as (pfd, n):      # gone
            os.unlink(n, dir_fd=pfd)
            done.append("deleted " + short_path(files[2]))
        with gentree._At(rfd, files[3]) as (pfd, n):      # mode
            os.chmod(n, 0o606, dir_fd=pfd)
            done.append("mode of " + short_path(files[3]))
        with gentree._At(rfd, links[0]) as (pfd, n):      # symlink
            os.unlink(n, dir_fd=pfd)
            os.symlink(b"/tampered/target", n, dir_fd=pfd)
            done.append("retargeted " + short_path(links[0]))
        with gentree._At(rfd, b"planted by hand") as (pfd, n):   # extra
            os.close(os.open(n, os.O_CREAT | os.O_WRONLY, 0o644,
                             dir_fd=pfd))
            done.append("added an extra file")
    finally:
        os.close(rfd)
    t.info("tampered with the destination: " + "; ".join(done))
    v.run_expect(job, rc=RC_OK, what="run without --rescan after tampering")
    diffs, _ = treecmp.compare_trees(src, dst)
    t.info("without --rescan, %d differences remain (the fast path stats "
           "only the source)" % len(diffs))
    run_and_compare(t, v, job, src, dst, "--rescan after tampering",
                    "--rescan")
    # also the run record says it copied something
    rec = v.last_run(job)
    c = copied_count(rec)
    t.check(c is not None and c >= 3, "--rescan run records the repaired "
            "files as copied (%r)" % c, repr(rec))


def max_delete(t, v):
    root = t.path("maxdel")
    os.mkdir(root)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    os.mkdir(src)
    for i in range(40):
        with open(os.path.join(src, "f%02d" % i), "w") as f:
            f.write("file %d\n" % i)
    job = "maxdel"
    v.import_jobs(job_ini(job, src, dst, mode="mirror"))
    run_and_compare(t, v, job, src, dst, "max-delete job first run")
    for i in range(30):                      # 75% > default 50%
        os.unlink(os.path.join(src, "f%02d" % i))
    with open(os.path.join(src, "new"), "w") as f:
        f.write("new\n")
    before = treecmp.scan(dst)
    p = v.run_expect(job, rc=RC_FAILED, what="mirror that would delete 75%")
    out = (p.stdout + p.stderr).decode("utf-8", "replace").lower()
    t.check("max-delete" in out, "the abort names max-delete", describe(p))
    d = treecmp.compare(before, treecmp.scan(dst), owner=True)
    t.check(not d, "max-delete abort touched nothing at the destination",
            "\n".join(d[:20]))
    v.import_jobs(job_ini(job, src, dst, mode="mirror", max_delete=80))
    run_and_compare(t, v, job, src, dst, "with max-delete = 80")


def excluded_kept(t, v):
    root = t.path("excl")
    os.mkdir(root)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    os.mkdir(src)
    for n in ("a.txt", "b.log", "c.txt"):
        with open(os.path.join(src, n), "w") as f:
            f.write(n)
    job = "excl"
    v.import_jobs(job_ini(job, src, dst, mode="mirror", max_delete=100))
    v.run_expect(job, rc=RC_OK, what="exclude job first run (no exclude)")
    v.import_jobs(job_ini(job, src, dst, mode="mirror", max_delete=100,
                          exclude="*.log"))
    os.unlink(os.path.join(src, "b.log"))
    os.unlink(os.path.join(src, "c.txt"))
    with open(os.path.join(src, "new.log"), "w") as f:
        f.write("new")
    with open(os.path.join(dst, "by-hand.log"), "w") as f:
        f.write("kept")
    v.run_expect(job, rc=RC_OK, what="mirror with exclude = *.log")
    have = set(os.listdir(dst)) - {".vigil"}
    t.check(have == {"a.txt", "b.log", "by-hand.log"},
            "excluded files are never deleted nor copied; c.txt deleted "
            "(destination has %s)" % sorted(have))


def vigild_run_once(t, v):
    root = t.path("runonce")
    os.mkdir(root)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    gentree.generate(src, 31337, files=40, deep=False)
    v.import_jobs(job_ini("once", src, dst, mode="mirror"))
    n0 = len(v.history("once"))
    argv = [t.args.vigild, "--state-dir", v.state, "--run-once", "once"]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    t.check(p.returncode == 0, "vigild --run-once exits 0", describe(p))
    diffs, n = treecmp.compare_trees(src, dst)
    diff_report(t, "vigild --run-once (%d entries)" % n, diffs)
    h = v.history("once")
    t.check(len(h) == n0 + 1 and h[0].get("status") == "ok",
            "the --run-once run is in history with status ok", repr(h[:2]))


def inherited_modes(t, v):
    """The copies' modes and owners do not depend on the destination's
    umask, setgid folders or default ACLs: a temp file made with the
    source's mode skips its chmod only where the mode made is the mode
    asked for."""
    import shutil
    root = t.path("modes")
    os.mkdir(root)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    # as root: files of root's group and of the destination's (setgid)
    # group are made with the owner they keep, the others are chowned
    gentree.generate(src, 4242, files=120, deep=False, sparse=False,
                     owners=[(0, 0), (0, 4321), (1234, 5678)]
                     if os.geteuid() == 0 else None)
    os.mkdir(dst)
    if os.geteuid() == 0:
        os.chown(dst, 0, 4321)
    os.chmod(dst, 0o2775)
    acl = shutil.which("setfacl")
    if acl:
        # takes the group's bits, which a umask of 022 leaves
        subprocess.run([acl, "-d", "-m", "u::rwx,g::---,o::r-x", dst],
                       check=True)
    else:
        t.info("setfacl is missing: no default ACL on the destination")
    v.import_jobs(job_ini("modes", src, dst, mode="mirror"))
    old = os.umask(0o022)
    try:
        run_and_compare(t, v, "modes", src, dst, "a setgid destination "
                        "with a default ACL, umask 022")
    finally:
        os.umask(old)


def user_read_only(t):
    """A job that is not root's: a read-only file with a user.* xattr is
    copied with its xattr and its mode (the temp file stays writable by
    its owner until the copy is done: setting user.* needs write
    permission)."""
    import pwd
    if os.geteuid() != 0:
        t.info("not root: the run as another user is left out")
        return
    nobody = pwd.getpwnam("nobody")
    base = t.path("asuser")
    os.mkdir(base, 0o755)
    src, dst, state = (os.path.join(base, x) for x in ("src", "dst",
                                                      "state"))
    for d in (src, state):
        os.mkdir(d, 0o755)
    for n, mode in (("ro", 0o444), ("ro-exec", 0o555), ("rw", 0o644)):
        f = os.path.join(src, n)
        with open(f, "w") as fh:
            fh.write(n)
        os.setxattr(f, "user.note", n.encode())
        os.chmod(f, mode)
    for x in (base, src, state) + tuple(os.path.join(src, n) for n in
                                        ("ro", "ro-exec", "rw")):
        os.lchown(x, nobody.pw_uid, nobody.pw_gid)
    v = Vigil(t, state, as_user="nobody")
    v.import_jobs(job_ini("ro", src, dst, mode="mirror"))
    run_and_compare(t, v, "ro", src, dst, "as nobody: read-only files "
                    "with user xattrs")


def main(t):
    v = Vigil(t, t.path("state"))
    mirror_seeds(t, v)
    backup_mode(t, v)
    tamper(t, v)
    max_delete(t, v)
    excluded_kept(t, v)
    inherited_modes(t, v)
    user_read_only(t)
    vigild_run_once(t, v)


if __name__ == "__main__":
    Test("differential", "mirror hostile trees, compare with the source "
         "(and rsync as reference)").main(main)
