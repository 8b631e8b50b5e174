"""the message log chained by hash (tamper evidence)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Every event a node writes (received, routed, delivered, handed over, acknowledged, a hop
receipt's word, …) carries the hash of the one before it in its writer's chain
(``chain``: the writing process's token; a process's first record links to the newest
record of any chain), and its own hash over its content and that link
(``record_hash``). Changing, inserting or deleting a record breaks the chain at that
record: ``docaxis audit verify`` names it. Events of before this revision have no hash
(reported as unchained, not as broken).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("chain", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("record_hash", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_events_chain_id"), ["chain", "id"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index(batch.f("ix_events_chain_id"))
        batch.drop_column("record_hash")
        batch.drop_column("prev_hash")
        batch.drop_column("chain")
