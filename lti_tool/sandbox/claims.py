"""id_token claims, one builder per flavour.

They follow platforms.md A4/A5 (Canvas) and B4/B5 (Moodle).

The builders only read the database; signing and nonce handling live in oidc.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from typing import Any
from urllib.parse import urlsplit

import jwt

from . import storage
from .app import SandboxContext
from .flavors import (
    AGS_CLAIM,
    AGS_SCOPES,
    CANVAS_PLACEMENT_CLAIM,
    DL_SETTINGS_CLAIM,
    LTI,
    NRPS_CLAIM,
    ROLE_INST_INSTRUCTOR,
    ROLE_INST_STUDENT,
    ROLE_INSTRUCTOR,
    ROLE_LEARNER,
    ROLE_SYSTEM_USER,
    SCOPE_NRPS,
)

RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"

# Canvas deep-linking settings per placement (A5 table).
CANVAS_DL_PLACEMENTS: dict[str, dict[str, Any]] = {
    "assignment_selection": {
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["iframe", "window"],
        "accept_media_types": "application/vnd.ims.lti.v1.ltilink",
        "auto_create": False,
        "accept_multiple": False,
    },
    "link_selection": {
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["iframe", "window"],
        "accept_media_types": "application/vnd.ims.lti.v1.ltilink",
        "auto_create": False,
        "accept_multiple": True,
    },
}
MOODLE_DL_PLACEMENT = "ContentArea"


def _expand(value: Any, variables: dict[str, str]) -> Any:
    """Substitute `$Variable` values; unknown variables are sent literally (A4, B4)."""
    if isinstance(value, str) and value.startswith("$") and value[1:] in variables:
        return variables[value[1:]]
    return value


def _moodle_key(key: str) -> str:
    # lti_map_keyname: lower-case, anything but [a-z0-9] becomes "_".
    return re.sub(r"[^a-z0-9]", "_", key.lower())


def _has_nrps(reg: dict[str, Any]) -> bool:
    return SCOPE_NRPS in reg["scopes"]


def _ags_scopes(reg: dict[str, Any]) -> list[str]:
    return sorted(s for s in reg["scopes"] if s in AGS_SCOPES)


def build_claims(
    sb: SandboxContext, conn: sqlite3.Connection, launch: dict[str, Any], *, nonce: str, now: float
) -> dict[str, Any]:
    reg = storage.get_registration(conn, launch["registration_id"])
    user = storage.get_user(conn, launch["user_id"])
    course = storage.get_course(conn, launch["course_id"])
    role = storage.enrollment_role(conn, launch["course_id"], launch["user_id"])
    if reg is None or user is None or course is None or role is None:
        raise LookupError(
            "the launch refers to a user, course or registration that no longer exists"
        )
    rl = (
        storage.get_resource_link(conn, launch["resource_link_id"])
        if launch["resource_link_id"]
        else None
    )
    items = storage.line_items_of_link(conn, rl["id"]) if rl else []
    args = {
        "sb": sb,
        "launch": launch,
        "reg": reg,
        "user": user,
        "course": course,
        "role": role,
        "rl": rl,
        "items": items,
        "nonce": nonce,
        "iat": int(now),
    }
    return _canvas_claims(**args) if sb.is_canvas else _moodle_claims(**args)


def _canvas_claims(
    *,
    sb: SandboxContext,
    launch: dict[str, Any],
    reg: dict[str, Any],
    user: dict[str, Any],
    course: dict[str, Any],
    role: str,
    rl: dict[str, Any] | None,
    items: list[dict[str, Any]],
    nonce: str,
    iat: int,
) -> dict[str, Any]:
    base = sb.base_url
    cid = course["id"]
    is_dl = launch["message_type"] == DEEP_LINKING_REQUEST
    roles = {ROLE_SYSTEM_USER}
    if role == "teacher":
        roles |= {ROLE_INSTRUCTOR, ROLE_INST_INSTRUCTOR}
    else:
        roles |= {ROLE_LEARNER, ROLE_INST_STUDENT}
    variables = {
        "Canvas.course.id": str(cid),
        "Canvas.user.id": str(user["id"]),
        "Context.id": course["opaque_id"],
        "User.id": str(user["id"]),
        "Canvas.user.loginId": user["username"],
    }
    if rl is not None:
        variables["ResourceLink.id"] = rl["uuid"]
    custom = {
        k: _expand(v, variables)
        for k, v in {**reg["custom"], **(rl["custom"] if rl else {})}.items()
    }

    claims: dict[str, Any] = {
        LTI + "message_type": launch["message_type"],
        LTI + "version": "1.3.0",
    }
    if not is_dl:
        if rl is None:
            # Placements without a resource link (course_navigation) use the context id (A4).
            claims[LTI + "resource_link"] = {"id": course["opaque_id"], "title": course["title"]}
        else:
            claims[LTI + "resource_link"] = {
                "id": rl["uuid"],
                "description": rl["description"],
                "title": rl["title"],
            }
    ags_scopes = _ags_scopes(reg)
    if ags_scopes:
        ags: dict[str, Any] = {
            "scope": ags_scopes,
            "lineitems": sb.flavor.lineitems_url(base, cid, reg["id"]),
        }
        if not is_dl and rl is not None and len(items) == 1:
            # Only an assignment launch with exactly one line item carries `lineitem` (A4).
            ags = {"lineitem": sb.flavor.lineitem_url(base, cid, items[0]["id"], reg["id"]), **ags}
        claims[AGS_CLAIM] = ags
    claims.update(
        {
            "aud": reg["client_id"],
            "azp": reg["client_id"],
            LTI + "deployment_id": reg["deployment_id"],
            "exp": iat + sb.flavor.id_token_lifetime,
            "iat": iat,
            "iss": sb.issuer,
            "nonce": nonce,
            "sub": user["uuid"],
            LTI + "target_link_uri": launch["target_link_uri"],
            "email": user["email"],
            "name": f"{user['given_name']} {user['family_name']}",
            "given_name": user["given_name"],
            "family_name": user["family_name"],
            LTI + "lis": {
                "person_sourcedid": user["sourcedid"],
                # Real Canvas sends this unexpandable variable literally ([CVCAP]).
                "course_offering_sourcedid": "$CourseSection.sourcedId",
            },
            LTI + "context": {
                "id": course["opaque_id"],
                "label": course["label"],
                "title": course["title"],
                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
            },
            LTI + "tool_platform": {
                "guid": hashlib.sha1(base.encode()).hexdigest() + ":canvas-lms",  # noqa: S324 - an id, not security
                "name": "Pathwise Sandbox School District",
                "version": "cloud",
                "product_family_code": "canvas",
            },
            LTI + "launch_presentation": {
                "document_target": "iframe",
                "return_url": f"{base}/courses/{cid}" + ("/assignments" if rl is not None else ""),
                "locale": "en",
            },
            "locale": "en",
            LTI + "roles": sorted(roles),
            LTI + "custom": custom,
        }
    )
    if _has_nrps(reg):
        claims[NRPS_CLAIM] = {
            "context_memberships_url": sb.flavor.memberships_url(base, cid, reg["id"]),
            "service_versions": ["2.0"],
        }
    claims[LTI + "lti11_legacy_user_id"] = user["opaque_id"]
    # The placement; null for assignment (resource link) launches (A4).
    claims[CANVAS_PLACEMENT_CLAIM] = launch["placement"] if rl is None else None
    if is_dl:
        settings = dict(
            CANVAS_DL_PLACEMENTS.get(
                launch["placement"] or "", CANVAS_DL_PLACEMENTS["link_selection"]
            )
        )
        settings = {"deep_link_return_url": dl_return_url(sb, launch), **settings}
        if launch["dl_data"] is not None:
            settings["data"] = launch["dl_data"]
        claims[DL_SETTINGS_CLAIM] = settings
    return claims


def _moodle_claims(
    *,
    sb: SandboxContext,
    launch: dict[str, Any],
    reg: dict[str, Any],
    user: dict[str, Any],
    course: dict[str, Any],
    role: str,
    rl: dict[str, Any] | None,
    items: list[dict[str, Any]],
    nonce: str,
    iat: int,
) -> dict[str, Any]:
    base = sb.base_url
    cid = course["id"]
    type_id = reg["id"]
    is_dl = launch["message_type"] == DEEP_LINKING_REQUEST
    variables = {
        "Context.id": str(cid),
        "User.id": str(user["id"]),
        "Person.sourcedId": "",
        "CourseSection.sourcedId": "",
        "LineItems.url": sb.flavor.lineitems_url(base, cid, type_id),
    }
    if rl is not None:
        variables["ResourceLink.id"] = str(rl["id"])
    custom: dict[str, Any] = {}
    for key, value in {**reg["custom"], **(rl["custom"] if rl else {})}.items():
        value = _expand(value, variables)
        # Moodle sends the lower-cased key and, when it differs, the original key too (B4).
        custom[_moodle_key(key)] = value
        custom.setdefault(key, value)
    if _has_nrps(reg):
        custom["context_memberships_url"] = sb.flavor.memberships_url(base, cid, type_id)

    claims: dict[str, Any] = {
        "nonce": nonce,
        "iat": iat,
        "exp": iat + sb.flavor.id_token_lifetime,
        "iss": sb.issuer,
        "aud": reg["client_id"],  # a string; Moodle sends no azp (B4)
        LTI + "deployment_id": reg["deployment_id"],
        LTI + "target_link_uri": launch["target_link_uri"],
        "sub": str(user["id"]),
        LTI + "lis": {"person_sourcedid": "", "course_section_sourcedid": ""},
        LTI + "roles": [ROLE_INSTRUCTOR if role == "teacher" else ROLE_LEARNER],
        LTI + "context": {
            "id": str(cid),
            "label": course["label"],
            "title": course["title"],
            "type": ["CourseSection"],
        },
        LTI + "message_type": launch["message_type"],
    }
    if rl is not None and not is_dl:
        claims[LTI + "resource_link"] = {
            "title": rl["title"],
            # Plain text with CRLF newlines, like Moodle's intro conversion.
            "description": re.sub(r"\r?\n", "\r\n", rl["description"] or ""),
            "id": str(rl["id"]),
        }
        if items:
            # The activity accepts grades: Moodle keeps the LTI 1.1 outcomes claim (B4).
            data = {
                "instanceid": str(rl["id"]),
                "userid": str(user["id"]),
                "typeid": str(type_id),
                "launchid": 0,
            }
            digest = hashlib.sha256(
                (sb.hint_secret + json.dumps(data, sort_keys=True)).encode()
            ).hexdigest()
            claims["https://purl.imsglobal.org/spec/lti-bo/claim/basicoutcome"] = {
                "lis_result_sourcedid": json.dumps({"data": data, "hash": digest}),
                "lis_outcome_service_url": f"{base}/mod/lti/service.php",
            }
    return_url = f"{base}/mod/lti/return.php?course={cid}&launch_container=3"
    if rl is not None:
        return_url += f"&instanceid={rl['id']}"
    claims.update(
        {
            "given_name": user["given_name"],
            "family_name": user["family_name"],
            "name": f"{user['given_name']} {user['family_name']}",
            LTI + "ext": {"user_username": user["username"], "lms": "moodle-2"},
            "email": user["email"],
            LTI + "launch_presentation": {
                "locale": "en",
                "document_target": "iframe",
                "return_url": return_url,
            },
            LTI + "tool_platform": {
                "product_family_code": "moodle",
                "version": "2024100706",
                "guid": urlsplit(base).hostname or "localhost",
                "name": "Pathwise Sandbox",
                "description": "Pathwise Sandbox Moodle",
            },
            LTI + "version": "1.3.0",
            LTI + "custom": custom,
        }
    )
    ags_scopes = _ags_scopes(reg)
    if ags_scopes:
        ags = {"scope": ags_scopes, "lineitems": sb.flavor.lineitems_url(base, cid, type_id)}
        coupled = [i for i in items if i["coupled"]]
        if not is_dl and len(coupled) == 1:
            # Only an activity with exactly one coupled grade item has `lineitem` (B4).
            ags["lineitem"] = sb.flavor.lineitem_url(base, cid, coupled[0]["id"], type_id)
        claims[AGS_CLAIM] = ags
    if _has_nrps(reg):
        claims[NRPS_CLAIM] = {
            "context_memberships_url": sb.flavor.memberships_url(base, cid, type_id),
            "service_versions": ["1.0", "2.0"],
        }
    if is_dl:
        settings: dict[str, Any] = {
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["frame", "iframe", "window"],
            "accept_copy_advice": False,
            "accept_multiple": True,
            "accept_unsigned": False,
            "auto_create": False,
            "can_confirm": False,
            "deep_link_return_url": dl_return_url(sb, launch),
            "title": "Pathwise",
            "text": "",
        }
        if launch["dl_data"] is not None:
            settings["data"] = launch["dl_data"]
        claims[DL_SETTINGS_CLAIM] = settings
    return claims


def dl_return_url(sb: SandboxContext, launch: dict[str, Any]) -> str:
    """Where the tool posts its deep-linking response (A5 / B5 shapes)."""
    cid = launch["course_id"]
    if sb.is_canvas:
        data = jwt.encode(
            {"modal": True, "placement": launch["placement"], "launch": launch["dl_token"]},
            sb.hint_secret,
            algorithm="HS256",
        )
        return f"{sb.base_url}/courses/{cid}/deep_linking_response?data={data}"
    return (
        f"{sb.base_url}/mod/lti/contentitem_return.php?course={cid}"
        f"&id={launch['registration_id']}&sesskey={launch['dl_token']}"
    )
