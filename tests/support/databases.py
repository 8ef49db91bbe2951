"""The tests' databases: throw-away PostgreSQL ones, the session's shared
ones picked by backend, and emptying them.

The session's databases are fixtures in tests/conftest.py (`_sqlite_database`,
`_pg_database`); fixtures of any scope get one with `empty_database`.
PostgreSQL comes from LTI_TOOL_TEST_DATABASE_URL: without it (or when its
server does not answer) PostgreSQL tests skip, and under CI=true they fail."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from lti_tool.db import dispose_engines, get_engine, normalise_url
from lti_tool.models import Base

PG_URL = os.environ.get("LTI_TOOL_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"


@contextmanager
def scratch_postgres(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on `admin_url`'s server, dropped afterwards
    (connections still open to it included). No pytest: benchmarks use it."""
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except BaseException:
        admin.dispose()
        raise
    try:
        yield urlsplit(normalise_url(admin_url))._replace(path=f"/{name}").geturl()
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """`scratch_postgres` on the test PostgreSQL server: skipped when there is
    none (or it does not answer), failed instead under CI=true."""
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but LTI_TOOL_TEST_DATABASE_URL is not set: "
                        "PostgreSQL tests must run in CI")
        pytest.skip("PostgreSQL not configured: set LTI_TOOL_TEST_DATABASE_URL")
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_postgres(PG_URL, prefix))
        except sa.exc.OperationalError as exc:
            if IN_CI:
                pytest.fail(f"PostgreSQL at LTI_TOOL_TEST_DATABASE_URL is unreachable: {exc}")
            pytest.skip(f"PostgreSQL unreachable: {exc}")
        yield url


def wipe(url: str) -> None:
    """Every table emptied (children first), the schema kept."""
    with get_engine(url).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


def empty_database(request: pytest.FixtureRequest, backend: str) -> str:
    """The session's `backend` ("sqlite" or "postgresql") database, emptied;
    skips when PostgreSQL is not configured (conftest fails instead in CI)."""
    url = request.getfixturevalue(
        "_pg_database" if backend == "postgresql" else "_sqlite_database")
    wipe(url)
    return url
