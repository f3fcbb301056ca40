"""The schema, as SQLAlchemy Core tables. Migrations in migrations/ create and evolve it.

All times are stored as UTC; the ``UTCDateTime`` type gives aware datetimes back on both
SQLite (which stores text) and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused by the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

streams = Table(
    "streams",
    metadata,
    Column("mailbox", String(200), primary_key=True),
    Column("kind", String(20), primary_key=True),  # mail | calendar
    Column("state", String(30), nullable=False, default="new"),
    Column("cursor", Text),
    Column("next_run_at", UTCDateTime),
    Column("failures", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("lease_owner", String(200)),
    Column("lease_expires", UTCDateTime),
    Column("synced_at", UTCDateTime),
)

messages = Table(
    "messages",
    metadata,
    Column("mailbox", String(200), primary_key=True),
    Column("provider_id", String(500), primary_key=True),
    Column("thread_id", String(1000), nullable=False, index=True),
    Column("message_id", String(1000), nullable=False, index=True),
    Column("sender", String(500), nullable=False),
    Column("sender_name", Text, nullable=False, default=""),
    Column("to_addrs", JSON, nullable=False),
    Column("cc_addrs", JSON, nullable=False),
    Column("subject", Text, nullable=False, default=""),
    Column("date", UTCDateTime, nullable=False, index=True),
    Column("in_reply_to", String(1000), nullable=False, default=""),
    Column("refs", JSON, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("body", Text),
)

events = Table(
    "events",
    metadata,
    Column("mailbox", String(200), primary_key=True),
    Column("provider_id", String(500), primary_key=True),
    Column("summary", Text, nullable=False, default=""),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("transparent", Boolean, nullable=False, default=False),
    Column("all_day", Boolean, nullable=False, default=False),
    Column("organizer", String(500), nullable=False, default=""),
    Column("attendees", JSON, nullable=False),
    Column("uid", String(1000), nullable=False, default=""),
)

skipped = Table(
    "skipped",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mailbox", String(200), nullable=False),
    Column("source", String(50), nullable=False),  # mail | calendar | clients | rules ...
    Column("item", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("mailbox", "source", "item", name="uq_skipped_item"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(500), nullable=False, unique=True),
    Column("kind", String(30), nullable=False),
    Column("mailbox", String(200), nullable=False, index=True),
    Column("client", String(200), nullable=False, default=""),
    Column("thread_id", String(1000), nullable=False, default=""),
    Column("due", UTCDateTime, nullable=False, index=True),
    # planned -> (awaiting_approval ->) drafting -> drafted -> sending -> sent
    # or cancelled | needs_attention | failed
    Column("status", String(30), nullable=False, index=True),
    Column("action", JSON, nullable=False),
    Column("draft_id", String(500)),
    Column("sent_provider_id", String(500)),
    Column("sent_message_id", String(1000)),
    Column("attempts", Integer, nullable=False, default=0),
    # Set (on the outbox's clock) just before the request that sends: from then on the row is
    # reconciled only by looking for the sent copy, never by sending the draft again.
    Column("send_requested_at", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("mailbox", String(200), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

CONTROL_ROWS = "subject_id LIKE 'control:%'"
LABEL_ROWS = "subject_id LIKE 'label:%'"

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mailbox", String(200), nullable=False, index=True),
    Column("thread_id", String(1000), nullable=False),
    Column("subject_id", String(1000), nullable=False),  # message or promise the decision is about
    Column("decision", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("mailbox", "subject_id", "decision", name="uq_decision"),
    # The few rows of acts by hand and of labels seen, found among millions of the planners'
    # decisions without reading those: partial indexes, used by queries that repeat these exact
    # conditions (as literals, not parameters).
    Index(
        "ix_decisions_control_mailbox",
        "mailbox",
        sqlite_where=text(CONTROL_ROWS),
        postgresql_where=text(CONTROL_ROWS),
    ),
    Index(
        "ix_decisions_control_decision",
        "decision",
        sqlite_where=text(CONTROL_ROWS),
        postgresql_where=text(CONTROL_ROWS),
    ),
    Index(
        "ix_decisions_label_mailbox",
        "mailbox",
        sqlite_where=text(LABEL_ROWS),
        postgresql_where=text(LABEL_ROWS),
    ),
)

# A client's answer to a feedback survey, read as a score (agent/surveys.py). One row per reply
# message; a reply read again (after a better reader) updates its row.
survey_answers = Table(
    "survey_answers",
    metadata,
    Column("mailbox", String(200), primary_key=True),
    Column("message_id", String(1000), primary_key=True),
    Column("survey", String(500), nullable=False, index=True),  # the feedback note's outbox key
    Column("client", String(200), nullable=False, default=""),
    Column("tier", String(100), nullable=False, default=""),
    Column("segment", String(200), nullable=False, default=""),
    Column("meeting", Text, nullable=False, default=""),
    Column("scale", String(10), nullable=False),  # nps | csat
    Column("score", Integer),  # None: unscored (ambiguous or no number)
    Column("status", String(20), nullable=False),  # scored | ambiguous | none
    Column("comment", Text, nullable=False, default=""),
    Column("why", Text, nullable=False, default=""),
    Column("answered_at", UTCDateTime, nullable=False, index=True),
)


# What the planner needs to continue a mailbox without its mail in memory, per thread: the
# thread's group (its client's key, or "#<mailbox>/<thread>"), the next instant its plan can
# change by time alone (``wake``; NULL: its mail changed since it was planned) and its promises'
# states ({"open": 2}). The row with thread_id "" is the mailbox's own: the digest of the rules
# and clients and of the calendar it was planned with, and the wake of clients with meetings
# but no thread.
thread_state = Table(
    "thread_state",
    metadata,
    Column("mailbox", String(200), primary_key=True),
    Column("thread_id", String(1000), primary_key=True),
    Column("grp", String(1000)),
    Column("wake", UTCDateTime),
    Column("promises", JSON),
    Column("note", Text),
    Index("ix_thread_state_wake", "mailbox", "wake"),
    Index("ix_thread_state_grp", "mailbox", "grp"),
)
