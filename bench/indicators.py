"""Benchmark the indicators against TA-Lib and ``ta`` (and pandas where neither has one).

Data: the real Binance BTC/USDT:USDT 1m bars (64,066 of them), tiled to ``--bars`` bars. Each
copy is rescaled so that its first open equals the previous copy's last close: returns inside
a copy are the real ones, the price path stays continuous and positive, and the volume is the
real volume. Every library gets the same bars.

Timing: numba kernels are compiled (and run once) before timing. For each indicator the
candidates run in turn, in a rotating order, ``--repeat`` times and the best time of each is
kept; ``ta`` calls slower than ``--slow-s`` seconds run once only. Ours is the public pandas
API (Series in, Series/DataFrame out, argument checks included); TA-Lib gets numpy arrays (its
fastest path); ``ta`` and pandas get Series. Where ours returns more outputs than the TA-Lib
function, the TA-Lib side also computes them with numpy, and the bare TA-Lib call is timed as
an extra (``talib_*_only_s``). Ratios are ours / theirs: below 1 means ours is faster.

Prints one JSON record per indicator; ``--markdown PATH`` also writes a table:

    .venv/bin/python bench/indicators.py --bars 1000000 --repeat 21 --markdown table.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from _bars import load_bars
from _timing import rotating
from quantum_trading import features as qf
from quantum_trading.paths import real_data_dir


@dataclass
class Case:
    """One indicator: our call and the comparable calls of the other libraries."""

    name: str
    params: str
    ours: Callable[[], object]
    talib: Callable[[], object] | None = None
    ta: Callable[[], object] | None = None
    pandas: Callable[[], object] | None = None
    note: str = ""
    extra: dict[str, Callable[[], object]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def cases(bars: pd.DataFrame) -> list[Case]:
    import talib
    from ta.momentum import RSIIndicator, StochasticOscillator
    from ta.trend import MACD, ADXIndicator, EMAIndicator, SMAIndicator, WMAIndicator
    from ta.volatility import AverageTrueRange, BollingerBands, DonchianChannel
    from ta.volume import OnBalanceVolumeIndicator, VolumeWeightedAveragePrice

    h, lo, c, v = (bars[k] for k in ("high", "low", "close", "volume"))
    ha, la, ca, va = (s.to_numpy() for s in (h, lo, c, v))

    def pd_zscore() -> pd.Series:
        return (c - c.rolling(20).mean()) / c.rolling(20).std()

    def pd_rv() -> pd.Series:
        return np.log(c / c.shift(1)).rolling(20).std() * np.sqrt(525_600.0)

    def ta_bbands() -> tuple[pd.Series, ...]:
        bb = BollingerBands(c, 20, 2)
        return (
            bb.bollinger_hband(),
            bb.bollinger_mavg(),
            bb.bollinger_lband(),
            bb.bollinger_pband(),
            bb.bollinger_wband(),
        )

    def talib_bbands_ratios() -> tuple[np.ndarray, ...]:
        upper, middle, lower = talib.BBANDS(ca, 20, 2.0, 2.0, 0)
        span = upper - lower
        return upper, middle, lower, (ca - lower) / span, span / middle

    def talib_donchian() -> tuple[np.ndarray, ...]:
        upper = talib.MAX(ha, 20)
        lower = talib.MIN(la, 20)
        return upper, (upper + lower) * 0.5, lower

    def ta_macd() -> tuple[pd.Series, ...]:
        m = MACD(c, 26, 12, 9)
        return m.macd(), m.macd_signal(), m.macd_diff()

    def ta_adx() -> tuple[pd.Series, ...]:
        a = ADXIndicator(h, lo, c, 14)
        return a.adx(), a.adx_pos(), a.adx_neg()

    def ta_stoch() -> tuple[pd.Series, ...]:
        s = StochasticOscillator(h, lo, c, 5, 3)
        return s.stoch(), s.stoch_signal()

    def ta_donchian() -> tuple[pd.Series, ...]:
        d = DonchianChannel(h, lo, c, 20)
        return d.donchian_channel_hband(), d.donchian_channel_mband(), d.donchian_channel_lband()

    return [
        Case("sma", "30", lambda: qf.sma(c, 30), lambda: talib.SMA(ca, 30),
             lambda: SMAIndicator(c, 30).sma_indicator()),
        Case("ema", "30", lambda: qf.ema(c, 30), lambda: talib.EMA(ca, 30),
             lambda: EMAIndicator(c, 30).ema_indicator()),
        Case("wma", "30", lambda: qf.wma(c, 30), lambda: talib.WMA(ca, 30),
             lambda: WMAIndicator(c, 30).wma()),
        Case("rsi", "14", lambda: qf.rsi(c, 14), lambda: talib.RSI(ca, 14),
             lambda: RSIIndicator(c, 14).rsi()),
        Case("macd", "12/26/9", lambda: qf.macd(c), lambda: talib.MACD(ca, 12, 26, 9), ta_macd),
        Case("bollinger_bands", "20, 2", lambda: qf.bollinger_bands(c, 20),
             talib_bbands_ratios, ta_bbands,
             note="TA-Lib: BBANDS plus %b and bandwidth from its bands with numpy, the same "
                  "five outputs as ours and ta",
             extra={"talib_bands_only": lambda: talib.BBANDS(ca, 20, 2.0, 2.0, 0)}),
        Case("true_range", "", lambda: qf.true_range(h, lo, c),
             lambda: talib.TRANGE(ha, la, ca)),
        Case("atr", "14", lambda: qf.atr(h, lo, c, 14), lambda: talib.ATR(ha, la, ca, 14),
             lambda: AverageTrueRange(h, lo, c, 14).average_true_range()),
        Case("obv", "", lambda: qf.obv(c, v), lambda: talib.OBV(ca, va),
             lambda: OnBalanceVolumeIndicator(c, v).on_balance_volume()),
        Case("rolling_vwap", "14", lambda: qf.rolling_vwap(h, lo, c, v, 14), None,
             lambda: VolumeWeightedAveragePrice(h, lo, c, v, 14).volume_weighted_average_price()),
        Case("adx", "14", lambda: qf.adx(h, lo, c, 14),
             lambda: (talib.ADX(ha, la, ca, 14), talib.PLUS_DI(ha, la, ca, 14),
                      talib.MINUS_DI(ha, la, ca, 14)), ta_adx,
             note="TA-Lib: ADX + PLUS_DI + MINUS_DI (ours returns all three)"),
        Case("stochastic", "5/3/3", lambda: qf.stochastic(h, lo, c, 5, 3, 3),
             lambda: talib.STOCH(ha, la, ca, 5, 3, 0, 3, 0), ta_stoch,
             note="ta: fast %K and its SMA (no slow smoothing)"),
        Case("donchian_channel", "20", lambda: qf.donchian_channel(h, lo, 20),
             talib_donchian, ta_donchian,
             note="TA-Lib: MAX + MIN plus their midpoint with numpy, the same three outputs",
             extra={"talib_max_min_only": lambda: (talib.MAX(ha, 20), talib.MIN(la, 20))}),
        Case("rolling_zscore", "20", lambda: qf.rolling_zscore(c, 20), None, None, pd_zscore),
        Case("realised_volatility", "20, 1m annualised",
             lambda: qf.realised_volatility(c, 20, periods_per_year=525_600.0), None, None, pd_rv),
        Case("rolling_quantile", "100, q=0.9", lambda: qf.rolling_quantile(c, 100, 0.9), None,
             None, lambda: c.rolling(100).quantile(0.9)),
        Case("adaptive_thresholds", "500, q=0.9/0.1",
             lambda: qf.adaptive_thresholds(c, 500, 0.9, 0.1), None, None,
             lambda: (c.rolling(500).quantile(0.9), c.rolling(500).quantile(0.1))),
    ]  # fmt: skip


def time_case(case: Case, repeat: int, slow_s: float, with_ta: bool) -> None:
    """Best-of-``repeat`` wall time of each candidate, interleaved so load hits all alike."""
    candidates = {"ours": case.ours, "talib": case.talib, "pandas": case.pandas, **case.extra}
    if with_ta:
        candidates["ta"] = case.ta
    runners = {k: f for k, f in candidates.items() if f is not None}
    timed = rotating(runners, repeat, keep_results=False,
                     skip=lambda name, best_s: name == "ta" and best_s > slow_s)
    case.timings = {name: best_s for name, (best_s, _) in timed.items()}


def warm_up(bars: pd.DataFrame) -> None:
    """Compile (or load from cache) every kernel outside the timed region."""
    small = bars.iloc[:2_000]
    for case in cases(small):
        case.ours()


def record(case: Case) -> dict[str, object]:
    t = case.timings
    ours = t["ours"]
    rec: dict[str, object] = {
        "indicator": case.name,
        "params": case.params,
        "ours_s": round(ours, 6),
        "talib_s": round(t["talib"], 6) if "talib" in t else None,
        "ta_s": round(t["ta"], 6) if "ta" in t else None,
        "pandas_s": round(t["pandas"], 6) if "pandas" in t else None,
    }
    for key in ("talib", "ta", "pandas", *case.extra):
        if key in case.extra:
            rec[f"{key}_s"] = round(t[key], 6)
        rec[f"ratio_vs_{key}"] = round(ours / t[key], 3) if key in t else None
    if case.note:
        rec["note"] = case.note
    return rec


def markdown(records: list[dict[str, object]], meta: dict[str, object]) -> str:
    def ms(value: object) -> str:
        return "—" if value is None else f"{float(value) * 1e3:.2f}"

    def ratio(value: object) -> str:
        return "—" if value is None else f"{float(value):.2f}"

    lines = [
        f"`{meta['command']}` — {meta['bars']:,} bars, best of {meta['repeat']}, "
        f"{meta['machine']}, {meta['date']}.",
        "",
        "| indicator | params | ours ms | TA-Lib ms | ta ms | pandas ms | ours / TA-Lib "
        "| ours / ta | ours / pandas |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        lines.append(
            f"| {r['indicator']} | {r['params']} | {ms(r['ours_s'])} | {ms(r['talib_s'])} "
            f"| {ms(r['ta_s'])} | {ms(r['pandas_s'])} | {ratio(r['ratio_vs_talib'])} "
            f"| {ratio(r['ratio_vs_ta'])} | {ratio(r['ratio_vs_pandas'])} |"
        )
    notes = [f"- {r['indicator']}: {r['note']}" for r in records if "note" in r]
    for r in records:
        for key, value in r.items():
            if key.startswith("ratio_vs_") and key[9:] not in ("talib", "ta", "pandas"):
                label = key[9:]
                notes.append(
                    f"- {r['indicator']}: {label.replace('_', ' ')} {ms(r[label + '_s'])} ms, "
                    f"ours / that = {ratio(value)}"
                )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000, help="number of bars (default 1e6)")
    parser.add_argument("--repeat", type=int, default=21, help="timed runs per call (best kept)")
    parser.add_argument(
        "--slow-s",
        type=float,
        default=1.0,
        help="ta calls slower than this (seconds) run once only",
    )
    parser.add_argument("--no-ta", action="store_true", help="skip the ta library")
    parser.add_argument("--only", nargs="*", default=None, help="indicator names to run")
    parser.add_argument("--markdown", type=Path, default=None, help="also write a table here")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="real-data folder (default $QUANTUM_REAL_DATA or ../shared/data)",
    )
    args = parser.parse_args(argv)
    if args.bars < 1 or args.repeat < 1:
        parser.error("--bars and --repeat must be >= 1")

    bars = load_bars(args.bars, args.data_dir or real_data_dir())
    warm_up(bars)
    records = []
    for case in cases(bars):
        if args.only and case.name not in args.only:
            continue
        time_case(case, args.repeat, args.slow_s, not args.no_ta)
        rec = record(case)
        records.append(rec)
        print(json.dumps(rec), flush=True)

    if args.markdown is not None:
        meta = {
            "command": " ".join(["python", "bench/indicators.py", *(argv or sys.argv[1:])]),
            "bars": args.bars,
            "repeat": args.repeat,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        }
        args.markdown.write_text(markdown(records, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
