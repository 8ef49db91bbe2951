"""OIDC third-party login initiation, the authorization endpoint and the platform JWKS.

Flow: a course page creates a *launch* row (who, which course, which link, which message
type) and frames `/lti/initiate/<launch id>`, which auto-POSTs the login initiation to the
tool. The tool answers with an authentication request to the authorization endpoint; that
request identifies the user only through the `lti_message_hint` the sandbox issued (a
signed JWT on Canvas, a JSON launch id on Moodle, both keyed to the stored launch row) plus
the matching `login_hint`, never through a cookie, so the launch works in a cross-site
iframe with third-party cookies blocked. The hint is single-use and lives 5 minutes.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from flask import Blueprint, current_app, jsonify, redirect, render_template, request

from . import storage
from .app import SandboxContext, ctx, db, error_page
from .claims import DEEP_LINKING_REQUEST, build_claims
from .flavors import Flavor

HINT_LIFETIME = 300  # Canvas caches the launch 5 minutes (A2)
DL_RETURN_LIFETIME = 3600  # time a teacher may spend choosing content before returning


# -- launches ------------------------------------------------------------------------------


def create_launch(
    sb: SandboxContext,
    conn: sqlite3.Connection,
    *,
    user_id: int,
    course_id: int,
    message_type: str,
    placement: str | None = None,
    resource_link_id: int | None = None,
    registration_id: int | None = None,
) -> dict[str, Any]:
    """Store a pending launch and return it; its id is what the message hint refers to.

    registration_id picks the tool (one registered dynamically); default: the seeded one."""
    if registration_id is not None:
        reg = storage.get_registration(conn, registration_id)
        if reg is None:
            raise LookupError("no such tool registration")
    else:
        reg = storage.first_registration(conn)
    if reg is None:
        raise LookupError("no tool is registered; run the seed first")
    target = reg["target_link_uri"]
    if resource_link_id is not None:
        rl = storage.get_resource_link(conn, resource_link_id)
        if rl is None or rl["course_id"] != course_id:
            raise LookupError("no such resource link in this course")
        target = rl["url"] or target
    if sb.is_canvas:
        launch_id = secrets.token_hex(32)  # Canvas "verifier"
    elif message_type == DEEP_LINKING_REQUEST:
        launch_id = f"ltilaunch_ContentItemSelectionRequest{_digits()}"
    else:
        launch_id = f"ltilaunch{resource_link_id}_{_digits()}"
    now = storage.now()
    is_dl = message_type == DEEP_LINKING_REQUEST
    send_data = is_dl and current_app.config.get("SANDBOX_SEND_DL_DATA")
    values = {
        "id": launch_id,
        "registration_id": reg["id"],
        "user_id": user_id,
        "course_id": course_id,
        "message_type": message_type,
        "placement": placement,
        "resource_link_id": resource_link_id,
        "target_link_uri": target,
        "created_at": now,
        "expires_at": now + HINT_LIFETIME,
        "dl_token": secrets.token_hex(16) if is_dl else None,
        "dl_data": secrets.token_urlsafe(16) if send_data else None,
        "dl_expires_at": now + DL_RETURN_LIFETIME if is_dl else None,
    }
    with storage.transaction(conn):
        conn.execute(
            "INSERT INTO launches (id, registration_id, user_id, course_id, message_type, "
            "placement, resource_link_id, target_link_uri, created_at, expires_at, dl_token, "
            "dl_data, dl_expires_at) VALUES (:id, :registration_id, :user_id, :course_id, "
            ":message_type, :placement, :resource_link_id, :target_link_uri, :created_at, "
            ":expires_at, :dl_token, :dl_data, :dl_expires_at)",
            values,
        )
        # Keep the table small: drop launches whose hint and return URL are both long dead.
        conn.execute(
            "DELETE FROM launches WHERE expires_at < ? AND COALESCE(dl_expires_at, 0) < ?",
            (now - 86400, now),
        )
    return {**values, "consumed_at": None}


def _digits() -> str:
    # Moodle launch ids end in digits; 18 random digits keep them unguessable.
    return str(10**17 + secrets.randbelow(9 * 10**17))


def login_hint_for(sb: SandboxContext, user: dict[str, Any]) -> str:
    # Canvas: the 40-hex opaque id (== lti11_legacy_user_id); Moodle: the numeric user id (A2, B2).
    return user["opaque_id"] if sb.is_canvas else str(user["id"])


def login_initiation_params(
    sb: SandboxContext, conn: sqlite3.Connection, launch: dict[str, Any]
) -> dict[str, str]:
    """The form fields POSTed to the tool's OIDC login URL, in the platform's order."""
    reg = storage.get_registration(conn, launch["registration_id"])
    user = storage.get_user(conn, launch["user_id"])
    assert reg is not None and user is not None
    if sb.is_canvas:
        hint = jwt.encode(
            {
                "verifier": launch["id"],
                "canvas_domain": urlsplit(sb.base_url).netloc,
                "context_type": "Course",
                "context_id": 10000000000000 + launch["course_id"],
                "canvas_locale": "en",
                "include_storage_target": True,
                "exp": int(launch["expires_at"]),
            },
            sb.hint_secret,
            algorithm="HS256",
        )
        return {
            "iss": sb.issuer,
            "login_hint": login_hint_for(sb, user),
            "client_id": reg["client_id"],
            "lti_deployment_id": reg["deployment_id"],
            "target_link_uri": launch["target_link_uri"],
            "lti_message_hint": hint,
            "canvas_environment": "prod",
            "canvas_region": "us-east-1",
            "lti_storage_target": "post_message_forwarding",
        }
    hint_obj: dict[str, Any] = {"launchid": launch["id"]}
    if launch["resource_link_id"] is not None and launch["message_type"] != DEEP_LINKING_REQUEST:
        hint_obj = {"cmid": launch["resource_link_id"], "launchid": launch["id"]}
    return {
        "iss": sb.issuer,
        "target_link_uri": launch["target_link_uri"],
        "login_hint": login_hint_for(sb, user),
        "lti_message_hint": json.dumps(hint_obj, separators=(",", ":")),
        "client_id": reg["client_id"],
        "lti_deployment_id": reg["deployment_id"],
    }


# -- the authorization endpoint -------------------------------------------------------------


class _PostBack(Exception):
    """An error the spec says goes back to the (already validated) redirect_uri."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _autopost(action: str, fields: dict[str, str], title: str) -> Any:
    return render_template("sandbox/autopost.html", action=action, fields=fields, title=title)


