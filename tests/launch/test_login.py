"""OIDC login initiation (security catalogue section A)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from lti_tool.db import get_engine
from tests.support.flows import error_code, login


def _state_rows(database_url: str) -> int:
    with get_engine(database_url).connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM login_state")).scalar_one()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_valid_login_redirects_to_the_registered_endpoint(client, lms, method):
    started = login(client, lms, method=method)
    location = started.location
    assert started.response.headers["Location"].startswith("/lti/login/continue?state=")
    assert location.startswith(lms.flavor.auth_login_url + "?")
    auth = started.auth
    assert auth["scope"] == "openid"
    assert auth["response_type"] == "id_token"
    assert auth["response_mode"] == "form_post"
    assert auth["prompt"] == "none"
    assert auth["client_id"] == lms.flavor.client_id
    assert auth["redirect_uri"] == "https://tool.test/lti/launch"
    assert auth["login_hint"] == lms.login_params()["login_hint"] or len(auth["login_hint"]) > 0
    assert set(auth) >= {"state", "nonce", "lti_message_hint"}


def test_message_hint_is_passed_back_unaltered(client, canvas):
    hint = 'a+b%2Fc é {"cmid":12}'
    started = login(client, canvas, lti_message_hint=hint)
    assert started.auth["lti_message_hint"] == hint


def test_state_and_nonce_are_fresh_and_long(client, canvas):
    first, second = login(client, canvas), login(client, canvas)
    assert first.state != second.state and first.nonce != second.nonce
    for value in (first.state, first.nonce):
        assert len(value) >= 43  # 32 random bytes, base64url: 256 bits


def test_state_cookie_attributes(client, canvas):
    started = login(client, canvas)
    cookie = started.response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-lti_state_")  # base URL is https
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/",
                      "Max-Age=600"):
        assert attribute in cookie
    assert "Domain" not in cookie
    assert f"={started.state};" in cookie


def test_login_with_a_query_string_in_the_auth_url(client, app, jwks_server):
    from lti_tool.db import session_scope
    from lti_tool.launch.registrations import add_platform

    with session_scope(app.config["SETTINGS"].database_url) as session:
        add_platform(session, issuer="https://q.example", client_id="q",
                     auth_login_url="https://q.example/auth?tenant=1",
                     auth_token_url="https://q.example/token", jwks_url=jwks_server.url,
                     deployment_ids=["1"])
    response = client.post("/lti/login", data={
        "iss": "https://q.example", "login_hint": "u", "client_id": "q",
        "target_link_uri": "https://tool.test/lti/launch"})
    assert response.status_code == 302
    onward = client.get(response.headers["Location"])
    assert onward.headers["Location"].startswith("https://q.example/auth?tenant=1&scope=openid")


BAD_LOGINS = [
    ("missing-iss", {"iss": None}, "LOGIN_MISSING_ISS"),
    ("unknown-iss", {"iss": "https://unknown.example/<script>", "client_id": None},
     "UNKNOWN_ISSUER"),
    ("unknown-iss-and-client", {"iss": "https://unknown.example"}, "UNKNOWN_ISSUER"),
    ("missing-login-hint", {"login_hint": None}, "LOGIN_MISSING_LOGIN_HINT"),
    ("missing-target", {"target_link_uri": None}, "LOGIN_MISSING_TARGET_LINK_URI"),
    ("foreign-target", {"target_link_uri": "https://evil.example/x"}, "INVALID_TARGET_LINK_URI"),
    ("javascript-target", {"target_link_uri": "javascript:alert(1)"}, "INVALID_TARGET_LINK_URI"),
    ("http-downgrade-target", {"target_link_uri": "http://tool.test/lti/launch"},
     "INVALID_TARGET_LINK_URI"),
    ("protocol-relative-target", {"target_link_uri": "//evil.example/lti/launch"},
     "INVALID_TARGET_LINK_URI"),
    ("other-path-on-tool", {"target_link_uri": "https://tool.test/somewhere-else"},
     "INVALID_TARGET_LINK_URI"),
    ("lookalike-host", {"target_link_uri": "https://tool.test.evil.example/lti/launch"},
     "INVALID_TARGET_LINK_URI"),
    ("unknown-client-id", {"client_id": "nope"}, "UNKNOWN_CLIENT_ID"),
]


@pytest.mark.parametrize("case,overrides,code", BAD_LOGINS, ids=[c[0] for c in BAD_LOGINS])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_logins_are_refused(client, canvas, database_url, case, overrides, code, method):
    params = canvas.login_params(**overrides)
    if method == "GET":
        response = client.get("/lti/login", query_string=params)
    else:
        response = client.post("/lti/login", data=params)
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body[:500]
    assert error_code(response) == code
    assert "Location" not in response.headers
    assert _state_rows(database_url) == 0
    assert "<script>" not in body


def test_unknown_issuer_page_tells_the_administrator_what_to_do(client, canvas):
    response = client.post("/lti/login", data=canvas.login_params(
        iss="https://new.example", client_id="abc"))
    body = response.get_data(as_text=True)
    assert "https://new.example" in body and "abc" in body
    assert "lti-tool platform add" in body


def test_ambiguous_issuer_without_client_id(client, canvas, app):
    from lti_tool.db import session_scope
    from lti_tool.launch.registrations import add_platform

    with session_scope(app.config["SETTINGS"].database_url) as session:
        add_platform(session, **{**canvas.registration(), "client_id": "10000000000099"})
    response = client.post("/lti/login", data=canvas.login_params(client_id=None))
    assert response.status_code == 400
    assert error_code(response) == "AMBIGUOUS_REGISTRATION"
    # With client_id the second school's registration is chosen.
    started = login(client, canvas, client_id="10000000000099")
    assert started.auth["client_id"] == "10000000000099"


def test_login_keeps_parameters_for_the_new_window_fallback(client, moodle, database_url):
    login(client, moodle)
    with get_engine(database_url).connect() as conn:
        params = conn.execute(sa.text("SELECT login_params FROM login_state")).scalar_one()
    params = json.loads(params) if isinstance(params, str) else params
    assert params["iss"] == moodle.flavor.issuer
    assert params["lti_deployment_id"] == "3"
