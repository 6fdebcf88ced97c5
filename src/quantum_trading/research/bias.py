"""Bias checks: refuse look-ahead before optimising, and test whether an edge beats chance.

Two guards against fooling oneself:

* :func:`require_causal` runs the causality check
  (:func:`~quantum_trading.strategies.check_causality`: signals computed on ``data[:t]`` must
  equal the first t signals computed on all data) and refuses a strategy that looks ahead with
  a :class:`LookAheadError` naming the first bar whose decision changed. The optimisers call
  it before spending any time on a parameter search.
* :func:`permutation_test` asks whether a strategy's backtest statistic could come from a
  market without the structure the strategy claims to exploit: it rebuilds price paths from
  the same bars in a random order (:func:`permuted_bars`), runs the same strategy and backtest
  on each, and reports the permutation p-value ``(1 + #{null >= actual}) / (1 + n)``.

Timing: permuting moves whole bars. Each bar keeps its shape relative to its own open
(gap from the previous close, close, high and low as log ratios to the open, and its volume);
only the order of bars 1..T-1 changes (bar 0 anchors the price level). A strategy's decision
at bar t's close still fills at bar t+1's open in every rebuilt path.

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=400, freq="1h", tz="UTC")
>>> close = pd.Series(100.0 * np.exp(np.cumsum(np.full(400, 0.001))), index=idx)
>>> df = pd.DataFrame({"open": close.shift(1).fillna(100.0), "high": close * 1.002,
...                    "low": close.shift(1).fillna(100.0) * 0.998, "close": close,
...                    "volume": 1.0})
>>> require_causal("trend_following", df, params={"fast": 10, "slow": 40})
(50, 100, 150, 200, 250, 300, 350, 399)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantum_trading.backtest import Backtest, BacktestResult
from quantum_trading.errors import ConfigError
from quantum_trading.strategies import (
    CausalityError,
    MarketData,
    Strategy,
    check_causality,
    resolve_strategy,
)

__all__ = [
    "PERMUTATION_METHODS",
    "LookAheadError",
    "PermutationTestResult",
    "permutation_test",
    "permuted_bars",
    "require_causal",
]

PermutationMethod = Literal["returns_shuffle", "block_shuffle", "block_bootstrap"]
PERMUTATION_METHODS: tuple[str, ...] = ("returns_shuffle", "block_shuffle", "block_bootstrap")
"""How :func:`permuted_bars` reorders bars 1..T-1:

* ``"returns_shuffle"``: a uniform random permutation of the bars (destroys all serial
  dependence: trends, mean reversion, volatility clustering; keeps the return distribution
  and the total log return exactly);
* ``"block_shuffle"``: the bars cut into consecutive blocks of ``block_size`` (the last one
  shorter), the blocks put in a random order (keeps dependence shorter than a block and the
  total log return);
* ``"block_bootstrap"``: the circular moving-block bootstrap: blocks of ``block_size``
  consecutive bars drawn with replacement from random starts (wrapping around) until T-1
  bars are filled (keeps short-range dependence; the total return varies from path to path).
"""

_PRICES = ("open", "high", "low", "close")


class LookAheadError(CausalityError):
    """A strategy refused before optimisation because it looks ahead.

    The same attributes as :class:`~quantum_trading.strategies.CausalityError` (``strategy``,
    ``position`` and ``timestamp`` of the first bar whose signal changed when later bars were
    removed, ``column``, ``cut``, ``full_value``, ``prefix_value``); the message says the
    strategy was refused.

    >>> err = LookAheadError("peek", position=9, timestamp=None, column="target[X]", cut=10,
    ...                      full_value=1.0, prefix_value=0.0)
    >>> isinstance(err, CausalityError), err.position
    (True, 9)
    """

    def __init__(self, strategy: str, **fields: Any) -> None:
        super().__init__(strategy, **fields)
        self.problem = f"refused (look-ahead): {self.problem}"
        self.args = (f"strategy {strategy!r}: {self.problem}",)

    @classmethod
    def from_causality(cls, error: CausalityError) -> LookAheadError:
        """The :class:`LookAheadError` carrying ``error``'s bar, column and values."""
        new = cls.__new__(cls)
        new.__dict__.update(error.__dict__)
        new.problem = f"refused (look-ahead): {error.problem}"
        new.args = (f"strategy {error.strategy!r}: {new.problem}",)
        return new


