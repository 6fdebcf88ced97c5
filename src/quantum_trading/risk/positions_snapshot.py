"""The account a stress test starts from: :class:`PositionsSnapshot` (signed sizes, entry and
mark prices, wallet balance, isolated margins, and the volatility / volume inputs of the
impact model), taken from a simulation at a bar, read from a positions file or built directly.
:mod:`quantum_trading.risk.stress` applies scenarios to it.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError, DataError
from quantum_trading.sim.config import AccountConfig, CostsConfig
from quantum_trading.sim.costs_nb import impact_inputs_at_nb
from quantum_trading.sim.result import SimResult

__all__ = ["PositionsSnapshot"]

_POSITION_COLUMNS = ("size", "entry_price", "mark_price", "margin_usd", "sigma", "volume_usd")
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_COSTS = CostsConfig()


# --------------------------------------------------------------------------------------------
# the snapshot
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PositionsSnapshot:
    """Open positions and the wallet at one moment: what a stress test is applied to.

    Parameters
    ----------
    positions:
        One row per symbol (index, or a ``symbol`` column): ``size`` (signed base units),
        ``entry_price`` and ``mark_price`` (USDT, > 0); optional ``margin_usd`` (isolated
        margin of the position, USDT; NaN → ``|size| · entry_price / leverage`` as the
        simulator books an entry), ``sigma`` (per-bar std of log returns) and ``volume_usd``
        (the last bar's notional volume) for the square-root impact of a liquidity scenario.
    cash_usd:
        Wallet balance (USDT): initial cash + realised PnL − fees − funding paid, as the
        simulator's ``SimResult.cash``. Equity = cash + Σ size · (mark − entry).
    time:
        When the snapshot was taken (a bar's close), if known.
    source:
        Where it came from (a file, "simulation at …"), for messages.

    >>> snap = PositionsSnapshot(pd.DataFrame({"size": [0.5], "entry_price": [30_000.0],
    ...     "mark_price": [31_000.0]}, index=["BTC/USDT:USDT"]), cash_usd=5_000.0)
    >>> snap.equity_usd, snap.notional_usd.tolist()
    (5500.0, [15500.0])
    """

    positions: pd.DataFrame
    cash_usd: float
    time: pd.Timestamp | None = None
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "positions"
        frame = self.positions
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"{where}: positions must be a DataFrame, got "
                              f"{type(frame).__name__}")
        raw_symbols = frame["symbol"] if "symbol" in frame.columns else frame.index
        symbols = pd.Index([str(x).strip() for x in raw_symbols], name="symbol")
        missing = [c for c in ("size", "entry_price", "mark_price") if c not in frame.columns]
        if missing:
            raise DataError(f"missing column {', '.join(missing)} (needs symbol, size, "
                            "entry_price, mark_price)", source=where)
        dup = symbols.duplicated()
        if dup.any():
            raise DataError(f"symbol {symbols[dup][0]!r} appears twice", source=where,
                            rows=np.flatnonzero(dup), column="symbol")
        if (symbols == "").any():
            raise DataError("empty symbol", source=where, rows=np.flatnonzero(symbols == ""),
                            column="symbol")
        data: dict[str, np.ndarray] = {}
        for col in _POSITION_COLUMNS:
            if col not in frame.columns:
                data[col] = np.full(len(symbols), np.nan)
                continue
            raw = frame[col]
            if raw.dtype.kind in "fiu":
                data[col] = raw.to_numpy(np.float64, copy=True)
                continue
            values = pd.to_numeric(raw, errors="coerce")
            bad = (values.isna() & raw.notna()).to_numpy()
            if bad.any():
                raise DataError("non-numeric value", source=where, rows=np.flatnonzero(bad),
                                column=col)
            data[col] = values.to_numpy(np.float64)
        size = data["size"]
        with np.errstate(invalid="ignore"):
            checks = {
                "size": (~np.isfinite(size), "must be a finite number"),
                "entry_price": (~(data["entry_price"] > 0) & (size != 0), "must be > 0"),
                "mark_price": (~(data["mark_price"] > 0), "must be > 0"),
                "margin_usd": (data["margin_usd"] < 0, "must be >= 0"),
            }
        for col, (bad, what) in checks.items():
            bad = bad | np.isinf(data[col])
            if bad.any():
                raise DataError(f"{col} {what}", source=where, rows=np.flatnonzero(bad),
                                column=col)
        data["entry_price"] = np.where(size == 0, data["mark_price"], data["entry_price"])
        ok = isinstance(self.cash_usd, numbers.Real) and not isinstance(self.cash_usd, bool)
        cash = float(self.cash_usd) if ok else math.nan
        if not math.isfinite(cash):
            raise ConfigError(f"{where}: cash_usd must be a finite number (USDT), got "
                              f"{self.cash_usd!r}")
        object.__setattr__(self, "positions", pd.DataFrame(data, index=symbols))
        object.__setattr__(self, "cash_usd", cash)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols of the rows (held or flat)."""
        return tuple(self.positions.index)

    @property
    def held(self) -> tuple[str, ...]:
        """Symbols with a non-zero size."""
        return tuple(self.positions.index[self.positions["size"] != 0])

    @property
    def notional_usd(self) -> pd.Series:
        """Signed notional ``size · mark`` per symbol (USDT)."""
        return (self.positions["size"] * self.positions["mark_price"]).rename("notional_usd")

    @property
    def unrealized_pnl_usd(self) -> float:
        """Σ size · (mark − entry) (USDT)."""
        p = self.positions
        return float((p["size"] * (p["mark_price"] - p["entry_price"])).sum())

    @property
    def equity_usd(self) -> float:
        """Wallet balance + unrealised PnL (USDT)."""
        return self.cash_usd + self.unrealized_pnl_usd

    @property
    def exposures(self) -> pd.Series:
        """Signed notional as a multiple of equity per symbol (NaN when equity ≤ 0)."""
        eq = self.equity_usd
        return (self.notional_usd / eq if eq > 0 else self.notional_usd * np.nan).rename(
            "exposure")

    @classmethod
    def from_file(cls, path: str | Path, *, cash_usd: float | None = None) -> PositionsSnapshot:
        """Read positions from a CSV or JSON file.

        CSV: columns ``symbol, size, entry_price, mark_price`` (optional ``margin_usd``,
        ``sigma``, ``volume_usd``). JSON: a list of such records, or an object
        ``{"cash_usd": …, "time": …, "positions": [...]}``. ``cash_usd`` here wins over the
        file's; one of them is needed.

        Raises
        ------
        DataError
            Unreadable file, missing column, a bad value (naming file, row and column).
        ConfigError
            No cash given.
        """
        p = Path(path)
        where = str(p)
        if not p.is_file():
            raise DataError("no such positions file", source=where)
        time = None
        file_cash: Any = None
        try:
            if p.suffix.lower() == ".json":
                doc = json.loads(p.read_text(encoding="utf-8"))
                if isinstance(doc, dict):
                    file_cash = doc.get("cash_usd", doc.get("cash"))
                    time = doc.get("time")
                    doc = doc.get("positions")
                if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
                    raise DataError("expected a list of position records (or an object with "
                                    "'positions': [...])", source=where)
                frame = pd.DataFrame.from_records(doc)
            else:
                frame = pd.read_csv(p, skipinitialspace=True)
        except (ValueError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"cannot read positions ({first})", source=where) from None
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        if "symbol" not in frame.columns:
            raise DataError("missing column symbol (needs symbol, size, entry_price, "
                            "mark_price)", source=where)
        if frame.empty:
            raise DataError("no positions in the file", source=where)
        cash = cash_usd if cash_usd is not None else file_cash
        if cash is None:
            raise ConfigError(f"{where}: no cash given: add \"cash_usd\" to the JSON file or "
                              "pass cash_usd= (CLI: --cash)")
        try:
            cash = float(cash)
        except (TypeError, ValueError):
            raise DataError(f"cash_usd must be a number, got {cash!r}", source=where) from None
        frame["symbol"] = frame["symbol"].astype(str).str.strip()
        return cls(frame, cash_usd=cash, time=None if time is None else pd.Timestamp(time),
                   source=where)

    @classmethod
    def from_sim(
        cls,
        result: SimResult,
        prices: pd.DataFrame | Mapping[str, pd.DataFrame],
        *,
        at: int | pd.Timestamp = -1,
        account: AccountConfig | None = None,
        impact_window_bars: int = 20,
    ) -> PositionsSnapshot:
        """The simulation's positions at the close of bar ``at``.

        Sizes and cash are the simulator's outputs at that close; the entry price and the
        isolated margin of each position are rebuilt from the fills up to and including bar
        ``at`` with the simulator's booking rules (size-weighted entry, margin ``|q|·p /
        leverage`` per opening fill, released pro rata by reductions, funding paid from the
        margin; with several positions held through one settlement, the bar's funding is split
        by ``size · mark · rate`` from the bars' ``mark_price`` (else ``open``) and
        ``funding_rate`` columns — exact unless the rates were given to the simulator apart
        from the bars and differ between assets). Marks are the closes; ``sigma`` / ``volume_usd`` for the impact model
        come from the bars as the simulator computes them for a fill at the next open.

        Parameters
        ----------
        result:
            A :class:`~quantum_trading.sim.SimResult`.
        prices:
            The simulated bars: ``{symbol: OHLCV frame}``, one frame (one asset) or a frame
            of closes with one column per symbol, on the result's index.
        at:
            Bar position (negative from the end) or its timestamp.
        account:
            The account the simulation ran with (leverage for isolated margins).
        impact_window_bars:
            Bars of log returns for ``sigma`` (``CostsConfig.impact_window_bars``).

        Raises
        ------
        DataError
            The prices do not reproduce the simulator's equity at that close.
        """
        account = account or _DEFAULT_ACCOUNT
        symbols = list(result.symbols)
        index = result.index
        t = int(index.get_loc(at)) if isinstance(at, pd.Timestamp) else int(at)
        if t < 0:
            t += len(index)
        if not 0 <= t < len(index):
            raise ConfigError(f"at: bar {at} is outside the simulation's {len(index)} bars")
        cols = _columns(prices, symbols, index)
        close = cols["close"]
        lev = np.array([_leverage(account, s) for s in symbols])
        size, entry, margin = _replay(result, cols, lev, t)
        sim_size = result.positions.iloc[t].to_numpy(dtype=np.float64)
        if not np.allclose(size, sim_size, rtol=1e-9, atol=1e-12):
            raise DataError(f"fills do not add up to the positions at bar {t}",
                            source="simulation")
        cash = float(result.cash.iloc[t])
        marks = close[t]
        equity = cash + float(np.sum(size * (marks - entry)))
        sim_eq = float(result.equity.iloc[t])
        if not math.isclose(equity, sim_eq, rel_tol=1e-8, abs_tol=1e-6):
            raise DataError(f"prices do not match the simulation: equity at bar {t} would be "
                            f"{equity:,.6f} USDT, the simulator had {sim_eq:,.6f}",
                            source="prices")
        sigma = np.full(len(symbols), np.nan)
        vol_usd = np.full(len(symbols), np.nan)
        if "volume" in cols:
            impact_inputs_at_nb(close, cols["volume"], t + 1, int(impact_window_bars), sigma,
                                vol_usd)
        frame = pd.DataFrame({"size": size, "entry_price": np.where(size != 0, entry, marks),
                              "mark_price": marks, "margin_usd": margin, "sigma": sigma,
                              "volume_usd": vol_usd}, index=symbols)
        stamp = index[t]
        return cls(frame, cash_usd=cash, time=stamp if isinstance(stamp, pd.Timestamp) else None,
                   source=f"simulation at {stamp}")


def _on(series: pd.Series, index: pd.Index) -> np.ndarray:
    same = series.index is index or series.index.equals(index)
    return (series if same else series.reindex(index)).to_numpy(np.float64)


def _columns(prices: Any, symbols: list[str], index: pd.Index) -> dict[str, np.ndarray]:
    """``close`` (and, from bars, ``open``, ``volume``, ``mark_price``, ``funding_rate``)
    as ``[T, N]`` arrays on ``index``."""
    if isinstance(prices, pd.DataFrame) and "close" in prices.columns and len(symbols) == 1:
        prices = {symbols[0]: prices}
    if isinstance(prices, Mapping):
        missing = [s for s in symbols if s not in prices]
        if missing:
            raise ConfigError(f"prices: no bars for {missing}")
        out = {}
        for col in ("close", "open", "volume", "mark_price", "funding_rate"):
            if all(col in prices[s].columns for s in symbols):
                out[col] = np.ascontiguousarray(np.column_stack([
                    _on(prices[s][col], index) for s in symbols]))
        if "close" not in out:
            raise ConfigError("prices: every frame needs a close column")
        return out
    if isinstance(prices, pd.DataFrame):
        missing = [s for s in symbols if s not in prices.columns]
        if missing:
            raise ConfigError(f"prices: no close column for {missing}")
        return {"close": np.ascontiguousarray(prices[symbols].reindex(index).to_numpy(np.float64))}
    raise ConfigError(f"prices must be bars (dict symbol -> frame) or a frame of closes, "
                      f"got {type(prices).__name__}")


def _leverage(account: AccountConfig, symbol: str) -> float:
    lev = account.leverage
    return float(lev.get(symbol, 1.0) if isinstance(lev, dict) else lev)


def _funding_weights(cols: dict[str, np.ndarray], bar: int, size: np.ndarray) -> np.ndarray:
    """Each asset's share of the funding settled at ``bar``: ``size · mark · rate`` (mark:
    the mark price, else the open, else the previous close; rate: the bars' ``funding_rate``,
    else one rate for all)."""
    mark = cols["open"][bar] if "open" in cols else cols["close"][bar - 1]
    if "mark_price" in cols:
        m = cols["mark_price"][bar]
        mark = np.where(m > 0, m, mark)
    w = size * mark
    if "funding_rate" in cols:
        w = w * np.nan_to_num(cols["funding_rate"][bar])
    if np.count_nonzero(size) == 1 or not np.isfinite(w).all() or w.sum() == 0.0:
        w = np.abs(size * cols["close"][bar - 1])
    return w / w.sum()


def _replay(result: SimResult, cols: dict[str, np.ndarray], lev: np.ndarray, t: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Size, average entry and isolated margin after bar ``t`` from the fill records (the
    booking rules of ``sim.accounting_nb.apply_fill_nb``), funding charged to the margin."""
    n = len(result.symbols)
    size, entry, margin = np.zeros(n), np.zeros(n), np.zeros(n)
    fills = result.fills
    fills = fills[fills["bar"].to_numpy() <= t]
    paid = result.costs["funding_usd"].to_numpy(dtype=np.float64)[: t + 1]
    step = np.diff(paid, prepend=0.0)
    events = sorted([(int(b), 0, -1) for b in np.flatnonzero(step != 0.0)]
                    + [(int(b), 1, k) for k, b in enumerate(fills["bar"].to_numpy())])
    assets = fills["asset"].to_numpy()
    qs = fills["side"].to_numpy() * fills["size"].to_numpy(dtype=np.float64)
    px = fills["price"].to_numpy(dtype=np.float64)
    for bar, kind, k in events:
        if kind == 0:  # funding settled at this bar's open on what was held into it
            if bar > 0 and np.any(size):
                margin -= step[bar] * _funding_weights(cols, bar, size)
            continue
        i, q, p = int(assets[k]), float(qs[k]), float(px[k])
        cur, a = size[i], abs(q)
        closed = min(a, abs(cur)) if cur != 0.0 and (cur > 0.0) != (q > 0.0) else 0.0
        opened = a - closed
        new = cur + q
        if closed > 0.0:
            if closed >= abs(cur):
                margin[i] = 0.0
                if opened == 0.0:
                    new = 0.0
            else:
                margin[i] *= (abs(cur) - closed) / abs(cur)
        if opened > 0.0:
            if closed > 0.0 or cur == 0.0:
                entry[i] = p
                margin[i] = opened * p / lev[i]
            else:
                entry[i] = (abs(cur) * entry[i] + opened * p) / (abs(cur) + opened)
                margin[i] += opened * p / lev[i]
        size[i] = new
        if new == 0.0:
            entry[i] = 0.0
    return size, entry, margin
