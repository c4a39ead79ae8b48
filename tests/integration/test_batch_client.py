"""kx.remote.map of many small items (issue 21.2), on the C scheduler with
local workers: the items go several to a message and plain ones by the C
pickler, and the answers must still be [f(x) for x in items], in order,
with the one failing item named."""
import os
import sys

import numpy as np

import harness

harness.asan_client_reexec()
sys.path.insert(0, os.path.join(harness.ROOT, "python"))
os.environ["QPEACH_BIN"] = os.path.join(harness.BUILD, "qpeach")
import qpeach as kx                     # noqa: E402


def test_map_of_many_small_items_equals_a_loop():
    def f(x):
        return x * x - 3

    items = list(range(4000))
    assert kx.remote.map(f, items, local=2, progress=False) == [f(x) for x in items]

    # tuples of plain values (the C pickler), numpy values (dill)
    def g(t):
        return t[0] + len(t[1]) + t[2]

    pairs = [(i, str(i), i / 2) for i in range(1500)]
    assert kx.remote.map(g, pairs, local=2, progress=False) == [g(t) for t in pairs]

    def h(a):
        return float(np.asarray(a).sum())

    arrays = [np.arange(i) for i in range(300)] + [np.float32(2.5), np.int64(7)]
    assert kx.remote.map(h, arrays, local=2, progress=False) == [h(a) for a in arrays]


def test_map_names_the_one_failing_item():
    def f(x):
        if x == 2345:
            raise ValueError(f"no {x}")
        return x

    try:
        kx.remote.map(f, range(3000), local=2, progress=False)
    except kx.FanoutError as e:
        assert e.task == 2345 and e.partition == "item 2345", (e.task, e.partition)
        assert e.remote_type == "ValueError" and e.remote_message == "no 2345", \
            (e.remote_type, e.remote_message)
    else:
        raise AssertionError("a raising item must raise FanoutError")
