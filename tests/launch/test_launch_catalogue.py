"""The launch catalogue: every bad launch is refused with 4xx, a page naming
the problem, and nothing written; the certification's valid launches pass.
Real RS256 tokens, signed by a test LMS whose JWKS is served over HTTP."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.support.flows import (
    error_code,
    launch,
    login,
    post_launch,
    record_counts,
)
from tests.support.platform import LIS, LTI, rsa_key

NOW = lambda: int(time.time())  # noqa: E731


def _drop(*keys):
    def mutate(claims):
        for key in keys:
            claims.pop(key, None)
    return mutate


def _set(**values):
    def mutate(claims):
        for key, value in values.items():
            claims[key.replace("__", "/")] = value
    return mutate


def _claim(name, value):
    def mutate(claims):
        claims[name] = value
    return mutate


def _resource_link_without_id(claims):
    claims[LTI + "resource_link"] = {"title": "No id"}


def _timestamps(iat_offset, exp_offset):
    def mutate(claims):
        claims["iat"] = NOW() + iat_offset
        claims["exp"] = NOW() + exp_offset
    return mutate


BAD_CLAIMS = [
    # (case id, mutation, status, code)
    ("cert-B3-wrong-version", _claim(LTI + "version", "11.3"), 422, "LTI_VERSION_UNSUPPORTED"),
    ("wrong-version-1.2", _claim(LTI + "version", "1.2.0"), 422, "LTI_VERSION_UNSUPPORTED"),
    ("cert-B4-no-version", _drop(LTI + "version"), 422, "LTI_VERSION_MISSING"),
    ("cert-B6-missing-claims", _drop("aud", "iss", "sub", LTI + "deployment_id", LTI + "roles"),
     401, "JWT_ISS_MISMATCH"),
    ("cert-B7-timestamps", lambda c: c.update(iat=11111, exp=22222), 401, "JWT_EXPIRED"),
    ("cert-B8-no-message-type", _drop(LTI + "message_type"), 422, "LTI_MESSAGE_TYPE_MISSING"),
    ("unsupported-message-type", _claim(LTI + "message_type", "LtiSubmissionReviewRequest"),
     422, "LTI_MESSAGE_TYPE_UNSUPPORTED"),
    ("cert-B9-no-roles", _drop(LTI + "roles"), 422, "LTI_ROLES_CLAIM_MISSING"),
    ("roles-not-a-list", _claim(LTI + "roles", LIS + "membership#Learner"), 422,
     "LTI_CLAIM_INVALID"),
    ("cert-B10-no-deployment", _drop(LTI + "deployment_id"), 422, "LTI_DEPLOYMENT_ID_MISSING"),
    ("unknown-deployment", _claim(LTI + "deployment_id", "999:unknown"), 403,
     "UNKNOWN_DEPLOYMENT"),
    ("cert-B11-no-resource-link", _drop(LTI + "resource_link"), 422,
     "LTI_RESOURCE_LINK_ID_MISSING"),
    ("resource-link-without-id", _resource_link_without_id, 422,
     "LTI_RESOURCE_LINK_ID_MISSING"),
    ("cert-B12-no-sub", _drop("sub"), 422, "LTI_SUB_MISSING"),
    ("sub-too-long", _claim("sub", "x" * 256), 422, "LTI_CLAIM_INVALID"),
    ("sub-not-a-string", _claim("sub", 12345), 422, "LTI_CLAIM_INVALID"),
    ("wrong-iss", _claim("iss", "https://evil.example"), 401, "JWT_ISS_MISMATCH"),
    ("wrong-aud", _claim("aud", "someone-else"), 401, "JWT_AUD_MISMATCH"),
    ("aud-array-without-azp", lambda c: (c.update(aud=[c["aud"], "other"]), c.pop("azp", None)),
     401, "JWT_AZP_REQUIRED"),
    ("aud-array-wrong-azp", lambda c: c.update(aud=[c["aud"], "other"], azp="other"), 401,
     "JWT_AZP_MISMATCH"),
    ("azp-not-us", _claim("azp", "other"), 401, "JWT_AZP_MISMATCH"),
    ("expired-beyond-leeway", _timestamps(-300, -120), 401, "JWT_EXPIRED"),
    ("iat-in-future", _timestamps(300, 900), 401, "JWT_IAT_IN_FUTURE"),
    ("iat-too-old", _timestamps(-600 - 60, 300), 401, "JWT_TOO_OLD"),
    ("no-exp", _drop("exp"), 401, "JWT_EXP_MISSING"),
    ("no-nonce", _drop("nonce"), 401, "NONCE_MISSING"),
    ("wrong-nonce", _claim("nonce", "not-the-nonce-we-issued"), 401, "NONCE_MISMATCH"),
    ("foreign-target-link-uri", _claim(LTI + "target_link_uri", "https://evil.example/launch"),
     422, "INVALID_TARGET_LINK_URI"),
    ("deep-link-without-settings", _claim(LTI + "message_type", "LtiDeepLinkingRequest"), 422,
     "DL_SETTINGS_MISSING"),
]


def _assert_refused(response, status, code, before, database_url):
    body = response.get_data(as_text=True)
    assert response.status_code == status, body[:800]
    assert error_code(response) == code, body[:800]
    assert "We couldn&#39;t start this activity" in body or "couldn't start" in body
    assert record_counts(database_url) == before
    assert "pathwise_session" not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("case,mutate,status,code", BAD_CLAIMS, ids=[c[0] for c in BAD_CLAIMS])
def test_bad_claims_are_refused(client, lms, database_url, case, mutate, status, code):
    before = record_counts(database_url)
    started = login(client, lms)
    claims = lms.claims(started.nonce)
    mutate(claims)
    response = post_launch(client, lms.sign(claims), started.state)
    _assert_refused(response, status, code, before, database_url)


def _hs256_with_public_key(platform, claims):
    """Key confusion: HMAC keyed with the platform's public key bytes."""
    import base64
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization

    pem = platform.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": platform.kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(sig)}"


