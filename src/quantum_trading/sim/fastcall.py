"""Calling a compiled kernel without numba's per-call argument typing.

A numba dispatcher types every argument on every call to pick the compiled overload; for the
simulator's NamedTuples of dozens of arrays that costs about 25–30 µs a call, ten times the
kernel's own work on one bar. Code that calls the same kernel with arguments of the same types
over and over (the RL environment: one call per step) can fetch the compiled overload's entry
point once and call it directly (about 3–4 µs).

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def add_nb(a, b):
...     return a + b
>>> add = bound_kernel(add_nb, np.float64(1.0), np.float64(2.0))
>>> float(add(np.float64(1.0), np.float64(2.0)))
3.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["bound_kernel"]


def bound_kernel(dispatcher: Any, *example_args: Any) -> Callable[..., Any]:
    """The compiled entry point of ``dispatcher`` for the types of ``example_args``.

    Compiles (or loads from numba's cache) the overload for exactly these argument types
    without running the kernel, and returns its entry point: a callable that skips argument
    typing. Every later call must pass arguments of the same numba types (same dtypes,
    dimensions, layouts and read-only flags; NamedTuples with the same field types), else the
    result is undefined. Falls back to ``dispatcher`` itself (typing on every call, always
    safe) when the overload has no entry point (e.g. with ``NUMBA_DISABLE_JIT``).
    """
    typeof = getattr(dispatcher, "typeof_pyval", None)
    overloads = getattr(dispatcher, "overloads", None)
    if typeof is None or overloads is None:
        return dispatcher  # plain Python function (JIT disabled)
    sig = tuple(typeof(a) for a in example_args)
    if sig not in overloads:
        dispatcher.compile(sig)
    cres = overloads.get(sig)
    entry = getattr(cres, "entry_point", None)
    return entry if entry is not None else dispatcher
