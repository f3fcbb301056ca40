"""decisions: partial indexes for the acts by hand and the labels seen

A pass reads its mailbox's acts by hand (and every opt-out) and the labels it has seen: these
indexes find those few rows without scanning the planners' decisions, which grow with the mail.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CONTROL_ROWS = "subject_id LIKE 'control:%'"
LABEL_ROWS = "subject_id LIKE 'label:%'"
INDEXES = (
    ("ix_decisions_control_mailbox", "mailbox", CONTROL_ROWS),
    ("ix_decisions_control_decision", "decision", CONTROL_ROWS),
    ("ix_decisions_label_mailbox", "mailbox", LABEL_ROWS),
)


def upgrade() -> None:
    for name, column, where in INDEXES:
        op.create_index(
            name,
            "decisions",
            [column],
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, _column, _where in INDEXES:
        op.drop_index(name, table_name="decisions")
