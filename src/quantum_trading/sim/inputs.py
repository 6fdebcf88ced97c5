"""From pandas and configs to kernel arrays: validation, alignment, parameters.

Everything the kernels need is checked here, once: UTC bar indexes (sorted, unique, the same
for every asset), finite positive prices with ``low <= open, close <= high``, targets on the
bar index, stop specs, leverage within the instrument's limit. Problems raise
:class:`~quantum_trading.errors.DataError` (data) or :class:`~quantum_trading.errors.ConfigError`
(arguments), naming the symbol, row and column.

Timing of aligned series (bar t covers ``[open_t, open_t + timeframe)``):

* funding settlements at time ``s`` are settled at the open of the bar with
  ``open_t <= s < open_t + timeframe`` (several in one bar are summed); settlements outside
  every bar are ignored and counted in the notes. Floor exchange timestamps first (Binance
  stamps ``08:00:00.008``; :func:`quantum_trading.data.readers.funding_from_frame` does it);
* a ``funding_rate`` column in the bars (as :func:`quantum_trading.data.loaders.join_funding`
  writes it) is used as is: the rate settled at each bar's open;
* without either, settlements every ``funding_interval_h`` hours from 00:00 UTC at
  ``default_funding_rate`` fall on the bars whose interval contains them;
* mark prices (``mark`` argument: values at timestamps; or a ``mark_price`` column) are
  assigned the same way and used only for funding; NaN → the bar's open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, MarginMode, Signals, StopSpec
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.sim.checks_nb import (
    HIGH_BELOW,
    LOW_ABOVE,
    NAT,
    NEGATIVE_VOLUME,
    NOT_FINITE,
    NOT_POSITIVE,
    UNSORTED,
    any_inf_nb,
    bars_problem_nb,
    default_funding_rates_nb,
    first_unsorted_nb,
    funding_mask_nb,
    usual_step_nb,
)
from quantum_trading.sim.config import AccountConfig, CostsConfig
from quantum_trading.sim.costs_nb import impact_inputs_nb
from quantum_trading.sim.records import (
    MODE_CROSS,
    MODE_ISOLATED,
    REBAL_EVERY_BAR,
    REBAL_ON_CHANGE,
    REVERSAL_AFTER_CLOSE,
    REVERSAL_NET,
)
from quantum_trading.sim.state import BarArrays, SignalArrays, SimParams, readonly_2d

__all__ = [
    "Prepared",
    "align_to_bars",
    "build_params",
    "default_funding_mask",
    "infer_timeframe",
    "prepare",
    "stop_arrays",
    "target_array",
]

BarsInput = pd.DataFrame | Mapping[str, pd.DataFrame]
SeriesInput = pd.Series | pd.DataFrame | Mapping[str, pd.Series | pd.DataFrame]
_PRICES = ("open", "high", "low", "close")
_NAN11 = readonly_2d(np.full((1, 1), np.nan))


class Prepared(NamedTuple):
    """Kernel inputs for one simulation, checked once, with the labels to wrap results.

    Made by :func:`prepare`; :func:`quantum_trading.sim.simulate_prepared` runs it with new
    targets (the sweep API). The price arrays are read-only views of the bars given to
    :func:`prepare` (no copy): do not change those frames while it is in use.
    """

    symbols: tuple[str, ...]
    index: pd.DatetimeIndex
    timeframe: pd.Timedelta
    bars: BarArrays
    signals: SignalArrays
    params: SimParams
    notes: tuple[str, ...]
    initial_cash_usd: float = 10_000.0


def _c2(a: np.ndarray) -> np.ndarray:
    return readonly_2d(a)


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    return index.asi8 if index.unit == "ns" else index.as_unit("ns").asi8


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _check_index_type(index: pd.Index, symbol: str) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError("index is not a DatetimeIndex", source=symbol)
    if index.tz is None or str(index.tz) not in ("UTC", "Etc/UTC", "utc"):
        raise DataError(f"index must be tz-aware UTC, got tz={index.tz}", source=symbol)
    if len(index) == 0:
        raise DataError("no bars", source=symbol)


def _check_index(index: pd.Index, symbol: str) -> pd.DatetimeIndex:
    _check_index_type(index, symbol)
    if index.hasnans:
        raise DataError("NaT in index", source=symbol, rows=np.flatnonzero(index.isna()))
    bad = first_unsorted_nb(index.asi8)
    if bad >= 0:
        raise DataError("timestamps not strictly increasing", source=symbol, rows=[bad])
    return index


_PROBLEMS = {
    NOT_FINITE: "NaN or infinite value",
    NOT_POSITIVE: "non-positive value",
    HIGH_BELOW: "high below max(open, close)",
    LOW_ABOVE: "low above min(open, close)",
    NEGATIVE_VOLUME: "negative value",
}
_COLUMNS = ("open", "high", "low", "close", "volume")


def _check_bars(frame: pd.DataFrame, symbol: str, need_volume: bool
                ) -> tuple[int, list[np.ndarray]]:
    """Check one asset's bars in one pass (index, then prices); return the usual step
    between bars in ns (0 if no step is the majority) and the open, high, low, close (and
    volume) arrays."""
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"bars for {symbol!r} must be a DataFrame")
    index = frame.index
    _check_index_type(index, symbol)
    for col in (*_PRICES, "volume") if need_volume else _PRICES:
        if col not in frame.columns:
            raise DataError(f"missing column {col!r}", source=symbol)
    arrays = [frame[k].to_numpy(dtype=np.float64) for k in _PRICES]
    vol = frame["volume"].to_numpy(dtype=np.float64) if need_volume else arrays[0]
    code, row, col, step = bars_problem_nb(index.asi8, *arrays, vol, need_volume)
    if code == NAT:
        raise DataError("NaT in index", source=symbol, rows=np.flatnonzero(index.isna()))
    if code == UNSORTED:
        raise DataError("timestamps not strictly increasing", source=symbol, rows=[row])
    if code != 0:
        raise DataError(_PROBLEMS[code], source=symbol, rows=[row], column=_COLUMNS[col])
    return int(step) * _UNIT_NS[index.unit], [*arrays, vol] if need_volume else arrays


def infer_timeframe(index: pd.DatetimeIndex, attrs: Mapping | None = None,
                    *, usual_step_ns: int | None = None) -> pd.Timedelta:
    """Bar length: ``attrs["timeframe"]`` (e.g. ``"1h"``) if given, else the most common step
    (``usual_step_ns``: the majority step when already known, 0 = none)."""
    if attrs and attrs.get("timeframe"):
        from quantum_trading.data.timeframes import timeframe_to_timedelta

        return timeframe_to_timedelta(str(attrs["timeframe"]))
    if len(index) < 2:
        raise ConfigError("cannot tell the bar length of a single bar; set attrs['timeframe']")
    step = usual_step_ns
    if step is None:
        step = int(usual_step_nb(index.asi8)) * _UNIT_NS[index.unit]
    if step == 0:
        values, counts = np.unique(np.diff(_ns(index)), return_counts=True)
        step = int(values[np.argmax(counts)])
    return pd.Timedelta(int(step), unit="ns")


def align_to_bars(
    index: pd.DatetimeIndex, timeframe: pd.Timedelta, times: pd.DatetimeIndex,
    values: np.ndarray, *, how: str,
) -> tuple[np.ndarray, int]:
    """Put values stamped at ``times`` on the bars whose interval contains them.

    ``how="sum"`` adds the values that fall in one bar; ``how="last"`` keeps the last. Returns ``(per-bar array with NaN where none, number of values outside bars)``.
    """
    bars_ns = _ns(index)
    t_ns = _ns(times)
    step = int(timeframe.value)
    pos = np.searchsorted(bars_ns, t_ns, side="right") - 1
    inside = (pos >= 0) & (t_ns < bars_ns[np.clip(pos, 0, None)] + step)
    out = np.full(len(index), np.nan)
    vals = np.asarray(values, dtype=np.float64)
    for p, v in zip(pos[inside], vals[inside], strict=True):
        if how == "sum" and not np.isnan(out[p]):
            out[p] += v
        else:
            out[p] = v
    return out, int((~inside).sum())


def default_funding_mask(
    index: pd.DatetimeIndex, timeframe: pd.Timedelta, interval_h: int = 8
) -> np.ndarray:
    """Bars whose interval ``[open, open + timeframe)`` contains a settlement time
    (a multiple of ``interval_h`` hours since 00:00 UTC).

    >>> idx = pd.date_range("2024-01-01 06:00", periods=4, freq="1h", tz="UTC")
    >>> default_funding_mask(idx, pd.Timedelta("1h")).tolist()
    [False, False, True, False]
    """
    return funding_mask_nb(_ns(index), int(timeframe.value),
                           int(pd.Timedelta(hours=interval_h).value))


def _series_for(obj: SeriesInput | None, symbol: str, n_symbols: int, columns: Sequence[str],
                what: str) -> pd.Series | None:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        obj = obj.get(symbol)
        if obj is None:
            return None
    elif n_symbols > 1:
        if isinstance(obj, pd.DataFrame) and symbol in obj.columns:
            return obj[symbol]
        raise ConfigError(f"{what}: with several assets pass a dict symbol -> series "
                          f"or a DataFrame with one column per symbol")
    if isinstance(obj, pd.DataFrame):
        for col in columns:
            if col in obj.columns:
                return obj[col]
        raise ConfigError(f"{what} for {symbol!r}: expected a column among {list(columns)}")
    if not isinstance(obj, pd.Series):
        raise ConfigError(f"{what} for {symbol!r} must be a Series or DataFrame")
    return obj


def target_array(target: pd.Series | pd.DataFrame | np.ndarray, index: pd.DatetimeIndex,
                 symbols: Sequence[str], name: str = "signals.target") -> np.ndarray:
    """``[T, N]`` read-only float64 targets from a Series / DataFrame on ``index`` (columns by
    symbol; one unnamed column for one asset) or an array ``[T]`` / ``[T, N]`` in symbol order.
    Infinite values raise (NaN = no decision)."""
    n = len(symbols)
    if isinstance(target, pd.Series | pd.DataFrame):
        if not target.index.equals(index):
            raise ConfigError(f"{name}: index must equal the bars' index")
        if isinstance(target, pd.Series):
            arr = target.to_numpy(dtype=np.float64).reshape(-1, 1)
        elif n == 1 and target.shape[1] == 1:
            arr = target.to_numpy(dtype=np.float64)
        else:
            missing = [s for s in symbols if s not in target.columns]
            if missing:
                raise ConfigError(f"{name}: no column for {missing}")
            arr = target[list(symbols)].to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(target, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[0] != len(index) or arr.shape[1] not in (1, n):
        raise ConfigError(f"{name}: expected shape ({len(index)}, {n}), got {arr.shape}")
    arr = _c2(arr)
    if any_inf_nb(arr.reshape(-1).view(np.uint64)):
        raise ConfigError(f"{name}: infinite values (use NaN for no decision)")
    return arr


def stop_arrays(spec: StopSpec | None, index: pd.DatetimeIndex, symbols: Sequence[str],
                name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frac, dist, price)`` flexible arrays of one stop family (NaN where unused)."""
    out = [_NAN11, _NAN11, _NAN11]
    if spec is None:
        return out[0], out[1], out[2]
    value = spec.value
    if isinstance(value, pd.DataFrame):
        if not value.index.equals(index):
            raise ConfigError(f"{name}: index must equal the bars' index")
        missing = [s for s in symbols if s not in value.columns]
        if len(symbols) == 1 and value.shape[1] == 1:
            arr = value.to_numpy(dtype=np.float64).reshape(-1, 1)
        elif missing:
            raise ConfigError(f"{name}: no column for {missing}")
        else:
            arr = value[list(symbols)].to_numpy(dtype=np.float64)
    elif isinstance(value, pd.Series):
        if not value.index.equals(index):
            raise ConfigError(f"{name}: index must equal the bars' index")
        arr = value.to_numpy(dtype=np.float64).reshape(-1, 1)
    else:
        arr = np.full((1, 1), float(value))
    finite = arr[np.isfinite(arr)]
    if np.any(finite <= 0) or np.any(np.isinf(arr)):
        raise ConfigError(f"{name}: values must be > 0 (NaN = none)")
    out[("fraction", "distance", "price").index(spec.kind)] = _c2(arr)
    return out[0], out[1], out[2]


