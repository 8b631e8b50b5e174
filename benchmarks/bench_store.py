"""The message log's transactions on SQLite: what a statement costs, and a transaction by
its size.

Two tables, in the same run:

* **one INSERT of n event rows**, rolled back (no ``fsync``): SQLAlchemy Core's
  ``connection.execute(insert(table), rows)`` — how the log wrote them before — as the
  baseline, against :class:`docaxis.store._rows.Rows`, which renders the statement once
  per table and row count and runs it on the DB-API cursor;
* **``Store.accept_many`` of n packages** (each with a hand-over, an inbox row and two
  events, as a routed package has), committed: CPU per package and per transaction.
  An API submission commits as many packages as are in flight at once, the hop up to a
  batch of 128: the fixed cost of a transaction is what separates them.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert

from benchmarks._harness import compare
from docaxis.store import Accept, PackageFacts, Store
from docaxis.store._models import EventRow
from docaxis.store._rows import Rows

SIZES = (1, 4, 16, 64)


def _event_rows(count: int) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    return [{"package_sha256": f"{i:064x}", "document_id": f"000.00.00.G22,2026/11/30,{i}/VP",
             "document_sender": "000.00.00.G22", "node": "central", "kind": "received",
             "agency": "000.00.00.G22", "detail": None, "at": now} for i in range(count)]


def _statements(store: Store, quick: bool) -> str:
    rows_of = {n: _event_rows(n) for n in SIZES}
    statements = Rows(store.engine.dialect)
    events = cast(Table, EventRow.__table__)
    connection = store.engine.connect()
    candidates: dict[str, Callable[[], object]] = {}
    for n in SIZES:
        def core(n: int = n) -> object:
            with connection.begin() as transaction:
                connection.execute(insert(events), rows_of[n])
                transaction.rollback()
            return None

        def rendered(n: int = n) -> object:
            with connection.begin() as transaction:
                statements.insert(connection, events, rows_of[n])
                transaction.rollback()
            return None

        candidates[f"SQLAlchemy Core insert, {n} rows (baseline)"] = core
        candidates[f"Rows.insert, {n} rows"] = rendered
    results = compare(candidates, rounds=3 if quick else 7)
    connection.close()
    lines = [f"### one INSERT of n event rows in a transaction rolled back (SQLite), "
             f"{'quick' if quick else 'full'} run", "",
             "| rows | SQLAlchemy Core (baseline) | Rows.insert | ratio |", "|---:|---:|---:|---:|"]
    by_name = {r.name: r for r in results}
    for n in SIZES:
        base = by_name[f"SQLAlchemy Core insert, {n} rows (baseline)"]
        ours = by_name[f"Rows.insert, {n} rows"]
        lines.append(f"| {n} | {base.per_second:,.0f}/s | {ours.per_second:,.0f}/s | "
                     f"{ours.per_second / base.per_second:.2f}× |")
    return "\n".join(lines) + "\n"


def _packages() -> Iterator[Accept]:
    number = 0
    while True:
        number += 1
        yield Accept(f"<edXML>{number}</edXML>".encode(),
                     PackageFacts("document", "000.00.00.G22",
                                  f"000.00.00.G22,2026/11/30,{number}/VP",
                                  recipients=("000.00.00.H01",), code=f"{number}/VP",
                                  subject="V/v thử nghiệm liên thông"), "central",
                     outbox=(("hanoi", "package", {"x-docaxis-origin": "central"}),),
                     inbox=("000.00.00.G22",),
                     events=(("received", "000.00.00.G22", None), ("routed", None, None)))


def _transactions(store: Store, quick: bool) -> str:
    packages = _packages()
    per_size = 200 if quick else 1000  # packages per size and round
    cpu: dict[int, float] = {n: float("inf") for n in SIZES}
    for _round in range(2 if quick else 3):
        for n in SIZES:  # interleaved: each size once per round
            started = time.process_time()
            for _ in range(per_size // n):
                store.accept_many([next(packages) for _ in range(n)])
            cpu[n] = min(cpu[n], (time.process_time() - started) / (per_size // n * n))
    lines = ["### `Store.accept_many` of n packages, committed (SQLite, WAL, "
             "`synchronous=FULL`), CPU of this process (best round)", "",
             "| packages a transaction | CPU per package | CPU per transaction "
             "| per package, against 64 a transaction |", "|---:|---:|---:|---:|"]
    for n in SIZES:
        lines.append(f"| {n} | {cpu[n] * 1000:.3f} ms | {cpu[n] * n * 1000:.3f} ms | "
                     f"{cpu[n] / cpu[SIZES[-1]]:.2f}× |")
    return "\n".join(lines) + "\n"


def run(quick: bool = False) -> str:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'node.db'}", Path(folder) / "blobs")
        store.migrate()
        try:
            return _statements(store, quick) + "\n" + _transactions(store, quick)
        finally:
            store.close()

