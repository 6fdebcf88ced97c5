"""RiskConfig: defaults, documented bounded fields, one-line errors naming the field, YAML."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydantic
import pytest

from quantum_trading.domain import Signals
from quantum_trading.errors import ConfigError
from quantum_trading.risk.config import RiskConfig, load_risk_config
from quantum_trading.sim import RiskConfig as SimRiskConfig
from quantum_trading.sim import simulate

UNITS = ("fraction", "×", "%", "count")


def test_defaults_are_the_design_values() -> None:
    cfg = RiskConfig()
    assert cfg.max_position_frac == 0.10
    assert cfg.daily_loss_limit_pct == 5.0
    assert cfg.weekly_loss_limit_pct == 15.0
    assert cfg.max_drawdown_pct == 20.0
    assert cfg.risk_multiplier == 1.0
    assert RiskConfig is SimRiskConfig  # one model, re-exported by the risk package


def test_every_field_has_description_unit_and_bounds() -> None:
    for name, info in RiskConfig.model_fields.items():
        assert info.description and len(info.description) > 30, name
        assert any(u in info.description for u in UNITS), f"{name}: no unit in description"
        bounds = [m for m in info.metadata
                  if any(getattr(m, k, None) is not None for k in ("gt", "ge", "lt", "le"))]
        assert len(bounds) >= 2, f"{name}: needs a lower and an upper bound"


def test_config_is_frozen_and_strict() -> None:
    cfg = RiskConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.max_drawdown_pct = 50.0  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        RiskConfig(max_dd=20)  # type: ignore[call-arg]


@pytest.mark.parametrize("field", ["max_position_frac", "max_leverage", "max_gross_exposure",
                                   "max_net_exposure", "max_trades_per_day",
                                   "daily_loss_limit_pct", "weekly_loss_limit_pct",
                                   "max_drawdown_pct", "risk_multiplier"])
def test_negative_limit_is_one_line_naming_the_field(field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_risk_config({field: -5})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"RiskConfig.{field}: ")
    assert "got -5" in msg and "allowed" in msg


def test_unknown_field_is_one_line_naming_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        load_risk_config({"daily_loss_limit": 5})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("RiskConfig.daily_loss_limit: unknown field")
    assert "daily_loss_limit_pct" in msg  # the fields that do exist are listed


def test_several_problems_stay_on_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        load_risk_config({"max_drawdown_pct": 0, "bogus": 1})
    msg = str(err.value)
    assert "\n" not in msg and "max_drawdown_pct" in msg and "bogus" in msg


def test_bad_type_and_range_messages() -> None:
    with pytest.raises(ConfigError, match=r"RiskConfig\.max_drawdown_pct: .*got 'lots'"):
        load_risk_config({"max_drawdown_pct": "lots"})
    with pytest.raises(ConfigError, match=r"allowed \[0, 1\]"):
        load_risk_config({"risk_multiplier": 1.5})
    with pytest.raises(ConfigError, match=r"allowed \(0, 100\] or null"):
        load_risk_config({"daily_loss_limit_pct": 120})


def test_none_disables_a_limit() -> None:
    cfg = load_risk_config({"max_drawdown_pct": None, "max_trades_per_day": None})
    assert cfg.max_drawdown_pct is None and cfg.max_trades_per_day is None


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "risk.yaml"
    path.write_text("daily_loss_limit_pct: 3\nmax_position_frac: 0.25\n"
                    "weekly_loss_limit_pct: null\n", encoding="utf-8")
    cfg = load_risk_config(path)
    assert (cfg.daily_loss_limit_pct, cfg.max_position_frac) == (3.0, 0.25)
    assert cfg.weekly_loss_limit_pct is None
    nested = tmp_path / "nested.yaml"
    nested.write_text("risk:\n  max_drawdown_pct: 10\n", encoding="utf-8")
    assert load_risk_config(str(nested)).max_drawdown_pct == 10.0
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set: the defaults\n", encoding="utf-8")
    assert load_risk_config(empty) == RiskConfig() == load_risk_config(None)


def test_yaml_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_drawdown_pct: -20\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_risk_config(bad)
    assert str(err.value).startswith(f"{bad}: RiskConfig.max_drawdown_pct: ")
    assert "\n" not in str(err.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("max_drawdown_pct: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_risk_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_risk_config(listing)
    with pytest.raises(ConfigError, match="no such risk config file"):
        load_risk_config(tmp_path / "missing.yaml")


def test_simulate_rejects_a_non_config() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    px = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=idx)
    with pytest.raises(ConfigError, match="risk: expected a RiskConfig"):
        simulate(px, Signals(pd.Series(1.0, index=idx, name="X")),
                 risk={"max_drawdown_pct": 20})  # type: ignore[arg-type]
