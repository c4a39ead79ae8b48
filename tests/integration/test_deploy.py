"""deploy/: the systemd template unit for `qpeach serve --db` (issue 21.1).

systemd-analyze checks the unit as shipped (syntax, every key known, the
binary it starts executable, and its hardening's exposure score) in a
temporary root holding the unit, the host's own system units and our
binary at the unit's path. No systemd runs here, so the unit's command is
proven by running it: ExecStart exactly as the unit writes it, its
variables filled from deploy/example.env (the port, db and password file
pointed at this test's own), expanded as systemd expands them, serving a
db written by `qpeach db import`, queried and checked against pandas. The
same command under strace must make only the system calls and sockets the
unit's SystemCallFilter and RestrictAddressFamilies allow.
"""
import os
import re
import shutil
import signal
import subprocess
import threading

import numpy as np
import pandas as pd

import harness
from harness import QPEACH, ROOT, Skip, passwd_file, tmpdir
from qipc import Atom, Conn, Identity, Sym, Vec
from test_db_mount import call, days, import_df, trades
from test_serve import check_sanitizer_log

DEPLOY = os.path.join(ROOT, "deploy")
UNIT = os.path.join(DEPLOY, "qpeach-serve@.service")
EXAMPLE = os.path.join(DEPLOY, "example.env")
INSTANCE = "qpeach-serve@hdb.service"
SYSTEM_UNITS = "/usr/lib/systemd/system"
MAX_EXPOSURE = 1.5        # `systemd-analyze security` (systemd 252) as shipped
DATES = ("2024.03.04", "2024.03.05", "2024.03.06")


def analyze():
    """The systemd-analyze binary, or Skip when this machine truly has none
    (scripts/deps.sh installs Debian's systemd where it is missing)."""
    exe = shutil.which("systemd-analyze")
    if not exe:
        raise Skip("systemd-analyze is not installed (Debian's systemd package)")
    return exe


def unit_keys(path=UNIT):
    """[(section, key, value)] of a unit file, comments and blanks left out."""
    out, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, v = line.split("=", 1)
            out.append((section, k.strip(), v.strip()))
    return out


def unit_value(key):
    got = [v for _, k, v in unit_keys() if k == key]
    assert len(got) == 1, f"{key}= appears {len(got)} times in {UNIT}"
    return got[0]


def fake_root(text):
    """A root for `systemd-analyze --root`: the host's system units, the
    unit at etc/systemd/system, and our binary where ExecStart looks."""
    root = tmpdir()
    shutil.copytree(SYSTEM_UNITS, os.path.join(root, SYSTEM_UNITS.lstrip("/")), symlinks=True)
    os.makedirs(os.path.join(root, "etc", "systemd", "system"))
    with open(os.path.join(root, "etc", "systemd", "system", os.path.basename(UNIT)), "w") as f:
        f.write(text)
    exe = unit_value("ExecStart").split()[0]
    os.makedirs(os.path.join(root, os.path.dirname(exe).lstrip("/")))
    shutil.copy(QPEACH, os.path.join(root, exe.lstrip("/")))
    return root


def analyze_in_root(args, text):
    """systemd-analyze ARGS --root R INSTANCE, R a fake_root of the unit
    text: CompletedProcess."""
    root = fake_root(text)
    try:
        return subprocess.run([analyze()] + args + ["--root", root, INSTANCE],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(root)


def unit_text():
    with open(UNIT) as f:
        return f.read()


def test_unit_verifies_clean():
    r = analyze_in_root(["verify"], unit_text())
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", f"systemd-analyze verify: rc {r.returncode}\n{out}"
    # the check sees a mistake: an unknown key is only a warning (rc 0)
    r = analyze_in_root(["verify"], unit_text().replace("ProtectSystem=", "ProtectSystme="))
    assert "Unknown key 'ProtectSystme'" in r.stderr, r


def test_unit_hardening_exposure():
    r = analyze_in_root(["security", "--offline=true", f"--threshold={round(MAX_EXPOSURE * 10)}"],
                        unit_text())
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
    assert r.returncode == 0 and level, f"rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr}"
    assert float(level.group(1)) <= MAX_EXPOSURE, level.group(0)


# ---- the unit's command, run ----

def environment_file(path):
    """KEY=VALUE pairs as systemd's EnvironmentFile= reads them: # and ;
    comment lines, blanks, whitespace around the value, one pair of
    surrounding quotes. What this reader does not handle fails the test."""
    env = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            assert "=" in line and "\\" not in line, f"{path}:{n}: not handled here: {line}"
            k, v = (s.strip() for s in line.split("=", 1))
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k] = v
    return env