def build_params(
    symbols: Sequence[str], instruments: Sequence[Instrument], costs: CostsConfig,
    account: AccountConfig, time_stop_bars: int | None,
) -> SimParams:
    """Kernel parameters from the configs (bps → fractions, per-asset arrays)."""
    n = len(symbols)
    lev = np.empty(n)
    if isinstance(account.leverage, dict):
        unknown = sorted(set(account.leverage) - set(symbols))
        if unknown:
            raise ConfigError(f"AccountConfig.leverage: unknown symbols {unknown}")
    for i, (sym, inst) in enumerate(zip(symbols, instruments, strict=True)):
        value = (account.leverage.get(sym, 1.0) if isinstance(account.leverage, dict)
                 else account.leverage)
        if value > inst.max_leverage:
            raise ConfigError(f"AccountConfig.leverage for {sym!r} is {value}, above the "
                              f"instrument's max_leverage {inst.max_leverage}")
        lev[i] = float(value)
    k_max = max(len(inst.margin_tiers) for inst in instruments)
    tiers = np.zeros((n, k_max, 4))
    tiers[:, :, 0] = np.inf
    n_tiers = np.empty(n, dtype=np.int64)
    for i, inst in enumerate(instruments):
        arr = inst.tiers_array
        tiers[i, : len(arr)] = arr
        n_tiers[i] = len(arr)

    def per_asset(attr: str, override: float | None) -> np.ndarray:
        return np.array([(override if override is not None else getattr(inst, attr)) / 1e4
                         for inst in instruments])

    return SimParams(
        margin_mode=MODE_ISOLATED if account.margin_mode == MarginMode.ISOLATED else MODE_CROSS,
        rebalance=REBAL_EVERY_BAR if account.rebalance == "every_bar" else REBAL_ON_CHANGE,
        min_rebalance_frac=float(account.min_rebalance_frac),
        size_with_costs=int(account.size_with_costs),
        allow_short=int(account.allow_short),
        tp_market=int(costs.take_profit_order == "market"),
        liquidation_fee_rate=float(account.liquidation_fee_rate),
        max_impact_frac=float(costs.max_impact_bps) / 1e4,
        leverage=lev,
        lot_size=np.array([inst.lot_size for inst in instruments], dtype=np.float64),
        min_notional=np.array([inst.min_notional_usd for inst in instruments], dtype=np.float64),
        taker_fee=per_asset("taker_fee_bps", costs.taker_fee_bps),
        maker_fee=per_asset("maker_fee_bps", costs.maker_fee_bps),
        half_spread=np.full(n, costs.half_spread_bps / 1e4),
        slippage=np.full(n, costs.slippage_bps / 1e4),
        impact_k=np.full(n, float(costs.impact_k)),
        max_notional=np.array([inst.max_notional_usd(v) for inst, v in
                               zip(instruments, lev, strict=True)]),
        tiers=tiers,
        n_tiers=n_tiers,
        time_stop_bars=np.full(n, int(time_stop_bars or 0), dtype=np.int64),
        reversal_sizing=(REVERSAL_AFTER_CLOSE if account.reversal_sizing == "after_close"
                         else REVERSAL_NET),
    )


