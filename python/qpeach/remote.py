"""PyKX's remote-function API on qpeach workers, and fan-out.

    session = session(host='localhost', port=5050, username='user',
                      password='password', libraries={'np': 'numpy'})

    @function(session)
    def f(x, y=1):
        return np.sum(x) * y

A decorated function is shipped once per connection (dill bytes when dill
is installed, else its source text), registered on the server under a name
made of its SHA-256 id, and called by that name afterwards (`.qp.call`, or
`.qp.callk` with keyword arguments). Libraries are imported on the server
(`.qp.import`) when given, so a missing one fails at once, naming it and its
alias. pandas=True registers it with the server's pandas option: table
arguments arrive as DataFrames.

Globals are read at call time, as a local call reads them: with dill, the
data globals the function and its helpers name (not modules, functions or
classes, which are shipped once) go with a call whenever their values
differ from what the server holds (a hash is checked on every call; an
identical immutable value costs no pickling).

Timeouts: a call that runs past ``timeout`` raises TimeoutError and is never
sent again. Its reply would still arrive on the connection, so the session
closes it; the next call opens a new one (repr: "reconnects on next call").

Reconnection follows PyKX's ``reconnection_attempts``: -1 (the default)
never reconnects and a lost connection raises ConnectionError; N > 0 tries
up to N times, waiting 0.5 s and doubling; 0 tries without limit. After a
reconnect the libraries are imported again, every function is registered
again when next called, and the call that found the connection lost is
sent once more.

Concurrency: a session opens up to ``max_connections`` connections, one per
call running at the same time: ``f.submit(x)`` gives a
concurrent.futures.Future, ``await f.acall(x)`` an asyncio one, and
``await afanout(...)`` / ``await amap(...)`` run a fan-out on a thread.

Fan-out (fanout, map) is the C scheduler's, as `qpeach run` runs a job
file: the function is shipped the same way but defined by the scheduler on
every worker (qp_run_opts.fn_code), and this module only makes the job, a
dict the scheduler reads as it reads a job file (see sched.py); it has no
partitioning or merging of its own.
"""
from ._ext import extension as _extension        # noqa: F401  (tests)
from .aio import afanout, amap
from .fanout import fanout, map
from .session import RemoteFunction, Session, function, session
from .shipping import _Shipped                   # noqa: F401  (tests)

__all__ = ["session", "function", "fanout", "map", "afanout", "amap", "Session",
           "RemoteFunction"]
