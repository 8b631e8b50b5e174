"""several instances of a node: package bytes kept in the database (PostgreSQL), and
leases that say which processes still own their hand-overs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

With PostgreSQL a node may run as several instances on several machines; bytes in one
machine's blob log are lost to the others (and for good with that machine). Packages
accepted from now on keep their bytes in ``blob_chunks`` rows, written in the same
transaction as their log row; packages logged before keep theirs where they are.

Each process renews its lease (``leases``) every few seconds; a hand-over owed by a
process whose lease has lapsed is taken over by a live one, whatever the hostnames.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq"),
    )
    op.create_table(
        "leases",
        sa.Column("claimant", sa.String(length=200), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("claimant"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("blob_chunks")
