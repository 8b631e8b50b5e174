"""the directory in the database: nodes and agencies (over or instead of network.toml)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_nodes",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.String(length=20), nullable=False),
        sa.Column("parent", sa.String(length=100), nullable=True),
        sa.Column("amqp_url", sa.Text(), nullable=True),
        sa.Column("http", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_nodes")),
    )
    op.create_table(
        "directory_agencies",
        sa.Column("code", sa.String(length=13), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.String(length=20), nullable=True),
        sa.Column("certificate_fingerprint", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_directory_agencies")),
    )


def downgrade() -> None:
    op.drop_table("directory_agencies")
    op.drop_table("directory_nodes")
