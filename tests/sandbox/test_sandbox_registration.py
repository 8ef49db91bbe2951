"""The sandbox's side of LTI Dynamic Registration (platforms.md A7, B6): its OpenID
configuration, the strict checks of its registration endpoint, the tool it creates,
and the administrator's page that starts a registration."""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from lti_tool.sandbox import registration as dr
from lti_tool.sandbox import registration_args, storage

TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS = "https://canvas.instructure.com/lti/"
SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
]


def body_for(sb: Any, **changes: Any) -> dict[str, Any]:
    """A registration as a tool sends it (LTI DR §3.6)."""
    tool = sb.tool.url
    config: dict[str, Any] = {
        "domain": urlsplit(tool).netloc,
        "target_link_uri": f"{tool}/lti/launch",
        "claims": ["sub", "iss", "name", "email"],
        "messages": [
            {"type": "LtiDeepLinkingRequest", "target_link_uri": f"{tool}/lti/launch",
             "label": "Add", "placements": ["assignment_selection", "link_selection"]},
            {"type": "LtiResourceLinkRequest", "target_link_uri": f"{tool}/lti/launch",
             "label": "Tool", "placements": ["course_navigation"]},
        ],
    }
    if sb.flavor == "canvas":
        config[CANVAS + "privacy_level"] = "public"
    body: dict[str, Any] = {
        "application_type": "web",
        "client_name": "Pathwise",
        "grant_types": ["client_credentials", "implicit"],
        "response_types": ["id_token"],
        "redirect_uris": [f"{tool}/lti/launch"],
        "initiate_login_uri": f"{tool}/lti/login",
        "jwks_uri": f"{tool}/.well-known/jwks.json",
        "token_endpoint_auth_method": "private_key_jwt",
        "logo_uri": f"{tool}/static/logo.svg",
        "scope": " ".join(SCOPES),
        TOOL_CONFIG: config,
    }
    for key, value in changes.items():
        target = config if key.startswith("config_") else body
        name = key[len("config_"):] if key.startswith("config_") else key
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return body


def config_path(sb: Any) -> str:
    return ("/api/lti/security/openid-configuration" if sb.flavor == "canvas"
            else "/mod/lti/openid-configuration.php")


def register_path(sb: Any) -> str:
    return "/api/lti/registrations" if sb.flavor == "canvas" else "/mod/lti/openid-registration.php"


