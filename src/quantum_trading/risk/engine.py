"""The risk engine: every order passes it; it answers approve / resize / reject with a reason.

:class:`RiskEngine` is the live/paper face of the risk limits. It holds a trading state
(active / reducing / halted, NautilusTrader's kill switch) and calls the **same numba kernels**
as the simulator (:mod:`quantum_trading.sim.risk_nb`, re-exported by
:mod:`quantum_trading.risk.limits_nb`), so a backtest run with ``simulate(..., risk=config)``
and this engine fed the same observations and orders decide identically (property-tested).
Around the kernels it adds the text of each reason, the decision log, the manual reset, a
manual halt and the behavioural risk multiplier.

Protocol (what the simulator does at every bar):

1. :meth:`RiskEngine.update` with each new equity (at least at every bar's open and close):
   it rolls the UTC day (Monday-start week), moves the peak and applies the loss locks. When
   the drawdown limit halts trading it returns the reduce-only orders that flatten every
   position; send them.
2. :meth:`RiskEngine.check_order` for every order before it is sent, with the current
   positions and prices. Denials are values, never exceptions.

Stops, take-profits and liquidations do not pass the engine (they only reduce risk).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.risk.limits import (
    RiskAction,
    RiskDecision,
    RiskReason,
    TradingState,
    describe_decision,
)
from quantum_trading.sim.config import RiskConfig
from quantum_trading.sim.fastcall import bound_kernel
from quantum_trading.sim.risk_nb import (
    RA_DAY_START,
    RA_MULT,
    RA_PEAK,
    RA_WEEK_START,
    RD_APPROVE,
    RI_REASON,
    RI_STARTED,
    RI_STATE,
    RI_TRADES,
    RR_DRAWDOWN_FLATTEN,
    RR_MANUAL_HALT,
    check_order_nb,
    halt_risk_state_nb,
    new_risk_state,
    reset_risk_state_nb,
    update_risk_state_nb,
)
from quantum_trading.sim.state import risk_params

__all__ = ["RiskEngine"]

# the kernels' codes → the enums, by dict: Enum(value) costs ~1 µs a call in the order check
_STATES = {m.value: m for m in TradingState}
_ACTIONS = {m.value: m for m in RiskAction}
_REASONS = {m.value: m for m in RiskReason}

Values = Mapping[str, float] | Sequence[float] | np.ndarray
_SNAPSHOT_VERSION = 1


_UTC_TZ = pd.Timestamp(0, tz="UTC").tzinfo  # the tz object of pandas' UTC stamps

class RiskEngine:
    """Pre-trade risk checks and the trading state for one account.

    Parameters
    ----------
    config:
        :class:`~quantum_trading.sim.config.RiskConfig` (None = its defaults).
    symbols:
        The tradable symbols (ccxt unified), in a fixed order.
    leverage:
        The account's leverage setting per symbol (×), one number for all or a dict; checked
        against ``max_leverage``.
    lot_size:
        Order size increment per symbol (base units; 0 = any size); resized orders are
        rounded toward zero to it.

    >>> import pandas as pd
    >>> eng = RiskEngine(RiskConfig(max_position_frac=0.5), symbols=["BTC/USDT:USDT"])
    >>> t = pd.Timestamp("2024-01-01 00:00", tz="UTC")
    >>> eng.update(t, 10_000.0)
    []
    >>> d = eng.check_order(t, "BTC/USDT:USDT", 1.0, equity_usd=10_000.0,
    ...                     positions={"BTC/USDT:USDT": 0.0}, prices={"BTC/USDT:USDT": 40_000.0})
    >>> d.action.label, d.approved_size, d.reason.label
    ('resize', 0.125, 'max_position')
    >>> eng.update(t + pd.Timedelta("1h"), 9_400.0)  # -6 % today: daily lock
    []
    >>> eng.trading_state.label, eng.check_order(
    ...     t + pd.Timedelta("1h"), "BTC/USDT:USDT", 0.1, equity_usd=9_400.0,
    ...     positions=[0.125], prices=[36_000.0]).action.label
    ('reducing', 'reject')
    """

    def __init__(
        self,
        config: RiskConfig | None = None,
        *,
        symbols: str | Sequence[str],
        leverage: float | Mapping[str, float] = 1.0,
        lot_size: float | Mapping[str, float] = 0.0,
    ) -> None:
        if config is None:
            config = RiskConfig()
        if not isinstance(config, RiskConfig):
            raise ConfigError(f"RiskEngine: config must be a RiskConfig, got {type(config).__name__}")
        self.config = config
        self.symbols: tuple[str, ...] = (symbols,) if isinstance(symbols, str) else tuple(symbols)
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ConfigError("RiskEngine: symbols must be a non-empty list of distinct names")
        self._pos = {s: k for k, s in enumerate(self.symbols)}
        self._symbol_set = frozenset(self.symbols)
        self._leverage = self._per_symbol(leverage, "leverage", lo=1.0)
        self._lot = self._per_symbol(lot_size, "lot_size", lo=0.0)
        self._params = risk_params(config)
        self._state = new_risk_state(len(self.symbols), enabled=True,
                                     multiplier=config.risk_multiplier)
        self._last_ns: int | None = None
        # the kernels' compiled entry points, bound at the first call: the state's and the
        # limits' NamedTuples cost numba ~5 µs of argument typing a call otherwise
        self._update: Callable[..., bool] | None = None
        self._check_order: Callable[..., tuple[int, float, int]] | None = None
        self.decisions: list[RiskDecision] = []
        """Every decision so far, in order (orders checked, flatten orders made)."""

    # -- inputs ---------------------------------------------------------------------------------
    def _per_symbol(self, value: float | Mapping[str, float], name: str, lo: float) -> np.ndarray:
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(self.symbols))
            if unknown:
                raise ConfigError(f"RiskEngine.{name}: unknown symbols {unknown}")
            arr = np.array([float(value.get(s, 1.0 if name == "leverage" else 0.0))
                            for s in self.symbols])
        else:
            arr = np.full(len(self.symbols), float(value))
        if not np.all(np.isfinite(arr)) or np.any(arr < lo):
            raise ConfigError(f"RiskEngine.{name}: values must be finite and >= {lo:g}")
        return arr

    def _vector(self, values: Values | None, name: str) -> np.ndarray:
        n = len(self.symbols)
        if values is None:
            return np.zeros(n)
        if isinstance(values, Mapping):
            if len(values) > n or not self._symbol_set.issuperset(values):
                unknown = sorted(set(values) - self._symbol_set)
                raise ConfigError(f"RiskEngine: {name} for unknown symbols {unknown}")
            # checked in Python: a few symbols cost ~1 µs, numpy's checks ~10 µs a call
            listed = [float(values.get(s, 0.0)) for s in self.symbols]
            for v in listed:
                if not math.isfinite(v):
                    raise ConfigError(f"RiskEngine: {name} must be finite")
            return np.array(listed)
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size != n:
            raise ConfigError(f"RiskEngine: {name} needs {n} values, got {arr.size}")
        arr = arr.copy()
        if not np.isfinite(arr).all():
            raise ConfigError(f"RiskEngine: {name} must be finite")
        return arr

    def _index(self, symbol: str) -> int:
        try:
            return self._pos[symbol]
        except KeyError:
            raise ConfigError(f"RiskEngine: unknown symbol {symbol!r}") from None

    @staticmethod
    def _stamp(time: pd.Timestamp | str) -> pd.Timestamp:
        if type(time) is pd.Timestamp and time.tzinfo is _UTC_TZ:
            return time  # already a UTC Timestamp (the trader's): ~0.2 µs instead of ~5 µs
        stamp = pd.Timestamp(time)
        if stamp.tz is None:
            raise ConfigError("RiskEngine: times must be tz-aware UTC")
        return stamp.tz_convert("UTC")

    def bind_kernels(self) -> None:
        """Fetch the compiled entry points of the state update and the order check (loading
        them from numba's cache, or compiling them, when this process has not yet), so that
        later calls skip numba's typing of the state's and limits' NamedTuples (~5 µs a
        call). Done at the first :meth:`update` or :meth:`check_order`; the live trader's
        start calls it so that its first decision does not pay for it (≈ 0.3 ms). Changes
        no state."""
        n = len(self.symbols)
        self._update = bound_kernel(update_risk_state_nb, self._state, self._params, 0, 0.0)
        self._check_order = bound_kernel(check_order_nb, self._state, self._params, 0, 0.0,
                                         np.zeros(n), np.zeros(n), 0.0, 0.0, 0.0)

    # -- the protocol ---------------------------------------------------------------------------
    def update(self, time: pd.Timestamp | str, equity_usd: float, *,
               positions: Values | None = None, prices: Values | None = None) -> list[RiskDecision]:
        """Observe the account's equity (USDT) at ``time``; return flatten orders if this
        observation hit the drawdown limit (one reduce-only close per open position; empty
        when ``positions`` is not given — the state is halted all the same).

        Times must not go backwards. The first observation of a UTC day / week sets its
        starting equity (daily / weekly locks lift there); the peak is the highest equity seen.
        """
        stamp = self._stamp(time)
        ns = int(stamp.value)  # nanoseconds, whatever the Timestamp's unit
        if self._last_ns is not None and ns < self._last_ns:
            raise ConfigError(f"RiskEngine.update: time {stamp} is before the last update")
        equity = float(equity_usd)
        if not math.isfinite(equity):
            raise ConfigError("RiskEngine.update: equity_usd must be finite")
        self._last_ns = ns
        if self._update is None:
            self.bind_kernels()
        assert self._update is not None
        halted = self._update(self._state, self._params, ns, equity)
        if not halted:
            return []
        return self._flatten(stamp, RR_DRAWDOWN_FLATTEN, positions, prices, equity)

    def check_order(self, time: pd.Timestamp | str, symbol: str, size: float, *,
                    equity_usd: float, positions: Values | None = None,
                    prices: Values) -> RiskDecision:
        """Decide on a market order of ``size`` units (signed: + buy) of ``symbol``.

        Parameters
        ----------
        time:
            When the order is checked (recorded; the day's state comes from :meth:`update`).
        equity_usd:
            Current equity, the base of the size and exposure caps.
        positions, prices:
            Signed positions (base units) and prices (USDT) by symbol (dict, or values in
            ``symbols`` order); ``prices`` must cover ``symbol`` and every open position.
            Several orders at once: pass the positions the orders approved before leave.

        Returns
        -------
        RiskDecision
            Approve / resize / reject with its reason and text; also appended to
            :attr:`decisions`. Approved orders that add risk count toward the day's trades.
        """
        stamp = self._stamp(time)
        i = self._index(symbol)
        pos = self._vector(positions, "positions")
        px = self._vector(prices, "prices")
        if not px[i] > 0.0 or any(p != 0.0 and not x > 0.0
                                  for p, x in zip(pos.tolist(), px.tolist(), strict=True)):
            raise ConfigError(f"RiskEngine.check_order: prices must be > 0 for {symbol!r} and "
                              "every open position")
        q = float(size)
        equity = float(equity_usd)
        if not (math.isfinite(q) and math.isfinite(equity)):
            raise ConfigError("RiskEngine.check_order: size and equity_usd must be finite")
        state = _STATES[int(self._state.ints[RI_STATE])]
        args = (self._state, self._params, i, q, pos, px, equity, float(self._leverage[i]),
                float(self._lot[i]))
        if self._check_order is None:
            self.bind_kernels()
        assert self._check_order is not None
        action, qa, reason = self._check_order(*args)
        return self._log(stamp, i, _ACTIONS[int(action)], _REASONS[int(reason)], q,
                         float(qa), state, float(pos[i]), float(px[i]), equity)

    # -- people and behaviour -------------------------------------------------------------------
    def set_risk_multiplier(self, multiplier: float) -> None:
        """Scale the position and exposure caps by ``multiplier`` in [0, 1] (behavioural
        input: 0 = no new risk at all, 1 = the configured limits)."""
        m = float(multiplier)
        if not 0.0 <= m <= 1.0:
            raise ConfigError(f"risk_multiplier: must be in [0, 1], got {multiplier!r}")
        self._state.acct[RA_MULT] = m

    def reset(self) -> None:
        """A person's reset: leave the halted / reducing state. The peak, day and week start
        equity restart from the last equity observed, so the same loss does not lock again."""
        reset_risk_state_nb(self._state)

    def halt(self, time: pd.Timestamp | str, *, equity_usd: float,
             positions: Values | None = None, prices: Values | None = None) -> list[RiskDecision]:
        """A person's kill switch: halt now and return the orders that flatten everything."""
        stamp = self._stamp(time)
        if not halt_risk_state_nb(self._state, RR_MANUAL_HALT):
            return []
        return self._flatten(stamp, RR_MANUAL_HALT, positions, prices, float(equity_usd))

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The account state as JSON-able values, for :meth:`restore` after a restart: the
        trading state and its reason, the daily / weekly locks and the drawdown halt, the
        UTC day and week, their start equity, the peak, the last equity, today's count of
        risk-adding orders, the behavioural multiplier and the last observation time (ns).
        Decisions are not part of it (they are stored one by one).

        >>> eng = RiskEngine(RiskConfig(), symbols=["BTC"])
        >>> _ = eng.update(pd.Timestamp("2024-01-01", tz="UTC"), 1_000.0)
        >>> again = RiskEngine(RiskConfig(), symbols=["BTC"])
        >>> again.restore(eng.snapshot())
        >>> again.peak_equity_usd, again.trading_state.label
        (1000.0, 'active')
        """
        return {"version": _SNAPSHOT_VERSION, "symbols": list(self.symbols),
                "last_ns": self._last_ns,
                "acct": [None if math.isnan(v) else float(v) for v in self._state.acct],
                "ints": [int(v) for v in self._state.ints]}

    def restore(self, snapshot: Mapping[str, Any], *, trades_after: int = 0) -> None:
        """Take the state of :meth:`snapshot` (of an engine on the same symbols).

        ``trades_after``: risk-adding orders approved after the snapshot was taken, on its
        UTC day (a crash between sending them and writing the snapshot); added to the day's
        count. Raises :class:`ConfigError` for a snapshot of another version, other symbols
        or the wrong shape; the engine is unchanged then.
        """
        if snapshot.get("version") != _SNAPSHOT_VERSION:
            raise ConfigError(f"RiskEngine.restore: snapshot version {snapshot.get('version')!r}"
                              f", expected {_SNAPSHOT_VERSION}")
        if list(snapshot.get("symbols") or []) != list(self.symbols):
            raise ConfigError(f"RiskEngine.restore: snapshot of symbols "
                              f"{snapshot.get('symbols')}, this engine trades {list(self.symbols)}")
        acct, ints = snapshot.get("acct") or [], snapshot.get("ints") or []
        if len(acct) != self._state.acct.size or len(ints) != self._state.ints.size:
            raise ConfigError("RiskEngine.restore: snapshot arrays of the wrong length")
        if int(trades_after) < 0:
            raise ConfigError("RiskEngine.restore: trades_after must be >= 0")
        self._state.acct[:] = [math.nan if v is None else float(v) for v in acct]
        self._state.ints[:] = [int(v) for v in ints]
        self._state.ints[RI_TRADES] += int(trades_after)
        last = snapshot.get("last_ns")
        self._last_ns = None if last is None else int(last)

    def raise_peak(self, equity_usd: float) -> None:
        """Make the peak at least ``equity_usd`` (an equity seen while this engine was not
        running, e.g. stored after its last snapshot). The drawdown is measured from it at
        the next :meth:`update`; nothing else changes."""
        value = float(equity_usd)
        if not math.isfinite(value):
            raise ConfigError("RiskEngine.raise_peak: equity_usd must be finite")
        if not value <= self._state.acct[RA_PEAK]:  # NaN peak (never started) too
            self._state.acct[RA_PEAK] = value

    # -- reading --------------------------------------------------------------------------------
    @property
    def trading_state(self) -> TradingState:
        """Active, reducing (reduce-only after a loss limit) or halted (until :meth:`reset`)."""
        return TradingState(int(self._state.ints[RI_STATE]))

    @property
    def lock_reason(self) -> RiskReason:
        """Why the state is not active (``OK`` when it is)."""
        return RiskReason(int(self._state.ints[RI_REASON]))

    @property
    def risk_multiplier(self) -> float:
        """The behavioural multiplier in [0, 1]."""
        return float(self._state.acct[RA_MULT])

    @property
    def trades_today(self) -> int:
        """Approved orders that added risk since the UTC day began."""
        return int(self._state.ints[RI_TRADES])

    @property
    def day_start_equity_usd(self) -> float:
        """Equity at the first observation of the current UTC day (NaN before any)."""
        return float(self._state.acct[RA_DAY_START])

    @property
    def week_start_equity_usd(self) -> float:
        """Equity at the first observation of the current week (NaN before any)."""
        return float(self._state.acct[RA_WEEK_START])

    @property
    def peak_equity_usd(self) -> float:
        """Highest equity observed since the start or the last reset (NaN before any)."""
        return float(self._state.acct[RA_PEAK])

    @property
    def started(self) -> bool:
        """Whether :meth:`update` has been called."""
        return bool(self._state.ints[RI_STARTED])

    def decision_frame(self) -> pd.DataFrame:
        """:attr:`decisions` as a DataFrame (enums as lower-case names)."""
        cols = ["time", "symbol", "action", "reason", "text", "requested_size", "approved_size",
                "trading_state", "position_before", "price", "equity_usd"]
        return pd.DataFrame([d.as_dict() for d in self.decisions], columns=cols)

    # -- internals ------------------------------------------------------------------------------
    def _flatten(self, stamp: pd.Timestamp, reason: int, positions: Values | None,
                 prices: Values | None, equity: float) -> list[RiskDecision]:
        if positions is None:
            return []
        pos = self._vector(positions, "positions")
        px = self._vector(prices, "prices") if prices is not None else np.full(pos.size, np.nan)
        state = TradingState(int(self._state.ints[RI_STATE]))
        why = RiskReason.DRAWDOWN_FLATTEN if reason == RR_DRAWDOWN_FLATTEN else RiskReason(reason)
        return [self._log(stamp, i, RiskAction(RD_APPROVE), why, -float(s), -float(s), state,
                          float(s), float(px[i]), equity)
                for i, s in enumerate(pos) if s != 0.0]

    def _log(self, stamp: pd.Timestamp, i: int, action: RiskAction, reason: RiskReason,
             requested: float, approved: float, state: TradingState, position: float,
             price: float, equity: float) -> RiskDecision:
        text = describe_decision(
            action, reason, config=self.config, state_acct=self._state.acct,
            state_ints=self._state.ints, symbol=self.symbols[i], requested=requested,
            approved=approved, position=position, price=price, equity=equity,
            leverage=float(self._leverage[i]))
        decision = RiskDecision(time=stamp, symbol=self.symbols[i], action=action, reason=reason,
                                text=text, requested_size=requested, approved_size=approved,
                                trading_state=state, position_before=position, price=price,
                                equity_usd=equity)
        self.decisions.append(decision)
        return decision
