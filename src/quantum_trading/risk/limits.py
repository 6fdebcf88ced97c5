"""Risk limits as values: trading states, decisions, reasons and the decision record.

The integer values are the codes the kernels write (:mod:`quantum_trading.sim.risk_nb`); the
enum names, lower-cased, are the strings in ``SimResult.risk_decisions`` and
``SimResult.risk_state``.

* :class:`TradingState` — ``ACTIVE`` (everything allowed within limits), ``REDUCING``
  (reduce-only: a daily or weekly loss limit was hit), ``HALTED`` (kill switch: drawdown limit
  or a person; everything was flattened; reduce-only until a person resets it).
* :class:`RiskAction` — what happened to an order: ``APPROVE``, ``RESIZE`` (smaller, same
  direction; a flip may be cut to a close), ``REJECT``.
* :class:`RiskReason` — why (the limit that decided, or ``OK`` / ``REDUCES_RISK``).

>>> RiskReason.DAILY_LOSS.label, TradingState(1).label
('daily_loss', 'reducing')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pandas as pd

from quantum_trading.sim import risk_nb as _k
from quantum_trading.sim.config import RiskConfig

__all__ = ["RiskAction", "RiskDecision", "RiskReason", "TradingState", "describe_decision"]


class _Labelled(IntEnum):
    @property
    def label(self) -> str:
        """The lower-case name used in data frames."""
        return self.name.lower()


class TradingState(_Labelled):
    """What may still be sent (NautilusTrader's trading state)."""

    ACTIVE = _k.TS_ACTIVE
    REDUCING = _k.TS_REDUCING
    HALTED = _k.TS_HALTED


class RiskAction(_Labelled):
    """The answer to one order."""

    APPROVE = _k.RD_APPROVE
    RESIZE = _k.RD_RESIZE
    REJECT = _k.RD_REJECT


class RiskReason(_Labelled):
    """Why an order was approved, resized or rejected (or why the state is not active)."""

    OK = _k.RR_OK
    REDUCES_RISK = _k.RR_REDUCES_RISK
    MAX_DRAWDOWN = _k.RR_MAX_DRAWDOWN
    DAILY_LOSS = _k.RR_DAILY_LOSS
    WEEKLY_LOSS = _k.RR_WEEKLY_LOSS
    MAX_LEVERAGE = _k.RR_MAX_LEVERAGE
    MAX_TRADES_PER_DAY = _k.RR_MAX_TRADES
    MAX_POSITION = _k.RR_MAX_POSITION
    MAX_GROSS_EXPOSURE = _k.RR_MAX_GROSS
    MAX_NET_EXPOSURE = _k.RR_MAX_NET
    DRAWDOWN_FLATTEN = _k.RR_DRAWDOWN_FLATTEN
    MANUAL_HALT = _k.RR_MANUAL_HALT


# the kernels' name tables and these enums must agree (checked once, at import)
for _enum, _names in ((TradingState, _k.TRADING_STATE_NAMES), (RiskAction, _k.ACTION_NAMES),
                      (RiskReason, _k.REASON_NAMES)):
    if tuple(m.label for m in _enum) != _names:  # pragma: no cover
        raise RuntimeError(f"{_enum.__name__} out of step with sim/risk_nb.py")


@dataclass(frozen=True)
class RiskDecision:
    """One decision of the risk engine, as logged.

    Sizes are signed base units of the order (``approved_size`` 0 = nothing may be sent);
    ``position_before`` the signed position when decided; ``price`` and ``equity_usd`` what
    the limits were measured with (USDT); ``trading_state`` the state when decided.
    """

    time: pd.Timestamp
    symbol: str
    action: RiskAction
    reason: RiskReason
    text: str
    requested_size: float
    approved_size: float
    trading_state: TradingState
    position_before: float
    price: float
    equity_usd: float

    @property
    def approved(self) -> bool:
        """Whether anything may be sent (approve, or a resize to a non-zero size)."""
        return self.action != RiskAction.REJECT and self.approved_size != 0.0

    def as_dict(self) -> dict[str, object]:
        """The record as a flat dict (enums as lower-case names), for logs and frames."""
        return {
            "time": self.time, "symbol": self.symbol, "action": self.action.label,
            "reason": self.reason.label, "text": self.text,
            "requested_size": self.requested_size, "approved_size": self.approved_size,
            "trading_state": self.trading_state.label, "position_before": self.position_before,
            "price": self.price, "equity_usd": self.equity_usd,
        }


_VERDICTS = {RiskAction.APPROVE: "approved", RiskAction.RESIZE: "resized",
             RiskAction.REJECT: "rejected"}


def _until(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


def describe_decision(
    action: RiskAction, reason: RiskReason, *, config: RiskConfig, state_acct: np.ndarray,
    state_ints: np.ndarray, symbol: str, requested: float, approved: float, position: float,
    price: float, equity: float, leverage: float,
) -> str:
    """One line saying why, with the numbers (the engine's text; the kernels keep codes).

    ``state_acct`` / ``state_ints`` are the kernel's ``RiskState.acct`` / ``.ints`` after the
    decision; sizes in base units, ``price`` and ``equity`` in USDT.

    >>> import numpy as np
    >>> from quantum_trading.sim import RiskConfig
    >>> describe_decision(RiskAction.REJECT, RiskReason.MAX_LEVERAGE, config=RiskConfig(),
    ...                   state_acct=np.ones(6), state_ints=np.zeros(11, dtype=int),
    ...                   symbol="BTC", requested=1.0, approved=0.0, position=0.0,
    ...                   price=100.0, equity=1000.0, leverage=20.0)
    'rejected: account leverage 20x for BTC above max_leverage 10x'
    """
    after = position + approved
    frac = abs(position + requested) * price / equity if equity > 0 else math.inf
    verdict = _VERDICTS[action]
    if reason == RiskReason.OK:  # the usual two first: the trader's decision path
        return f"{verdict}: {symbol} position {frac:.4g}x equity within every limit"
    if reason == RiskReason.REDUCES_RISK:
        return f"{verdict}: reduces |{symbol}| from {abs(position):.8g} to {abs(after):.8g}"
    m = float(state_acct[_k.RA_MULT])
    cut = ", flip cut to a close" if action == RiskAction.RESIZE and after == 0.0 else ""
    day = int(state_ints[_k.RI_DAY])
    week = int(state_ints[_k.RI_WEEK])
    if reason == RiskReason.MAX_DRAWDOWN:
        peak = float(state_acct[_k.RA_PEAK])
        return (f"{verdict}{cut}: halted, equity fell {config.max_drawdown_pct}% or more from "
                f"the peak {peak:,.2f} USDT; reduce-only until reset()")
    if reason == RiskReason.DAILY_LOSS:
        start = float(state_acct[_k.RA_DAY_START])
        return (f"{verdict}{cut}: daily loss limit {config.daily_loss_limit_pct}% hit (day "
                f"start equity {start:,.2f} USDT); reduce-only until "
                f"{_until((day + 1) * _k.NS_PER_DAY)}")
    if reason == RiskReason.WEEKLY_LOSS:
        start = float(state_acct[_k.RA_WEEK_START])
        monday = ((week + 1) * 7 - 3) * _k.NS_PER_DAY
        return (f"{verdict}{cut}: weekly loss limit {config.weekly_loss_limit_pct}% hit (week "
                f"start equity {start:,.2f} USDT); reduce-only until {_until(monday)}")
    if reason == RiskReason.MAX_LEVERAGE:
        return (f"{verdict}{cut}: account leverage {leverage:g}x for {symbol} above "
                f"max_leverage {config.max_leverage:g}x")
    if reason == RiskReason.MAX_TRADES_PER_DAY:
        return (f"{verdict}{cut}: {int(state_ints[_k.RI_TRADES])} risk-adding orders today "
                f"reached max_trades_per_day {config.max_trades_per_day}")
    if reason in (RiskReason.MAX_POSITION, RiskReason.MAX_GROSS_EXPOSURE,
                  RiskReason.MAX_NET_EXPOSURE):
        name, limit = {
            RiskReason.MAX_POSITION: ("max_position_frac", config.max_position_frac),
            RiskReason.MAX_GROSS_EXPOSURE: ("max_gross_exposure", config.max_gross_exposure),
            RiskReason.MAX_NET_EXPOSURE: ("max_net_exposure", config.max_net_exposure),
        }[reason]
        left = abs(after) * price / equity if equity > 0 else 0.0
        tail = f" to {left:.4g}x equity" if action == RiskAction.RESIZE else ""
        return (f"{verdict}{tail}: {symbol} position {frac:.4g}x equity breaks {name} "
                f"{limit:g} x risk multiplier {m:g}")
    if reason == RiskReason.DRAWDOWN_FLATTEN:
        return (f"flatten {symbol}: drawdown limit {config.max_drawdown_pct}% hit; reduce-only "
                f"market order closing {position:.8g}")
    return f"{verdict}{cut}: halted by a person; reduce-only until reset()"
