"""Configuration of order management, position monitoring and execution algorithms.

Pydantic models, frozen, unknown fields rejected; every field has a unit and bounds, so a bad
value raises :class:`pydantic.ValidationError` naming the field and the allowed range.

* :class:`OrderManagerConfig` — stale limit orders (age, price move), what to do with them
  (re-price, escalate to market, cancel), and the re-query schedule after a timeout.
* :class:`PositionMonitorConfig` — time stop, loss stop, take-profit and trailing stop.
* :class:`TWAPConfig`, :class:`VWAPConfig`, :class:`IcebergConfig` — the execution algorithms.

>>> OrderManagerConfig().max_order_age_s, PositionMonitorConfig().max_loss_pct
(30.0, 5.0)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "IcebergConfig",
    "OrderManagerConfig",
    "PositionMonitorConfig",
    "StalePolicy",
    "TWAPConfig",
    "VWAPConfig",
]

StalePolicy = Literal["reprice", "market", "cancel"]
"""What the order manager does with a stale limit order once it is cancelled."""


class OrderManagerConfig(BaseModel):
    """The order manager's rules for resting limit orders and for lost answers.

    >>> OrderManagerConfig(on_stale="market").max_reprices
    3
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_age_s: float = Field(
        30.0, gt=0.0, le=86_400.0,
        description="A limit order resting longer than this (seconds since it was sent) is "
        "stale: it is cancelled and handled per on_stale.",
    )
    cancel_on_price_move_pct: float = Field(
        0.2, gt=0.0, le=100.0,
        description="A limit order whose price is more than this far from the current mid "
        "(%, |price − mid| / mid) is stale.",
    )
    on_stale: StalePolicy = Field(
        "reprice",
        description="'reprice': replace the unfilled rest by a limit at the current best bid "
        "(buy) / ask (sell), at most max_reprices times; 'market': replace it by a market "
        "order; 'cancel': cancel only.",
    )
    max_reprices: int = Field(
        3, ge=0, le=100,
        description="Re-prices of one order chain (count) before on_reprices_exhausted applies.",
    )
    on_reprices_exhausted: Literal["market", "cancel"] = Field(
        "market",
        description="After max_reprices: send the unfilled rest as a market order, or cancel.",
    )
    query_backoff_s: float = Field(
        1.0, gt=0.0, le=600.0,
        description="Delay (seconds) before the first re-query by client order id after a "
        "timeout; doubles with each unanswered query up to max_query_backoff_s.",
    )
    max_query_backoff_s: float = Field(
        30.0, gt=0.0, le=3_600.0,
        description="Longest delay between re-queries of one order (seconds).",
    )
    max_query_attempts: int = Field(
        8, ge=1, le=1_000,
        description="Unanswered re-queries (count) after which an order is reported as "
        "unresolved (an error is logged); it stays tracked and is queried every "
        "max_query_backoff_s until the exchange answers.",
    )
    max_submit_attempts: int = Field(
        3, ge=1, le=100,
        description="Sends of one order (count, same client order id) when the exchange "
        "answers that it never saw it; after that the order is marked rejected.",
    )
    client_id_prefix: str = Field(
        "qt", pattern=r"^[A-Za-z0-9]{1,8}$",
        description="Prefix of the client order ids we generate (1–8 letters or digits).",
    )

    @model_validator(mode="after")
    def _check_backoff(self) -> OrderManagerConfig:
        if self.max_query_backoff_s < self.query_backoff_s:
            raise ValueError("max_query_backoff_s must be >= query_backoff_s")
        return self


class PositionMonitorConfig(BaseModel):
    """When the position monitor closes a position (always a reduce-only market order).

    Percentages are of the entry price (a 5 % loss of a long is price ≤ 0.95 × entry).

    >>> PositionMonitorConfig(trailing_stop_pct=1.5).max_position_age_s
    3600.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_age_s: float | None = Field(
        3_600.0, gt=0.0, le=365.0 * 86_400.0,
        description="Close a position held longer than this (seconds since it was first "
        "seen open); None = no time stop.",
    )
    max_loss_pct: float | None = Field(
        5.0, gt=0.0, le=100.0,
        description="Close a position whose unrealised loss exceeds this share of its entry "
        "notional (%); None = off.",
    )
    take_profit_pct: float | None = Field(
        None, gt=0.0, le=10_000.0,
        description="Close a position whose unrealised gain reaches this share of its entry "
        "notional (%); None = off (a per-position price may still be set).",
    )
    trailing_stop_pct: float | None = Field(
        None, gt=0.0, le=100.0,
        description="Close a position when the price retraces this far (%) from the best "
        "price seen since entry; None = off (a per-position distance may still be set).",
    )


class _ScheduleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    duration_s: float = Field(
        3_600.0, gt=0.0, le=30.0 * 86_400.0,
        description="Time over which the parent order is worked (seconds from start()).",
    )
    n_slices: int = Field(
        12, ge=1, le=100_000,
        description="Child orders in the schedule (count); slice k is due at "
        "start + k × duration_s / n_slices.",
    )
    child_order_type: Literal["market", "limit"] = Field(
        "market",
        description="'market': each child is a market order; 'limit': a limit order at the "
        "best bid (buy) / ask (sell), re-priced or escalated by the order manager when stale.",
    )


class TWAPConfig(_ScheduleConfig):
    """Time-weighted schedule: ``n_slices`` equal children over ``duration_s``.

    >>> TWAPConfig(duration_s=600, n_slices=10).child_order_type
    'market'
    """


class VWAPConfig(_ScheduleConfig):
    """Volume-weighted schedule: children sized by a time-of-day volume profile.

    >>> VWAPConfig(bucket_s=1800).bucket_s
    1800
    """

    bucket_s: int = Field(
        3_600, ge=60, le=86_400,
        description="Width of the time-of-day buckets of the volume profile (seconds); must "
        "divide a day (86 400 s).",
    )

    @model_validator(mode="after")
    def _check_bucket(self) -> VWAPConfig:
        if 86_400 % self.bucket_s:
            raise ValueError(f"bucket_s must divide 86400, got {self.bucket_s}")
        return self


class IcebergConfig(BaseModel):
    """Iceberg: one visible limit child at a time, refreshed with a randomised size.

    >>> IcebergConfig(jitter_pct=10, seed=7).seed
    7
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    jitter_pct: float = Field(
        20.0, ge=0.0, le=90.0,
        description="Each visible child is the slice minus a uniform random cut of up to this "
        "share of it (%), so sizes vary and never exceed the slice.",
    )
    seed: int | None = Field(
        0, ge=0,
        description="Seed of the size jitter (reproducible runs); None = fresh entropy.",
    )
    refresh_delay_s: float = Field(
        0.0, ge=0.0, le=3_600.0,
        description="Wait after a child is done before the next is shown (seconds).",
    )
