"""Benchmark the simulator against vectorbt and backtesting.py.

Two workloads, both on the real Binance BTC/USDT:USDT 1m bars (64,066) tiled to the length
needed: each copy is rescaled so that it opens at the previous copy's last close, so returns
are real, the path is continuous and prices stay positive (the splice of
``bench/indicators.py``). Timestamps are a continuous 1-minute index from 2023-07-04 UTC.

(a) **Single run** (``--bars``, default 1,000,000): a long-only SMA-cross rule (fast 20 /
    slow 100 on the close; enter when fast crosses above slow, exit when it crosses below,
    decided at the close and filled at the next open) with a 0.5 % stop-loss and a 1 %
    take-profit from the entry fill price, taker fee 4 bps, slippage 1 bp (ours also pays a
    0.5 bp half-spread).

    * ours: the public :func:`quantum_trading.sim.simulate` end to end (validation, kernel,
      the :class:`SimResult`, whose pandas frames are built when first read), **perp
      mechanics on**: the ``BINANCE_BTCUSDT_PERP`` instrument (10 maintenance-margin tiers,
      liquidation checked against every bar's adverse extreme), 2x leverage account with
      target 1.0, default funding 0.01 % every 8 h. ``ours_full`` also reads every result
      frame (equity, positions, costs, fills, orders, trades); ``ours_kernel`` times the bare
      kernel loop (:func:`quantum_trading.sim.run_arrays` on prepared arrays);
      ``ours_bt_window`` times ``simulate()`` on backtesting.py's window (its first
      ``--bt-bars`` bars);
    * vectorbt: ``Portfolio.from_signals`` on the same entries/exits shifted one bar with
      ``price=open`` (so it also fills at the next open), ``sl_stop``, ``tp_stop``,
      ``stop_entry_price="fillprice"``, ``stop_exit_price="stopmarket"``, ``fees``,
      ``slippage``; timed alone and with ``pf.value()`` (the equity curve, which ours
      always produces);
    * backtesting.py: a Strategy whose ``next()`` only reads the same precomputed
      entries/exits and calls ``buy(sl=, tp=)`` (0.5 % / 1 % from the decision bar's close,
      checked from the entry bar on, as ours) / ``position.close()``, ``commission=0.0004``
      (taker fee on entry and exit, as ours), ``spread=0.00015`` (slippage + half-spread, which
      it charges on entries only; no funding, margin or liquidation), on the first
      ``--bt-bars`` bars (it is a per-bar Python loop); ratios against it are in bars per
      second, and also on the same window (``ours_bt_window``).

(b) **Parameter sweep** (``--sweep-bars``, default 100,000): the same SMA-cross rule on a
    10 x 10 grid (fast 5..50 step 5, slow 60..240 step 20), fees and slippage, no stops.

    * ours: SMAs computed once per distinct period (:func:`quantum_trading.features.sma`),
      entry/exit events and targets per pair with numpy, the bars, parameters and funding
      prepared once (:func:`quantum_trading.sim.prepare`), then the kernel loop
      (:func:`run_arrays`) once per pair, reusing the state's buffers; final equity per pair.
      Same perp mechanics as (a). Also timed: the public sweep API
      (:func:`quantum_trading.sim.simulate_prepared`: ``prepare()`` once, then one call per
      pair with its target array, each returning a :class:`SimResult`), the public
      :func:`simulate` per pair (validation each time), and the kernel sweep split over one
      forked process per core (equal cores with ``Backtest.optimize``);
    * vectorbt: ``vbt.MA.run`` over the repeated/tiled window lists (100 columns each),
      ``ma_crossed_above`` / ``ma_crossed_below``, shifted one bar, one ``from_signals`` call
      over the 100 columns, then ``pf.final_value()``;
    * backtesting.py: ``Backtest.optimize`` over the same grid (its default process pool, on
      all cores) on the first ``--bt-sweep-bars`` bars.

Rates are bars per second (bar-runs per second for sweeps: bars x pairs / seconds). Numba
code is compiled first; the candidates of a workload run ``--repeat`` rounds in a rotating
order and the best time of each is kept (backtesting.py: best of ``--bt-repeat``). Ratios are ours / theirs in bars per second: above 1 means
ours is faster.

Prints one JSON document; ``--markdown PATH`` also writes a table::

    .venv/bin/python bench/simulator.py --markdown /tmp/simulator-bench.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover

from _bars import SOURCE, load_bars
from _timing import best_of, rotating
from quantum_trading.domain import BINANCE_BTCUSDT_PERP, Signals, StopSpec
from quantum_trading.features import sma
from quantum_trading.paths import real_data_dir
from quantum_trading.sim import (
    AccountConfig,
    CostsConfig,
    new_state,
    prepare,
    run_arrays,
    simulate,
    simulate_prepared,
)
from quantum_trading.sim.records import A_EQUITY
from quantum_trading.sim.state import SimState, readonly_2d

CASH_USD = 10_000_000.0  # large enough that min notional and lot size never bind
FEE = 0.0004  # taker fee, fraction (Binance USDⓈ-M: 4 bps)
SLIPPAGE = 0.0001  # fraction of price (1 bp)
HALF_SPREAD = 0.00005  # ours only (0.5 bp); backtesting.py gets spread = slippage + half-spread
SL, TP = 0.005, 0.01
FAST, SLOW = 20, 100
SWEEP_FAST = tuple(range(5, 55, 5))
SWEEP_SLOW = tuple(range(60, 260, 20))
LEVERAGE = 2.0


# -- data and signals ---------------------------------------------------------------------------
def cross_events(fast: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries where ``fast`` crosses above ``slow`` (strictly, bar to bar), exits where it
    crosses below; NaN compares False. Decided at the bar's close."""
    above = fast > slow
    below = fast < slow
    entries = np.zeros(fast.shape[0], dtype=np.bool_)
    exits = np.zeros(fast.shape[0], dtype=np.bool_)
    entries[1:] = below[:-1] & above[1:]
    exits[1:] = above[:-1] & below[1:]
    return entries, exits


