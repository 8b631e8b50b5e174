"""Several instances of one node (issue #12): what they share must tolerate them all."""

from __future__ import annotations

import contextlib
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from docaxis.store import Store
from tests.pg_support import pg_database

INSTANCES = 6


def _migrate(url: str, blobs: str, start: Any) -> None:
    start.wait(30)  # all at once
    store = Store(url, blobs)
    try:
        store.migrate()
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_instances_started_together_on_an_empty_database_all_start(
    engine: str, tmp_path: Path,
) -> None:
    """Issue #12, item 4: six processes migrate one fresh database at the same instant;
    every one succeeds and the schema is current (without the migration lock, two first
    starts both create ``alembic_version`` and one crashes)."""
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'node.db'}" if engine == "sqlite"
               else stack.enter_context(pg_database())[1])
        start = context.Barrier(INSTANCES)
        processes = [context.Process(target=_migrate, args=(url, str(tmp_path / f"b{i}"),
                                                            start))
                     for i in range(INSTANCES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
        assert [p.exitcode for p in processes] == [0] * INSTANCES
        store = Store(url, tmp_path / "blobs")
        try:
            assert store.is_current()
        finally:
            store.close()