def _resolve_hint(sb: SandboxContext, raw_hint: str) -> str | None:
    """The launch id the message hint carries, or None when the hint is not ours."""
    if sb.is_canvas:
        try:
            payload = jwt.decode(
                raw_hint, sb.hint_secret, algorithms=["HS256"], options={"require": ["exp"]}
            )
        except jwt.PyJWTError:
            return None
        verifier = payload.get("verifier")
        return verifier if isinstance(verifier, str) else None
    try:
        payload = json.loads(raw_hint)
    except ValueError:
        return None
    launch_id = payload.get("launchid") if isinstance(payload, dict) else None
    return launch_id if isinstance(launch_id, str) else None


def authorize() -> Any:
    sb = ctx()
    conn = db()
    params = request.values
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    state = params.get("state")

    # 1. Who is asking, and where may the answer go? Failures here are never posted back:
    #    an unverified redirect_uri must not receive anything.
    reg = storage.registration_by_client_id(conn, client_id) if client_id else None
    if reg is None:
        return error_page(
            "Unknown tool",
            "The client_id in this authentication request is not registered with this LMS.",
            400,
            hint="Check the client id the tool has stored for this platform.",
        )
    if redirect_uri not in reg["redirect_uris"]:
        return error_page(
            "Invalid redirect_uri",
            "The redirect_uri does not exactly match any redirect URI registered for this tool.",
            400,
            hint="Registered: " + ", ".join(reg["redirect_uris"]),
        )

    try:
        launch = _check_request(sb, conn, reg, params)
        if launch is None:
            return error_page(
                "Invalid lti_message_hint", "The lti_message_hint is invalid or has expired.", 400
            )
        claims = build_claims(sb, conn, launch, nonce=params["nonce"], now=storage.now())
    except _PostBack as err:
        fields = {"error": err.error, "error_description": err.description}
        if state is not None:
            fields["state"] = state
        return _autopost(redirect_uri, fields, "Returning to the tool")
    except LookupError as err:
        return error_page("Launch failed", str(err), 400)

    fields: dict[str, str] = {}
    if sb.is_canvas:
        # Canvas adds its Rails form fields; tools must ignore them (A3).
        fields["utf8"] = "\u2713"
        fields["authenticity_token"] = secrets.token_urlsafe(32)
    fields["id_token"] = sb.key.sign(claims)
    if state is not None:
        fields["state"] = state
    if sb.is_canvas:
        fields["lti_storage_target"] = "post_message_forwarding"
    return _autopost(redirect_uri, fields, "Launching the tool")


