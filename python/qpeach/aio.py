"""asyncio for fan-outs: ``await afanout(...)`` and ``await amap(...)``
run fanout and map (the C scheduler, which releases the GIL while it
runs) on a thread, so an event loop goes on meanwhile. Runs in one
process take turns (the scheduler owns the process's SIGINT handler while
it runs). A remote function's own ``submit`` and ``acall`` are
session.py's."""
import asyncio
import functools
from typing import Any, Callable, List

from .fanout import fanout, map as _map

__all__ = ["afanout", "amap"]


async def afanout(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """fanout(fn, ...) awaited: the same arguments, the same result."""
    return await asyncio.to_thread(functools.partial(fanout, fn, *args, **kwargs))


async def amap(fn: Callable, iterable: Any, *args: Any, **kwargs: Any) -> List[Any]:
    """map(fn, iterable, ...) awaited: the same arguments, the same result."""
    return await asyncio.to_thread(functools.partial(_map, fn, iterable, *args, **kwargs))
