#!/usr/bin/env python3
"""test_jobs_cli.py: the jobs file through the real CLI.

validate: a good file passes; each class of error exits 1 and names
FILE:LINE and the key (or the job) on stderr, with a hint; one pass reports
every error.  import merges, --replace makes the set exactly the file, a
file with any error changes nothing, and a removed job's runs stay readable.
export round-trips byte for byte, comments included.  Bad command lines exit
2 with usage; an unknown job or run exits 1 naming it."""

import json
import os
import sys

sys.dont_write_bytecode = True     # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vtest import (RC_ERROR, RC_OK, RC_USAGE, Test, Vigil, describe,  # noqa: E402,E501
                   job_ini)


def names(v):
    j = v.json("jobs", "list", "--json")
    if isinstance(j, dict):
        j = j.get("jobs", [])
    return sorted(x.get("name") for x in j)


def write(t, name, text):
    p = t.path(name)
    with open(p, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    return p


def validate_cases(t, v, src, dst):
    good = """# vigil jobs, kept under version control
; a comment with a semicolon

[job documents]
source      = %(src)s
destination = %(dst)s
mode        = mirror
schedule    = daily 02:00
# a comment between keys
exclude     = *.tmp, .cache/, a\\,b ;not a comment, part of the value
keep-versions = 5
max-delete = 30
verify = yes
warn = 90s
include = %(long)s

[job photos.2024-x_y]
source = %(src)s
destination = %(dst)s2
schedule = weekly Mon,Thu 03:30
""" % dict(src=src, dst=dst, long=", ".join("dir%03d/*.jpg" % i
                                             for i in range(40)))
    f = write(t, "good.ini", good)
    p = v.cmd("jobs", "validate", f)
    t.check(p.returncode == RC_OK, "validate: a good file (comments, ' ;' "
            "in a value, a %d-character line) exits 0"
            % max(len(x) for x in good.splitlines()), describe(p))

    head = "[job j]\nsource = %s\ndestination = %s\n" % (src, dst)
    # (what, text, line, words that must be on that line's diagnostic)
    cases = [
        ("unknown key", head + "colour = blue\n", 4, ["colour"]),
        ("misspelt key", head + "keep-version = 3\n", 4, ["keep-version"]),
        ("bad schedule", head + "schedule = daily 25:00\n", 4,
         ["schedule"]),
        ("source that does not exist",
         "[job j]\nsource = %s/missing\ndestination = %s\n" % (src, dst),
         2, ["source"]),
        ("relative source", "[job j]\nsource = rel/path\ndestination = %s\n"
         % dst, 2, ["source"]),
        ("duplicate job name", head + "\n" + head, 5, ["j"]),
        ("mode the other keys contradict", head + "mode = mirror\n"
         "format = zip\n", 5, ["format"]),
        ("sync refused by name", head + "mode = sync\n", 4, ["sync"]),
        ("bad job name", "[job bad name!]\nsource = %s\ndestination = %s\n"
         % (src, dst), 1, []),
        ("job name too long", "[job %s]\nsource = %s\ndestination = %s\n"
         % ("n" * 65, src, dst), 1, []),
        ("not a number", head + "keep-versions = many\n", 4,
         ["keep-versions"]),
        ("percent out of range", head + "max-delete = 150\n", 4,
         ["max-delete"]),
        ("bad duration", head + "warn = 5 parsecs\n", 4, ["warn"]),
        ("bad yes/no", head + "verify = maybe\n", 4, ["verify"]),
        ("key outside a section", "mode = backup\n" + head, 1, ["mode"]),
        ("line without =", head + "just some words\n", 4, []),
        ("unknown section", "[jobs j]\nsource = %s\n" % src, 1, []),
        ("missing destination", "[job j]\nsource = %s\n" % src, 1,
         ["destination"]),
        ("relative destination", "[job j]\nsource = %s\ndestination = "
         "out\n" % src, 3, ["destination"]),
        ("two sources with the same last folder", head.replace(
            "destination", "source = %s/x/src\ndestination" % t.tmp), (2, 3),
         ["source"]),
        ("bad pre command", head + "pre = \"unterminated\n", 4, ["pre"]),
        ("bad notify", head + "notify = http://example\n", 4, ["notify"]),
    ]
    os.makedirs(os.path.join(t.tmp, "x", "src"), exist_ok=True)
    for i, (what, text, line, words) in enumerate(cases):
        f = write(t, "bad%02d.ini" % i, text)
        p = v.cmd("jobs", "validate", f)
        err = p.stderr.decode("utf-8", "replace")
        marks = ["%s:%d:" % (f, n) for n in
                 (line if isinstance(line, tuple) else (line,))]
        mark = " or ".join(marks)
        lines = [x for x in err.splitlines() if any(m in x for m in marks)]
        ok = p.returncode == RC_ERROR and lines and \
            all(any(w in x for x in lines) for w in words)
        t.check(ok, "validate: %s: exit 1, stderr names %s%s"
                % (what, mark.replace(t.tmp + "/", ""),
                   " and " + ", ".join(words) if words else ""),
                describe(p))
        t.check("hint" in err.lower(), "validate: %s: a hint says what to "
                "do" % what, err)

    # one pass, every error
    text = head + "colour = blue\nkeep-versions = many\n\n[job k]\n" \
        "source = %s\ndestination = %s\nverify = maybe\n" % (src, dst)
    f = write(t, "many.ini", text)
    p = v.cmd("jobs", "validate", f)
    err = p.stderr.decode("utf-8", "replace")
    found = [n for n in (4, 5, 10) if "%s:%d:" % (f, n) in err]
    t.check(p.returncode == RC_ERROR and found == [4, 5, 10],
            "validate: three errors in two jobs are all reported (lines "
            "%s)" % found, describe(p))

    # a destination inside the source is allowed, and validate says so
    f = write(t, "inside.ini", "[job in]\nsource = %s\ndestination = %s/"
              "backup\n" % (src, src))
    p = v.cmd("jobs", "validate", f)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    t.check(p.returncode == RC_OK and "inside" in out and
            ("%s:3:" % f in out or "%s:2:" % f in out),
            "validate: a destination inside the source is allowed, with a "
            "note at its line", describe(p))

    # hostile files
    f = write(t, "nul.ini", head.encode() + b"mode = back\x00up\n")
    p = v.cmd("jobs", "validate", f)
    t.check(p.returncode == RC_ERROR and p.stderr, "validate: a NUL byte "
            "exits 1 with a message", describe(p))
    f = write(t, "binary.ini", bytes(range(256)) * 4)
    p = v.cmd("jobs", "validate", f)
    t.check(p.returncode == RC_ERROR and p.stderr, "validate: binary "
            "garbage exits 1 with a message", describe(p))
    p = v.cmd("jobs", "validate", t.path("no-such-file.ini"))
    t.check(p.returncode == RC_ERROR and b"no-such-file.ini" in p.stderr,
            "validate: a missing file exits 1 naming it", describe(p))
    p = v.cmd("jobs", "validate", t.tmp)
    t.check(p.returncode == RC_ERROR and p.stderr, "validate: a folder "
            "instead of a file exits 1", describe(p))


def import_cases(t, src, dst):
    v = Vigil(t, t.path("state-import"))
    a = job_ini("alpha", src, dst + "-a") + job_ini("beta", src, dst + "-b")
    v.import_jobs(a, name="a.ini")
    t.check(names(v) == ["alpha", "beta"], "import: alpha and beta (%s)"
            % names(v))
    b = job_ini("beta", src, dst + "-b", mode="mirror") + \
        job_ini("gamma", src, dst + "-g")
    v.import_jobs(b, name="b.ini")
    t.check(names(v) == ["alpha", "beta", "gamma"], "import merges: alpha, "
            "beta, gamma (%s)" % names(v))
    exp = v.ok("jobs", "export").stdout.decode()
    t.check("mode = mirror" in exp, "import merge replaced beta's "
            "definition", exp)

    # one transaction: a file with an error changes nothing
    bad = job_ini("delta", src, dst + "-d") + "[job epsilon]\nsource = " \
        "%s\ndestination = %s-e\ncolour = red\n" % (src, dst)
    f = write(t, "bad-import.ini", bad)
    p = v.cmd("jobs", "import", f)
    t.check(p.returncode == RC_ERROR and b"colour" in p.stderr,
            "import of a file with an error exits 1 naming it",
            describe(p))
    t.check(names(v) == ["alpha", "beta", "gamma"], "...and imports "
            "nothing, not even the good job (%s)" % names(v))
    p = v.cmd("jobs", "import", "--replace", f)
    t.check(p.returncode == RC_ERROR and
            names(v) == ["alpha", "beta", "gamma"],
            "import --replace of a bad file changes nothing", describe(p))

    # a run of alpha, then --replace without alpha: the run stays readable
    p = v.run("alpha")
    t.check(p.returncode == RC_OK, "run alpha exits 0", describe(p))
    rid = v.last_run("alpha")["id"]
    v.import_jobs(job_ini("gamma", src, dst + "-g"), replace=True,
                  name="c.ini")
    t.check(names(v) == ["gamma"], "import --replace leaves exactly the "
            "file's jobs (%s)" % names(v))
    p = v.cmd("log", str(rid))
    t.check(p.returncode == RC_OK and b"alpha" in p.stdout,
            "the removed job's run %s is still shown by `vigil log`" % rid,
            describe(p))
    h = v.history()
    t.check(any(r.get("id") == rid for r in h), "...and listed by "
            "`vigil history`", json.dumps(h)[:1000])
    p = v.cmd("run", "alpha", "--wait")
    t.check(p.returncode == RC_ERROR and b"alpha" in p.stderr,
            "running the removed job exits 1 naming it", describe(p))


def export_cases(t, src, dst):
    text = """# Jobs of this machine.
# Kept in git; edit with `vigil jobs edit`.

; the photo archive
[job photos]
source = %(src)s
destination = %(dst)s-p
# nightly
schedule = daily 02:00
exclude = *.tmp, thumbs\\,old/ ; part of the value

keep-versions = 3

# second job, its own comment
[job docs]
source = %(src)s
destination = %(dst)s-d
mode = mirror
  ; indented comment
max-delete = 10
""" % dict(src=src, dst=dst)
    v = Vigil(t, t.path("state-export"))
    f = write(t, "roundtrip.ini", text)
    v.ok("jobs", "import", f)
    out = t.path("exported.ini")
    v.ok("jobs", "export", "-o", out)
    got = open(out, "rb").read()
    t.check(got == text.encode(), "export -o writes back the imported file "
            "byte for byte, comments included",
            "--- imported\n%s\n--- exported\n%s" % (text, got.decode(
                "utf-8", "replace")))
    p = v.ok("jobs", "export")
    t.check(p.stdout == got, "export to stdout equals export -o",
            describe(p))
    v2 = Vigil(t, t.path("state-export2"))
    v2.ok("jobs", "import", "--replace", out)
    p = v2.ok("jobs", "export")
    t.check(p.stdout == text.encode(), "import of the export, exported "
            "again: still byte for byte", describe(p))


def usage_cases(t, v):
    cases = [
        ("--bogus",), (), ("frobnicate",), ("run",),
        ("run", "j", "--wait", "--bogus"), ("run", "a", "b"), ("jobs",),
        ("jobs", "frob"), ("jobs", "import"), ("jobs", "validate"),
        ("log",), ("log", "notanumber"), ("log", "-5"), ("history", "a", "b"),
        ("restore",), ("restore", "j", "--as-of", "yesterday-ish"),
        ("restore", "j", "--to", ""),
        ("history", "--limit", "x"),
    ]
    for args in cases:
        p = v.cmd(*args)
        err = p.stderr.decode("utf-8", "replace").lower()
        t.check(p.returncode == RC_USAGE and ("usage" in err or "--help" in
                                               err),
                "`vigil %s` exits 2 with usage on stderr" % " ".join(args),
                describe(p))
    p = v.cmd("--help")
    t.check(p.returncode == 0 and b"usage" in p.stdout.lower(),
            "`vigil --help` prints usage on stdout, exit 0", describe(p))


def unknown_cases(t, v):
    for args, word in ((("run", "nosuchjob", "--wait"), b"nosuchjob"),
                       (("run", "nosuchjob", "--wait", "--dry-run"),
                        b"nosuchjob"),
                       (("log", "987654"), b"987654"),
                       (("history", "nosuchjob"), b"nosuchjob"),
                       (("restore", "nosuchjob", "--to", t.tmp),
                        b"nosuchjob")):
        p = v.cmd(*args)
        t.check(p.returncode == RC_ERROR and word in p.stderr,
                "`vigil %s` exits 1 naming %s" % (" ".join(args),
                                                 word.decode()),
                describe(p))


def main(t):
    src = t.path("src")
    os.mkdir(src)
    with open(os.path.join(src, "file"), "w") as f:
        f.write("x\n")
    dst = t.path("dst")
    v = Vigil(t, t.path("state"))
    validate_cases(t, v, src, dst)
    import_cases(t, src, dst)
    export_cases(t, src, dst)
    usage_cases(t, v)
    unknown_cases(t, v)


if __name__ == "__main__":
    Test("jobs_cli", "validate, import, export and the command line").main(
        main)
