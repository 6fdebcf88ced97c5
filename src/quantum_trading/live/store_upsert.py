"""One-row upserts (and inserts of rows not stored yet) of the trading store through
SQLAlchemy Core: :class:`Upserts`.

The rows the trader overwrites after a bar — the equity snapshot of a time, the position of
a symbol, a state value under a key — went through the ORM: a read, then an insert or an
update, in a unit of work (0.7–0.8 ms each in a trader's run). On SQLite and PostgreSQL one
``INSERT … ON CONFLICT (keys) DO UPDATE`` does the same in one statement; it is built once
per table and column set (building a statement costs more than running it) and run with the
row's values as bound parameters through the driver (the columns' types convert them as
the ORM does, so the stored values are the same; ``tests/live/test_store.py`` compares both
paths). Other databases keep the ORM path: :meth:`Upserts.run` returns False there.

Rows that are only ever added, unless the same one is stored already, were a read then an
insert through the ORM (≈ 0.8 ms each in a trader's run). A fill (unique by exchange and id)
is now one ``INSERT … ON CONFLICT DO NOTHING`` (:meth:`Upserts.insert_or_skip`, SQLite and
PostgreSQL); a risk decision (no unique key: the same time, symbol, action, size and order)
one ``INSERT … SELECT … WHERE NOT EXISTS`` (:meth:`Upserts.insert_absent`, SQLite).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quantum_trading.live.raw_statement import RawStatement

__all__ = ["Upserts"]


class Upserts:
    """Cached ``INSERT … ON CONFLICT DO UPDATE`` statements for one database dialect.

    >>> Upserts("sqlite").available, Upserts("mysql").available
    (True, False)
    """

    def __init__(self, dialect: str) -> None:
        insert: Any
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            insert = None
        self._insert = insert
        self._statements: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Any] = {}
        self._sqlite = dialect == "sqlite"
        self._raw: dict[tuple[Engine, str, tuple[str, ...], tuple[str, ...]], RawStatement] = {}

    @property
    def available(self) -> bool:
        """Whether this dialect has the upsert (else callers take the ORM path)."""
        return self._insert is not None

    def statement(self, table: sa.Table, keys: tuple[str, ...], columns: tuple[str, ...]
                  ) -> Any:
        """The upsert of ``columns`` into ``table``, conflicting on the unique ``keys``
        (bound parameters named as the columns); built at the first call."""
        cache_key = (table.name, keys, columns)
        stmt = self._statements.get(cache_key)
        if stmt is None:
            ins = self._insert(table).values({c: sa.bindparam(c) for c in columns})
            stmt = ins.on_conflict_do_update(
                index_elements=list(keys),
                set_={c: ins.excluded[c] for c in columns if c not in keys})
            self._statements[cache_key] = stmt
        return stmt

    def run(self, engine: Engine, table: sa.Table, keys: tuple[str, ...],
            values: Mapping[str, Any]) -> bool:
        """Insert or overwrite one row (``values``: column → value, the ``keys`` included) in
        its own committed transaction, sent through the driver
        (:class:`~quantum_trading.live.raw_statement.RawStatement`, compiled at the first
        call); False (nothing done) where the dialect has no upsert."""
        if self._insert is None:
            return False
        columns = tuple(values)
        raw = self._raw.get((engine, table.name, keys, columns))
        if raw is None:
            raw = RawStatement(engine, self.statement(table, keys, columns))
            self._raw[(engine, table.name, keys, columns)] = raw
        raw.run([values])
        return True

    def insert_absent(self, table: sa.Table, columns: tuple[str, ...], match: tuple[str, ...]
                      ) -> Any | None:
        """``INSERT INTO table (columns) SELECT <the values> WHERE NOT EXISTS (a row whose
        match columns equal them, NULL matching NULL in nullable ones)``, bound parameters
        named as the columns; built at the first call. Run with one row's values, its ``rowcount`` says
        whether the row was new (1) or stored already (0). None off SQLite (PostgreSQL
        cannot type the bare parameters of the select list): the caller takes the ORM path.
        """
        if not self._sqlite:
            return None
        cache_key = (table.name + "/absent", columns, match)
        stmt = self._statements.get(cache_key)
        if stmt is None:
            params = {c: sa.bindparam(c, type_=table.c[c].type) for c in columns}
            same = sa.exists().where(*(
                table.c[c].is_not_distinct_from(params[c]) if table.c[c].nullable
                else table.c[c] == params[c] for c in match))
            stmt = sa.insert(table).from_select(
                list(columns), sa.select(*(params[c] for c in columns)).where(~same))
            self._statements[cache_key] = stmt
        return stmt

    def insert_or_skip(self, table: sa.Table, keys: tuple[str, ...], columns: tuple[str, ...]
                       ) -> Any | None:
        """``INSERT … ON CONFLICT (keys) DO NOTHING`` of ``columns`` (bound parameters named
        as the columns; ``keys`` a unique constraint of the table): a row whose keys are
        stored already is skipped (``rowcount`` 0). Built at the first call; None where the
        dialect has no such clause (the caller takes the ORM path)."""
        if self._insert is None:
            return None
        cache_key = (table.name + "/skip", keys, columns)
        stmt = self._statements.get(cache_key)
        if stmt is None:
            stmt = self._insert(table).values({c: sa.bindparam(c) for c in columns}
                                              ).on_conflict_do_nothing(index_elements=list(keys))
            self._statements[cache_key] = stmt
        return stmt
