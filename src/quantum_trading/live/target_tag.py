"""The tag of a target order: what the decision path writes ahead with each order it sends
and what a restart reads back (:func:`target_tag`, :func:`parse_target_tag`).

``target:{symbol}={target!r}@{bar open, ns}``: the symbol, the target it moves the position
toward (a fraction of equity, ``nan`` when unknown) and the open time of the bar whose close
decided it (the order fills at the next bar's open). A restart takes the last target of
each symbol from the newest of these tags (a decision whose orders were never sent is made
again) and counts the day's risk-adding decisions written after the risk snapshot.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["TARGET_PREFIX", "TargetTag", "parse_target_tag", "target_tag"]

TARGET_PREFIX = "target:"


class TargetTag(NamedTuple):
    """A parsed target tag."""

    symbol: str
    target: float
    """Fraction of equity the order moves the position toward (NaN: unknown)."""
    bar_ns: int
    """Open time of the deciding bar, UTC nanoseconds."""


def target_tag(symbol: str, target: float, bar_ns: int) -> str:
    """The tag of an order sent toward ``target`` for ``symbol``, decided at the close of
    the bar opened at ``bar_ns``.

    >>> target_tag("BTC/USDT:USDT", 0.5, 1_700_000_000_000_000_000)
    'target:BTC/USDT:USDT=0.5@1700000000000000000'
    """
    return f"{TARGET_PREFIX}{symbol}={target!r}@{bar_ns}"


def parse_target_tag(tag: str | None) -> TargetTag | None:
    """The parts of a target tag; None for any other tag (or a malformed one).

    >>> parse_target_tag("target:BTC/USDT:USDT=0.5@1700000000000000000")
    TargetTag(symbol='BTC/USDT:USDT', target=0.5, bar_ns=1700000000000000000)
    >>> parse_target_tag("stop:BTC/USDT:USDT") is None
    True
    """
    if not tag or not tag.startswith(TARGET_PREFIX):
        return None
    body, sep, bar = tag[len(TARGET_PREFIX):].rpartition("@")
    symbol, eq, value = body.rpartition("=")
    if not sep or not eq or not symbol:
        return None
    try:
        return TargetTag(symbol, float(value), int(bar))
    except ValueError:
        return None
