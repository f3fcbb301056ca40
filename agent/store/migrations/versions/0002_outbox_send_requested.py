"""outbox: when the send was requested

Graph accepts ``/send`` before the message reaches Sent Items, so after a lost answer the
outbox must know that a send was asked for, and since when, to wait for the sent copy instead of
sending the draft again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "send_requested_at",
                agent.store.tables.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("send_requested_at")