def _alg_none(platform, claims):
    import base64
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "none", "kid": platform.kid}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def _tampered(platform, claims):
    token = platform.sign(claims)
    header, body, sig = token.split(".")
    forged = dict(claims, sub="someone-else")
    import base64
    import json

    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{sig}"


def _flipped_signature(platform, claims):
    token = platform.sign(claims)
    head, sig = token.rsplit(".", 1)
    flipped = ("A" if sig[10] != "A" else "B")
    return f"{head}.{sig[:10]}{flipped}{sig[11:]}"


BAD_TOKENS = [
    ("cert-B1-no-kid", lambda p, c: p.sign(c, kid=None), 401, "JWT_KID_MISSING"),
    ("cert-B2-unknown-kid", lambda p, c: p.sign(c, kid="imstester_66067"), 401,
     "JWT_KID_UNKNOWN"),
    ("wrong-key", lambda p, c: p.sign(c, key=_other_key(p)), 401, "JWT_SIGNATURE_INVALID"),
    ("alg-none", _alg_none, 401, "JWT_ALG_NOT_ALLOWED"),
    ("hs256-with-public-key", _hs256_with_public_key, 401, "JWT_ALG_NOT_ALLOWED"),
    ("rs512", lambda p, c: p.sign(c, alg="RS512"), 401, "JWT_ALG_NOT_ALLOWED"),
    ("tampered-payload", _tampered, 401, "JWT_SIGNATURE_INVALID"),
    ("flipped-signature", _flipped_signature, 401, "JWT_SIGNATURE_INVALID"),
    ("jku-header-ignored", lambda p, c: p.sign(c, key=_other_key(p), headers={
        "jku": "https://attacker.example/jwks"}), 401, "JWT_SIGNATURE_INVALID"),
    ("garbage-token", lambda p, c: "not-a-jwt", 400, "INVALID_JWT"),
    ("two-segments", lambda p, c: "abc.def", 400, "INVALID_JWT"),
    ("undecodable", lambda p, c: "@@@.@@@.@@@", 400, "INVALID_JWT"),
    ("signed-non-lti-body", lambda p, c: p.sign({"name": "badltilaunch"}), 401,
     "JWT_ISS_MISMATCH"),
]


def _other_key(platform):
    while True:
        key = rsa_key()
        if key is not platform.key:
            return key


@pytest.mark.parametrize("case,make,status,code", BAD_TOKENS, ids=[c[0] for c in BAD_TOKENS])
def test_bad_tokens_are_refused(client, lms, database_url, case, make, status, code):
    before = record_counts(database_url)
    started = login(client, lms)
    token = make(lms, lms.claims(started.nonce))
    response = post_launch(client, token, started.state)
    _assert_refused(response, status, code, before, database_url)


def test_wrong_key_really_differs(canvas):
    assert _other_key(canvas) is not canvas.key


