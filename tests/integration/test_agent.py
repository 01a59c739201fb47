#!/usr/bin/env python3
"""test_agent.py: the real vigil-agent against real test apps.

- --simulate: holdfile is closed by SIGTERM (it saves and writes its
  marker) and reopened with the same argv and cwd; stubborn is refused
  with its file listed; a dry run lists both and closes nothing.
- The countdown warning through a notification server (a stand-in on a
  private session bus): Postpone answers agent.postpone and closes
  nothing; Start now closes at once.
- The protocol against a stand-in vigild on a temp socket: hello as agent,
  agent.register, quiesce -> progress -> closed, resume -> resumed; a
  dropped connection reopens closed apps at once; silence for max-runtime
  reopens them too, and a late resume gets that answer; so does stopping
  the agent; a bad quiesce is answered with an error and the agent lives
  on.
- Starting: no service -> the agent keeps retrying (and --once exits 1);
  a service that appears later is found; a second agent of the same user
  exits 0 at once (the lock).
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest  # noqa: E402


def add_args(ap):
    ap.add_argument("--agent", required=True)
    ap.add_argument("--holdfile", required=True)
    ap.add_argument("--stubborn", required=True)
    ap.add_argument("--fakenotify", required=True)


# ---- helpers ----------------------------------------------------------

def wait_for(fn, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return None


def pids_of(exe, arg):
    """Running processes started as exe with arg among their arguments."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        c = cmdline(int(d))
        if c and c[0] == os.fsencode(exe) and os.fsencode(arg) in c \
                and alive(int(d)):
            out.append(int(d))
    return out


class Apps:
    """Test apps started for one case, stopped at the end (with whatever
    the agent reopened)."""

    def __init__(self, t):
        self.t = t
        self.procs = []
        self.files = []

    def start(self, argv, cwd=None, ready=None):
        p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        if ready:
            self.files.append((argv[0], ready))
            if not wait_for(lambda: "opened by %d" % p.pid in read(ready),
                            5):
                raise vtest.Fatal("%s did not start" % argv[0])
        return p

    def stop(self):
        for p in self.procs:
            try:
                p.kill()
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for exe, f in self.files:
            for pid in pids_of(exe, f):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def quiesce(qid, sources, **kw):
    d = {"quiesce": qid, "run": 100 + qid, "job": "documents",
         "sources": sources, "close_apps": "auto", "close_method": "window",
         "warn_s": 0, "close_timeout_s": 5, "force": False,
         "postpone_s": 3600, "may_postpone": True, "dry_run": False}
    d.update(kw)
    return d


def simulate(t, args, data, env=None, timeout=60, hold=0):
    qf = t.path("q-%d.json" % data["quiesce"])
    with open(qf, "w") as f:
        json.dump({"event": "quiesce", "data": data}, f)
    e = dict(os.environ, VIGIL_AGENT_RELAUNCH="direct")
    if env:
        e.update(env)
    p = subprocess.run([args.agent, "--simulate", qf, "--hold", str(hold)],
                       capture_output=True, timeout=timeout, env=e)
    msgs = []
    for line in p.stdout.decode().splitlines():
        try:
            msgs.append(json.loads(line))
        except ValueError:
            pass
    return p, msgs


def msg(msgs, method):
    for m in msgs:
        if m.get("method") == method:
            return m["params"]
    return None


def no_sanitizer(t, what, stderr):
    t.check(not vtest.SANITIZER.search(stderr), "%s: no sanitizer report"
            % what, stderr)


# ---- a stand-in vigild ------------------------------------------------

