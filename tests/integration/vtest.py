"""vtest.py: shared helpers for vigil's integration tests.

Every test runs the real binaries (`vigil`, `vigild`) on temp folders.  This
module gives them one way to parse their arguments, count checks, skip, run
the CLI and read its JSON.  Standard library only.

Exit codes of a test script: 0 all checks passed, 1 a check failed, 77 the
test could not run here (ctest SKIP_RETURN_CODE).  Under CI=true a skip is a
failure: CI must run everything.
"""

import argparse
import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

SKIP = 77

# What ASan, LSan and UBSan print when they find something.
SANITIZER = re.compile(rb"ERROR: (Address|Leak)Sanitizer|runtime error: ")

# Exit codes of `vigil run --wait` (DESIGN.md, "CLI contract").
RC_OK, RC_PARTIAL, RC_FAILED, RC_CANCELLED, RC_SKIPPED = 0, 3, 4, 5, 6
RC_ERROR, RC_USAGE = 1, 2


class Fatal(Exception):
    """A step the rest of the test depends on failed."""


def escape_path(raw):
    """Escape raw path bytes the way vigil prints them: invalid UTF-8 bytes
    and control characters as \\xNN, a backslash doubled."""
    if isinstance(raw, str):
        raw = os.fsencode(raw)
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02x" % (o - 0xDC00))
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)


def short_path(raw, width=24):
    """escape_path, with long components cut for reading: the first
    `width` characters, then ...(N bytes)."""
    if isinstance(raw, str):
        raw = os.fsencode(raw)
    out = []
    for c in raw.split(b"/"):
        e = escape_path(c)
        if len(c) > 2 * width:
            e = escape_path(c[:width]) + "...(%d bytes)" % len(c)
        out.append(e)
    return "/".join(out)


def show(b, limit=3000):
    """Bytes from a child process, printable and bounded."""
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    if len(b) > limit:
        b = b[:limit // 2] + "\n[... %d chars cut ...]\n" % (len(b) - limit) \
            + b[-limit // 2:]
    return b


class Test:
    """Arguments, a work folder, and check counting for one test script."""

    def __init__(self, name, description, needs_binaries=True,
                 add_args=None):
        self.name = name
        ap = argparse.ArgumentParser(description=description)
        if add_args:
            add_args(ap)
        ap.add_argument("--vigil", help="path of the vigil binary")
        ap.add_argument("--vigild", help="path of the vigild binary")
        ap.add_argument("--workdir", help="parent of the temp folder "
                        "(default: $TMPDIR or /tmp)")
        ap.add_argument("--keep", action="store_true",
                        help="keep the temp folder")
        ap.add_argument("--seed", type=int, default=None)
        ap.add_argument("--quick", action="store_true",
                        help="fewer iterations")
        self.args = ap.parse_args()
        if needs_binaries:
            for b in ("vigil", "vigild"):
                p = getattr(self.args, b)
                if not p or not os.access(p, os.X_OK):
                    print("%s: --%s must name an executable (got %r)"
                          % (name, b, p))
                    sys.exit(1)
        self.keep = self.args.keep or os.environ.get("VIGIL_TEST_KEEP")
        self.ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
        self.nchecks = 0
        self.nfailed = 0
        self.t0 = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="vigil-%s-" % name,
                                    dir=self.args.workdir)
        os.chmod(self.tmp, 0o755)
        self.cleanups = []
        print("== %s: %s" % (name, description))
        print("   work folder %s" % self.tmp)

    # -- checks ------------------------------------------------------------

    def check(self, cond, what, detail=None):
        self.nchecks += 1
        if cond:
            print("  ok   %s" % what)
        else:
            self.nfailed += 1
            print("  FAIL %s" % what)
            if detail:
                for line in show(detail).splitlines():
                    print("       | %s" % line)
        return bool(cond)

    def info(self, msg):
        print("  ..   %s" % msg)

    def skip(self, reason):
        if self.ci:
            print("SKIPPED is not allowed under CI=true: %s" % reason)
            self.finish(force_fail=True)
        print("SKIPPED: %s" % reason)
        self._cleanup()
        sys.exit(SKIP)

    def _cleanup(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # cleanup must not hide the result
                print("  ..   cleanup: %s" % e)
        self.cleanups = []
        if self.keep:
            print("   kept %s" % self.tmp)
        else:
            rmtree(self.tmp)

    def finish(self, force_fail=False):
        self._cleanup()
        dt = time.monotonic() - self.t0
        print("== %s: %d checks, %d failed, %.1f s"
              % (self.name, self.nchecks, self.nfailed, dt))
        sys.exit(1 if (self.nfailed or force_fail or self.nchecks == 0)
                 else 0)

    def main(self, fn):
        """Run fn(self); a Fatal or an unexpected exception fails the test
        with its message."""
        try:
            fn(self)
        except Fatal as e:
            self.nfailed += 1
            print("  FAIL (stopping) %s" % e)
        except SystemExit:
            raise
        except BaseException:
            import traceback
            self.nfailed += 1
            print("  FAIL (exception)")
            traceback.print_exc(file=sys.stdout)
        self.finish()

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)


def rmtree(p):
    """Remove a tree even with read-only folders and paths past PATH_MAX."""
    if isinstance(p, str):
        p = os.fsencode(p)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(p)
        return
    fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _rm_in(fd)
    finally:
        os.close(fd)
    os.rmdir(p)


def _rm_in(dfd):
    os.chmod(dfd, 0o700)
    for name in os.listdir(dfd):
        name = os.fsencode(name)
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            try:
                cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY |
                              os.O_NOFOLLOW, dir_fd=dfd)
            except PermissionError:
                os.chmod(name, 0o700, dir_fd=dfd)
                cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY |
                              os.O_NOFOLLOW, dir_fd=dfd)
            try:
                _rm_in(cfd)
            finally:
                os.close(cfd)
            os.rmdir(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)


