#!/usr/bin/env python3
"""findings.py ROOT 'PENDING PATTERNS': filter tool output for run.sh.

Reads cppcheck or clang-tidy output on stdin and prints each finding line
("FILE:LINE:...: message [check]") once, with FILE relative to ROOT,
leaving out findings in files that match a pending pattern (run.sh's
PENDING list) and in files outside ROOT.  Exits 0."""
import fnmatch
import os
import re
import sys

root, pending = sys.argv[1], sys.argv[2].split()
seen = set()
for line in sys.stdin:
    m = re.match(r"^(/?[^:\s]+):(\d+):(\d+:)? ?(warning|error|style|"
                 r"performance|portability|information)?", line)
    if not m or not m.group(4):
        continue
    f = os.path.normpath(os.path.join(root, m.group(1)))
    rel = os.path.relpath(f, root)
    if rel.startswith(".."):
        continue
    if any(fnmatch.fnmatchcase(rel, p) for p in pending):
        continue
    out = rel + line[len(m.group(1)):]
    if out not in seen:
        seen.add(out)
        sys.stdout.write(out)
