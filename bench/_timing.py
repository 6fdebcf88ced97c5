"""Wall-clock timing shared by the benchmarks: the best of several rounds, in a rotating order."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["best_of", "rotating"]


def rotating(
    candidates: Mapping[str, Callable[[], Any]],
    repeat: int,
    *,
    skip: Callable[[str, float], bool] | None = None,
    keep_results: bool = True,
) -> dict[str, tuple[float, Any]]:
    """Best wall time (s) of each candidate over ``repeat`` rounds, and its last result.

    Each round calls every candidate once, starting one further along the list each time: what
    ran just before (and freed memory) changes the cost of a call's first writes into fresh
    memory, and a burst of load from other processes should hit all candidates alike. After
    the first round a candidate is left out of a round when ``skip(name, best_s)`` is true.
    With ``keep_results=False`` every result is dropped as soon as it is returned (the last
    result is then None).
    """
    names = list(candidates)
    best = dict.fromkeys(names, float("inf"))
    last: dict[str, Any] = dict.fromkeys(names)
    for r in range(repeat):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            if r > 0 and skip is not None and skip(name, best[name]):
                continue
            t0 = time.perf_counter()
            if keep_results:
                last[name] = candidates[name]()
            else:
                candidates[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: (best[name], last[name]) for name in names}


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time (s) of ``repeat`` calls of ``fn``, and the last result."""
    return rotating({"fn": fn}, repeat)["fn"]
