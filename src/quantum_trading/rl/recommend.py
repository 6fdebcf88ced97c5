"""Advice for the next training phase from the last phase's metrics (``recommendations.json``).

Each rule reads one metric of the finished phase, compares it with a threshold
(:class:`Thresholds`) and, when it fires, says why and which hyperparameters of the next phase
to change, from what to what. The metrics are those :func:`quantum_trading.rl.train.train`
collects: PPO's own diagnostics averaged over the phase's last updates (``entropy`` [nats],
``entropy_ratio`` = entropy / entropy of the initial policy, ``approx_kl``, ``clip_fraction``,
``explained_variance``) and the deterministic evaluations on the last training bars and on
the validation slice (``train_sharpe``, ``eval_sharpe`` [annualised], ``eval_turnover``
[traded notional / equity per bar], ``eval_total_return_pct``, ``random_total_return_pct``):
``eval_*`` and ``random_*`` are validation-slice metrics, never the test slice's (advice that
shapes the next phase is a decision; reading the test slice for it would leak it). Without a
validation slice only the training-side rules can fire.

| rule | fires when | advice |
| --- | --- | --- |
| entropy_collapse | entropy_ratio < 0.2 | ent_coef ×2 (at least 0.005) |
| kl_too_high | approx_kl > 0.05 | learning_rate ×0.5 |
| clipping_too_often | clip_fraction > 0.3 | learning_rate ×0.5 |
| updates_too_small | approx_kl < 0.001 and clip_fraction < 0.01 | learning_rate ×2 |
| value_fit_poor | explained_variance < 0.2 | n_epochs +5, vf_coef ×1.5 |
| overfitting | train_sharpe − eval_sharpe (validation) > 1.0 | augmentation on (warning) |
| turnover_too_high | eval_turnover > 0.1 | turnover_penalty ×2 (at least 1e-4) |
| no_edge | eval return ≤ random policy's | warning only |

>>> from quantum_trading.rl.schedule import Phase
>>> out = recommend({"approx_kl": 0.2}, phase=Phase(name="a", timesteps=10))
>>> out["recommendations"][0]["rule"], out["changes"]
('kl_too_high', {'ppo.learning_rate': 0.00015})
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quantum_trading.rl.schedule import Phase

__all__ = ["Recommendation", "Thresholds", "recommend", "write_recommendations"]


class Thresholds(BaseModel):
    """Where each rule fires (see the module table)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entropy_ratio_min: float = Field(0.2, description="Entropy / initial entropy floor.")
    approx_kl_max: float = Field(0.05, gt=0.0, description="Approximate KL ceiling per update.")
    clip_fraction_max: float = Field(0.3, gt=0.0, le=1.0, description="Clip-fraction ceiling.")
    approx_kl_min: float = Field(0.001, ge=0.0, description="KL below which updates are tiny.")
    clip_fraction_min: float = Field(0.01, ge=0.0, description="Clip fraction of tiny updates.")
    explained_variance_min: float = Field(0.2, le=1.0, description="Value-fit floor.")
    sharpe_gap_max: float = Field(1.0, gt=0.0, description="Train − eval Sharpe ceiling.")
    turnover_max: float = Field(
        0.1, gt=0.0, description="Eval turnover ceiling [traded notional / equity per bar].")


@dataclass(frozen=True)
class Recommendation:
    """One fired rule: the metric, its value, the threshold, why, and the suggested changes
    (dotted keys of the next phase: ``ppo.learning_rate``, ``env.turnover_penalty`` …)."""

    rule: str
    metric: str
    value: float
    threshold: float
    reason: str
    changes: dict[str, Any] = field(default_factory=dict)
    severity: str = "change"


