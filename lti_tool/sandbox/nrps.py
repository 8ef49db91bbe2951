"""Names and Role Provisioning Service (platforms.md A10 / B9).

Canvas: page-based Link headers (default and maximum 50), full role URIs, UUID user ids.
Moodle: `limit`/`from` with only `rel="next"`, short role names "Learner"/"Instructor",
numeric user ids and `ext_user_username`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from . import storage
from .app import ctx, db
from .errors import ServiceError
from .flavors import (
    LTI,
    MT_MEMBERSHIPS,
    MT_MEMBERSHIPS_V1,
    ROLE_INSTRUCTOR,
    ROLE_LEARNER,
    SCOPE_NRPS,
    Flavor,
)
from .paging import canvas_page, moodle_nrps_offset
from .tokens import require_scopes

_SHORT = {"teacher": "Instructor", "student": "Learner"}
_FULL = {"teacher": ROLE_INSTRUCTOR, "student": ROLE_LEARNER}


def _role_matches(filter_value: str, role: str) -> bool:
    # Full URI or short name (Moodle accepts both; Canvas maps the URI to an enrollment type).
    return filter_value in (_FULL[role], _SHORT[role])


def memberships(course_id: int, type_id: int | None = None) -> Any:
    sb = ctx()
    conn = db()
    canvas = sb.is_canvas
    if not canvas:
        accept = request.headers.get("Accept", "")
        if accept and "*/*" not in accept and accept not in (MT_MEMBERSHIPS, MT_MEMBERSHIPS_V1):
            raise ServiceError(400, f"No handler found for {request.path} {accept} ")
    reg = require_scopes({SCOPE_NRPS})
    if not canvas and type_id != reg["id"]:
        raise ServiceError(403, "Not allowed in context")
    course = storage.get_course(conn, course_id)
    if course is None:
        raise ServiceError(
            404, "Context not found" if canvas else f"Not Found: Course {course_id} doesn't exist"
        )
    members = storage.course_members(conn, course_id)
    role_filter = request.args.get("role")
    if role_filter:
        members = [m for m in members if _role_matches(role_filter, m["role"])]
    rl = None
    rlid = request.args.get("rlid")
    if rlid:
        rl = next(
            (
                r
                for r in storage.course_resource_links(conn, course_id)
                if rlid in (r["uuid"], str(r["id"]))
            ),
            None,
        )
        if rl is None:
            raise ServiceError(404 if canvas else 400, "Invalid resource link id")

    endpoint = sb.flavor.memberships_url(sb.base_url, course_id, reg["id"])
    if canvas:
        page, link = canvas_page(members, endpoint, default=50, maximum=50)
        context = {"id": course["opaque_id"], "label": course["label"], "title": course["title"]}
    else:
        keep = [("rlid", rlid)] if rlid else []
        page, link = moodle_nrps_offset(members, endpoint, keep)
        context = {"id": str(course_id), "label": course["label"], "title": course["title"]}
    body = {"id": endpoint, "context": context, "members": [_member(m, canvas, rl) for m in page]}
    resp = Response(json.dumps(body), mimetype=MT_MEMBERSHIPS)
    if link:
        resp.headers["Link"] = link
    return resp


def _member(m: dict[str, Any], canvas: bool, rl: dict[str, Any] | None) -> dict[str, Any]:
    name = f"{m['given_name']} {m['family_name']}"
    if canvas:
        out: dict[str, Any] = {
            "status": "Active",
            "name": name,
            "given_name": m["given_name"],
            "family_name": m["family_name"],
            "email": m["email"],
            "lis_person_sourcedid": m["sourcedid"],
            "user_id": m["uuid"],
            "lti11_legacy_user_id": m["opaque_id"],
            "roles": [_FULL[m["role"]]],
        }
        if rl is not None:
            out["message"] = [
                {
                    LTI + "message_type": "LtiResourceLinkRequest",
                    "locale": "en",
                    "https://www.instructure.com/canvas_user_id": m["id"],
                    "https://www.instructure.com/canvas_user_login_id": m["username"],
                    LTI + "custom": rl["custom"],
                }
            ]
        return out
    out = {
        "status": "Active",
        "roles": [_SHORT[m["role"]]],
        "user_id": str(m["id"]),
        "lis_person_sourcedid": "",
        "name": name,
        "given_name": m["given_name"],
        "family_name": m["family_name"],
        "email": m["email"],
        "ext_user_username": m["username"],
    }
    if rl is not None:
        out["message"] = [{LTI + "message_type": "LtiResourceLinkRequest"}]
    return out


def make_blueprint(flavor: Flavor) -> Blueprint:
    bp = Blueprint("sandbox_nrps", __name__)
    if flavor.name == "canvas":
        bp.add_url_rule(
            "/api/lti/courses/<int:course_id>/names_and_roles", "memberships", memberships
        )
    else:
        bp.add_url_rule(
            "/mod/lti/services.php/CourseSection/<int:course_id>/bindings/<int:type_id>/memberships",
            "memberships",
            memberships,
        )
    return bp
