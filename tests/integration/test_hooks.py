#!/usr/bin/env python3
"""Pre/post commands: argv only (no shell ever sees `;`, `$()`, backticks),
a failing pre stops the run before any copy, a failing post makes it
partial.  With strace present, every execve is checked."""

import os
import shutil
import subprocess

import vtest


def body(t):
    src = t.path("src")
    os.makedirs(src)
    with open(os.path.join(src, "f"), "w") as f:
        f.write("x\n")
    odd = t.path("a;b $(touch pwned) `touch pwned` --option=1")
    v = vtest.Vigil(t, t.path("state"))
    v.import_jobs(
        vtest.job_ini("hooks", src, t.path("dst"),
                      pre='/usr/bin/touch "%s"' % odd,
                      post="/bin/true") +
        vtest.job_ini("prefail", src, t.path("dst2"), pre="/bin/false") +
        vtest.job_ini("postfail", src, t.path("dst3"), post="/bin/false"))

    argv = v.argv("run", "hooks", "--wait")
    trace = t.path("trace")
    strace = shutil.which("strace")
    if strace:
        argv = [strace, "-f", "-qq", "-e", "trace=execve", "-o", trace] + argv
    env = dict(v.env)
    if strace:
        # LeakSanitizer cannot run under ptrace; the other runs check leaks.
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               ":detect_leaks=0").lstrip(":")
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=120)
    t.check(p.returncode == 0, "run with pre and post exits 0",
            vtest.describe(p))
    t.check(os.path.exists(odd), "pre received its argument as one word, "
            "`;`, `$()` and backticks included")
    t.check(not os.path.exists("pwned") and
            not os.path.exists(t.path("pwned")),
            "no shell ran the command's words")
    if strace:
        with open(trace, errors="replace") as f:
            execs = [line for line in f if "execve(" in line]
        shells = [line for line in execs if '"/bin/sh"' in line or
                  '"/bin/bash"' in line or '"/usr/bin/sh"' in line]
        t.check(not shells, "strace: no shell was executed", "".join(shells))
        t.check(any('"/usr/bin/touch"' in line for line in execs),
                "strace: /usr/bin/touch was executed directly",
                "".join(execs))
    else:
        t.info("strace not installed: execve not traced")

    p = v.run("prefail")
    t.check(p.returncode == vtest.RC_FAILED, "a failing pre command fails "
            "the run (exit 4)", vtest.describe(p))
    t.check(b"pre command" in p.stdout, "the record names the pre command",
            p.stdout)
    t.check(not os.path.exists(t.path("dst2", "f")),
            "nothing was copied after a failed pre command")
    p = v.run("postfail")
    t.check(p.returncode == vtest.RC_PARTIAL, "a failing post command makes "
            "the run partial (exit 3)", vtest.describe(p))
    t.check(os.path.exists(t.path("dst3", "f")), "the copy itself was done")


if __name__ == "__main__":
    t = vtest.Test("hooks", "pre/post commands: argv only, no shell")
    t.main(body)
