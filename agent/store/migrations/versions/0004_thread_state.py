"""thread_state: the planner's compact per-thread state, kept in the database

A worker that takes a mailbox over (a lease moved) continues from these rows instead of planning
the whole stored mailbox again; a pass reads only the threads whose mail changed or whose next
due time has come.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "thread_state",
        sa.Column("mailbox", sa.String(200), primary_key=True),
        sa.Column("thread_id", sa.String(1000), primary_key=True),
        sa.Column("grp", sa.String(1000), nullable=True),
        sa.Column("wake", agent.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("promises", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_thread_state_wake", "thread_state", ["mailbox", "wake"])
    op.create_index("ix_thread_state_grp", "thread_state", ["mailbox", "grp"])


def downgrade() -> None:
    op.drop_index("ix_thread_state_grp", table_name="thread_state")
    op.drop_index("ix_thread_state_wake", table_name="thread_state")
    op.drop_table("thread_state")
