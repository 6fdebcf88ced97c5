"""The trader loads its decision path's compiled kernels at start, not at the first bar.

Each run is a fresh interpreter (numba loads a kernel once per process): a trader on a real
BTC 1h replay records every kernel numba had to load or compile while a bar was being
decided. With the warm-up nothing of the decision path (risk engine, sizing, the strategy's
indicators) is loaded there; with the warm-up switched off the same run loads them there —
the control that shows the check can fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = r'''
import asyncio, json, sys
from pathlib import Path
from numba.core import dispatcher

sys.path.insert(0, {tests!r})
from live._trader_helpers import paper_trader, real_bars
from quantum_trading.live import trader as trader_module
from quantum_trading.live import trader_bar

if {disable!r}:
    trader_module.warm_up_decision_path = lambda trader: 0.0
loaded, deciding = [], [False]
original = dispatcher._DispatcherBase._compile_for_args

def spy(self, *args, **kwargs):
    if deciding[0]:
        loaded.append(self.py_func.__module__ + "." + self.py_func.__name__)
    return original(self, *args, **kwargs)

dispatcher._DispatcherBase._compile_for_args = spy
compile_sig = dispatcher.Dispatcher.compile

def spy_compile(self, sig):  # bound entry points load through compile()
    if deciding[0]:
        loaded.append(self.py_func.__module__ + "." + self.py_func.__name__)
    return compile_sig(self, sig)

dispatcher.Dispatcher.compile = spy_compile
decide = trader_bar.bar_decision

async def watched(t, event):
    deciding[0] = True
    try:
        return await decide(t, event)
    finally:
        deciding[0] = False

trader_module.bar_decision = watched
bars = real_bars(Path({data!r}) / "binance" / "futures", "1h", 120)
trader, _, _ = paper_trader(bars, params={{"fast": 5, "slow": 20, "direction": "both"}},
                            account=None)
summary = asyncio.run(trader.run())
print(json.dumps({{"loaded": loaded, "orders": summary.orders_sent}}))
'''

_DECISION_MODULES = ("quantum_trading.sim.risk_nb", "quantum_trading.sim.lots_nb",
                     "quantum_trading.features", "quantum_trading.strategies")


def _run(real_data: Path, *, disable: bool) -> dict:
    tests = str(Path(__file__).resolve().parents[1])
    code = _SCRIPT.format(tests=tests, disable=disable, data=str(real_data))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _decision_kernels(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith(_DECISION_MODULES)]


@pytest.mark.parametrize("disable", [False, True], ids=["warm-up", "control: no warm-up"])
def test_first_decision_loads_no_kernel(real_data: Path, disable: bool) -> None:
    result = _run(real_data, disable=disable)
    assert result["orders"] > 0
    kernels = _decision_kernels(result["loaded"])
    if disable:
        assert "quantum_trading.sim.risk_nb.update_risk_state_nb" in kernels
        assert any(k.startswith("quantum_trading.sim.lots_nb") for k in kernels)
    else:
        assert kernels == []


@pytest.mark.parametrize("on_file", [False, True])
def test_warm_up_prepares_the_write_ahead_and_stores_nothing(real_data: Path, tmp_path: Path,
                                                             on_file: bool) -> None:
    """The write-ahead is made ready at start — the ``INSERT`` compiled (≈ 2 ms the first
    order paid between bar in and order out), or the journal beside a SQLite file opened;
    the warm-up writes no row and nothing into the journal."""
    import sqlalchemy as sa

    from quantum_trading.live.models import OrderRow, RiskDecisionRow
    from quantum_trading.live.store import TradingStore

    from ._trader_helpers import paper_trader, real_bars

    bars = real_bars(real_data / "binance" / "futures", "1h", 60)
    store = (TradingStore.open(f"sqlite:///{tmp_path / 'w.sqlite'}", exchange="paper")
             if on_file else None)
    trader, _, store = paper_trader(bars, store=store)
    assert store._write_ahead is None
    assert (store._journal is not None) == on_file

    async def start_only() -> None:
        await trader.start()  # ends with the warm-up
        if on_file:
            assert store._journal._fd is not None and store._write_ahead is None
            assert store._journal.path.read_text() == ""
        else:
            assert store._write_ahead is not None
        with store.transaction() as s:
            for model in (OrderRow, RiskDecisionRow):
                assert s.scalar(sa.select(sa.func.count()).select_from(model)) == 0
        await trader.shutdown()

    asyncio.run(start_only())
