"""Rolling-window kernels (numba): Donchian channel (rolling max/min), VWAP and quantiles.

Rolling max/min use the van Herk/Gil-Werman block algorithm (O(n) for any window and any
data, exact because max/min never round), with the block prefix and suffix scans fused into
one pass; windows of at most ``SMALL_WINDOW`` bars are scanned directly, which is faster there.
Rolling quantiles keep the window sorted and move one element per bar (O(period) per bar,
a short ``memmove``-like shift).

All kernels follow the NaN contract of :mod:`quantum_trading.features`: each maximal run of
finite inputs is computed on its own; outputs inside a run's warm-up, and at non-finite
inputs, are NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantum_trading.features.averages_nb import RESEED_EVERY

__all__ = ["SMALL_WINDOW", "donchian_nb", "rolling_quantiles_nb", "rolling_vwap_nb"]

SMALL_WINDOW = 4
"""Windows up to this length are scanned directly instead of by blocks."""

_U = np.uint64


@njit(cache=True)
def _first_nonfinite2_nb(a: np.ndarray, b: np.ndarray, start: int, stop: int) -> int:
    """First index in ``[start, stop)`` where ``a`` or ``b`` is not finite (``stop`` if none)."""
    for j in range(start, stop):
        if not (np.isfinite(a[j]) and np.isfinite(b[j])):
            return j
    return stop


@njit(cache=True)
def _hilo_run_nb(
    high: np.ndarray,
    low: np.ndarray,
    s: int,
    stop: int,
    p: int,
    upper: np.ndarray,
    middle: np.ndarray,
    lower: np.ndarray,
    buf: np.ndarray,
) -> int:
    """Rolling max of ``high`` and min of ``low`` over ``p`` bars for the run starting at ``s``.

    The run ends at the first bar in ``[s, stop)`` whose high or low is not finite; that index
    (or ``stop``) is returned. Writes ``upper``/``lower`` (and their midpoint into ``middle``
    unless it is empty) on ``[s, end)``, NaN for the first ``p - 1`` bars. ``high[s]`` and
    ``low[s]`` must be finite. ``buf`` is scratch of length ``4 * p``.

    Blocks of ``p`` bars (van Herk/Gil-Werman): the window ending at bar ``nb + t`` of a block
    is the suffix of the previous block from offset ``t + 1`` plus the prefix of this block to
    offset ``t``. Each block's suffix extremes are scanned backwards in the same loop that scans
    its prefix forwards, so four independent max/min chains run side by side. A block that
    turns out to hold a non-finite value is redone up to that value by :func:`_hilo_tail_nb`.
    """
    with_middle = middle.shape[0] > 0
    e = _first_nonfinite2_nb(high, low, s, min(s + p, stop))
    for i in range(s, min(s + p - 1, e)):
        upper[i] = np.nan
        lower[i] = np.nan
        if with_middle:
            middle[i] = np.nan
    if e < s + p:
        return e
    if p <= SMALL_WINDOW:
        i = s + p - 1
        while i < stop:
            if not (np.isfinite(high[i]) and np.isfinite(low[i])):
                return i
            hi = high[i]
            lo = low[i]
            for j in range(i - p + 1, i):
                a = high[j]
                b = low[j]
                hi = a if a > hi else hi
                lo = b if b < lo else lo
            upper[i] = hi
            lower[i] = lo
            if with_middle:
                middle[i] = (hi + lo) * 0.5
            i += 1
        return stop
    # buf holds two (suffix-high, suffix-low) pairs: the previous block's at offset cur, the
    # one being scanned at offset nxt; they swap roles after every block.
    ch = high[s + p - 1]
    cl = low[s + p - 1]
    buf[p - 1] = ch
    buf[2 * p - 1] = cl
    for t in range(p - 2, -1, -1):
        ch = max(ch, high[s + t])
        cl = min(cl, low[s + t])
        buf[t] = ch
        buf[p + t] = cl
    upper[s + p - 1] = ch
    lower[s + p - 1] = cl
    if with_middle:
        middle[s + p - 1] = (ch + cl) * 0.5
    # Unsigned indices: numba then skips its negative-index wraparound check on every access.
    one = _U(1)
    pu = _U(p)
    cur = _U(0)
    nxt = _U(2 * p)
    nb = _U(s + p)  # first bar of the block being output
    ustop = _U(stop)
    while nb + pu <= ustop:
        last = nb + pu - one
        ph = high[nb]
        pl = low[nb]
        acc = ph * 0.0 + pl * 0.0  # turns NaN if any value in the block is NaN or inf
        hi = max(buf[cur + one], ph)
        lo = min(buf[cur + pu + one], pl)
        upper[nb] = hi
        lower[nb] = lo
        if with_middle:
            middle[nb] = (hi + lo) * 0.5
        sh = high[last]
        sl = low[last]
        buf[nxt + pu - one] = sh
        buf[nxt + pu + pu - one] = sl
        for t in range(one, pu - one):
            a = high[nb + t]
            b = low[nb + t]
            acc += a * 0.0 + b * 0.0
            ph = max(ph, a)
            pl = min(pl, b)
            hi = max(buf[cur + t + one], ph)
            lo = min(buf[cur + pu + t + one], pl)
            upper[nb + t] = hi
            lower[nb + t] = lo
            if with_middle:
                middle[nb + t] = (hi + lo) * 0.5
            sh = max(sh, high[last - t])
            sl = min(sl, low[last - t])
            buf[nxt + pu - one - t] = sh
            buf[nxt + pu + pu - one - t] = sl
        a = high[last]
        b = low[last]
        acc += a * 0.0 + b * 0.0
        if acc != 0.0:
            break
        hi = max(ph, a)
        lo = min(pl, b)
        upper[last] = hi
        lower[last] = lo
        if with_middle:
            middle[last] = (hi + lo) * 0.5
        buf[nxt] = max(sh, high[nb])
        buf[nxt + pu] = min(sl, low[nb])
        cur, nxt = nxt, cur
        nb += pu
    if nb >= ustop:
        return stop
    # A partial last block, or a block holding a non-finite value: redo it up to that value.
    return _hilo_tail_nb(high, low, int(nb), stop, p, upper, middle, lower, buf, int(cur))


@njit(cache=True)
def _hilo_tail_nb(
    high: np.ndarray,
    low: np.ndarray,
    nb: int,
    stop: int,
    p: int,
    upper: np.ndarray,
    middle: np.ndarray,
    lower: np.ndarray,
    buf: np.ndarray,
    cur: int,
) -> int:
    """Bars of a block of :func:`_hilo_run_nb` from ``nb`` up to the first non-finite bar
    before ``min(nb + p, stop)``, using the previous block's suffix at ``buf[cur:]``; returns
    where the run ends."""
    with_middle = middle.shape[0] > 0
    end = _first_nonfinite2_nb(high, low, nb, min(nb + p, stop))
    ph = -np.inf
    pl = np.inf
    for t in range(end - nb):
        ph = max(ph, high[nb + t])
        pl = min(pl, low[nb + t])
        hi = max(buf[cur + t + 1], ph) if t < p - 1 else ph
        lo = min(buf[cur + p + t + 1], pl) if t < p - 1 else pl
        upper[nb + t] = hi
        lower[nb + t] = lo
        if with_middle:
            middle[nb + t] = (hi + lo) * 0.5
    return end


@njit(cache=True)
def donchian_nb(
    high: np.ndarray, low: np.ndarray, period: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian channel: highest high, midpoint and lowest low of the last ``period`` bars.

    ``upper`` equals TA-Lib's ``MAX(high, period)`` and ``lower`` its ``MIN(low, period)``
    (lookback period-1). A bar counts as finite when both its high and low are. Returns
    ``(upper, middle, lower)``, the rows of ``out`` (shape ``(3, n)``) if given.
    """
    n = high.shape[0]
    if out is None:
        out = np.empty((3, n))
    upper = out[0]
    middle = out[1]
    lower = out[2]
    buf = np.empty(4 * period)
    i = 0
    while i < n:
        if not (np.isfinite(high[i]) and np.isfinite(low[i])):
            upper[i] = np.nan
            middle[i] = np.nan
            lower[i] = np.nan
            i += 1
            continue
        i = _hilo_run_nb(high, low, i, n, period, upper, middle, lower, buf)
    return upper, middle, lower


