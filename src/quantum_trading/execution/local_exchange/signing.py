"""Binance's request signing, checked as Binance checks it (``SIGNED`` endpoints).

A signed request carries the API key in the ``X-MBX-APIKEY`` header and, as its last
parameter, ``signature`` = hex HMAC-SHA256 of the *total params* with the API secret. The total
params are the query string followed directly by the form body, exactly as sent (ccxt sends
everything in the query for GET/DELETE and in the body for POST). ``timestamp`` (ms) must be
within ``recvWindow`` (default 5,000 ms, at most 60,000) behind the server's clock and at most
1,000 ms ahead of it.

Errors, in Binance's codes (answered with HTTP 400, or 401 for a key problem):

* missing or unknown API key → ``-2014`` "API-key format invalid." / ``-2015`` "Invalid
  API-key, IP, or permissions for action." (401)
* bad or missing signature → ``-1022`` "Signature for this request is not valid."
* missing timestamp → ``-1102``; out of the window → ``-1021``; recvWindow above 60,000 →
  ``-1131``.

The secret is compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

__all__ = [
    "Credentials",
    "SignatureError",
    "sign_query",
    "verify_signed_request",
]

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
AHEAD_TOLERANCE_MS = 1_000


class SignatureError(Exception):
    """A signed request was refused: Binance ``code``, ``msg`` and HTTP ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


@dataclass(frozen=True)
class Credentials:
    """The one API key/secret pair the local exchange accepts (``repr`` hides both)."""

    api_key: str
    secret: str

    def __post_init__(self) -> None:
        if not self.api_key or not self.secret:
            raise ValueError("api_key and secret must be non-empty")

    def __repr__(self) -> str:
        return "Credentials(api_key=***, secret=***)"


def sign_query(query: str, secret: str) -> str:
    """Hex HMAC-SHA256 of ``query`` with ``secret`` (Binance's ``signature``).

    >>> sign_query("symbol=BTCUSDT&timestamp=1", "s")[:16]
    '3f6bc80f1eb7b77a'
    """
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def _without_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` without its ``signature=…`` parameter (order and encoding kept), and the
    signature (None if absent)."""
    if not raw:
        return "", None
    kept, signature = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def verify_signed_request(
    credentials: Credentials,
    *,
    api_key: str | None,
    query: str,
    body: str,
    now_ms: int | None = None,
) -> dict[str, str]:
    """Check a signed request; return its parameters (query and body merged, signature out).

    Parameters
    ----------
    credentials:
        The accepted key and secret.
    api_key:
        The ``X-MBX-APIKEY`` header (None if missing).
    query, body:
        The raw query string and the raw form-encoded body.
    now_ms:
        Server time (ms); default the machine clock.

    Raises
    ------
    SignatureError
        With Binance's code (see the module docstring).
    """
    if not api_key:
        raise SignatureError(-2014, "API-key format invalid.", 401)
    if not hmac.compare_digest(api_key.encode(), credentials.api_key.encode()):
        raise SignatureError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    q_rest, q_sig = _without_signature(query)
    b_rest, b_sig = _without_signature(body)
    signature = q_sig if q_sig is not None else b_sig
    total = q_rest + b_rest
    if signature is None or not hmac.compare_digest(
        signature.lower().encode(), sign_query(total, credentials.secret).encode()
    ):
        raise SignatureError(-1022, "Signature for this request is not valid.")
    params = dict(parse_qsl(q_rest, keep_blank_values=True))
    params.update(parse_qsl(b_rest, keep_blank_values=True))
    stamp = params.get("timestamp")
    if not stamp or not stamp.isdigit():
        raise SignatureError(
            -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        )
    window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
    if not window.isdigit():
        raise SignatureError(-1100, "Illegal characters found in parameter 'recvWindow'.")
    if int(window) > MAX_RECV_WINDOW_MS:
        raise SignatureError(-1131, "recvWindow must be less than 60000")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    ts = int(stamp)
    if ts > now + AHEAD_TOLERANCE_MS or now - ts > int(window):
        raise SignatureError(-1021, "Timestamp for this request is outside of the recvWindow.")
    return params
