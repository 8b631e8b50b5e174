"""Many rows of one table in one statement, through the DB-API cursor.

A transaction that logs a few packages executes a handful of statements; SQLAlchemy's
execution path (execution context, result metadata, type processing set up per call)
costs several times what SQLite spends on the statement itself, and it is paid inside
the node's one writer turn. An API submission commits a few packages per transaction
(as many as are in flight), so that per-statement cost, not the rows, set how fast a
node accepts them. :class:`Rows` renders each statement of the hot path once per table,
columns and row count — with SQLAlchemy's own quoting and its column types' bind and
result processors, so that what lands in a row, and what is read back, is what the ORM
would write and read — and runs it on the transaction's own DB-API connection.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

__all__ = ["Rows"]

#: parameters in one statement at most (SQLite allows 32,766; PostgreSQL 65,535)
MAX_PARAMETERS = 30_000

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Rendered:
    """One statement, and how each bound value is converted for it."""

    sql: str
    processors: tuple[_Processor, ...]


@dataclass
class Rows:
    """The hot statements of a store, rendered once for its database's dialect.

    Parameters
    ----------
    dialect:
        The engine's dialect: its quoting, parameter style and column types' processors.

    Raises
    ------
    ValueError
        The driver's parameter style is not one this renders (SQLite's and psycopg's are).

    Examples
    --------
    >>> rows = Rows(engine.dialect)  # doctest: +SKIP
    >>> rows.insert(connection, events_table, [{"kind": "received", ...}])  # doctest: +SKIP
    """

    dialect: Dialect
    _rendered: dict[tuple[Any, ...], _Rendered] = field(default_factory=dict, init=False,
                                                         repr=False)

    def __post_init__(self) -> None:
        if self.dialect.paramstyle not in _PLACEHOLDERS:
            raise ValueError(f"no statement renderer for the {self.dialect.name} driver's "
                             f"parameter style {self.dialect.paramstyle!r}")
        self._placeholder = _PLACEHOLDERS[self.dialect.paramstyle]
        self._quote = self.dialect.identifier_preparer

    def insert(self, connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
               skip_conflicts: bool = False,
               returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
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
            What the driver raised, wrapped as SQLAlchemy wraps it (IntegrityError,
            OperationalError, …: an outage is told apart from a bad row as everywhere
            else in the store).
        ValueError
            The rows do not all have the same columns (raised before any is written).
        """
        if not rows:
            return []
        keys = tuple(rows[0])
        columns = set(keys)
        if any(row.keys() != columns for row in rows):
            raise ValueError(f"rows for {table.name} do not all have the columns {keys}")
        returned: list[tuple[Any, ...]] = []
        with self._cursor(connection) as cursor:
            for part in _parts(rows, max(1, MAX_PARAMETERS // max(len(keys), 1))):
                rendered = self._insert(table, keys, len(part), skip_conflicts,
                                        tuple(returning))
                self._execute(cursor, rendered.sql, [
                    _bound(processor, row[key]) for row in part
                    for key, processor in zip(keys, rendered.processors, strict=True)])
                if returning:
                    returned += [tuple(found) for found in cursor.fetchall()]
        return returned

    def select_in(self, connection: Connection, table: Table, columns: Sequence[str],
                  key: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM table WHERE key IN values``, each value read as the
        column type reads it (a SQLite timestamp back as a ``datetime``).

        Raises
        ------
        sqlalchemy.exc.DBAPIError
            As :meth:`insert`.
        """
        found: list[tuple[Any, ...]] = []
        with self._cursor(connection) as cursor:
            for part in _parts(values, MAX_PARAMETERS):
                rendered = self._rendered_once(
                    ("select", table.name, tuple(columns), key, len(part)),
                    functools.partial(self._select_sql, table, columns, key, len(part)),
                    lambda: [table.c[c].type.dialect_impl(self.dialect)
                             .result_processor(self.dialect, None) for c in columns])
                self._execute(cursor, rendered.sql, list(part))
                found += [tuple(_bound(processor, value) for processor, value
                                in zip(rendered.processors, row, strict=True))
                          for row in cursor.fetchall()]
        return found

    def update_in(self, connection: Connection, table: Table, values: dict[str, Any],
                  key: str, keys: Sequence[Any], *, where: dict[str, Any] | None = None,
                  ) -> None:
        """``UPDATE table SET values WHERE key IN keys [AND column = value …]``.

        Raises
        ------
        sqlalchemy.exc.DBAPIError
            As :meth:`insert`.
        """
        where = where or {}
        names = (*values, *where)  # the columns set, then those compared
        with self._cursor(connection) as cursor:
            for part in _parts(keys, MAX_PARAMETERS - len(names)):
                rendered = self._rendered_once(
                    ("update", table.name, tuple(values), tuple(where), key, len(part)),
                    functools.partial(self._update_sql, table, tuple(values), key, len(part),
                                      tuple(where)),
                    lambda: [self._bind_processor(table, c) for c in names])
                bound = [_bound(processor, value) for processor, value in zip(
                    rendered.processors, (*values.values(), *where.values()), strict=True)]
                self._execute(cursor, rendered.sql,
                              [*bound[:len(values)], *part, *bound[len(values):]])

    # -- rendering ---------------------------------------------------------------------
    def _insert(self, table: Table, keys: tuple[str, ...], count: int, skip_conflicts: bool,
                returning: tuple[str, ...]) -> _Rendered:
        return self._rendered_once(
            ("insert", table.name, keys, count, skip_conflicts, returning),
            functools.partial(self._insert_sql, table, keys, count, skip_conflicts, returning),
            lambda: [self._bind_processor(table, key) for key in keys])

    def _insert_sql(self, table: Table, keys: tuple[str, ...], count: int,
                    skip_conflicts: bool, returning: tuple[str, ...]) -> str:
        row = f"({self._marks(len(keys))})"
        return (f"INSERT INTO {self._quote.format_table(table)} "
                f"({', '.join(self._quote.quote(key) for key in keys)}) "
                f"VALUES {', '.join([row] * count)}"
                + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
                + (f" RETURNING {', '.join(self._quote.quote(c) for c in returning)}"
                   if returning else ""))

    def _select_sql(self, table: Table, columns: Sequence[str], key: str, count: int) -> str:
        return (f"SELECT {', '.join(self._quote.quote(c) for c in columns)} "
                f"FROM {self._quote.format_table(table)} "
                f"WHERE {self._quote.quote(key)} IN ({self._marks(count)})")

    def _update_sql(self, table: Table, columns: Sequence[str], key: str, count: int,
                    where: Sequence[str]) -> str:
        return (f"UPDATE {self._quote.format_table(table)} SET "
                + ", ".join(f"{self._quote.quote(c)} = {self._placeholder}" for c in columns)
                + f" WHERE {self._quote.quote(key)} IN ({self._marks(count)})"
                + "".join(f" AND {self._quote.quote(c)} = {self._placeholder}"
                          for c in where))

    def _rendered_once(self, cache_key: tuple[Any, ...], sql: Callable[[], str],
                       processors: Callable[[], Sequence[_Processor]]) -> _Rendered:
        """The statement rendered for ``cache_key`` (rendered now if it is the first)."""
        rendered = self._rendered.get(cache_key)
        if rendered is None:
            rendered = self._rendered[cache_key] = _Rendered(sql(), tuple(processors()))
        return rendered

    def _bind_processor(self, table: Table, column: str) -> _Processor:
        return table.c[column].type.dialect_impl(self.dialect).bind_processor(self.dialect)

    def _marks(self, count: int) -> str:
        return ", ".join([self._placeholder] * count)

    # -- running -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _cursor(self, connection: Connection) -> Iterator[Any]:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            yield cursor
        finally:
            cursor.close()

    def _execute(self, cursor: Any, sql: str, values: list[Any]) -> None:
        error = self.dialect.loaded_dbapi.Error
        try:
            cursor.execute(sql, values)
        except error as exc:  # as SQLAlchemy would raise it: IntegrityError, OperationalError…
            from sqlalchemy.exc import DBAPIError, OperationalError

            if ended_by_the_server(exc):
                raise OperationalError(sql, None, exc) from exc
            raise DBAPIError.instance(sql, None, exc, error) from exc


#: PostgreSQL's idle_in_transaction_session_timeout (SQLSTATE 25P03)
ENDED_IDLE_TRANSACTION = "25P03"


def ended_by_the_server(error: BaseException) -> bool:
    """Whether PostgreSQL ended this session's transaction for being idle too long (its
    process frozen past the store's ``stalled_transaction_timeout``): an outage to that
    process, retried like a lost connection, not a fault of what it was writing
    (psycopg names it an ``InternalError``)."""
    return getattr(error, "sqlstate", None) == ENDED_IDLE_TRANSACTION


def _bound(processor: _Processor, value: Any) -> Any:
    return value if processor is None else processor(value)


def _parts(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    iterator = iter(rows)
    while part := list(itertools.islice(iterator, size)):
        yield part
