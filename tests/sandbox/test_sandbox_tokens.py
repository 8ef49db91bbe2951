"""Token endpoint (client_credentials + RFC 7523 assertion) strictness."""

from __future__ import annotations

import time

import jwt

SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
UNREGISTERED = "https://canvas.instructure.com/lti/public_jwk/scope/update"


def test_valid_assertion_gets_a_bearer_token(sandbox):
    resp = sandbox.request_token(f"{SCORE} {NRPS}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"].split() == [SCORE, NRPS]
    assert resp.headers["Cache-Control"] == "no-store"
    if sandbox.flavor == "canvas":
        # Canvas access tokens are JWTs signed by the platform, aud = the token URL (A8).
        claims = sandbox.ctx.key.verify(body["access_token"], audience=sandbox.token_url)
        assert claims["sub"] == sandbox.client_id
    else:
        assert len(body["access_token"]) == 32  # opaque md5-like token (B7)


def test_wrong_audience_is_refused(sandbox):
    assertion = sandbox.tool.sign(sandbox.assertion(aud="https://elsewhere.example/token"))
    resp = sandbox.request_token(SCORE, assertion=assertion)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_client"
    assert "aud" in resp.get_json()["error_description"]


def test_reused_jti_is_refused(sandbox):
    claims = sandbox.assertion(jti="the-same-jti")
    first = sandbox.request_token(SCORE, assertion=sandbox.tool.sign(claims))
    assert first.status_code == 200
    second = sandbox.request_token(
        SCORE, assertion=sandbox.tool.sign({**claims, "iat": claims["iat"] + 1})
    )
    assert second.status_code == 400
    assert "jti" in second.get_json()["error_description"]


def test_expired_assertion_is_refused(sandbox):
    now = int(time.time())
    assertion = sandbox.tool.sign(sandbox.assertion(iat=now - 200, exp=now - 100))
    resp = sandbox.request_token(SCORE, assertion=assertion)
    assert resp.status_code == 400
    assert "expired" in resp.get_json()["error_description"]


def test_missing_jti_and_overlong_lifetime_are_refused(sandbox):
    no_jti = sandbox.request_token(SCORE, assertion=sandbox.tool.sign(sandbox.assertion(jti=None)))
    assert no_jti.status_code == 400
    now = int(time.time())
    too_long = sandbox.request_token(
        SCORE, assertion=sandbox.tool.sign(sandbox.assertion(iat=now, exp=now + 3600))
    )
    assert too_long.status_code == 400
    assert "5 minutes" in too_long.get_json()["error_description"]


def test_iss_must_equal_sub(sandbox):
    resp = sandbox.request_token(
        SCORE, assertion=sandbox.tool.sign(sandbox.assertion(iss="someone-else"))
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_client"


def test_forged_signature_and_algorithm_confusion_are_refused(sandbox, other_key):
    forged = sandbox.tool.sign(sandbox.assertion(), key=other_key)  # right kid, wrong key
    assert sandbox.request_token(SCORE, assertion=forged).status_code == 400
    hs = jwt.encode(
        sandbox.assertion(), "s" * 32, algorithm="HS256", headers={"kid": sandbox.tool.kid}
    )
    resp = sandbox.request_token(SCORE, assertion=hs)
    assert resp.status_code == 400
    assert "RS256" in resp.get_json()["error_description"]
    unknown_kid = sandbox.tool.sign(sandbox.assertion(), kid="not-published")
    assert sandbox.request_token(SCORE, assertion=unknown_kid).status_code == 400


def test_unknown_client_is_refused(sandbox):
    claims = sandbox.assertion(iss="nobody", sub="nobody")
    resp = sandbox.request_token(SCORE, assertion=sandbox.tool.sign(claims))
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_client"


def test_canvas_refuses_any_unregistered_scope(canvas):
    resp = canvas.request_token(f"{SCORE} {UNREGISTERED}")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_scope"


def test_moodle_grants_the_intersection_and_fails_only_when_empty(moodle):
    resp = moodle.request_token(f"{SCORE} {UNREGISTERED}")
    assert resp.status_code == 200
    assert resp.get_json()["scope"] == SCORE
    empty = moodle.request_token(UNREGISTERED)
    assert empty.status_code == 400
    assert empty.get_json()["error"] == "invalid_scope"


def test_moodle_requires_form_urlencoded(moodle):
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": moodle.tool.sign(moodle.assertion()),
        "scope": SCORE,
    }
    resp = moodle.client.post("/mod/lti/token.php", json=data)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"


def test_wrong_grant_type(sandbox):
    resp = sandbox.request_token(SCORE, grant_type="password")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unsupported_grant_type"
