"""survey_answers: clients' answers to feedback surveys, read as scores

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import agent.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_answers",
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=1000), nullable=False),
        sa.Column("survey", sa.String(length=500), nullable=False),
        sa.Column("client", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=100), nullable=False),
        sa.Column("segment", sa.String(length=200), nullable=False),
        sa.Column("meeting", sa.Text(), nullable=False),
        sa.Column("scale", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("answered_at", agent.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox", "message_id"),
    )
    op.create_index("ix_survey_answers_survey", "survey_answers", ["survey"])
    op.create_index("ix_survey_answers_answered_at", "survey_answers", ["answered_at"])


def downgrade() -> None:
    op.drop_index("ix_survey_answers_answered_at", table_name="survey_answers")
    op.drop_index("ix_survey_answers_survey", table_name="survey_answers")
    op.drop_table("survey_answers")
