"""Parameter types and ParamSpace: validation, grids, Optuna-style suggestions, k=v parsing."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_trading.errors import ConfigError
from quantum_trading.strategies import (
    CategoricalParam,
    Constraint,
    FloatParam,
    IntParam,
    ParamSpace,
)


@pytest.fixture
def space() -> ParamSpace:
    return ParamSpace(
        {
            "fast": IntParam(5, 50, default=10),
            "slow": IntParam(20, 200, default=50, step=10),
            "k": FloatParam(1.0, 3.0, default=1.5),
            "side": CategoricalParam(("long", "short", "both"), default="long"),
            "size": FloatParam(0.1, 3.0, default=1.0, optimize=False),
        },
        constraints=[Constraint("fast < slow", lambda p: p["fast"] < p["slow"])],
    )


class _FakeTrial:
    """Records what was asked, answers the low end / first choice (Optuna's method names)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def suggest_int(self, name, low, high, step=1, log=False):
        self.calls.append(("int", name, low, high, step))
        return low

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self.calls.append(("float", name, low, high, step, log))
        return high

    def suggest_categorical(self, name, choices):
        self.calls.append(("cat", name, tuple(choices)))
        return choices[-1]


# -- construction ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: IntParam(10, 5, default=7),
        lambda: IntParam(1, 10, default=11),
        lambda: IntParam(1, 10, default=5, step=0),
        lambda: IntParam(1.5, 10, default=5),
        lambda: FloatParam(3.0, 1.0, default=2.0),
        lambda: FloatParam(1.0, 3.0, default=5.0),
        lambda: FloatParam(0.0, 3.0, default=1.0, log=True),
        lambda: FloatParam(1.0, 3.0, default=1.0, step=0.5, log=True),
        lambda: CategoricalParam((), default=None),
        lambda: CategoricalParam(("a", "b"), default="c"),
        lambda: CategoricalParam(("a", "a"), default="a"),
    ],
)
def test_bad_declarations_raise(make):
    with pytest.raises(ConfigError):
        make()


def test_space_rejects_bad_names_and_types():
    with pytest.raises(ConfigError, match="identifier"):
        ParamSpace({"not a name": IntParam(1, 2, default=1)})
    with pytest.raises(ConfigError, match="IntParam"):
        ParamSpace({"x": (1, 2)})


# -- validate ----------------------------------------------------------------------------------
def test_defaults_and_validate_fill_in(space):
    assert space.defaults() == {"fast": 10, "slow": 50, "k": 1.5, "side": "long", "size": 1.0}
    out = space.validate({"fast": np.int64(12), "k": 2, "side": "both"})
    assert out == {"fast": 12, "slow": 50, "k": 2.0, "side": "both", "size": 1.0}
    assert type(out["fast"]) is int and type(out["k"]) is float
    assert space.validate({"fast": 20.0})["fast"] == 20  # integral float accepted
    assert space.validate(None) == space.defaults()


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"lookback": 3}, r"unknown parameter 'lookback' \(known parameters: fast, slow"),
        ({"fast": 4}, r"parameter fast: 4 is out of range, must be an integer in \[5, 50\]"),
        ({"fast": 51}, r"parameter fast: 51 is out of range"),
        ({"fast": 7.5}, r"parameter fast: 7\.5 is not an integer in \[5, 50\]"),
        ({"fast": True}, r"parameter fast: True is not an integer"),
        ({"fast": "7"}, r"parameter fast: '7' is not an integer"),
        ({"k": 3.5}, r"parameter k: 3\.5 is out of range, must be a number in \[1\.0, 3\.0\]"),
        ({"k": float("nan")}, r"parameter k: nan is out of range"),
        ({"k": "2"}, r"parameter k: '2' is not a number"),
        ({"side": "up"}, r"parameter side: 'up' is not allowed, must be one of 'long', 'short'"),
        ({"fast": 30, "slow": 20}, r"break the rule fast < slow \(fast=30, slow=20"),
    ],
)
def test_validate_errors_name_parameter_and_range(space, params, pattern):
    with pytest.raises(ConfigError, match=pattern):
        space.validate(params)


def test_categorical_numeric_and_bool_choices():
    p = CategoricalParam((1, 2.5, "auto"), default=1)
    assert p.validate("x", 2.5) == 2.5
    assert p.validate("x", np.float64(1.0)) == 1
    assert p.parse("x", "2.5") == 2.5
    assert p.parse("x", "1") == 1
    assert p.parse("x", "1.0") == 1
    assert p.parse("x", "auto") == "auto"
    with pytest.raises(ConfigError, match="parameter x"):
        p.parse("x", "maybe")
    b = CategoricalParam((True, False), default=False)
    assert b.parse("flag", "true") is True and b.parse("flag", "False") is False
    with pytest.raises(ConfigError, match="parameter flag: 1 is not allowed"):
        b.validate("flag", 1)
    with pytest.raises(ConfigError, match="duplicate"):
        CategoricalParam((1, True), default=1)


