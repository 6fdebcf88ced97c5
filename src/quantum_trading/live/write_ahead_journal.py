"""The orders about to be sent, appended to a file next to a SQLite database before they go
out: :class:`WriteAheadJournal`.

Before the trader sends an order, a record of it must survive a crash, so that a restart
knows the order may be on the exchange (reconcile then finds it there, or marks it never
sent). A committed SQLite transaction costs 0.15–0.2 ms in the trader's decision path (the
statement, six indexes, the commit, the pooled connection) — a fifth of the 1 ms budget
from bar in to order out. One ``write`` of a short line per order to a file opened for
appending costs a tenth of that, and survives the same crashes: once ``write`` returns the
bytes are in the operating system's page cache, which a killed process (SIGKILL included)
does not take with it; a power loss or an OS crash may lose them, as it may lose SQLite's
last commits with ``synchronous=NORMAL`` (the trading store's setting,
:mod:`~quantum_trading.live.db`).

The journal only bridges the moment between "written ahead" and "in the database": right
after the orders are out, the store puts them into the database (one transaction) and
empties the journal (:meth:`WriteAheadJournal.clear`). A start after a crash reads what is
left (:meth:`WriteAheadJournal.read`) and stores the orders the database lacks before
reconciling.

Format: UTF-8, one order a line, a Python literal tuple (read back with
:func:`ast.literal_eval`, which evaluates nothing else) of what a fresh order is made of
(:data:`RECORD_FIELDS`: its request, tag, reason, chain ids and creation time in UTC
nanoseconds); everything else of the order is as a new, unsent order has it. Writing it costs
≈ 4 µs where the full database row as JSON cost ≈ 22 µs. Free text (tag, reason) is masked
by the store's redactor before it is written. A line cut short by a crash during the
``write`` belongs to orders that were not sent (the trader sends only after the write
returned): :meth:`WriteAheadJournal.read` reports it and skips it.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.execution.models import LiveOrderType, OrderRequest, TimeInForce
from quantum_trading.execution.order_state import ManagedOrder

__all__ = ["RECORD_FIELDS", "JournalRead", "WriteAheadJournal", "journal_path"]

_SUFFIX = ".write-ahead.log"

RECORD_FIELDS = ("client_order_id", "symbol", "side", "order_type", "amount", "price",
                 "stop_price", "reduce_only", "time_in_force", "tag", "reason", "root_id",
                 "replaces", "created_ns")
"""The values of one journal line, in order (``side``: +1 buy, -1 sell)."""


def journal_path(database: str | os.PathLike[str], exchange: str) -> Path:
    """Where the journal of the account ``exchange`` in the SQLite database file ``database``
    lives: beside the file, named after both (``trading.sqlite``, ``paper`` →
    ``trading.sqlite.paper.write-ahead.log``; characters other than letters, digits, ``-``
    and ``_`` become ``_``), so that traders of two accounts sharing a database do not share
    a journal.

    >>> journal_path("/data/trading.sqlite", "binance usdm").name
    'trading.sqlite.binance_usdm.write-ahead.log'
    """
    db = Path(database)
    account = re.sub(r"[^A-Za-z0-9_-]", "_", exchange)
    return db.with_name(f"{db.name}.{account}{_SUFFIX}")


class JournalRead:
    """What :meth:`WriteAheadJournal.read` found: the orders (``orders``, in the order
    written, as new unsent :class:`ManagedOrder` s) and the lines it could not read
    (``problems``: "file: line N: why")."""

    __slots__ = ("orders", "problems")

    def __init__(self, orders: list[ManagedOrder], problems: list[str]) -> None:
        self.orders = orders
        self.problems = problems


class WriteAheadJournal:
    """An append-only file of orders written ahead (see the module docstring).

    Parameters
    ----------
    path:
        The file (created at the first :meth:`append`, mode 0600).
    redact:
        Masks secrets in the free text written (tag, reason); None = write it as it is.

    >>> import tempfile
    >>> from quantum_trading.domain import Side
    >>> journal = WriteAheadJournal(Path(tempfile.mkdtemp()) / "x.log")
    >>> request = OrderRequest("BTC/USDT:USDT", Side.BUY, LiveOrderType.MARKET, 0.5,
    ...                        client_order_id="a")
    >>> journal.append([ManagedOrder(request, pd.Timestamp("2024-01-01", tz="UTC"))])
    >>> [(o.client_order_id, o.request.amount, o.created_at) for o in journal.read().orders]
    [('a', 0.5, Timestamp('2024-01-01 00:00:00+0000', tz='UTC'))]
    >>> journal.clear(); journal.read().orders
    []
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 redact: Callable[[str], str] | None = None) -> None:
        self.path = Path(path)
        self.redact = redact or (lambda text: text)
        self._fd: int | None = None

    def append(self, orders: Sequence[ManagedOrder]) -> None:
        """Append ``orders`` (one line each) with one ``write``; when it returns they
        survive a crash of this process. Raises ``OSError`` (disk full, no permission): the
        orders must then not be sent."""
        if not orders:
            return
        data = "".join(self._line(o) for o in orders).encode()
        fd = self.open()
        view = memoryview(data)
        while view:  # a regular file takes it in one write; a short write goes on
            view = view[os.write(fd, view):]

    def clear(self) -> None:
        """Empty the journal (its orders are in the database now)."""
        if self._fd is None and not self.path.exists():
            return
        os.ftruncate(self.open(), 0)  # appends go on at the new end: offset 0

    def read(self) -> JournalRead:
        """Every order in the file (none when it does not exist), and the lines skipped."""
        orders: list[ManagedOrder] = []
        problems: list[str] = []
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return JournalRead(orders, problems)
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                orders.append(_order(ast.literal_eval(line)))
            except (ValueError, TypeError, SyntaxError, KeyError, MemoryError,
                    RecursionError) as exc:
                problems.append(f"{self.path}: line {number}: {type(exc).__name__}: {exc}")
        return JournalRead(orders, problems)

    def open(self) -> int:
        """Open the file for appending (creating it) unless it is open; returns its
        descriptor. :meth:`append` and :meth:`clear` open it when needed; the trader's start
        calls it so that its first order does not pay for it."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def close(self) -> None:
        """Close the file (reopened by the next :meth:`append` or :meth:`clear`)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _line(self, o: ManagedOrder) -> str:
        r = o.request
        return repr((r.client_order_id, r.symbol, int(r.side), r.order_type.value, r.amount,
                     r.price, r.stop_price, r.reduce_only, r.time_in_force.value,
                     self.redact(o.tag), self.redact(o.reason), o.root_id, o.replaces,
                     int(pd.Timestamp(o.created_at).value))) + "\n"


def _order(record: Any) -> ManagedOrder:
    """The new, unsent order a journal line describes (:data:`RECORD_FIELDS`)."""
    if not isinstance(record, tuple) or len(record) != len(RECORD_FIELDS):
        raise ValueError(f"not an order record ({len(RECORD_FIELDS)} values: "
                         f"{', '.join(RECORD_FIELDS)})")
    v = dict(zip(RECORD_FIELDS, record, strict=True))
    request = OrderRequest(str(v["symbol"]), Side(int(v["side"])),
                           LiveOrderType(v["order_type"]), float(v["amount"]),
                           price=v["price"], stop_price=v["stop_price"],
                           reduce_only=bool(v["reduce_only"]),
                           time_in_force=TimeInForce(v["time_in_force"]),
                           client_order_id=str(v["client_order_id"]))
    return ManagedOrder(request=request, created_at=pd.Timestamp(int(v["created_ns"]), tz="UTC"),
                        tag=str(v["tag"]), root_id=str(v["root_id"]), replaces=v["replaces"],
                        reason=str(v["reason"]))
