"""Target orders' tags: what the decision path writes is what a restart reads back."""

from __future__ import annotations

import math

import pytest

from quantum_trading.live.target_tag import TargetTag, parse_target_tag, target_tag

BAR_NS = 1_688_169_600_000_000_000  # 2023-07-01 00:00 UTC


@pytest.mark.parametrize("target", [0.5, -1.25, 0.0, 1e-17, 0.1 + 0.2])
def test_round_trip(target: float) -> None:
    tag = target_tag("BTC/USDT:USDT", target, BAR_NS)
    assert parse_target_tag(tag) == TargetTag("BTC/USDT:USDT", target, BAR_NS)


def test_unknown_target_is_nan() -> None:
    parsed = parse_target_tag(target_tag("ETH/USDT:USDT", math.nan, BAR_NS))
    assert parsed is not None and math.isnan(parsed.target) and parsed.bar_ns == BAR_NS


@pytest.mark.parametrize("tag", [None, "", "stop:BTC/USDT:USDT", "target:", "target:BTC=0.5",
                                 "target:BTC=x@1", "target:BTC=0.5@x", "target:=0.5@1",
                                 "target:BTC@1"])
def test_other_or_malformed_tags_are_none(tag: str | None) -> None:
    assert parse_target_tag(tag) is None
