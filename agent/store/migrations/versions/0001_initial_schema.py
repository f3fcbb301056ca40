"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("thread_id", sa.String(length=1000), nullable=False),
        sa.Column("subject_id", sa.String(length=1000), nullable=False),
        sa.Column("decision", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox", "subject_id", "decision", name="uq_decision"),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_mailbox"), ["mailbox"], unique=False)

    op.create_table(
        "events",
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.String(length=500), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("start", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("transparent", sa.Boolean(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("organizer", sa.String(length=500), nullable=False),
        sa.Column("attendees", sa.JSON(), nullable=False),
        sa.Column("uid", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("mailbox", "provider_id"),
    )
    op.create_table(
        "messages",
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.String(length=500), nullable=False),
        sa.Column("thread_id", sa.String(length=1000), nullable=False),
        sa.Column("message_id", sa.String(length=1000), nullable=False),
        sa.Column("sender", sa.String(length=500), nullable=False),
        sa.Column("sender_name", sa.Text(), nullable=False),
        sa.Column("to_addrs", sa.JSON(), nullable=False),
        sa.Column("cc_addrs", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("date", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("in_reply_to", sa.String(length=1000), nullable=False),
        sa.Column("refs", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("mailbox", "provider_id"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_date"), ["date"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_thread_id"), ["thread_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("client", sa.String(length=200), nullable=False),
        sa.Column("thread_id", sa.String(length=1000), nullable=False),
        sa.Column("due", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("draft_id", sa.String(length=500), nullable=True),
        sa.Column("sent_provider_id", sa.String(length=500), nullable=True),
        sa.Column("sent_message_id", sa.String(length=1000), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_due"), ["due"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_mailbox"), ["mailbox"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_status"), ["status"], unique=False)

    op.create_table(
        "skipped",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox", "source", "item", name="uq_skipped_item"),
    )
    op.create_table(
        "streams",
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("next_run_at", agent.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires", agent.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("synced_at", agent.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("mailbox", "kind"),
    )


def downgrade() -> None:
    op.drop_table("streams")
    op.drop_table("skipped")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_status"))
        batch_op.drop_index(batch_op.f("ix_outbox_mailbox"))
        batch_op.drop_index(batch_op.f("ix_outbox_due"))

    op.drop_table("outbox")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_thread_id"))
        batch_op.drop_index(batch_op.f("ix_messages_message_id"))
        batch_op.drop_index(batch_op.f("ix_messages_date"))

    op.drop_table("messages")
    op.drop_table("events")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_mailbox"))

    op.drop_table("decisions")
    op.drop_table("credentials")
