"""Numba kernels behind :mod:`quantum_trading.risk.measures` (arrays in, arrays out).

Conventions shared by every kernel:

- Returns are per-bar simple returns; several series are passed as the rows of a C-contiguous
  ``(n_series, n_obs)`` array, so that each series is contiguous.
- ``p`` is the tail probability ``1 - alpha`` (0.01 for 99% VaR).
- VaR and ES come out as positive loss fractions: ``var = -Q(p)`` and
  ``es = -(1/p) * integral_0^p Q(u) du`` where ``Q`` is the quantile function of the
  (empirical, rescaled or simulated) returns. Two empirical quantile functions are offered:
  ``linear=False`` is the step function of the order statistics (numpy's ``"inverted_cdf"``),
  ``linear=True`` the piecewise-linear one (numpy's default ``"linear"``).
- Inputs are assumed finite; the Python layer checks them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "NU_MAX",
    "NU_MIN",
    "digamma_nb",
    "fhs_var_es_nb",
    "historical_var_es_nb",
    "moments_nb",
    "rolling_fhs_nb",
    "rolling_historical_nb",
    "rolling_moments_nb",
    "rolling_t_mle_nb",
    "select_nb",
    "t_fit_mle_nb",
    "tail_count_nb",
    "tail_var_es_nb",
    "trigamma_nb",
]

NU_MIN = 1.1
"""Smallest Student-t degrees of freedom a fit may return (ES needs dof > 1)."""
NU_MAX = 1e4
"""Largest Student-t degrees of freedom a fit may return (a t(10,000) is Gaussian to ~1e-4)."""

_TAIL_EPS = 1e-9
# bounds on the squared scale of the standardised data (variance 1): a sample with a mass
# point (many equal returns) drives the t likelihood to a zero scale, which is cut here
_MIN_SCALE2 = 1e-12
_MAX_SCALE2 = 1e4


# --------------------------------------------------------------------------- selection / tails
@njit(cache=True)
def select_nb(a: np.ndarray, k: int) -> None:
    """Reorder ``a`` in place so that ``a[k]`` is its ``k``-th smallest (0-based) value.

    Afterwards ``a[:k] <= a[k] <= a[k + 1:]`` (Hoare quickselect, median-of-three pivot).
    """
    lo = 0
    hi = a.shape[0] - 1
    while hi > lo:
        if hi - lo < 16:
            for i in range(lo + 1, hi + 1):
                v = a[i]
                j = i - 1
                while j >= lo and a[j] > v:
                    a[j + 1] = a[j]
                    j -= 1
                a[j + 1] = v
            return
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(cache=True)
def tail_count_nb(n: int, p: float) -> int:
    """``ceil(n * p)`` with a 1e-9 tolerance, clipped to ``[1, n]``.

    The tolerance makes decimal levels behave as written: ``n = 100, p = 1 - 0.99`` gives 1,
    although ``100 * (1 - 0.99)`` is ``1.0000000000000009`` in floating point.
    """
    k = math.ceil(n * p - _TAIL_EPS)
    if k < 1:
        k = 1
    if k > n:
        k = n
    return k


@njit(cache=True)
def tail_var_es_nb(buf: np.ndarray, p: float, linear: bool) -> tuple[float, float]:
    """VaR and ES of the sample in ``buf`` (reordered in place) at tail probability ``p``.

    ``linear=False``: ``k = ceil(n p)``, ``var = -r_(k)`` (the k-th smallest return) and
    ``es = -(r_(1) + ... + r_(k-1) + (n p - k + 1) r_(k)) / (n p)`` (Acerbi & Tasche 2002;
    the mean of the k smallest returns when ``n p`` is an integer).
    ``linear=True`` (needs ``n >= 2``): ``h = (n - 1) p``, ``j = floor(h)``, ``f = h - j``,
    ``var = -(r_(j+1) + f (r_(j+2) - r_(j+1)))`` (numpy's ``linear``) and ``es`` the exact
    average of that piecewise-linear quantile function over ``[0, p]``.
    """
    n = buf.shape[0]
    if not linear:
        x = n * p
        k = tail_count_nb(n, p)
        select_nb(buf, k - 1)
        q = buf[k - 1]
        total = 0.0
        for i in range(k - 1):
            total += buf[i]
        return -q, -(total + (x - (k - 1)) * q) / x
    h = (n - 1) * p
    j = math.floor(h)
    if j > n - 2:
        j = n - 2
    f = h - j
    select_nb(buf, j + 1)
    upper = buf[j + 1]
    total = 0.0
    lowest = buf[0]
    s_j = buf[0]
    for i in range(j + 1):
        v = buf[i]
        total += v
        if v < lowest:
            lowest = v
        if v > s_j:
            s_j = v
    q = s_j + f * (upper - s_j)
    integral = (total - 0.5 * (lowest + s_j) + 0.5 * f * (s_j + q)) / (n - 1)
    return -q, -integral / p


@njit(cache=True)
def _sorted_tail_nb(s: np.ndarray, p: float, linear: bool) -> tuple[float, float]:
    """:func:`tail_var_es_nb` for an already sorted sample (no reordering)."""
    n = s.shape[0]
    if not linear:
        x = n * p
        k = tail_count_nb(n, p)
        q = s[k - 1]
        total = 0.0
        for i in range(k - 1):
            total += s[i]
        return -q, -(total + (x - (k - 1)) * q) / x
    h = (n - 1) * p
    j = math.floor(h)
    if j > n - 2:
        j = n - 2
    f = h - j
    total = 0.0
    for i in range(j + 1):
        total += s[i]
    q = s[j] + f * (s[j + 1] - s[j])
    integral = (total - 0.5 * (s[0] + s[j]) + 0.5 * f * (s[j] + q)) / (n - 1)
    return -q, -integral / p


@njit(cache=True)
def historical_var_es_nb(x: np.ndarray, p: float, linear: bool, out: np.ndarray) -> np.ndarray:
    """Historical VaR (``out[0]``) and ES (``out[1]``) of each row of ``x`` (``(k, n)``)."""
    buf = np.empty(x.shape[1])
    for j in range(x.shape[0]):
        buf[:] = x[j]
        v, e = tail_var_es_nb(buf, p, linear)
        out[0, j] = v
        out[1, j] = e
    return out


# --------------------------------------------------------------------------- moments
@njit(cache=True)
def _moments_1d(x: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, standard deviation (ddof 1), skewness and excess kurtosis (biased, as scipy's
    defaults) of ``x`` by two passes. A constant sample has skewness and kurtosis 0."""
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        total += x[i]
    mean = total / n
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for i in range(n):
        d = x[i] - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    m2 /= n
    m3 /= n
    m4 /= n
    std = math.sqrt(m2 * n / (n - 1)) if n > 1 else 0.0
    if m2 > 0.0:
        skew = m3 / m2**1.5
        kurt = m4 / (m2 * m2) - 3.0
    else:
        skew = 0.0
        kurt = 0.0
    return mean, std, skew, kurt


@njit(cache=True)
def moments_nb(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Mean, std (ddof 1), skewness, excess kurtosis of each row of ``x`` into ``out[:4]``."""
    for j in range(x.shape[0]):
        m, s, sk, ku = _moments_1d(x[j])
        out[0, j] = m
        out[1, j] = s
        out[2, j] = sk
        out[3, j] = ku
    return out


@njit(cache=True)
def rolling_moments_nb(x: np.ndarray, window: int, out: np.ndarray) -> np.ndarray:
    """:func:`moments_nb` of ``x[t - window + 1 : t + 1]`` at each ``t`` (NaN before)."""
    n = x.shape[0]
    for t in range(n):
        if t < window - 1:
            for r in range(4):
                out[r, t] = np.nan
            continue
        m, s, sk, ku = _moments_1d(x[t - window + 1 : t + 1])
        out[0, t] = m
        out[1, t] = s
        out[2, t] = sk
        out[3, t] = ku
    return out


# --------------------------------------------------------------------------- FHS
@njit(cache=True)
def _fhs_scenarios(x: np.ndarray, lam: float, out: np.ndarray) -> None:
    """EWMA-filtered returns rescaled to the next bar's volatility, written into ``out``.

    ``v_0 = mean(x**2)``; ``z_t = x_t / sqrt(v_t)``; ``v_{t+1} = lam v_t + (1 - lam) x_t**2``;
    ``out_t = z_t * sqrt(v_n)`` (``z_t = 0`` where ``v_t = 0``).
    """
    n = x.shape[0]
    v = 0.0
    for i in range(n):
        v += x[i] * x[i]
    v /= n
    for i in range(n):
        sd = math.sqrt(v)
        out[i] = x[i] / sd if sd > 0.0 else 0.0
        v = lam * v + (1.0 - lam) * x[i] * x[i]
    sd_next = math.sqrt(v)
    for i in range(n):
        out[i] *= sd_next


@njit(cache=True)
def fhs_var_es_nb(x: np.ndarray, p: float, linear: bool, lam: float, out: np.ndarray) -> np.ndarray:
    """Filtered-historical VaR (``out[0]``) and ES (``out[1]``) of each row of ``x``."""
    buf = np.empty(x.shape[1])
    for j in range(x.shape[0]):
        _fhs_scenarios(x[j], lam, buf)
        v, e = tail_var_es_nb(buf, p, linear)
        out[0, j] = v
        out[1, j] = e
    return out


@njit(cache=True)
def rolling_fhs_nb(
    x: np.ndarray, window: int, p: float, linear: bool, lam: float, out: np.ndarray
) -> np.ndarray:
    """:func:`fhs_var_es_nb` of ``x[t - window + 1 : t + 1]`` at each ``t`` (NaN before)."""
    n = x.shape[0]
    buf = np.empty(window)
    for t in range(n):
        if t < window - 1:
            out[0, t] = np.nan
            out[1, t] = np.nan
            continue
        _fhs_scenarios(x[t - window + 1 : t + 1], lam, buf)
        v, e = tail_var_es_nb(buf, p, linear)
        out[0, t] = v
        out[1, t] = e
    return out


# --------------------------------------------------------------------------- rolling historical
@njit(cache=True)
def rolling_historical_nb(
    x: np.ndarray, window: int, p: float, linear: bool, out: np.ndarray
) -> np.ndarray:
    """Historical VaR/ES of ``x[t - window + 1 : t + 1]`` at each ``t`` (NaN before).

    Keeps the window sorted (one binary-search removal and insertion per bar), so each bar
    costs O(window) moves and the tail sum, with the same numbers as the one-window kernel.
    """
    n = x.shape[0]
    s = np.empty(window)
    filled = 0
    for t in range(n):
        if t >= window:
            old = x[t - window]
            pos = np.searchsorted(s[:filled], old)
            for i in range(pos, filled - 1):
                s[i] = s[i + 1]
            filled -= 1
        new = x[t]
        pos = np.searchsorted(s[:filled], new)
        for i in range(filled, pos, -1):
            s[i] = s[i - 1]
        s[pos] = new
        filled += 1
        if filled < window:
            out[0, t] = np.nan
            out[1, t] = np.nan
            continue
        v, e = _sorted_tail_nb(s, p, linear)
        out[0, t] = v
        out[1, t] = e
    return out


# --------------------------------------------------------------------------- Student-t MLE
@njit(cache=True)
def digamma_nb(x: float) -> float:
    """Digamma function for ``x > 0`` (recurrence to ``x >= 10``, then the asymptotic series)."""
    r = 0.0
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))))
    return r + math.log(x) - 0.5 / x - series


@njit(cache=True)
def trigamma_nb(x: float) -> float:
    """Trigamma function for ``x > 0`` (recurrence to ``x >= 10``, then the asymptotic series)."""
    r = 0.0
    while x < 10.0:
        r += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    series = 1 / 6 - f * (1 / 30 - f * (1 / 42 - f * (1 / 30 - f * 5 / 66)))
    return r + 1.0 / x + 0.5 * f + f / x * series


@njit(cache=True)
def _t_pass(y: np.ndarray, mu: float, ls: float, lnu: float, grad: np.ndarray, hess: np.ndarray):
    """Log-likelihood of a location-scale t at ``(mu, log s, log nu)`` (``s`` = scale**2), and
    its gradient and Hessian in those coordinates. One pass over ``y``."""
    n = y.shape[0]
    s = math.exp(ls)
    nu = math.exp(lnu)
    v = nu * s
    a = 0.5 * (nu + 1.0)
    sa = 0.0  # sum log1p(u)
    sb = 0.0  # sum w, w = 1 / (1 + u), u = r^2 / (nu s)
    sc = 0.0  # sum w^2
    sd = 0.0  # sum r w
    se = 0.0  # sum r w^2
    sf = 0.0  # sum r^2 w^2
    for i in range(n):
        r = y[i] - mu
        u = r * r / v
        w = 1.0 / (1.0 + u)
        w2 = w * w
        sa += math.log1p(u)
        sb += w
        sc += w2
        sd += r * w
        se += r * w2
        sf += r * r * w2
    loglik = n * (math.lgamma(a) - math.lgamma(0.5 * nu) - 0.5 * math.log(math.pi * v)) - a * sa
    d_nu = n * 0.5 * (digamma_nb(a) - digamma_nb(0.5 * nu) + 1.0) - 0.5 * sa - a / nu * sb
    d2_nu = (
        n * (0.25 * trigamma_nb(a) - 0.25 * trigamma_nb(0.5 * nu) + 0.5 / nu)
        - sb / nu
        + a * sc / (nu * nu)
    )
    grad[0] = 2.0 * a * sd / v
    grad[1] = 0.5 * n * nu - a * sb
    grad[2] = nu * d_nu
    hess[0, 0] = 2.0 * a * (2.0 * sf / (v * v) - sb / v)
    hess[0, 1] = -2.0 * a * se / v
    hess[0, 2] = (nu * sd - 2.0 * a * se) / v
    hess[1, 1] = a * (sc - sb)
    hess[1, 2] = 0.5 * n * nu - (0.5 * nu + a) * sb + a * sc
    hess[2, 2] = nu * nu * d2_nu + nu * d_nu
    hess[1, 0] = hess[0, 1]
    hess[2, 0] = hess[0, 2]
    hess[2, 1] = hess[1, 2]
    return loglik


@njit(cache=True)
def _newton_direction(grad: np.ndarray, hess: np.ndarray, free: np.ndarray, d: np.ndarray) -> float:
    """Solve ``(-H + lambda I) d = g`` over the coordinates where ``free`` is True (``d = 0``
    elsewhere) by Cholesky; lambda grows until the matrix is positive definite. Returns the
    Newton decrement ``g . d``."""
    idx = np.empty(3, dtype=np.int64)
    m_free = 0
    for i in range(3):
        d[i] = 0.0
        if free[i]:
            idx[m_free] = i
            m_free += 1
    if m_free == 0:
        return 0.0
    m = np.empty((3, 3))
    chol = np.zeros((3, 3))
    scale = 0.0
    for a in range(m_free):
        scale = max(scale, abs(hess[idx[a], idx[a]]))
    lam = 0.0
    for _ in range(80):
        for a in range(m_free):
            for b in range(m_free):
                m[a, b] = -hess[idx[a], idx[b]]
            m[a, a] += lam
        ok = True
        for a in range(m_free):
            for b in range(a + 1):
                acc = m[a, b]
                for k in range(b):
                    acc -= chol[a, k] * chol[b, k]
                if a == b:
                    if acc <= 0.0:
                        ok = False
                        break
                    chol[a, a] = math.sqrt(acc)
                else:
                    chol[a, b] = acc / chol[b, b]
            if not ok:
                break
        if ok:
            break
        lam = max(2.0 * lam, 1e-10 * (1.0 + scale))
    tmp = np.zeros(3)
    sol = np.zeros(3)
    for a in range(m_free):
        acc = grad[idx[a]]
        for k in range(a):
            acc -= chol[a, k] * tmp[k]
        tmp[a] = acc / chol[a, a]
    for a in range(m_free - 1, -1, -1):
        acc = tmp[a]
        for k in range(a + 1, m_free):
            acc -= chol[k, a] * sol[k]
        sol[a] = acc / chol[a, a]
    dec = 0.0
    for a in range(m_free):
        d[idx[a]] = sol[a]
        dec += grad[idx[a]] * sol[a]
    return dec


@njit(cache=True)
def _has_majority(x: np.ndarray) -> bool:
    """Whether one value fills more than half of ``x`` (Boyer-Moore majority vote)."""
    candidate = x[0]
    count = 0
    for i in range(x.shape[0]):
        if count == 0:
            candidate = x[i]
            count = 1
        elif x[i] == candidate:
            count += 1
        else:
            count -= 1
    total = 0
    for i in range(x.shape[0]):
        if x[i] == candidate:
            total += 1
    return 2 * total > x.shape[0]


@njit(cache=True)
def _t_mle_1d(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, int]:
    """Maximum-likelihood location, scale, dof and log-likelihood of a Student-t fitted to
    ``x`` (``y`` is a work buffer), and the number of Newton iterations (-1: not converged).

    When one value fills more than half of ``x`` the likelihood is unbounded, or nearly so,
    as the scale goes to 0 (unbounded once that share exceeds ``dof / (dof + 1)``); the
    method-of-moments fit is returned instead, with a NaN log-likelihood and -2 iterations.

    Damped Newton on ``(mu, log scale**2, log dof)`` of the standardised data with exact
    derivatives; dof is kept in ``[NU_MIN, NU_MAX]`` and the standardised scale in
    ``[1e-6, 100]`` (a bound is an active constraint: that coordinate is held while the
    gradient pushes outward). Starts from the method of moments.
    """
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        total += x[i]
    mean = total / n
    m2 = 0.0
    m4 = 0.0
    for i in range(n):
        d = x[i] - mean
        m2 += d * d
        m4 += d * d * d * d
    m2 /= n
    m4 /= n
    if m2 <= 0.0:
        return mean, 0.0, NU_MAX, np.inf, 0
    if _has_majority(x):
        # the likelihood grows without bound as the scale goes to 0: method of moments
        kurt = m4 / (m2 * m2) - 3.0
        nu = min(4.0 + 6.0 / kurt, NU_MAX) if kurt > 0.0 else NU_MAX
        std = math.sqrt(m2 * n / (n - 1))
        return mean, std * math.sqrt((nu - 2.0) / nu), nu, np.nan, -2
    sd = math.sqrt(m2)
    for i in range(n):
        y[i] = (x[i] - mean) / sd
    kurt = m4 / (m2 * m2) - 3.0
    nu0 = 4.0 + 6.0 / kurt if kurt > 0.06 else 100.0
    nu0 = min(max(nu0, 2.5), 100.0)
    lo_lnu = math.log(NU_MIN)
    hi_lnu = math.log(NU_MAX)
    lo_ls = math.log(_MIN_SCALE2)
    hi_ls = math.log(_MAX_SCALE2)
    free = np.ones(3, dtype=np.bool_)
    mu = 0.0
    ls = math.log((nu0 - 2.0) / nu0)
    lnu = math.log(nu0)
    grad = np.empty(3)
    hess = np.empty((3, 3))
    d = np.empty(3)
    ll = _t_pass(y, mu, ls, lnu, grad, hess)
    iters = -1
    g_new = np.empty(3)
    h_new = np.empty((3, 3))
    for it in range(200):
        free[1] = not ((ls <= lo_ls and grad[1] < 0.0) or (ls >= hi_ls and grad[1] > 0.0))
        free[2] = not ((lnu <= lo_lnu and grad[2] < 0.0) or (lnu >= hi_lnu and grad[2] > 0.0))
        dec = _newton_direction(grad, hess, free, d)
        if dec <= 1e-12 * n:
            iters = it
            break
        step = 1.0
        accepted = False
        for _ in range(40):
            mu_n = mu + step * d[0]
            ls_n = min(max(ls + step * d[1], lo_ls), hi_ls)
            lnu_n = min(max(lnu + step * d[2], lo_lnu), hi_lnu)
            ll_n = _t_pass(y, mu_n, ls_n, lnu_n, g_new, h_new)
            if ll_n >= ll - 1e-14 * abs(ll) and math.isfinite(ll_n):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            iters = it
            break
        mu, ls, lnu, ll = mu_n, ls_n, lnu_n, ll_n
        grad[:] = g_new
        hess[:, :] = h_new
    loc = mean + sd * mu
    scale = sd * math.exp(0.5 * ls)
    return loc, scale, math.exp(lnu), ll - n * math.log(sd), iters


@njit(cache=True)
def t_fit_mle_nb(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Student-t MLE of each row of ``x``: ``out[0..4]`` = loc, scale, dof, loglik, iterations."""
    y = np.empty(x.shape[1])
    for j in range(x.shape[0]):
        loc, scale, nu, ll, iters = _t_mle_1d(x[j], y)
        out[0, j] = loc
        out[1, j] = scale
        out[2, j] = nu
        out[3, j] = ll
        out[4, j] = iters
    return out


@njit(cache=True)
def rolling_t_mle_nb(x: np.ndarray, window: int, out: np.ndarray) -> np.ndarray:
    """:func:`t_fit_mle_nb` of ``x[t - window + 1 : t + 1]`` at each ``t`` (NaN before)."""
    y = np.empty(window)
    for t in range(x.shape[0]):
        if t < window - 1:
            for r in range(5):
                out[r, t] = np.nan
            continue
        loc, scale, nu, ll, iters = _t_mle_1d(x[t - window + 1 : t + 1], y)
        out[0, t] = loc
        out[1, t] = scale
        out[2, t] = nu
        out[3, t] = ll
        out[4, t] = iters
    return out
