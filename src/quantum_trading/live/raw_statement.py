"""A SQLAlchemy Core statement run through the database driver (DBAPI) itself:
:class:`RawStatement`.

The trader writes a few rows many times a second: an order ahead of sending it, a risk
decision every bar. SQLAlchemy's ``Connection.execute`` spends 150–250 µs a call around
the driver (execution context, statement cache lookup, result object) — more than SQLite's
insert and commit together. A :class:`RawStatement` compiles its statement once for the
engine's dialect into the driver's SQL and parameter order, applies the bound columns' type
processors itself (what SQLAlchemy's execution applies: the stored values are the same),
and sends the rows with the pooled DBAPI connection's cursor in one committed transaction.
The engine's SQL echo and cursor events do not see these statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

__all__ = ["RawStatement"]


class RawStatement:
    """``statement`` compiled once for ``engine``'s dialect, run with rows of values.

    Parameters
    ----------
    engine:
        The engine whose pooled connections run it.
    statement:
        A Core statement with named bound parameters (an ``INSERT`` of a table, or one with
        explicit ``bindparam`` s; a parameter may appear several times).
    column_keys:
        For a plain ``INSERT`` of a table: the columns it sets (its parameters are named as
        the columns); None for a statement with its own bound parameters.

    >>> import sqlalchemy as sa
    >>> engine = sa.create_engine("sqlite://")
    >>> table = sa.Table("t", sa.MetaData(), sa.Column("k", sa.Integer, primary_key=True),
    ...                  sa.Column("flag", sa.Boolean))
    >>> table.create(engine)
    >>> RawStatement(engine, sa.insert(table), ["k", "flag"]).run([{"k": 1, "flag": True}])
    1
    """

    def __init__(self, engine: Engine, statement: Any,
                 column_keys: Sequence[str] | None = None) -> None:
        dialect = engine.dialect
        compiled = (statement.compile(dialect=dialect) if column_keys is None else
                    statement.compile(dialect=dialect, column_keys=list(column_keys)))
        self.sql = str(compiled)
        self.positional = bool(dialect.positional)
        # the driver's parameter order (positional paramstyles) or names (named ones)
        names = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        procs = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                 for name, bind in compiled.binds.items()}
        self.keys = names
        self.procs = [(name, procs[name]) for name in names]
        self.engine = engine
        self.integrity_error: type[Exception] = dialect.loaded_dbapi.IntegrityError

    def run(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement once per row (parameter name → Python value) in one committed
        transaction; returns the rows it changed in all (the driver's ``rowcount``). When it
        returns the rows are committed; on any error the transaction is rolled back and the
        error raised (a constraint violation as :class:`sqlalchemy.exc.IntegrityError`, as
        SQLAlchemy raises it)."""
        return sum(self._run(rows, each=False))

    def run_each(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """As :meth:`run`, one ``execute`` per row; returns what each row changed (e.g. 0 for
        a row an ``ON CONFLICT DO NOTHING`` skipped)."""
        return self._run(rows, each=True)

    def _run(self, rows: Sequence[Mapping[str, Any]], *, each: bool) -> list[int]:
        values: list[Any] = []
        for row in rows:
            cooked = [row[k] if p is None else p(row[k]) for k, p in self.procs]
            values.append(tuple(cooked) if self.positional
                          else dict(zip(self.keys, cooked, strict=True)))
        raw = self.engine.raw_connection()  # pooled; back to the pool (reset) on close
        try:
            cursor = raw.cursor()
            try:
                if each or len(values) == 1:
                    changed = []
                    for v in values:
                        cursor.execute(self.sql, v)
                        changed.append(int(cursor.rowcount))
                else:
                    cursor.executemany(self.sql, values)
                    changed = [int(cursor.rowcount)]
            finally:
                cursor.close()
            raw.commit()
        except self.integrity_error as exc:
            raw.rollback()
            raise IntegrityError(self.sql, None, exc) from exc
        except BaseException:
            try:
                raw.rollback()
            finally:
                raw.invalidate()
            raise
        finally:
            raw.close()
        return changed
