"""Deep linking return endpoint: verify the tool's `LtiDeepLinkingResponse` and apply it.

Checks (security.md 1.5, DL 1.0 §4.5), for both flavours — stricter than Moodle, which only
checks the signature and `iss` (B5): RS256 signature by a `kid` in the tool's JWKS,
`iss` = client_id, `aud` = the platform issuer, `nonce` present and never reused, `iat`
fresh, `exp` in the future, message type, version, deployment id, and `data` echoed when
the request carried it. `ltiResourceLink` items become resource links (with their `custom`);
an item with `lineItem` also gets a platform-owned ("coupled") line item.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import jwt
from flask import Blueprint, render_template, request, url_for

from . import storage
from .app import ctx, db, error_page
from .claims import CANVAS_DL_PLACEMENTS
from .flavors import DL_CONTENT_ITEMS, DL_DATA, LTI, Flavor
from .tokens import LEEWAY, MAX_IAT_AGE, MAX_IAT_FUTURE, remember_jti
from .tool_keys import ToolJWTError


class _Refused(Exception):
    pass


def _launch_for_return(course_id: int | None) -> dict[str, Any]:
    """Find the deep-linking launch this return URL was issued for."""
    sb = ctx()
    conn = db()
    if sb.is_canvas:
        try:
            data = jwt.decode(request.args.get("data", ""), sb.hint_secret, algorithms=["HS256"])
        except jwt.PyJWTError as exc:
            raise _Refused(
                "The return URL's data parameter is missing or was not issued by this LMS."
            ) from exc
        token = data.get("launch")
    else:
        token = request.args.get("sesskey")
        course_id = request.args.get("course", type=int)
    launch = (
        storage.one(conn, "SELECT * FROM launches WHERE dl_token = ?", (token,)) if token else None
    )
    if launch is None or (launch["dl_expires_at"] or 0) < storage.now():
        raise _Refused("This deep linking return URL is unknown or has expired.")
    if launch["course_id"] != course_id:
        raise _Refused("This deep linking return URL belongs to another course.")
    if not sb.is_canvas and request.args.get("id", type=int) != launch["registration_id"]:
        raise _Refused("This deep linking return URL belongs to another tool.")
    return launch


def _verify(launch: dict[str, Any], reg: dict[str, Any], token: str) -> dict[str, Any]:
    sb = ctx()
    try:
        claims = sb.tool_keys.verify(
            token,
            reg["jwks_url"],
            audience=sb.issuer,
            issuer=reg["client_id"],
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "iat", "exp", "nonce"], "verify_iat": False},
        )
    except ToolJWTError as exc:
        raise _Refused(f"JWT verification failure: {exc}") from exc
    now = storage.now()
    iat = claims["iat"]
    if (
        not isinstance(iat, int | float)
        or now - iat > MAX_IAT_AGE + LEEWAY
        or iat > now + MAX_IAT_FUTURE
    ):
        raise _Refused("The response JWT's iat is not fresh (it must be less than 5 minutes old).")
    if claims.get(LTI + "message_type") != "LtiDeepLinkingResponse":
        raise _Refused("message_type must be LtiDeepLinkingResponse.")
    if claims.get(LTI + "version") != "1.3.0":
        raise _Refused("version must be 1.3.0.")
    if claims.get(LTI + "deployment_id") != reg["deployment_id"]:
        raise _Refused("deployment_id does not match the deployment of the request.")
    if launch["dl_data"] is not None and claims.get(DL_DATA) != launch["dl_data"]:
        raise _Refused("The data claim of the request was not echoed back unchanged.")
    nonce = claims["nonce"]
    if not isinstance(nonce, str) or not nonce:
        raise _Refused("nonce must be a non-empty string.")
    if not remember_jti(db(), f"dl:{reg['client_id']}:{nonce}", float(claims["exp"]) + LEEWAY):
        raise _Refused("This deep linking response (nonce) was already used.")
    return claims


def _plan(items: Any, launch: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Validate content items before writing anything; returns (links to create, notes)."""
    sb = ctx()
    if not isinstance(items, list):
        raise _Refused("content_items must be a list.")
    links, notes = [], []
    for item in items:
        if not isinstance(item, dict) or item.get("type") != "ltiResourceLink":
            kind = item.get("type") if isinstance(item, dict) else type(item).__name__
            notes.append(
                f"Ignored an item of type {kind!r}: this placement accepts ltiResourceLink only."
            )
            continue
        url = item.get("url")
        if url is not None and (
            not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https")
        ):
            raise _Refused("An ltiResourceLink url must be an http(s) URL.")
        custom = item.get("custom") or {}
        if not isinstance(custom, dict):
            raise _Refused("custom must be a JSON object.")
        line_item = item.get("lineItem")
        if line_item is not None:
            maximum = line_item.get("scoreMaximum") if isinstance(line_item, dict) else None
            if not isinstance(maximum, int | float) or isinstance(maximum, bool) or maximum < 0:
                raise _Refused("lineItem.scoreMaximum is required and must be a number >= 0.")
            if sb.is_canvas and launch["placement"] != "assignment_selection":
                # Only assignment-creating placements turn a lineItem into an assignment (A5).
                notes.append(f"lineItem of {item.get('title')!r} ignored in {launch['placement']}.")
                line_item = None
        links.append(
            {
                "title": str(item.get("title") or "Pathwise"),
                "text": str(item.get("text") or ""),
                "url": url,
                "custom": {str(k): str(v) for k, v in custom.items()},
                "line_item": line_item,
            }
        )
    accept_multiple = True
    if sb.is_canvas:
        accept_multiple = CANVAS_DL_PLACEMENTS.get(launch["placement"] or "", {}).get(
            "accept_multiple", True
        )
    if len(links) > 1 and not accept_multiple:
        raise _Refused("This placement accepts a single item (accept_multiple is false).")
    return links, notes


