"""The strategy contract: declared parameter spaces and the :class:`Strategy` protocol.

A strategy is anything with a ``name``, a :class:`ParamSpace` called ``params`` and a method
``signals(data, **params) -> Signals``. ``data`` is one asset's OHLCV frame (UTC
``DatetimeIndex`` = bar open time, float64 ``open high low close volume``) or a
``dict[symbol, DataFrame]`` for several assets on one index. The returned target is the
signed exposure as a multiple of equity **decided at bar t's close and filled at bar t+1's
open**; the value at bar t may use data up to and including bar t's close, nothing later
(see :func:`quantum_trading.strategies.check_causality`).

Parameters are declared, as in freqtrade's hyperopt spaces, with a range and a default:
:class:`IntParam`, :class:`FloatParam` and :class:`CategoricalParam`. A :class:`ParamSpace`
groups them with optional cross-parameter constraints and gives the optimiser what it needs:
:meth:`ParamSpace.defaults`, :meth:`ParamSpace.validate`, :meth:`ParamSpace.grid` (grid
search), :meth:`ParamSpace.suggest` (Optuna, duck-typed) and :meth:`ParamSpace.parse`
(``"k=v"`` strings from the command line).

>>> space = ParamSpace({"lookback": IntParam(10, 200, default=20, step=10)})
>>> space.validate({"lookback": 50})
{'lookback': 50}
>>> space.parse(["lookback=30"])
{'lookback': 30}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from quantum_trading.domain import Signals
from quantum_trading.errors import ConfigError, QuantumError

__all__ = [
    "CategoricalParam",
    "Constraint",
    "FloatParam",
    "IntParam",
    "MarketData",
    "Param",
    "ParamSpace",
    "Strategy",
    "StrategyError",
    "target_column",
]

MarketData = pd.DataFrame | Mapping[str, pd.DataFrame]
"""One asset's OHLCV frame, or ``{symbol: frame}`` for several assets sharing one index."""


class StrategyError(QuantumError):
    """A strategy failed or returned something unusable.

    ``strategy`` is the strategy's name; when the strategy's own code raised, the original
    exception is chained (``__cause__``) and named in the message.

    >>> str(StrategyError("my_rule", "returned 3 values for 4 bars"))
    "strategy 'my_rule': returned 3 values for 4 bars"
    """

    def __init__(self, strategy: str, problem: str) -> None:
        self.strategy = strategy
        self.problem = problem
        super().__init__(f"strategy {strategy!r}: {problem}")


