"""documents keyed by (sender, DocumentId); recipients kept with each document; signer
bindings of agencies in the directory

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

A DocumentId is chosen by its sender, so another agency can reuse it: a document is
known by its verified sender *and* its DocumentId. ``document_sender`` says, for a
package and for every event and receipt, which sender's document it belongs to (for a
status package: the sender of the document it answers). ``recipients`` keeps a
document's To list, so that a status can be accepted only from one of them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_sender", sa.String(length=13), nullable=True))
        batch_op.add_column(sa.Column("recipients", sa.Text(), nullable=True))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_sender", sa.String(length=13), nullable=True))
        batch_op.create_index("ix_events_document_sender", ["document_id", "document_sender"])
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document_sender", sa.String(length=13), nullable=True))
    # an agency's signer binding (pinned fingerprints, CA + subject rules) as JSON
    with op.batch_alter_table("directory_agencies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signer_binding", sa.Text(), nullable=True))
    # rows written before: a document's own sender; events and receipts take the sender
    # of the (first) document logged with their DocumentId
    op.execute("UPDATE packages SET document_sender = sender WHERE kind = 'document'")
    for table in ("events", "receipts"):
        op.execute(f"UPDATE {table} SET document_sender = (SELECT MIN(p.sender) FROM packages p "
                   f"WHERE p.kind = 'document' AND p.document_id = {table}.document_id) "
                   "WHERE document_sender IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("directory_agencies", schema=None) as batch_op:
        batch_op.drop_column("signer_binding")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_column("document_sender")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_document_sender")
        batch_op.drop_column("document_sender")
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_column("recipients")
        batch_op.drop_column("document_sender")
