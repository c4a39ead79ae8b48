"""`qpeach run` rough edges a new user meets: a raising function is not
retried (unless asked), an interrupted run resumes by default (and says so;
--fresh starts over), task times exclude queue wait, state files live in
.qpeach/ beside the job, `window = auto` is accepted.
"""
import os
import re
import signal
import subprocess

from harness import QPEACH, tmpdir, wait_for
from test_run import run, slow_job, write


def raising_job(d, extra=""):
    write(d, "t.csv", "sym,price,size\nA,1.5,10\nB,2.5,20\n")
    write(d, "bad.py", "def f(t):\n    raise ValueError('bug in f')\n")
    return write(d, "bad.ini", "[job]\nfunction = bad.py:f\n[input]\ntable = t\nfile = t.csv\n"
                 "[partition]\npieces = 2\n[workers]\nlocal = 1\n[merge]\nhow = concat\n"
                 f"[output]\npath = out/o.csv\n[run]\nretries = 3\n{extra}")


def test_raising_function_fails_at_once():
    d = tmpdir()
    r = run(raising_job(d))
    assert r.returncode == 1, r.stderr
    assert "ValueError: bug in f" in r.stderr and "retrying" not in r.stderr, r.stderr
    assert r.stderr.count("Traceback") == 1, r.stderr


def test_retry_errors_retries_a_raising_function():
    d = tmpdir()
    r = run(raising_job(d, "retry_errors = true\n"))
    assert r.returncode == 1, r.stderr
    assert "retrying (1/3)" in r.stderr and "failed after 4 attempts" in r.stderr, r.stderr
    r = run(raising_job(d, "retry_errors = maybe\n"))
    assert r.returncode == 2 and "retry_errors: expected true or false" in r.stderr, r.stderr


