"""Shared fixtures: a migrated database on each backend, the app, test LMSs.

Database-touching tests run on SQLite always and on PostgreSQL too when
LTI_TOOL_TEST_DATABASE_URL is set (CI sets it; under CI=true it must be)."""

from __future__ import annotations

import os
import secrets
import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from lti_tool import create_app
from lti_tool.db import dispose_engines, get_engine, migrate, normalise_url, session_scope
from lti_tool.launch import keys
from lti_tool.launch.registrations import add_platform
from lti_tool.models import Base
from tests.support.platform import JwksServer, TestPlatform, canvas_flavor, moodle_flavor

PG_URL = os.environ.get("LTI_TOOL_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
TOOL_URL = "https://tool.test"


def _backends() -> list[str]:
    return ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def tool_keys_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    keys.ensure_key(folder)
    return folder


@pytest.fixture(scope="session")
def _pg_database():
    """A throw-away PostgreSQL database for this test session."""
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but LTI_TOOL_TEST_DATABASE_URL is not set: "
                        "PostgreSQL tests must run in CI")
        yield None
        return
    admin = sa.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"pathwise_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at LTI_TOOL_TEST_DATABASE_URL is unreachable: {exc}")
        yield None
        return
    url = urlsplit(normalise_url(PG_URL))._replace(path=f"/{name}").geturl()
    migrate(url)
    yield url
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_database(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    migrate(url)
    return url


def _wipe(url: str) -> None:
    with get_engine(url).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=_backends())
def database_url(request):
    if request.param == "postgresql":
        url = request.getfixturevalue("_pg_database")
        if url is None:
            pytest.skip("PostgreSQL not configured: set LTI_TOOL_TEST_DATABASE_URL")
    else:
        url = request.getfixturevalue("_sqlite_database")
    _wipe(url)
    yield url
    _wipe(url)


@pytest.fixture
def app(database_url, tool_keys_dir, tmp_path):
    return create_app({
        "instance_path": tmp_path / "instance",
        "database_url": database_url,
        "keys_dir": tool_keys_dir,
        "base_url": TOOL_URL,
        "secret_key": "test-secret-" + uuid.uuid4().hex,
        "jwks_refetch_interval": 0,
    })


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def jwks_server():
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def platforms(app, jwks_server):
    """Canvas- and Moodle-shaped test LMSs, registered with the tool."""
    jwks_server.mode = "ok"
    jwks_server.jwks["keys"].clear()
    made = {"canvas": TestPlatform(canvas_flavor(), jwks_server, TOOL_URL),
            "moodle": TestPlatform(moodle_flavor(), jwks_server, TOOL_URL)}
    with session_scope(app.config["SETTINGS"].database_url) as session:
        for platform in made.values():
            add_platform(session, **platform.registration())
    return made


@pytest.fixture
def canvas(platforms):
    return platforms["canvas"]


@pytest.fixture
def moodle(platforms):
    return platforms["moodle"]


@pytest.fixture(params=["canvas", "moodle"])
def lms(request, platforms):
    return platforms[request.param]
