"""Security headers on every kind of response, and the CSRF checks on changes
(session token + Sec-Fetch-Site + Origin)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lti_tool import web
from lti_tool.db import get_engine
from lti_tool.web import PERMISSIONS_POLICY
from tests.support.flows import launch, login, session_token

CANVAS_ORIGINS = ("https://sso.canvaslms.com", "https://canvas.instructure.com")
MOODLE_ORIGIN = "https://moodle.example.edu"


def _csp(response) -> dict[str, list[str]]:
    policy = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *values = directive.split()
        policy[name] = values
    return policy


def _common(response) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Permissions-Policy"] == PERMISSIONS_POLICY
    assert "camera=()" in PERMISSIONS_POLICY and "payment=()" in PERMISSIONS_POLICY
    assert headers["X-Request-Id"]
    # frame-ancestors governs framing; X-Frame-Options would block the LMS iframe.
    assert "X-Frame-Options" not in headers
    assert "Cross-Origin-Opener-Policy" not in headers


def test_headers_on_html_json_redirect_and_error_responses(client, canvas):
    web._origins_cache.clear()  # registered origins are cached per process for 30 s
    redirect = client.post("/lti/login", data=canvas.login_params())
    assert redirect.status_code == 302
    _common(redirect)
    assert "Content-Security-Policy" not in redirect.headers  # framed target decides

    landed, _ = launch(client, canvas)
    assert landed.status_code == 303
    _common(landed)

    page = client.get(landed.headers["Location"])
    assert page.status_code == 200
    _common(page)
    csp = _csp(page)
    assert any(v.startswith("'nonce-") for v in csp["script-src"])
    assert "'unsafe-inline'" not in csp["script-src"] and "*" not in csp["frame-ancestors"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert MOODLE_ORIGIN not in csp["frame-ancestors"]  # only the launching LMS

    # Error pages (before any session): every registered platform may frame them.
    for error in (client.get("/no/such/page"),
                  client.post("/lti/launch", data={"id_token": "x", "state": "y"})):
        assert 400 <= error.status_code < 500
        _common(error)
        ancestors = _csp(error)["frame-ancestors"]
        assert ancestors[0] == "'self'" and "*" not in ancestors
        assert MOODLE_ORIGIN in ancestors and "https://sso.canvaslms.com" in ancestors

    # JSON and other non-HTML: nothing to run, not frameable.
    for path in ("/healthz", "/.well-known/jwks.json", "/metrics"):
        response = client.get(path)
        assert response.status_code == 200, path
        _common(response)
        csp = _csp(response)
        assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]


def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    secure = client.get("/healthz", base_url="https://tool.test")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert client.get("/nope", base_url="https://tool.test").headers[
        "Strict-Transport-Security"] == "max-age=31536000"


@pytest.fixture
def student(app, canvas):
    client = app.test_client()
    response, _ = launch(client, canvas)
    assert response.status_code == 303
    return client, session_token(response)


def _goals(database_url) -> int:
    with get_engine(database_url).connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM goal")).scalar_one()


FOREIGN = ["https://evil.example", "https://sso.canvaslms.com", "https://tool.test.evil.example",
           "http://tool.test", "https://tool.test:8443", "null", "garbage"]
# The configured public URL is https://tool.test; the test client talks to
# http://localhost, which is the origin the request itself was sent to.
OWN = [None, "https://tool.test", "https://TOOL.test:443", "http://localhost"]


def test_changes_need_the_tools_own_origin(student, database_url):
    client, token = student
    for origin in FOREIGN:
        response = client.post("/my/goals", data={"t": token, "text": "Forged"},
                               headers={"Origin": origin})
        assert response.status_code == 403, origin
        assert "came from another site" in response.get_data(as_text=True)
    assert _goals(database_url) == 0
    for n, origin in enumerate(OWN, start=1):
        headers = {"Sec-Fetch-Site": "same-origin"}
        if origin is not None:
            headers["Origin"] = origin
        response = client.post("/my/goals", data={"t": token, "text": f"Goal {n}"},
                               headers=headers)
        assert response.status_code == 303, (origin, response.get_data(as_text=True)[:300])
        assert _goals(database_url) == n


def test_the_token_is_the_csrf_token(student, database_url):
    client, token = student
    own = {"Origin": "https://tool.test", "Sec-Fetch-Site": "same-origin"}
    # The session cookie rides along, but without `t` in the form: refused.
    assert client.post("/my/goals", data={"text": "x"}, headers=own).status_code == 401
    assert client.post("/my/goals", data={"text": "x", "t": token + "x"},
                       headers=own).status_code == 401
    # `t` in the query string of a POST is not enough either.
    assert client.post(f"/my/goals?t={token}", data={"text": "x"},
                       headers=own).status_code == 401
    # Sec-Fetch-Site: cross-site is refused even with the token and our Origin.
    assert client.post("/my/goals", data={"t": token, "text": "x"},
                       headers={**own, "Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert _goals(database_url) == 0


def test_reading_pages_ignores_origin(student):
    client, token = student
    page = client.get(f"/my/goals?t={token}", headers={"Origin": "https://evil.example"})
    assert page.status_code == 200


def test_login_and_launch_accept_cross_site_posts(client, canvas):
    """The LMS posts these from its own origin, by design."""
    lms = {"Origin": "https://sso.canvaslms.com", "Sec-Fetch-Site": "cross-site"}
    started = client.post("/lti/login", data=canvas.login_params(), headers=lms)
    assert started.status_code == 302
    started = login(client, canvas)
    response = client.post("/lti/launch", headers=lms, data={
        "id_token": canvas.sign(canvas.claims(started.nonce)), "state": started.state})
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