def exec_argv(line, env):
    """ExecStart's words after systemd's expansion: a word ${X} is X's value
    as one argument, a word $X is X's value split at whitespace (none when
    empty). Quotes, escapes, specifiers and prefixes fail the test."""
    assert not re.search(r"[\"'\\%]", line) and line[0] not in "@-:+!", f"not handled here: {line}"
    argv = []
    for w in line.split():
        m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", w)
        if m and m.group(1):
            assert m.group(1) in env, f"{m.group(1)} is not in the environment file"
            argv.append(env[m.group(1)])
        elif m:
            argv += env.get(m.group(2), "").split()
        else:
            assert "$" not in w, f"not handled here: {w}"
            argv.append(w)
    return argv


def instance(d, port):
    """The example's environment, its port, db and password file pointed at
    d's, written as /etc/qpeach/hdb.env would be; the argv it gives and the
    trades written to the db."""
    db = os.path.join(d, "hdb")
    frames = [trades(40 + i, day, 300 + 50 * i) for i, day in enumerate(DATES)]
    for df in frames:
        import_df(d, db, "trade", df)
    pw = passwd_file(d, {"hdb": "s3cret"})
    example = environment_file(EXAMPLE)
    assert {"QPEACH_PORT", "QPEACH_DB", "QPEACH_THREADS", "QPEACH_PASSWD"} <= set(example), example
    text = open(EXAMPLE).read()
    for key, val in (("QPEACH_PORT", f"127.0.0.1:{port}"), ("QPEACH_DB", db), ("QPEACH_PASSWD", pw)):
        text = re.sub(rf"(?m)^{key}=.*$", f"{key}={val}", text)
    envfile = os.path.join(d, "hdb.env")
    with open(envfile, "w") as f:
        f.write(text)
    argv = exec_argv(unit_value("ExecStart"), environment_file(envfile))
    assert argv[0] == "/usr/local/bin/qpeach", argv    # the unit's binary is ours here
    return [QPEACH] + argv[1:], pd.concat(frames, ignore_index=True)


def start(argv, env=None):
    """The command as systemd starts it: the ready line on stderr."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    log, ready = [], threading.Event()

    def pump():
        for line in p.stderr:
            log.append(line)
            if "listening on" in line:
                ready.set()
        ready.set()
    threading.Thread(target=pump, daemon=True).start()
    assert ready.wait(60) and p.poll() is None, "".join(log)
    return p, log


VOL = ("import numpy as np\n"
       "def notional(t):\n"
       "    return float((t['price'] * t['size']).sum())\n"
       "def rows(i):\n"
       "    return len(qtable('trade')['price']) + i\n")


def query(port, df):
    """Logs in with the instance's password and checks the db against df."""
    try:
        Conn(port=port, user="hdb", password="wrong").close()
        raise AssertionError("a wrong password was let in")
    except PermissionError:
        pass
    with Conn(port=port, user="hdb", password="s3cret", timeout=120) as c:
        assert call(c, ".qp.tables") == Vec("s", ["trade"])
        assert call(c, ".qp.count", Sym("trade")) == len(df)
        assert call(c, ".qp.partitions", Sym("trade")) == Vec("d", [days(x) for x in DATES])
        c.call([Sym(".qp.def"), Sym("notional"), VOL])
        c.call([Sym(".qp.def"), Sym("rows"), VOL])
        want = (df["price"] * df["size"]).groupby(df["date"]).sum()
        for day in DATES:
            got = c.call([Sym(".qp.apply"), Sym("notional"), Sym("trade"),
                          [Sym("date"), Atom("d", days(day))]])
            assert abs(got - want[day]) <= 1e-9 * abs(want[day]), (day, got, want[day])
        got = c.call([Sym(".qp.peach"), Sym("rows"), Vec("j", [0, 1, 2, 3])])   # -s threads
        assert list(got.items) == [len(df) + i for i in range(4)], got
        threads = c.call([Sym(".qp.info"), Identity()])["threads"]
        assert threads == int(environment_file(EXAMPLE)["QPEACH_THREADS"]), threads


