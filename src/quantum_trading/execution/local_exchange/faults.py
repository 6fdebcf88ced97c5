"""Fault injection for the local exchange: fail data requests on purpose, to test recovery."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["FaultInjector", "FaultPlan"]


@dataclass(frozen=True)
class FaultPlan:
    """When and how data requests fail.

    Attributes
    ----------
    fail_after:
        Successful data requests (klines, mark-price klines, funding rates) served before the
        failures start; ``None`` disables fault injection.
    fail_count:
        Data requests that then fail in a row before serving resumes; ``None``: all of them.
    status_code:
        HTTP status of a failed request: 503 (service unavailable, the default), 429 (rate
        limit), 500, 502, 504 ….
    """

    fail_after: int | None = None
    fail_count: int | None = None
    status_code: int = 503

    def __post_init__(self) -> None:
        if self.fail_after is not None and self.fail_after < 0:
            raise ValueError(f"fail_after must be >= 0, got {self.fail_after}")
        if self.fail_count is not None and self.fail_count < 1:
            raise ValueError(f"fail_count must be >= 1, got {self.fail_count}")
        if not 400 <= self.status_code <= 599:
            raise ValueError(
                f"status_code must be an HTTP error status (400-599), got {self.status_code}"
            )


class FaultInjector:
    """Counts data requests and says which of them must fail (thread-safe).

    >>> faults = FaultInjector(FaultPlan(fail_after=1, fail_count=2))
    >>> [faults.next_request() for _ in range(5)]
    [None, 503, 503, None, None]
    """

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(plan or FaultPlan())

    def configure(self, plan: FaultPlan) -> None:
        """Start a new plan; the counters restart from zero."""
        with self._lock:
            self.plan = plan
            self.served = 0
            self.failed = 0

    def next_request(self) -> int | None:
        """Account for one data request: the HTTP status to fail it with, or ``None`` to serve it."""
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
