"""documents found by their number and notation (số, ký hiệu), and their subject

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

A clerk looks a document up by its number and notation (``12/VPCP-TTĐT``), typed with
or without diacritics: each document package's ``Code`` is kept as written (``code``)
and folded (``code_key``: no diacritics, lower-case, no spaces; indexed), with its
``Subject``. Rows logged before this revision are filled in from their bytes by
:meth:`docaxis.store.Store.index_documents`, which :meth:`~docaxis.store.Store.migrate`
runs after the upgrade (``code_key`` = '' where a package has no code).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.add_column(sa.Column("code", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("code_key", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("subject", sa.Text(), nullable=True))
        batch.create_index(batch.f("ix_packages_code_key"), ["code_key"])


def downgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.drop_index(batch.f("ix_packages_code_key"))
        batch.drop_column("subject")
        batch.drop_column("code_key")
        batch.drop_column("code")
