"""Feature extractors for the :class:`~quantum_trading.rl.spec.EnvSpec` observation, as SB3
``BaseFeaturesExtractor``\\ s plugged in through ``policy_kwargs``.

The observation (see :mod:`quantum_trading.rl.spec`) is a ``Dict`` with, after SB3 adds the
batch dimension ``B``:

* ``"market"``: float32 ``[B, window, n_assets, n_features]`` (normalised, clipped to ±10);
* ``"account"``: float32 ``[B, account_window, 3 + 2·n_assets]``.

Building blocks, from the market side to the fused vector:

* :class:`MarketTransformerExtractor`: per asset, a linear embedding of the features plus a
  learned positional encoding, then temporal self-attention over the window
  (``nn.TransformerEncoder``), pooled to one ``d_model`` vector per asset. Its weights are
  shared across assets, so it runs on any number of assets.
* :class:`CrossAssetAttention`: self-attention across the per-asset vectors (assets attend to
  each other), without positional information, hence permutation-equivariant.
* :class:`RiskLSTMExtractor`: an LSTM over the account window; its last hidden state.
* :class:`FusedExtractor`: the three above, the flattened per-asset vectors concatenated with the
  LSTM state and projected to ``features_dim``.

>>> from stable_baselines3 import PPO  # doctest: +SKIP
>>> PPO("MultiInputPolicy", env, policy_kwargs=dict(  # doctest: +SKIP
...     features_extractor_class=FusedExtractor,
...     features_extractor_kwargs=dict(d_model=32, features_dim=128)))
"""

from __future__ import annotations

from typing import NamedTuple

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from quantum_trading.errors import ConfigError
from quantum_trading.rl.spec import ACCOUNT_BASE_FEATURES

__all__ = [
    "CrossAssetAttention",
    "FusedExtractor",
    "MarketTransformerExtractor",
    "ObservationLayout",
    "RiskLSTMExtractor",
    "check_observation_space",
]


class ObservationLayout(NamedTuple):
    """Sizes read from a checked observation space (see :func:`check_observation_space`)."""

    window: int
    """Bars of market features per observation."""
    n_assets: int
    """Assets, in the spec's order."""
    n_features: int
    """Per-asset market features."""
    account_window: int
    """Closes of account state per observation."""
    n_account_features: int
    """Account columns, ``3 + 2·n_assets``."""


def check_observation_space(observation_space: spaces.Space) -> ObservationLayout:
    """Check ``observation_space`` against the :class:`~quantum_trading.rl.spec.EnvSpec` contract.

    Raises :class:`~quantum_trading.errors.ConfigError` naming the key and shape that do not fit:
    it must be a ``Dict`` with exactly the keys ``"market"`` (Box ``[window, n_assets,
    n_features]``) and ``"account"`` (Box ``[account_window, 3 + 2·n_assets]``).

    >>> from quantum_trading.rl.spec import EnvSpec
    >>> check_observation_space(EnvSpec(symbols=("A", "B"), timeframe="1h").observation_space())
    ObservationLayout(window=32, n_assets=2, n_features=8, account_window=16, n_account_features=7)
    """
    if not isinstance(observation_space, spaces.Dict):
        raise ConfigError(
            "observation space must be a gymnasium Dict with keys 'market' and 'account' "
            f"(EnvSpec.observation_space()), got {type(observation_space).__name__}")
    keys = set(observation_space.spaces)
    if keys != {"market", "account"}:
        missing = sorted({"market", "account"} - keys)
        extra = sorted(keys - {"market", "account"})
        raise ConfigError(
            "observation space keys must be exactly ['account', 'market']"
            + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""))
    market, account = observation_space["market"], observation_space["account"]
    for key, box, rank, layout in (("market", market, 3, "[window, n_assets, n_features]"),
                                   ("account", account, 2, "[account_window, 3 + 2·n_assets]")):
        if not isinstance(box, spaces.Box):
            raise ConfigError(f"observation space key '{key}' must be a Box {layout}, "
                              f"got {type(box).__name__}")
        if len(box.shape) != rank or min(box.shape) < 1:
            raise ConfigError(f"observation space key '{key}' must have shape {layout}, "
                              f"got {tuple(box.shape)}")
    window, n_assets, n_features = (int(x) for x in market.shape)
    account_window, n_account = (int(x) for x in account.shape)
    expected = len(ACCOUNT_BASE_FEATURES) + 2 * n_assets
    if n_account != expected:
        raise ConfigError(
            f"observation space key 'account' has shape {tuple(account.shape)}: its last axis "
            f"must be 3 + 2·n_assets = {expected} for the {n_assets} asset(s) of 'market' "
            f"{tuple(market.shape)}, got {n_account}")
    return ObservationLayout(window, n_assets, n_features, account_window, n_account)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value}")


