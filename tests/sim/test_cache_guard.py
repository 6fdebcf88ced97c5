"""The kernel cache guard: cached machine code built from other kernel sources is deleted."""

from __future__ import annotations

from pathlib import Path

from quantum_trading.sim._cache_guard import purge_stale_kernels


def _touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_purge_when_any_kernel_module_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    sim = tmp_path / "pkg" / "sim"
    _touch(sim / "engine_nb.py", "def simulate_nb(): ...\n")
    callee = _touch(sim / "orders_nb.py", "def fill_nb(): ...\n")
    _touch(sim / "records.py", "A = 1\n")
    own = _touch(sim / "__pycache__" / "engine_nb.simulate_nb-10.py311.nbi")
    user = _touch(tmp_path / "pkg" / "research" / "sweep_nb.py",
                  "from quantum_trading.sim.engine_nb import simulate_nb\n")
    theirs = _touch(user.parent / "__pycache__" / "sweep_nb.sweep_slot_nb-5.py311.nbc")
    other = _touch(tmp_path / "pkg" / "features" / "__pycache__" / "ma_nb.sma_nb-3.py311.nbi")
    _touch(other.parent.parent / "ma_nb.py", "import numpy\n")

    assert purge_stale_kernels(sim, tmp_path / "pkg") == 2  # no digest yet: rebuild
    assert not own.exists() and not theirs.exists() and other.exists()
    own.write_text("")
    theirs.write_text("")
    assert purge_stale_kernels(sim, tmp_path / "pkg") == 0  # same sources: keep
    callee.write_text("def fill_nb(): return 1\n")  # a callee changes, not the caller's file
    assert purge_stale_kernels(sim, tmp_path / "pkg") == 2
    assert not own.exists() and not theirs.exists() and other.exists()
