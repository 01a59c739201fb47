#!/usr/bin/env python3
"""test_service_faults.py: the fault shim in the service's worker.

`vigild --user` is started with faultshim.so preloaded and
VIGIL_FAULT_INHERIT=1, so the worker it forks for a run shares the shim's
count; the faults are limited to the destination folder, so the service's
own files (vigil.db, the socket) are not touched.  For each call kind
(write+pwrite, fsync+fdatasync+syncfs, rename+renameat+renameat2) and a
few N, with the source changed before each round:
  - the faulted run (`vigil run --wait` through the socket) exits 3 or 4
    and the service records it failed or partial, naming the error
    (Input/output error), when the shim says it injected a fault; a run
    the fault did not reach must be ok;
  - vigild is still running and answers status;
  - nothing at the destination is torn: each file holds its old or its
    new content;
  - a clean run through a service without the shim then makes the
    destination equal to the source, with no .vigil-tmp-* left.
Prints the faults injected per kind."""

import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True     # keep the source tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import treecmp  # noqa: E402
from vtest import (RC_FAILED, RC_OK, RC_PARTIAL, Fatal, Service,  # noqa: E402,E501
                   SockVigil, Test, describe, find_tmp_leftovers, job_ini)

# label, calls counted, calls that always fail (copy_file_range=EXDEV makes
# the engine copy with read/write, so that the writes are its own).
CASES = [
    ("write", "write,pwrite", "copy_file_range=EXDEV"),
    ("fsync", "fsync,fdatasync,syncfs", None),
    ("rename", "rename,renameat,renameat2", None),
]
NS = (1, 2, 5)


def add_args(ap):
    ap.add_argument("--shim", required=True, help="faultshim.so")


def find_asan(binary):
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    for line in out.splitlines():
        w = line.split()
        if w and w[0].startswith("libasan") and len(w) >= 3:
            return w[2]
    return None


def read_log(path):
    injected = []
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if w and w[0] == "inject":
                    injected.append((w[1], int(w[2]), " ".join(w[4:])))
    except FileNotFoundError:
        pass
    return injected


def snapshot(root):
    out = {}
    for dp, dn, fn in os.walk(root):
        dn[:] = [d for d in dn if d != ".vigil"]
        for n in fn:
            p = os.path.join(dp, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def mutate(src, rnd):
    """Rewrite a third of the files, add one."""
    for i, rel in enumerate(sorted(snapshot(src))):
        if (i + rnd) % 3 == 0:
            with open(os.path.join(src, rel), "ab") as f:
                f.write(b"round %d\n" % rnd * (50 + i))
    with open(os.path.join(src, "d1", "new%03d" % rnd), "wb") as f:
        f.write(b"new in round %d\n" % rnd * 300)


def body(t):
    if not os.access(t.args.shim, os.R_OK):
        raise Fatal("--shim %s: not readable" % t.args.shim)
    src, dst = t.path("src"), t.path("dst")
    for d in range(3):
        os.makedirs(os.path.join(src, "d%d" % d))
        for i in range(12):
            with open(os.path.join(src, "d%d" % d, "f%02d" % i), "wb") as f:
                f.write(b"%d %d\n" % (d, i) * (1 + 97 * i))
    state = t.path("state")
    os.makedirs(state)
    sock = os.path.join(state, "s.sock")
    args = ["--user", "--state-dir", state, "--socket", sock]
    clean = Service(t, args, sock, name="vigild-clean")
    v = SockVigil(t, sock)
    clean.start()
    v.import_jobs(job_ini("svcf", src, dst))
    v.run_expect("svcf", rc=RC_OK, what="first clean run")
    clean.stop()

    asan = find_asan(t.args.vigild)
    pre = ([asan] if asan else []) + [t.args.shim]
    total = {}
    rnd = 0
    absorbed = 0
    for label, calls, always in CASES:
        total[label] = 0
        for n in NS:
            rnd += 1
            before = snapshot(dst)
            mutate(src, rnd)
            after = snapshot(src)
            log = t.path("shim-%s-%d.log" % (label, n))
            env = {"LD_PRELOAD": ":".join(pre),
                   "VIGIL_FAULT_CALL": calls, "VIGIL_FAULT_N": str(n),
                   "VIGIL_FAULT_ERRNO": "EIO",
                   "VIGIL_FAULT_PATH_PREFIX": dst,
                   "VIGIL_FAULT_INHERIT": "1", "VIGIL_FAULT_LOG": log}
            if always:
                env["VIGIL_FAULT_ALWAYS"] = always
            if asan:
                env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                       ":verify_asan_link_order=0").lstrip(":")
            svc = Service(t, args, sock, env=env,
                          name="vigild-%s-%d" % (label, n)).start()
            what = "%s N=%d" % (label, n)
            p = v.run("svcf", timeout=120)
            inj = read_log(log)
            total[label] += len(inj)
            rec = v.last_run("svcf")
            full = v.log(rec["id"])
            text = json.dumps(full) + p.stdout.decode("utf-8", "replace")
            own = inj and all(x[2].startswith(os.path.join(dst, ".vigil"))
                              for x in inj)
            if own and p.returncode == RC_OK:
                # vigil's own .vigil/job.ini: a warning by design (as in
                # test_nth.py); the copy itself must be whole.
                absorbed += 1
                diffs, _ = treecmp.compare_trees(src, dst)
                t.check(not diffs, "%s: the fault on vigil's own %s was "
                        "absorbed, the run is ok and the destination "
                        "equals the source" % (what, os.path.relpath(
                            inj[0][2], dst)), "\n".join(diffs[:20]))
            elif inj:
                t.check(p.returncode in (RC_PARTIAL, RC_FAILED) and
                        full.get("status") in ("partial", "failed") and
                        "Input/output error" in text,
                        "%s: %d fault(s) in the worker (first %s on %s): "
                        "the service records the run %s, naming the error"
                        % (what, len(inj), inj[0][0],
                           os.path.relpath(inj[0][2], dst)
                           if inj[0][2].startswith(dst) else inj[0][2],
                           full.get("status")),
                        describe(p) + "\n" + json.dumps(full, indent=1))
            else:
                t.check(p.returncode == RC_OK and full.get("status") == "ok",
                        "%s: no fault reached the worker: the run is ok"
                        % what, describe(p))
            t.check(svc.alive() and v.status()["service"].get("pid") ==
                    svc.pid, "%s: vigild is still up and answers status"
                    % what, svc.log()[-2000:])
            svc.stop()
            torn = []
            for rel, data in snapshot(dst).items():
                if data != before.get(rel) and data != after.get(rel):
                    torn.append(rel)
            t.check(not torn, "%s: nothing torn at the destination (each "
                    "file old or new)" % what, repr(torn[:20]))
            clean.start()
            v.run_expect("svcf", rc=RC_OK, what="%s: clean run" % what)
            clean.stop()
            diffs, cnt = treecmp.compare_trees(src, dst)
            left = find_tmp_leftovers(dst)
            t.check(not diffs and not left, "%s: after the clean run the "
                    "destination equals the source (%d entries), no temp "
                    "files" % (what, cnt),
                    "\n".join(diffs[:20] + [repr(x) for x in left[:20]]))
        t.check(total[label] > 0, "%s: the shim reached the service's "
                "worker (%d faults)" % (label, total[label]))
    t.info("service worker faults: %s (N = %s); %d absorbed on .vigil/"
           % (", ".join("%s %d" % kv for kv in total.items()),
              ", ".join(map(str, NS)), absorbed))


if __name__ == "__main__":
    Test("faults-service", "the fault shim in vigild's worker",
         add_args=add_args).main(body)