def _num(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def recommend(
    metrics: Mapping[str, Any],
    *,
    phase: Phase,
    next_phase: Phase | None = None,
    env_values: Mapping[str, Any] | None = None,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """Recommendations for the phase after ``phase`` from its ``metrics``.

    Parameters
    ----------
    metrics:
        Flat metric name → value (missing or non-finite metrics skip their rules).
    phase, next_phase:
        The finished phase and the one to come (None after the last: advice for a further
        phase with ``phase``'s settings). Changes are computed from ``next_phase``'s values.
    env_values:
        Effective env-config values of the next phase (``turnover_penalty`` …), used where
        the schedule leaves an override unset.
    thresholds:
        Rule thresholds; default :class:`Thresholds`.

    Returns
    -------
    dict
        ``{"phase", "next_phase", "metrics", "recommendations": [...], "changes": {...}}``;
        ``changes`` merges every fired rule's changes (one value per key).
    """
    th = thresholds or Thresholds()
    base = next_phase or phase
    ppo = base.ppo
    env = dict(env_values or {})
    recs: list[Recommendation] = []

    ratio = _num(metrics, "entropy_ratio")
    if ratio is not None and ratio < th.entropy_ratio_min:
        recs.append(Recommendation(
            "entropy_collapse", "entropy_ratio", ratio, th.entropy_ratio_min,
            "policy entropy fell to a small fraction of the initial policy's: exploration has "
            "collapsed; a larger entropy bonus keeps the policy stochastic",
            {"ppo.ent_coef": _sig(min(max(2.0 * ppo.ent_coef, 0.005), 1.0))}))

    lower_lr = {"ppo.learning_rate": _sig(ppo.learning_rate * 0.5)}
    kl = _num(metrics, "approx_kl")
    clip = _num(metrics, "clip_fraction")
    if kl is not None and kl > th.approx_kl_max:
        recs.append(Recommendation(
            "kl_too_high", "approx_kl", kl, th.approx_kl_max,
            "updates move the policy far from the one that collected the data (high KL): "
            "a smaller learning rate makes PPO's trust region hold", lower_lr))
    if clip is not None and clip > th.clip_fraction_max:
        recs.append(Recommendation(
            "clipping_too_often", "clip_fraction", clip, th.clip_fraction_max,
            "a large share of samples hit the PPO clip, so their gradients are discarded: "
            "a smaller learning rate keeps updates inside the clip range", lower_lr))
    if (kl is not None and clip is not None and kl < th.approx_kl_min
            and clip < th.clip_fraction_min):
        recs.append(Recommendation(
            "updates_too_small", "approx_kl", kl, th.approx_kl_min,
            f"updates barely change the policy (approx_kl {kl:.2g}, clip_fraction {clip:.2g}): "
            "a larger learning rate learns faster",
            {"ppo.learning_rate": _sig(min(ppo.learning_rate * 2.0, 1.0))}))

    ev = _num(metrics, "explained_variance")
    if ev is not None and ev < th.explained_variance_min:
        recs.append(Recommendation(
            "value_fit_poor", "explained_variance", ev, th.explained_variance_min,
            "the value function explains little of the returns, so advantages are noisy: "
            "more epochs per rollout and a larger value-loss weight fit it better",
            {"ppo.n_epochs": min(ppo.n_epochs + 5, 100),
             "ppo.vf_coef": _sig(min(ppo.vf_coef * 1.5, 10.0))}))

    train_sh, eval_sh = _num(metrics, "train_sharpe"), _num(metrics, "eval_sharpe")
    if train_sh is not None and eval_sh is not None and train_sh - eval_sh > th.sharpe_gap_max:
        recs.append(Recommendation(
            "overfitting", "sharpe_gap", _sig(train_sh - eval_sh), th.sharpe_gap_max,
            f"Sharpe on training bars ({train_sh:.2f}) is far above the validation Sharpe "
            f"({eval_sh:.2f}): the policy is overfitting; train on augmented data",
            {"env.augmentation": True}, severity="warning"))

    turnover = _num(metrics, "eval_turnover")
    if turnover is not None and turnover > th.turnover_max:
        current = base.env.turnover_penalty
        if current is None:
            current = float(env.get("turnover_penalty") or 0.0)
        recs.append(Recommendation(
            "turnover_too_high", "eval_turnover", turnover, th.turnover_max,
            f"the policy trades {turnover:.2f}× equity per bar on the validation bars, so "
            "costs eat the edge: a larger turnover penalty makes it trade less",
            {"env.turnover_penalty": _sig(min(max(2.0 * current, 1e-4), 1000.0))}))

    ret, rnd = _num(metrics, "eval_total_return_pct"), _num(metrics, "random_total_return_pct")
    if ret is not None and rnd is not None and ret <= rnd:
        recs.append(Recommendation(
            "no_edge", "eval_total_return_pct", ret, rnd,
            "on the validation bars the policy did no better than a random policy",
            severity="warning"))

    changes: dict[str, Any] = {}
    for r in recs:
        changes.update(r.changes)
    return {
        "phase": phase.name,
        "next_phase": next_phase.name if next_phase is not None else None,
        "metrics": {k: v for k, v in metrics.items()},
        "recommendations": [asdict(r) for r in recs],
        "changes": changes,
    }


def write_recommendations(payload: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``payload`` (from :func:`recommend`) as JSON to ``path`` (a file, or a folder →
    ``recommendations.json``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "recommendations.json"
    p.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return p
