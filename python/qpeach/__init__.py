"""qpeach: PyKX's remote-function API on qpeach workers, q's analytic
functions in numpy, and fan-out of one function over many workers.

    import qpeach as kx
    session = kx.remote.session(host='localhost', port=5050,
                                username='user', password='password')

    @kx.remote.function(session)
    def single_arg_function(x):
        return x + 10

    single_arg_function(10)          # 20, computed on the server

``kx.q`` holds q's analytic functions (mavg, msum, wavg, xbar, ...) in numpy
with q's window and null rules; ``kx.remote.fanout`` runs one function over
the partitions of a table on several sessions at once and merges the results.

Value mapping (the same C conversion the worker uses, include/qpeach/py.h):

  q                         Python
  ------------------------  ---------------------------------------------
  long/int/short atom       int               (a Python int is sent as long)
  float/real atom           float
  boolean atom              bool
  symbol atom               str               (a str is sent as a symbol)
  char vector               str               (send errors.CharVector); a
                            table's char column: numpy S1 array, one item
                            per row
  byte vector               bytes / numpy uint8
  numeric vector            numpy array of the same width, no copy
  symbol vector             numpy object array of str
  timestamp, date, month    numpy datetime64 (ns, D, M), epoch shifted
                            from q's 2000.01.01 to 1970.01.01
  timespan, minute,         numpy timedelta64 (ns, m, s, ms)
  second, time
  general list              list
  dict                      dict
  table                     dict of numpy arrays (a pandas DataFrame with
                            function(..., pandas=True): integer nulls <NA>
                            in Int16/32/64, the null symbol NaN, temporal
                            columns in ns, char columns one-char str)
  (::)                      None
  error                     raises qpeach.QError (remote traceback kept)

Nulls: float nulls are NaN; integer nulls keep q's bit pattern (the dtype's
minimum: 0N is -9223372036854775808), 0W is the dtype's maximum; temporal
nulls are NaT, their infinities datetime64's largest and smallest values;
the null symbol is ''. A value the other side cannot hold (a q timestamp
after 2262.04.11 for numpy, a Python datetime before 1707.09.22 for q)
raises, naming the column and row. Every type, null and infinity: the
README's "q <-> Python" table.
"""
import os as _os

# A sanitizer build keeps its extension beside its objects (build/asan/...)
# so it never replaces the normal one: QPEACH_EXT_DIR points there.
if _os.environ.get("QPEACH_EXT_DIR"):
    __path__.insert(0, _os.environ["QPEACH_EXT_DIR"])

from . import q                                  # noqa: E402
from .errors import QError, FanoutError, RunError, Timeout, Cancelled  # noqa: E402
from . import remote                             # noqa: E402
from .sched import run                           # noqa: E402

__all__ = ["q", "remote", "run", "QError", "FanoutError", "RunError", "Timeout", "Cancelled"]


def __getattr__(name):
    """qpeach.__version__: the extension's, which the C library's
    include/qpeach/version.h sets (the one place; `qpeach --version` and
    .qp.info[] say the same). Read on first use, so that `import qpeach`
    needs no extension."""
    if name == "__version__":
        from ._ext import extension
        return extension().VERSION
    raise AttributeError(f"module 'qpeach' has no attribute {name!r}")
