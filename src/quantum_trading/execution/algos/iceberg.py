"""Iceberg: a large order shown one small limit child at a time.

One child is visible at any moment. When it is done (filled, or cancelled with a rest) the
next is shown after ``refresh_delay_s``; its size is the slice minus a seeded uniform random
cut of up to ``jitter_pct`` % (lot-rounded down, at least one lot), so sizes vary and **the
visible size never exceeds the slice**. Children rest at ``limit_price`` (never cancelled as
stale: the price is the user's) or, without one, at the best bid (buy) / ask (sell), where the
order manager re-prices them when stale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.algos.base import ExecAlgorithm, floor_to_lot
from quantum_trading.execution.config import IcebergConfig
from quantum_trading.execution.order_manager import OrderManager

__all__ = ["Iceberg"]


class Iceberg(ExecAlgorithm):
    """Iceberg execution (see the module docstring).

    Parameters
    ----------
    manager, symbol, side, amount, reduce_only, lot_size, parent_id:
        As :class:`~quantum_trading.execution.algos.base.ExecAlgorithm`.
    slice_amount:
        Largest visible size (base units), ``0 < slice_amount <= amount``.
    limit_price:
        Fixed limit price (USDT) of every child; None = at the touch.
    config:
        :class:`~quantum_trading.execution.config.IcebergConfig` (None = 20 % jitter, seed 0).

    >>> algo = Iceberg(manager, symbol="BTC/USDT:USDT", side=Side.BUY, amount=10.0,
    ...                slice_amount=0.5, limit_price=29_950.0)  # doctest: +SKIP
    """

    name = "iceberg"

    def __init__(self, manager: OrderManager, *, symbol: str, side: Side, amount: float,
                 slice_amount: float, limit_price: float | None = None,
                 config: IcebergConfig | None = None, reduce_only: bool = False,
                 lot_size: float | None = None, parent_id: str | None = None) -> None:
        super().__init__(manager, symbol=symbol, side=side, amount=amount,
                         reduce_only=reduce_only, lot_size=lot_size, parent_id=parent_id)
        if not (math.isfinite(slice_amount) and 0 < slice_amount <= amount):
            raise ConfigError(f"iceberg: slice_amount must be in (0, amount], got {slice_amount!r}")
        if limit_price is not None and not (math.isfinite(limit_price) and limit_price > 0):
            raise ConfigError(f"iceberg: limit_price must be > 0, got {limit_price!r}")
        self.config = IcebergConfig() if config is None else config
        self.slice_amount = float(slice_amount)
        self.limit_price = limit_price
        self._rng = np.random.default_rng(self.config.seed)
        self._next_at: pd.Timestamp | None = None

    def _on_start(self, now: pd.Timestamp) -> None:
        if self.slice_amount < self.lot_size:
            raise ConfigError(f"iceberg: slice_amount {self.slice_amount:g} is below one lot "
                              f"({self.lot_size:g})")

    def _visible_size(self) -> float:
        cut = self.config.jitter_pct / 100.0 * float(self._rng.random())
        size = floor_to_lot(self.slice_amount * (1.0 - cut), self.lot_size)
        return max(size, self.lot_size) if self.lot_size > 0 else size

    async def _step(self, now: pd.Timestamp) -> None:
        if self._working():
            return
        if self.children and self._next_at is None:
            last_done = max(c.done_at for c in self.children if c.done_at is not None)
            self._next_at = last_done + pd.Timedelta(seconds=self.config.refresh_delay_s)
        if self._next_at is not None and now < self._next_at:
            return
        rest = self.amount - self.allocated
        if floor_to_lot(rest, self.lot_size) <= self._tol:
            return
        placed = await self._place(min(self._visible_size(), rest), scheduled_at=now,
                                   order_type="limit", price=self.limit_price,
                                   on_stale="keep" if self.limit_price is not None else None)
        if placed is not False:
            self._next_at = None

    def _complete(self) -> bool:
        return not self._working() and floor_to_lot(self.amount - self.allocated,
                                                     self.lot_size) <= self._tol