def events_target(entries: np.ndarray, exits: np.ndarray) -> np.ndarray:
    """Target per decision bar: 1.0 on entries, 0.0 on exits, NaN (keep) elsewhere.

    With ``rebalance="on_change"`` this is the same long-only state machine as vectorbt's
    ``from_signals`` (an exit while flat and an entry while long do nothing)."""
    target = np.full(entries.shape[0], np.nan)
    target[exits] = 0.0
    target[entries] = 1.0
    return target


def shift1(x: np.ndarray) -> np.ndarray:
    """Events moved one bar later (a decision at t's close executes at t+1's open)."""
    out = np.zeros_like(x)
    out[1:] = x[:-1]
    return out


# -- configurations -----------------------------------------------------------------------------
def perp_costs() -> CostsConfig:
    """Fees from the instrument (4 bps taker), 0.5 bp half-spread, 1 bp slippage, default
    funding 0.01 % every 8 h: the perp mechanics are on."""
    return CostsConfig(half_spread_bps=HALF_SPREAD * 1e4, slippage_bps=SLIPPAGE * 1e4,
                       default_funding_rate=0.0001, take_profit_order="market")


def perp_account() -> AccountConfig:
    """2x cross margin (target 1.0 = 1x notional), sized like vectorbt's all-cash orders."""
    return AccountConfig(initial_cash_usd=CASH_USD, leverage=LEVERAGE, size_with_costs=True,
                         allow_short=False)


# -- backtesting.py strategies (module level: Backtest.optimize pickles them) ----------------------
def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n).mean().to_numpy()


class Precomputed(Strategy):
    """Acts on precomputed decisions (``entries``/``exits`` arrays), so that what is timed is
    the broker loop, not the rule."""

    entries: np.ndarray | None = None
    exits: np.ndarray | None = None

    def init(self) -> None:
        pass

    def next(self) -> None:
        i = len(self.data) - 1
        if self.position:
            if self.exits[i]:
                self.position.close()
        elif self.entries[i]:
            price = self.data.Close[-1]
            self.buy(sl=price * (1 - SL), tp=price * (1 + TP))