class FakeVigild:
    """Listens on a Unix socket and speaks the framing: 4-byte big-endian
    length, then a JSON object.  Records every request; answers ok, but
    refuses agent.progress for the quiesce ids in refuse_progress (as vigild
    does once it no longer waits on the agent)."""

    def __init__(self, path):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.conn = None
        self.requests = []
        self.refuse_progress = set()
        self.cond = threading.Condition()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _recv(self, n):
        b = b""
        while len(b) < n:
            c = self.conn.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b

    def _send(self, obj):
        body = json.dumps(obj).encode()
        self.conn.sendall(struct.pack(">I", len(body)) + body)

    def _run(self):
        try:
            self.conn, _ = self.srv.accept()
            while True:
                (n,) = struct.unpack(">I", self._recv(4))
                m = json.loads(self._recv(n))
                res = {}
                if m.get("method") == "hello":
                    res = {"version": 1, "server": "fake", "connection": 1,
                           "uid": os.getuid(), "admin": True}
                elif m.get("method") == "agent.register":
                    res = {"session": "agent:1", "accepted": True,
                           "tracked_by": "connection"}
                p = m.get("params") or {}
                if m.get("method") == "agent.progress" and \
                        p.get("quiesce") in self.refuse_progress:
                    self._send({"id": m.get("id"), "ok": False, "error": {
                        "code": "invalid", "message":
                        "agent.progress: quiesce %d is no longer waiting "
                        "on this agent (late)" % p["quiesce"]}})
                else:
                    self._send({"id": m.get("id"), "ok": True,
                                "result": res})
                with self.cond:
                    self.requests.append(m)
                    self.cond.notify_all()
        except (EOFError, OSError, ValueError):
            pass

    def event(self, topic, data):
        self._send({"event": topic, "data": data})

    def wait(self, method, n=1, timeout=15):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [r for r in self.requests if r.get("method") == method]
                if len(got) >= n:
                    return got[n - 1].get("params")
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self):
        for s in (self.conn, self.srv):
            try:
                if s:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                if s:
                    s.close()
            except OSError:
                pass


def start_agent(t, args, sock, *extra, env=None):
    e = dict(os.environ, VIGIL_AGENT_RELAUNCH="direct")
    e.pop("XDG_RUNTIME_DIR", None)
    if env:
        e.update(env)
    log = open(t.path("agent-%d.log" % len(os.listdir(t.tmp))), "wb")
    p = subprocess.Popen([args.agent, "-v", "--socket", sock] + list(extra),
                         stdout=log, stderr=subprocess.STDOUT, env=e)
    p.logpath = log.name
    log.close()
    return p


def stop_agent(t, p, what):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    out = read(p.logpath).encode()
    no_sanitizer(t, what, out)
    return out


# ---- the cases --------------------------------------------------------

