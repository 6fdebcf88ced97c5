"""The local exchange's trading side: a paper exchange replaying the stored bars, and its clock.

:class:`TradingSession` builds a :class:`~quantum_trading.execution.paper.PaperExchange` over the
symbols of a :class:`~.market_data.MarketData` folder (instruments from its ``exchangeInfo``
filters; Binance's 2022–2023 brackets for BTCUSDT/ETHUSDT, one generic bracket otherwise),
fed by a :class:`~quantum_trading.execution.paper_replay.BarReplay` of the stored candles at
``timeframe`` with the stored funding rates and mark prices.

Replay time
-----------
The replay clock stands at the close of the last bar fed. It advances one bar per
``POST /_local/advance`` (``?bars=N`` for several) or, with ``bars_per_second``, by itself in a
background thread. ``warmup_bars`` bars are fed at start so that there are prices to trade at.
In trading mode klines, mark-price klines and funding rates end at the replay clock (no bar from
the future is served); order, fill and position times are replay times (ms), while
``/fapi/v1/time`` and the signature's ``timestamp`` check use the machine clock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pandas as pd

from quantum_trading.domain import BINANCE_BTCUSDT_PERP, BINANCE_ETHUSDT_PERP, Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.execution.local_exchange.faults import FaultInjector
from quantum_trading.execution.local_exchange.market_data import (
    BINANCE_INTERVALS,
    MarketData,
    UnavailableError,
)
from quantum_trading.execution.local_exchange.signing import Credentials
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.execution.paper_replay import BarReplay
from quantum_trading.sim.config import AccountConfig, CostsConfig

__all__ = [
    "TradingOptions",
    "TradingSession",
    "instruments_from_market_data",
    "ms",
    "symbol_id",
]

_PRESET_TIERS = {"BTCUSDT": BINANCE_BTCUSDT_PERP, "ETHUSDT": BINANCE_ETHUSDT_PERP}


def instruments_from_market_data(data: MarketData) -> dict[str, Instrument]:
    """One :class:`Instrument` per stored symbol, from the filters the server publishes.

    Tick size, lot size and minimum notional are ``exchangeInfo``'s; margin tiers, maximum
    leverage and fees are Binance's presets for BTCUSDT / ETHUSDT and
    ``Instrument.generic(max_leverage=50, maintenance 1 %)`` for the others.
    """
    info = data.exchange_info(0)
    out = {}
    for entry in info["symbols"]:
        filters = {f["filterType"]: f for f in entry["filters"]}
        symbol = data.symbol(entry["symbol"])
        tick = float(filters["PRICE_FILTER"]["tickSize"])
        lot = float(filters["LOT_SIZE"]["stepSize"])
        min_notional = float(filters["MIN_NOTIONAL"]["notional"])
        preset = _PRESET_TIERS.get(entry["symbol"])
        if preset is not None:
            out[symbol] = Instrument(
                symbol=symbol,
                tick_size=tick,
                lot_size=lot,
                min_notional_usd=min_notional,
                max_leverage=preset.max_leverage,
                margin_tiers=preset.margin_tiers,
                taker_fee_bps=preset.taker_fee_bps,
                maker_fee_bps=preset.maker_fee_bps,
            )
        else:
            out[symbol] = Instrument.generic(
                symbol,
                tick_size=tick,
                lot_size=lot,
                min_notional_usd=min_notional,
                max_leverage=50.0,
                maintenance_margin_rate=0.01,
            )
    return out


@dataclass(frozen=True)
class TradingOptions:
    """How the local exchange trades: accepted credentials, replay and paper-exchange settings
    (see :class:`TradingSession` for each field)."""

    credentials: Credentials
    timeframe: str = "1m"
    symbols: tuple[str, ...] | None = None
    start: pd.Timestamp | str | None = None
    end: pd.Timestamp | str | None = None
    costs: CostsConfig | None = None
    account: AccountConfig | None = None
    max_participation: float | None = None
    bars_per_second: float | None = None
    warmup_bars: int = 1


class TradingSession:
    """A paper exchange replaying a data folder, with the credentials it accepts.

    Parameters
    ----------
    data:
        The stored market data.
    options:
        :class:`TradingOptions`, whose fields are:

        * ``credentials`` — the API key and secret signed requests must use;
        * ``timeframe`` — replay bar (``1m`` … ``1d``; coarser than the stored bars is
          aggregated);
        * ``symbols`` — unified symbols to trade (default: every stored symbol with candles at
          ``timeframe``);
        * ``start``, ``end`` — replay window (UTC bar open times); default all stored bars;
        * ``costs``, ``account``, ``max_participation`` — for the :class:`PaperExchange`;
        * ``bars_per_second`` — automatic replay speed (started by :meth:`start`, which the
          servers call); None = only ``POST /_local/advance`` moves the clock;
        * ``warmup_bars`` — bars fed at start (≥ 1 so that orders have a price).
    faults:
        The app's fault injector (its ``partial`` faults cut paper fills).
    """

    def __init__(
        self, data: MarketData, options: TradingOptions, *, faults: FaultInjector | None = None
    ) -> None:
        timeframe, symbols = options.timeframe, options.symbols
        start, end = options.start, options.end
        bars_per_second, warmup_bars = options.bars_per_second, options.warmup_bars
        credentials = options.credentials
        if timeframe not in BINANCE_INTERVALS:
            raise ConfigError(f"trading timeframe {timeframe!r} is not a Binance interval")
        if bars_per_second is not None and not (0.0 < bars_per_second <= 10_000.0):
            raise ConfigError(f"bars_per_second must be in (0, 10000], got {bars_per_second}")
        if warmup_bars < 0:
            raise ConfigError(f"warmup_bars must be >= 0, got {warmup_bars}")
        self.data = data
        self.credentials = credentials
        self.timeframe = timeframe
        self.step_ms = BINANCE_INTERVALS[timeframe]
        self.faults = faults
        all_instruments = instruments_from_market_data(data)
        wanted = list(symbols) if symbols is not None else list(all_instruments)
        unknown = [s for s in wanted if s not in all_instruments]
        if unknown:
            raise ConfigError(f"trading symbols not in the data folder: {unknown}")
        start_ts = pd.Timestamp(start, tz="UTC") if isinstance(start, str) else start
        end_ts = pd.Timestamp(end, tz="UTC") if isinstance(end, str) else end
        frames, funding, marks = {}, {}, {}
        for symbol in wanted:
            market_id = symbol_id(symbol)
            try:
                series = data.series(market_id, "ohlcv", timeframe)
            except UnavailableError:
                if symbols is not None:
                    raise ConfigError(f"no {timeframe} candles for {symbol}") from None
                continue
            frames[symbol] = pd.DataFrame(
                series.values,
                columns=list(series.columns),
                index=pd.to_datetime(series.ts, unit="ms", utc=True),
            )
            try:
                f = data.series(market_id, "funding", "*")
                funding[symbol] = pd.Series(
                    f.values[:, 0], index=pd.to_datetime(f.ts, unit="ms", utc=True)
                )
            except UnavailableError:  # no funding history stored: the default schedule applies
                pass
            mark_tfs = data.timeframes(market_id, "mark")
            if mark_tfs:
                m = data.series(market_id, "mark", mark_tfs[0])
                marks[symbol] = pd.Series(
                    m.values[:, 0], index=pd.to_datetime(m.ts, unit="ms", utc=True)
                )
        if not frames:
            raise ConfigError(f"no symbol has {timeframe} candles to replay")
        self.instruments = {s: all_instruments[s] for s in frames}
        self.paper = PaperExchange(
            self.instruments,
            costs=options.costs,
            account=options.account,
            timeframe=timeframe,
            max_participation=options.max_participation,
            funding=funding,
            mark=marks,
            fill_fraction=faults.partial_fraction if faults is not None else None,
            name="local-paper",
        )
        self.replay = BarReplay(self.paper, frames, start=start_ts, end=end_ts)
        self._lock = threading.Lock()
        self.bars_per_second = bars_per_second
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.advance(warmup_bars)

    # ------------------------------------------------------------------ clock
    @property
    def now_ms(self) -> int:
        """The replay clock (ms): close time of the last bar fed."""
        return int(self.replay.time.value // 1_000_000)

    def advance(self, bars: int = 1) -> int:
        """Feed the next ``bars`` bar times; returns the fills they made (count)."""
        with self._lock:
            return len(self.replay.step(bars))

    def start(self) -> None:
        """Start the automatic clock (when ``bars_per_second`` is set); idempotent."""
        if self.bars_per_second is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="local-exchange-replay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the automatic clock."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)

    def _run(self) -> None:
        period = 1.0 / float(self.bars_per_second or 1.0)
        next_at = time.monotonic()
        while not self._stop.is_set() and not self.replay.done:
            next_at += period
            self.advance(1)
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def order_margin_by_symbol(self) -> dict[str, float]:
        """Initial margin reserved by open orders, per symbol (USDT): the paper exchange's
        incremental tally."""
        return self.paper.order_margin_by_symbol()


def symbol_id(symbol: str) -> str:
    """Binance market id of a unified symbol (``BTC/USDT:USDT`` → ``BTCUSDT``)."""
    base, rest = symbol.split("/")
    return base + rest.split(":")[0]


def ms(stamp: pd.Timestamp) -> int:
    """Unix milliseconds of a UTC timestamp."""
    return int(stamp.value // 1_000_000)
