"""Many rows of one table in one statement, through the DB-API cursor.

A transaction that logs a few packages executes a handful of INSERTs; SQLAlchemy's
execution path (execution context, result metadata, type processing set up per call)
costs several times what SQLite spends on the statement itself, and it is paid inside
the node's one writer turn. An API submission commits a few packages per transaction
(as many as are in flight), so that per-statement cost, not the rows, set how fast a
node accepts them. :class:`Inserts` renders each INSERT once per table, columns and row
count — with SQLAlchemy's own quoting and its column types' bind processors, so that
what lands in a row is what the ORM would write — and runs it on the transaction's own
DB-API connection.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

__all__ = ["Inserts"]

#: parameters in one statement at most (SQLite allows 32,766; PostgreSQL 65,535)
MAX_PARAMETERS = 30_000

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@dataclass(frozen=True)
class _Rendered:
    """One INSERT of ``rows`` rows, and how a row's values are bound to it."""

    sql: str
    processors: tuple[Callable[[Any], Any] | None, ...]


@dataclass
class Inserts:
    """The INSERTs of a store, rendered once for its database's dialect.

    Parameters
    ----------
    dialect:
        The engine's dialect: its quoting, parameter style and column types' bind
        processors.

    Examples
    --------
    >>> inserts = Inserts(engine.dialect)  # doctest: +SKIP
    >>> inserts.run(connection, events_table, rows)  # doctest: +SKIP
    """

    dialect: Dialect
    _rendered: dict[tuple[str, tuple[str, ...], int, bool, tuple[str, ...]], _Rendered] = (
        field(default_factory=dict, init=False, repr=False))

    def __post_init__(self) -> None:
        if self.dialect.paramstyle not in _PLACEHOLDERS:
            raise ValueError(f"no INSERT renderer for the {self.dialect.name} driver's "
                             f"parameter style {self.dialect.paramstyle!r}")

    def run(self, connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
            skip_conflicts: bool = False, returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (dicts with the same keys) into ``table``; the ``returning``
        columns of the rows inserted.

        Parameters
        ----------
        connection:
            The transaction's connection (its DB-API connection runs the statements, in
            the same transaction).
        skip_conflicts:
            ``ON CONFLICT DO NOTHING``: a row that would violate a unique constraint is
            left out (and returns nothing).

        Raises
        ------
        sqlalchemy.exc.DBAPIError
            What the driver raised, wrapped as SQLAlchemy wraps it (an outage is told
            apart from a bad row as everywhere else in the store).
        """
        if not rows:
            return []
        keys = tuple(rows[0])
        per_statement = max(1, MAX_PARAMETERS // max(len(keys), 1))
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        returned: list[tuple[Any, ...]] = []
        try:
            for part in _parts(rows, per_statement):
                rendered = self._render(table, keys, len(part), skip_conflicts,
                                        tuple(returning))
                values = [processor(row[key]) if processor is not None else row[key]
                          for row in part
                          for key, processor in zip(keys, rendered.processors, strict=True)]
                try:
                    cursor.execute(rendered.sql, values)
                    if returning:
                        returned += [tuple(found) for found in cursor.fetchall()]
                except self.dialect.loaded_dbapi.Error as exc:
                    raise _wrapped(rendered.sql, exc, self.dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()
        return returned

    def select_in(self, connection: Connection, table: Table, columns: Sequence[str],
                  key: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM table WHERE key IN values``, each value converted as the
        column type's result processor would (a SQLite timestamp read back as a
        ``datetime``).

        Raises
        ------
        sqlalchemy.exc.DBAPIError
            As :meth:`run`.
        """
        if not values:
            return []
        quote = self.dialect.identifier_preparer
        placeholder = _PLACEHOLDERS[self.dialect.paramstyle]
        processors = [table.c[column].type.dialect_impl(self.dialect)
                      .result_processor(self.dialect, None) for column in columns]
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        found: list[tuple[Any, ...]] = []
        try:
            for part in _parts(list(values), MAX_PARAMETERS):
                sql = (f"SELECT {', '.join(quote.quote(c) for c in columns)} "
                       f"FROM {quote.format_table(table)} WHERE {quote.quote(key)} "
                       f"IN ({', '.join([placeholder] * len(part))})")
                try:
                    cursor.execute(sql, list(part))
                    rows = cursor.fetchall()
                except self.dialect.loaded_dbapi.Error as exc:
                    raise _wrapped(sql, exc, self.dialect.loaded_dbapi.Error) from exc
                found += [tuple(processor(value) if processor is not None else value
                                for processor, value in zip(processors, row, strict=True))
                          for row in rows]
        finally:
            cursor.close()
        return found

    def _render(self, table: Table, keys: tuple[str, ...], count: int,
                skip_conflicts: bool, returning: tuple[str, ...]) -> _Rendered:
        cache_key = (table.name, keys, count, skip_conflicts, returning)
        rendered = self._rendered.get(cache_key)
        if rendered is None:
            quote = self.dialect.identifier_preparer
            placeholder = _PLACEHOLDERS[self.dialect.paramstyle]
            row = "(" + ", ".join([placeholder] * len(keys)) + ")"
            sql = (f"INSERT INTO {quote.format_table(table)} "
                   f"({', '.join(quote.quote(key) for key in keys)}) "
                   f"VALUES {', '.join([row] * count)}"
                   + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
                   + (f" RETURNING {', '.join(quote.quote(c) for c in returning)}"
                      if returning else ""))
            processors = tuple(
                table.c[key].type.dialect_impl(self.dialect).bind_processor(self.dialect)
                for key in keys)
            rendered = self._rendered[cache_key] = _Rendered(sql, processors)
        return rendered


def _parts(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    iterator = iter(rows)
    while part := list(itertools.islice(iterator, size)):
        yield part


def _wrapped(sql: str, error: Exception, base: type[Exception]) -> Exception:
    """The driver's error as SQLAlchemy would have raised it (OperationalError,
    IntegrityError, …), so that callers tell an outage from a bad row as they do for every
    other statement."""
    from sqlalchemy import exc

    return exc.DBAPIError.instance(sql, None, error, base)