def case_simulate(t, args):
    src = t.path("src1")
    work = t.path("src1", "work dir")
    os.makedirs(work)
    doc, stub = os.path.join(src, "doc.txt"), os.path.join(src, "stub.txt")
    marker = t.path("marker1")
    apps = Apps(t)
    t.cleanups.append(apps.stop)
    hf = apps.start([args.holdfile, doc, marker, "--tag", "two words"],
                    cwd=work, ready=doc)
    st = apps.start([args.stubborn, stub], ready=stub)

    p, msgs = simulate(t, args, quiesce(1, [src], dry_run=True))
    no_sanitizer(t, "dry run", p.stderr)
    c = msg(msgs, "agent.closed") or {}
    names = sorted(a["name"] for a in c.get("closed", []))
    t.check(p.returncode == 0 and c.get("dry_run") is True and
            names == ["holdfile", "stubborn"],
            "dry run lists holdfile and stubborn", msgs)
    t.check(any(doc in a.get("files", []) for a in c.get("closed", [])),
            "dry run names the held file", msgs)
    t.check(alive(hf.pid) and alive(st.pid), "dry run closes nothing")

    p, msgs = simulate(t, args, quiesce(2, [src], close_timeout_s=1))
    no_sanitizer(t, "simulate", p.stderr)
    c = msg(msgs, "agent.closed") or {}
    t.check([(a["name"], a["pid"], a["how"]) for a in c.get("closed", [])]
            == [("holdfile", hf.pid, "sigterm")],
            "holdfile closed by SIGTERM", msgs)
    ref = c.get("refused", [])
    t.check(len(ref) == 1 and ref[0]["name"] == "stubborn" and
            ref[0]["pid"] == st.pid and
            ref[0]["reason"] == "did not close within 1 s" and
            ref[0]["files"] == [stub],
            "stubborn refused, with its file", msgs)
    t.check(c.get("killed") == [], "nothing killed without force", msgs)
    t.check("sigterm %d" % hf.pid in read(marker) and
            "saved by %d" % hf.pid in read(doc),
            "holdfile saved and wrote its marker", read(doc))
    t.check(alive(st.pid), "stubborn left running")
    r = msg(msgs, "agent.resumed") or {}
    re_ = r.get("reopened", [])
    t.check(len(re_) == 1 and re_[0]["name"] == "holdfile" and
            r.get("failed") == [], "holdfile reported reopened", msgs)
    npid = re_[0]["pid"] if re_ else 0
    t.check(wait_for(lambda: "opened by %d" % npid in read(doc), 5),
            "the reopened holdfile holds its file again", read(doc))
    t.check(cmdline(npid) == [os.fsencode(a) for a in
                              (args.holdfile, doc, marker, "--tag",
                               "two words")],
            "same argv after reopening", cmdline(npid))
    t.check(os.readlink("/proc/%d/cwd" % npid) == work,
            "same cwd after reopening")
    t.check(b"VIGIL_AGENT_RELAUNCH" not in p.stdout and
            b"PATH=" not in p.stdout,
            "no environment in what the agent sends", p.stdout)

    # force: stubborn is killed, and counts as closed and killed
    p, msgs = simulate(t, args, quiesce(3, [src], close_timeout_s=1,
                                        force=True, close_apps="none"))
    c = msg(msgs, "agent.closed") or {}
    t.check(c.get("closed") == [] and alive(st.pid),
            "close_apps none closes nothing", msgs)
    p, msgs = simulate(t, args, quiesce(4, [os.path.dirname(stub)],
                                        close_timeout_s=1, force=True))
    c = msg(msgs, "agent.closed") or {}
    t.check("stubborn" in c.get("killed", []) and not alive(st.pid),
            "force-close kills stubborn and says so", msgs)
    apps.stop()


def case_notify(t, args):
    if not shutil.which("dbus-run-session"):
        t.info("no dbus-run-session: the notification cases are skipped")
        return
    src = t.path("src2")
    os.makedirs(src)
    doc = os.path.join(src, "doc.txt")
    apps = Apps(t)
    t.cleanups.append(apps.stop)
    hf = apps.start([args.holdfile, doc], ready=doc)
    for action, qid in (("postpone", 10), ("start-now", 11)):
        nlog = t.path("notify-%s.log" % action)
        qf = t.path("qn-%d.json" % qid)
        with open(qf, "w") as f:
            json.dump(quiesce(qid, [src], warn_s=30), f)
        script = ('"$1" "$2" "$3" 300 & n=$!; '
                  'i=0; while ! grep -q ready "$2" 2>/dev/null; do '
                  'i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.05; done; '
                  '"$4" --simulate "$5"; rc=$?; kill $n; exit $rc')
        t0 = time.monotonic()
        p = subprocess.run(["dbus-run-session", "--", "sh", "-c", script,
                            "sh", args.fakenotify, nlog, action, args.agent,
                            qf], capture_output=True, timeout=60,
                           env=dict(os.environ,
                                    VIGIL_AGENT_RELAUNCH="direct"))
        dt = time.monotonic() - t0
        no_sanitizer(t, "notify " + action, p.stderr)
        msgs = [json.loads(x) for x in p.stdout.decode().splitlines()
                if x.startswith("{")]
        log = read(nlog)
        t.check("summary=Backup 'documents' starts in 30 s" in log and
                "body=holdfile will be closed and reopened afterwards" in log
                and "actions=postpone,Postpone,start-now,Start now" in log,
                "%s: the notification says what will happen" % action, log)
        if action == "postpone":
            t.check(msg(msgs, "agent.postpone") == {"quiesce": qid} and
                    msg(msgs, "agent.closed") is None and alive(hf.pid),
                    "Postpone answers agent.postpone and closes nothing",
                    msgs)
        else:
            c = msg(msgs, "agent.closed") or {}
            t.check([a["pid"] for a in c.get("closed", [])] == [hf.pid] and
                    dt < 15, "Start now closes at once (%.1f s, warn 30 s)"
                    % dt, msgs)
        t.check(dt < 15, "%s: no waiting out the countdown" % action)
    apps.stop()