def _resolve_instruments(
    symbols: Sequence[str], instruments: Instrument | Mapping[str, Instrument] | None
) -> list[Instrument]:
    if instruments is None:
        return [Instrument.generic(s) for s in symbols]
    if isinstance(instruments, Instrument):
        if len(symbols) != 1:
            raise ConfigError("instruments: pass a dict symbol -> Instrument for several assets")
        return [instruments]
    missing = [s for s in symbols if s not in instruments]
    if missing:
        raise ConfigError(f"instruments: no Instrument for {missing}")
    return [instruments[s] for s in symbols]


def _symbols_and_frames(
    bars: BarsInput, signals: Signals, instruments: Instrument | Mapping[str, Instrument] | None
) -> tuple[list[str], list[pd.DataFrame]]:
    if isinstance(bars, pd.DataFrame):
        if isinstance(instruments, Instrument):
            sym = instruments.symbol
        elif signals.target.shape[1] == 1:
            sym = str(signals.target.columns[0])
        else:
            raise ConfigError("bars: one DataFrame but several target columns")
        if isinstance(instruments, Mapping) and len(instruments) == 1:
            sym = next(iter(instruments))
        return [sym], [bars]
    if not isinstance(bars, Mapping) or len(bars) == 0:
        raise ConfigError("bars must be a DataFrame or a non-empty dict symbol -> DataFrame")
    return [str(s) for s in bars], list(bars.values())


