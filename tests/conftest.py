"""Shared fixtures: a migrated database on each backend, the app, test LMSs.

Database-touching tests run on SQLite always and on PostgreSQL too when
LTI_TOOL_TEST_DATABASE_URL is set (CI sets it; under CI=true it must be)."""

from __future__ import annotations

import uuid

import pytest

from lti_tool import create_app
from lti_tool.db import migrate, session_scope
from lti_tool.launch import keys
from lti_tool.launch.registrations import add_platform
from tests.support.databases import empty_database, throwaway_postgres, wipe
from tests.support.platform import JwksServer, TestPlatform, canvas_flavor, moodle_flavor

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
    """A throw-away PostgreSQL database for this test session, migrated."""
    with throwaway_postgres("pathwise_test") as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def _sqlite_database(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    migrate(url)
    return url


@pytest.fixture(params=_backends())
def database_url(request):
    url = empty_database(request, request.param)
    yield url
    wipe(url)


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
