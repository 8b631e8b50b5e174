"""document systems' VXP credentials, their own status word on each inbox copy, and
credentials bound to several agencies

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

A VXP client (an agency's document system) signs each request with an HMAC secret: the
node must be able to compute the HMAC, so the secret is kept sealed (AES-256-GCM under
the node's secret key, outside the database), not hashed. Inbox copies gain the
system's ``updateStatus`` word (done / fail / processing) and its description. An API
token, like a VXP system, may act for several agencies and whole subtrees of the
directory (``credentials.agencies`` / ``subtrees``; NULL: its one ``agency``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "systems",
        sa.Column("system_id", sa.String(length=100), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("agencies", sa.Text(), nullable=False),
        sa.Column("subtrees", sa.Text(), nullable=False),
        sa.Column("may_register", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("system_id", name=op.f("pk_systems")),
    )
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("agencies", sa.Text(), nullable=True))
        batch.add_column(sa.Column("subtrees", sa.Text(), nullable=True))
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("client_status", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("client_status_desc", sa.Text(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("client_status_desc")
        batch.drop_column("client_status")
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("subtrees")
        batch.drop_column("agencies")
    op.drop_table("systems")
