"""RFC 3161 timestamps of the message log's chain heads

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

A node with ``[audit] tsa_url`` asks a timestamping authority, at an interval, to stamp
the heads of every chain that grew since the last stamp (batching, as X-Road does):
``log_chains`` lists the chains (filled from the log), ``stamps`` keeps each TSA response
and the SHA-256 of its manifest, ``stamp_heads`` the (chain, record, hash) it covers.
``docaxis audit verify`` checks every token and every stamped head, and reports records
not stamped yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_chains",
        sa.Column("chain", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_log_chains")),
    )
    op.execute("INSERT INTO log_chains (chain, started_at) SELECT chain, min(at) FROM events "
               "WHERE chain IS NOT NULL GROUP BY chain")
    op.create_table(
        "stamps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stamped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tsa", sa.String(length=500), nullable=False),
        sa.Column("imprint", sa.String(length=64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stamps")),
    )
    op.create_table(
        "stamp_heads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stamp_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=100), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["stamp_id"], ["stamps.id"],
                                name=op.f("fk_stamp_heads_stamp_id_stamps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stamp_heads")),
    )
    op.create_index(op.f("ix_stamp_heads_stamp_id"), "stamp_heads", ["stamp_id"])
    op.create_index("ix_stamp_heads_chain_record", "stamp_heads", ["chain", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_stamp_heads_chain_record", table_name="stamp_heads")
    op.drop_index(op.f("ix_stamp_heads_stamp_id"), table_name="stamp_heads")
    op.drop_table("stamp_heads")
    op.drop_table("stamps")
    op.drop_table("log_chains")
