"""Keep API keys and secrets out of the database and the logs.

No table has a column for credentials, but text that reaches the database or a log — an
exchange error message, an order's reject reason — may quote them (a signed URL, an echo of a
header). :class:`SecretRedactor` replaces every known secret value in such text with ``***``:
the values of environment variables whose names look like credentials (``*API_KEY*``,
``*SECRET*``, ``*PASSWORD*``, ``*PASSPHRASE*``, ``*TOKEN*``, ``*PRIVATE_KEY*``) and any value
added with :meth:`SecretRedactor.add`. :class:`RedactingFilter` does the same for log records;
:func:`redact_loggers` puts one on every logger of this package that may log exchange text, so
those records are clean before any handler sees them (a handler's own filter only cleans what
that handler writes).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping

__all__ = ["REDACTED_LOGGERS", "SECRET_ENV_PATTERN", "RedactingFilter", "SecretRedactor",
           "redact_loggers"]

SECRET_ENV_PATTERN = re.compile(
    r"(API_?KEY|SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE
)
"""Environment variable names whose values are treated as secrets."""

MASK = "***"
_MIN_LENGTH = 6  # shorter values ("1", "yes") would mask ordinary words


class SecretRedactor:
    """Masks secret values in text.

    Parameters
    ----------
    secrets:
        Extra values to mask (e.g. keys read from a config file).
    environ:
        Environment to scan for credential-like variables (None = ``os.environ``, read now;
        call :meth:`refresh` after the environment changes).

    >>> r = SecretRedactor(["s3cr3t-value"], environ={})
    >>> r("GET /order?signature=abc&key=s3cr3t-value")
    'GET /order?signature=abc&key=***'
    """

    def __init__(self, secrets: Iterable[str] = (), *,
                 environ: Mapping[str, str] | None = None) -> None:
        self._extra = {s for s in secrets if s and len(s) >= _MIN_LENGTH}
        self._environ = environ
        self._values: tuple[str, ...] = ()
        self.refresh()

    def refresh(self) -> None:
        """Re-read the environment's credential-like variables."""
        env = os.environ if self._environ is None else self._environ
        found = {v for k, v in env.items() if SECRET_ENV_PATTERN.search(k) and v
                 and len(v) >= _MIN_LENGTH}
        # longest first, so a secret containing another is masked whole
        self._values = tuple(sorted(found | self._extra, key=len, reverse=True))

    def add(self, *secrets: str) -> None:
        """Mask these values too."""
        self._extra.update(s for s in secrets if s and len(s) >= _MIN_LENGTH)
        self.refresh()

    def __call__(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def optional(self, text: str | None) -> str | None:
        """Like calling it, but None stays None."""
        return None if text is None else self(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in each record's formatted message.

    Attach it to a handler (``handler.addFilter(RedactingFilter())``) so every record that
    handler writes is clean, whichever module logged it.
    """

    def __init__(self, redactor: SecretRedactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or SecretRedactor()
        self._more: list[Callable[[str], str]] = []

    def add(self, redactor: Callable[[str], str]) -> None:
        """Apply ``redactor`` too (e.g. the store's of a trader started later)."""
        if redactor is not self.redactor and all(r is not redactor for r in self._more):
            self._more.append(redactor)

    def _clean(self, text: str) -> str:
        text = self.redactor(text)
        for redactor in self._more:
            text = redactor(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._clean(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:  # chained causes included
            trace = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._clean(trace)
        return True


REDACTED_LOGGERS = (
    "quantum_trading.execution.order_manager",
    "quantum_trading.execution.position_monitor",
    "quantum_trading.execution.ccxt_exchange",
    "quantum_trading.execution.algos.base",
    "quantum_trading.live.trader",
    "quantum_trading.live.trader_exits",
    "quantum_trading.live.reconcile",
    "quantum_trading.live.store",
    "quantum_trading.live.feed",
    "quantum_trading.live.watchdog",
)
"""Loggers that may quote an exchange's error text (the trader's path to the exchange)."""


def redact_loggers(redactor: SecretRedactor | None = None,
                   names: tuple[str, ...] = REDACTED_LOGGERS) -> None:
    """Attach a :class:`RedactingFilter` to each logger in ``names`` (logger-level filters
    run when a record is made, before any handler: whichever handler writes it — a file,
    the console, pytest's capture — gets the masked text). Idempotent: a logger that has one
    already gets ``redactor`` added to it (several traders in one process: all their
    secrets are masked)."""
    redactor = redactor or SecretRedactor()
    for name in names:
        logger = logging.getLogger(name)
        mine = [f for f in logger.filters if isinstance(f, RedactingFilter)]
        if mine:
            mine[0].add(redactor)
        else:
            logger.addFilter(RedactingFilter(redactor))
