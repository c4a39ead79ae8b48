"""Where `qpeach serve` runs: --pin CORES, secondary threads on distinct
cores, -s -N worker processes on one core each. Affinities are read from
the kernel (/proc/PID/task/TID/status, Cpus_allowed_list), threads are told
apart by their names (qp-main, qp-sec-N), and cores are mapped to PUs with
`qpeach topo`, so nothing here trusts the server's own account."""
import contextlib
import os
import re
import selectors
import signal
import subprocess

import harness
from harness import QPEACH, children, free_port, qpeach, wait_for
from qipc import Conn, Sym, Vec
from test_serve import Server, check_sanitizer_log


def core_pus():
    """{logical core: set of OS PU indices}, from `qpeach topo`."""
    out = qpeach("topo", check=True).stdout
    cores = {int(c): parse_list(p) for c, p in re.findall(r"^\s*core (\d+): node \d+, PUs (\S+)$", out, re.M)}
    assert cores, out
    return cores


def parse_list(s):
    """'0-2,5' -> {0, 1, 2, 5}"""
    got = set()
    for item in s.split(","):
        lo, _, hi = item.partition("-")
        got.update(range(int(lo), int(hi or lo) + 1))
    return got


def allowed(pid, tid=None):
    path = f"/proc/{pid}/task/{tid}/status" if tid else f"/proc/{pid}/status"
    with open(path) as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return parse_list(line.split()[1])
    raise AssertionError("no Cpus_allowed_list in " + path)


def threads(pid):
    """{thread name: [set of allowed PUs, ...]} for every thread of pid."""
    got = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            got.setdefault(name, []).append(allowed(pid, tid))
        except FileNotFoundError:
            pass    # a thread that just ended
    return got


def need_two_cores():
    cores = core_pus()
    if len(cores) < 2:
        raise harness.Skip("this machine has 1 core")
    return cores


def echo_works(port):
    """One answered call: the server's threads start after its ready line,
    and the loop serves only once all of them are set up (pinned)."""
    with Conn(port=port) as c:
        assert c.call([Sym(".qp.echo"), 42]) == 42


# ------------------------------------------------------------ threads

def test_pin_two_cores_gives_each_secondary_thread_its_own():
    cores = need_two_cores()
    with Server("-s", "2", "--pin", "0-1") as s:
        echo_works(s.port)
        both = cores[0] | cores[1]
        assert allowed(s.proc.pid) == both
        t = threads(s.proc.pid)
        assert t["qp-main"] == [both], t
        sec = [t["qp-sec-0"][0], t["qp-sec-1"][0]]
        assert sec == [cores[0], cores[1]], t
        # every other thread (loop, anything Python starts) keeps the set
        for name, sets in t.items():
            if not name.startswith("qp-sec-"):
                assert all(x == both for x in sets), (name, t)


def test_pin_one_core_puts_everything_there():
    cores = need_two_cores()
    with Server("-s", "2", "--pin", "1") as s:
        echo_works(s.port)
        t = threads(s.proc.pid)
        assert "qp-sec-0" in t and "qp-sec-1" in t, t
        for name, sets in t.items():
            assert all(x == cores[1] for x in sets), (name, t)


def test_more_threads_than_cores_wrap_around():
    cores = need_two_cores()
    with Server("-s", "3", "--pin", "0-1") as s:
        echo_works(s.port)
        t = threads(s.proc.pid)
        assert [t[f"qp-sec-{i}"][0] for i in range(3)] == [cores[0], cores[1], cores[0]], t


def test_without_pin_threads_spread_over_all_cores():
    cores = need_two_cores()
    with Server("-s", "2") as s:
        echo_works(s.port)
        t = threads(s.proc.pid)
        assert [t["qp-sec-0"][0], t["qp-sec-1"][0]] == [cores[0], cores[1]], t
        assert t["qp-main"][0] == set().union(*cores.values()), t