def stop(p, log, pid=None):
    """systemctl stop: SIGTERM to the server (pid, when p is a tracer that
    runs it), and a clean exit (0; with make asan, no report of ours)."""
    os.kill(pid or p.pid, signal.SIGTERM)
    rc = p.wait(60)
    check_sanitizer_log("".join(log), rc)


def test_execstart_serves_the_db():
    d = tmpdir()
    port = harness.free_port()
    argv, df = instance(d, port)
    p, log = start(argv)
    try:
        query(port, df)
    finally:
        stop(p, log)
    shutil.rmtree(d)


def filter_groups():
    """{"@group": {names and @groups}} as `systemd-analyze syscall-filter`
    lists them."""
    out = subprocess.run([analyze(), "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), set())
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.add(line.strip())
    return groups


def expand(names, groups):
    out = set()
    for n in names:
        out |= expand(groups[n], groups) if n.startswith("@") else {n}
    return out


def allowed_syscalls():
    """What the unit's SystemCallFilter= lines let through: the allow
    lists, less the ~ lists."""
    groups, allow, deny = filter_groups(), set(), set()
    for _, k, v in unit_keys():
        if k == "SystemCallFilter":
            (deny if v.startswith("~") else allow).update(expand(v.lstrip("~").split(), groups))
    assert allow, "no SystemCallFilter allow list in the unit"
    return allow - deny


def test_execstart_stays_inside_the_unit_sandbox():
    """Every system call and socket family of the unit's command, while it
    serves the queries of test_execstart_serves_the_db, is one the unit's
    SystemCallFilter and RestrictAddressFamilies allow: a call outside them
    would fail with EPERM under systemd."""
    strace = shutil.which("strace")
    if not strace:
        raise Skip("strace is not installed (scripts/deps.sh installs it)")
    allowed = allowed_syscalls()
    families = set(unit_value("RestrictAddressFamilies").split())
    d = tmpdir()
    port = harness.free_port()
    argv, df = instance(d, port)
    trace = os.path.join(d, "strace.log")
    # (make asan: LeakSanitizer cannot run under ptrace; the other tests check leaks)
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    p, log = start([strace, "-f", "-qq", "-o", trace] + argv, env)
    try:
        query(port, df)
    finally:
        stop(p, log, harness.children(p.pid)[0])
    used, socks = set(), set()
    with open(trace) as f:
        for line in f:
            m = re.match(r"\d+\s+(?:<\.\.\. )?(\w+)(?:\(| resumed>)", line)
            if m:
                used.add(m.group(1))
            m = re.search(r"\bsocket\((AF_\w+)", line)
            if m:
                socks.add(m.group(1))
    assert "epoll_wait" in used and "mmap" in used, sorted(used)   # the trace is real
    assert used <= allowed, f"outside SystemCallFilter: {sorted(used - allowed)}"
    assert socks and socks <= families, f"outside RestrictAddressFamilies: {sorted(socks - families)}"
    shutil.rmtree(d)
