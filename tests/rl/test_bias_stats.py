"""Action-bias statistics on hand-made action runs (no env, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from quantum_trading.errors import ConfigError
from quantum_trading.rl.bias import (
    SUMMARY_COLUMNS,
    ActionRun,
    action_targets,
    analyze_actions,
    bias_table,
    write_bias_report,
)
from quantum_trading.rl.spec import EnvSpec

SPEC = EnvSpec(symbols=("BTC/USDT:USDT", "ETH/USDT:USDT"), timeframe="1h")
MULTI = EnvSpec(symbols=("BTC/USDT:USDT", "ETH/USDT:USDT"), timeframe="1h", action="multi_head")


def _run(targets: np.ndarray, mode: str = "deterministic", episode: int = 0,
         actions: np.ndarray | None = None) -> ActionRun:
    idx = pd.date_range("2024-01-01", periods=len(targets), freq="1h", tz="UTC")
    return ActionRun(mode, episode, idx, np.asarray(targets, float),  # type: ignore[arg-type]
                     np.asarray(targets if actions is None else actions, float))


def test_long_biased_and_balanced_assets_are_told_apart() -> None:
    rng = np.random.default_rng(0)
    btc = np.clip(0.6 + 0.1 * rng.normal(size=500), -1, 1)  # always long, never at the bound
    eth = np.repeat(rng.choice([-0.5, 0.0, 0.5], size=50), 10)  # balanced, held 10 bars
    report = analyze_actions([_run(np.column_stack([btc, eth]))], SPEC)
    b, e = report.row("BTC/USDT:USDT"), report.row("ETH/USDT:USDT")
    assert b["Verdict"] == "long-biased" and b["Long [%]"] == 100.0 and b["Skew"] == 1.0
    assert b["Mean Target"] == pytest.approx(0.6, abs=0.02) and b["At +1 [%]"] == 0.0
    assert e["Verdict"] == "balanced", e
    assert abs(e["Skew"]) < 0.2 and e["Long [%]"] + e["Short [%]"] + e["Flat [%]"] == 100.0
    assert e["Autocorr(1)"] > 0.8 and e["Side Changes [%]"] < 12.0
    assert e["Turnover [/bar]"] == pytest.approx(np.abs(np.diff(eth)).mean())
    assert list(report.summary.columns) == list(SUMMARY_COLUMNS)
    assert report.flags == ["deterministic BTC/USDT:USDT: long-biased"]
    assert report.histograms[("deterministic", "BTC/USDT:USDT")].sum() == pytest.approx(1.0)


def test_saturation_short_bias_churn_and_flat() -> None:
    t = np.column_stack([np.full(100, -1.0), np.where(np.arange(100) % 2, 0.9, -0.9)])
    report = analyze_actions([_run(t)], SPEC)
    s, c = report.row("BTC/USDT:USDT"), report.row("ETH/USDT:USDT")
    assert s["Verdict"] == "short-biased, saturated" and s["At -1 [%]"] == 100.0
    assert s["Largest Bucket [%]"] == 100.0
    assert c["Verdict"] == "churning" and c["Autocorr(1)"] == pytest.approx(-1.0)
    assert c["Turnover [/bar]"] == pytest.approx(1.8)
    flat = analyze_actions([_run(np.zeros((20, 2)))], SPEC)
    assert set(flat.summary["Verdict"]) == {"always flat"}
    assert np.isnan(flat.row("BTC/USDT:USDT")["Autocorr(1)"])


def test_stochastic_runs_are_pooled_per_mode() -> None:
    det = _run(np.full((10, 2), 0.5))
    sto = [_run(np.full((10, 2), v), "stochastic", i) for i, v in enumerate((0.5, -0.5, 0.5))]
    report = analyze_actions([det, *sto], SPEC)
    assert list(report.summary.index.get_level_values("mode").unique()) == [
        "deterministic", "stochastic"]
    row = report.row("ETH/USDT:USDT", "stochastic")
    assert row["Bars"] == 30 and row["Long [%]"] == pytest.approx(200 / 3)
    assert row["Short [%]"] == pytest.approx(100 / 3)


def test_multi_head_targets_and_largest_bucket() -> None:
    # per asset (direction, size, stop): BTC long at the largest bucket; ETH flat then short small
    acts = np.array([[2, 2, 1, 1, 2, 0], [2, 2, 0, 0, 0, 2], [2, 1, 0, 0, 0, 0]])
    targets = action_targets(acts, MULTI)
    np.testing.assert_allclose(targets, [[1.0, 0.0], [1.0, -0.25], [0.5, -0.25]])
    report = analyze_actions([_run(targets, actions=acts)], MULTI)
    assert report.row("BTC/USDT:USDT")["Largest Bucket [%]"] == pytest.approx(200 / 3)
    assert report.row("ETH/USDT:USDT")["Largest Bucket [%]"] == 0.0  # flat is not a bucket
    with pytest.raises(ConfigError, match="multi_head needs 6"):
        action_targets(np.zeros((2, 2)), MULTI)
    np.testing.assert_array_equal(action_targets(np.array([[3.0, -2.0]]), SPEC), [[1.0, -1.0]])


def test_table_and_html_report(tmp_path: Path) -> None:
    t = np.column_stack([np.full(50, 0.7), np.linspace(-1, 1, 50)])
    report = analyze_actions([_run(t), _run(-t, "stochastic", 0)], SPEC)
    console = Console(record=True, width=250)
    console.print(bias_table(report))
    text = console.export_text()
    assert "long-biased" in text and "short-biased" in text and "BTC/USDT:USDT" in text
    out = write_bias_report(report, tmp_path / "deep" / "bias.html", title="bias of X")
    page = out.read_text()
    assert page.count("<h2>") == 5 and "bias of X" in page and "long-biased" in page
    assert "Target distribution (stochastic)" in page and "plotly" in page
    assert out.stat().st_size > 1_000_000  # plotly.js embedded: opens offline


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="no runs"):
        analyze_actions([], SPEC)
    with pytest.raises(ConfigError, match="flat_tol"):
        analyze_actions([_run(np.zeros((3, 2)))], SPEC, flat_tol=1.5)
