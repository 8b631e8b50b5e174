"""package bytes in append-only segments: where each package's bytes are

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # existing rows keep NULL: their bytes stay in the one-file-per-blob layout
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blob_segment", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("blob_offset", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_column("blob_offset")
        batch_op.drop_column("blob_segment")
