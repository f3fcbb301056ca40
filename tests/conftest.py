from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from agent.store import Store

# A real headless Chromium for pages (fixtures ``chromium`` and ``open_page``), and the
# console's world (fixture ``demo_folder``: the demo's data, made once a session).
pytest_plugins = ["tests.browser", "tests.web_world"]

PG_URL = os.environ.get("FOLLOWUP_TEST_PG_URL", "")

# In CI, property tests search the same examples on every run, so a new example found on some
# day cannot decide whether a change lands; a developer's run keeps the randomised search (and
# its example database) and prints the blob that reproduces a failure. Time limits are off in
# CI: a loaded two-core machine is slow for no reason of the code's.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


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


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that runs the CLI's `followup run` installs the service's log handlers (which
    render and redact each record in place); later tests must see logging as pytest set it."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ours = {name: logging.getLogger(name).level for name in ("followup", "agent")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, value in ours.items():
        logging.getLogger(name).setLevel(value)
