"""The contenders users would pick instead of qpeach, on the same table and
the same functions (common.py). Each runner is a class with setup(t),
run(workload) -> merged partial results, overhead(n) -> list of n results,
and close(); run_one.py times them.

  numpy        the function over the whole table in this one process
               (the baseline of every ratio)
  pool-fork    multiprocessing.Pool (fork) created after the table exists:
               workers inherit it; tasks carry only (start, end)
  pool-ship    multiprocessing.Pool created before the table: every task
               carries its partition (pickled)
  dask-procs   dask.delayed over the partitions, processes scheduler
               (partitions pickled to a pool of 2 processes)
  dask-threads dask.delayed over the partitions, threads scheduler (2)
"""
import multiprocessing as mp

import common as c

WORKERS = 2
_T = None          # the table, inherited by pool-fork workers


def _fork_task(args):
    w, a, b = args
    return c.FUNCS[w](c.part(_T, a, b))


def _ship_task(args):
    w, piece = args
    return c.FUNCS[w](piece)


class Numpy:
    name = "numpy"

    def setup(self, t):
        self.t = t

    def run(self, w):
        return c.FUNCS[w](self.t)

    def overhead(self, n):
        return [c.nop(i) for i in range(n)]

    def close(self):
        pass

    def pids(self):
        return []


class PoolFork:
    name = "pool-fork"

    def setup(self, t):
        global _T
        _T = t
        self.n = len(t["sym"])
        self.pool = mp.get_context("fork").Pool(WORKERS)
        self.pool.map(c.nop, range(WORKERS))

    def run(self, w):
        return c.merge(self.pool.map(_fork_task, [(w, a, b) for a, b in c.bounds(self.n)],
                                     chunksize=1))

    def overhead(self, n):
        return self.pool.map(c.nop, range(n), chunksize=1)

    def close(self):
        self.pool.close()
        self.pool.join()

    def pids(self):
        return [p.pid for p in self.pool._pool]


class PoolShip(PoolFork):
    name = "pool-ship"

    def setup(self, t):
        self.pool = mp.get_context("fork").Pool(WORKERS)   # before the table is known
        self.pool.map(c.nop, range(WORKERS))
        self.t = t
        self.n = len(t["sym"])

    def run(self, w):
        return c.merge(self.pool.map(_ship_task, [(w, c.part(self.t, a, b))
                                                  for a, b in c.bounds(self.n)], chunksize=1))

    def overhead(self, n):
        """Pool.map with its default chunking (batches of tasks per message)."""
        return self.pool.map(c.nop, range(n))


class DaskProcs:
    name = "dask-procs"
    scheduler = "processes"

    def setup(self, t):
        import dask
        self.dask = dask
        self.t = t
        self.n = len(t["sym"])
        self.kw = {"scheduler": self.scheduler, "num_workers": WORKERS}
        if self.scheduler == "processes":
            # one pool for the whole run, as a long-lived user would keep
            self.pool = mp.get_context("fork").Pool(WORKERS)
            self.kw["pool"] = self.pool
        dask.compute(*[dask.delayed(c.nop)(i) for i in range(WORKERS)], **self.kw)

    def run(self, w):
        d = self.dask.delayed
        parts = [d(c.FUNCS[w])(c.part(self.t, a, b)) for a, b in c.bounds(self.n)]
        return c.merge(list(self.dask.compute(*parts, **self.kw)))

    def overhead(self, n):
        d = self.dask.delayed
        return list(self.dask.compute(*[d(c.nop)(i) for i in range(n)], **self.kw))

    def close(self):
        if self.scheduler == "processes":
            self.pool.close()
            self.pool.join()

    def pids(self):
        return [p.pid for p in self.pool._pool] if self.scheduler == "processes" else []


class DaskThreads(DaskProcs):
    name = "dask-threads"
    scheduler = "threads"


RUNNERS = {r.name: r for r in (Numpy, PoolFork, PoolShip, DaskProcs, DaskThreads)}
