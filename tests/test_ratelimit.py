"""Rate limits counted in the database: shared by every process, per client IP
as seen through the trusted proxy, 429 with Retry-After when over."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from lti_tool import create_app, ratelimit
from lti_tool.db import get_engine
from lti_tool.ratelimit import ClientAddress, Limit, RateLimiter, parse_limit
from tests.conftest import TOOL_URL
from tests.support.flows import error_code


@pytest.mark.parametrize(("spec", "expected"), [
    ("300/minute", Limit(300, 60)), ("10/min", Limit(10, 60)), ("1000/hour", Limit(1000, 3600)),
    ("5/30s", Limit(5, 30)), ("10/10min", Limit(10, 600)), (" 7 per second ", Limit(7, 1)),
    ("0", None), ("off", None), ("", None), (None, None)])
def test_parse_limit(spec, expected):
    assert parse_limit(spec) == expected


@pytest.mark.parametrize("spec", ["fast", "10", "10/fortnight", "5/0s", "1/2day"])
def test_parse_limit_refuses_nonsense(spec):
    with pytest.raises(ValueError):
        parse_limit(spec)


def test_limits_from_environment_and_settings():
    limits = ratelimit.load_limits({"rate_limits": {"launch": "5/min", "custom": "1/s"}},
                                   {"LTI_TOOL_RATE_LIMIT_LOGIN": "off",
                                    "LTI_TOOL_RATE_LIMIT_LAUNCH": "9/min"})
    assert limits["login"] is None                 # env
    assert limits["launch"] == Limit(5, 60)        # settings win over env
    assert limits["custom"] == Limit(1, 1)
    assert limits["register"] == parse_limit(ratelimit.DEFAULT_LIMITS["register"])


def test_client_address_through_trusted_proxies():
    proxy = ClientAddress("127.0.0.1, 10.0.0.0/8")
    # Not behind a trusted proxy: X-Forwarded-For is the client's own claim.
    assert proxy.of("203.0.113.9", "198.51.100.1") == "203.0.113.9"
    # Behind our proxy: the nearest address our proxies did not add themselves.
    assert proxy.of("127.0.0.1", "198.51.100.1") == "198.51.100.1"
    assert proxy.of("127.0.0.1", "1.2.3.4, 198.51.100.1, 10.1.2.3") == "198.51.100.1"
    assert proxy.of("127.0.0.1", "garbage, 198.51.100.1") == "198.51.100.1"
    assert proxy.of("127.0.0.1", None) == "127.0.0.1"
    # IPv6 clients count per /64.
    assert proxy.of("2001:db8:1:2::5", None) == "2001:db8:1:2::/64"
    assert proxy.of("127.0.0.1", "[2001:db8:1:2:aa::1]:443") == "2001:db8:1:2::/64"
    assert ClientAddress("*").of("203.0.113.9", "198.51.100.1") == "198.51.100.1"
    assert ClientAddress("").of("127.0.0.1", "198.51.100.1") == "127.0.0.1"


def test_counter_windows_and_retry_after(database_url):
    limiter = RateLimiter(database_url, {"b": Limit(2, 60)})
    start = 1_800_000_000 - 1_800_000_000 % 60
    assert [limiter.hit("b", "k", now=start + 1).allowed for _ in range(2)] == [True, True]
    refused = limiter.hit("b", "k", now=start + 15.5)
    assert (refused.allowed, refused.count, refused.limit) == (False, 3, 2)
    assert refused.retry_after == 45 and refused.reset_at == start + 60
    assert limiter.hit("b", "other-key", now=start + 16).allowed
    assert limiter.hit("b", "k", now=start + 60).allowed  # a new window
    # Finished windows are deleted, at most once a minute per process.
    limiter._last_cleanup = 0
    limiter.hit("b", "k", now=start + 200)
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT window_start FROM rate_limit_counter")).scalars()
        assert set(rows) == {start + 180}


def test_a_database_failure_lets_requests_through():
    limiter = RateLimiter("postgresql://nobody@127.0.0.1:1/none", {"b": Limit(1, 60)})
    assert all(limiter.hit("b", "k").allowed for _ in range(3))


def _app(database_url, tool_keys_dir, tmp_path, limits):
    return create_app({
        "instance_path": tmp_path / f"instance-{uuid.uuid4().hex[:6]}",
        "database_url": database_url, "keys_dir": tool_keys_dir, "base_url": TOOL_URL,
        "secret_key": "test-secret", "extra": {"rate_limits": limits}})


def test_login_over_the_limit_is_429_with_retry_after(database_url, tool_keys_dir, tmp_path,
                                                      canvas):
    app = _app(database_url, tool_keys_dir, tmp_path, {"login": "3/minute"})
    client = app.test_client()
    for _ in range(3):
        assert client.post("/lti/login", data=canvas.login_params()).status_code == 302
    refused = client.post("/lti/login", data=canvas.login_params())
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    page = refused.get_data(as_text=True)
    assert error_code(refused) == "RATE_LIMITED"
    assert "Please try again in" in page and "UTC" in page
    assert refused.headers["Content-Type"].startswith("text/html")
    # Another address (behind the trusted proxy) has its own count.
    other = client.post("/lti/login", data=canvas.login_params(),
                        headers={"X-Forwarded-For": "198.51.100.7"})
    assert other.status_code == 302
    # Nothing was stored for the refused login: 4 states, not 5.
    with get_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM login_state")).scalar_one() == 4


def test_two_processes_share_the_launch_count(database_url, tool_keys_dir, tmp_path, canvas):
    """Two app instances (two gunicorn workers, two machines) on one database."""
    apps = [_app(database_url, tool_keys_dir, tmp_path, {"launch": "4/minute"})
            for _ in range(2)]
    clients = [a.test_client() for a in apps]
    data = {"id_token": "not-a-jwt", "state": "s"}
    statuses = [clients[i % 2].post("/lti/launch", data=data).status_code for i in range(4)]
    assert all(400 <= s < 500 and s != 429 for s in statuses), statuses  # failures count too
    assert clients[0].post("/lti/launch", data=data).status_code == 429
    assert clients[1].post("/lti/launch", data=data).status_code == 429
    # /lti/login has its own bucket.
    assert clients[1].post("/lti/login", data=canvas.login_params()).status_code == 302


def test_check_api_for_other_endpoints(database_url, tool_keys_dir, tmp_path):
    app = _app(database_url, tool_keys_dir, tmp_path, {"register": "2/minute"})
    with app.test_request_context("/lti/register", method="POST",
                                  environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                  headers={"X-Forwarded-For": "192.0.2.1"}):
        assert ratelimit.client_ip() == "192.0.2.1"
        first, second, third = (ratelimit.check("register") for _ in range(3))
        assert first.allowed and second.allowed and not third.allowed
        assert third.bucket == "register" and third.retry_after >= 1
        response = ratelimit.too_many_requests(third)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == str(third.retry_after)
        assert "Too many requests" in response.get_data(as_text=True)
        assert ratelimit.check("register", key="someone-else").allowed
        with pytest.raises(KeyError):
            ratelimit.check("no-such-bucket")


def test_limits_can_be_switched_off(database_url, tool_keys_dir, tmp_path):
    app = _app(database_url, tool_keys_dir, tmp_path, {"launch": "off"})
    client = app.test_client()
    data = {"id_token": "not-a-jwt", "state": "s"}
    assert all(client.post("/lti/launch", data=data).status_code != 429 for _ in range(5))


def test_check_inside_an_open_transaction(app):
    """A view that already opened its transaction is counted inside it."""
    from flask import g

    from lti_tool.web import get_db

    with app.test_request_context("/x", method="POST",
                                  environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        db = get_db()
        db.execute(sa.text("SELECT 1"))
        assert g.db.in_transaction()
        assert ratelimit.check("launch").count == 1
        assert ratelimit.check("launch").count == 2
        db.commit()
    with app.test_request_context("/x", environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        assert ratelimit.check("launch").count == 3
