"""The research package's public names: importable from the package and from the modules
that define them, and never a name that hides a submodule."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import types

import pytest

import quantum_trading.research as research


def _submodules() -> set[str]:
    return {m.name for m in pkgutil.iter_modules(research.__path__)}


def test_no_exported_name_hides_a_submodule() -> None:
    """``research.sweep`` must stay the module (a function ``sweep`` exported from the package
    would replace it and break ``from quantum_trading.research import sweep as module``)."""
    modules = _submodules()
    assert {"sweep", "optimize", "walk_forward", "validate", "regimes"} <= modules
    clashes = sorted(set(research.__all__) & modules)
    assert clashes == []
    for name in modules:
        module = importlib.import_module(f"quantum_trading.research.{name}")
        assert getattr(research, name) is module, name
        assert isinstance(module, types.ModuleType)


def test_every_exported_name_exists_and_modules_stay_small() -> None:
    for name in research.__all__:
        assert hasattr(research, name), name
    for name in _submodules():
        module = importlib.import_module(f"quantum_trading.research.{name}")
        for public in getattr(module, "__all__", ()):
            assert hasattr(module, public), (name, public)
        with open(module.__file__, encoding="utf-8") as fh:
            lines = sum(1 for _ in fh)
        assert lines <= 600, (name, lines)  # STYLE.md: small modules, one concept each


def test_split_modules_keep_the_old_import_paths() -> None:
    from quantum_trading.research import optimize as opt_module
    from quantum_trading.research import optuna_search, scoring, sweep_eval, sweep_job
    from quantum_trading.research import sweep as sweep_module
    from quantum_trading.research.optimization_result import OptimizationResult

    assert opt_module.Constraints is scoring.Constraints
    assert opt_module.significance_verdict is scoring.significance_verdict
    assert opt_module.OptimizationResult is OptimizationResult
    assert opt_module.evaluate_trial is optuna_search.evaluate_trial
    assert opt_module.TABLE_STATS is sweep_job.TABLE_STATS is research.TABLE_STATS
    assert sweep_module.evaluate_chunk is sweep_eval.evaluate_chunk
    assert sweep_module.make_job is sweep_job.make_job
    assert callable(sweep_module.sweep) and callable(opt_module.optimize)


@pytest.mark.parametrize("name", sorted({m.name for m in pkgutil.iter_modules(research.__path__)}
                                        - {"stats"}))  # stats: in test_stats.py
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(f"quantum_trading.research.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0  # STYLE.md: public entry points
