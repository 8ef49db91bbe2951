"""LTI Dynamic Registration 1.0, platform side (Canvas A7, Moodle B6).

* The sandbox administrator starts it at `/sandbox/register` by entering the tool's
  registration URL; the page frames `<tool url>?openid_configuration=…&registration_token=…`
  and listens for the tool's `org.imsglobal.lti.close` message.
* The OpenID configuration: Canvas `/api/lti/security/openid-configuration` (the
  registration token is required, as a Bearer); Moodle `/mod/lti/openid-configuration.php`
  (public).
* The registration endpoint: Canvas `POST /api/lti/registrations`, Moodle
  `POST /mod/lti/openid-registration.php`, both with the token as a Bearer. The tool's JSON
  is checked strictly (required keys, redirect URIs, Moodle's domain rule, scopes and
  placements the platform offers); the new tool registration is created in this sandbox:
  Canvas installs it in the demo course (deployment `<id>:<course opaque id>`) but does not
  say so in the answer; Moodle answers with its `deployment_id` and adds an activity for it.

Tokens: Canvas signs `{uuid, initiated_at, user_id, root_account_global_id, exp}` (HS256 with
a key of the sandbox's own); Moodle signs `{sub: <new client_id>, scope: "reg", iat, exp}`
with the platform key. Both live one hour and are single use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from flask import Blueprint, jsonify, render_template, request, url_for

from . import storage
from .app import SandboxContext, ctx, db
from .claims import CANVAS_DL_PLACEMENTS, DEEP_LINKING_REQUEST, RESOURCE_LINK_REQUEST
from .flavors import AGS_SCOPES, SCOPE_NRPS, Flavor
from .tokens import remember_jti

TOKEN_LIFETIME = 3600
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
CANVAS = "https://canvas.instructure.com/lti/"
CANVAS_TOKEN_KEYS = {"uuid", "initiated_at", "user_id", "root_account_global_id", "exp"}

CANVAS_SCOPES = [
    *AGS_SCOPES,
    SCOPE_NRPS,
    "https://purl.imsglobal.org/spec/lti/scope/noticehandlers",
    "https://canvas.instructure.com/lti/public_jwk/scope/update",
    "https://canvas.instructure.com/lti/account_lookup/scope/show",
    "https://canvas.instructure.com/lti-ags/progress/scope/show",
]
MOODLE_SCOPES = [
    "https://purl.imsglobal.org/spec/lti-bo/scope/basicoutcome",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    SCOPE_NRPS,
    "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting",
    "openid",
]
CANVAS_RL_PLACEMENTS = ["account_navigation", "course_navigation", "user_navigation",
                        "assignment_menu", "module_menu"]
CANVAS_DL_ALL = [*CANVAS_DL_PLACEMENTS, "editor_button", "homework_submission",
                 "migration_selection"]
PRIVACY_LEVELS = {"public", "name_only", "email_only", "anonymous"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS dynamic_registrations (
    registration_id INTEGER PRIMARY KEY REFERENCES registrations(id),
    body TEXT NOT NULL,               -- the tool's registration JSON as received
    placements TEXT NOT NULL,         -- JSON list (Canvas: messages[].placements)
    created_at REAL NOT NULL
);
"""