# -- parse -------------------------------------------------------------------------------------
def test_parse_kv_strings_types_values(space):
    out = space.parse(["fast=12", "slow = 60", "k=2.25", "side=short"])
    assert out == {"fast": 12, "slow": 60, "k": 2.25, "side": "short", "size": 1.0}
    assert space.parse({"fast": "7"})["fast"] == 7
    assert space.parse("k=3")["k"] == 3.0
    assert space.parse([]) == space.defaults()


@pytest.mark.parametrize(
    ("items", "pattern"),
    [
        (["fast"], "must look like name=value"),
        (["fast=abc"], r"parameter fast: 'abc' is not an integer in \[5, 50\]"),
        (["fast=7.5"], r"parameter fast: 7\.5 is not an integer"),
        (["k=x"], r"parameter k: 'x' is not a number in \[1\.0, 3\.0\]"),
        (["speed=3"], "unknown parameter 'speed'"),
        (["fast=60"], r"fast: 60 is out of range"),
        (["fast=40", "slow=30"], "fast < slow"),
    ],
)
def test_parse_errors(space, items, pattern):
    with pytest.raises(ConfigError, match=pattern):
        space.parse(items)


# -- grid --------------------------------------------------------------------------------------
def test_param_grids():
    assert IntParam(10, 200, default=20, step=10).grid(3) == [10, 110, 200]
    assert IntParam(1, 3, default=2).grid(10) == [1, 2, 3]
    assert IntParam(1, 3, default=2).grid(1) == [2]
    assert FloatParam(1.0, 3.0, default=1.5).grid(3) == [1.0, 2.0, 3.0]
    assert FloatParam(1.0, 3.0, default=1.5, step=0.5).grid(10) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert FloatParam(1.0, 100.0, default=10.0, log=True).grid(3) == [1.0, 10.0, 100.0]
    assert CategoricalParam(("a", "b"), default="a").grid(1) == ["a", "b"]


def test_space_grid_counts_constraints_and_optimize_flag(space):
    combos = space.grid(2)  # fast {5, 50} × slow {20, 200} × k {1, 3} × side {3}; size fixed
    assert all(c["fast"] < c["slow"] for c in combos)
    assert all(c["size"] == 1.0 for c in combos)
    assert len(combos) == 3 * 2 * 3  # (5,20) (5,200) (50,200) × k × side
    one = space.grid(1)  # numbers at their defaults, every choice of the categorical
    assert [c["side"] for c in one] == ["long", "short", "both"]
    assert all(c["fast"] == 10 and c["k"] == 1.5 for c in one)


def test_space_grid_explicit(space):
    combos = space.grid({"fast": [10, 30], "slow": [20, 40], "size": 2})
    assert len(combos) == 3 * 2
    assert {(c["fast"], c["slow"]) for c in combos} == {(10, 20), (10, 40), (30, 40)}
    assert {c["size"] for c in combos} == {0.1, 3.0}  # optimize=False but asked for by name
    assert {c["k"] for c in combos} == {1.5} and {c["side"] for c in combos} == {"long"}
    with pytest.raises(ConfigError, match="unknown parameter"):
        space.grid({"nope": 3})
    with pytest.raises(ConfigError, match=r"parameter fast: 99 is out of range"):
        space.grid({"fast": [10, 99]})
    with pytest.raises(ConfigError, match="n_per_param"):
        space.grid(0)


# -- suggest -----------------------------------------------------------------------------------
def test_suggest_uses_optuna_methods_and_skips_fixed_params(space):
    trial = _FakeTrial()
    out = space.suggest(trial)
    assert out == {"fast": 5, "slow": 20, "k": 3.0, "side": "both", "size": 1.0}
    assert ("int", "slow", 20, 200, 10) in trial.calls
    assert ("float", "k", 1.0, 3.0, None, False) in trial.calls
    assert ("cat", "side", ("long", "short", "both")) in trial.calls
    assert not any(c[1] == "size" for c in trial.calls)


def test_suggest_raises_on_constraint():
    space = ParamSpace(
        {"fast": IntParam(30, 50, default=30), "slow": IntParam(20, 40, default=40)},
        constraints=[Constraint("fast < slow", lambda p: p["fast"] < p["slow"])],
    )
    with pytest.raises(ConfigError, match="fast < slow"):
        space.suggest(_FakeTrial())  # fast=30 (low), slow=20 (low)


def test_describe_and_mapping(space):
    assert list(space) == ["fast", "slow", "k", "side", "size"]
    assert len(space) == 5 and "fast" in space
    assert space.describe()["fast"] == "an integer in [5, 50] (default 10)"
    assert "ParamSpace(fast=IntParam" in repr(space)