def prepare(
    bars: BarsInput, signals: Signals, *,
    instruments: Instrument | Mapping[str, Instrument] | None,
    costs: CostsConfig, account: AccountConfig,
    funding: SeriesInput | None = None, mark: SeriesInput | None = None,
) -> Prepared:
    """Validate and convert everything :func:`quantum_trading.sim.simulate` needs."""
    if not isinstance(signals, Signals):
        raise ConfigError("signals must be a quantum_trading.domain.Signals")
    symbols, frames = _symbols_and_frames(bars, signals, instruments)
    insts = _resolve_instruments(symbols, instruments)
    need_volume = costs.impact_k > 0
    checked = [_check_bars(frame, sym, need_volume) for sym, frame in zip(symbols, frames, strict=True)]
    index = frames[0].index
    for sym, frame in zip(symbols[1:], frames[1:], strict=True):
        if not frame.index.equals(index):
            raise DataError(f"bar index differs from {symbols[0]}'s", source=sym)
    timeframe = infer_timeframe(index, frames[0].attrs, usual_step_ns=checked[0][0])
    n_bars, n = len(index), len(symbols)
    notes: list[str] = []

    def stack(k: int) -> np.ndarray:  # column k of _COLUMNS, [T, N]
        if n == 1:
            return _c2(checked[0][1][k].reshape(-1, 1))
        return _c2(np.column_stack([arrays[k] for _, arrays in checked]))

    o, h, lo, c = (stack(k) for k in range(4))
    # funding and mark: one column per asset, or one shared column for the default schedule
    rate_cols: list[np.ndarray | None] = []
    mark_cols: list[np.ndarray | None] = []
    for sym, frame in zip(symbols, frames, strict=True):
        settle = _series_for(funding, sym, n, ("funding_rate",), "funding")
        if settle is not None:
            _check_index(settle.index, f"funding {sym}")
            col, outside = align_to_bars(index, timeframe, settle.index,
                                         settle.to_numpy(dtype=np.float64), how="sum")
            rate_cols.append(col)
            if outside:
                notes.append(f"{sym}: {outside} funding settlements outside the bars ignored")
        elif "funding_rate" in frame.columns:
            rate_cols.append(frame["funding_rate"].to_numpy(dtype=np.float64))
        else:
            rate_cols.append(None)
        mk = _series_for(mark, sym, n, ("mark", "mark_price", "open"), "mark")
        if mk is not None:
            _check_index(mk.index, f"mark {sym}")
            mark_cols.append(align_to_bars(index, timeframe, mk.index,
                                           mk.to_numpy(dtype=np.float64), how="last")[0])
        elif "mark_price" in frame.columns:
            mark_cols.append(frame["mark_price"].to_numpy(dtype=np.float64))
        else:
            mark_cols.append(None)
    default_rates = _NAN11
    if costs.default_funding_rate != 0.0 and any(col is None for col in rate_cols):
        default_rates = default_funding_rates_nb(
            index.asi8, _UNIT_NS[index.unit], int(timeframe.value),
            int(pd.Timedelta(hours=costs.funding_interval_h).value),
            float(costs.default_funding_rate))
    if all(col is None for col in rate_cols):
        rates = default_rates
    else:
        rates = np.column_stack([default_rates[:, 0] if col is None and default_rates.shape[0] > 1
                                 else np.full(n_bars, np.nan) if col is None else col
                                 for col in rate_cols])
        bad = np.argwhere(np.isinf(rates) | (np.abs(np.nan_to_num(rates)) > 0.05))
        if len(bad):
            raise DataError("funding rate not finite or above 5 % per settlement",
                            source=symbols[bad[0, 1]], rows=bad[:, 0], column="funding_rate")
    if all(col is None for col in mark_cols):
        marks = _NAN11
    else:
        marks = np.column_stack([np.full(n_bars, np.nan) if col is None else col
                                 for col in mark_cols])
    if need_volume:
        sigma, vol_usd = impact_inputs_nb(c, stack(4), costs.impact_window_bars)
    else:
        sigma, vol_usd = _NAN11, _NAN11
    bar_arrays = BarArrays(open=o, high=h, low=lo, close=c, mark=_c2(marks),
                           funding_rate=_c2(rates), sigma=_c2(sigma), volume_usd=_c2(vol_usd))
    # signals
    tarr = target_array(signals.target, index, symbols)
    sl = stop_arrays(signals.stop_loss, index, symbols, "signals.stop_loss")
    tp = stop_arrays(signals.take_profit, index, symbols, "signals.take_profit")
    tr = stop_arrays(signals.trailing_stop, index, symbols, "signals.trailing_stop")
    sig_arrays = SignalArrays(target=_c2(tarr), sl_frac=sl[0], sl_dist=sl[1], sl_price=sl[2],
                              tp_frac=tp[0], tp_dist=tp[1], tp_price=tp[2],
                              trail_frac=tr[0], trail_dist=tr[1])
    params = build_params(symbols, insts, costs, account, signals.time_stop_bars)
    return Prepared(tuple(symbols), index, timeframe, bar_arrays, sig_arrays, params, tuple(notes),
                    float(account.initial_cash_usd))
