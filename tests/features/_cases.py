"""Every public indicator as a ``frame -> DataFrame`` case, for the generic contract tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantum_trading import features as qf


@dataclass(frozen=True)
class Case:
    """One indicator call on an OHLCV frame and the input columns it reads."""

    name: str
    call: Callable[[pd.DataFrame], pd.Series | pd.DataFrame]
    inputs: tuple[str, ...]
    positive_only: bool = False  # a non-positive input also counts as missing

    def run(self, bars: pd.DataFrame) -> pd.DataFrame:
        out = self.call(bars)
        return out.to_frame() if isinstance(out, pd.Series) else out

    def valid(self, bars: pd.DataFrame) -> np.ndarray:
        """Rows where every input is usable (the NaN contract's "finite" bars)."""
        values = bars[list(self.inputs)].to_numpy()
        ok = np.isfinite(values).all(axis=1)
        if self.positive_only:
            ok &= (values > 0).all(axis=1)
        return ok


HLC = ("high", "low", "close")

CASES: tuple[Case, ...] = (
    Case("sma", lambda b: qf.sma(b["close"], 10), ("close",)),
    Case("ema", lambda b: qf.ema(b["close"], 10), ("close",)),
    Case("wma", lambda b: qf.wma(b["close"], 10), ("close",)),
    Case("rsi", lambda b: qf.rsi(b["close"], 14), ("close",)),
    Case("macd", lambda b: qf.macd(b["close"], 12, 26, 9), ("close",)),
    Case("bbands", lambda b: qf.bollinger_bands(b["close"], 20), ("close",)),
    Case("true_range", lambda b: qf.true_range(b["high"], b["low"], b["close"]), HLC),
    Case("atr", lambda b: qf.atr(b["high"], b["low"], b["close"], 14), HLC),
    Case("obv", lambda b: qf.obv(b["close"], b["volume"]), ("close", "volume")),
    Case(
        "vwap",
        lambda b: qf.rolling_vwap(b["high"], b["low"], b["close"], b["volume"], 14),
        (*HLC, "volume"),
    ),
    Case("adx", lambda b: qf.adx(b["high"], b["low"], b["close"], 14), HLC),
    Case("stoch", lambda b: qf.stochastic(b["high"], b["low"], b["close"], 5, 3, 3), HLC),
    Case("donchian_20", lambda b: qf.donchian_channel(b["high"], b["low"], 20), ("high", "low")),
    Case("donchian_3", lambda b: qf.donchian_channel(b["high"], b["low"], 3), ("high", "low")),
    Case("zscore", lambda b: qf.rolling_zscore(b["close"], 20), ("close",)),
    Case(
        "realised_vol",
        lambda b: qf.realised_volatility(b["close"], 20, periods_per_year=8760),
        ("close",),
        positive_only=True,
    ),
    Case("quantile", lambda b: qf.rolling_quantile(b["close"], 50, 0.9), ("close",)),
    Case("thresholds", lambda b: qf.adaptive_thresholds(b["close"], 50), ("close",)),
)


def runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each maximal run of True in ``valid``."""
    edges = np.diff(np.concatenate(([0], valid.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))