def target_column(frame: pd.DataFrame, strategy: str) -> str:
    """Column name of a one-asset target: ``frame.attrs["symbol"]`` if set, else ``strategy``.

    >>> target_column(pd.DataFrame(), "trend_following")
    'trend_following'
    """
    symbol = frame.attrs.get("symbol")
    return str(symbol) if symbol else strategy


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _fmt(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


@dataclass(frozen=True)
class IntParam:
    """An integer parameter in ``[low, high]`` (both included).

    ``step`` is the search grid's spacing (``low, low + step, …``) for grid search and Optuna;
    :meth:`validate` accepts any integer in the range. Keyword-only: ``doc`` says what the
    parameter does; ``optimize=False`` keeps it at its default in :meth:`ParamSpace.grid`
    (with a count) and :meth:`ParamSpace.suggest` unless asked for by name (freqtrade's
    ``optimize`` flag). The same two keywords exist on every parameter type.

    >>> IntParam(10, 200, default=20, step=10).grid(4)
    [10, 70, 140, 200]
    """

    low: int
    high: int
    default: int
    step: int = 1
    _: KW_ONLY
    doc: str = ""
    optimize: bool = True

    def __post_init__(self) -> None:
        if not (_is_int(self.low) and _is_int(self.high) and _is_int(self.step)):
            raise ConfigError(f"IntParam: low, high and step must be integers, got "
                              f"{self.low!r}, {self.high!r}, {self.step!r}")
        if self.low > self.high or self.step < 1:
            raise ConfigError(f"IntParam: need low <= high and step >= 1, got "
                              f"[{self.low}, {self.high}] step {self.step}")
        if not (_is_int(self.default) and self.low <= self.default <= self.high):
            raise ConfigError(f"IntParam: default {self.default!r} is not an integer in "
                              f"[{self.low}, {self.high}]")

    def describe(self) -> str:
        """The allowed range as text, e.g. ``"an integer in [10, 200]"``."""
        return f"an integer in [{self.low}, {self.high}]"

    def validate(self, name: str, value: Any) -> int:
        """``value`` as an ``int``; :class:`ConfigError` naming ``name`` if not allowed.

        Integral floats (``50.0``) are accepted; other floats, bools and strings are not.
        """
        if _is_real(value) and not _is_int(value):
            f = float(value)
            if not (math.isfinite(f) and f.is_integer()):
                raise ConfigError(f"parameter {name}: {_fmt(value)} is not {self.describe()}")
            value = int(f)
        if not _is_int(value):
            raise ConfigError(f"parameter {name}: {value!r} is not {self.describe()}")
        value = int(value)
        if not self.low <= value <= self.high:
            raise ConfigError(f"parameter {name}: {value} is out of range, must be "
                              f"{self.describe()}")
        return value

    def parse(self, name: str, text: str) -> int:
        """``text`` (e.g. ``"50"``) as a valid value."""
        try:
            value: Any = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"parameter {name}: {text!r} is not "
                                  f"{self.describe()}") from None
        return self.validate(name, value)

    def grid(self, n: int) -> list[int]:
        """Up to ``n`` values on the step grid, evenly spread from ``low`` toward ``high``."""
        values = list(range(self.low, self.high + 1, self.step))
        return _spread(values, n, self.default)

    def suggest(self, trial: Any, name: str) -> int:
        """Ask an Optuna-like ``trial`` for a value (``trial.suggest_int``)."""
        return int(trial.suggest_int(name, self.low, self.high, step=self.step))


@dataclass(frozen=True)
class FloatParam:
    """A real parameter in ``[low, high]`` (both included).

    ``step`` (optional) discretises the search; ``log=True`` searches on a log scale (needs
    ``low > 0``; not with ``step``, as in Optuna). :meth:`validate` accepts any finite number
    in the range, on the step grid or not.

    >>> FloatParam(1.0, 3.0, default=1.5).grid(5)
    [1.0, 1.5, 2.0, 2.5, 3.0]
    """

    low: float
    high: float
    default: float
    step: float | None = None
    log: bool = False
    _: KW_ONLY
    doc: str = ""
    optimize: bool = True

    def __post_init__(self) -> None:
        if not (_is_real(self.low) and _is_real(self.high)
                and math.isfinite(self.low) and math.isfinite(self.high)
                and self.low <= self.high):
            raise ConfigError(f"FloatParam: need finite low <= high, got "
                              f"[{self.low!r}, {self.high!r}]")
        if self.step is not None and not (_is_real(self.step) and self.step > 0):
            raise ConfigError(f"FloatParam: step must be > 0, got {self.step!r}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ConfigError("FloatParam: log=True needs low > 0 and no step")
        if not (_is_real(self.default) and self.low <= self.default <= self.high):
            raise ConfigError(f"FloatParam: default {self.default!r} is not a number in "
                              f"[{self.low}, {self.high}]")

    def describe(self) -> str:
        """The allowed range as text, e.g. ``"a number in [1.0, 3.0]"``."""
        return f"a number in [{self.low}, {self.high}]"

    def validate(self, name: str, value: Any) -> float:
        """``value`` as a ``float``; :class:`ConfigError` naming ``name`` if not allowed."""
        if not _is_real(value):
            raise ConfigError(f"parameter {name}: {value!r} is not {self.describe()}")
        value = float(value)
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise ConfigError(f"parameter {name}: {value} is out of range, must be "
                              f"{self.describe()}")
        return value

    def parse(self, name: str, text: str) -> float:
        """``text`` (e.g. ``"2.5"``) as a valid value."""
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"parameter {name}: {text!r} is not {self.describe()}") from None
        return self.validate(name, value)

    def grid(self, n: int) -> list[float]:
        """``n`` values from ``low`` to ``high``: on the step grid if there is one, else
        evenly (geometrically with ``log=True``) spaced."""
        if self.step is not None:
            count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            values = [float(round(self.low + k * self.step, 12)) for k in range(count)]
            return _spread(values, n, self.default)
        if n <= 1 or self.low == self.high:
            return [float(self.default)]
        if self.log:
            raw = np.geomspace(self.low, self.high, n)
        else:
            raw = np.linspace(self.low, self.high, n)
        raw[0], raw[-1] = self.low, self.high
        return [float(round(v, 12)) for v in raw]

    def suggest(self, trial: Any, name: str) -> float:
        """Ask an Optuna-like ``trial`` for a value (``trial.suggest_float``)."""
        return float(trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log))


