"""Observation features: causal, finite after the warm-up, clipped, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("gymnasium")

from quantum_trading.errors import DataError
from quantum_trading.rl.features import FEATURE_LOOKBACK, atr_array, market_features
from quantum_trading.rl.spec import FEATURE_NAMES, OBS_CLIP

from .conftest import BTC, ETH


def test_causal_on_real_data(real_bars: dict[str, pd.DataFrame]) -> None:
    full, first = market_features(real_bars, FEATURE_NAMES)
    for t in (first - 1, first + 7, 600, len(full) - 1):
        head = {s: f.iloc[:t] for s, f in real_bars.items()}
        part, _ = market_features(head, FEATURE_NAMES)
        np.testing.assert_array_equal(part, full[:t])


def test_warm_up_shape_and_bounds(real_bars: dict[str, pd.DataFrame]) -> None:
    x, first = market_features(real_bars, FEATURE_NAMES)
    assert x.shape == (len(real_bars[BTC]), 2, len(FEATURE_NAMES)) and x.dtype == np.float32
    assert first == max(FEATURE_LOOKBACK.values())
    assert np.isnan(x[:first]).all() and np.isfinite(x[first:]).all()
    assert np.abs(x[first:]).max() <= OBS_CLIP
    # each feature's own warm-up is exact: finite from its lookback on, NaN just before
    for k, name in enumerate(FEATURE_NAMES):
        one, f1 = market_features(real_bars, (name,))
        assert f1 == FEATURE_LOOKBACK[name]
        assert np.isfinite(one[f1:]).all()
        np.testing.assert_array_equal(one[first:, :, 0], x[first:, :, k])
    # funding is the last settled rate in bps: Binance BTC settles 1 bp most of the time
    k = FEATURE_NAMES.index("funding")
    assert np.median(x[first:, 0, k]) == pytest.approx(1.0, abs=0.5)


def test_atr_array_matches_the_indicator(real_bars: dict[str, pd.DataFrame]) -> None:
    from quantum_trading.features import atr

    got = atr_array(real_bars)
    want = atr(real_bars[ETH]["high"], real_bars[ETH]["low"], real_bars[ETH]["close"], 14)
    np.testing.assert_array_equal(got[:, 1], want.to_numpy())


def test_nan_in_bars_is_named(real_bars: dict[str, pd.DataFrame]) -> None:
    bad = real_bars[ETH].copy()
    bad.iloc[17, bad.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match=r"ETH/USDT:USDT.*close.*17"):
        market_features({BTC: real_bars[BTC], ETH: bad}, ("log_return",))