@njit(cache=True)
def rolling_vwap_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    period: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Rolling VWAP: ``sum(tp * volume) / sum(volume)`` over the last ``period`` bars with the
    typical price ``tp = (high + low + close) / 3``. NaN where every volume in the window is 0
    (counted exactly, so rounding residue of the running sums cannot pose as a price)."""
    n = high.shape[0]
    if out is None:
        out = np.empty(n)
    tpv = np.empty(n)  # typical price x volume, kept for the trailing subtraction
    reseed = max(period, RESEED_EVERY)
    count = 0
    since = 0
    sum_pv = 0.0
    sum_v = 0.0
    traded = 0  # bars with non-zero volume in the window
    for i in range(n):
        h = high[i]
        lo = low[i]
        c = close[i]
        v = volume[i]
        if not (np.isfinite(h) and np.isfinite(lo) and np.isfinite(c) and np.isfinite(v)):
            out[i] = np.nan
            tpv[i] = np.nan
            count = 0
            sum_pv = 0.0
            sum_v = 0.0
            traded = 0
            continue
        pv = (h + lo + c) / 3.0 * v
        tpv[i] = pv
        count += 1
        traded += v != 0.0
        if count <= period:
            sum_pv += pv
            sum_v += v
            since = 0
            if count < period:
                out[i] = np.nan
                continue
        else:
            traded -= volume[i - period] != 0.0
            since += 1
            if since == reseed:
                since = 0
                sum_pv = 0.0
                sum_v = 0.0
                for j in range(i - period + 1, i + 1):
                    sum_pv += tpv[j]
                    sum_v += volume[j]
            else:
                sum_pv += pv - tpv[i - period]
                sum_v += v - volume[i - period]
        out[i] = sum_pv / sum_v if traded > 0 else np.nan
    return out


@njit(cache=True)
def _quantile_of_sorted_nb(buf: np.ndarray, m: int, q: float) -> float:
    """Linear-interpolation quantile of the sorted ``buf[:m]`` (pandas' ``linear``)."""
    pos = q * (m - 1)
    lo = int(pos)
    if lo >= m - 1:
        return buf[m - 1]
    frac = pos - lo
    if frac == 0.0:
        return buf[lo]
    a = buf[lo]
    return a + (buf[lo + 1] - a) * frac


@njit(cache=True)
def rolling_quantiles_nb(
    x: np.ndarray, period: int, qs: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Rolling quantiles of the last ``period`` values, one row per entry of ``qs``.

    Interpolation is linear between order statistics (pandas ``rolling().quantile()``'s
    default). Returns ``out``, shape ``(len(qs), len(x))``; lookback period-1.
    """
    n = x.shape[0]
    nq = qs.shape[0]
    if out is None:
        out = np.empty((nq, n))
    buf = np.empty(period)  # the current window, sorted ascending
    m = 0
    for i in range(n):
        v = x[i]
        if not np.isfinite(v):
            for k in range(nq):
                out[k, i] = np.nan
            m = 0
            continue
        if m < period:
            # Insert v into buf[:m].
            j = m
            while j > 0 and buf[j - 1] > v:
                buf[j] = buf[j - 1]
                j -= 1
            buf[j] = v
            m += 1
        else:
            # Replace the value leaving the window by v and restore the order.
            old = x[i - period]
            j = np.searchsorted(buf, old)  # buf[j] == old: the window holds it
            if v > old:
                while j + 1 < period and buf[j + 1] < v:
                    buf[j] = buf[j + 1]
                    j += 1
            else:
                while j > 0 and buf[j - 1] > v:
                    buf[j] = buf[j - 1]
                    j -= 1
            buf[j] = v
        if m < period:
            for k in range(nq):
                out[k, i] = np.nan
        else:
            for k in range(nq):
                out[k, i] = _quantile_of_sorted_nb(buf, m, qs[k])
    return out
