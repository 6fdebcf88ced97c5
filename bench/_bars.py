"""The benchmarks' bars: real Binance BTC/USDT:USDT 1m bars tiled to any length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SOURCE", "load_bars"]

SOURCE = "binance/futures/BTC_USDT_USDT-1m-futures.feather"
"""The bars' file, relative to the data folder."""


def load_bars(n_bars: int, data_dir: Path) -> pd.DataFrame:
    """Real BTC 1m bars tiled to ``n_bars`` with a continuous, positive price path.

    Each copy is rescaled so that it opens at the previous copy's last close: returns inside a
    copy are the real ones and the volume is the real volume. The index is a continuous
    1-minute index from 2023-07-04 UTC.
    """
    frame = pd.read_feather(data_dir / SOURCE)
    base = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
    copies = -(-n_bars // len(base))
    blocks = []
    scale = 1.0
    for _ in range(copies):
        block = base.copy()
        block[:, :4] *= scale
        blocks.append(block)
        scale *= base[-1, 3] / base[0, 0]  # the next copy opens at this copy's last close
    values = np.concatenate(blocks)[:n_bars]
    index = pd.date_range("2023-07-04", periods=n_bars, freq="1min", tz="UTC")
    return pd.DataFrame(values, index=index, columns=["open", "high", "low", "close", "volume"])