class MarketTransformerExtractor(BaseFeaturesExtractor):
    """Temporal self-attention over the market window, one pooled vector per asset.

    Per asset, each bar's features are embedded linearly to ``d_model``, a learned positional
    encoding (one vector per position in the window, the last = the decision bar) is added and
    ``n_layers`` pre-norm Transformer encoder layers attend over the window. The sequence is
    pooled to one vector per asset by projecting ``[last bar, mean over bars]``. All weights are
    shared across assets: :meth:`encode` accepts any number of assets.

    Parameters
    ----------
    observation_space:
        The spec's ``Dict`` observation space (checked by :func:`check_observation_space`).
    d_model:
        Width of the embedding and of the per-asset output vector.
    n_heads:
        Attention heads; must divide ``d_model``.
    n_layers:
        Encoder layers.
    dropout:
        Dropout inside the encoder. Keep 0 for PPO: rollouts run in eval mode and updates in
        train mode, so dropout makes the PPO ratio noisy.

    As a standalone extractor its output is the flattened ``[B, n_assets · d_model]``.
    """

    def __init__(self, observation_space: spaces.Dict, *, d_model: int = 32, n_heads: int = 4,
                 n_layers: int = 1, dropout: float = 0.0) -> None:
        layout = check_observation_space(observation_space)
        _check_positive(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if d_model % n_heads != 0:
            raise ConfigError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(observation_space, features_dim=layout.n_assets * d_model)
        self.window = layout.window
        self.n_features = layout.n_features
        self.d_model = d_model
        self.embed = nn.Linear(layout.n_features, d_model)
        self.positional = nn.Parameter(th.randn(layout.window, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True,
            norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.pool = nn.Linear(2 * d_model, d_model)

    def encode(self, market: th.Tensor) -> th.Tensor:
        """``[B, window, n_assets, n_features]`` → per-asset vectors ``[B, n_assets, d_model]``."""
        batch, window, n_assets, n_features = market.shape
        if window != self.window or n_features != self.n_features:
            raise ConfigError(
                f"market tensor has window {window} and {n_features} features; this extractor "
                f"was built for window {self.window} and {self.n_features} features")
        # [B, W, N, F] -> [B·N, W, F]: every asset is one sequence through shared weights.
        seq = market.permute(0, 2, 1, 3).reshape(batch * n_assets, window, n_features)
        hidden = self.encoder(self.embed(seq) + self.positional)
        pooled = self.pool(th.cat([hidden[:, -1], hidden.mean(dim=1)], dim=-1))
        return pooled.reshape(batch, n_assets, self.d_model)

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        """Observation dict → ``[B, n_assets · d_model]``."""
        return self.encode(observations["market"]).flatten(start_dim=1)


class CrossAssetAttention(nn.Module):
    """Self-attention across assets: each asset's vector attends to all assets' vectors.

    ``n_layers`` pre-norm Transformer encoder layers over the asset axis, with no positional
    encoding, so the map is permutation-equivariant: permuting the assets of the input permutes
    the output the same way. Works for any number of assets.

    Parameters
    ----------
    d_model:
        Width of the per-asset vectors (input and output).
    n_heads:
        Attention heads; must divide ``d_model``.
    n_layers:
        Encoder layers.
    dropout:
        Dropout inside the layers (keep 0 for PPO, see :class:`MarketTransformerExtractor`).

    >>> attn = CrossAssetAttention(d_model=8, n_heads=2)
    >>> attn(th.zeros(4, 3, 8)).shape
    torch.Size([4, 3, 8])
    """

    def __init__(self, *, d_model: int = 32, n_heads: int = 4, n_layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        _check_positive(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if d_model % n_heads != 0:
            raise ConfigError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True,
            norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)

    def forward(self, assets: th.Tensor) -> th.Tensor:
        """``[B, n_assets, d_model]`` → ``[B, n_assets, d_model]``."""
        return self.encoder(assets)


class RiskLSTMExtractor(BaseFeaturesExtractor):
    """An LSTM over the account window (equity, margin ratio, drawdown, positions, uPnL).

    Output: the last layer's hidden state after the newest close, ``[B, lstm_hidden]``.

    Parameters
    ----------
    observation_space:
        The spec's ``Dict`` observation space (checked by :func:`check_observation_space`).
    lstm_hidden:
        Hidden (and output) size.
    n_layers:
        Stacked LSTM layers.
    """

    def __init__(self, observation_space: spaces.Dict, *, lstm_hidden: int = 32,
                 n_layers: int = 1) -> None:
        layout = check_observation_space(observation_space)
        _check_positive(lstm_hidden=lstm_hidden, n_layers=n_layers)
        super().__init__(observation_space, features_dim=lstm_hidden)
        self.n_account_features = layout.n_account_features
        self.lstm = nn.LSTM(layout.n_account_features, lstm_hidden, num_layers=n_layers,
                            batch_first=True)

    def encode(self, account: th.Tensor) -> th.Tensor:
        """``[B, account_window, 3 + 2·n_assets]`` → ``[B, lstm_hidden]``."""
        if account.shape[-1] != self.n_account_features:
            raise ConfigError(f"account tensor has {account.shape[-1]} columns; this extractor "
                              f"was built for {self.n_account_features}")
        _, (h_n, _) = self.lstm(account)
        return h_n[-1]

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        """Observation dict → ``[B, lstm_hidden]``."""
        return self.encode(observations["account"])


class FusedExtractor(BaseFeaturesExtractor):
    """Market transformer → cross-asset attention, fused with the risk LSTM.

    ``market [B, W, N, F]`` → :class:`MarketTransformerExtractor` ``[B, N, d_model]`` →
    :class:`CrossAssetAttention` ``[B, N, d_model]`` → flattened ``[B, N · d_model]``, concatenated
    with :class:`RiskLSTMExtractor` ``[B, lstm_hidden]`` → ``Linear`` + ``ReLU`` →
    ``[B, features_dim]``. The per-asset vectors keep the spec's asset order in the flattened
    vector, so the action heads can tell the assets apart.

    Parameters
    ----------
    observation_space:
        The spec's ``Dict`` observation space; a space that does not fit the contract raises
        :class:`~quantum_trading.errors.ConfigError` naming the key and shape.
    d_model:
        Width of the per-asset vectors.
    n_heads:
        Attention heads (temporal and cross-asset); must divide ``d_model``.
    n_layers:
        Encoder layers in the temporal transformer and in the cross-asset attention each.
    dropout:
        Dropout in the attention layers (default 0; see :class:`MarketTransformerExtractor`).
    lstm_hidden:
        Hidden size of the risk LSTM.
    features_dim:
        Size of the output vector handed to the policy and value networks.

    The defaults (about 43k parameters for 3 assets, 73k for 10) train on a CPU.

    >>> from quantum_trading.rl.spec import EnvSpec
    >>> space = EnvSpec(symbols=("A", "B", "C"), timeframe="1h").observation_space()
    >>> ext = FusedExtractor(space, d_model=16, features_dim=64)
    >>> obs = {k: th.as_tensor(v[None]) for k, v in space.sample().items()}
    >>> ext(obs).shape
    torch.Size([1, 64])
    """

    def __init__(self, observation_space: spaces.Dict, *, d_model: int = 32, n_heads: int = 4,
                 n_layers: int = 1, dropout: float = 0.0, lstm_hidden: int = 32,
                 features_dim: int = 128) -> None:
        layout = check_observation_space(observation_space)
        _check_positive(features_dim=features_dim)
        super().__init__(observation_space, features_dim=features_dim)
        self.layout = layout
        self.market = MarketTransformerExtractor(
            observation_space, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
            dropout=dropout)
        self.cross_asset = CrossAssetAttention(
            d_model=d_model, n_heads=n_heads, n_layers=n_layers, dropout=dropout)
        self.risk = RiskLSTMExtractor(observation_space, lstm_hidden=lstm_hidden)
        self.fuse = nn.Sequential(
            nn.Linear(layout.n_assets * d_model + lstm_hidden, features_dim), nn.ReLU())

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        """Observation dict (``"market"`` ``[B, W, N, F]``, ``"account"`` ``[B, W_a, 3 + 2N]``)
        → ``[B, features_dim]``."""
        assets = self.cross_asset(self.market.encode(observations["market"]))
        risk = self.risk.encode(observations["account"])
        return self.fuse(th.cat([assets.flatten(start_dim=1), risk], dim=-1))
