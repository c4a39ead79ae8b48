"""What `qpeach run` does with a CSV input that changes under it: a parse
error always fails the run (naming file, line and column), the parsed copy
is keyed by the CSV's size, mtime and the job's `types`, and `types` also
reaches `files =` globs, `.qp.load` and `serve --load`.

Regression tests for a silent wrong result: a CSV that stopped parsing for
its types was summed against an old parsed copy and the run exited 0.
"""
import os
import time

from qipc import Conn, QError, Sym, Table, Vec
from harness import Server, qpeach, tmpdir

COUNT_PY = "def rows(t):\n    return len(t['sym'])\n"


def write(d, name, text):
    p = os.path.join(d, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)
    return p


def csv_rows(n, price=lambda i: f"{10 + i % 7}.25"):
    return "sym,price,size\n" + "".join(f"S{i % 5},{price(i)},{i}\n" for i in range(n))


def count_job(d, types=None, inp=None):
    write(d, "count.py", COUNT_PY)
    inp = inp or "file = t.csv\ntable = t\n"
    if types:
        inp += f"types = {types}\n"
    return write(d, "count.ini",
                 "[job]\nname = count\nfunction = count.py:rows\n"
                 f"[input]\n{inp}[partition]\nby = rows\npieces = 4\n"
                 "[workers]\nlocal = 1\n[merge]\nhow = sum\n[output]\npath = out/n.csv\n")


def result(d):
    with open(os.path.join(d, "out", "n.csv")) as f:
        return f.read().strip().splitlines()[-1]


def run(*args):
    return qpeach("run", "--quiet", *args, timeout=120)


def test_parse_error_fails_even_with_an_old_parsed_copy():
    d = tmpdir()
    write(d, "t.csv", csv_rows(2000))
    job = count_job(d, types="SFJ")
    r = run(job)
    assert r.returncode == 0, r.stderr
    assert result(d) == "2000"
    # The CSV's floats no longer parse as the job's types: editing `types`
    # alone (the CSV is unchanged) must not reuse the old parsed copy.
    job = count_job(d, types="SJJ")
    r = run(job)
    assert r.returncode in (1, 2), (r.returncode, r.stdout)
    assert "t.csv:2: column price" in r.stderr, r.stderr
    assert "is not a long" in r.stderr, r.stderr
    # ... nor touching the CSV.
    now = time.time() + 5
    os.utime(os.path.join(d, "t.csv"), (now, now))
    r = run(job)
    assert r.returncode in (1, 2) and "is not a long" in r.stderr, r.stderr


def test_parse_error_without_a_parsed_copy_names_the_cause():
    d = tmpdir()
    write(d, "t.csv", csv_rows(100, price=lambda i: "x" if i == 41 else "1.5"))
    r = run(count_job(d, types="SFJ"))
    assert r.returncode in (1, 2), r.stderr
    assert "t.csv:43: column price: 'x' is not a float" in r.stderr, r.stderr
    assert "input.qipc" not in r.stderr and "No such file" not in r.stderr, r.stderr


def test_changed_csv_is_parsed_again():
    d = tmpdir()
    write(d, "t.csv", csv_rows(2000))
    job = count_job(d, types="SFJ")
    assert run(job).returncode == 0 and result(d) == "2000"
    write(d, "t.csv", csv_rows(1500))
    r = run(job)
    assert r.returncode == 0, r.stderr
    assert result(d) == "1500"
    copies = [f for f in os.listdir(os.path.join(d, ".qpeach")) if f.startswith("count.input-")]
    assert len(copies) == 1, copies            # the stale copy is gone


def test_types_apply_to_file_globs():
    d = tmpdir()
    write(d, "daily/a.csv", csv_rows(10))
    write(d, "daily/b.csv", csv_rows(10))
    job = count_job(d, types="SJJ", inp="files = daily/*.csv\n")
    with open(job) as f:
        text = f.read().replace("by = rows\npieces = 4", "by = file")
    with open(job, "w") as f:
        f.write(text)
    r = run(job)
    assert r.returncode in (1, 2), (r.returncode, r.stdout)
    assert "a.csv" in r.stderr or "b.csv" in r.stderr, r.stderr
    assert "is not a long" in r.stderr, r.stderr


def test_qp_load_and_serve_load_take_types():
    d = tmpdir()
    p = write(d, "t.csv", "a,b\n1,2\n3,4\n")
    with Server("--load", f"t:JF={p}") as s, Conn(port=s.port) as c:
        assert c.call(".qp.meta `t").values.cols["t"] == "jf"
        assert c.call([Sym(".qp.load"), Sym("u"), p, "FJ"]) == "u"
        assert c.call(".qp.meta `u").values.cols["t"] == "fj"
        assert c.call("u") == Table({"a": Vec("f", [1.0, 3.0]), "b": Vec("j", [2, 4])})
        for bad, want in ([[Sym(".qp.load"), Sym("v"), p, "JS", "x"], "types"],
                          [[Sym(".qp.load"), Sym("v"), p, "GG"], "t.csv:2: column a"]):
            try:
                c.call(bad)
                raise AssertionError(f"accepted: {bad}")
            except QError as e:
                assert want in str(e), e
        assert c.call(".qp.meta `t").values.cols["t"] == "jf"      # still serving
    bad = write(d, "f.csv", "a,b\n1,2.5\n")
    r = qpeach("serve", "-p", "0", "--load", f"t:JJ={bad}", timeout=30)
    assert r.returncode != 0 and "is not a long" in r.stderr and "f.csv" in r.stderr, \
        (r.returncode, r.stderr)
