"""The public API of the measures and sizing modules: exports and docstring examples."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = [
    "measures",
    "measures_rolling",
    "measures_portfolio",
    "backtests",
    "sizing",
    "measures_nb",
]
DOCTEST_MODULES = [*MODULES, "positions_snapshot", "stress", "stress_scenarios"]


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"quantum_trading.risk.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("module", MODULES)
def test_all_is_explicit_and_public_functions_have_examples(module: str) -> None:
    mod = importlib.import_module(f"quantum_trading.risk.{module}")
    for name in mod.__all__:
        obj = getattr(mod, name)
        if module != "measures_nb" and inspect.isfunction(obj):
            assert ">>> " in (obj.__doc__ or ""), f"{module}.{name} lacks an example"


def test_package_reexports_everything() -> None:
    risk = importlib.import_module("quantum_trading.risk")
    for module in MODULES[:-1]:
        mod = importlib.import_module(f"quantum_trading.risk.{module}")
        for name in mod.__all__:
            if name[0].isupper() and name.endswith(("Method", "Fit")) and name != "StudentTFit":
                continue  # typing aliases stay in their module
            assert getattr(risk, name) is getattr(mod, name), name