class Vigil:
    """The vigil CLI in local mode against one state dir."""

    def __init__(self, test, state_dir, binary=None, as_user=None, env=None):
        self.t = test
        self.bin = binary or test.args.vigil
        self.state = state_dir
        self.as_user = as_user      # run through runuser -u USER --
        self.env = dict(os.environ)
        self.env.setdefault("LC_ALL", "C.UTF-8")
        if env:
            self.env.update(env)
        os.makedirs(state_dir, exist_ok=True)

    def argv(self, *args):
        a = [self.bin, "--state-dir", self.state] + [
            x if isinstance(x, (str, bytes)) else str(x) for x in args]
        if self.as_user:
            a = ["runuser", "-u", self.as_user, "--"] + a
        return a

    def cmd(self, *args, timeout=120, input=None):
        """Run vigil; returns a CompletedProcess with bytes output.  A timeout
        kills it and raises Fatal."""
        argv = self.argv(*args)
        try:
            p = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout,
                               env=self.env)
        except subprocess.TimeoutExpired as e:
            raise Fatal("vigil %s: still running after %d s (killed)\n"
                        "stdout: %s\nstderr: %s"
                        % (fmt_args(args), timeout, show(e.stdout or b""),
                           show(e.stderr or b"")))
        if p.returncode < 0:
            self.t.check(False, "vigil %s: died of signal %d"
                         % (fmt_args(args), -p.returncode),
                         describe(p))
        if SANITIZER.search(p.stderr):
            self.t.check(False, "vigil %s: sanitizer report"
                         % fmt_args(args), describe(p))
        return p

    def ok(self, *args, timeout=120):
        """Run a command that must exit 0; Fatal otherwise."""
        p = self.cmd(*args, timeout=timeout)
        if p.returncode != 0:
            raise Fatal("vigil %s: exit %d, expected 0\n%s"
                        % (fmt_args(args), p.returncode, describe(p)))
        return p

    def import_jobs(self, text, replace=False, name="jobs.ini"):
        path = os.path.join(self.t.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        if self.as_user:
            os.chmod(path, 0o644)
        args = ["jobs", "import"] + (["--replace"] if replace else []) + [path]
        return self.ok(*args)

    def run(self, job, *flags, timeout=180):
        return self.cmd("run", job, "--wait", *flags, timeout=timeout)

    def run_expect(self, job, *flags, rc=RC_OK, what=None, timeout=180):
        p = self.run(job, *flags, timeout=timeout)
        self.t.check(p.returncode == rc, "%srun %s %s exits %d (got %d)"
                     % (what + ": " if what else "", job, " ".join(flags),
                        rc, p.returncode), describe(p))
        return p

    def json(self, *args):
        p = self.ok(*args)
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise Fatal("vigil %s: stdout is not JSON (%s)\n%s"
                        % (fmt_args(args), e, describe(p)))

    def history(self, job=None, limit=None):
        h = self.json("history", *([job] if job else []), "--json",
                      *(["--limit", str(limit)] if limit else []))
        if not isinstance(h, list):
            raise Fatal("history --json is not an array: %r" % (h,))
        return h

    def last_run(self, job):
        h = self.history(job)
        if not h:
            raise Fatal("history %s is empty after a run" % job)
        return h[0]

    def log(self, run_id):
        return self.json("log", str(run_id), "--json")


def fmt_args(args):
    return " ".join(a.decode("utf-8", "replace") if isinstance(a, bytes)
                    else str(a) for a in args)


def describe(p):
    return "argv: %s\nexit: %s\nstdout:\n%s\nstderr:\n%s" % (
        fmt_args(p.args), p.returncode, show(p.stdout), show(p.stderr))


def copied_count(rec):
    """The number of files a run copied, from a history/log record.  The
    contract names `files` and `bytes`; a copied count may sit beside them.
    Returns None when the record has no copied count."""
    for k in ("files_copied", "copied"):
        if isinstance(rec.get(k), int):
            return rec[k]
    for sub in ("counts", "stats"):
        d = rec.get(sub)
        if isinstance(d, dict):
            for k in ("files_copied", "copied"):
                if isinstance(d.get(k), int):
                    return d[k]
    return None


def job_ini(name, source, destination, **keys):
    """One [job NAME] section.  Keys use '_' for '-'.  source may be a list."""
    lines = ["[job %s]" % name]
    for s in (source if isinstance(source, (list, tuple)) else [source]):
        lines.append("source = %s" % s)
    lines.append("destination = %s" % destination)
    for k, v in keys.items():
        lines.append("%s = %s" % (k.replace("_", "-"), v))
    return "\n".join(lines) + "\n\n"


def find_tmp_leftovers(root):
    """Relative paths of .vigil-tmp-* entries anywhere under root (bytes)."""
    out = []

    def walk(dfd, rel):
        for name in os.listdir(dfd):
            b = os.fsencode(name)
            r = rel + b"/" + b if rel else b
            if b.startswith(b".vigil-tmp-"):
                out.append(r)
            st = os.stat(b, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                cfd = os.open(b, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                              dir_fd=dfd)
                try:
                    walk(cfd, r)
                finally:
                    os.close(cfd)

    fd = os.open(os.fsencode(root), os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(fd, b"")
    finally:
        os.close(fd)
    return out


def cp_a(src, dst):
    """A faithful reference copy (GNU cp -a keeps links, xattrs, holes)."""
    subprocess.run(["cp", "-a", "--sparse=always", src, dst], check=True)


def have_root():
    return os.geteuid() == 0


# -- the service -------------------------------------------------------------

def vigild_children(pid):
    """Pids whose parent is pid (the workers of a vigild)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == pid:
            out.append(int(d))
    return out


def proc_status(pid, key):
    """A field of /proc/PID/status as an int (kB for Vm*), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def is_sanitized(pid):
    """Whether a process runs with AddressSanitizer (its RSS and timing
    are then not the product's)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


class Service:
    """A real vigild in the foreground, its output in a log file.

    args: vigild's arguments; env: extra environment; as_user: run it
    through runuser.  start() waits until the socket answers."""

    def __init__(self, test, args, socket_path, env=None, name="vigild",
                 as_user=None):
        self.t = test
        self.args = [test.args.vigild] + list(args)
        if as_user:
            self.args = ["runuser", "-u", as_user, "--"] + self.args
        self.socket = socket_path
        self.env = dict(os.environ)
        self.env.setdefault("LC_ALL", "C.UTF-8")
        self.env.pop("JOURNAL_STREAM", None)
        self.env.pop("NOTIFY_SOCKET", None)
        if env:
            self.env.update(env)
        self.name = name
        self.logpath = test.path("%s.log" % name)
        self.proc = None
        self.nstarts = 0
        test.cleanups.append(self.kill)

    @property
    def pid(self):
        """vigild's own pid (not runuser's)."""
        if self.proc is None:
            return None
        if self.args[0] == "runuser":
            kids = vigild_children(self.proc.pid)
            return kids[0] if kids else None
        return self.proc.pid

    def start(self, timeout=15):
        self.nstarts += 1
        log = open(self.logpath, "ab")
        log.write(b"---- start %d\n" % self.nstarts)
        log.flush()
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log,
                                     env=self.env, start_new_session=True)
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise Fatal("%s exited %d at start:\n%s" % (
                    self.name, self.proc.returncode, show(self.log())))
            if self._answers():
                return self
            time.sleep(0.05)
        raise Fatal("%s: socket %s does not answer after %d s\n%s"
                    % (self.name, self.socket, timeout, show(self.log())))

    def _answers(self):
        import socket
        import struct
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(self.socket)
            s.sendall(frame({"id": 1, "method": "hello",
                             "params": {"version": 1, "role": "client"}}))
            hdr = recv_exact(s, 4)
            if hdr is None:
                return False
            body = recv_exact(s, struct.unpack(">I", hdr)[0])
            return body is not None and json.loads(body).get("ok") is True
        except (OSError, ValueError):
            return False
        finally:
            s.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        pid = self.pid
        if pid:
            os.kill(pid, sig)

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code (None: still running,
        then killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        import signal as _signal
        self.signal(_signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        import signal as _signal
        if self.alive():
            try:
                os.killpg(self.proc.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read()
        except OSError:
            return b""


class SockVigil(Vigil):
    """The vigil CLI as a client of a running vigild.

    socket: the --socket to pass (None: none, let the CLI find it)."""

    def __init__(self, test, socket_path, binary=None, as_user=None,
                 env=None):
        self.t = test
        self.bin = binary or test.args.vigil
        self.socket = socket_path
        self.as_user = as_user
        self.env = dict(os.environ)
        self.env.setdefault("LC_ALL", "C.UTF-8")
        self.env.pop("VIGIL_SOCKET", None)
        self.env.pop("VIGIL_STATE_DIR", None)
        if env:
            self.env.update(env)

    def argv(self, *args):
        a = [self.bin] + (["--socket", self.socket] if self.socket else [])
        a += [x if isinstance(x, (str, bytes)) else str(x) for x in args]
        if self.as_user:
            a = ["runuser", "-u", self.as_user, "--"] + a
        return a

    def popen(self, *args):
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env)

    def status(self):
        s = self.json("status", "--json")
        if not isinstance(s, dict):
            raise Fatal("status --json is not an object: %r" % (s,))
        return s


def frame(obj):
    """One protocol frame: a 4-byte big-endian length and the JSON."""
    import struct
    b = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    return struct.pack(">I", len(b)) + b


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            return None
        buf += c
    return buf


def parse_iso(s):
    """An ISO time of vigil's (UTC, "Z") as a POSIX timestamp."""
    import datetime
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            d = datetime.datetime.strptime(s, fmt)
            return d.replace(tzinfo=datetime.timezone.utc).timestamp()
        except (TypeError, ValueError):
            continue
    return None