def interrupt(p, d):
    proc = subprocess.Popen([QPEACH, "run", p], stderr=subprocess.PIPE, text=True)
    jpath = os.path.join(d, ".qpeach", "slow.journal")
    assert wait_for(lambda: os.path.exists(jpath) and os.path.getsize(jpath) > 1000, 60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 4, (proc.returncode, err)
    assert "the next qpeach run resumes" in err, err


def test_interrupted_run_resumes_by_default_and_fresh_starts_over():
    d = tmpdir()
    p = slow_job(d)
    interrupt(p, d)
    r = run(p)
    assert r.returncode == 0, r.stderr
    m = re.search(r"resuming: (\d+) of 24 tasks already done", r.stderr)
    assert m and int(m.group(1)) > 0, r.stderr
    assert r.stderr.count(" done on worker ") == 24 - int(m.group(1)), r.stderr
    interrupt(p, d)
    r = run("--fresh", p)
    assert r.returncode == 0, r.stderr
    assert "starting over (--fresh)" in r.stderr and "resuming" not in r.stderr, r.stderr
    assert r.stderr.count(" done on worker ") == 24, r.stderr


def test_state_in_dot_qpeach_and_window_auto():
    d = tmpdir()
    p = slow_job(d, tasks=2)
    text = open(p).read().replace("local = 2\n", "local = 2\nwindow = auto\n")
    write(d, "slow.ini", text)
    r = run(p)
    assert r.returncode == 0, r.stderr
    assert sorted(f for f in os.listdir(os.path.join(d, ".qpeach")) if not f.startswith("slow.input-")) \
        == ["slow.lock"], os.listdir(os.path.join(d, ".qpeach"))
    assert sorted(os.listdir(os.path.join(d, "out"))) == ["slow.csv"]


def test_task_time_excludes_queue_wait():
    """One worker, window 4, tasks of 0.5 s: each reported time is one
    task's, not the wait behind the tasks ahead of it (which would give
    ~1000, 1500, 2000 ms)."""
    d = tmpdir()
    write(d, "t.csv", "sym,price,size\n" + "A,1.5,10\n" * 8)
    write(d, "s.py", "import time\ndef f(t):\n    time.sleep(0.5)\n    return 1\n")
    p = write(d, "s.ini", "[job]\nfunction = s.py:f\n[input]\ntable = t\nfile = t.csv\n"
              "[partition]\npieces = 4\n[workers]\nlocal = 1\nwindow = 4\n[merge]\nhow = sum\n")
    r = run(p)
    assert r.returncode == 0, r.stderr
    times = [int(x) for x in re.findall(r"done on worker 0 in (\d+) ms", r.stderr)]
    assert len(times) == 4 and all(t < 950 for t in times), (times, r.stderr)


def test_wrong_column_names_fail_before_tasks_naming_the_real_ones():
    d = tmpdir()
    write(d, "t.csv", "sym,price,size\nA,1.5,10\nB,2.5,20\n")
    write(d, "f.py", "import numpy as np\ndef f(t):\n"
          "    return {'sym': np.unique(t['sym']), 'n': np.array([len(t['sym'])])}\n")
    base = ("[job]\nfunction = f.py:f\n[input]\ntable = t\nfile = t.csv\n[workers]\nlocal = 1\n"
            "[output]\npath = out/o.csv\n")
    p = write(d, "col.ini", base + "[partition]\nby = column\ncolumn = symbol\n")
    r = run(p)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "column = symbol" in r.stderr and "(it has: sym, price, size)" in r.stderr, r.stderr
    assert "done on worker" not in r.stderr, r.stderr
    p = write(d, "key.ini", base + "[partition]\npieces = 2\n[merge]\nhow = sum-by-key\nkey = ticker\n")
    r = run(p)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "key = ticker" in r.stderr and "(it has: sym, n)" in r.stderr, r.stderr
    assert r.stderr.count("done on worker") == 0, r.stderr


def test_outputs_python_readers_parse():
    import msgpack
    import pandas as pd
    d = tmpdir()
    write(d, "t.csv", "sym,price,size\nA,1.5,10\nB,2.5,20\n")
    write(d, "ts.py", "import numpy as np\ndef f(t):\n"
          "    return {'ts': np.array(['2024-03-01T09:30:00.000000001', 'NaT'], dtype='datetime64[ns]'),\n"
          "            'd': np.array(['2024-03-01', '1999-12-31'], dtype='datetime64[D]'), 'n': np.arange(2)}\n")

    def go(path, fmt=""):
        p = write(d, "ts.ini", "[job]\nfunction = ts.py:f\n[input]\ntable = t\nfile = t.csv\n"
                  "[partition]\npieces = 1\n[workers]\nlocal = 1\n"
                  f"[output]\npath = {path}\n{fmt}")
        r = run(p)
        assert r.returncode == 0, r.stderr
        return os.path.join(d, path)

    df = pd.read_csv(go("out/o.csv"), parse_dates=["ts", "d"])
    assert str(df["ts"].dtype) == "datetime64[ns]" and str(df["d"].dtype) == "datetime64[ns]", df.dtypes
    assert df["ts"][0] == pd.Timestamp("2024-03-01T09:30:00.000000001") and pd.isna(df["ts"][1])
    assert df["d"][1] == pd.Timestamp("1999-12-31")
    text = open(go("out/o.csv", "format = q\n")).read()
    assert "2024.03.01D09:30:00.000000001" in text and "1999.12.31" in text, text
    r = run(write(d, "bad.ini", open(os.path.join(d, "ts.ini")).read().replace("format = q", "format = xml")))
    assert r.returncode == 2 and "[output] format: expected iso or q" in r.stderr, r.stderr
    with open(go("out/o.msgpack"), "rb") as f:
        m = msgpack.unpackb(f.read(), timestamp=3)
    assert m["ts"][0].isoformat() == "2024-03-01T09:30:00+00:00" and m["ts"][1] is None, m
    assert m["n"] == [0, 1], m


def test_interrupt_during_a_hanging_setup_stops_at_once_and_says_so():
    """A library whose import hangs: SIGINT during the workers' setup
    stops the run at once, exit 4, saying it was interrupted (not 'run
    failed', not 'no worker is usable')."""
    d = tmpdir()
    write(d, "t.csv", "sym,price,size\nA,1.5,10\nB,2.5,20\n")
    write(d, "f.py", "def f(t):\n    return 1\n")
    mark = os.path.join(d, "importing")
    write(d, "slowmod.py", f"import time\nopen({mark!r}, 'w').close()\ntime.sleep(60)\n")
    p = write(d, "s.ini", "[job]\nfunction = f.py:f\nlibraries = slowmod\n[input]\ntable = t\n"
              "file = t.csv\n[workers]\nlocal = 1\n[merge]\nhow = sum\n")
    env = dict(os.environ, PYTHONPATH=d)
    proc = subprocess.Popen([QPEACH, "run", p], stderr=subprocess.PIPE, text=True, env=env)
    assert wait_for(lambda: os.path.exists(mark), 30)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)     # the import alone would take 60 s
    assert proc.returncode == 4, (proc.returncode, err)
    assert "interrupted by signal 2 before any task ran" in err, err
    assert "run failed" not in err and "unusable" not in err, err