def init_db(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


class RegistrationRefused(Exception):
    """The platform refuses the request; `body` is what it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- URLs and tokens ------------------------------------------------------------------------


def configuration_url(sb: SandboxContext, token: str | None = None) -> str:
    if sb.is_canvas:
        url = f"{sb.base_url}/api/lti/security/openid-configuration"
        # Canvas repeats the token in the URL (A7); the tool must still send it as a Bearer.
        return url + ("?" + urlencode({"registration_token": token}) if token else "")
    return f"{sb.base_url}/mod/lti/openid-configuration.php"


def registration_endpoint(sb: SandboxContext) -> str:
    if sb.is_canvas:
        return f"{sb.base_url}/api/lti/registrations"
    return f"{sb.base_url}/mod/lti/openid-registration.php"


def _canvas_key(sb: SandboxContext) -> bytes:
    return hmac.new(sb.hint_secret.encode(), b"dynamic-registration", hashlib.sha256).digest()


def issue_token(sb: SandboxContext, *, lifetime: int = TOKEN_LIFETIME, user_id: int = 1) -> str:
    """A fresh registration token (a negative lifetime makes an expired one, for tests)."""
    now = int(time.time())
    if sb.is_canvas:
        return jwt.encode(
            {
                "uuid": str(uuid.uuid4()),
                "initiated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "user_id": user_id,
                "root_account_global_id": 10000000000001,
                "exp": now + lifetime,
            },
            _canvas_key(sb),
            algorithm="HS256",
        )
    return sb.key.sign(
        {"sub": sb.flavor.new_client_id(), "scope": "reg", "iat": now, "exp": now + lifetime}
    )


def start_url(sb: SandboxContext, tool_registration_url: str, token: str) -> str:
    """The tool's registration URL with the two DR parameters added (Moodle 302s here)."""
    parts = urlsplit(tool_registration_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("openid_configuration", configuration_url(sb, token)),
              ("registration_token", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_canvas_token(sb: SandboxContext, token: str | None) -> dict[str, Any]:
    if not token:
        raise RegistrationRefused(401, "Missing registration token")
    try:
        claims = jwt.decode(token, _canvas_key(sb), algorithms=["HS256"],
                            options={"require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise RegistrationRefused(401, "The registration token has expired") from None
    except jwt.PyJWTError:
        raise RegistrationRefused(401, "JWT did not include expected contents") from None
    if set(claims) != CANVAS_TOKEN_KEYS:
        raise RegistrationRefused(401, "JWT did not include expected contents")
    return claims


def check_moodle_token(sb: SandboxContext, token: str | None) -> dict[str, Any]:
    if not token:
        raise RegistrationRefused(401, "missing_registration_token")
    try:
        claims = sb.key.verify(token, options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise RegistrationRefused(401, "expired_registration_token") from None
    except jwt.PyJWTError:
        raise RegistrationRefused(401, "invalid_registration_token") from None
    if claims.get("scope") != "reg":
        raise RegistrationRefused(403, "Incorrect scope")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise RegistrationRefused(400, "Unknown client")
    return claims


# -- the platform's configuration --------------------------------------------------------------


def openid_configuration(sb: SandboxContext) -> dict[str, Any]:
    base, flavor = sb.base_url, sb.flavor
    common = {
        "issuer": sb.issuer,
        "authorization_endpoint": flavor.auth_login_url(base),
        "registration_endpoint": registration_endpoint(sb),
        "jwks_uri": flavor.jwks_url(base),
        "token_endpoint": flavor.token_url(base),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    if sb.is_canvas:
        return {
            **common,
            "scopes_supported": CANVAS_SCOPES,
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "nickname",
                                 "picture", "email", "locale"],
            "subject_types_supported": ["public"],
            "authorization_server": urlsplit(sb.issuer).netloc,
            PLATFORM_CONFIGURATION: {
                "product_family_code": "canvas",
                "version": "vCloud",
                "messages_supported": [
                    {"type": RESOURCE_LINK_REQUEST, "placements": CANVAS_RL_PLACEMENTS},
                    {"type": DEEP_LINKING_REQUEST, "placements": CANVAS_DL_ALL},
                ],
                "notice_types_supported": ["LtiHelloWorldNotice"],
                "variables": ["ResourceLink.id", "Context.id", "Canvas.course.id",
                              "Canvas.user.id", "CourseSection.sourcedId"],
                CANVAS + "account_name": "Sandbox School District",
                CANVAS + "account_lti_guid": "sandbox-account-guid:canvas-lms",
            },
        }
    return {
        **common,
        "scopes_supported": MOODLE_SCOPES,
        "subject_types_supported": ["public", "pairwise"],
        "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
        PLATFORM_CONFIGURATION: {
            "product_family_code": "moodle",
            "version": "4.5.6 (Build: 20250811)",
            "messages_supported": [
                {"type": RESOURCE_LINK_REQUEST},
                {"type": DEEP_LINKING_REQUEST, "placements": ["ContentArea"]},
            ],
            "variables": ["basic-lti-launch-request", "ContentItemSelectionRequest",
                          "Context.id", "ResourceLink.id", "Moodle.Person.userGroupIds"],
        },
    }


# -- validating the tool's registration ---------------------------------------------------------


def _is_url(value: Any) -> bool:
    if not isinstance(value, str) or any(ch.isspace() for ch in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.hostname)


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def _strip_www(value: str) -> str:
    return value[4:] if value.startswith("www.") else value


def validate(sb: SandboxContext, body: Any) -> dict[str, Any]:
    """The registration as this platform stores it, or RegistrationRefused saying why
    (Canvas: 422 with a message; Moodle: 400 with its plain-text error codes)."""
    canvas = sb.is_canvas

    def bad(canvas_message: str, moodle_code: str, status: int = 400) -> RegistrationRefused:
        return RegistrationRefused(422 if canvas else status,
                                   canvas_message if canvas else moodle_code)

    if not isinstance(body, dict):
        raise bad("The registration must be a JSON object", "invalid_request")
    required = ["response_types", "initiate_login_uri", "redirect_uris", "client_name",
                "jwks_uri", "token_endpoint_auth_method", TOOL_CONFIGURATION]
    for key in required:
        if key not in body or body[key] in (None, "", [], {}):
            raise bad(f"{key} is required", f"missing required attribute {key}")
    if not isinstance(body["response_types"], list) or "id_token" not in body["response_types"]:
        raise bad("response_types must include id_token", "invalid_response_types")
    uris = body["redirect_uris"]
    if not isinstance(uris, list) or not uris or not all(_is_url(u) for u in uris):
        raise bad("redirect_uris must be a list of absolute URLs", "invalid_redirect_uris")
    if body["token_endpoint_auth_method"] != "private_key_jwt":
        raise bad("token_endpoint_auth_method must be private_key_jwt",
                  "invalid_token_endpoint_auth_method")
    if "application_type" in body and body["application_type"] != "web":
        raise bad("application_type must be web", "invalid_application_type")
    grants = body.get("grant_types")
    if grants is not None and (not isinstance(grants, list)
                               or not {"implicit", "client_credentials"} <= set(grants)):
        raise bad("grant_types must include implicit and client_credentials",
                  "invalid_grant_types")
    for key in ("initiate_login_uri", "jwks_uri"):
        if not _is_url(body[key]):
            raise bad(f"{key} must be an absolute URL", f"invalid_{key}")
    if not isinstance(body["client_name"], str):
        raise bad("client_name must be a string", "missing required attribute client_name")
    if "logo_uri" in body and body["logo_uri"] and not _is_url(body["logo_uri"]):
        raise bad("logo_uri must be an absolute URL", "invalid_logo_uri")

    scope = body.get("scope", "")
    if not isinstance(scope, str):
        raise bad("scope must be a space-separated string", "invalid_scope")
    supported = CANVAS_SCOPES if canvas else MOODLE_SCOPES
    scopes = scope.split()
    unknown = [s for s in scopes if s not in supported]
    if unknown:
        raise bad(f"Invalid scopes: {' '.join(unknown)}", "invalid_scope")

    config = body[TOOL_CONFIGURATION]
    if not isinstance(config, dict):
        raise bad(f"{TOOL_CONFIGURATION} must be an object", "invalid_tool_configuration")
    domain = config.get("domain")
    target = config.get("target_link_uri")
    if canvas:
        if not _is_url(target):
            raise bad("target_link_uri is required and must be an absolute URL", "")
        if domain is not None and (not isinstance(domain, str) or not domain):
            raise bad("domain must be a host name", "")
    else:
        if not isinstance(domain, str) or not domain.strip():
            raise RegistrationRefused(400, "missing_domain")
        domain = domain.strip().lower()
        if target in (None, ""):
            target = f"https://{domain}"
        if not _is_url(target) or _strip_www(_host_port(target)) != _strip_www(domain):
            raise RegistrationRefused(400, "domain_targetlinkuri_mismatch")
    if target not in uris and not any(urlsplit(u)._replace(query="").geturl()
                                      == urlsplit(target)._replace(query="").geturl()
                                      for u in uris):
        raise bad("target_link_uri must be one of the redirect_uris",
                  "target_link_uri_not_in_redirect_uris")
    messages = config.get("messages", [])
    if not isinstance(messages, list):
        raise bad("messages must be a list", "invalid_messages")
    placements: list[str] = []
    offered = {RESOURCE_LINK_REQUEST: CANVAS_RL_PLACEMENTS, DEEP_LINKING_REQUEST: CANVAS_DL_ALL}
    for message in messages:
        if not isinstance(message, dict) or message.get("type") not in offered:
            raise bad("messages[].type must be LtiResourceLinkRequest or LtiDeepLinkingRequest",
                      "invalid_messages")
        if "target_link_uri" in message and not _is_url(message["target_link_uri"]):
            raise bad("messages[].target_link_uri must be an absolute URL", "invalid_messages")
        names = message.get("placements", [])
        if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
            raise bad("messages[].placements must be a list of names", "invalid_messages")
        if canvas:  # Moodle ignores placements (B6)
            wrong = [p for p in names if p not in offered[message["type"]]]
            if wrong:
                raise bad(f"Unsupported placements for {message['type']}: {', '.join(wrong)}", "")
            placements += [p for p in names if p not in placements]
    privacy = config.get(CANVAS + "privacy_level")
    if canvas and privacy is not None and privacy not in PRIVACY_LEVELS:
        raise bad(f"privacy_level must be one of {', '.join(sorted(PRIVACY_LEVELS))}", "")
    custom = config.get("custom_parameters") or {}
    if not isinstance(custom, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in custom.items()):
        raise bad("custom_parameters must map names to strings", "invalid_custom_parameters")
    claims = config.get("claims", [])
    if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        raise bad("claims must be a list of names", "invalid_claims")
    return {
        "client_name": body["client_name"][:200] or "Tool",
        "initiate_login_uri": body["initiate_login_uri"],
        "redirect_uris": list(uris),
        "jwks_uri": body["jwks_uri"],
        "target_link_uri": target,
        "domain": domain,
        "scopes": scopes,
        "custom": custom,
        "claims": claims,
        "messages": messages,
        "placements": placements,
        "privacy_level": privacy or "anonymous",
    }


# -- creating the registration ---------------------------------------------------------------


def create(sb: SandboxContext, conn: sqlite3.Connection, body: dict[str, Any],
           clean: dict[str, Any], client_id: str | None = None) -> dict[str, Any]:
    """Insert the tool registration (and Moodle's activity); return the platform's answer."""
    with storage.transaction(conn):
        if client_id is None:
            client_id = sb.flavor.new_client_id()
            while storage.registration_by_client_id(conn, client_id) is not None:
                client_id = sb.flavor.new_client_id()
        elif storage.registration_by_client_id(conn, client_id) is not None:
            raise RegistrationRefused(401, "token_already_used")
        reg_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM registrations").fetchone()[0]
        course = conn.execute("SELECT * FROM courses ORDER BY id LIMIT 1").fetchone()
        if sb.is_canvas:
            # Installed in the demo course: "<ContextExternalTool id>:<context opaque id>" (A1).
            context = course["opaque_id"] if course is not None else secrets.token_hex(20)
            deployment_id = f"{reg_id}:{context}"
        else:
            deployment_id = str(reg_id)  # the tool type id (B1)
        conn.execute(
            "INSERT INTO registrations (id, client_id, deployment_id, name, login_url, "
            "redirect_uris, jwks_url, target_link_uri, scopes, custom) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (reg_id, client_id, deployment_id, clean["client_name"], clean["initiate_login_uri"],
             json.dumps(clean["redirect_uris"]), clean["jwks_uri"], clean["target_link_uri"],
             json.dumps(clean["scopes"]), json.dumps(clean["custom"])),
        )
        conn.execute(
            "INSERT INTO dynamic_registrations (registration_id, body, placements, created_at) "
            "VALUES (?, ?, ?, ?)",
            (reg_id, json.dumps(body), json.dumps(clean["placements"]), storage.now()),
        )
        if not sb.is_canvas and course is not None:
            # Moodle: a teacher would add an activity; the sandbox adds one to launch with.
            conn.execute(
                "INSERT INTO resource_links (uuid, course_id, registration_id, title, "
                "description, url, custom, created_at) VALUES (?, ?, ?, ?, ?, NULL, '{}', ?)",
                (str(uuid.uuid4()), course["id"], reg_id, clean["client_name"],
                 "Added by dynamic registration.", storage.now()),
            )
    return answer(sb, body, clean, client_id, deployment_id)


def answer(sb: SandboxContext, body: dict[str, Any], clean: dict[str, Any], client_id: str,
           deployment_id: str) -> dict[str, Any]:
    config = body[TOOL_CONFIGURATION]
    if sb.is_canvas:
        # The registration echoed back plus client_id; no deployment_id (A7 step 4).
        echoed = {k: body[k] for k in (
            "application_type", "grant_types", "response_types", "redirect_uris",
            "initiate_login_uri", "client_name", "jwks_uri", "scope",
            "token_endpoint_auth_method", "client_uri", "logo_uri", "tos_uri", "policy_uri",
        ) if k in body}
        return {
            **echoed,
            "client_id": client_id,
            TOOL_CONFIGURATION: {
                **config,
                CANVAS + "registration_config_url":
                    f"{sb.base_url}/api/lti/registrations/{client_id}/view",
            },
        }
    # Moodle's config_to_registration (B6 step 4): the deployment_id is in the answer.
    return {
        "client_id": client_id,
        "response_types": ["id_token"],
        "jwks_uri": clean["jwks_uri"],
        "initiate_login_uri": clean["initiate_login_uri"],
        "grant_types": ["client_credentials", "implicit"],
        "redirect_uris": clean["redirect_uris"],
        "application_type": "web",
        "token_endpoint_auth_method": "private_key_jwt",
        "client_name": clean["client_name"],
        "logo_uri": body.get("logo_uri", ""),
        "scope": " ".join(clean["scopes"]),
        TOOL_CONFIGURATION: {
            "version": "1.3.0",
            "deployment_id": deployment_id,
            "target_link_uri": clean["target_link_uri"],
            "domain": clean["domain"],
            "description": config.get("description", ""),
            "messages": [{"type": DEEP_LINKING_REQUEST, "target_link_uri": m["target_link_uri"]}
                         for m in clean["messages"]
                         if m.get("type") == DEEP_LINKING_REQUEST and m.get("target_link_uri")],
            "custom_parameters": clean["custom"],
            "claims": clean["claims"],
        },
    }


def dynamic_tools(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Tools registered dynamically, newest first, with their placements."""
    out = storage.rows(
        conn,
        "SELECT r.id, r.client_id, r.deployment_id, r.name, d.placements, d.created_at "
        "FROM dynamic_registrations d JOIN registrations r ON r.id = d.registration_id "
        "ORDER BY r.id DESC",
    )
    for row in out:
        row["placements"] = json.loads(row["placements"])
    return out


# -- blueprint -------------------------------------------------------------------------------------


def _refusal(err: RegistrationRefused) -> Any:
    """Canvas answers JSON `{"errorMessage": …}`; Moodle plain text (B6)."""
    if ctx().is_canvas:
        resp = jsonify({"errorMessage": err.message})
        resp.status_code = err.status
        return resp
    return err.message, err.status, {"Content-Type": "text/plain; charset=utf-8"}


def make_blueprint(flavor: Flavor) -> Blueprint:
    bp = Blueprint("sandbox_registration", __name__)

    @bp.record_once
    def _schema(state: Any) -> None:
        conn = storage.connect(state.app.extensions["lti_sandbox"].db_path)
        try:
            init_db(conn)
        finally:
            conn.close()

    def _page(**context: Any) -> Any:
        sb = ctx()
        return render_template(
            "sandbox/register.html",
            tools=dynamic_tools(db()),
            default_url=f"{sb.tool_url}/lti/register",
            configuration_url=configuration_url(sb),
            issuer_note=sb.is_canvas and urlsplit(sb.issuer).netloc != urlsplit(sb.base_url).netloc,
            **context,
        )

    @bp.route("/sandbox/register", methods=["GET"])
    def register_page() -> Any:
        return _page(frame_src=None, error=None, tool_origin=None)

    @bp.route("/sandbox/register", methods=["POST"])
    def register_start() -> Any:
        url = (request.form.get("registration_url") or "").strip()
        if not _is_url(url) or len(url) > 2000:
            return _page(frame_src=None, tool_origin=None,
                         error="Enter the tool's registration URL (an absolute https:// "
                         "address)."), 400
        sb = ctx()
        return _page(frame_src=start_url(sb, url, issue_token(sb)), error=None,
                     tool_origin=f"{urlsplit(url).scheme}://{urlsplit(url).netloc}")

    def configuration() -> Any:
        sb = ctx()
        if sb.is_canvas:
            try:
                check_canvas_token(sb, _bearer())
            except RegistrationRefused as err:
                return _refusal(err)
        return jsonify(openid_configuration(sb))

    def register() -> Any:
        sb = ctx()
        conn = db()
        try:
            token = _bearer()
            if sb.is_canvas:
                claims = check_canvas_token(sb, token)
                client_id = None
            else:
                claims = check_moodle_token(sb, token)
                client_id = claims["sub"]
            body = request.get_json(silent=True)
            clean = validate(sb, body)
            if sb.is_canvas and not remember_jti(conn, f"dr:{claims['uuid']}",
                                                 float(claims["exp"]) + 60):
                raise RegistrationRefused(401, "The registration token has already been used")
            result = create(sb, conn, body, clean, client_id)
        except RegistrationRefused as err:
            return _refusal(err)
        return jsonify(result)

    if flavor.name == "canvas":
        bp.add_url_rule("/api/lti/security/openid-configuration", "configuration", configuration)
        bp.add_url_rule("/api/lti/registrations", "register", register, methods=["POST"])
    else:
        bp.add_url_rule("/mod/lti/openid-configuration.php", "configuration", configuration)
        bp.add_url_rule("/mod/lti/openid-registration.php", "register", register,
                        methods=["POST"])

    @bp.app_template_global("sandbox_dr_url")
    def _dr_url() -> str:
        return url_for("sandbox_registration.register_page")

    return bp

