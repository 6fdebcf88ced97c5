"""Benchmark VaR/ES by every method on 20 assets x 5 years of hourly returns.

Data: **synthetic**, seeded (``--seed``, default 42): 43,830 hourly returns (5 x 365.25 days)
of 20 correlated, fat-tailed assets. A market factor plus four 5-asset sectors give
correlations of about 0.3-0.7; each bar's vector is multivariate Student-t (dof 4, one
chi-square mixing draw per bar) and all assets share a persistent volatility regime (AR(1) log
volatility), so FHS has clustering to filter. Hourly volatilities run from 0.3% to 0.8%.

Timed: for each method, VaR and ES of the 20 assets (one DataFrame call) **and** of the
equally weighted portfolio (one more call), through the public API (validation included);
plus Euler component VaR and Monte Carlo (10,000 draws; normal and multivariate t). Numba
kernels are compiled and every case is run once before timing; each case is then timed 3
times and the best is kept. The total is the sum of the best times. Prints one JSON object:

    .venv/bin/python bench/risk.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime

import numba
import numpy as np
import pandas as pd

from _timing import best_of
from quantum_trading import risk

N_BARS = 43_830
N_ASSETS = 20
ALPHA = 0.99


def synthetic_returns(seed: int, n_bars: int = N_BARS, n_assets: int = N_ASSETS) -> pd.DataFrame:
    """Correlated, fat-tailed, volatility-clustered hourly simple returns (see module doc)."""
    rng = np.random.default_rng(seed)
    market = rng.uniform(0.5, 0.8, n_assets)
    sector = np.repeat(np.arange(4), n_assets // 4)[:n_assets]
    corr = np.outer(market, market) + 0.3 * (sector[:, None] == sector[None, :])
    np.fill_diagonal(corr, 1.0)
    corr /= np.sqrt(np.outer(np.diag(corr), np.diag(corr)))
    vols = rng.uniform(0.003, 0.008, n_assets)
    chol = np.linalg.cholesky(corr)
    dof = 4.0
    z = rng.standard_normal((n_bars, n_assets)) @ chol.T
    z *= np.sqrt((dof - 2.0) / rng.chisquare(dof, n_bars))[:, None]
    log_vol = np.empty(n_bars)
    log_vol[0] = 0.0
    shocks = rng.normal(0.0, 0.02, n_bars)
    for t in range(1, n_bars):
        log_vol[t] = 0.995 * log_vol[t - 1] + shocks[t]
    regime = np.exp(log_vol - log_vol.mean())
    values = 0.00002 + z * vols * regime[:, None]
    index = pd.date_range("2019-01-01", periods=n_bars, freq="1h", tz="UTC")
    return pd.DataFrame(values, index=index, columns=[f"A{i:02d}" for i in range(n_assets)])


def cases(returns: pd.DataFrame) -> dict[str, Callable[[], object]]:
    weights = pd.Series(1.0 / returns.shape[1], index=returns.columns)

    def both(method: str, **kwargs: object) -> Callable[[], object]:
        def run() -> object:
            assets = risk.var_es(returns, method, ALPHA, **kwargs)
            port = risk.portfolio_var_es(returns, weights, method, ALPHA, **kwargs)
            return assets, port

        return run

    return {
        "historical (inverted_cdf)": both("historical"),
        "historical (linear)": both("historical", quantile_method="linear"),
        "gaussian": both("gaussian"),
        "student_t (mle)": both("student_t", t_fit="mle"),
        "student_t (moments)": both("student_t", t_fit="moments"),
        "cornish_fisher": both("cornish_fisher"),
        "fhs (lambda 0.94)": both("fhs"),
        "component_var (gaussian Euler)": lambda: risk.component_var(returns, weights, ALPHA),
        "monte_carlo normal (10,000 draws)": lambda: risk.monte_carlo_var_es(
            returns, weights, ALPHA, n_draws=10_000, seed=0
        ),
        "monte_carlo t (10,000 draws)": lambda: risk.monte_carlo_var_es(
            returns, weights, ALPHA, n_draws=10_000, distribution="t", seed=0
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    returns = synthetic_returns(args.seed)
    todo = cases(returns)
    for fn in todo.values():  # compile the kernels and warm the caches
        fn()
    timings = {name: best_of(fn, args.repeat)[0] for name, fn in todo.items()}
    total = sum(timings.values())
    sample = risk.var_es(returns, "historical", ALPHA)
    record = {
        "benchmark": "risk measures",
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d"),
        "data": (
            f"synthetic seed={args.seed}: {returns.shape[0]} hourly returns x "
            f"{returns.shape[1]} assets, multivariate t(4), factor correlations, AR(1) log-vol"
        ),
        "alpha": ALPHA,
        "per_method_s": {k: round(v, 6) for k, v in timings.items()},
        "total_s": round(total, 6),
        "goal_s": 1.0,
        "goal_met": total < 1.0,
        "repeat": f"best of {args.repeat} after one warm-up run",
        "check_historical_var99_median_asset": round(float(sample.var.median()), 6),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "numba": numba.__version__,
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
    }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
