"""The single environment's small arrays in two buffers, so a step crosses into numba cheaply.

Every array argument of a compiled kernel is unboxed on every call (≈ 12 ns each, ≈ 25 ns
inside a NamedTuple) and every scalar too; the simulator's ``SimState`` and ``SimParams`` hold
≈ 36 arrays and 19 scalars, which made unboxing about twice the kernel's own work on one bar.
:class:`SinglePack` moves the single env's small arrays (the account part of its
``SimState``, the env's control vectors, the action and info vectors) into one float64 and
one int64 buffer and re-homes the originals as views of them, so every reader (Python or
kernel) still sees the same memory; the constant ``SimParams`` are copied into two more
buffers. :func:`env_step_packed_nb` rebuilds the NamedTuples from buffer slices inside numba
(same numba types, so the simulator's compiled kernels are reused) and runs
the env's step (:func:`~quantum_trading.rl.env_nb.env_step_nb`): 26 arguments instead of ≈ 75.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantum_trading.rl.env_nb import (
    I_LIQUIDATED,
    I_T,
    I_TERMINATED,
    I_TRUNCATED,
    N_CFG,
    N_CTL,
    N_CTLI,
    N_INFO,
    RC_OK,
    RC_POOL_FULL,
    V_BANKRUPT,
    V_EQUITY,
    V_FEES,
    V_FUNDING,
    V_REWARD,
    V_TURNOVER,
    bars_of_nb,
    env_step_nb,
    observe_nb,
)
from quantum_trading.sim.risk_nb import RiskParams, RiskState
from quantum_trading.sim.state import SignalArrays, SimParams, SimState

__all__ = ["SinglePack", "env_step_packed_nb"]

# float buffer fields, in layout order: (owner, name); owner "state", "risk" or "env"
_FLOATS = (("state", "acct"), ("state", "pos"), ("state", "pend"), ("state", "last_target"),
           ("state", "asset_totals"), ("state", "scratch"), ("state", "work"),
           ("risk", "acct"), ("risk", "proj"), ("risk", "prices"),
           ("env", "ctl"), ("env", "cfg"), ("env", "act"), ("env", "info"), ("env", "prev_pos"),
           ("env", "sizes"), ("env", "stops"))
_INTS = (("state", "counters"), ("state", "posi"), ("risk", "ints"), ("risk", "forced"),
         ("env", "ctli"), ("env", "slot"))
(L_ACCT, L_POS, L_PEND, L_LAST, L_TOTALS, L_SCRATCH, L_WORK, L_RACCT, L_PROJ, L_PRICES, L_CTL,
 L_CFG, L_ACT, L_INFO, L_PREV, L_SIZES, L_STOPS) = range(len(_FLOATS))
L_COUNTERS, L_POSI, L_RINTS, L_FORCED, L_CTLI, L_SLOT = range(len(_FLOATS), len(_FLOATS) + 6)
# params buffers: per-asset float arrays, then float scalars; per-asset int arrays, then ints
_PARAM_FLOAT_ARRAYS = ("leverage", "lot_size", "min_notional", "taker_fee", "maker_fee",
                       "half_spread", "slippage", "impact_k", "max_notional")
_PARAM_FLOATS = ("min_rebalance_frac", "liquidation_fee_rate", "max_impact_frac")
_RISK_FLOATS = ("max_position_frac", "max_leverage", "max_gross_exposure", "max_net_exposure",
                "daily_loss_frac", "weekly_loss_frac", "max_drawdown_frac")
_PARAM_INT_ARRAYS = ("n_tiers", "time_stop_bars")
_PARAM_INTS = ("margin_mode", "rebalance", "size_with_costs", "allow_short", "tp_market",
               "reversal_sizing")
_RISK_INTS = ("enabled", "max_trades_per_day")


@njit(cache=True, _nrt=False, inline="always")
def _v1_nb(buf, lay, j: int):
    o = lay[3 * j]
    return buf[o:o + lay[3 * j + 1]]


@njit(cache=True, _nrt=False, inline="always")
def _v2_nb(buf, lay, j: int):
    o = lay[3 * j]
    a = lay[3 * j + 1]
    b = lay[3 * j + 2]
    return buf[o:o + a * b].reshape((a, b))


@njit(cache=True, _nrt=False, inline="always")
def _params_nb(pf, pi, tiers, bar_open_ns, n: int):
    """``SimParams`` from the params buffers (layout of :func:`_params_buffers`)."""
    f = 9 * n
    i = 2 * n
    risk = RiskParams(pi[i + 6], pf[f + 3], pf[f + 4], pf[f + 5], pf[f + 6], pi[i + 7],
                      pf[f + 7], pf[f + 8], pf[f + 9], bar_open_ns)
    return SimParams(pi[i], pi[i + 1], pf[f], pi[i + 2], pi[i + 3], pi[i + 4], pf[f + 1],
                     pf[f + 2], pf[0:n], pf[n:2 * n], pf[2 * n:3 * n], pf[3 * n:4 * n],
                     pf[4 * n:5 * n], pf[5 * n:6 * n], pf[6 * n:7 * n], pf[7 * n:8 * n],
                     pf[8 * n:9 * n], tiers, pi[0:n], pi[n:2 * n], risk, pi[i + 5])


@njit(cache=True, _nrt=False)
def env_step_packed_nb(fb, ib, lay, fills, orders, trades, out_equity, out_margin_ratio,
                       snap_bar, snap, decisions, risk_out, pf, pi, tiers, bar_open_ns,
                       bars_pack, nan_row, atr, feats, tgt, sld, ring, pool_market,
                       pool_account, pool_pos):
    """The single env's one call per step, on the packed arguments of a :class:`SinglePack`:
    :func:`~quantum_trading.rl.env_nb.env_step_nb` (the bars as one ``[8, T, N]`` array, the
    signals built here from the target and stop-distance buffers with ``nan_row`` for the
    stop inputs the env never uses), then the observation into row ``slot[0]`` of the pools
    (:func:`~quantum_trading.rl.env_nb.observe_nb`); :data:`RC_POOL_FULL` when they are full.

    Returns ``(code, reward, terminated, truncated, bar, equity_usd, fees_usd, funding_usd,
    turnover, liquidated, bankrupt)`` — the info vector's numbers as Python scalars at once
    (cheaper than reading them back from the vector); all but ``code`` are zero unless
    ``code`` is :data:`~quantum_trading.rl.env_nb.RC_OK`."""
    slot = _v1_nb(ib, lay, L_SLOT)
    if slot[0] >= pool_market.shape[0]:
        return RC_POOL_FULL, 0.0, False, False, 0, 0.0, 0.0, 0.0, 0.0, False, False
    n = tiers.shape[0]
    risk = RiskState(_v1_nb(fb, lay, L_RACCT), _v1_nb(ib, lay, L_RINTS),
                     _v1_nb(ib, lay, L_FORCED), _v1_nb(fb, lay, L_PROJ),
                     _v1_nb(fb, lay, L_PRICES), decisions, risk_out)
    state = SimState(_v1_nb(fb, lay, L_ACCT), _v1_nb(ib, lay, L_COUNTERS),
                     _v2_nb(fb, lay, L_POS), _v2_nb(ib, lay, L_POSI), _v2_nb(fb, lay, L_PEND),
                     _v1_nb(fb, lay, L_LAST), _v2_nb(fb, lay, L_TOTALS), fills, orders, trades,
                     out_equity, out_margin_ratio, snap_bar, snap, _v1_nb(fb, lay, L_SCRATCH),
                     _v2_nb(fb, lay, L_WORK), risk)
    signals = SignalArrays(tgt, nan_row, sld, nan_row, nan_row, nan_row, nan_row, nan_row,
                           nan_row)
    ctl = _v1_nb(fb, lay, L_CTL)
    ctli = _v1_nb(ib, lay, L_CTLI)
    code = env_step_nb(state, _v2_nb(fb, lay, L_PREV), bars_of_nb(bars_pack), signals,
                       _params_nb(pf, pi, tiers, bar_open_ns, n), tgt, sld, atr,
                       _v1_nb(fb, lay, L_ACT), ctl, ctli, _v1_nb(fb, lay, L_CFG),
                       _v1_nb(fb, lay, L_SIZES), _v1_nb(fb, lay, L_STOPS), ring)
    if code != RC_OK:
        return code, 0.0, False, False, 0, 0.0, 0.0, 0.0, 0.0, False, False
    info = _v1_nb(fb, lay, L_INFO)
    observe_nb(state, ctl, ctli, ring, feats, pool_market, pool_account, pool_pos, info, slot)
    return (code, info[V_REWARD], ctli[I_TERMINATED] != 0, ctli[I_TRUNCATED] != 0, ctli[I_T],
            info[V_EQUITY], info[V_FEES], info[V_FUNDING], info[V_TURNOVER],
            ctli[I_LIQUIDATED] != 0, info[V_BANKRUPT] != 0.0)


def _params_buffers(params: SimParams) -> tuple[np.ndarray, np.ndarray]:
    """``(pf, pi)``: the params' per-asset arrays and scalars, in :func:`_params_nb`'s order."""
    risk = params.risk
    pf = np.concatenate([*(np.asarray(getattr(params, k), dtype=np.float64)
                           for k in _PARAM_FLOAT_ARRAYS),
                         [float(getattr(params, k)) for k in _PARAM_FLOATS],
                         [float(getattr(risk, k)) for k in _RISK_FLOATS]])
    pi = np.concatenate([*(np.asarray(getattr(params, k), dtype=np.int64)
                           for k in _PARAM_INT_ARRAYS),
                         np.array([int(getattr(params, k)) for k in _PARAM_INTS]
                                  + [int(getattr(risk, k)) for k in _RISK_INTS],
                                  dtype=np.int64)])
    return pf, pi


class SinglePack:
    """Buffers and layout of one environment's packed kernel arguments.

    ``SinglePack(states, ctl, ctli, prev_pos, cfg, sizes, stops, params)`` takes the env's
    one-row stacked state (``n_envs == 1``) and control arrays, copies their values into
    :attr:`fb` / :attr:`ib` and exposes views of those buffers in their place:
    :attr:`states` (the same NamedTuple with its small fields re-homed), :attr:`ctl`,
    :attr:`ctli`, :attr:`prev_pos`, plus the env's :attr:`act` (``[n_actions]``),
    :attr:`info` (``[N_INFO]``) and :attr:`slot` (``[1]``). The caller must use these views
    from then on (they are the memory the kernel writes).
    """

    def __init__(self, states: SimState, *, ctl: np.ndarray, ctli: np.ndarray,
                 prev_pos: np.ndarray, cfg: np.ndarray, sizes: np.ndarray, stops: np.ndarray,
                 n_actions: int, params: SimParams) -> None:
        if states.acct.shape[0] != 1:
            raise ValueError(f"SinglePack: one env expected, got {states.acct.shape[0]}")
        rs = states.risk
        arrays = {key: getattr(states, key[1])[0] for key in _FLOATS + _INTS
                  if key[0] == "state"}
        arrays |= {("risk", name): getattr(rs, name)[0] for name in ("acct", "proj", "prices",
                                                                    "ints", "forced")}
        arrays |= {("env", "ctl"): ctl[0], ("env", "cfg"): cfg,
                   ("env", "act"): np.zeros(n_actions), ("env", "info"): np.zeros(N_INFO),
                   ("env", "prev_pos"): prev_pos[0], ("env", "sizes"): sizes,
                   ("env", "stops"): stops, ("env", "ctli"): ctli[0],
                   ("env", "slot"): np.zeros(1, dtype=np.int64)}
        if ctl.shape[1] != N_CTL or ctli.shape[1] != N_CTLI or cfg.shape[0] != N_CFG:
            raise ValueError("SinglePack: control vectors of an unexpected size")
        lay = np.zeros(3 * (len(_FLOATS) + len(_INTS)), dtype=np.int64)
        views: dict[tuple[str, str], np.ndarray] = {}
        for fields, dtype, attr in ((_FLOATS, np.float64, "fb"), (_INTS, np.int64, "ib")):
            sizes_of = [arrays[f].size for f in fields]
            buf = np.zeros(sum(sizes_of), dtype=dtype)
            offset = 0
            for key, size in zip(fields, sizes_of, strict=True):
                j = (_FLOATS + _INTS).index(key)
                src = arrays[key]
                shape = src.shape
                lay[3 * j] = offset
                lay[3 * j + 1] = shape[0] if shape else 1
                lay[3 * j + 2] = shape[1] if src.ndim == 2 else 0
                view = buf[offset:offset + size].reshape(shape)
                view[...] = src
                views[key] = view
                offset += size
            setattr(self, attr, buf)
        self.lay = lay

        def one(key: tuple[str, str]) -> np.ndarray:
            return views[key][None]  # the stacked [1, ...] form the env core keeps

        self.states = states._replace(
            **{key[1]: one(key) for key in _FLOATS + _INTS if key[0] == "state"},
            risk=rs._replace(**{name: one(("risk", name))
                                for name in ("acct", "proj", "prices", "ints", "forced")}))
        self.ctl, self.ctli = one(("env", "ctl")), one(("env", "ctli"))
        self.prev_pos = one(("env", "prev_pos"))
        self.act = views[("env", "act")]
        self.info = views[("env", "info")]
        self.slot = views[("env", "slot")]
        self.pf, self.pi = _params_buffers(params)
        self.params = params

    def step_args(self, states: SimState, *, bars_pack: np.ndarray, nan_row: np.ndarray,
                  atr: np.ndarray, feats: np.ndarray, tgt: np.ndarray, sld: np.ndarray,
                  ring: np.ndarray, pool: tuple[np.ndarray, np.ndarray, np.ndarray]
                  ) -> tuple[np.ndarray, ...]:
        """:func:`env_step_packed_nb`'s arguments for env 0 of ``states`` (the current record
        buffers: they are replaced when they grow)."""
        rs = states.risk
        return (self.fb, self.ib, self.lay, states.fills[0], states.orders[0], states.trades[0],
                states.out_equity[0], states.out_margin_ratio[0], states.snap_bar[0],
                states.snap[0], rs.decisions[0], rs.out[0], self.pf, self.pi,
                self.params.tiers, self.params.risk.bar_open_ns, bars_pack, nan_row, atr, feats,
                tgt, sld, ring, *pool)