def case_protocol(t, args):
    src = t.path("src3")
    os.makedirs(src)
    doc = os.path.join(src, "doc.txt")
    apps = Apps(t)
    t.cleanups.append(apps.stop)
    sock = t.path("v.sock")

    # quiesce, closed, resume, resumed
    hf = apps.start([args.holdfile, doc], ready=doc)
    fv = FakeVigild(sock)
    ag = start_agent(t, args, sock, env={"DISPLAY": "", "XDG_SESSION_ID":
                                         "c7"})
    reg = fv.wait("agent.register")
    t.check(reg is not None and reg.get("session") == "c7" and
            reg.get("display") is None and reg.get("wayland") is False and
            isinstance(reg.get("agent_version"), str),
            "agent.register claims XDG_SESSION_ID", reg)
    fv.event("quiesce", quiesce(21, [src]))
    c = fv.wait("agent.closed")
    pr = fv.wait("agent.progress")
    t.check(pr == {"quiesce": 21, "state": "closing"},
            "agent.progress before closing", pr)
    t.check(c and [a["pid"] for a in c["closed"]] == [hf.pid],
            "agent.closed over the socket", c)
    fv.event("resume", {"quiesce": 21, "run": 121})
    r = fv.wait("agent.resumed")
    npid = r["reopened"][0]["pid"] if r and r.get("reopened") else 0
    t.check(npid and wait_for(lambda: alive(npid) and
                              "opened by %d" % npid in read(doc), 5),
            "resume reopens holdfile", r)
    # a bad quiesce is answered, and the agent goes on
    fv.event("quiesce", {"quiesce": 22, "sources": ["relative/path"]})
    c = fv.wait("agent.closed", 2)
    t.check(c and c.get("closed") == [] and "absolute path" in
            c.get("error", ""), "a bad quiesce gets an error answer", c)
    fv.event("resume", {"quiesce": 999})
    r = fv.wait("agent.resumed", 2)
    t.check(r == {"quiesce": 999, "reopened": [], "failed": []},
            "resume of an unknown quiesce reopens nothing", r)

    # a late agent: vigild refuses its "closing" progress; it closes
    # nothing and answers nothing more for that quiesce
    fv.refuse_progress.add(24)
    fv.event("quiesce", quiesce(24, [src]))
    pr = fv.wait("agent.progress", 2)
    t.check(pr == {"quiesce": 24, "state": "closing"},
            "the late agent still says it is closing", pr)
    time.sleep(1)
    t.check(npid and alive(npid) and fv.wait("agent.closed", 3, 0) is None,
            "refused progress: nothing closed, no agent.closed", fv.requests)

    # the connection drops while apps are closed: reopened at once
    fv.event("quiesce", quiesce(23, [src]))
    c = fv.wait("agent.closed", 3)
    t.check(c and len(c["closed"]) == 1, "closed again", c)
    fv.close()
    os.unlink(sock)
    t.check(wait_for(lambda: pids_of(args.holdfile, doc), 5),
            "a dropped connection reopens closed apps at once")
    t.check(ag.poll() is None, "the agent lives on without vigild")
    # ... and it comes back when vigild does
    fv = FakeVigild(sock)
    t.check(fv.wait("agent.register", timeout=10) is not None,
            "the agent reconnects when vigild is back")
    fv.close()
    os.unlink(sock)
    out = stop_agent(t, ag, "agent")
    t.check(b"reopening them now" in out, "the log says why it reopened",
            out)
    apps.stop()

    # silence for max-runtime: reopened by the agent itself
    apps = Apps(t)
    t.cleanups.append(apps.stop)
    hf = apps.start([args.holdfile, doc], ready=doc)
    fv = FakeVigild(sock)
    ag = start_agent(t, args, sock, "--max-runtime", "2")
    fv.wait("agent.register")
    fv.event("quiesce", quiesce(31, [src]))
    c = fv.wait("agent.closed")
    t0 = time.monotonic()
    t.check(c and [a["pid"] for a in c["closed"]] == [hf.pid],
            "closed (max-runtime case)", c)
    got = wait_for(lambda: pids_of(args.holdfile, doc), 10)
    dt = time.monotonic() - t0
    t.check(got and 1.5 <= dt <= 6, "reopened by itself after max-runtime "
            "(%.1f s for 2 s)" % dt)
    fv.event("resume", {"quiesce": 31})
    r = fv.wait("agent.resumed")
    t.check(r and [a["pid"] for a in r["reopened"]] == got[:1],
            "a late resume gets what was reopened", r)
    fv.close()
    os.unlink(sock)
    stop_agent(t, ag, "agent (max-runtime)")
    apps.stop()

    # the agent is stopped while apps are closed: it reopens them first
    apps = Apps(t)
    t.cleanups.append(apps.stop)
    hf = apps.start([args.holdfile, doc], ready=doc)
    fv = FakeVigild(sock)
    ag = start_agent(t, args, sock)
    fv.wait("agent.register")
    fv.event("quiesce", quiesce(41, [src]))
    c = fv.wait("agent.closed")
    t.check(c and [a["pid"] for a in c["closed"]] == [hf.pid],
            "closed (stop case)", c)
    out = stop_agent(t, ag, "agent (stopped)")
    t.check(ag.returncode == 0 and pids_of(args.holdfile, doc),
            "an agent told to stop reopens what it closed", out)
    fv.close()
    os.unlink(sock)
    apps.stop()