def _check_request(
    sb: SandboxContext, conn: sqlite3.Connection, reg: dict[str, Any], params: Any
) -> dict[str, Any] | None:
    """Validate the rest of the request and consume its launch; raise _PostBack on errors.

    Returns None for a hint that is not ours (Canvas rejects those without a post back).
    """
    canvas = sb.is_canvas
    required = ["login_hint", "lti_message_hint", "nonce", "response_type", "scope"]
    if canvas:
        required += ["prompt", "response_mode"]
    missing = [
        name
        for name in required
        if not params.get(name) and not (name == "prompt" and name in params)
    ]
    if missing:
        if canvas:
            raise _PostBack(
                "invalid_request_object",
                "The following parameters are missing: " + ", ".join(missing),
            )
        if "lti_message_hint" in missing:
            raise _PostBack("invalid_request", "No launch id in LTI hint")
        raise _PostBack("invalid_request", "Missing parameter(s): " + ", ".join(missing))
    if params["scope"] != "openid":
        if canvas:
            raise _PostBack("invalid_request_object", "The 'scope' must be 'openid'")
        raise _PostBack("invalid_scope", "Invalid scope")
    if params["response_type"] != "id_token":
        raise _PostBack(
            "unsupported_response_type", "Invalid response_type: only id_token is supported"
        )
    if params.get("response_mode", "") != "form_post":
        raise _PostBack(
            "invalid_request",
            "Invalid response_mode" if params.get("response_mode") else "Missing response_mode",
        )
    if params.get("prompt", "") not in ("", "none"):
        raise _PostBack("invalid_request", "Invalid prompt")

    launch_id = _resolve_hint(sb, params["lti_message_hint"])
    if launch_id is None:
        if canvas:
            return None
        raise _PostBack("invalid_request", "No launch id in LTI hint")
    now = storage.now()
    with storage.transaction(conn):
        launch = storage.one(conn, "SELECT * FROM launches WHERE id = ?", (launch_id,))
        # Single use: consume atomically, whatever happens next.
        usable = launch is not None and launch["consumed_at"] is None and launch["expires_at"] > now
        if usable:
            conn.execute("UPDATE launches SET consumed_at = ? WHERE id = ?", (now, launch_id))
    if not usable:
        if canvas:
            raise _PostBack(
                "launch_no_longer_valid", "The launch has either expired or already been consumed"
            )
        raise _PostBack("invalid_request", "The launch has either expired or already been used")
    if launch["registration_id"] != reg["id"]:
        raise _PostBack("unauthorized_client", "Client not authorized in requested context")
    user = storage.get_user(conn, launch["user_id"])
    if user is None or params["login_hint"] != login_hint_for(sb, user):
        if canvas:
            raise _PostBack("login_required", "Must have an active user session")
        raise _PostBack(
            "access_denied", "The login_hint does not match the user who started the launch"
        )
    return launch


# -- blueprint ---------------------------------------------------------------------------------


def make_blueprint(flavor: Flavor) -> Blueprint:
    bp = Blueprint("sandbox_oidc", __name__)

    @bp.route("/lti/initiate/<launch_id>")
    def initiate(launch_id: str) -> Any:
        """Framed by the course page: auto-POSTs the third-party login initiation."""
        sb = ctx()
        conn = db()
        launch = storage.one(conn, "SELECT * FROM launches WHERE id = ?", (launch_id,))
        if (
            launch is None
            or launch["consumed_at"] is not None
            or launch["expires_at"] <= storage.now()
        ):
            return error_page(
                "Launch expired",
                "This launch has expired or was already used. Reload the course page.",
                410,
            )
        reg = storage.get_registration(conn, launch["registration_id"])
        assert reg is not None
        return _autopost(
            reg["login_url"], login_initiation_params(sb, conn, launch), "Opening the tool"
        )

    def jwks() -> Any:
        resp = jsonify(ctx().key.jwks())
        resp.headers["Cache-Control"] = "max-age=300"
        return resp

    if flavor.name == "canvas":

        @bp.route("/api/lti/authorize_redirect", methods=["GET", "POST"])
        def authorize_redirect() -> Any:
            # Canvas's sso host bounces to the school domain with the same parameters (A1/A3).
            query = urlencode(list(request.values.items(multi=True)))
            return redirect(f"{ctx().base_url}/api/lti/authorize?{query}", code=302)

        bp.add_url_rule("/api/lti/authorize", "authorize", authorize, methods=["GET", "POST"])
        bp.add_url_rule("/api/lti/security/jwks", "jwks", jwks)
    else:
        bp.add_url_rule("/mod/lti/auth.php", "authorize", authorize, methods=["GET", "POST"])
        bp.add_url_rule("/mod/lti/certs.php", "jwks", jwks)
    return bp