class SmaCrossLong(Strategy):
    """backtesting.py's SmaCross made long-only (the swept rule)."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        self.sma1 = self.I(_rolling_mean, self.data.Close, self.n1)
        self.sma2 = self.I(_rolling_mean, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()


# -- (a) single run -----------------------------------------------------------------------------
def single_ours(bars: pd.DataFrame, target: np.ndarray) -> Any:
    signals = Signals(pd.Series(target, index=bars.index, name="BTC/USDT:USDT"),
                      stop_loss=StopSpec.fraction(SL), take_profit=StopSpec.fraction(TP))
    return simulate(bars, signals, instruments=BINANCE_BTCUSDT_PERP, costs=perp_costs(),
                    account=perp_account())


def single_ours_full(bars: pd.DataFrame, target: np.ndarray) -> Any:
    """:func:`single_ours` with every result frame built (what a report reads)."""
    res = single_ours(bars, target)
    for name in ("equity", "cash", "positions", "margin_ratio", "costs", "fills", "orders",
                 "trades", "per_asset"):
        getattr(res, name)
    return res


def single_ours_kernel(bars: pd.DataFrame, target: np.ndarray) -> Callable[[], SimState]:
    """The bare kernel loop on prepared arrays (what a sweep repeats)."""
    signals = Signals(pd.Series(target, index=bars.index, name="BTC/USDT:USDT"),
                      stop_loss=StopSpec.fraction(SL), take_profit=StopSpec.fraction(TP))
    prep = prepare(bars, signals, instruments=BINANCE_BTCUSDT_PERP, costs=perp_costs(),
                   account=perp_account())
    n = len(prep.index)

    def run() -> SimState:
        st = new_state(1, CASH_USD, n_bars=n, n_tiers_max=prep.params.tiers.shape[1])
        return run_arrays(st, prep.bars, prep.signals, prep.params, 0, n)

    return run


def single_vbt(bars: pd.DataFrame, entries: np.ndarray, exits: np.ndarray,
               with_value: bool) -> Any:
    import vectorbt as vbt

    pf = vbt.Portfolio.from_signals(
        close=bars["close"], entries=shift1(entries), exits=shift1(exits), price=bars["open"],
        open=bars["open"], high=bars["high"], low=bars["low"], sl_stop=SL, tp_stop=TP,
        stop_entry_price="fillprice", stop_exit_price="stopmarket", fees=FEE,
        slippage=SLIPPAGE, init_cash=CASH_USD, size=np.inf, freq="1min")
    if with_value:
        pf.value()
    return pf


def naive(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars on a tz-naive index: the peers' fastest input. (With pandas 3, vectorbt turns
    a tz-aware index into an array of Timestamp objects on every wrap: on 100,000 bars
    ``from_signals`` took 95 ms instead of 26 ms and ``pf.value()`` 2.5 s instead of 33 ms,
    overhead that has nothing to do with simulation.)"""
    out = bars.copy(deep=False)
    out.index = bars.index.tz_localize(None)
    return out


def _bt_frame(bars: pd.DataFrame) -> pd.DataFrame:
    return naive(bars).rename(columns=str.title)


