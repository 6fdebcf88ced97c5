"""Value types shared by every layer: instruments, sides, order kinds, signals, fills, trades.

Frozen dataclasses and enums only; no I/O. Units live in names: sizes are in base units
(signed: + long, − short), prices in quote currency (USDT, written ``usd``), fees in basis
points (``_bps``, 1 bp = 0.01 %), rates as plain fractions (``0.004`` = 0.4 %).

The integer values of :class:`Side`, :class:`OrderType`, :class:`ExitReason`,
:class:`OrderStatus` and :class:`CapFlag` are the codes the simulator kernels write into
their record arrays (see :mod:`quantum_trading.sim.records`); they never change.

Margin tiers
------------
:class:`Instrument` holds Binance-style maintenance-margin brackets as rows
``(notional_floor_usd, max_leverage, maintenance_margin_rate, maintenance_amount_usd)``:
a position of notional ``N`` with ``floor_k <= N < floor_{k+1}`` needs maintenance margin
``N * rate_k - amount_k`` and may be opened with at most ``max_leverage_k``. The amounts
("cum" in Binance's API) make that function continuous; the constructor checks it.

The presets :data:`BINANCE_BTCUSDT_PERP` and :data:`BINANCE_ETHUSDT_PERP` use the USDⓈ-M
brackets Binance published through ``GET /fapi/v1/leverageBracket`` and its "Leverage &
Margin" page in 2022–2023 (the period of the project's real data, July–August 2023).
Binance revises them from time to time: pass your own ``margin_tiers`` for current values.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag, StrEnum
from typing import Literal

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError

__all__ = [
    "BINANCE_BTCUSDT_PERP",
    "BINANCE_ETHUSDT_PERP",
    "INSTRUMENT_PRESETS",
    "CapFlag",
    "ExitReason",
    "Fill",
    "Instrument",
    "MarginMode",
    "Order",
    "OrderStatus",
    "OrderType",
    "Position",
    "Side",
    "Signals",
    "StopSpec",
    "Trade",
    "default_instrument",
]

MarginTier = tuple[float, float, float, float]


class Side(IntEnum):
    """Direction of an order or a position: +1 buy / long, −1 sell / short."""

    BUY = 1
    SELL = -1


class OrderType(IntEnum):
    """What produced a fill. Stops, time stops and liquidations are market orders."""

    MARKET = 0
    STOP_LOSS = 1
    TAKE_PROFIT = 2
    TRAILING_STOP = 3
    TIME_STOP = 4
    LIQUIDATION = 5
    BANKRUPTCY = 6


class ExitReason(IntEnum):
    """Why a trade ended (same codes as :class:`OrderType`; ``OPEN`` = still open)."""

    SIGNAL = 0
    STOP_LOSS = 1
    TAKE_PROFIT = 2
    TRAILING_STOP = 3
    TIME_STOP = 4
    LIQUIDATION = 5
    BANKRUPTCY = 6
    OPEN = 7


class OrderStatus(IntEnum):
    """Outcome of a market order generated from a target change (or a time stop)."""

    FILLED = 0
    NO_CHANGE = 1  # the target already matched the position (after lot rounding)
    SKIPPED_MIN_NOTIONAL = 2  # the order's notional was under the instrument's minimum
    SKIPPED_MARGIN = 3  # no available margin left for an order that adds exposure


class CapFlag(IntFlag):
    """Why an order was made smaller than asked (bits, combined with ``|``)."""

    NONE = 0
    LEVERAGE = 1  # |target| above the account leverage for the asset
    TIER = 2  # notional above the margin tier allowed at that leverage
    MARGIN = 4  # not enough available margin (cross or isolated) for the full size
    SHORT = 8  # a short target in a long-only account


class MarginMode(StrEnum):
    """Cross: one equity backs every position. Isolated: each position has its own margin."""

    CROSS = "cross"
    ISOLATED = "isolated"


def _tiers_from(rows: tuple[MarginTier, ...]) -> tuple[MarginTier, ...]:
    return tuple(tuple(float(v) for v in row) for row in rows)  # type: ignore[misc]


@dataclass(frozen=True)
class Instrument:
    """A USDⓈ-margined perpetual contract and its exchange rules.

    Parameters
    ----------
    symbol:
        ccxt unified symbol, e.g. ``"BTC/USDT:USDT"``.
    tick_size:
        Price increment (USDT). Informational for the simulator (fill prices carry modelled
        costs and are not rounded); used by execution adapters. 0 = none.
    lot_size:
        Size increment (base units). Order sizes are rounded toward zero to it; 0 = any size.
    min_notional_usd:
        Smallest notional (size × price) of an order that adds exposure; reduce-only orders are
        exempt, as on Binance.
    max_leverage:
        Highest leverage the exchange allows for the contract.
    margin_tiers:
        Rows ``(notional_floor_usd, max_leverage, maintenance_margin_rate,
        maintenance_amount_usd)``, floors ascending from 0. See the module docstring.
    taker_fee_bps, maker_fee_bps:
        Fees in basis points of notional, used unless the cost config overrides them.

    >>> BINANCE_BTCUSDT_PERP.maintenance_margin_usd(100_000.0)
    450.0
    >>> Instrument.generic("X/USDT:USDT", lot_size=1.0, max_leverage=1.0).max_notional_usd(1.0)
    inf
    """

    symbol: str
    tick_size: float = 0.0
    lot_size: float = 0.0
    min_notional_usd: float = 0.0
    max_leverage: float = 125.0
    margin_tiers: tuple[MarginTier, ...] = ((0.0, 125.0, 0.004, 0.0),)
    taker_fee_bps: float = 4.0
    maker_fee_bps: float = 2.0
    _tiers: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _floors: tuple[float, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"Instrument {self.symbol!r}: {name} {why}")

        if not isinstance(self.symbol, str) or not self.symbol:
            raise ConfigError("Instrument: symbol must be a non-empty string")
        for name in ("tick_size", "lot_size", "min_notional_usd", "taker_fee_bps", "maker_fee_bps"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise bad(name, f"must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.max_leverage) and 1.0 <= self.max_leverage <= 1000.0):
            raise bad("max_leverage", f"must be in [1, 1000], got {self.max_leverage!r}")
        tiers = _tiers_from(tuple(self.margin_tiers))
        object.__setattr__(self, "margin_tiers", tiers)
        arr = np.asarray(tiers, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
            raise bad("margin_tiers", "must be a non-empty sequence of 4-tuples")
        if not np.all(np.isfinite(arr)):
            raise bad("margin_tiers", "must be finite")
        if arr[0, 0] != 0.0 or np.any(np.diff(arr[:, 0]) <= 0):
            raise bad("margin_tiers", "floors must start at 0 and increase")
        if np.any(arr[:, 1] < 1.0) or np.any((arr[:, 2] <= 0) | (arr[:, 2] >= 1)):
            raise bad("margin_tiers", "need max_leverage >= 1 and 0 < maintenance rate < 1")
        # continuity of N*rate - amount at each floor
        for k in range(1, arr.shape[0]):
            floor = arr[k, 0]
            left = floor * arr[k - 1, 2] - arr[k - 1, 3]
            right = floor * arr[k, 2] - arr[k, 3]
            if abs(left - right) > 1e-6 * max(1.0, abs(left)):
                raise bad("margin_tiers", f"maintenance amount of tier {k + 1} is inconsistent "
                          f"(margin jumps from {left} to {right} at {floor} USD)")
        arr.setflags(write=False)
        object.__setattr__(self, "_tiers", arr)
        object.__setattr__(self, "_floors", tuple(float(t[0]) for t in tiers))

    @property
    def tiers_array(self) -> np.ndarray:
        """Margin tiers as a read-only ``[K, 4]`` float64 array."""
        return self._tiers

    def tier_index(self, notional_usd: float) -> int:
        """0-based tier of a position of ``notional_usd`` (absolute)."""
        # Python's bisect on the floors: numpy's searchsorted costs ~2 µs a call on a few tiers
        return bisect.bisect_right(self._floors, abs(notional_usd)) - 1

    def maintenance_margin_usd(self, notional_usd: float) -> float:
        """Maintenance margin (USDT) of a position of ``notional_usd`` (absolute)."""
        k = self.tier_index(notional_usd)
        return float(abs(notional_usd) * self._tiers[k, 2] - self._tiers[k, 3])

    def max_notional_usd(self, leverage: float) -> float:
        """Largest position notional (USDT) allowed at ``leverage``: the top of the last tier
        whose max leverage is at least ``leverage`` (``inf`` when every tier allows it)."""
        for k, tier in enumerate(self.margin_tiers):  # a few tiers: Python beats numpy here
            if not tier[1] >= leverage:
                return float(tier[0]) if k > 0 else 0.0
        return math.inf

    @classmethod
    def generic(
        cls,
        symbol: str,
        *,
        tick_size: float = 0.0,
        lot_size: float = 0.0,
        min_notional_usd: float = 0.0,
        max_leverage: float = 125.0,
        maintenance_margin_rate: float = 0.004,
        taker_fee_bps: float = 4.0,
        maker_fee_bps: float = 2.0,
    ) -> Instrument:
        """An instrument with one margin tier (no notional limit).

        Good for synthetic data and for parity tests with spot-style backtesters
        (``lot_size=1.0, max_leverage=1.0`` sizes in whole units without leverage).

        >>> Instrument.generic("X", maintenance_margin_rate=0.01).maintenance_margin_usd(1e6)
        10000.0
        """
        return cls(
            symbol=symbol,
            tick_size=tick_size,
            lot_size=lot_size,
            min_notional_usd=min_notional_usd,
            max_leverage=max_leverage,
            margin_tiers=((0.0, max_leverage, maintenance_margin_rate, 0.0),),
            taker_fee_bps=taker_fee_bps,
            maker_fee_bps=maker_fee_bps,
        )


def _binance_usdt_perp(
    symbol: str, *, tick_size: float, min_notional_usd: float, margin_tiers: tuple[MarginTier, ...]
) -> Instrument:
    """A Binance USDⓈ-M perpetual: lot size 0.001, the first bracket's max leverage, taker fee
    4 bps and maker fee 2 bps."""
    return Instrument(
        symbol=symbol,
        tick_size=tick_size,
        lot_size=0.001,
        min_notional_usd=min_notional_usd,
        max_leverage=margin_tiers[0][1],
        margin_tiers=margin_tiers,
        taker_fee_bps=4.0,
        maker_fee_bps=2.0,
    )


#: Binance USDⓈ-M BTCUSDT perpetual (brackets as published 2022–2023; fees 0.04 % / 0.02 %).
BINANCE_BTCUSDT_PERP = _binance_usdt_perp(
    "BTC/USDT:USDT",
    tick_size=0.1,
    min_notional_usd=100.0,
    margin_tiers=(
        (0.0, 125.0, 0.004, 0.0),
        (50_000.0, 100.0, 0.005, 50.0),
        (500_000.0, 50.0, 0.01, 2_550.0),
        (8_000_000.0, 20.0, 0.025, 122_550.0),
        (50_000_000.0, 10.0, 0.05, 1_372_550.0),
        (80_000_000.0, 5.0, 0.10, 5_372_550.0),
        (100_000_000.0, 4.0, 0.125, 7_872_550.0),
        (120_000_000.0, 3.0, 0.15, 10_872_550.0),
        (200_000_000.0, 2.0, 0.25, 30_872_550.0),
        (300_000_000.0, 1.0, 0.50, 105_872_550.0),
    ),
)

#: Binance USDⓈ-M ETHUSDT perpetual (brackets as published 2022–2023; fees 0.04 % / 0.02 %).
BINANCE_ETHUSDT_PERP = _binance_usdt_perp(
    "ETH/USDT:USDT",
    tick_size=0.01,
    min_notional_usd=20.0,
    margin_tiers=(
        (0.0, 100.0, 0.005, 0.0),
        (10_000.0, 75.0, 0.0065, 15.0),
        (100_000.0, 50.0, 0.01, 365.0),
        (500_000.0, 25.0, 0.02, 5_365.0),
        (1_000_000.0, 10.0, 0.05, 35_365.0),
        (2_000_000.0, 5.0, 0.10, 135_365.0),
        (5_000_000.0, 4.0, 0.125, 260_365.0),
        (10_000_000.0, 3.0, 0.15, 510_365.0),
        (20_000_000.0, 2.0, 0.25, 2_510_365.0),
        (50_000_000.0, 1.0, 0.50, 15_010_365.0),
    ),
)


INSTRUMENT_PRESETS: dict[str, Instrument] = {
    BINANCE_BTCUSDT_PERP.symbol: BINANCE_BTCUSDT_PERP,
    BINANCE_ETHUSDT_PERP.symbol: BINANCE_ETHUSDT_PERP,
}
"""Instruments used when none is given: the Binance presets by symbol."""


def default_instrument(symbol: str) -> Instrument:
    """The instrument assumed for ``symbol`` when none is given: the Binance preset for
    ``BTC/USDT:USDT`` and ``ETH/USDT:USDT``, else :meth:`Instrument.generic` (one margin
    tier, taker 4 bps / maker 2 bps, no lot size).

    >>> default_instrument("BTC/USDT:USDT").min_notional_usd, default_instrument("X").lot_size
    (100.0, 0.0)
    """
    return INSTRUMENT_PRESETS.get(symbol) or Instrument.generic(symbol)


StopKind = Literal["fraction", "distance", "price"]
StopValue = float | pd.Series | pd.DataFrame


@dataclass(frozen=True, eq=False)
class StopSpec:
    """A stop-loss, take-profit or trailing-stop rule, read at the decision bar of each entry.

    ``kind``:
      * ``"fraction"`` — distance as a fraction of the entry fill price (``0.02`` = 2 %);
      * ``"distance"`` — distance in price units (USDT), e.g. ``2 × ATR`` (see :meth:`atr`);
      * ``"price"`` — an absolute price level (not allowed for trailing stops).

    ``value`` is a scalar (every bar, every asset), a Series on the bar index (every asset),
    or a DataFrame ``[T, N]`` with one column per symbol. NaN = no stop for that entry.

    >>> StopSpec.fraction(0.02).kind
    'fraction'
    """

    kind: StopKind
    value: StopValue

    def __post_init__(self) -> None:
        if self.kind not in ("fraction", "distance", "price"):
            raise ConfigError(f"StopSpec: kind must be 'fraction', 'distance' or 'price', got {self.kind!r}")
        if isinstance(self.value, int | float) and not isinstance(self.value, bool):
            v = float(self.value)
            if not (math.isnan(v) or v > 0):
                raise ConfigError(f"StopSpec: value must be > 0 (or NaN), got {self.value!r}")
        elif not isinstance(self.value, pd.Series | pd.DataFrame):
            raise ConfigError("StopSpec: value must be a number, a Series or a DataFrame")

    @classmethod
    def fraction(cls, value: StopValue) -> StopSpec:
        """Distance as a fraction of the entry fill price."""
        return cls("fraction", value)

    @classmethod
    def distance(cls, value_usd: StopValue) -> StopSpec:
        """Distance in price units (USDT)."""
        return cls("distance", value_usd)

    @classmethod
    def price(cls, level_usd: StopValue) -> StopSpec:
        """Absolute price level."""
        return cls("price", level_usd)

    @classmethod
    def atr(cls, multiple: float, atr: pd.Series | pd.DataFrame) -> StopSpec:
        """Distance of ``multiple`` × ATR (ATR in price units, known at the decision bar)."""
        if not (math.isfinite(multiple) and multiple > 0):
            raise ConfigError(f"StopSpec.atr: multiple must be > 0, got {multiple!r}")
        return cls("distance", atr * float(multiple))


@dataclass(frozen=True, eq=False)
class Signals:
    """What a strategy wants: target exposure per bar and asset, plus optional exits.

    Parameters
    ----------
    target:
        ``[T, N]`` DataFrame (columns = symbols) or a Series (one asset): desired signed
        notional as a multiple of equity (1.0 = fully long 1×, −2.0 = 2× short), decided at
        bar t's close, filled at bar t+1's open. NaN = no decision (keep what is held).
    stop_loss, take_profit, trailing_stop:
        Exit rules set when a position opens (see :class:`StopSpec`); kept until it closes.
    time_stop_bars:
        Exit a position held this many bars with a market order at the next open.

    >>> idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    >>> Signals(pd.Series([1.0, None, 0.0], index=idx)).target.shape
    (3, 1)
    """

    target: pd.DataFrame
    stop_loss: StopSpec | None = None
    take_profit: StopSpec | None = None
    trailing_stop: StopSpec | None = None
    time_stop_bars: int | None = None

    def __post_init__(self) -> None:
        target = self.target
        if isinstance(target, pd.Series):
            target = target.to_frame(name=target.name if target.name is not None else "target")
        if not isinstance(target, pd.DataFrame):
            raise ConfigError("Signals: target must be a pandas DataFrame or Series")
        object.__setattr__(self, "target", target.astype(np.float64))
        if self.trailing_stop is not None and self.trailing_stop.kind == "price":
            raise ConfigError("Signals: trailing_stop must be a 'fraction' or 'distance' StopSpec")
        if self.time_stop_bars is not None and (
            not isinstance(self.time_stop_bars, int) or self.time_stop_bars < 1
        ):
            raise ConfigError(f"Signals: time_stop_bars must be an int >= 1, got {self.time_stop_bars!r}")


@dataclass(frozen=True)
class Order:
    """A market order generated from a target change (or a time stop), as processed at the fill.

    ``requested_size`` and ``filled_size`` are signed base units; ``cap_flags`` says why the
    order was made smaller (:class:`CapFlag`).
    """

    time: pd.Timestamp
    decision_time: pd.Timestamp
    symbol: str
    order_type: OrderType
    status: OrderStatus
    cap_flags: CapFlag
    target_frac: float
    equity_usd: float
    requested_size: float
    filled_size: float
    price: float


@dataclass(frozen=True)
class Fill:
    """One execution. ``price`` includes spread, slippage and impact; each is reported apart."""

    time: pd.Timestamp
    symbol: str
    side: Side
    order_type: OrderType
    size: float
    price: float
    ref_price: float
    fee_usd: float
    spread_usd: float
    slippage_usd: float
    impact_usd: float
    liquidation_fee_usd: float
    realized_pnl_usd: float


@dataclass(frozen=True)
class Trade:
    """A position from opening (from flat) to closing (to flat), scale-ins and -outs included.

    ``pnl_usd`` = ``gross_pnl_usd`` − ``fees_usd`` − ``funding_usd`` − ``liquidation_fee_usd``;
    ``gross_pnl_usd`` is measured on fill prices, so spread, slippage and impact (``costs_usd``)
    are inside it. Open trades are valued at the last close (``exit_reason`` = OPEN).
    """

    symbol: str
    direction: Side
    entry_time: pd.Timestamp
    exit_time: pd.Timestamp
    entry_price: float
    exit_price: float
    size: float
    pnl_usd: float
    gross_pnl_usd: float
    fees_usd: float
    funding_usd: float
    costs_usd: float
    liquidation_fee_usd: float
    exit_reason: ExitReason


@dataclass(frozen=True)
class Position:
    """A position as held after the last simulated bar (size 0 = flat)."""

    symbol: str
    size: float
    entry_price: float
    margin_usd: float
    unrealized_pnl_usd: float
    stop_loss: float
    take_profit: float
    trailing_stop: float
