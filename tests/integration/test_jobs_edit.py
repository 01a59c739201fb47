#!/usr/bin/env python3
"""`vigil jobs edit`: the caller's jobs in $VISUAL/$EDITOR, validated on
save like crontab -e; a bad save changes nothing and says where."""

import os
import stat

import vtest


def write_editor(t, name, body):
    """An editor script: body is shell run with the file as $1."""
    p = t.path(name)
    with open(p, "w") as f:
        f.write("#!/bin/sh\nset -e\n" + body + "\n")
    os.chmod(p, stat.S_IRWXU)
    return p


def body(t):
    src = t.path("src")
    os.makedirs(src)
    with open(os.path.join(src, "f"), "w") as f:
        f.write("x\n")
    v = vtest.Vigil(t, t.path("state"))
    first = "# my jobs\n" + vtest.job_ini("docs", src, t.path("dst1"))
    v.import_jobs(first)
    before = v.ok("jobs", "export").stdout

    # An editor that appends a second, valid job: it is imported.
    ed = write_editor(t, "ed-good.sh", 'printf "[job more]\\nsource = %s\\n'
                      'destination = %s\\n" >> "$1"' % (src, t.path("dst2")))
    v.env["VISUAL"] = ed
    p = v.cmd("jobs", "edit", input=b"")
    t.check(p.returncode == 0, "a valid edit is applied (exit 0)",
            vtest.describe(p))
    names = sorted(j["name"] for j in v.json("jobs", "list", "--json"))
    t.check(names == ["docs", "more"], "the edited job set is the file's",
            repr(names))
    after_good = v.ok("jobs", "export").stdout
    t.check(after_good.startswith(before.rstrip(b"\n")),
            "comments and the first job survive the edit", after_good)

    # An editor that writes an unknown key: refused, nothing changes, and the
    # error names the file's line and the key.
    ed = write_editor(t, "ed-bad.sh", 'printf "bogus-key = 1\\n" >> "$1"')
    v.env["VISUAL"] = ed
    p = v.cmd("jobs", "edit", input=b"")
    err = p.stderr.decode("utf-8", "replace")
    t.check(p.returncode == 1, "a bad edit exits 1", vtest.describe(p))
    t.check("bogus-key" in err and ":" in err,
            "the error names the key and the line", err)
    t.check("nothing was changed" in err, "it says nothing was changed",
            err)
    t.check(v.ok("jobs", "export").stdout == after_good,
            "the jobs are unchanged after a bad edit")

    # An editor that fails: nothing changes either.
    ed = write_editor(t, "ed-fail.sh", "exit 3")
    v.env["VISUAL"] = ed
    p = v.cmd("jobs", "edit", input=b"")
    t.check(p.returncode == 1, "a failing editor exits 1",
            vtest.describe(p))
    t.check(v.ok("jobs", "export").stdout == after_good,
            "the jobs are unchanged after a failed editor")


if __name__ == "__main__":
    t = vtest.Test("jobs_edit", "vigil jobs edit, crontab -e style")
    t.main(body)