def single_bt(bars: pd.DataFrame, entries: np.ndarray, exits: np.ndarray) -> Any:
    from backtesting import Backtest

    # whole units at BTC prices: cash large enough that an order is thousands of units
    bt = Backtest(_bt_frame(bars), Precomputed, cash=1e9, commission=FEE,
                  spread=SLIPPAGE + HALF_SPREAD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bt.run(entries=entries, exits=exits)


# -- (b) sweep ----------------------------------------------------------------------------------
def _fresh(template: SimState) -> SimState:
    """A flat state that reuses ``template``'s record buffers and per-bar outputs (they are
    overwritten from bar 0; only the counters say what is valid)."""
    small = new_state(1, CASH_USD, n_bars=1, n_tiers_max=template.scratch.shape[0] - 3,
                      fills_capacity=1, orders_capacity=1, trades_capacity=1)
    return small._replace(fills=template.fills, orders=template.orders, trades=template.trades,
                          out_equity=template.out_equity,
                          out_margin_ratio=template.out_margin_ratio,
                          snap_bar=template.snap_bar, snap=template.snap)


def _grid() -> list[tuple[int, int]]:
    return [(f, s) for f in SWEEP_FAST for s in SWEEP_SLOW]


def sweep_ours(bars: pd.DataFrame, pairs: list[tuple[int, int]] | None = None,
               ) -> dict[tuple[int, int], float]:
    """Final equity per (fast, slow) pair through the kernel loop on prepared arrays."""
    pairs = _grid() if pairs is None else pairs
    close = bars["close"]
    periods = sorted({f for f, _ in pairs} | {s for _, s in pairs})
    mas = {p: sma(close, p).to_numpy() for p in periods}  # once per distinct period
    n = len(bars)
    dummy = Signals(pd.Series(np.nan, index=bars.index, name="BTC/USDT:USDT"))
    prep = prepare(bars, dummy, instruments=BINANCE_BTCUSDT_PERP, costs=perp_costs(),
                   account=perp_account())
    template = new_state(1, CASH_USD, n_bars=n, n_tiers_max=prep.params.tiers.shape[1])
    out: dict[tuple[int, int], float] = {}
    for f, s in pairs:
        entries, exits = cross_events(mas[f], mas[s])
        sig = prep.signals._replace(
            target=readonly_2d(events_target(entries, exits).reshape(-1, 1)))
        st = run_arrays(_fresh(template), prep.bars, sig, prep.params, 0, n)
        template = st  # keep grown buffers
        out[(f, s)] = float(st.acct[A_EQUITY])
    return out


_POOL_BARS: pd.DataFrame | None = None  # the sweep's bars, inherited by forked workers


def _sweep_part(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    assert _POOL_BARS is not None
    return sweep_ours(_POOL_BARS, pairs)


def sweep_ours_parallel(bars: pd.DataFrame, processes: int) -> dict[tuple[int, int], float]:
    """:func:`sweep_ours` split over ``processes`` forked workers (pool start-up included),
    for an equal-cores comparison with ``Backtest.optimize``'s process pool."""
    import multiprocessing as mp

    global _POOL_BARS
    _POOL_BARS = bars
    grid = _grid()
    chunks = [grid[k::processes] for k in range(processes)]
    with mp.get_context("fork").Pool(processes) as pool:
        parts = pool.map(_sweep_part, chunks)
    out: dict[tuple[int, int], float] = {}
    for part in parts:
        out.update(part)
    return out


def sweep_ours_prepared(bars: pd.DataFrame) -> dict[tuple[int, int], float]:
    """The same sweep through the public sweep API: :func:`prepare` once, then
    :func:`simulate_prepared` with each pair's target array (a :class:`SimResult` each)."""
    close = bars["close"]
    mas = {p: sma(close, p).to_numpy() for p in sorted(set(SWEEP_FAST) | set(SWEEP_SLOW))}
    dummy = Signals(pd.Series(np.nan, index=bars.index, name="BTC/USDT:USDT"))
    prep = prepare(bars, dummy, instruments=BINANCE_BTCUSDT_PERP, costs=perp_costs(),
                   account=perp_account())
    out: dict[tuple[int, int], float] = {}
    for f in SWEEP_FAST:
        for s in SWEEP_SLOW:
            entries, exits = cross_events(mas[f], mas[s])
            res = simulate_prepared(prep, events_target(entries, exits))
            out[(f, s)] = res.final_equity_usd
    return out


def sweep_ours_api(bars: pd.DataFrame) -> dict[tuple[int, int], float]:
    """The same sweep through the public :func:`simulate` per pair (validation and a
    :class:`SimResult` each time)."""
    close = bars["close"]
    mas = {p: sma(close, p).to_numpy() for p in sorted(set(SWEEP_FAST) | set(SWEEP_SLOW))}
    out: dict[tuple[int, int], float] = {}
    for f in SWEEP_FAST:
        for s in SWEEP_SLOW:
            entries, exits = cross_events(mas[f], mas[s])
            target = pd.Series(events_target(entries, exits), index=bars.index,
                               name="BTC/USDT:USDT")
            res = simulate(bars, Signals(target), instruments=BINANCE_BTCUSDT_PERP,
                           costs=perp_costs(), account=perp_account())
            out[(f, s)] = res.final_equity_usd
    return out


def sweep_vbt(bars: pd.DataFrame) -> pd.Series:
    import vectorbt as vbt

    close = bars["close"]
    fast = vbt.MA.run(close, np.repeat(SWEEP_FAST, len(SWEEP_SLOW)), short_name="fast")
    slow = vbt.MA.run(close, np.tile(SWEEP_SLOW, len(SWEEP_FAST)), short_name="slow")
    entries = fast.ma_crossed_above(slow).vbt.fshift(1, fill_value=False)
    exits = fast.ma_crossed_below(slow).vbt.fshift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(close=close, entries=entries, exits=exits, price=bars["open"],
                                    fees=FEE, slippage=SLIPPAGE, init_cash=CASH_USD,
                                    size=np.inf, freq="1min")
    return pf.final_value()


def sweep_bt(bars: pd.DataFrame) -> Any:
    from backtesting import Backtest

    bt = Backtest(_bt_frame(bars), SmaCrossLong, cash=1e9, commission=FEE, spread=SLIPPAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bt.optimize(n1=list(SWEEP_FAST), n2=list(SWEEP_SLOW),
                           maximize="Equity Final [$]")


# -- main ---------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import numba

    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "cpus": os.cpu_count(), "numpy": np.__version__, "pandas": pd.__version__,
        "numba": numba.__version__,
    }
    try:
        import backtesting
        import vectorbt

        info["vectorbt"] = vectorbt.__version__
        info["backtesting"] = backtesting.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["loadavg"] = os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000, help="bars of the single run")
    ap.add_argument("--bt-bars", type=int, default=100_000,
                    help="bars of backtesting.py's single run")
    ap.add_argument("--sweep-bars", type=int, default=100_000, help="bars of the sweep")
    ap.add_argument("--bt-sweep-bars", type=int, default=10_000,
                    help="bars of backtesting.py's sweep (Backtest.optimize)")
    ap.add_argument("--repeat", type=int, default=7, help="best of N for ours and vectorbt")
    ap.add_argument("--bt-repeat", type=int, default=1, help="best of N for backtesting.py")
    ap.add_argument("--skip-bt", action="store_true", help="leave backtesting.py out")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="real data folder (default $QUANTUM_REAL_DATA or ../shared/data)")
    ap.add_argument("--markdown", type=Path, default=None, help="also write a markdown table")
    args = ap.parse_args(argv)

    data_dir = args.data_dir or real_data_dir()
    n_all = max(args.bars, args.sweep_bars, args.bt_bars, args.bt_sweep_bars)
    all_bars = load_bars(n_all, data_dir)
    report: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "machine": machine(),
        "command": "bench/simulator.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": f"{SOURCE} tiled (continuous splice) to {n_all} bars",
    }

    # (a) single run
    bars = all_bars.iloc[: args.bars]
    fast = sma(bars["close"], FAST).to_numpy()
    slow = sma(bars["close"], SLOW).to_numpy()
    entries, exits = cross_events(fast, slow)
    target = events_target(entries, exits)
    single_ours(bars.iloc[:1000], target[:1000])  # compile / warm up
    vbars = naive(bars)  # vectorbt's fastest input (see naive())
    single_vbt(vbars.iloc[:1000], entries[:1000], exits[:1000], True)
    kernel = single_ours_kernel(bars, target)
    kernel()
    timed = rotating({
        "ours": lambda: single_ours(bars, target),
        "ours_full": lambda: single_ours_full(bars, target),
        "kernel": kernel,
        "vbt": lambda: single_vbt(vbars, entries, exits, False),
        "vbt_value": lambda: single_vbt(vbars, entries, exits, True),
    }, args.repeat)
    (t_ours, res), (t_kernel, _) = timed["ours"], timed["kernel"]
    t_full = timed["ours_full"][0]
    (t_vbt, pf), (t_vbt_value, _) = timed["vbt"], timed["vbt_value"]
    reasons = res.trades["exit_reason"].value_counts().to_dict()
    single: dict[str, Any] = {
        "bars": args.bars,
        "ours_s": t_ours, "ours_bars_per_s": args.bars / t_ours,
        "ours_full_s": t_full, "ours_full_bars_per_s": args.bars / t_full,
        "ours_kernel_s": t_kernel, "ours_kernel_bars_per_s": args.bars / t_kernel,
        "ours_trades": len(res.trades), "ours_exit_reasons": reasons,
        "ours_funding_usd": float(res.totals["funding_usd"]),
        "vbt_s": t_vbt, "vbt_bars_per_s": args.bars / t_vbt,
        "vbt_with_value_s": t_vbt_value, "vbt_with_value_bars_per_s": args.bars / t_vbt_value,
        "vbt_trades": int(pf.trades.count()),
        "ours_vs_vbt": t_vbt / t_ours, "ours_full_vs_vbt_with_value": t_vbt_value / t_full,
        "ours_vs_vbt_with_value": t_vbt_value / t_ours,
    }
    if not args.skip_bt:
        bt_bars = all_bars.iloc[: args.bt_bars]
        e_bt, x_bt = cross_events(sma(bt_bars["close"], FAST).to_numpy(),
                                  sma(bt_bars["close"], SLOW).to_numpy())
        t_bt, stats = best_of(lambda: single_bt(bt_bars, e_bt, x_bt), args.bt_repeat)
        target_bt = events_target(e_bt, x_bt)
        t_win, res_win = best_of(lambda: single_ours(bt_bars, target_bt), args.repeat)
        single.update({
            "bt_bars": args.bt_bars, "bt_s": t_bt, "bt_bars_per_s": args.bt_bars / t_bt,
            "bt_trades": int(stats["# Trades"]),
            "ours_bt_window_s": t_win, "ours_bt_window_bars_per_s": args.bt_bars / t_win,
            "ours_bt_window_trades": len(res_win.trades),
            "ours_vs_bt": (args.bars / t_ours) / (args.bt_bars / t_bt),
            "ours_vs_bt_same_window": t_bt / t_win,
        })
    report["single"] = single

    # (b) sweep
    sbars = all_bars.iloc[: args.sweep_bars]
    n_pairs = len(SWEEP_FAST) * len(SWEEP_SLOW)
    sweep_ours(sbars.iloc[:2000])
    vsbars = naive(sbars)
    sweep_vbt(vsbars.iloc[:2000])
    processes = os.cpu_count() or 1
    timed = rotating({
        "ours": lambda: sweep_ours(sbars),
        "prepared": lambda: sweep_ours_prepared(sbars),
        "api": lambda: sweep_ours_api(sbars),
        "parallel": lambda: sweep_ours_parallel(sbars, processes),
        "vbt": lambda: sweep_vbt(vsbars),
    }, args.repeat)
    (t_sw, finals), (t_sw_api, finals_api) = timed["ours"], timed["api"]
    t_sw_prep, finals_prep = timed["prepared"]
    t_sw_par, finals_par = timed["parallel"]
    t_sw_vbt, finals_vbt = timed["vbt"]
    assert finals_api == finals == finals_par == finals_prep, "the sweep variants disagree"
    work = args.sweep_bars * n_pairs
    sweep: dict[str, Any] = {
        "bars": args.sweep_bars, "pairs": n_pairs,
        "ours_s": t_sw, "ours_bar_runs_per_s": work / t_sw,
        "ours_prepared_s": t_sw_prep, "ours_prepared_bar_runs_per_s": work / t_sw_prep,
        "ours_api_s": t_sw_api, "ours_api_bar_runs_per_s": work / t_sw_api,
        "ours_parallel_processes": processes, "ours_parallel_s": t_sw_par,
        "ours_parallel_bar_runs_per_s": work / t_sw_par,
        "vbt_s": t_sw_vbt, "vbt_bar_runs_per_s": work / t_sw_vbt,
        "ours_vs_vbt": t_sw_vbt / t_sw, "ours_prepared_vs_vbt": t_sw_vbt / t_sw_prep,
        "ours_api_vs_vbt": t_sw_vbt / t_sw_api,
        "ours_best_pair": list(max(finals, key=finals.get)),
        "vbt_best_pair": [int(v) for v in finals_vbt.idxmax()],
    }
    if not args.skip_bt:
        bt_sbars = all_bars.iloc[: args.bt_sweep_bars]
        t_sw_bt, _ = best_of(lambda: sweep_bt(bt_sbars), args.bt_repeat)
        bt_work = args.bt_sweep_bars * n_pairs
        sweep.update({
            "bt_bars": args.bt_sweep_bars, "bt_s": t_sw_bt, "bt_processes": os.cpu_count(),
            "bt_bar_runs_per_s": bt_work / t_sw_bt,
            "ours_vs_bt": (work / t_sw) / (bt_work / t_sw_bt),
            "ours_parallel_vs_bt": (work / t_sw_par) / (bt_work / t_sw_bt),
        })
    report["sweep"] = sweep

    print(json.dumps(report, indent=2, default=float))
    if args.markdown is not None:
        args.markdown.write_text(markdown(report))
    return 0


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k"


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table (rates in bars or bar-runs per second)."""
    s, w = report["single"], report["sweep"]
    bt, btw = "bt_s" in s, "bt_s" in w

    def vs_bt(rate: float) -> str:
        return f"{rate / s['bt_bars_per_s']:.0f}x" if bt else "—"

    def vs_bt_sweep(rate: float) -> str:
        return f"{rate / w['bt_bar_runs_per_s']:.0f}x" if btw else "—"

    rows = [
        "| workload | ours | vectorbt | backtesting.py | ours / vectorbt | ours / backtesting.py |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| (a1) single run, {s['bars']:,} bars, `simulate()`, bars/s | "
        f"{_fmt_rate(s['ours_bars_per_s'])} ({s['ours_s'] * 1e3:.0f} ms) | "
        f"{_fmt_rate(s['vbt_bars_per_s'])} ({s['vbt_s'] * 1e3:.0f} ms) | "
        + (f"{_fmt_rate(s['bt_bars_per_s'])} ({s['bt_bars']:,} bars, {s['bt_s']:.1f} s)"
           if bt else "—")
        + f" | {s['ours_vs_vbt']:.2f}x | {vs_bt(s['ours_bars_per_s'])} |",
        f"| (a2) same, every result frame built; vectorbt incl. `pf.value()` | "
        f"{_fmt_rate(s['ours_full_bars_per_s'])} ({s['ours_full_s'] * 1e3:.0f} ms) | "
        f"{_fmt_rate(s['vbt_with_value_bars_per_s'])} ({s['vbt_with_value_s'] * 1e3:.0f} ms) | | "
        f"{s['ours_full_vs_vbt_with_value']:.2f}x | {vs_bt(s['ours_full_bars_per_s'])} |",
        f"| (a3) ours, bare kernel loop | {_fmt_rate(s['ours_kernel_bars_per_s'])} "
        f"({s['ours_kernel_s'] * 1e3:.0f} ms) | | | {s['vbt_s'] / s['ours_kernel_s']:.2f}x | "
        f"{vs_bt(s['ours_kernel_bars_per_s'])} |",
    ]
    if bt:
        rows.append(
            f"| (a4) `simulate()` on backtesting.py's {s['bt_bars']:,} bars "
            f"({s['ours_bt_window_trades']:,} trades; its {s['bt_trades']:,}) | "
            f"{_fmt_rate(s['ours_bt_window_bars_per_s'])} ({s['ours_bt_window_s'] * 1e3:.1f} ms)"
            f" | | {_fmt_rate(s['bt_bars_per_s'])} ({s['bt_s']:.2f} s) | | "
            f"{s['ours_vs_bt_same_window']:.0f}x |")
    rows += [
        f"| (b1) sweep {w['pairs']} pairs x {w['bars']:,} bars, kernel loop, bar-runs/s | "
        f"{_fmt_rate(w['ours_bar_runs_per_s'])} ({w['ours_s']:.2f} s) | "
        f"{_fmt_rate(w['vbt_bar_runs_per_s'])} ({w['vbt_s']:.2f} s) | "
        + (f"{_fmt_rate(w['bt_bar_runs_per_s'])} ({w['bt_bars']:,} bars, {w['bt_s']:.1f} s)"
           if btw else "—")
        + f" | {w['ours_vs_vbt']:.2f}x | {vs_bt_sweep(w['ours_bar_runs_per_s'])} |",
        f"| (b2) same sweep, `prepare()` once + `simulate_prepared()` per pair | "
        f"{_fmt_rate(w['ours_prepared_bar_runs_per_s'])} ({w['ours_prepared_s']:.2f} s) | | | "
        f"{w['ours_prepared_vs_vbt']:.2f}x | {vs_bt_sweep(w['ours_prepared_bar_runs_per_s'])} |",
        f"| (b3) same sweep, `simulate()` per pair | "
        f"{_fmt_rate(w['ours_api_bar_runs_per_s'])} ({w['ours_api_s']:.2f} s) | | | "
        f"{w['ours_api_vs_vbt']:.2f}x | {vs_bt_sweep(w['ours_api_bar_runs_per_s'])} |",
        f"| (b4) kernel sweep on {w['ours_parallel_processes']} processes "
        f"(bt.optimize's pool size) | {_fmt_rate(w['ours_parallel_bar_runs_per_s'])} "
        f"({w['ours_parallel_s']:.2f} s) | | | | "
        + (f"{w['ours_parallel_vs_bt']:.0f}x" if btw else "—") + " |",
    ]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main())