@dataclass(frozen=True)
class CategoricalParam:
    """A parameter taking one of ``choices`` (str, int, float or bool values).

    >>> CategoricalParam(("long", "short", "both"), default="long").grid(2)
    ['long', 'short', 'both']
    """

    choices: tuple[Any, ...]
    default: Any
    _: KW_ONLY
    doc: str = ""
    optimize: bool = True

    def __post_init__(self) -> None:
        choices = tuple(self.choices)
        object.__setattr__(self, "choices", choices)
        if not choices:
            raise ConfigError("CategoricalParam: choices must not be empty")
        if len(set(choices)) != len(choices):
            raise ConfigError(f"CategoricalParam: duplicate choices in {choices!r}")
        if self.default not in choices:
            raise ConfigError(f"CategoricalParam: default {self.default!r} is not one of "
                              f"{choices!r}")

    def describe(self) -> str:
        """The allowed values as text, e.g. ``"one of 'long', 'short'"``."""
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def _index(self, value: Any) -> int | None:
        for i, choice in enumerate(self.choices):
            if type(choice) is type(value) and choice == value:
                return i
        for i, choice in enumerate(self.choices):  # numeric widening: 1 == 1.0, np types
            if _is_real(choice) and _is_real(value) and choice == value:
                return i
        return None

    def validate(self, name: str, value: Any) -> Any:
        """``value`` as the matching choice; :class:`ConfigError` naming ``name`` if none."""
        try:
            i = self._index(value)
        except (TypeError, ValueError):
            i = None
        if i is None:
            raise ConfigError(f"parameter {name}: {value!r} is not allowed, must be "
                              f"{self.describe()}")
        return self.choices[i]

    def parse(self, name: str, text: str) -> Any:
        """The choice whose text form is ``text`` (``"true"``/``"false"`` for bools)."""
        for choice in self.choices:
            if isinstance(choice, bool):
                if text.strip().lower() == str(choice).lower():
                    return choice
            elif str(choice) == text.strip():
                return choice
        for choice in self.choices:
            if _is_real(choice):
                try:
                    if float(text) == choice:
                        return choice
                except ValueError:
                    continue
        raise ConfigError(f"parameter {name}: {text!r} is not allowed, must be "
                          f"{self.describe()}")

    def grid(self, n: int) -> list[Any]:
        """All choices (a categorical grid is never thinned)."""
        del n
        return list(self.choices)

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask an Optuna-like ``trial`` for a value (``trial.suggest_categorical``)."""
        return trial.suggest_categorical(name, list(self.choices))


Param = IntParam | FloatParam | CategoricalParam
"""Any declared parameter type."""


def _spread(values: list[Any], n: int, default: Any) -> list[Any]:
    """``n`` elements of ``values`` spread evenly, first and last included (``n <= 1``: the
    default)."""
    if n <= 1:
        return [default]
    if n >= len(values):
        return list(values)
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, n)).astype(np.int64))
    return [values[int(i)] for i in idx]


@dataclass(frozen=True)
class Constraint:
    """A rule between parameters: ``check(params)`` is True when the combination is allowed.

    ``description`` is the rule in words, used in the :class:`ConfigError` message.

    >>> Constraint("fast < slow", lambda p: p["fast"] < p["slow"]).check({"fast": 5, "slow": 9})
    True
    """

    description: str
    check: Callable[[Mapping[str, Any]], bool]


class ParamSpace(Mapping[str, Param]):
    """The declared parameters of a strategy (an immutable mapping ``name -> Param``).

    Parameters
    ----------
    params:
        ``{name: IntParam | FloatParam | CategoricalParam}``; names must be identifiers.
    constraints:
        Rules between parameters (:class:`Constraint`), checked by :meth:`validate` and
        :meth:`suggest`; :meth:`grid` leaves out combinations that break them.

    >>> space = ParamSpace(
    ...     {"fast": IntParam(5, 50, default=12), "slow": IntParam(20, 200, default=26)},
    ...     constraints=[Constraint("fast < slow", lambda p: p["fast"] < p["slow"])],
    ... )
    >>> space.defaults()
    {'fast': 12, 'slow': 26}
    >>> len(space.grid({"fast": [10, 30], "slow": [20, 40]}))
    3
    """

    def __init__(
        self,
        params: Mapping[str, Param] | None = None,
        *,
        constraints: Sequence[Constraint] = (),
    ) -> None:
        items = dict(params or {})
        for name, param in items.items():
            if not (isinstance(name, str) and name.isidentifier()):
                raise ConfigError(f"ParamSpace: parameter name {name!r} is not an identifier")
            if not isinstance(param, IntParam | FloatParam | CategoricalParam):
                raise ConfigError(f"ParamSpace: parameter {name} must be an IntParam, FloatParam "
                                  f"or CategoricalParam, got {type(param).__name__}")
        for c in constraints:
            if not isinstance(c, Constraint):
                raise ConfigError("ParamSpace: constraints must be Constraint objects")
        self._params = items
        self.constraints: tuple[Constraint, ...] = tuple(constraints)

    # Mapping interface
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"ParamSpace({inner})"

    def defaults(self) -> dict[str, Any]:
        """Every parameter at its default value."""
        return {name: p.default for name, p in self._params.items()}

    def _unknown(self, name: str) -> ConfigError:
        known = ", ".join(self._params) or "none"
        return ConfigError(f"unknown parameter {name!r} (known parameters: {known})")

    def check_constraints(self, params: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` naming the first constraint ``params`` break."""
        for c in self.constraints:
            if not c.check(params):
                shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
                raise ConfigError(f"parameters break the rule {c.description} ({shown})")

    def validate(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params``, each value checked and converted.

        Raises
        ------
        ConfigError
            Unknown name, value of the wrong type or out of range (the message names the
            parameter and its allowed range), or a broken constraint.
        """
        out = self.defaults()
        for name, value in (params or {}).items():
            if name not in self._params:
                raise self._unknown(name)
            out[name] = self._params[name].validate(name, value)
        self.check_constraints(out)
        return out

    def parse(self, assignments: Sequence[str] | Mapping[str, str]) -> dict[str, Any]:
        """Typed, validated parameters from ``["k=v", …]`` strings (or ``{k: "v"}``).

        Parameters not named keep their defaults.

        >>> ParamSpace({"k": FloatParam(1.0, 3.0, default=1.5)}).parse(["k=2"])
        {'k': 2.0}
        """
        if isinstance(assignments, str):
            assignments = [assignments]
        if isinstance(assignments, Mapping):
            pairs = [(str(k), str(v)) for k, v in assignments.items()]
        else:
            pairs = []
            for item in assignments:
                if not isinstance(item, str) or "=" not in item:
                    raise ConfigError(f"parameter assignment {item!r} must look like name=value")
                k, _, v = item.partition("=")
                pairs.append((k.strip(), v.strip()))
        values: dict[str, Any] = {}
        for name, text in pairs:
            if name not in self._params:
                raise self._unknown(name)
            values[name] = self._params[name].parse(name, text)
        return self.validate(values)

    def grid(self, n_per_param: int | Mapping[str, int | Sequence[Any]] = 5) -> list[dict[str, Any]]:
        """Parameter combinations for grid search (constraint breakers left out).

        Parameters
        ----------
        n_per_param:
            An int: that many values for every numeric parameter with ``optimize=True`` (spread
            over its range; 1 = the default) and every choice of each such categorical; the
            others stay at their defaults. A mapping: only the named parameters vary (whatever
            their ``optimize`` flag), each over an int count of values or an explicit list
            (values are validated); the others stay at their defaults.
        """
        names = list(self._params)
        axes: list[list[Any]] = []
        if isinstance(n_per_param, Mapping):
            for name in n_per_param:
                if name not in self._params:
                    raise self._unknown(name)
            for name in names:
                spec = n_per_param.get(name)
                param = self._params[name]
                if spec is None:
                    axes.append([param.default])
                elif _is_int(spec):
                    axes.append(param.grid(int(spec)))
                elif isinstance(spec, Sequence) and not isinstance(spec, str):
                    if len(spec) == 0:
                        raise ConfigError(f"grid: no values for parameter {name}")
                    axes.append([param.validate(name, v) for v in spec])
                else:
                    raise ConfigError(f"grid: parameter {name} needs a count or a list of "
                                      f"values, got {spec!r}")
        else:
            if not _is_int(n_per_param) or n_per_param < 1:
                raise ConfigError(f"grid: n_per_param must be an int >= 1, got {n_per_param!r}")
            axes = [
                p.grid(int(n_per_param)) if p.optimize else [p.default]
                for p in (self._params[name] for name in names)
            ]
        out = []
        for combo in itertools.product(*axes):
            params = dict(zip(names, combo, strict=True))
            if all(c.check(params) for c in self.constraints):
                out.append(params)
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Parameters sampled by an Optuna-like ``trial`` (``suggest_int`` / ``suggest_float`` /
        ``suggest_categorical``; Optuna itself is not imported). Parameters declared with
        ``optimize=False`` stay at their defaults.

        Raises
        ------
        ConfigError
            The sample breaks a constraint; an optimiser should count the trial as infeasible
            (e.g. raise ``optuna.TrialPruned``).
        """
        params = {
            name: p.suggest(trial, name) if p.optimize else p.default
            for name, p in self._params.items()
        }
        self.check_constraints(params)
        return params

    def describe(self) -> dict[str, str]:
        """``{name: "allowed range (default …) — doc"}`` for help texts."""
        out = {}
        for name, p in self._params.items():
            text = f"{p.describe()} (default {_fmt(p.default)})"
            if p.doc:
                text += f" — {p.doc}"
            out[name] = text
        return out


@runtime_checkable
class Strategy(Protocol):
    """What every strategy provides (library rules, user functions, ML and RL models).

    Attributes
    ----------
    name:
        Short identifier (``"momentum_breakout"``), used in the registry, reports and errors.
    params:
        The declared :class:`ParamSpace`.

    ``signals(data, **params)`` takes one asset's OHLCV frame or ``{symbol: frame}`` (one
    shared index) and keyword parameters (missing ones take their defaults, unknown or
    out-of-range ones raise :class:`ConfigError`), and returns :class:`Signals`: the target
    exposure (multiple of equity) per bar and asset, **decided at bar t's close and filled at
    bar t+1's open**, with optional stop-loss / take-profit rules. It must be causal: the row
    for bar t depends only on bars up to t.

    >>> from quantum_trading.strategies import get_strategy
    >>> isinstance(get_strategy("buy_and_hold"), Strategy)
    True
    """

    name: str
    params: ParamSpace

    def signals(self, data: MarketData, **params: Any) -> Signals:
        """Target exposure per bar (and asset) plus optional exits; see the class docstring."""
        ...
