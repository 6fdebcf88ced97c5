"""The RL environment's interface, fixed and saved with every model: :class:`EnvSpec`.

An :class:`EnvSpec` says which assets (in which order) a policy sees and trades, which
per-asset features fill the observation window, how long the windows are and what an action
means. It is everything needed to rebuild the observation and action spaces, and nothing about
rewards or costs (those may change between training phases without invalidating a model).
It is saved as ``env_spec.json`` beside each model; loading a model against data or an env whose
spec differs raises :class:`~quantum_trading.errors.ConfigError` naming the first field that
differs, so a saved model never meets a mismatched space.

Observation (a ``gymnasium.spaces.Dict``, float32, every value clipped to ±``OBS_CLIP``):

* ``"market"``: ``[window, n_assets, n_features]``, the last ``window`` bars up to and
  including the decision bar's close, per asset, features in ``features`` order.
* ``"account"``: ``[account_window, 3 + 2·n_assets]``, the account after each of the last
  ``account_window`` closes: ``log(equity / initial)``, margin ratio (maintenance / equity),
  drawdown from peak equity (fraction, ≥ 0), then per asset the position notional as a signed
  multiple of equity, then per asset the unrealised PnL as a fraction of equity.

Actions:

* ``action="target"``: ``Box(-1, 1, (n_assets,))``; the target position per asset is
  ``action × max_leverage`` (signed multiple of equity), decided at the bar's close and filled
  at the next open, as every strategy target.
* ``action="multi_head"``: ``MultiDiscrete([3, len(size_buckets), len(stop_multiples)] ×
  n_assets)``, per asset (direction: 0 short / 1 flat / 2 long, size bucket, stop multiple):
  target = direction × ``size_buckets[k]`` × ``max_leverage``; a new entry gets a stop-loss
  ``stop_multiples[j]`` × ATR(14) away from its fill (0 = no stop).

>>> spec = EnvSpec(symbols=("BTC/USDT:USDT", "ETH/USDT:USDT"), timeframe="1h")
>>> spec.market_shape, spec.account_shape
((32, 2, 8), (16, 7))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quantum_trading.config_files import read_json_object
from quantum_trading.errors import ConfigError

__all__ = [
    "ACCOUNT_BASE_FEATURES",
    "DEFAULT_FEATURES",
    "ENV_SPEC_VERSION",
    "FEATURE_NAMES",
    "OBS_CLIP",
    "EnvSpec",
    "load_env_spec",
]

ENV_SPEC_VERSION = 1
"""Bumped whenever the meaning of a saved spec changes (feature formulas, layouts)."""

OBS_CLIP = 10.0
"""Every observation value is clipped to [-OBS_CLIP, OBS_CLIP]."""

FEATURE_NAMES: tuple[str, ...] = (
    "log_return",  # 100 · log(close_t / close_{t-1})  (percent)
    "log_return_z",  # log return / std of the last 48 log returns
    "rsi",  # RSI(14) / 100 − 0.5
    "atr_pct",  # 100 · ATR(14) / close  (percent)
    "trend",  # (close − EMA(50)) / ATR(14): distance from the trend in ATRs
    "volume_z",  # z-score of ln(1 + volume) over 48 bars
    "funding",  # last settled funding rate in bps (× 1e4), carried forward
    "regime_vol",  # rank of the 48-bar volatility in the last 168 bars − 0.5 (causal regime)
    "range_pct",  # 100 · (high − low) / close  (percent)
    "bb_pct_b",  # Bollinger %b(20, 2) − 0.5
)
"""Per-asset features the observation may hold; all causal (bar t uses data up to t's close)."""

DEFAULT_FEATURES: tuple[str, ...] = (
    "log_return", "log_return_z", "rsi", "atr_pct", "trend", "volume_z", "funding", "regime_vol",
)

ACCOUNT_BASE_FEATURES: tuple[str, ...] = ("log_equity", "margin_ratio", "drawdown")
"""Account features before the per-asset position and unrealised-PnL columns."""


class EnvSpec(BaseModel):
    """Observation and action interface of :class:`~quantum_trading.rl.env.PerpetualFuturesEnv`
    (frozen; see the module docstring for the layouts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ENV_SPEC_VERSION, description="Spec format version.")
    symbols: tuple[str, ...] = Field(
        ..., min_length=1, description="Assets in observation / action order (ccxt symbols).")
    timeframe: str = Field(..., description="Bar timeframe, e.g. '1h'.")
    features: tuple[str, ...] = Field(
        DEFAULT_FEATURES, min_length=1, description=f"Per-asset features, from {FEATURE_NAMES}.")
    window: int = Field(32, ge=1, le=4096, description="Bars of market features observed.")
    account_window: int = Field(16, ge=1, le=4096, description="Closes of account state observed.")
    action: Literal["target", "multi_head"] = Field(
        "target", description="'target': Box of per-asset targets; 'multi_head': MultiDiscrete "
        "(direction, size bucket, stop multiple) per asset.")
    max_leverage: float = Field(
        1.0, gt=0.0, le=125.0, description="Target multiple of equity at action ±1.")
    size_buckets: tuple[float, ...] = Field(
        (0.25, 0.5, 1.0), min_length=1,
        description="multi_head: sizes as fractions of max_leverage, each in (0, 1].")
    stop_multiples: tuple[float, ...] = Field(
        (0.0, 1.5, 3.0), min_length=1,
        description="multi_head: stop-loss distances in ATR(14) multiples (0 = no stop).")

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != ENV_SPEC_VERSION:
            raise ValueError(f"spec version {v} is not supported by this release "
                             f"(expects {ENV_SPEC_VERSION}); retrain or use a matching release")
        return v

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"symbols must be unique, got {list(v)}")
        return v

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in v if f not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; choose from {list(FEATURE_NAMES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"features must be unique, got {list(v)}")
        return v

    @field_validator("size_buckets")
    @classmethod
    def _buckets_in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 < b <= 1.0 for b in v):
            raise ValueError(f"size_buckets must each be in (0, 1], got {list(v)}")
        return v

    @field_validator("stop_multiples")
    @classmethod
    def _stops_non_negative(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= m <= 100.0 for m in v):
            raise ValueError(f"stop_multiples must each be in [0, 100], got {list(v)}")
        return v

    # -- shapes ---------------------------------------------------------------------------
    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return len(self.symbols)

    @property
    def market_shape(self) -> tuple[int, int, int]:
        """``(window, n_assets, n_features)``."""
        return (self.window, self.n_assets, len(self.features))

    @property
    def account_features(self) -> tuple[str, ...]:
        """Names of the account columns, in order."""
        return (ACCOUNT_BASE_FEATURES + tuple(f"position:{s}" for s in self.symbols)
                + tuple(f"upnl:{s}" for s in self.symbols))

    @property
    def account_shape(self) -> tuple[int, int]:
        """``(account_window, 3 + 2·n_assets)``."""
        return (self.account_window, len(self.account_features))

    def observation_space(self) -> Any:
        """The ``gymnasium.spaces.Dict`` observation space (float32, bounds ±OBS_CLIP)."""
        import numpy as np
        from gymnasium import spaces

        return spaces.Dict({
            "market": spaces.Box(-OBS_CLIP, OBS_CLIP, self.market_shape, dtype=np.float32),
            "account": spaces.Box(-OBS_CLIP, OBS_CLIP, self.account_shape, dtype=np.float32),
        })

    def action_space(self) -> Any:
        """``Box(-1, 1, (n_assets,))`` or ``MultiDiscrete`` (see the module docstring)."""
        import numpy as np
        from gymnasium import spaces

        if self.action == "target":
            return spaces.Box(-1.0, 1.0, (self.n_assets,), dtype=np.float32)
        per_asset = [3, len(self.size_buckets), len(self.stop_multiples)]
        return spaces.MultiDiscrete(np.array(per_asset * self.n_assets, dtype=np.int64))

    # -- compatibility --------------------------------------------------------------------
    def check_matches(self, other: EnvSpec, *, what: str = "model") -> None:
        """Raise :class:`ConfigError` naming the first field where ``other`` differs
        (``what`` names the saved side in the message, e.g. the model's path)."""
        for name in type(self).model_fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                raise ConfigError(
                    f"{what} was trained with {name}={_show(mine)}, but the environment / data "
                    f"has {name}={_show(theirs)}; the observation or action space would not match")

    def save(self, path: str | Path) -> Path:
        """Write the spec as JSON to ``path`` (a file, or a directory → ``env_spec.json``)."""
        p = Path(path)
        if p.is_dir():
            p = p / "env_spec.json"
        p.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        return p


def load_env_spec(path: str | Path) -> EnvSpec:
    """Read an :class:`EnvSpec` saved by :meth:`EnvSpec.save` (a file or a model directory).

    Raises :class:`ConfigError` naming the file and the field when it is missing or malformed.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "env_spec.json"
    raw = read_json_object(p, missing_hint="(is this a model saved by quantum train?)")
    try:
        return EnvSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "spec"
        raise ConfigError(f"{p}: {field}: {err['msg']}") from exc


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return repr(value)
