"""later nodes' signed hop receipts kept as evidence

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

The origin node keeps each signed statement of hop receipts it verified (its JSON: body,
signature, the node's chain) and which packages it speaks of: ``docaxis evidence
export`` puts them in a document's container, where they verify offline.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hop_statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hop_statements")),
    )
    op.create_table(
        "hop_statement_packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("statement_id", sa.Integer(), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["statement_id"], ["hop_statements.id"],
                                name=op.f("fk_hop_statement_packages_statement_id_hop_statements")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hop_statement_packages")),
    )
    op.create_index(op.f("ix_hop_statement_packages_package_sha256"), "hop_statement_packages",
                    ["package_sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_hop_statement_packages_package_sha256"),
                  table_name="hop_statement_packages")
    op.drop_table("hop_statement_packages")
    op.drop_table("hop_statements")
