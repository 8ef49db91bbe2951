"""What an LMS administrator enters to install Pathwise (pure): the Canvas
developer-key JSON and the values for a manual Canvas or Moodle set-up."""

from __future__ import annotations

from urllib.parse import urlsplit

AGS_SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
)
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCOPES = (*AGS_SCOPES, NRPS_SCOPE)
TITLE = "Pathwise"
DESCRIPTION = ("Personalized, mastery-based playlists for students, a standards-based "
               "mastery gradebook for teachers, and mastery scores sent to the LMS gradebook.")


def urls(base_url: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {
        "base": base,
        "login": f"{base}/lti/login",
        "launch": f"{base}/lti/launch",
        "jwks": f"{base}/.well-known/jwks.json",
        "register": f"{base}/lti/register",
        "icon": f"{base}/static/pathwise-icon.svg",
        "canvas_json": f"{base}/lti/config/canvas.json",
    }


def canvas_config(base_url: str) -> dict:
    """The developer-key JSON (platforms.md A6). Every placement launches
    /lti/launch: the tool checks target_link_uri is exactly its launch URL."""
    u = urls(base_url)
    domain = urlsplit(u["base"]).netloc
    placement = {"icon_url": u["icon"], "target_link_uri": u["launch"]}
    return {
        "title": TITLE,
        "description": DESCRIPTION,
        "oidc_initiation_url": u["login"],
        "target_link_uri": u["launch"],
        "public_jwk_url": u["jwks"],
        "scopes": list(SCOPES),
        "extensions": [{
            "domain": domain,
            "tool_id": "pathwise",
            "platform": "canvas.instructure.com",
            "privacy_level": "public",
            "settings": {
                "text": TITLE,
                "icon_url": u["icon"],
                "placements": [
                    {**placement, "placement": "course_navigation",
                     "message_type": "LtiResourceLinkRequest", "text": "Pathwise",
                     "default": "enabled", "visibility": "members"},
                    {**placement, "placement": "assignment_selection",
                     "message_type": "LtiDeepLinkingRequest",
                     "text": "Pathwise playlist (mastery graded)",
                     "selection_width": 900, "selection_height": 700},
                    {**placement, "placement": "link_selection",
                     "message_type": "LtiDeepLinkingRequest", "text": "Pathwise playlist",
                     "selection_width": 900, "selection_height": 700},
                    {**placement, "placement": "editor_button",
                     "message_type": "LtiDeepLinkingRequest", "text": "Pathwise playlist",
                     "selection_width": 900, "selection_height": 700},
                ],
            },
        }],
        "custom_fields": {},
    }


# Canvas rejects a developer key JSON without these (platforms.md A6).
CANVAS_REQUIRED = ("title", "description", "oidc_initiation_url", "target_link_uri")


def check_canvas_config(config: dict) -> list[str]:
    """Problems Canvas would refuse the JSON for (empty list: fine)."""
    problems = [f"missing {k}" for k in CANVAS_REQUIRED if not config.get(k)]
    if not (config.get("public_jwk") or config.get("public_jwk_url")):
        problems.append("missing public_jwk or public_jwk_url")
    for ext in config.get("extensions", []):
        for p in ext.get("settings", {}).get("placements", []):
            if p.get("message_type") not in ("LtiResourceLinkRequest", "LtiDeepLinkingRequest"):
                problems.append(f"placement {p.get('placement')}: bad message_type")
            if not p.get("placement"):
                problems.append("a placement without a name")
    for url_key in ("oidc_initiation_url", "target_link_uri", "public_jwk_url"):
        value = config.get(url_key, "")
        if value and urlsplit(value).scheme not in ("https", "http"):
            problems.append(f"{url_key} is not a URL")
    return problems


def moodle_values(base_url: str) -> list[tuple[str, str]]:
    """Moodle: Site administration → Plugins → External tool → Manage tools →
    configure a tool manually (field label, value)."""
    u = urls(base_url)
    return [
        ("Tool name", TITLE),
        ("Tool URL", u["launch"]),
        ("Tool description", DESCRIPTION),
        ("LTI version", "LTI 1.3"),
        ("Public key type", "Keyset URL"),
        ("Public keyset", u["jwks"]),
        ("Initiate login URL", u["login"]),
        ("Redirection URI(s)", u["launch"]),
        ("Custom parameters", "(none)"),
        ("Tool configuration usage", "Show in activity chooser and as a preconfigured tool"),
        ("Default launch container", "Embed, without blocks"),
        ("Supports Deep Linking (Content-Item Message)", "Yes"),
        ("Content Selection URL", u["launch"]),
        ("IMS LTI Assignment and Grade Services", "Use this service for grade sync and "
                                                  "column management"),
        ("IMS LTI Names and Role Provisioning", "Use this service to retrieve members' "
                                                "information as per privacy settings"),
        ("Share launcher's name with tool", "Always"),
        ("Share launcher's email with tool", "Always"),
        ("Accept grades from the tool", "Always"),
        ("Dynamic registration URL (instead of all of the above)", u["register"]),
    ]


def canvas_values(base_url: str) -> list[tuple[str, str]]:
    """Canvas: Admin → Developer Keys → + LTI Key → Method: Enter URL (or paste)."""
    u = urls(base_url)
    return [
        ("Key Name", TITLE),
        ("Redirect URIs", u["launch"]),
        ("Method", "Enter URL"),
        ("JSON URL", u["canvas_json"]),
        ("Then", "turn the key ON, copy its Client ID, and add the app to the account "
                 "(Settings → Apps → + App → By Client ID)"),
        ("Then tell Pathwise", "lti-tool platform add --issuer https://canvas.instructure.com "
                               "--client-id <Client ID> --auth-login-url "
                               "https://sso.canvaslms.com/api/lti/authorize_redirect "
                               "--auth-token-url https://sso.canvaslms.com/login/oauth2/token "
                               "--jwks-url https://sso.canvaslms.com/api/lti/security/jwks "
                               "--deployment-id <Deployment ID>"),
        ("Dynamic registration URL (instead of all of the above)", u["register"]),
    ]