def require_causal(
    strategy: Strategy | str | Callable[..., Any],
    data: MarketData,
    *,
    params: Mapping[str, Any] | None = None,
    cut_points: int | Sequence[int | pd.Timestamp] = 8,
) -> tuple[int, ...]:
    """Refuse a strategy that looks ahead; run this before any optimisation.

    Runs :func:`~quantum_trading.strategies.check_causality`: the signals computed on each
    prefix ``data[:t]`` must equal the first t rows computed on all data (the decision for bar
    t may use bars up to t's close only).

    Parameters
    ----------
    strategy:
        A :class:`~quantum_trading.strategies.Strategy`, a registered name or a plain
        function ``f(df, **params) -> Series``.
    data:
        One asset's OHLCV frame or ``{symbol: frame}`` on one index.
    params:
        Strategy parameters (default: its defaults). An optimiser should check the
        parameters whose look-back reaches furthest, or a few points of its space.
    cut_points:
        Prefix lengths to test (see :func:`~quantum_trading.strategies.check_causality`);
        an int n spreads n cuts evenly and adds ``len(data) - 1``.

    Returns
    -------
    tuple of int
        The prefix lengths checked.

    Raises
    ------
    LookAheadError
        The strategy looks ahead; ``position`` / ``timestamp`` name the first bar whose
        signal changed when later bars were removed (a subclass of ``CausalityError``).

    >>> import pandas as pd
    >>> from quantum_trading.strategies import strategy_from_function
    >>> idx = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    >>> df = pd.DataFrame({"close": [100.0 + i for i in range(50)]}, index=idx)
    >>> peek = strategy_from_function(
    ...     lambda df: (df["close"].shift(-1) > df["close"]).astype(float), name="peek")
    >>> require_causal(peek, df, cut_points=[20, 40])
    Traceback (most recent call last):
    ...
    quantum_trading.research.bias.LookAheadError: strategy 'peek': refused (look-ahead): not causal: target[peek] at bar 19 (2024-01-01 19:00:00+00:00) differs: 1.0 on all data but 0.0 on the first 20 bars
    """
    resolved = resolve_strategy(strategy)
    try:
        return check_causality(resolved, data, params=params, cut_points=cut_points)
    except LookAheadError:
        raise
    except CausalityError as exc:
        raise LookAheadError.from_causality(exc) from exc


# --------------------------------------------------------------------------------------------
# Rebuilding price paths from permuted bars
# --------------------------------------------------------------------------------------------