def deep_linking_response(course_id: int | None = None) -> Any:
    sb = ctx()
    conn = db()
    try:
        launch = _launch_for_return(course_id)
        token = request.form.get("JWT")
        if not token:
            raise _Refused("The form field JWT is missing.")
        reg = storage.get_registration(conn, launch["registration_id"])
        assert reg is not None
        claims = _verify(launch, reg, token)
        links, notes = _plan(claims.get(DL_CONTENT_ITEMS, []), launch)
    except _Refused as exc:
        return error_page("Deep linking response refused", str(exc), 400)

    created = []
    now = storage.now()
    with storage.transaction(conn):
        for link in links:
            cur = conn.execute(
                "INSERT INTO resource_links (uuid, course_id, registration_id, title, "
                "description, url, custom, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(uuid.uuid4()),
                    launch["course_id"],
                    reg["id"],
                    link["title"],
                    link["text"],
                    link["url"],
                    json.dumps(link["custom"]),
                    now,
                ),
            )
            rl_id = int(cur.lastrowid)
            li = link["line_item"]
            if li is not None:
                storage.insert_line_item(
                    conn,
                    course_id=launch["course_id"],
                    registration_id=reg["id"],
                    label=str(li.get("label") or link["title"]) if sb.is_canvas else link["title"],
                    score_maximum=float(li["scoreMaximum"]),
                    resource_id=None if li.get("resourceId") is None else str(li["resourceId"]),
                    tag=None if li.get("tag") is None else str(li["tag"]),
                    resource_link_id=rl_id,
                    coupled=1,
                )
            created.append({**link, "id": rl_id})
    return render_template(
        "sandbox/dl_result.html",
        created=created,
        notes=notes,
        msg=claims.get("https://purl.imsglobal.org/spec/lti-dl/claim/msg"),
        errormsg=claims.get("https://purl.imsglobal.org/spec/lti-dl/claim/errormsg"),
        course_url=url_for("sandbox_pages.course", course_id=launch["course_id"]),
    )


def make_blueprint(flavor: Flavor) -> Blueprint:
    bp = Blueprint("sandbox_deep_linking", __name__)
    if flavor.name == "canvas":
        bp.add_url_rule(
            "/courses/<int:course_id>/deep_linking_response",
            "response",
            deep_linking_response,
            methods=["POST"],
        )
    else:
        bp.add_url_rule(
            "/mod/lti/contentitem_return.php", "response", deep_linking_response, methods=["POST"]
        )
    return bp
