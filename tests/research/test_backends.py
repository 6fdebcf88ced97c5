"""Backends: the same job gives identical result tables on the local process pool and on Ray.

One local Ray instance (2 CPUs, no dashboard) serves the whole module and is shut down at the
end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from quantum_trading.cli.main import main
from quantum_trading.data import generate_market
from quantum_trading.errors import ConfigError
from quantum_trading.research.backends import LocalBackend, RayBackend, get_backend
from quantum_trading.research.optimize import optimize

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalBackend]:
    """Two spawned worker processes shared by the module's tests."""
    with LocalBackend(n_workers=2) as backend:
        yield backend


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_market(n_assets=1, n_bars=2000, seed=21).ohlcv["BTC/USDT:USDT"]


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.returns, b.returns)
    assert a.best_params == b.best_params
    assert a.dsr == b.dsr and a.verdict == b.verdict


def test_batched_grid_identical_on_local_and_ray(ray_instance, bars):
    grid = {"fast": [5, 8, 13, 21, 34], "slow": [40, 60, 90, 150], "direction": ["long", "both"]}
    local = optimize(bars, "trend_following", grid=grid, backend="local", n_workers=2)
    on_ray = optimize(bars, "trend_following", grid=grid, backend="ray")
    assert local.batched and on_ray.batched and len(local.table) == 40
    assert (local.backend, on_ray.backend) == ("local", "ray")
    _same(local, on_ray)


def test_backtest_per_set_grid_identical_on_process_pool_and_ray(ray_instance, pool, bars):
    data = bars.iloc[:600]
    grid = {"bb_period": [10, 20, 30], "nbdev": [1.5, 2.5]}
    local = optimize(data, "mean_reversion", grid=grid, backend=pool)
    on_ray = optimize(data, "mean_reversion", grid=grid, backend=RayBackend())
    assert not local.batched and len(local.table) == 6
    _same(local, on_ray)
    serial = optimize(data, "mean_reversion", grid=grid, n_workers=1)
    _same(local, serial)


def test_optuna_batches_identical_on_process_pool_and_ray(ray_instance, pool, bars):
    kwargs = {"method": "optuna", "n_trials": 6, "batch_size": 3, "seed": 4, "risk": None}
    local = optimize(bars, "trend_following", backend=pool, **kwargs)
    on_ray = optimize(bars, "trend_following", backend="ray", **kwargs)
    assert len(local.table) == 6
    _same(local, on_ray)


def test_cli_optimize_on_ray_equals_local(ray_instance, capsys, binance_futures_dir: Path,
                                          tmp_path: Path):
    """``quantum optimize --backend ray`` (the running local Ray instance) prints the same
    table and verdict as the local backend, on real BTC bars."""
    outputs = []
    for backend in ("local", "ray"):
        code = main(["optimize", "-s", "mean_reversion", "-d", str(binance_futures_dir),
                     "--symbol", "BTC/USDT:USDT", "--grid", "bb_period=10,20,30",
                     "--grid", "nbdev=1.5,2.5", "--backend", backend, "--workers", "2",
                     "--regimes", "none", "--report", str(tmp_path / f"{backend}.html")])
        out = capsys.readouterr().out
        assert code == 0, out
        outputs.append(out[out.index("best 6 of 6 parameter sets"):out.index("report written")])
    assert outputs[0] == outputs[1]
    text = (tmp_path / "ray.html").read_text(encoding="utf-8")
    assert "grid search on the ray backend" in text


def test_map_keeps_item_order_and_reports_each(ray_instance):
    seen: list[int] = []
    with LocalBackend(n_workers=1) as local:
        assert local.map(pow, 3, [0, 1, 2], on_result=lambda pos, r: seen.append(pos)) == [1, 3, 9]
    assert seen == [0, 1, 2]
    remote = RayBackend()
    got: dict[int, int] = {}
    assert remote.map(pow, 2, list(range(8)), on_result=got.__setitem__) == [2**i for i in range(8)]
    assert got == {i: 2**i for i in range(8)}
    assert remote.n_workers == 2
    remote.close()
    assert ray.is_initialized()  # a Ray instance it did not start is left running


def test_backend_arguments():
    assert get_backend("local", n_workers=3).n_workers == 3
    assert isinstance(get_backend("ray", address="127.0.0.1:6379"), RayBackend)
    with pytest.raises(ConfigError, match="unknown backend"):
        get_backend("dask")
    with pytest.raises(ConfigError, match="--address is for the ray backend"):
        get_backend("local", address="10.0.0.1:6379")
    with pytest.raises(ConfigError, match="n_workers"):
        LocalBackend(n_workers=0)
    with pytest.raises(ConfigError, match="cannot be sent"):
        LocalBackend(n_workers=2).map(pow, lambda: 1, [1, 2])
