"""Keep API keys and secrets out of the database and the logs.

No table has a column for credentials, but text that reaches the database or a log — an
exchange error message, an order's reject reason — may quote them (a signed URL, an echo of a
header). :class:`SecretRedactor` replaces every known secret value in such text with ``***``:
the values of environment variables whose names look like credentials (``*API_KEY*``,
``*SECRET*``, ``*PASSWORD*``, ``*PASSPHRASE*``, ``*TOKEN*``, ``*PRIVATE_KEY*``) and any value
added with :meth:`SecretRedactor.add`. :class:`RedactingFilter` does the same for log records.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

__all__ = ["SECRET_ENV_PATTERN", "RedactingFilter", "SecretRedactor"]

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

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:  # chained causes included
            trace = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor(trace)
        return True
