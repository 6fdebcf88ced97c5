"""Fault injection for the local exchange: fail requests on purpose, to test recovery.

Two kinds of plan, combined in one :class:`FaultPlan`:

* **Counted** (``fail_after`` / ``fail_count`` / ``status_code``): after N successful *data*
  requests (klines, mark-price klines, funding rates) the next M answer an HTTP error.
* **Random, per endpoint group** (``random``: group → :class:`RandomFaults`), drawn from one
  seeded generator (``seed``), so a run is reproducible:

  ========== =====================================================================
  kind        effect
  ========== =====================================================================
  latency     every request of the group waits ``latency_ms`` before it is handled
  rate_limit  HTTP 429 ``{"code": -1003, …}`` — not processed (ccxt: RateLimitExceeded)
  server_error HTTP 503 — not processed (ccxt: ExchangeNotAvailable)
  reject      order creation answered ``{"code": -2010, "msg": "New order rejected …"}``
              (HTTP 400) — not processed (ccxt: InvalidOrder)
  drop        the request **is processed**, then the connection is closed without an
              answer: an order may exist though the client got no response (ccxt: a
              NetworkError); re-query by client order id
  partial     each fill of the paper exchange is cut to a random 10–90 % of what it could
              fill (lot-rounded); the rest fills later
  ========== =====================================================================

  Groups (:func:`endpoint_group`): ``meta`` (ping, time, exchangeInfo), ``market`` (klines,
  mark-price klines, funding rates, depth, tickers, premium index), ``order`` (order, algo
  order, open/all orders), ``account`` (account, balance, positions, leverage, brackets, user
  trades); ``*`` applies to all. The ``/_local`` control routes are never faulted.

CLI form (:func:`parse_fault_specs`): ``[group:]kind=value``, e.g. ``drop=0.05``,
``429=0.05``, ``5xx=0.02``, ``reject=0.1``, ``partial=0.3``, ``latency=50``,
``order:drop=0.2``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

__all__ = [
    "FAULT_GROUPS",
    "FaultDecision",
    "FaultInjector",
    "FaultPlan",
    "RandomFaults",
    "endpoint_group",
    "parse_fault_specs",
]

FAULT_GROUPS = ("meta", "market", "order", "account")
"""Endpoint groups faults can be set for (``*`` = all)."""

_KIND_ALIASES = {
    "latency": "latency_ms",
    "latency_ms": "latency_ms",
    "drop": "drop",
    "dropped": "drop",
    "429": "rate_limit",
    "rate_limit": "rate_limit",
    "5xx": "server_error",
    "503": "server_error",
    "server_error": "server_error",
    "reject": "reject",
    "rejects": "reject",
    "partial": "partial",
    "partial_fill": "partial",
}

_MARKET_PATHS = ("klines", "markPriceKlines", "fundingRate", "depth", "premiumIndex")
_ORDER_PATHS = (
    "order",
    "algoOrder",
    "openOrders",
    "openAlgoOrders",
    "allOrders",
    "allOpenOrders",
    "allAlgoOrders",
)
_ACCOUNT_PATHS = ("account", "balance", "positionRisk", "leverage", "leverageBracket", "userTrades")


def endpoint_group(path: str) -> str | None:
    """The fault group of a request path (None: never faulted, e.g. ``/_local/...``).

    >>> endpoint_group("/fapi/v1/order"), endpoint_group("/fapi/v3/account")
    ('order', 'account')
    >>> endpoint_group("/fapi/v1/ticker/bookTicker"), endpoint_group("/_local/advance")
    ('market', None)
    """
    if not path.startswith("/fapi/"):
        return None
    parts = path.strip("/").split("/")
    name = parts[2] if len(parts) > 2 else ""
    if name in _ORDER_PATHS:
        return "order"
    if name in _ACCOUNT_PATHS:
        return "account"
    if name in _MARKET_PATHS or name == "ticker":
        return "market"
    return "meta"


@dataclass(frozen=True)
class RandomFaults:
    """Random faults of one endpoint group: probabilities in [0, 1], latency in ms."""

    latency_ms: float = 0.0
    drop: float = 0.0
    rate_limit: float = 0.0
    server_error: float = 0.0
    reject: float = 0.0
    partial: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.latency_ms <= 60_000.0:
            raise ValueError(f"latency_ms must be in [0, 60000], got {self.latency_ms}")
        for name in ("drop", "rate_limit", "server_error", "reject", "partial"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} probability must be in [0, 1], got {p}")
        if self.rate_limit + self.server_error + self.reject > 1.0:
            raise ValueError("rate_limit + server_error + reject must be <= 1")


@dataclass(frozen=True)
class FaultPlan:
    """When and how requests fail.

    Attributes
    ----------
    fail_after:
        Successful data requests (klines, mark-price klines, funding rates) served before the
        counted failures start; ``None`` disables them.
    fail_count:
        Data requests that then fail in a row before serving resumes; ``None``: all of them.
    status_code:
        HTTP status of a counted failure: 503 (the default), 429, 500, 502, 504 ….
    random:
        Random faults per endpoint group (``"*"``: every group; a group's own entry wins).
    seed:
        Seed of the random faults.
    """

    fail_after: int | None = None
    fail_count: int | None = None
    status_code: int = 503
    random: Mapping[str, RandomFaults] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fail_after is not None and self.fail_after < 0:
            raise ValueError(f"fail_after must be >= 0, got {self.fail_after}")
        if self.fail_count is not None and self.fail_count < 1:
            raise ValueError(f"fail_count must be >= 1, got {self.fail_count}")
        if not 400 <= self.status_code <= 599:
            raise ValueError(
                f"status_code must be an HTTP error status (400-599), got {self.status_code}"
            )
        for group, faults in self.random.items():
            if group != "*" and group not in FAULT_GROUPS:
                raise ValueError(
                    f"unknown endpoint group {group!r} (one of *, {', '.join(FAULT_GROUPS)})"
                )
            if not isinstance(faults, RandomFaults):
                raise ValueError(f"random[{group!r}] must be a RandomFaults")

    def faults_for(self, group: str) -> RandomFaults | None:
        """The random faults of ``group`` (its own entry, else ``"*"``)."""
        return self.random.get(group, self.random.get("*"))


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: wait ``latency_ms``, then answer ``status`` (429/503)
    without processing, or ``reject`` (order creation), or process it and ``drop`` the
    answer."""

    latency_ms: float = 0.0
    status: int | None = None
    reject: bool = False
    drop: bool = False


_NO_FAULT = FaultDecision()


def parse_fault_specs(specs: Iterable[str]) -> dict[str, RandomFaults]:
    """``["drop=0.05", "order:429=0.1", "latency=20"]`` → group → :class:`RandomFaults`.

    >>> parse_fault_specs(["drop=0.05", "order:429=0.1"])["order"].rate_limit
    0.1

    Raises ``ValueError`` naming the bad spec.
    """
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        text = spec.strip()
        group, _, rest = text.rpartition(":") if ":" in text else ("*", "", text)
        kind, sep, value = rest.partition("=")
        key = _KIND_ALIASES.get(kind.strip().lower())
        if not sep or key is None:
            raise ValueError(
                f"--fault {spec!r}: expected [group:]kind=value with kind one of "
                "latency, drop, 429, 5xx, reject, partial"
            )
        group = group.strip() or "*"
        if group != "*" and group not in FAULT_GROUPS:
            raise ValueError(
                f"--fault {spec!r}: unknown group {group!r} (one of *, {', '.join(FAULT_GROUPS)})"
            )
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--fault {spec!r}: {value!r} is not a number") from None
        out.setdefault(group, {})[key] = number
    result: dict[str, RandomFaults] = {}
    for group, values in out.items():
        base = dict(out.get("*", {})) if group != "*" else {}
        base.update(values)
        try:
            result[group] = RandomFaults(**base)
        except ValueError as error:
            raise ValueError(f"--fault {group}: {error}") from None
    return result


class FaultInjector:
    """Decides which requests fail (thread-safe; random faults from one seeded generator).

    >>> faults = FaultInjector(FaultPlan(fail_after=1, fail_count=2))
    >>> [faults.next_request() for _ in range(5)]
    [None, 503, 503, None, None]
    """

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(plan or FaultPlan())

    def configure(self, plan: FaultPlan) -> None:
        """Start a new plan; the counters and the random generator restart."""
        with self._lock:
            self.plan = plan
            self.served = 0
            self.failed = 0
            self._rng = random.Random(plan.seed)
            self.counts: dict[str, int] = {}

    def set_random(
        self, random_faults: Mapping[str, RandomFaults], *, seed: int | None = None
    ) -> None:
        """Replace the random faults (keeping the counted ones); restarts the generator."""
        self.configure(
            replace(
                self.plan, random=dict(random_faults), seed=self.plan.seed if seed is None else seed
            )
        )

    def next_request(self) -> int | None:
        """Count one data request: the HTTP status to fail it with, or ``None`` to serve it."""
        with self._lock:
            plan = self.plan
            if plan.fail_after is None or self.served < plan.fail_after:
                self.served += 1
                return None
            if plan.fail_count is None or self.failed < plan.fail_count:
                self.failed += 1
                return plan.status_code
            self.served += 1
            return None

    def decide(self, group: str | None, *, creates_order: bool = False) -> FaultDecision:
        """Draw the random faults of one request of ``group``."""
        if group is None:
            return _NO_FAULT
        faults = self.plan.faults_for(group)
        if faults is None:
            return _NO_FAULT
        with self._lock:
            u = self._rng.random()
            d = self._rng.random()
        status = None
        reject = False
        if u < faults.rate_limit:
            status = 429
        elif u < faults.rate_limit + faults.server_error:
            status = 503
        elif creates_order and u < faults.rate_limit + faults.server_error + faults.reject:
            reject = True
        drop = status is None and not reject and d < faults.drop
        decision = FaultDecision(faults.latency_ms, status, reject, drop)
        kind = (
            "rate_limit"
            if status == 429
            else "server_error"
            if status
            else "reject"
            if reject
            else "drop"
            if drop
            else None
        )
        if kind is not None:
            with self._lock:
                self.counts[kind] = self.counts.get(kind, 0) + 1
        return decision

    def partial_fraction(self) -> float:
        """Fraction of a paper fill to fill now: 1, or (with probability ``partial`` of the
        ``order`` group) uniform in [0.1, 0.9]."""
        faults = self.plan.faults_for("order")
        if faults is None or faults.partial <= 0.0:
            return 1.0
        with self._lock:
            if self._rng.random() >= faults.partial:
                return 1.0
            self.counts["partial"] = self.counts.get("partial", 0) + 1
            return 0.1 + 0.8 * self._rng.random()
