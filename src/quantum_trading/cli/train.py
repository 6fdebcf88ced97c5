"""``quantum train``: PPO through a phase schedule on real or synthetic bars.

Parsing and printing only; the work is done by :func:`quantum_trading.rl.train.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import typer
from rich.table import Table

from quantum_trading.cli._console import console
from quantum_trading.errors import ConfigError

if TYPE_CHECKING:
    from quantum_trading.rl.spec import EnvSpec

__all__ = ["load_training_bars", "train"]


_SPEC_OPTIONS = {"symbols": "--symbols", "timeframe": "--timeframe", "window": "--window",
                 "action": "--action", "max_leverage": "--max-leverage"}
"""The option that sets each :class:`~quantum_trading.rl.spec.EnvSpec` field."""


def _symbols(text: str) -> list[str]:
    """The comma-separated ``--symbols`` as a list (the spec checks them: unique …)."""
    out = [s.strip() for s in text.split(",") if s.strip()]
    if not out:
        raise ConfigError("--symbols: give at least one symbol, e.g. "
                          "BTC/USDT:USDT,ETH/USDT:USDT")
    return out


def _spec(**fields: Any) -> EnvSpec:
    """The :class:`~quantum_trading.rl.spec.EnvSpec` of the options; its own checks (unique
    symbols, known action, bounds) raise ConfigError naming the option."""
    from pydantic import ValidationError

    from quantum_trading.rl.spec import EnvSpec

    try:
        return EnvSpec(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "spec"
        msg = str(err["msg"]).removeprefix("Value error, ")
        got = "" if err["type"] == "value_error" else f" (got {err['input']!r})"
        raise ConfigError(f"{_SPEC_OPTIONS.get(name, name)}: {msg}{got}") from None


def load_training_bars(data: Path | None, symbols: list[str], timeframe: str, *,
                       exchange: str | None, n_bars: int, seed: int
                       ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """``{symbol: bars}`` on one common index (with ``funding_rate`` when found) and notes
    to print: from a freqtrade-layout folder or file set under ``data``, else synthetic bars
    (:func:`quantum_trading.data.generate_market`, ``n_bars`` bars, ``seed``)."""
    notes: list[str] = []
    if data is None:
        from quantum_trading.data import generate_market

        market = generate_market(n_assets=len(symbols), n_bars=n_bars, timeframe=timeframe,
                                 seed=seed, symbols=tuple(symbols))
        from quantum_trading.data.loaders import join_funding

        frames = {}
        for sym in symbols:
            frames[sym] = join_funding(market.ohlcv[sym], market.funding[sym],
                                       timeframe=timeframe)
        notes.append(f"data: synthetic market, {n_bars:,} {timeframe} bars of "
                     f"{', '.join(symbols)} (seed {seed})")
        return frames, notes
    from quantum_trading.backtest.inputs import load_bars

    loaded = {}
    for sym in symbols:
        got = load_bars(data, symbol=sym, exchange=exchange, timeframe=timeframe)
        loaded[sym] = got.bars
        notes.extend(got.notes)
    common = loaded[symbols[0]].index
    for sym in symbols[1:]:
        common = common.intersection(loaded[sym].index)
    if len(common) < 2:
        raise ConfigError(f"--data {data}: the symbols share no bars")
    dropped = {s: len(f) - len(common) for s, f in loaded.items() if len(f) != len(common)}
    if dropped:
        notes.append("aligned on the common bars: dropped " + ", ".join(
            f"{n} of {s}" for s, n in dropped.items()))
    return {s: f.loc[common] for s, f in loaded.items()}, notes


def _fmt(value: Any, digits: int = 2) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "–"


def _results_table(phases: list[dict[str, Any]]) -> Table:
    table = Table(title="after each phase: validation slice (read by transitions and advice) "
                  "and test slice (held out, only reported); same costs for all")
    for col in ("phase", "steps", "val. return [%]", "val. Sharpe", "test return [%]",
                "test Sharpe", "test max DD [%]", "test turnover/bar", "test random [%]",
                "test buy&hold [%]", "advice"):
        table.add_column(col, justify="left" if col in ("phase", "advice") else "right")
    for rec in phases:
        val = (rec.get("validation") or {}).get("policy", {})
        test = rec.get("test") or rec["evaluation"]  # "evaluation": a run before the split
        pol, rnd, bh = test["policy"], test.get("random", {}), test["buy_hold"]
        table.add_row(rec["phase"], f"{rec['timesteps']:,}", _fmt(val.get("total_return_pct")),
                      _fmt(val.get("sharpe")), _fmt(pol["total_return_pct"]),
                      _fmt(pol["sharpe"]), _fmt(pol["max_drawdown_pct"]),
                      _fmt(pol["turnover"], 3), _fmt(rnd.get("total_return_pct")),
                      _fmt(bh["total_return_pct"]), ", ".join(rec["recommendations"]) or "–")
    return table


def train(
    data: Path | None = typer.Option(None, "--data", "-d", help="A freqtrade-layout data "
                                     "folder (or its <exchange>/futures folder); none: "
                                     "synthetic data."),
    symbols: str = typer.Option("BTC/USDT:USDT,ETH/USDT:USDT", "--symbols", "-s",
                                help="Comma-separated ccxt symbols, in observation order."),
    timeframe: str = typer.Option("1h", "--timeframe", "-t", help="Bar length, e.g. 1h."),
    schedule: Path | None = typer.Option(None, "--schedule", help="Phase schedule YAML "
                                         "(default: the packaged rl/schedules/default.yaml)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (bundles, logs, "
                             "metrics)."),
    continue_from: Path | None = typer.Option(None, "--continue", help="Resume from a "
                                              "checkpoint or phase bundle folder."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of torch, numpy and the envs."),
    n_envs: int = typer.Option(4, "--n-envs", min=1, max=4096, help="Training environments."),
    exchange: str | None = typer.Option(None, "--exchange", "-e",
                                        help="Exchange folder inside --data."),
    bars: int = typer.Option(5000, "--bars", min=300, max=10_000_000,
                             help="Synthetic bars per asset (without --data)."),
    window: int = typer.Option(32, "--window", min=1, max=4096,
                               help="Bars of market features observed."),
    action: str = typer.Option("target", "--action", help="target | multi_head."),
    max_leverage: float = typer.Option(1.0, "--max-leverage", min=0.01, max=125.0,
                                       help="Target multiple of equity at action ±1."),
    no_risk: bool = typer.Option(False, "--no-risk", help="Train without the risk engine's "
                                 "limits (default: the backtest's limits)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a PPO agent through a phase schedule; evaluate it on later bars.

    The bars are split in time into three slices: train | validation | test. The test slice
    (the last eval_fraction of the bars, schedule file, default 20 %) is held out and only
    reported; the validation slice (validation_fraction, default 15 %, just before it) is
    what early phase transitions and the recommendations read; training sees only the bars
    before it. After each phase the policy, a random policy and buy-and-hold are run on both
    slices with the same costs. Writes bundles (model + VecNormalize + EnvSpec),
    CSV/TensorBoard logs, metrics.json and recommendations.json under --out.
    """
    from quantum_trading.rl.env_config import EnvConfig
    from quantum_trading.rl.schedule import default_schedule_path, load_schedule
    from quantum_trading.rl.train import train as run_training

    syms = _symbols(symbols)
    spec = _spec(symbols=tuple(syms), timeframe=timeframe, window=window, action=action,
                 max_leverage=max_leverage)
    if data is not None and not data.exists():
        raise ConfigError(f"--data {data}: no such file or folder")
    sched = load_schedule(schedule or default_schedule_path())
    frames, notes = load_training_bars(data, syms, timeframe, exchange=exchange, n_bars=bars,
                                       seed=seed)
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
    config = EnvConfig(risk=None) if no_risk else EnvConfig()
    if max_leverage > 1.0:
        config = config.model_copy(update={"account": config.account.model_copy(
            update={"leverage": max_leverage})})
    console.print(f"training {sched.total_timesteps:,} steps in {len(sched.phases)} phases "
                  f"({', '.join(p.name for p in sched.phases)}), seed {seed}, {n_envs} envs; "
                  f"bars split train / validation / test = "
                  f"{1 - sched.eval_fraction - sched.validation_fraction:.0%} / "
                  f"{sched.validation_fraction:.0%} / {sched.eval_fraction:.0%}",
                  highlight=False, soft_wrap=True)
    result = run_training(sched, frames, spec=spec, env_config=config, out_dir=out, seed=seed,
                          n_envs=n_envs, continue_from=continue_from, progress=not quiet)
    if result.phases:
        console.print(_results_table(result.phases))
        last = result.phases[-1]
        if last["validation"] is not None:
            val = last["validation"]
            console.print(f"validation: {val['start_time']} → {val['end_time']}",
                          highlight=False, soft_wrap=True)
        test = last["test"]
        console.print(f"test (held out): {test['start_time']} → {test['end_time']}",
                      highlight=False, soft_wrap=True)
    console.print(f"model written to [bold]{result.final_bundle}[/bold]; logs, metrics.json "
                  f"and recommendations under {result.out_dir}", soft_wrap=True)