def case_start(t, args):
    sock = t.path("none.sock")
    p = subprocess.run([args.agent, "--once", "--socket", sock],
                       capture_output=True, timeout=20)
    t.check(p.returncode == 1 and b"no such socket" in p.stderr,
            "--once without a service exits 1 and says why", p.stderr)
    rt = t.path("rt")
    os.mkdir(rt, 0o700)
    a1 = start_agent(t, args, sock, env={"XDG_RUNTIME_DIR": rt})
    time.sleep(3)
    t.check(a1.poll() is None, "without a service the agent keeps trying")
    t0 = time.monotonic()
    a2 = subprocess.run([args.agent, "--socket", sock], capture_output=True,
                        timeout=20, env=dict(os.environ,
                                             XDG_RUNTIME_DIR=rt))
    t.check(a2.returncode == 0 and time.monotonic() - t0 < 5 and
            a2.stderr == b"", "a second agent of the user exits 0 quietly",
            a2.stderr)
    out = stop_agent(t, a1, "agent (no service)")
    t.check(out.count(b"trying again in 1 s") == 1 and
            b"next try in 2 s" in out,
            "retries back off (1, 2 s) and are warned about once "
            "(the rest at debug level)", out)
    p = subprocess.run([args.agent, "--bogus"], capture_output=True)
    t.check(p.returncode == 2 and b"usage" in p.stderr,
            "a bad option gets usage and 2", p.stderr)


def main(t):
    args = t.args
    for b in (args.agent, args.holdfile, args.stubborn, args.fakenotify):
        if not os.access(b, os.X_OK):
            raise vtest.Fatal("not executable: %s" % b)
    case_simulate(t, args)
    case_notify(t, args)
    case_protocol(t, args)
    case_start(t, args)


if __name__ == "__main__":
    T = vtest.Test("agent", "vigil-agent closes and reopens real apps",
                   needs_binaries=False, add_args=add_args)
    T.main(main)
