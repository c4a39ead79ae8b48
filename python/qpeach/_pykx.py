"""What ``import pykx`` gives Python code on a qpeach worker where PyKX is
not installed.

PyKX's remote functions import PyKX on the server (``session.libraries(
{'kx': 'pykx'})``, or ``import pykx as kx`` in a function body) to use q's
functions as ``kx.q.mavg(4, x)``. A qpeach worker has no q to call; it has
``qpeach.q``, the same functions in numpy with q's rules. The server
(src/py/pykx.c) appends a finder to ``sys.meta_path`` that is consulted
only after every other finder has failed, so a real PyKX, where one is
installed, is always what ``import pykx`` gives; otherwise it is a module
named ``pykx`` holding this file's ``q``.

``q`` offers exactly ``qpeach.q.__all__``; any other name raises an
AttributeError naming the function and listing what there is. Results are
numpy arrays and scalars (what the server sends back as q values), not
PyKX objects.
"""
import importlib.machinery

from . import q as _qfuncs

__all__ = ["q", "spec"]

_README = "README.md, 'PyKX clients'"


class QFunctions:
    """``kx.q`` on a qpeach worker: q's functions that qpeach.q implements."""

    def __init__(self):
        for name in _qfuncs.__all__:
            object.__setattr__(self, name, getattr(_qfuncs, name))

    def __getattr__(self, name):
        # only reached for names that are not one of the functions above
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"kx.q.{name}: qpeach's pykx stand-in (no PyKX on this worker) has no q "
            f"function {name!r}; it has {', '.join(sorted(_qfuncs.__all__))} "
            f"(qpeach.q; {_README})")

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(
            "kx.q('...') evaluates q code, and a qpeach worker has no q; call the "
            f"functions it has as kx.q.NAME(...) ({_README})")

    def __dir__(self):
        return sorted(_qfuncs.__all__)

    def __repr__(self):
        return "<kx.q: qpeach's q functions in numpy>"


q = QFunctions()


class _Loader:
    """Makes the module ``pykx`` from this one's public names."""

    @staticmethod
    def create_module(spec):
        return None                     # the default module object

    @staticmethod
    def exec_module(module):
        module.q = q
        module.__doc__ = ("qpeach's stand-in for PyKX on a worker without it: "
                          "kx.q offers " + ", ".join(sorted(_qfuncs.__all__)))
        module.__qpeach__ = True        # tells it from a real PyKX
        module.__all__ = ["q"]


def spec():
    """The import spec of the stand-in module ``pykx``."""
    return importlib.machinery.ModuleSpec("pykx", _Loader, origin=__file__)
