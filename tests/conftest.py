from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.store import Store

PG_URL = os.environ.get("FOLLOWUP_TEST_PG_URL", "")


@contextmanager
def open_store(kind: str, folder: Path) -> Iterator[Store]:
    """A fresh store: a SQLite file in ``folder``, or a throwaway schema on the PostgreSQL
    server FOLLOWUP_TEST_PG_URL names (the test is skipped when none is set)."""
    if kind == "sqlite":
        s = Store.open(f"sqlite:///{folder / 'followup.db'}")
        yield s
        s.close()
        return
    if not PG_URL:
        pytest.skip("FOLLOWUP_TEST_PG_URL is not set")
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    s = Store.open(f"{PG_URL}?options=-csearch_path%3D{schema}")
    yield s
    s.close()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on SQLite and, when FOLLOWUP_TEST_PG_URL is set, on PostgreSQL too."""
    with open_store(request.param, tmp_path) as s:
        yield s
