"""The simulator's Python API: a whole-array run and a one-bar-at-a-time stepper.

Both call the same kernel (:func:`quantum_trading.sim.engine_nb.step_nb`): :func:`simulate`
through the whole-array loop :func:`~quantum_trading.sim.engine_nb.simulate_nb`,
:class:`Simulator` one bar per :meth:`Simulator.step`. Given the same inputs they produce
identical numbers, bar for bar.

Timing (see ``docs/simulator.md``): a target decided at bar t's close fills at bar t+1's
open; stops, take-profits and liquidations are checked against each bar's high/low; funding
is settled at the open of the bar containing the settlement time. With ``risk=RiskConfig(...)``
every market order is checked by the risk kernels at the open it fills at (see
:mod:`quantum_trading.sim.risk_nb`); without it nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, Position, Signals, StopSpec
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.sim.checks_nb import bar_problem_nb
from quantum_trading.sim.config import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.sim.costs_nb import impact_inputs_at_nb
from quantum_trading.sim.engine_nb import simulate_nb
from quantum_trading.sim.inputs import (
    BarsInput,
    Prepared,
    SeriesInput,
    _resolve_instruments,
    build_params,
    prepare,
    target_array,
)
from quantum_trading.sim.records import (
    A_CASH,
    A_EQUITY,
    C_BANKRUPT,
    C_FILLS,
    C_NEXT_BAR,
    P_BEST,
    P_ENTRY,
    P_LAST,
    P_MARGIN,
    P_SIZE,
    P_SL,
    P_TP,
    P_TRAIL_DIST,
    P_TRAIL_FRAC,
)
from quantum_trading.sim.result import SimResult, build_result
from quantum_trading.sim.risk_nb import (
    RA_MULT,
    RI_ENABLED,
    RI_STATE,
    TRADING_STATE_NAMES,
    reset_risk_state_nb,
)
from quantum_trading.sim.state import (
    BarArrays,
    SignalArrays,
    SimParams,
    SimState,
    ensure_capacity,
    has_capacity,
    new_state,
    readonly_2d,
    risk_params,
)

__all__ = ["Simulator", "StepInfo", "run_arrays", "simulate", "simulate_prepared"]

_DEFAULT_COSTS = CostsConfig()
_OHLC = {"open": 0, "high": 1, "low": 2, "close": 3}
_DEFAULT_ACCOUNT = AccountConfig()


def run_arrays(state: SimState, bars: BarArrays, signals: SignalArrays, params: SimParams,
               t_start: int, t_end: int) -> SimState:
    """Step bars ``t_start .. t_end − 1`` with the whole-array kernel, growing buffers as
    needed. Returns the (possibly re-allocated) state."""
    t = t_start
    while True:
        t = int(simulate_nb(state, bars, signals, params, t, t_end))
        if t >= t_end:
            return state
        state = ensure_capacity(state, bars_needed=t + 1)


def simulate(
    bars: BarsInput,
    signals: Signals,
    *,
    instruments: Instrument | Mapping[str, Instrument] | None = None,
    costs: CostsConfig = _DEFAULT_COSTS,
    account: AccountConfig = _DEFAULT_ACCOUNT,
    funding: SeriesInput | None = None,
    mark: SeriesInput | None = None,
    risk: RiskConfig | None = None,
) -> SimResult:
    """Simulate a perpetual-futures account trading ``signals`` over ``bars``.

    Parameters
    ----------
    bars:
        OHLC(V) DataFrame (one asset) or dict symbol → DataFrame, each on the same UTC
        bar-open-time index. Optional columns: ``volume`` (needed for impact),
        ``funding_rate`` (rate settled at the bar's open), ``mark_price``.
    signals:
        Targets (multiple of equity, decided at the close, filled at the next open) and
        optional stops; see :class:`~quantum_trading.domain.Signals`.
    instruments:
        One :class:`~quantum_trading.domain.Instrument` (one asset) or dict symbol →
        Instrument; None = :meth:`Instrument.generic` for each symbol.
    costs, account:
        :class:`CostsConfig` and :class:`AccountConfig`.
    funding:
        Funding settlements stamped at their times: Series (one asset), DataFrame with a
        ``funding_rate`` column, or dict symbol → either. Overrides the bars' column and the
        default schedule.
    mark:
        Mark prices at their times (Series, DataFrame with ``mark``/``mark_price``/``open``,
        or dict), used for funding; default the bar's open.
    risk:
        :class:`RiskConfig`: every market order passes the risk limits at the open it fills
        at (approve / resize / reject, recorded in ``SimResult.risk_decisions``; trading state
        per bar in ``SimResult.risk_state``). None (default): no risk checks, results exactly
        as without this argument.

    Returns
    -------
    SimResult
        Equity, cash, positions, margin ratio and cumulative costs per bar; fills, orders and
        trades; totals; risk decisions and per-bar risk state when ``risk`` is given.

    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    >>> px = pd.DataFrame({"open": [100.0, 100, 110, 120], "high": [100.0, 110, 120, 120],
    ...                    "low": [100.0, 100, 110, 120], "close": [100.0, 110, 120, 120]},
    ...                   index=idx)
    >>> res = simulate(px, Signals(pd.Series([1.0, None, 0.0, None], index=idx, name="X")),
    ...                costs=CostsConfig(taker_fee_bps=0, half_spread_bps=0, slippage_bps=0,
    ...                                  default_funding_rate=0))
    >>> res.fills[["time", "side", "size", "price"]].values.tolist()[1]
    [Timestamp('2024-01-01 03:00:00+0000', tz='UTC'), -1, 100.0, 120.0]
    >>> res.final_equity_usd
    12000.0

    With risk limits (here: no position above 50 % of equity):

    >>> from quantum_trading.sim import RiskConfig
    >>> res = simulate(px, Signals(pd.Series([1.0, None, 0.0, None], index=idx, name="X")),
    ...                costs=CostsConfig(taker_fee_bps=0, half_spread_bps=0, slippage_bps=0,
    ...                                  default_funding_rate=0),
    ...                risk=RiskConfig(max_position_frac=0.5))
    >>> res.risk_decisions[["action", "reason", "requested_size", "approved_size"]].values[0]
    array(['resize', 'max_position', 100.0, 50.0], dtype=object)
    """
    prep = prepare(bars, signals, instruments=instruments, costs=costs, account=account,
                   funding=funding, mark=mark)
    return simulate_prepared(prep, risk=risk)


def simulate_prepared(
    prepared: Prepared,
    target: pd.Series | pd.DataFrame | np.ndarray | None = None,
    *,
    risk: RiskConfig | None = None,
) -> SimResult:
    """Run inputs checked once by :func:`~quantum_trading.sim.prepare`, optionally with new
    targets: the sweep API (validate the bars, costs and account once, then one call per
    parameter set; :func:`simulate` is ``simulate_prepared(prepare(...), risk=risk)``).

    Parameters
    ----------
    prepared:
        :class:`~quantum_trading.sim.inputs.Prepared` from :func:`~quantum_trading.sim.prepare`
        (bars, stops, costs, account; its bars must not change while it is in use).
    target:
        Targets replacing the prepared ones (same contract: multiple of equity decided at the
        close, filled at the next open, NaN = no decision): a Series / DataFrame on the bar
        index, or an array ``[T]`` (one asset) / ``[T, N]`` in symbol order. Only this array
        is checked (shape, no infinities). None: the prepared targets.
    risk:
        As in :func:`simulate`.

    Returns
    -------
    SimResult
        As :func:`simulate`'s; its pandas objects are built only when read, so a sweep that
        reads ``final_equity_usd`` / ``totals`` / ``records`` pays for the simulation alone.

    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    >>> px = pd.DataFrame({"open": [100.0, 100, 110, 120], "high": [100.0, 110, 120, 120],
    ...                    "low": [100.0, 100, 110, 120], "close": [100.0, 110, 120, 120]},
    ...                   index=idx)
    >>> from quantum_trading.sim import prepare
    >>> prep = prepare(px, Signals(pd.Series(float("nan"), index=idx, name="X")),
    ...                instruments=None, account=AccountConfig(),
    ...                costs=CostsConfig(taker_fee_bps=0, half_spread_bps=0, slippage_bps=0,
    ...                                  default_funding_rate=0))
    >>> [simulate_prepared(prep, np.array([f, np.nan, 0.0, np.nan])).final_equity_usd
    ...  for f in (0.5, 1.0)]
    [11000.0, 12000.0]
    """
    prep = prepared
    signals = prep.signals
    if target is not None:
        signals = signals._replace(target=target_array(target, prep.index, prep.symbols, "target"))
    n_bars = len(prep.index)
    params = prep.params
    if risk is not None:
        _check_risk(risk)
        params = params._replace(risk=risk_params(risk, prep.index.as_unit("ns").asi8))
    state = new_state(len(prep.symbols), prep.initial_cash_usd, n_bars=n_bars,
                      n_tiers_max=params.tiers.shape[1], risk=risk is not None,
                      risk_multiplier=risk.risk_multiplier if risk is not None else 1.0)
    state = run_arrays(state, prep.bars, signals, params, 0, n_bars)
    return build_result(state, symbols=prep.symbols, index=prep.index,
                        initial_cash_usd=prep.initial_cash_usd, notes=prep.notes, copy=False)


def _check_risk(risk: object) -> None:
    if not isinstance(risk, RiskConfig):
        raise ConfigError(f"risk: expected a RiskConfig (quantum_trading.risk.load_risk_config "
                          f"reads one from a dict or YAML), got {type(risk).__name__}")


class StepInfo(NamedTuple):
    """What one :meth:`Simulator.step` did."""

    bar: int  # 0-based bar number
    equity_usd: float  # at the close
    cash_usd: float
    positions: np.ndarray  # [N] signed sizes at the close
    fills: np.ndarray  # fill records of this bar (fill_dt)
    bankrupt: bool


def _fill(row: np.ndarray, value, name: str) -> None:
    """Write a number (all assets), ``[N]`` values or None (NaN) into a ``[N]`` row."""
    if value is None:
        row[:] = np.nan
    elif isinstance(value, int | float):
        row[:] = value
    else:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        if arr.size == 1:
            row[:] = arr[0]
        elif arr.size == row.size:
            row[:] = arr
        else:
            raise ConfigError(f"{name}: expected {row.size} values, got {arr.size}")


class Simulator:
    """One-bar-at-a-time simulator (RL env, paper exchange) on the same kernel as
    :func:`simulate`.

    Call :meth:`step` with each new bar and the target decided at that bar's close; the
    target fills at the next bar's open. Stops given here are the defaults of every entry;
    :meth:`step` may pass per-bar values of the same kind.

    >>> sim = Simulator("X", costs=CostsConfig(default_funding_rate=0.0))
    >>> bar = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5}
    >>> sim.step(bar, 1.0).positions.tolist(), sim.step(bar, 1.0).positions.tolist()[0] > 0
    ([0.0], True)
    """

    def __init__(
        self,
        symbols: str | Sequence[str],
        *,
        instruments: Instrument | Mapping[str, Instrument] | None = None,
        costs: CostsConfig = _DEFAULT_COSTS,
        account: AccountConfig = _DEFAULT_ACCOUNT,
        stop_loss: StopSpec | None = None,
        take_profit: StopSpec | None = None,
        trailing_stop: StopSpec | None = None,
        time_stop_bars: int | None = None,
        timeframe: str | pd.Timedelta | None = None,
        capacity_bars: int = 1024,
        risk: RiskConfig | None = None,
    ) -> None:
        self.symbols: tuple[str, ...] = (symbols,) if isinstance(symbols, str) else tuple(symbols)
        if not self.symbols:
            raise ConfigError("Simulator: symbols must not be empty")
        n = len(self.symbols)
        self.costs = costs
        self.account = account
        insts = _resolve_instruments(self.symbols, instruments)
        if time_stop_bars is not None and (not isinstance(time_stop_bars, int) or time_stop_bars < 1):
            raise ConfigError(f"Simulator: time_stop_bars must be an int >= 1, got {time_stop_bars!r}")
        self.params = build_params(self.symbols, insts, costs, account, time_stop_bars)
        self.risk = risk
        self._time_row = np.zeros(1, dtype=np.int64)  # the bar's open time, read by the kernel
        if risk is not None:
            _check_risk(risk)
            self.params = self.params._replace(risk=risk_params(risk, self._time_row))
        if isinstance(timeframe, str):
            from quantum_trading.data.timeframes import timeframe_to_timedelta

            timeframe = timeframe_to_timedelta(timeframe)
        self.timeframe = timeframe
        self._timeframe_ns = int(pd.Timedelta(timeframe).value) if timeframe is not None else 0
        self._stop_cols: dict[str, tuple[str, np.ndarray]] = {}
        for name, spec in (("sl", stop_loss), ("tp", take_profit), ("trail", trailing_stop)):
            kind = "fraction" if spec is None else spec.kind
            if spec is not None and not isinstance(spec.value, int | float):
                raise ConfigError(f"Simulator: {name} StopSpec value must be a number here; "
                                  "pass per-bar values to step()")
            if name == "trail" and kind == "price":
                raise ConfigError("Simulator: trailing_stop must be 'fraction' or 'distance'")
            col = {"fraction": "frac", "distance": "dist", "price": "price"}[kind]
            default = np.full(n, np.nan if spec is None else float(spec.value))
            self._stop_cols[name] = (f"{name}_{col}", default)
        self.state = new_state(n, account.initial_cash_usd, n_bars=capacity_bars,
                               n_tiers_max=self.params.tiers.shape[1], risk=risk is not None,
                               risk_multiplier=risk.risk_multiplier if risk is not None else 1.0)
        # writable [1, N] rows, passed to the kernel as read-only views of the same memory
        self._bar_rows = {k: np.full((1, n), np.nan) for k in BarArrays._fields}
        self._ohlc = np.full((4, n), np.nan)  # the bar's prices; the rows below are its views
        for key, k in _OHLC.items():
            self._bar_rows[key] = self._ohlc[k : k + 1]
        self._sig_rows = {k: np.full((1, n), np.nan) for k in SignalArrays._fields}
        self._bars = BarArrays(**{k: readonly_2d(v) for k, v in self._bar_rows.items()})
        self._sig = SignalArrays(**{k: readonly_2d(v) for k, v in self._sig_rows.items()})
        self._times: list[pd.Timestamp | None] = []
        self._close_hist = np.zeros((capacity_bars, n))
        self._volume_hist = np.zeros((capacity_bars, n))

    # -- stepping ---------------------------------------------------------------------------
    def step(
        self,
        bar: Mapping[str, float | Sequence[float] | np.ndarray],
        target: float | Sequence[float] | np.ndarray | None,
        *,
        time: pd.Timestamp | None = None,
        funding_rate: float | Sequence[float] | np.ndarray | None = None,
        mark: float | Sequence[float] | np.ndarray | None = None,
        stop_loss: float | Sequence[float] | np.ndarray | None = None,
        take_profit: float | Sequence[float] | np.ndarray | None = None,
        trailing_stop: float | Sequence[float] | np.ndarray | None = None,
    ) -> StepInfo:
        """Simulate one bar, then record ``target`` (decided at its close) for the next open.

        Parameters
        ----------
        bar:
            ``open``, ``high``, ``low``, ``close`` (and ``volume`` when impact is on): a number
            each (one asset) or ``[N]`` arrays.
        target:
            Multiple of equity per asset; NaN/None = no decision.
        time:
            The bar's open time (UTC); labels results and drives the default funding schedule
            and, with risk limits, the UTC day / week bookkeeping (then required).
        funding_rate:
            Rate settled at this bar's open (NaN = none). None: the default schedule
            (needs ``time`` and ``timeframe``) unless ``default_funding_rate`` is 0.
        mark:
            Mark price for funding (default: the open).
        stop_loss, take_profit, trailing_stop:
            Values for an entry that this bar's target may open, of the kind given to the
            constructor (a fraction when the constructor got none); None = the constructor's
            value; NaN = no stop.
        """
        st = self.state
        t = int(st.counters[C_NEXT_BAR])
        rb = self._bar_rows
        for key in ("open", "high", "low", "close"):
            if key not in bar:
                raise DataError(f"bar {t}: missing {key!r}")
            _fill(self._ohlc[_OHLC[key]], bar[key], key)
        problem = bar_problem_nb(self._ohlc)
        if problem:
            raise DataError(f"bar {t}: prices must be finite, > 0 and low <= open, close <= high")
        if self.risk is not None:
            if time is None:
                raise ConfigError("Simulator.step: time= is required with risk limits "
                                  "(UTC day and week bookkeeping)")
            stamp = pd.Timestamp(time)
            if stamp.tz is None:
                raise DataError("Simulator.step: time must be tz-aware UTC")
            self._time_row[0] = stamp.as_unit("ns").value
        if not has_capacity(st, t):
            self.state = st = ensure_capacity(st, bars_needed=t + 1)
        _fill(rb["mark"][0], mark, "mark")
        self._funding_row(rb["funding_rate"][0], funding_rate, time)
        if self.params.impact_k.max() > 0:
            if "volume" not in bar:
                raise DataError(f"bar {t}: 'volume' is needed when impact_k > 0")
            if self._close_hist.shape[0] <= t:
                self._close_hist = np.concatenate([self._close_hist, np.zeros_like(self._close_hist)])
                self._volume_hist = np.concatenate([self._volume_hist,
                                                    np.zeros_like(self._volume_hist)])
            impact_inputs_at_nb(self._close_hist, self._volume_hist, t,
                                self.costs.impact_window_bars, rb["sigma"][0], rb["volume_usd"][0])
            self._close_hist[t] = self._ohlc[3]
            _fill(self._volume_hist[t], bar["volume"], "volume")
        rs = self._sig_rows
        _fill(rs["target"][0], target, "target")
        for name, value in (("sl", stop_loss), ("tp", take_profit), ("trail", trailing_stop)):
            col, default = self._stop_cols[name]
            if value is None:
                rs[col][0] = default
            else:
                _fill(rs[col][0], value, name)
        b, s = self._bars, self._sig
        n_fills = int(st.counters[C_FILLS])
        # one step of the whole-array loop = step_nb(st, t, b, s, params), compiled once
        if simulate_nb(st, b, s, self.params, t, t + 1) != t + 1:  # pragma: no cover
            raise RuntimeError("simulator buffers full after ensure_capacity")
        self._times.append(time)
        return StepInfo(
            bar=t,
            equity_usd=float(st.acct[A_EQUITY]),
            cash_usd=float(st.acct[A_CASH]),
            positions=st.pos[:, P_SIZE].copy(),
            fills=st.fills[n_fills: st.counters[C_FILLS]].copy(),
            bankrupt=bool(st.counters[C_BANKRUPT]),
        )

    def _funding_row(self, row: np.ndarray, funding_rate, time) -> None:
        if funding_rate is not None:
            _fill(row, funding_rate, "funding_rate")
            return
        if self.costs.default_funding_rate == 0.0:
            row[:] = np.nan
            return
        if time is None or self.timeframe is None:
            raise ConfigError("Simulator.step: pass funding_rate=, or time= with a timeframe "
                              "for the default funding schedule (or set default_funding_rate=0)")
        stamp = time if isinstance(time, pd.Timestamp) else pd.Timestamp(time)
        if stamp.tz is None:
            raise DataError("Simulator.step: time must be tz-aware UTC")
        ns = int(stamp.value)  # same integer rule as default_funding_mask
        period = self.costs.funding_interval_h * 3_600_000_000_000
        first = -((-ns) // period) * period
        due = first < ns + self._timeframe_ns
        row[:] = self.costs.default_funding_rate if due else np.nan

    # -- reading ------------------------------------------------------------------------------
    @property
    def n_bars(self) -> int:
        """Bars stepped so far."""
        return int(self.state.counters[C_NEXT_BAR])

    @property
    def equity_usd(self) -> float:
        """Equity at the last close."""
        return float(self.state.acct[A_EQUITY])

    @property
    def cash_usd(self) -> float:
        """Wallet balance (USDT)."""
        return float(self.state.acct[A_CASH])

    @property
    def bankrupt(self) -> bool:
        """True once equity reached 0; the account never trades again."""
        return bool(self.state.counters[C_BANKRUPT])

    @property
    def positions(self) -> np.ndarray:
        """Signed sizes (base units) after the last bar."""
        return self.state.pos[:, P_SIZE].copy()

    @property
    def trading_state(self) -> str | None:
        """Risk trading state after the last bar: ``"active"``, ``"reducing"`` or
        ``"halted"``; None without risk limits."""
        if not self.state.risk.ints[RI_ENABLED]:
            return None
        return TRADING_STATE_NAMES[int(self.state.risk.ints[RI_STATE])]

    def set_risk_multiplier(self, multiplier: float) -> None:
        """Scale the risk limits' position and exposure caps by ``multiplier`` in [0, 1]
        from the next order check on (the behavioural input)."""
        self._need_risk("set_risk_multiplier")
        m = float(multiplier)
        if not 0.0 <= m <= 1.0:
            raise ConfigError(f"risk_multiplier: must be in [0, 1], got {multiplier!r}")
        self.state.risk.acct[RA_MULT] = m

    def reset_risk(self) -> None:
        """A person's reset: leave the halted / reducing state (peak, day and week start
        equity restart from the last equity observed)."""
        self._need_risk("reset_risk")
        reset_risk_state_nb(self.state.risk)

    def _need_risk(self, what: str) -> None:
        if self.risk is None:
            raise ConfigError(f"Simulator.{what}: no risk limits (pass risk=RiskConfig(...))")

    def position_list(self) -> list[Position]:
        """Positions after the last bar, with entry, margin and exit levels."""
        out = []
        pos = self.state.pos
        for i, sym in enumerate(self.symbols):
            s = float(pos[i, P_SIZE])
            d = 1.0 if s > 0 else -1.0
            trail = math.nan
            if s != 0 and not math.isnan(pos[i, P_TRAIL_FRAC]):
                trail = pos[i, P_BEST] * (1 - d * pos[i, P_TRAIL_FRAC])
            elif s != 0 and not math.isnan(pos[i, P_TRAIL_DIST]):
                trail = pos[i, P_BEST] - d * pos[i, P_TRAIL_DIST]
            upnl = s * (pos[i, P_LAST] - pos[i, P_ENTRY]) if s != 0 else 0.0
            out.append(Position(symbol=sym, size=s, entry_price=float(pos[i, P_ENTRY]),
                                margin_usd=float(pos[i, P_MARGIN]), unrealized_pnl_usd=float(upnl),
                                stop_loss=float(pos[i, P_SL]), take_profit=float(pos[i, P_TP]),
                                trailing_stop=float(trail)))
        return out

    def result(self) -> SimResult:
        """Everything so far as a :class:`SimResult` (indexed by the ``time`` values given,
        else by bar number)."""
        if self._times and all(t is not None for t in self._times):
            index: pd.Index = pd.DatetimeIndex(self._times)
        else:
            index = pd.RangeIndex(len(self._times))
        return build_result(self.state, symbols=self.symbols, index=index,
                            initial_cash_usd=self.account.initial_cash_usd)