def post(sb: Any, body: Any, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return sb.client.post(register_path(sb), json=body, headers=headers)


def registrations(sb: Any) -> list[dict[str, Any]]:
    conn = storage.connect(sb.ctx.db_path)
    try:
        return storage.rows(conn, "SELECT * FROM registrations ORDER BY id")
    finally:
        conn.close()


def refusal(response: Any) -> str:
    """Canvas: `{"errorMessage": …}`; Moodle: plain text."""
    if response.is_json:
        return response.get_json()["errorMessage"]
    return response.get_data(as_text=True)


# -- the OpenID configuration -------------------------------------------------------------------


def test_canvas_configuration_needs_the_registration_token(canvas):
    bare = canvas.client.get(config_path(canvas))
    assert bare.status_code == 401 and refusal(bare) == "Missing registration token"
    junk = canvas.client.get(config_path(canvas), headers={"Authorization": "Bearer junk"})
    assert junk.status_code == 401 and refusal(junk) == "JWT did not include expected contents"
    # Signed right but with other contents (A7: exactly those five keys).
    good = jwt.decode(dr.issue_token(canvas.ctx), options={"verify_signature": False})
    odd = jwt.encode({**good, "extra": 1}, dr._canvas_key(canvas.ctx), algorithm="HS256")
    assert canvas.client.get(config_path(canvas),
                             headers={"Authorization": f"Bearer {odd}"}).status_code == 401
    expired = dr.issue_token(canvas.ctx, lifetime=-5)
    late = canvas.client.get(config_path(canvas), headers={"Authorization": f"Bearer {expired}"})
    assert late.status_code == 401 and "expired" in refusal(late)

    token = dr.issue_token(canvas.ctx)
    ok = canvas.client.get(config_path(canvas), headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    config = ok.get_json()
    assert config["issuer"] == "https://canvas.instructure.com"
    assert config["registration_endpoint"] == canvas.base_url + "/api/lti/registrations"
    assert config["authorization_endpoint"] == canvas.base_url + "/api/lti/authorize_redirect"
    platform = config["https://purl.imsglobal.org/spec/lti-platform-configuration"]
    assert platform["product_family_code"] == "canvas"
    placements = {m["type"]: m["placements"] for m in platform["messages_supported"]}
    assert "course_navigation" in placements["LtiResourceLinkRequest"]
    assert {"assignment_selection", "link_selection", "editor_button"} <= set(
        placements["LtiDeepLinkingRequest"])


def test_moodle_configuration_is_public(moodle):
    response = moodle.client.get(config_path(moodle))
    assert response.status_code == 200
    config = response.get_json()
    assert config["issuer"] == moodle.base_url
    assert config["registration_endpoint"] == moodle.base_url + "/mod/lti/openid-registration.php"
    assert config["token_endpoint"] == moodle.base_url + "/mod/lti/token.php"
    assert "https://purl.imsglobal.org/spec/lti-bo/scope/basicoutcome" in config["scopes_supported"]
    platform = config["https://purl.imsglobal.org/spec/lti-platform-configuration"]
    assert platform["product_family_code"] == "moodle"


def test_self_hosted_canvas_issuer_is_its_own_url(tmp_path, fake_tool, platform_key_dir):
    from tests.sandbox.conftest import make_sandbox

    sb = make_sandbox("canvas", tmp_path, fake_tool, platform_key_dir, issuer="self")
    token = dr.issue_token(sb.ctx)
    config = sb.client.get(config_path(sb), headers={"Authorization": f"Bearer {token}"})
    assert config.get_json()["issuer"] == sb.base_url == sb.ctx.issuer
    assert "notice-error" not in _text(sb.client.get("/sandbox/register"))


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


# -- registering ---------------------------------------------------------------------------------


def test_canvas_registration_creates_the_tool_without_saying_its_deployment(canvas):
    token = dr.issue_token(canvas.ctx)
    before = registrations(canvas)
    response = post(canvas, body_for(canvas), token)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["client_id"].isdigit()
    assert "deployment_id" not in answer[TOOL_CONFIG]
    assert answer[TOOL_CONFIG][CANVAS + "registration_config_url"].startswith(canvas.base_url)
    assert answer["redirect_uris"] == [canvas.tool.url + "/lti/launch"]
    new = registrations(canvas)[len(before):]
    assert len(new) == 1
    reg = new[0]
    assert reg["client_id"] == answer["client_id"]
    assert reg["deployment_id"].startswith(f"{reg['id']}:") and len(reg["deployment_id"]) > 40
    assert json.loads(reg["scopes"]) == SCOPES
    assert reg["login_url"] == canvas.tool.url + "/lti/login"
    conn = storage.connect(canvas.ctx.db_path)
    try:
        [tool] = dr.dynamic_tools(conn)
    finally:
        conn.close()
    assert set(tool["placements"]) == {"assignment_selection", "link_selection",
                                      "course_navigation"}
    # Single use.
    again = post(canvas, body_for(canvas), token)
    assert again.status_code == 401 and "already" in refusal(again)
    assert len(registrations(canvas)) == len(before) + 1


def test_moodle_registration_answers_its_deployment_and_adds_an_activity(moodle):
    token = dr.issue_token(moodle.ctx)
    client_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    response = post(moodle, body_for(moodle), token)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    reg = registrations(moodle)[-1]
    assert answer["client_id"] == client_id == reg["client_id"]
    assert answer[TOOL_CONFIG]["deployment_id"] == str(reg["id"]) == reg["deployment_id"]
    assert answer[TOOL_CONFIG]["messages"] == [
        {"type": "LtiDeepLinkingRequest", "target_link_uri": moodle.tool.url + "/lti/launch"}]
    conn = storage.connect(moodle.ctx.db_path)
    try:
        activity = conn.execute("SELECT * FROM resource_links WHERE registration_id = ?",
                                (reg["id"],)).fetchone()
    finally:
        conn.close()
    assert activity is not None and activity["title"] == "Pathwise"
    again = post(moodle, body_for(moodle), token)
    assert again.status_code == 401 and refusal(again) == "token_already_used"


STRICT = [
    # (flavour, changes, status, message fragment)
    ("both", {"jwks_uri": None}, None, "jwks_uri"),
    ("both", {"initiate_login_uri": None}, None, "initiate_login_uri"),
    ("both", {"redirect_uris": "https://tool/lti/launch"}, None, "redirect_uris"),
    ("both", {"redirect_uris": ["not a url"]}, None, "redirect_uris"),
    ("both", {"response_types": ["code"]}, None, "response_types"),
    ("both", {"token_endpoint_auth_method": "client_secret_basic"}, None,
     "token_endpoint_auth_method"),
    ("both", {"application_type": "native"}, None, "application_type"),
    ("both", {"scope": "https://example.com/scope/everything"}, None, "scope"),
    ("both", {TOOL_CONFIG: None}, None, TOOL_CONFIG),
    ("moodle", {"config_domain": None}, 400, "missing_domain"),
    ("moodle", {"config_domain": "evil.example"}, 400, "domain_targetlinkuri_mismatch"),
    ("canvas", {"config_target_link_uri": None}, 422, "target_link_uri"),
    ("canvas", {"config_messages": [{"type": "LtiResourceLinkRequest",
                                     "placements": ["global_navigation_everywhere"]}]},
     422, "global_navigation_everywhere"),
    ("canvas", {"config_" + CANVAS + "privacy_level": "everything"}, 422, "privacy_level"),
    ("both", {"config_target_link_uri": "https://elsewhere.example/launch",
              "config_domain": "elsewhere.example"}, None, "redirect_uri"),
]


@pytest.mark.parametrize("flavor,changes,status,fragment", STRICT,
                         ids=[f"{c[0]}-{'-'.join(c[1])[:40]}" for c in STRICT])
def test_registration_is_checked_strictly(sandbox, flavor, changes, status, fragment):
    if flavor != "both" and flavor != sandbox.flavor:
        pytest.skip(f"{flavor} only")
    before = registrations(sandbox)
    response = post(sandbox, body_for(sandbox, **changes), dr.issue_token(sandbox.ctx))
    expected = status or (422 if sandbox.flavor == "canvas" else 400)
    assert response.status_code == expected, response.get_data(as_text=True)
    assert fragment in refusal(response)
    assert registrations(sandbox) == before


def test_moodle_ignores_www_in_the_domain(moodle, fake_tool):
    host = urlsplit(fake_tool.url).netloc
    response = post(moodle, body_for(moodle, config_domain="www." + host),
                    dr.issue_token(moodle.ctx))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_registration_tokens_are_required_and_checked(sandbox):
    before = registrations(sandbox)
    bare = post(sandbox, body_for(sandbox), None)
    assert bare.status_code == 401
    assert refusal(bare) == ("Missing registration token" if sandbox.flavor == "canvas"
                             else "missing_registration_token")
    expired = post(sandbox, body_for(sandbox), dr.issue_token(sandbox.ctx, lifetime=-5))
    assert expired.status_code == 401 and "expired" in refusal(expired)
    if sandbox.flavor == "moodle":
        now = int(time.time())
        update = sandbox.ctx.key.sign({"sub": "x" * 15, "scope": "reg-update", "iat": now,
                                       "exp": now + 60})
        wrong = post(sandbox, body_for(sandbox), update)
        assert wrong.status_code == 403 and refusal(wrong) == "Incorrect scope"
        forged = jwt.encode({"sub": "y" * 15, "scope": "reg", "exp": now + 60}, "k" * 32,
                            algorithm="HS256")
        assert post(sandbox, body_for(sandbox), forged).status_code == 401
    assert registrations(sandbox) == before


# -- the administrator's page ----------------------------------------------------------------


def test_admin_page_frames_the_tool_with_a_fresh_token(sandbox):
    page = sandbox.client.get("/sandbox/register")
    assert page.status_code == 200
    assert f'value="{sandbox.tool.url}/lti/register"' in _text(page)
    bad = sandbox.client.post("/sandbox/register", data={"registration_url": "javascript:x"})
    assert bad.status_code == 400
    started = sandbox.client.post("/sandbox/register",
                                  data={"registration_url": sandbox.tool.url + "/lti/register?x=1"})
    src = html.unescape(re.search(r'id="tool-frame"[^>]*src="([^"]+)"', _text(started)).group(1))
    parts = urlsplit(src)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == sandbox.tool.url + "/lti/register"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["x"] == "1"
    assert query["openid_configuration"].startswith(sandbox.base_url + config_path(sandbox))
    token = query["registration_token"]
    if sandbox.flavor == "canvas":
        assert dr.check_canvas_token(sandbox.ctx, token)["uuid"]
        # Canvas repeats the token in the configuration URL (A7).
        assert "registration_token=" in query["openid_configuration"]
        assert "notice-error" in _text(started)   # hosted issuer: a tool will refuse it
    else:
        assert dr.check_moodle_token(sandbox.ctx, token)["scope"] == "reg"
    assert "registration.js" in _text(started)


def test_a_registered_canvas_tool_gets_a_course_link_that_launches_it(canvas):
    answer = post(canvas, body_for(canvas), dr.issue_token(canvas.ctx)).get_json()
    reg = registrations(canvas)[-1]
    client = canvas.app.test_client()
    canvas.sign_in(client, canvas.teacher_id)
    course = _text(client.get(f"/courses/{canvas.course_id}"))
    assert f"/launch/nav?tool={reg['id']}" in course
    login = canvas.start_launch(canvas.teacher_id,
                                f"/courses/{canvas.course_id}/launch/nav?tool={reg['id']}")
    assert login["client_id"] == answer["client_id"]
    assert login["lti_deployment_id"] == reg["deployment_id"]
    listing = _text(canvas.client.get("/sandbox/register"))
    assert answer["client_id"] in listing
    # The seeded registration is still what `lti-tool platform add` is given.
    args = registration_args(canvas.app)
    assert args[args.index("--client-id") + 1] == canvas.client_id


def test_a_registered_moodle_tool_launches_from_its_activity(moodle):
    answer = post(moodle, body_for(moodle), dr.issue_token(moodle.ctx)).get_json()
    reg = registrations(moodle)[-1]
    conn = storage.connect(moodle.ctx.db_path)
    try:
        rl = conn.execute("SELECT id FROM resource_links WHERE registration_id = ?",
                          (reg["id"],)).fetchone()
    finally:
        conn.close()
    login = moodle.start_launch(moodle.teacher_id,
                                f"/courses/{moodle.course_id}/launch/link/{rl['id']}")
    assert login["client_id"] == answer["client_id"]
    assert login["lti_deployment_id"] == answer[TOOL_CONFIG]["deployment_id"]
