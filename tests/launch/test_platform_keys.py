"""The platform's JWKS: cached for every process, refetched on rotation,
and a broken JWKS gives 503 without spending the person's launch."""

from __future__ import annotations

import pytest

from tests.support.flows import error_code, launch, login, post_launch, record_counts
from tests.support.platform import public_jwk, rsa_key


def test_jwks_is_fetched_once_for_many_launches(client, lms, jwks_server):
    start = jwks_server.requests
    for _ in range(5):
        assert launch(client, lms)[0].status_code == 303
    assert jwks_server.requests - start == 1


def test_jwks_cache_is_shared_between_app_instances(app, lms, jwks_server, tmp_path,
                                                    database_url, tool_keys_dir):
    """A second process (another app object) reuses the database cache."""
    from lti_tool import create_app

    assert launch(app.test_client(), lms)[0].status_code == 303
    start = jwks_server.requests
    other = create_app({"instance_path": tmp_path / "w2", "database_url": database_url,
                        "keys_dir": tool_keys_dir, "base_url": "https://tool.test",
                        "secret_key": "s2"})
    assert launch(other.test_client(), lms)[0].status_code == 303
    assert jwks_server.requests == start


def test_rotated_platform_key_is_fetched_once(client, canvas, jwks_server):
    assert launch(client, canvas)[0].status_code == 303
    new_key, new_kid = rsa_key(), "rotated-2026"
    jwks_server.jwks["keys"].append(public_jwk(new_key, new_kid))
    start = jwks_server.requests
    started = login(client, canvas)
    token = canvas.sign(canvas.claims(started.nonce), key=new_key, kid=new_kid)
    assert post_launch(client, token, started.state).status_code == 303
    assert jwks_server.requests - start == 1


def test_unknown_kid_refetches_once_then_refuses(client, canvas, jwks_server, database_url):
    assert launch(client, canvas)[0].status_code == 303
    start = jwks_server.requests
    before = record_counts(database_url)
    started = login(client, canvas)
    response = post_launch(client, canvas.sign(canvas.claims(started.nonce), kid="nope"),
                           started.state)
    assert response.status_code == 401 and error_code(response) == "JWT_KID_UNKNOWN"
    assert jwks_server.requests - start == 1
    assert record_counts(database_url) == before


@pytest.mark.parametrize("mode", ["error", "html", "huge"])
def test_broken_jwks_gives_503_and_keeps_the_state(client, lms, jwks_server, database_url,
                                                    mode):
    jwks_server.mode = mode
    before = record_counts(database_url)
    started = login(client, lms)
    token = lms.sign(lms.claims(started.nonce))
    response = post_launch(client, token, started.state)
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert error_code(response) == "PLATFORM_KEYS_UNAVAILABLE"
    assert response.headers["Retry-After"] == "60"
    assert record_counts(database_url) == before
    # Once the LMS's keys are back, the same launch can still finish.
    jwks_server.mode = "ok"
    assert post_launch(client, token, started.state).status_code == 303


def test_unreachable_jwks_gives_503(client, app, database_url):
    from lti_tool.db import session_scope
    from lti_tool.launch.registrations import add_platform
    from tests.support.platform import Flavor, JwksServer, TestPlatform

    dead = JwksServer()
    dead.close()  # the port is closed: connection refused
    platform = TestPlatform(Flavor("moodle", "https://dead.example", "dead", "1",
                                   "https://dead.example/auth", "https://dead.example/token",
                                   60), dead, "https://tool.test")
    with session_scope(database_url) as session:
        add_platform(session, **platform.registration())
    started = login(client, platform)
    response = post_launch(client, platform.sign(platform.claims(started.nonce)), started.state)
    assert response.status_code == 503
    assert error_code(response) == "PLATFORM_KEYS_UNAVAILABLE"


def test_stale_cache_is_used_when_the_jwks_fails(client, lms, jwks_server, database_url,
                                                 tmp_path, tool_keys_dir):
    import sqlalchemy as sa

    from lti_tool import create_app
    from lti_tool.db import get_engine

    assert launch(client, lms)[0].status_code == 303
    with get_engine(database_url).begin() as conn:
        conn.execute(sa.text("UPDATE key_set_cache SET expires_at = fetched_at"))
    jwks_server.mode = "error"
    # Another process, without this one's in-memory copy, sees the stale row.
    other = create_app({"instance_path": tmp_path / "w3", "database_url": database_url,
                        "keys_dir": tool_keys_dir, "base_url": "https://tool.test",
                        "secret_key": "s3"})
    assert launch(other.test_client(), lms)[0].status_code == 303


@pytest.mark.parametrize("header,expected", [
    ("max-age=600", 600), ("public, max-age=5", 60), ("no-store", 60), (None, 300),
    ("max-age=999999", 86400)])
def test_cache_lifetime_follows_cache_control(header, expected):
    from lti_tool.launch.platform_keys import _ttl

    assert _ttl(header, 300) == expected