def _bar_order(n: int, method: str, block_size: int, rng: np.random.Generator) -> np.ndarray:
    """Source bar (1..n-1) for each position 1..n-1 of the rebuilt path."""
    m = n - 1
    if method == "returns_shuffle":
        return rng.permutation(m) + 1
    if method == "block_shuffle":
        starts = np.arange(0, m, block_size)
        blocks = [np.arange(s, min(s + block_size, m)) for s in starts[rng.permutation(len(starts))]]
        return np.concatenate(blocks) + 1
    # circular moving-block bootstrap
    n_blocks = -(-m // block_size)
    starts = rng.integers(0, m, size=n_blocks)
    order = (starts[:, None] + np.arange(block_size)[None, :]) % m
    return order.reshape(-1)[:m] + 1


def _rebuild(frame: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """``frame`` with bars 1..n-1 replaced by the bars ``order`` (shapes kept, path rebuilt)."""
    o, h, lo, c = (frame[k].to_numpy(dtype=np.float64) for k in _PRICES)
    gap = np.log(o[1:] / c[:-1])                      # gap[t-1]: open t vs close t-1
    body, top, bottom = np.log(c / o), np.log(h / o), np.log(lo / o)
    src = np.asarray(order, dtype=np.int64)
    log_close = np.empty(len(o))
    log_close[0] = math.log(c[0])
    log_close[1:] = log_close[0] + np.cumsum(gap[src - 1] + body[src])
    log_open = np.empty(len(o))
    log_open[0] = math.log(o[0])
    log_open[1:] = log_close[1:] - body[src]
    full = np.r_[0, src]
    new_open, new_close = np.exp(log_open), np.exp(log_close)
    out = frame.copy()
    out["open"] = new_open
    out["close"] = new_close
    out["high"] = np.maximum(np.exp(log_open + top[full]), np.maximum(new_open, new_close))
    out["low"] = np.minimum(np.exp(log_open + bottom[full]), np.minimum(new_open, new_close))
    if "volume" in frame.columns:
        out["volume"] = frame["volume"].to_numpy()[full]
    if "mark_price" in frame.columns:  # the bar's mark/close ratio (premium) moves with it
        ratio = frame["mark_price"].to_numpy(dtype=np.float64) / c
        out["mark_price"] = ratio[full] * new_close
    return out


def _check_bars(frame: Any, name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"{name} must be an OHLCV DataFrame, got {type(frame).__name__}")
    missing = [k for k in _PRICES if k not in frame.columns]
    if missing:
        raise ConfigError(f"{name} has no column {', '.join(missing)}")
    prices = frame[list(_PRICES)].to_numpy(dtype=np.float64)
    if not (np.isfinite(prices).all() and (prices > 0).all()):
        raise ConfigError(f"{name}: prices must be finite and > 0")
    if len(frame) < 3:
        raise ConfigError(f"{name} needs at least 3 bars, got {len(frame)}")


def _check_method(method: str, block_size: int | None, n: int) -> int:
    if method not in PERMUTATION_METHODS:
        raise ConfigError(f"method must be one of {', '.join(PERMUTATION_METHODS)}, "
                          f"got {method!r}")
    if block_size is None:
        return max(1, round((n - 1) ** (1.0 / 3.0)))
    if not (isinstance(block_size, int | np.integer) and not isinstance(block_size, bool)
            and 1 <= block_size <= n - 1):
        raise ConfigError(f"block_size must be an integer in [1, {n - 1}] (bars), "
                          f"got {block_size!r}")
    return int(block_size)


def _frames(data: MarketData) -> dict[str, pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        _check_bars(data, "data")
        return {"": data}
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("data must be an OHLCV DataFrame or a non-empty dict symbol -> frame")
    first = next(iter(data.values()))
    for sym, frame in data.items():
        _check_bars(frame, f"data[{sym!r}]")
        if not frame.index.equals(first.index):
            raise ConfigError(f"data[{sym!r}] must share one bar index with the other symbols")
    return dict(data)


def _apply(data: MarketData, frames: dict[str, pd.DataFrame], order: np.ndarray) -> MarketData:
    if isinstance(data, pd.DataFrame):
        return _rebuild(data, order)
    return {sym: _rebuild(frame, order) for sym, frame in frames.items()}


def permuted_bars(
    data: MarketData,
    *,
    seed: int | np.random.Generator = 0,
    method: PermutationMethod = "returns_shuffle",
    block_size: int | None = None,
) -> MarketData:
    """One price path rebuilt from ``data``'s bars in a random order.

    Each bar is cut into its log gap from the previous close ``ln(o_t / c_{t-1})``, body
    ``ln(c_t / o_t)`` and extremes ``ln(h_t / o_t)``, ``ln(l_t / o_t)``; bars 1..T-1 are
    reordered (see :data:`PERMUTATION_METHODS`) and the path is rebuilt from bar 0, which
    stays as it is. So every bar keeps its shape relative to its open, ``high >= max(open,
    close)`` and ``low <= min(open, close)`` hold, and with the two shuffles the last close is
    unchanged (the log returns are only reordered). ``volume`` and a ``mark_price`` column (as
    a ratio to the close) move with their bar; other columns (e.g. ``funding_rate``) and the
    index stay in place. Several assets (a dict) get the same order, keeping their
    cross-correlation.

    Parameters
    ----------
    data:
        One asset's OHLCV frame or ``{symbol: frame}`` on one index; prices > 0.
    seed:
        Seed (integer >= 0) or a numpy ``Generator``.
    method:
        ``"returns_shuffle"`` (default), ``"block_shuffle"`` or ``"block_bootstrap"``.
    block_size:
        Bars per block for the block methods; default ``round((T - 1) ** (1/3))``.

    Returns
    -------
    pd.DataFrame or dict
        The same shape, index and columns as ``data``.

    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    >>> c = np.array([100.0, 101.0, 99.0, 102.0, 103.0])
    >>> df = pd.DataFrame({"open": np.r_[100.0, c[:-1]], "high": c + 1, "low": c - 2,
    ...                    "close": c, "volume": [1.0, 2, 3, 4, 5]}, index=idx)
    >>> out = permuted_bars(df, seed=1)
    >>> round(float(out["close"].iloc[-1]), 9), sorted(out["volume"]) == sorted(df["volume"])
    (103.0, True)
    """
    frames = _frames(data)
    n = len(next(iter(frames.values())))
    size = _check_method(method, block_size, n)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return _apply(data, frames, _bar_order(n, method, size, rng))


# --------------------------------------------------------------------------------------------
# The permutation test
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PermutationTestResult:
    """What :func:`permutation_test` found.

    Attributes
    ----------
    statistic:
        Name of the statistic (a stats key such as ``"Sharpe Ratio"``, or the function's name).
    method:
        How the bars were reordered (:data:`PERMUTATION_METHODS`).
    actual:
        The statistic of the backtest on the real data.
    null:
        The statistic on each rebuilt path, in permutation order (NaN where undefined, e.g.
        a Sharpe ratio without any trade).
    p_value:
        ``(1 + #{null >= actual}) / (1 + n_valid)`` over the finite null values: the
        probability, under "the bar order carries no information", of a statistic at least as
        good; in ``(0, 1]``. NaN when ``actual`` is NaN.
    n_permutations, n_valid:
        Paths run, and paths whose statistic was finite.
    block_size:
        Bars per block (None for ``"returns_shuffle"``).
    seed:
        The seed that makes the test reproducible.
    """

    statistic: str
    method: str
    actual: float
    null: np.ndarray = field(repr=False)
    p_value: float
    n_permutations: int
    n_valid: int
    block_size: int | None
    seed: int

    def summary(self) -> str:
        """One line: the statistic, its p-value and where the null distribution lies."""
        finite = self.null[np.isfinite(self.null)]
        q = np.quantile(finite, [0.05, 0.5, 0.95]) if finite.size else [math.nan] * 3
        return (f"{self.statistic} = {self.actual:.4g}, p = {self.p_value:.4f} over "
                f"{self.n_valid} {self.method} paths (null 5%/50%/95%: {q[0]:.3g} / {q[1]:.3g} "
                f"/ {q[2]:.3g})")


def _statistic(result: BacktestResult, statistic: str | Callable[[BacktestResult], float]
               ) -> float:
    if callable(statistic):
        value = statistic(result)
    else:
        value = result.stats[statistic]
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"statistic {statistic!r} is not a number ({value!r})") from None


def permutation_test(
    strategy: Strategy | str | Callable[..., Any],
    data: MarketData,
    *,
    params: Mapping[str, Any] | None = None,
    n_permutations: int = 200,
    seed: int = 0,
    statistic: str | Callable[[BacktestResult], float] = "Sharpe Ratio",
    method: PermutationMethod = "returns_shuffle",
    block_size: int | None = None,
    backtest_kwargs: Mapping[str, Any] | None = None,
) -> PermutationTestResult:
    """Permutation test of a strategy's edge: is its statistic better than on shuffled bars?

    The strategy is backtested on ``data`` and on ``n_permutations`` paths rebuilt from the
    same bars in a random order (:func:`permuted_bars`): same return distribution, same
    costs and simulator, but no information in the order of bars (or, with the block methods,
    none beyond a block). An edge that comes from timing (trends, mean reversion, any pattern
    in time) should beat nearly all of them; one that comes from luck should not.

    Parameters
    ----------
    strategy:
        A :class:`~quantum_trading.strategies.Strategy`, a registered name or a function.
    data:
        One asset's OHLCV frame or ``{symbol: frame}`` on one index.
    params:
        Strategy parameters (default: its defaults), the same on every path.
    n_permutations:
        Rebuilt paths, 1..100,000 (default 200; the smallest attainable p-value is
        ``1 / (1 + n_permutations)``).
    seed:
        Seed of the permutations (integer >= 0); the same seed gives the same result.
    statistic:
        Key of :attr:`BacktestResult.stats` (default ``"Sharpe Ratio"``; larger = better) or
        a function ``f(result) -> float``.
    method:
        ``"returns_shuffle"`` (default), ``"block_shuffle"`` or ``"block_bootstrap"``
        (:data:`PERMUTATION_METHODS`).
    block_size:
        Bars per block for the block methods; default ``round((T - 1) ** (1/3))``.
    backtest_kwargs:
        More arguments of :class:`~quantum_trading.backtest.Backtest` (``costs``,
        ``account``, ``instrument``, ``funding`` ...); by default ``risk=None`` and
        ``benchmark=None`` (faster; pass them here to change that).

    Returns
    -------
    PermutationTestResult
        The actual statistic, the null distribution and the p-value
        ``(1 + #{null >= actual}) / (1 + n_valid)``.

    Raises
    ------
    ConfigError
        A bad argument (named), or a statistic that is not a number.

    Notes
    -----
    About 20 ms per path for 2,000 one-hour bars (one backtest each), so 200 paths take a few
    seconds on one core. The test answers "does the order of bars matter to this strategy",
    not "will it make money": a long-only strategy's share of the drift is in the null too.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=600, seed=3).ohlcv["BTC/USDT:USDT"]
    >>> res = permutation_test("trend_following", bars, params={"fast": 10, "slow": 50},
    ...                        n_permutations=19, seed=1)
    >>> res.n_permutations, 0.0 < res.p_value <= 1.0
    (19, True)
    """
    if not (isinstance(n_permutations, int | np.integer) and not isinstance(n_permutations, bool)
            and 1 <= n_permutations <= 100_000):
        raise ConfigError(f"n_permutations must be an integer in [1, 100000], "
                          f"got {n_permutations!r}")
    if not (isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0):
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if not (callable(statistic) or isinstance(statistic, str)):
        raise ConfigError(f"statistic must be a stats key or a function, got {statistic!r}")
    frames = _frames(data)
    n = len(next(iter(frames.values())))
    size = _check_method(method, block_size, n)
    resolved = resolve_strategy(strategy)
    kwargs: dict[str, Any] = {"risk": None, "benchmark": None, **dict(backtest_kwargs or {})}
    for reserved in ("data", "strategy", "params"):
        if reserved in kwargs:
            raise ConfigError(f"backtest_kwargs must not contain {reserved!r}")

    def run(bars: MarketData) -> float:
        return _statistic(Backtest(bars, resolved, params=params, **kwargs).run(), statistic)

    actual_result = Backtest(data, resolved, params=params, **kwargs).run()
    if isinstance(statistic, str) and statistic not in actual_result.stats.index:
        raise ConfigError(f"statistic {statistic!r} is not a stats key (known: "
                          f"{', '.join(map(str, actual_result.stats.index))})")
    actual = _statistic(actual_result, statistic)
    rng = np.random.default_rng(int(seed))
    null = np.array([run(_apply(data, frames, _bar_order(n, method, size, rng)))
                     for _ in range(int(n_permutations))], dtype=np.float64)
    finite = null[np.isfinite(null)]
    p_value = (1.0 + float(np.sum(finite >= actual))) / (1.0 + finite.size) \
        if math.isfinite(actual) else math.nan
    name = statistic if isinstance(statistic, str) else getattr(statistic, "__name__", "custom")
    return PermutationTestResult(
        statistic=name, method=method, actual=actual, null=null, p_value=p_value,
        n_permutations=int(n_permutations), n_valid=int(finite.size),
        block_size=None if method == "returns_shuffle" else size, seed=int(seed),
    )
