"""Risk-limit configuration: :class:`RiskConfig` and a loader with one-line errors.

:class:`RiskConfig` is defined in :mod:`quantum_trading.sim.config` (the simulator applies it
and may not import this package) and re-exported here. :func:`load_risk_config` reads a dict
or a YAML file and turns every validation problem into one
:class:`~quantum_trading.errors.ConfigError` line that names the field and the allowed range.

YAML layout (all keys optional; a top-level ``risk:`` mapping is accepted too)::

    max_position_frac: 0.10      # |position notional| / equity after an order
    max_leverage: 10             # highest account leverage setting accepted (x)
    max_gross_exposure: 3.0      # sum |notional| / equity (x); null = no cap
    max_net_exposure: 3.0        # |sum notional| / equity (x); null = no cap
    max_trades_per_day: 100      # risk-adding orders per UTC day; null = no cap
    daily_loss_limit_pct: 5      # reduce-only until the next UTC day
    weekly_loss_limit_pct: 15    # reduce-only until next Monday 00:00 UTC
    max_drawdown_pct: 20         # flatten and halt until reset()
    risk_multiplier: 1.0         # starting behavioural multiplier in [0, 1]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from quantum_trading.config_files import read_yaml
from quantum_trading.errors import ConfigError
from quantum_trading.sim.config import RiskConfig

__all__ = ["RiskConfig", "config_error", "load_risk_config"]


def _allowed(model: type[BaseModel], name: str) -> str:
    """The allowed range of a numeric field, e.g. ``(0, 100] or null``."""
    info = model.model_fields.get(name)
    if info is None:
        return ""
    lo = hi = None
    lo_open = hi_open = False
    for meta in info.metadata:
        if getattr(meta, "gt", None) is not None:
            lo, lo_open = meta.gt, True
        if getattr(meta, "ge", None) is not None:
            lo, lo_open = meta.ge, False
        if getattr(meta, "lt", None) is not None:
            hi, hi_open = meta.lt, True
        if getattr(meta, "le", None) is not None:
            hi, hi_open = meta.le, False
    if lo is None and hi is None:
        return ""
    text = (f"{'(' if lo_open else '['}{'-inf' if lo is None else f'{lo:g}'}, "
            f"{'inf' if hi is None else f'{hi:g}'}{')' if hi_open else ']'}")
    if info.default is None or "None" in str(info.annotation):
        text += " or null"
    return text


def config_error(exc: ValidationError, model: type[BaseModel], source: str | None = None) -> ConfigError:
    """Turn a pydantic ``ValidationError`` into one line: ``Model.field: problem (allowed …)``.

    Several problems are joined with ``"; "`` on the same line.
    """
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        name = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            fields = ", ".join(model.model_fields)
            parts.append(f"{model.__name__}.{loc}: unknown field (fields: {fields})")
            continue
        allowed = _allowed(model, name)
        got = err.get("input")
        text = f"{model.__name__}.{loc}: {err['msg'][0].lower()}{err['msg'][1:]}, got {got!r}"
        if allowed:
            text += f" (allowed {allowed})"
        parts.append(text)
    line = "; ".join(parts)
    return ConfigError(f"{source}: {line}" if source else line)


def load_risk_config(source: RiskConfig | Mapping[str, Any] | str | Path | None = None) -> RiskConfig:
    """A :class:`RiskConfig` from a dict, a YAML file path, a config (returned as is) or None
    (the defaults).

    Raises
    ------
    ConfigError
        One line naming the file (if any), the field and the allowed range: a negative limit,
        an unknown field, a missing or unreadable file, YAML that is not a mapping.

    >>> load_risk_config({"daily_loss_limit_pct": 3}).daily_loss_limit_pct
    3.0
    >>> load_risk_config({"max_drawdown_pct": -20})
    Traceback (most recent call last):
    ...
    quantum_trading.errors.ConfigError: RiskConfig.max_drawdown_pct: input should be greater than 0, got -20 (allowed (0, 100] or null)
    >>> load_risk_config({"max_dd": 20})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    quantum_trading.errors.ConfigError: RiskConfig.max_dd: unknown field (fields: max_position_frac, ...)
    """
    if source is None:
        return RiskConfig()
    if isinstance(source, RiskConfig):
        return source
    where: str | None = None
    if isinstance(source, str | Path):
        where = str(Path(source))
        data = read_yaml(source, what="risk config")
        data = {} if data is None else data
        if isinstance(data, Mapping) and set(data) == {"risk"} and isinstance(data["risk"], Mapping):
            data = data["risk"]
    else:
        data = source
    if not isinstance(data, Mapping):
        got = type(data).__name__
        raise ConfigError(f"{where or 'risk config'}: expected a mapping of fields, got {got}")
    try:
        return RiskConfig(**{str(k): v for k, v in data.items()})
    except ValidationError as exc:
        raise config_error(exc, RiskConfig, where) from None