@contextlib.contextmanager
def serve_under_taskset(pus, *args):
    """`qpeach serve` on a free port, started by taskset on the PUs given;
    yields (port, process) once it listens, then stops it and checks its
    log for sanitizer reports."""
    port = free_port()
    p = subprocess.Popen(["taskset", "-c", ",".join(map(str, sorted(pus))), QPEACH, "serve",
                          "-p", str(port), *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(p.stderr, selectors.EVENT_READ)
        line = p.stderr.readline() if sel.select(30) else ""
        assert "listening on" in line, line
        yield port, p
    finally:
        p.send_signal(signal.SIGTERM)
        rest = p.communicate(timeout=30)[1]
    check_sanitizer_log(rest, p.returncode)


def test_without_pin_threads_stay_inside_the_binding_they_were_started_with():
    """As under `qpeach run`, which binds each local worker before exec:
    here taskset binds the server to core 1's PUs."""
    cores = need_two_cores()
    with serve_under_taskset(cores[1], "-s", "2") as (port, p):
        echo_works(port)
        t = threads(p.pid)
        assert t["qp-sec-0"] == [cores[1]] and t["qp-sec-1"] == [cores[1]], t
        assert t["qp-main"] == [cores[1]], t


def test_bad_core_list_is_a_usage_error_before_listening():
    ncores = len(core_pus())
    for bad, says in [("x", "bad syntax"), ("0-", "bad syntax"), ("1,,0", "bad syntax"),
                      ("1-0", "runs backwards"), (str(ncores), f"core {ncores} is beyond"),
                      ("", "empty core list")]:
        r = qpeach("serve", "-p", free_port(), "-s", "2", "--pin", bad, timeout=30)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert "--pin" in r.stderr and says in r.stderr, (bad, r.stderr)
        assert "listening on" not in r.stderr, r.stderr
    assert "--pin CORES" in qpeach("serve", "--help").stdout


# ------------------------------------------------------------ processes

def execd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"--parent-fd" in f.read()
    except FileNotFoundError:
        return False


def worker_pids(s, n):
    """The n worker processes, once each has exec'd: a child binds itself
    between fork and exec, so before that it still has the parent's set."""
    def ready():
        kids = harness.children(s.proc.pid)
        return len(kids) == n and all(execd(k) for k in kids)
    assert wait_for(ready, timeout=30), harness.children(s.proc.pid)
    return harness.children(s.proc.pid)


def test_worker_processes_get_one_distinct_core_each():
    cores = need_two_cores()
    s = Server("-s", "-2", ready_timeout=60)
    with s:
        kids = worker_pids(s, 2)
        sets = [allowed(k) for k in kids]
        assert sorted(sets, key=min) == [cores[0], cores[1]], sets
        # a child's own threads inherit its core
        for k in kids:
            for name, xs in threads(k).items():
                assert all(x == allowed(k) for x in xs), (k, name, xs)
        assert allowed(s.proc.pid) == cores[0] | cores[1]


def test_worker_processes_stay_inside_pin():
    cores = need_two_cores()
    with Server("-s", "-2", "--pin", "1", ready_timeout=60) as s:
        kids = worker_pids(s, 2)
        assert [allowed(k) for k in kids] == [cores[1], cores[1]]


def test_restarted_worker_process_keeps_its_core():
    cores = need_two_cores()
    with Server("-s", "-2", ready_timeout=60) as s, Conn(port=s.port, timeout=120) as c:
        kids = worker_pids(s, 2)
        was = {k: allowed(k) for k in kids}
        os.kill(kids[0], signal.SIGKILL)
        c.call([Sym(".qp.def"), Sym("pid"), "def pid(x):\n    import os\n    return os.getpid()\n"])
        got = c.call([Sym(".qp.peach"), Sym("pid"), Vec("j", list(range(8)))])
        now = [k for k in children(s.proc.pid) if execd(k)]
        assert len(now) == 2 and kids[0] not in now and kids[1] in now, (kids, now)
        new = [k for k in now if k != kids[0] and k != kids[1]][0]
        assert allowed(new) == was[kids[0]] and allowed(kids[1]) == was[kids[1]], (was, allowed(new))
        assert sorted(map(min, [allowed(k) for k in now])) == sorted(map(min, [cores[0], cores[1]]))
        assert set(got.items) <= set(now), (got, now)


# ------------------------------------------------------------ .qp.info

def info_cores(port):
    with Conn(port=port) as c:
        info = c.call(".qp.info[]")
    return info["cores"].items


def test_info_reports_the_cores_this_server_may_use():
    cores = need_two_cores()
    with Server("-s", "2", "--pin", "1") as s:
        assert info_cores(s.port) == [1]
    with Server("-s", "2", "--pin", "0-1") as s:
        assert info_cores(s.port) == [0, 1]
    with Server("-s", "2") as s:
        assert len(info_cores(s.port)) == len(cores)
    with serve_under_taskset(cores[0]) as (port, _):
        assert len(info_cores(port)) == 1


# ------------------------------------------------------------ qpeach run

def _run_env(**env):
    """`qpeach run` of a 2-worker job doubling a column, under env; returns
    (CompletedProcess, the column)."""
    d = harness.tmpdir()
    xs = list(range(0, 300, 7))
    with open(os.path.join(d, "d.csv"), "w") as f:
        f.write("x\n" + "".join(f"{x}\n" for x in xs))
    with open(os.path.join(d, "g.py"), "w") as f:
        f.write("def g(t):\n    return {'x': t['x'] * 2}\n")
    with open(os.path.join(d, "k.ini"), "w") as f:
        f.write("[job]\nfunction = g.py:g\n[input]\nfile = d.csv\ntypes = J\n"
                "[partition]\npieces = 3\n[workers]\nlocal = 2\n")
    return harness.qpeach("run", os.path.join(d, "k.ini"), env=dict(os.environ, **env),
                          timeout=120), xs


def test_run_says_which_pinning_failed_and_why():
    """hwloc told of a machine whose PUs this one lacks (indexes 4000-4003,
    HWLOC_THISSYSTEM=1 so it binds for real): every binding fails, and
    `qpeach run` says which (the scheduler's thread, each worker), with
    the cores, the PUs and the cause; the run goes on unpinned and its
    answer is right. Pinning used to fail silently."""
    r, xs = _run_env(HWLOC_THISSYSTEM="1",
                     HWLOC_SYNTHETIC="node:1 core:4 pu:1(indexes=4000,4001,4002,4003)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["x"] + [str(2 * x) for x in xs], r.stdout
    for who in ("the scheduler's thread", "worker 0", "worker 1"):
        line = [ln for ln in r.stderr.splitlines() if f"{who} could not be pinned" in ln]
        assert len(line) == 1, (who, r.stderr)
        assert re.search(r"to core \d \(PUs 400\d\), and runs on any core: Invalid argument$",
                         line[0]), line[0]


def test_run_keeps_the_cause_when_the_topology_cannot_be_read():
    """hwloc with no discovery component left: the run fails saying why,
    not only that the topology could not be read."""
    r, _ = _run_env(HWLOC_COMPONENTS="-linux,-x86,-no_os")
    assert r.returncode == 1, r.stderr
    assert ("hwloc: cannot read this machine's topology, which places the local workers: "
            "Invalid argument") in r.stderr, r.stderr
