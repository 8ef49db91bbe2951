"""What an LMS administrator pastes or types to install Pathwise."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from lti_tool.launch import setup

# The fields Canvas requires of a developer-key JSON (platforms.md A6), written
# out here rather than taken from the tool.
CANVAS_REQUIRED = ("title", "description", "oidc_initiation_url", "target_link_uri")
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


def test_canvas_json_has_every_field_canvas_requires(client):
    response = client.get("/lti/config/canvas.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    config = json.loads(response.data)
    for key in CANVAS_REQUIRED:
        assert isinstance(config[key], str) and config[key], key
    assert config["public_jwk_url"].endswith("/.well-known/jwks.json")
    base = client.application.extensions["pathwise"].settings.base_url.rstrip("/")
    assert config["oidc_initiation_url"] == base + "/lti/login"
    assert config["target_link_uri"] == base + "/lti/launch"
    assert {AGS + "lineitem", AGS + "score", AGS + "result.readonly", NRPS} <= \
        set(config["scopes"])
    (ext,) = config["extensions"]
    assert ext["platform"] == "canvas.instructure.com"
    assert ext["domain"] == urlsplit(base).netloc
    placements = {p["placement"]: p for p in ext["settings"]["placements"]}
    assert placements["course_navigation"]["message_type"] == "LtiResourceLinkRequest"
    for name in ("assignment_selection", "link_selection", "editor_button"):
        assert placements[name]["message_type"] == "LtiDeepLinkingRequest"
    for p in placements.values():
        # The tool accepts a launch only at its own launch URL.
        assert p["target_link_uri"] == base + "/lti/launch"
        assert p["icon_url"].startswith(base + "/static/")
    assert client.get(urlsplit(placements["course_navigation"]["icon_url"]).path) \
        .status_code == 200
    assert setup.check_canvas_config(config) == []


def test_check_canvas_config_names_what_is_missing():
    config = setup.canvas_config("https://tool.example")
    del config["description"]
    config.pop("public_jwk_url")
    config["extensions"][0]["settings"]["placements"][0]["message_type"] = "Nope"
    problems = setup.check_canvas_config(config)
    assert "missing description" in problems
    assert "missing public_jwk or public_jwk_url" in problems
    assert any("bad message_type" in p for p in problems)


def test_setup_page_lists_values_for_canvas_and_moodle(client):
    response = client.get("/lti/setup")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "/lti/config/canvas.json" in body and "/lti/register" in body
    assert "Initiate login URL" in body and "Public keyset" in body
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]