@pytest.mark.parametrize("data,status,code", [
    ({}, 400, "MISSING_ID_TOKEN"),
    ({"state": "x"}, 400, "MISSING_ID_TOKEN"),
    ({"id_token": "a.b.c"}, 400, "MISSING_STATE"),
], ids=["empty-post", "no-id-token", "no-state"])
def test_malformed_posts(client, platforms, database_url, data, status, code):
    before = record_counts(database_url)
    response = client.post("/lti/launch", data=data)
    _assert_refused(response, status, code, before, database_url)


def test_unknown_state(client, canvas, database_url):
    before = record_counts(database_url)
    started = login(client, canvas)
    token = canvas.sign(canvas.claims(started.nonce))
    response = post_launch(client, token, "some-state-we-never-issued")
    _assert_refused(response, 401, "STATE_NOT_FOUND", before, database_url)


def test_replay_is_refused_even_with_the_original_cookie(client, lms, database_url):
    started = login(client, lms)
    token = lms.sign(lms.claims(started.nonce))
    first = post_launch(client, token, started.state)
    assert first.status_code == 303
    before = record_counts(database_url)
    again = post_launch(client, token, started.state)
    _assert_refused(again, 401, "STATE_ALREADY_USED", before, database_url)


def test_old_token_with_a_fresh_login_is_refused(client, lms, database_url):
    first_login = login(client, lms)
    token = lms.sign(lms.claims(first_login.nonce))
    assert post_launch(client, token, first_login.state).status_code == 303
    before = record_counts(database_url)
    second_login = login(client, lms)
    replay = post_launch(client, token, second_login.state)
    _assert_refused(replay, 401, "NONCE_MISMATCH", before, database_url)


def test_state_of_another_browser_is_refused(app, lms, database_url):
    """Login CSRF: the attacker's valid state posted from the victim's browser."""
    attacker, victim = app.test_client(), app.test_client()
    started = login(attacker, lms)
    token = lms.sign(lms.claims(started.nonce))
    before = record_counts(database_url)
    response = post_launch(victim, token, started.state)
    _assert_refused(response, 401, "STATE_NOT_BOUND", before, database_url)
    body = response.get_data(as_text=True)
    assert "Continue in a new window" in body
    assert "/lti/login?" in body and "pathwise_new_window=1" in body


def test_deployment_must_match_the_login(client, canvas, database_url, app):
    from lti_tool.db import session_scope
    from lti_tool.launch.registrations import add_platform

    with session_scope(database_url) as session:
        add_platform(session, **{**canvas.registration(), "deployment_ids": ["88:other"]})
    before = record_counts(database_url)
    started = login(client, canvas)  # login names the first deployment
    claims = canvas.claims(started.nonce, **{LTI + "deployment_id": "88:other"})
    response = post_launch(client, canvas.sign(claims), started.state)
    _assert_refused(response, 401, "DEPLOYMENT_MISMATCH", before, database_url)


def test_platform_auth_error_consumes_state(client, canvas, database_url):
    before = record_counts(database_url)
    started = login(client, canvas)
    response = client.post("/lti/launch", data={"error": "login_required",
                                                "error_description": "No session",
                                                "state": started.state})
    _assert_refused(response, 401, "PLATFORM_AUTH_ERROR", before, database_url)
    token = canvas.sign(canvas.claims(started.nonce))
    later = post_launch(client, token, started.state)
    _assert_refused(later, 401, "STATE_ALREADY_USED", before, database_url)


def test_oversized_id_token_is_refused(client, canvas, database_url):
    before = record_counts(database_url)
    started = login(client, canvas)
    response = post_launch(client, "a" * 70_000 + ".b.c", started.state)
    assert response.status_code == 413
    assert record_counts(database_url) == before


def test_clock_skew_within_leeway_is_accepted(client, lms):
    response, _ = launch(client, lms, iat=NOW() - 100, exp=NOW() - 30)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


def test_aud_array_with_azp_is_accepted(client, lms):
    response, _ = launch(client, lms, aud=[lms.flavor.client_id, "other"],
                         azp=lms.flavor.client_id)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


def test_unknown_claims_are_ignored(client, lms):
    response, _ = launch(client, lms, **{"https://example.com/x": {"anything": [1, 2]}})
    assert response.status_code == 303


def test_signature_is_really_checked_with_the_registered_key(canvas):
    """Guard for the catalogue: the test LMS signs with the key it publishes."""
    token = canvas.sign(canvas.claims("n"))
    public = canvas.key.public_key()
    assert jwt.decode(token, public, algorithms=["RS256"], audience=canvas.flavor.client_id)
