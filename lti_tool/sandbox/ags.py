"""Assignment and Grade Services: line items, scores, results (platforms.md A9 / B8).

Every call needs a bearer token with a fitting scope. Canvas is lenient about media types
and strict about score ordering only when a timestamp is *older* than the stored one; Moodle
demands exact media types, refuses a score whose timestamp is not newer (whole seconds),
and keeps a grade only for FullyGraded. Every accepted score is stored with its timestamp
so the gradebook page can show the whole history.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, request

from . import storage
from .app import SandboxContext, ctx, db
from .errors import ServiceError
from .flavors import (
    MT_LINEITEM,
    MT_LINEITEM_CONTAINER,
    MT_RESULT_CONTAINER,
    MT_SCORE,
    MT_SCORE_CONTAINER,
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READONLY,
    SCOPE_RESULT_READONLY,
    SCOPE_SCORE,
    Flavor,
)
from .paging import canvas_page, moodle_offset
from .tokens import require_scopes

ACTIVITY_PROGRESS = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING_PROGRESS = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")
CANVAS_SUBMISSION_EXT = "https://canvas.instructure.com/lti/submission"
CANVAS_SUBMISSION_TYPE_EXT = "https://canvas.instructure.com/lti/submission_type"

_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


# -- helpers ---------------------------------------------------------------------------------


def parse_timestamp(value: Any) -> float | None:
    """ISO 8601 (as the AGS spec asks) to epoch seconds; None when unparseable."""
    if not isinstance(value, str) or not _TS_RE.match(value):
        return None
    text = value.replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    # Python 3.10's fromisoformat wants exactly 6 (or 3) fractional digits.
    text = re.sub(r"\.(\d+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _media_response(body: Any, media_type: str, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype=media_type)


def _moodle_accept(formats: tuple[str, ...]) -> None:
    """services.php: a GET resolves only with an empty Accept, one with */*, or an exact format."""
    accept = request.headers.get("Accept", "")
    if accept and "*/*" not in accept and accept not in formats:
        raise ServiceError(400, f"No handler found for {request.path} {accept} ")


def _moodle_content_type(formats: tuple[str, ...]) -> None:
    ctype = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if ctype not in formats:
        raise ServiceError(400, f"No handler found for {request.path}  {ctype}")


def _json_body(*, strict: bool) -> dict[str, Any]:
    # Canvas reads bodies through Rails params whatever the media type; Moodle json_decodes.
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ServiceError(
            400,
            "Incorrect or missing JSON body"
            if strict
            else "The request body must be a JSON object",
        )
    return body


def _course(conn: sqlite3.Connection, course_id: int, sb: SandboxContext) -> dict[str, Any]:
    course = storage.get_course(conn, course_id)
    if course is None:
        raise ServiceError(
            404,
            "Context not found" if sb.is_canvas else f"Not Found: Course {course_id} doesn't exist",
        )
    return course


def _line_item(
    conn: sqlite3.Connection, sb: SandboxContext, reg: dict[str, Any], course_id: int, item_id: int
) -> dict:
    item = storage.get_line_item(conn, course_id, item_id)
    if item is None:
        raise ServiceError(
            404, "Line item not found" if sb.is_canvas else "Line item does not exist"
        )
    if item["registration_id"] != reg["id"]:
        if sb.is_canvas:
            raise ServiceError(412, "Tool does not have permission to view line_item")
        raise ServiceError(404, "Line item does not exist")
    return item


def _link_ids(conn: sqlite3.Connection, course_id: int) -> dict[int, dict[str, Any]]:
    return {rl["id"]: rl for rl in storage.course_resource_links(conn, course_id)}


def item_json(
    sb: SandboxContext, reg: dict[str, Any], item: dict[str, Any], links: dict[int, dict[str, Any]]
) -> dict:
    """The line item as the platform serialises it (null keys omitted)."""
    url = sb.flavor.lineitem_url(sb.base_url, item["course_id"], item["id"], reg["id"])
    rl = links.get(item["resource_link_id"]) if item["resource_link_id"] else None
    if sb.is_canvas:
        out: dict[str, Any] = {
            "id": url,
            "scoreMaximum": float(item["score_maximum"]),
            "label": item["label"],
            "resourceId": item["resource_id"],
            "tag": item["tag"],
            "resourceLinkId": rl["uuid"] if rl else None,
            "startDateTime": item["start_date_time"],
            "endDateTime": item["end_date_time"],
        }
        if CANVAS_SUBMISSION_TYPE_EXT in item["extra"]:
            out[CANVAS_SUBMISSION_TYPE_EXT] = item["extra"][CANVAS_SUBMISSION_TYPE_EXT]
        return {k: v for k, v in out.items() if v is not None}
    out = {
        "id": url,
        "label": item["label"],
        "scoreMaximum": float(item["score_maximum"]),
        "resourceId": item["resource_id"] or "",
        "tag": item["tag"] or "",
    }
    if rl:
        out["resourceLinkId"] = str(rl["id"])
        out["ltiLinkId"] = str(rl["id"])
    return out


# -- line items --------------------------------------------------------------------------------


def lineitems(course_id: int) -> Any:
    sb = ctx()
    conn = db()
    moodle = not sb.is_canvas
    if request.method == "GET":
        if moodle:
            _moodle_accept((MT_LINEITEM_CONTAINER, MT_LINEITEM))
        reg = require_scopes({SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY})
        if moodle:
            accept = request.headers.get("Accept", "")
            if accept and accept != MT_LINEITEM_CONTAINER:
                # lineitems.php compares the whole Accept header with the container type,
                # so even "*/*" fails here (Moodle 4.5 behaviour).
                raise ServiceError(400, "No context or unsupported content type")
        _course(conn, course_id, sb)
        return _list_lineitems(sb, conn, reg, course_id)
    if moodle:
        _moodle_content_type((MT_LINEITEM,))
    reg = require_scopes({SCOPE_LINEITEM})
    _course(conn, course_id, sb)
    body = _json_body(strict=moodle)
    return _create_lineitem(sb, conn, reg, course_id, body)


def _list_lineitems(
    sb: SandboxContext, conn: sqlite3.Connection, reg: dict[str, Any], course_id: int
) -> Any:
    links = _link_ids(conn, course_id)
    items = [
        i for i in storage.course_line_items(conn, course_id) if i["registration_id"] == reg["id"]
    ]
    args = request.args
    resource_id = args.get("resource_id")
    link_filter = args.get("resource_link_id") or (
        args.get("lti_link_id") if not sb.is_canvas else None
    )
    tag = args.get("tag")
    if resource_id is not None:
        items = [i for i in items if (i["resource_id"] or "") == resource_id]
    if tag is not None:
        items = [i for i in items if (i["tag"] or "") == tag]
    if link_filter is not None:
        key = "uuid" if sb.is_canvas else "id"
        items = [
            i
            for i in items
            if i["resource_link_id"] and str(links[i["resource_link_id"]][key]) == str(link_filter)
        ]
    endpoint = f"{sb.base_url}{request.path}"
    if sb.is_canvas:
        page, link = canvas_page(items, endpoint, default=10, maximum=50)
    else:
        params = [(k, args[k]) for k in ("resource_id", "resource_link_id", "tag") if k in args]
        page, link = moodle_offset(items, endpoint, [*params, ("type_id", reg["id"])])
    resp = _media_response([item_json(sb, reg, i, links) for i in page], MT_LINEITEM_CONTAINER)
    if link:
        resp.headers["Link"] = link
    return resp


def _find_link(
    conn: sqlite3.Connection, sb: SandboxContext, course_id: int, value: Any
) -> dict[str, Any] | None:
    for rl in storage.course_resource_links(conn, course_id):
        if (sb.is_canvas and rl["uuid"] == value) or (
            not sb.is_canvas and str(rl["id"]) == str(value)
        ):
            return rl
    return None


def _create_lineitem(
    sb: SandboxContext,
    conn: sqlite3.Connection,
    reg: dict[str, Any],
    course_id: int,
    body: dict[str, Any],
) -> Any:
    label, maximum = body.get("label"), body.get("scoreMaximum")
    canvas = sb.is_canvas
    if canvas:
        if not isinstance(label, str) or not label.strip():
            raise ServiceError(400, "param is missing or the value is empty: label")
        if maximum is None:
            raise ServiceError(400, "param is missing or the value is empty: scoreMaximum")
        if not _is_number(maximum) or maximum < 0:
            raise ServiceError(422, "scoreMaximum must be a number greater than or equal to 0")
    elif not isinstance(label, str) or maximum is None or not _is_number(maximum):
        raise ServiceError(400, "No label or Score Maximum")
    link_value = body.get("resourceLinkId")
    if link_value is None and not canvas:
        link_value = body.get("ltiLinkId")
    rl = None
    if link_value is not None:
        rl = _find_link(conn, sb, course_id, link_value)
        if rl is None:
            raise ServiceError(
                404 if canvas else 403, "Resource link not found" if canvas else "Invalid LTI id"
            )
        if canvas and not storage.line_items_of_link(conn, rl["id"]):
            # Canvas adds extra line items only to a link whose assignment already has one (A9).
            raise ServiceError(412, "The specified resource link has no active line items")
    extra: dict[str, Any] = {}
    if canvas and CANVAS_SUBMISSION_TYPE_EXT in body:
        ext = body[CANVAS_SUBMISSION_TYPE_EXT]
        if not isinstance(ext, dict) or ext.get("type") not in ("none", "external_tool"):
            bad = ext.get("type") if isinstance(ext, dict) else ext
            raise ServiceError(400, f"Invalid submission_type for new assignment: {bad}")
        extra[CANVAS_SUBMISSION_TYPE_EXT] = ext
    with storage.transaction(conn):
        item_id = storage.insert_line_item(
            conn,
            course_id=course_id,
            registration_id=reg["id"],
            label=label,
            score_maximum=float(maximum),
            resource_id=_str_or_none(body.get("resourceId")),
            tag=_str_or_none(body.get("tag")),
            resource_link_id=rl["id"] if rl else None,
            start_date_time=_str_or_none(body.get("startDateTime")) if canvas else None,
            end_date_time=_str_or_none(body.get("endDateTime")) if canvas else None,
            coupled=0,
            extra=extra,
        )
    item = storage.get_line_item(conn, course_id, item_id)
    assert item is not None
    if canvas:
        out = item_json(sb, reg, item, _link_ids(conn, course_id))
    else:
        # Moodle echoes the request body with the new id (B8).
        out = {**body, "id": sb.flavor.lineitem_url(sb.base_url, course_id, item_id, reg["id"])}
    return _media_response(out, MT_LINEITEM, 201)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def lineitem(course_id: int, item_id: int) -> Any:
    sb = ctx()
    conn = db()
    moodle = not sb.is_canvas
    if request.method == "GET":
        if moodle:
            _moodle_accept((MT_LINEITEM,))
        reg = require_scopes({SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY})
    else:
        if moodle and request.method == "PUT":
            _moodle_content_type((MT_LINEITEM,))
        reg = require_scopes({SCOPE_LINEITEM})
    _course(conn, course_id, sb)
    item = _line_item(conn, sb, reg, course_id, item_id)
    if request.method == "GET":
        return _media_response(item_json(sb, reg, item, _link_ids(conn, course_id)), MT_LINEITEM)
    if request.method == "DELETE":
        if item["coupled"]:
            # A line item the platform created (an assignment / activity grade item).
            if sb.is_canvas:
                raise ServiceError(
                    401, "Cannot delete the primary line item of an assignment created in Canvas"
                )
            raise ServiceError(403, "Cannot delete an activity's grade item")
        with storage.transaction(conn):
            conn.execute("DELETE FROM line_items WHERE id = ?", (item_id,))
        return Response(status=204)
    return _update_lineitem(sb, conn, reg, item, _json_body(strict=moodle))


def _update_lineitem(
    sb: SandboxContext,
    conn: sqlite3.Connection,
    reg: dict[str, Any],
    item: dict[str, Any],
    body: dict[str, Any],
) -> Any:
    canvas = sb.is_canvas
    updates: dict[str, Any] = {}
    if canvas:
        if "label" in body:
            if not isinstance(body["label"], str) or not body["label"].strip():
                raise ServiceError(422, "label must be a non-empty string")
            updates["label"] = body["label"]
        if "scoreMaximum" in body:
            if not _is_number(body["scoreMaximum"]) or body["scoreMaximum"] < 0:
                raise ServiceError(422, "scoreMaximum must be a number greater than or equal to 0")
            updates["score_maximum"] = float(body["scoreMaximum"])
        for key, col in (("resourceId", "resource_id"), ("tag", "tag")):
            if key in body:
                updates[col] = _str_or_none(body[key])
        for key, col in (("startDateTime", "start_date_time"), ("endDateTime", "end_date_time")):
            if key in body:
                updates[col] = _str_or_none(body[key])
    else:
        if not isinstance(body.get("label"), str) or "scoreMaximum" not in body:
            raise ServiceError(400, "No label or Score Maximum")
        if not _is_number(body["scoreMaximum"]):
            raise ServiceError(400, "Score Maximum must be numeric")
        updates = {
            "label": body["label"],
            "score_maximum": float(body["scoreMaximum"]),
            "resource_id": _str_or_none(body.get("resourceId")) or "",
            "tag": _str_or_none(body.get("tag")) or "",
        }
        link_value = body.get("resourceLinkId", body.get("ltiLinkId"))
        if link_value is not None:
            if not str(link_value).isdigit():
                raise ServiceError(400, "resourceLinkId must be numeric")
            rl = _find_link(conn, sb, item["course_id"], link_value)
            if rl is None:
                raise ServiceError(403, "Invalid LTI id")
            updates["resource_link_id"] = rl["id"]
    with storage.transaction(conn):
        if updates:
            sets = ", ".join(f"{col} = :{col}" for col in updates)
            conn.execute(
                f"UPDATE line_items SET {sets} WHERE id = :id", {**updates, "id": item["id"]}
            )  # noqa: S608
        new_max = updates.get("score_maximum")
        if new_max is not None and item["score_maximum"] and new_max != item["score_maximum"]:
            # Moodle rescales existing grades keeping percentages; Canvas re-scales the
            # submission too when points_possible changes. Either way the gradebook follows.
            factor = new_max / item["score_maximum"]
            conn.execute(
                "UPDATE results SET grade = grade * ? WHERE line_item_id = ?", (factor, item["id"])
            )
            if not canvas:
                conn.execute(
                    "UPDATE results SET result_score = result_score * ? WHERE line_item_id = ?",
                    (factor, item["id"]),
                )
    fresh = storage.get_line_item(conn, item["course_id"], item["id"])
    assert fresh is not None
    if canvas:
        return _media_response(
            item_json(sb, reg, fresh, _link_ids(conn, item["course_id"])), MT_LINEITEM
        )
    out = {
        **body,
        "id": sb.flavor.lineitem_url(sb.base_url, item["course_id"], item["id"], reg["id"]),
    }
    return _media_response(out, MT_LINEITEM)


# -- scores ------------------------------------------------------------------------------------


def scores(course_id: int, item_id: int) -> Any:
    sb = ctx()
    conn = db()
    if request.method != "POST":
        raise ServiceError(405, "Invalid request method specified.")
    if not sb.is_canvas:
        _moodle_content_type((MT_SCORE, MT_SCORE_CONTAINER))
    reg = require_scopes({SCOPE_SCORE})
    _course(conn, course_id, sb)
    item = _line_item(conn, sb, reg, course_id, item_id)
    raw = request.get_data(as_text=True)
    if sb.is_canvas:
        return _canvas_score(sb, conn, reg, item, _json_body(strict=False), raw)
    return _moodle_score(sb, conn, item, raw)


def _find_student(
    conn: sqlite3.Connection, sb: SandboxContext, course_id: int, user_id: Any
) -> dict[str, Any] | None:
    """The course's student whose id (or, in Canvas, lti_id) is user_id; None otherwise.

    One query rather than a walk over the roster: benchmarks enrol hundreds.
    """
    uuid = user_id if sb.is_canvas and isinstance(user_id, str) else None
    member = storage.one(
        conn,
        "SELECT u.*, e.role FROM enrollments e JOIN users u ON u.id = e.user_id "
        "WHERE e.course_id = ? AND (CAST(u.id AS TEXT) = ? OR u.uuid = ?)",
        (course_id, str(user_id), uuid),
    )
    return member if member is not None and member["role"] == "student" else None


def _canvas_score(
    sb: SandboxContext,
    conn: sqlite3.Connection,
    reg: dict[str, Any],
    item: dict[str, Any],
    body: dict,
    raw: str,
) -> Any:
    for name in ("userId", "activityProgress", "gradingProgress", "timestamp"):
        if body.get(name) in (None, ""):
            raise ServiceError(400, f"param is missing or the value is empty: {name}")
    student = _find_student(conn, sb, item["course_id"], body["userId"])
    if student is None:
        raise ServiceError(422, "User not found in course or is not a student")
    ts = parse_timestamp(body["timestamp"])
    if ts is None:
        raise ServiceError(400, f"Provided timestamp of {body['timestamp']} not a valid timestamp")
    if body["activityProgress"] not in ACTIVITY_PROGRESS:
        raise ServiceError(422, f"Invalid activityProgress: {body['activityProgress']}")
    if body["gradingProgress"] not in GRADING_PROGRESS:
        raise ServiceError(422, f"Invalid gradingProgress: {body['gradingProgress']}")
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    for name, value in (("scoreGiven", given), ("scoreMaximum", maximum)):
        if value is not None and not _is_number(value):
            raise ServiceError(400, f"{name} must be a number")
    grading = body["gradingProgress"]
    ignore_score = grading not in ("FullyGraded", "PendingManual") or given is None
    if not ignore_score:
        if maximum is None:
            raise ServiceError(422, "ScoreMaximum not supplied when ScoreGiven present.")
        if maximum < 0:
            raise ServiceError(422, "ScoreMaximum must be greater than or equal to 0")
        if maximum == 0 and item["score_maximum"] != 0:
            raise ServiceError(
                422, "ScoreMaximum cannot be zero if line item's maximum is not zero"
            )
        if given < 0:
            raise ServiceError(422, "ScoreGiven must be greater than or equal to 0")
    ext = (
        body.get(CANVAS_SUBMISSION_EXT) if isinstance(body.get(CANVAS_SUBMISSION_EXT), dict) else {}
    )
    with storage.transaction(conn):
        previous = storage.one(
            conn,
            "SELECT * FROM results WHERE line_item_id = ? AND user_id = ?",
            (item["id"], student["id"]),
        )
        # Older than the stored result -> 400; an equal timestamp is fine (A9).
        if previous is not None and previous["ts"] > ts:
            raise ServiceError(
                400,
                f"Provided timestamp of {body['timestamp']} before last updated timestamp "
                f"of {previous['timestamp']}",
            )
        if ignore_score:
            keep = ext.get("preserve_score") is True and previous is not None
            grade = previous["grade"] if keep else None
        elif maximum and not math.isclose(maximum, 0.0):
            grade = given * item["score_maximum"] / maximum
        else:
            grade = given
        result_id = _store_score(
            conn, item, student, body, raw, ts, grade, result_score=given, result_max=maximum
        )
    result_url = sb.flavor.lineitem_sub_url(
        sb.base_url, item["course_id"], item["id"], reg["id"], f"results/{result_id}"
    )
    return _media_response(
        {"resultUrl": result_url, CANVAS_SUBMISSION_EXT: {"content_items": []}}, MT_SCORE
    )


def _moodle_score(
    sb: SandboxContext, conn: sqlite3.Connection, item: dict[str, Any], raw: str
) -> Any:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None

    def incorrect() -> ServiceError:
        return ServiceError(400, "Incorrect score received" + raw)

    if not isinstance(body, dict):
        raise incorrect()
    for name in ("userId", "timestamp", "gradingProgress", "activityProgress"):
        if body.get(name) in (None, ""):
            raise incorrect()
    ts = parse_timestamp(body["timestamp"])
    if ts is None:
        raise incorrect()
    if (
        body["activityProgress"] not in ACTIVITY_PROGRESS
        or body["gradingProgress"] not in GRADING_PROGRESS
    ):
        raise incorrect()
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    if given is not None and (not _is_number(given) or maximum is None):
        raise incorrect()  # scoreGiven requires scoreMaximum (B8)
    if maximum is not None and not _is_number(maximum):
        raise incorrect()
    student = _find_student(conn, sb, item["course_id"], body["userId"])
    if student is None:
        raise incorrect()
    if maximum is None:
        maximum = 1  # Moodle's default (B8)
    # Only FullyGraded keeps the score; anything else, or no scoreGiven, clears the grade.
    if body["gradingProgress"] == "FullyGraded" and given is not None:
        grade = (
            given * item["score_maximum"] / maximum
            if maximum and maximum != item["score_maximum"]
            else given
        )
    else:
        grade = None
    with storage.transaction(conn):
        previous = storage.one(
            conn,
            "SELECT * FROM results WHERE line_item_id = ? AND user_id = ?",
            (item["id"], student["id"]),
        )
        # timemodified >= strtotime(timestamp) -> 409: equal is refused, whole seconds (B8).
        if previous is not None and math.floor(previous["ts"]) >= math.floor(ts):
            raise ServiceError(
                409,
                f"Refusing score with an earlier timestamp for item {item['id']} "
                f"and user {student['id']}",
            )
        _store_score(
            conn, item, student, body, raw, ts, grade, result_score=grade, result_max=maximum
        )
    return Response("", status=200, content_type=f"{MT_SCORE}; charset=utf-8")


def _store_score(
    conn: sqlite3.Connection,
    item: dict[str, Any],
    student: dict[str, Any],
    body: dict[str, Any],
    raw: str,
    ts: float,
    grade: float | None,
    *,
    result_score: float | None,
    result_max: float | None,
) -> int:
    """Append the score to the history and upsert the current result; returns the result id."""
    now = storage.now()
    comment = body.get("comment") if isinstance(body.get("comment"), str) else None
    conn.execute(
        "INSERT INTO scores (line_item_id, user_id, score_given, score_maximum, activity_progress, "
        "grading_progress, comment, timestamp, ts, grade, body, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            item["id"],
            student["id"],
            body.get("scoreGiven"),
            body.get("scoreMaximum"),
            body.get("activityProgress"),
            body.get("gradingProgress"),
            comment,
            body["timestamp"],
            ts,
            grade,
            raw,
            now,
        ),
    )
    conn.execute(
        "INSERT INTO results (line_item_id, user_id, result_score, result_maximum, grade, comment, "
        "activity_progress, grading_progress, timestamp, ts, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (line_item_id, user_id) DO UPDATE SET "
        "result_score = excluded.result_score, result_maximum = excluded.result_maximum, "
        "grade = excluded.grade, comment = excluded.comment, "
        "activity_progress = excluded.activity_progress, "
        "grading_progress = excluded.grading_progress, "
        "timestamp = excluded.timestamp, ts = excluded.ts, updated_at = excluded.updated_at",
        (
            item["id"],
            student["id"],
            result_score,
            result_max,
            grade,
            comment,
            body.get("activityProgress"),
            body.get("gradingProgress"),
            body["timestamp"],
            ts,
            now,
        ),
    )
    row = conn.execute(
        "SELECT id FROM results WHERE line_item_id = ? AND user_id = ?", (item["id"], student["id"])
    ).fetchone()
    return int(row["id"])


# -- results -----------------------------------------------------------------------------------


def _result_json(
    sb: SandboxContext, reg: dict[str, Any], item: dict[str, Any], res: dict[str, Any]
) -> dict:
    base, cid, lid = sb.base_url, item["course_id"], item["id"]
    score_of = sb.flavor.lineitem_url(base, cid, lid, reg["id"])
    if sb.is_canvas:
        out = {
            "id": sb.flavor.lineitem_sub_url(base, cid, lid, reg["id"], f"results/{res['id']}"),
            "scoreOf": score_of,
            "userId": res["uuid"],
            "resultScore": res["result_score"],
            "resultMaximum": res["result_maximum"],
            "comment": res["comment"],
        }
        return {k: v for k, v in out.items() if v is not None}
    rid = (
        sb.flavor.lineitem_sub_url(base, cid, lid, reg["id"], "results")
        + f"&user_id={res['user_id']}"
    )
    if res["grade"] is None:
        return {"id": rid, "userId": str(res["user_id"])}  # no final grade: id and userId only (B8)
    out = {
        "id": rid,
        "userId": str(res["user_id"]),
        "resultScore": res["result_score"],
        "resultMaximum": res["result_maximum"],
        "comment": res["comment"] or "",
        "scoreOf": score_of,
        "timestamp": datetime.fromtimestamp(math.floor(res["ts"]), timezone.utc).isoformat(),
    }
    return out


def results(course_id: int, item_id: int, result_id: int | None = None) -> Any:
    sb = ctx()
    conn = db()
    if not sb.is_canvas:
        _moodle_accept((MT_RESULT_CONTAINER,))
    reg = require_scopes({SCOPE_RESULT_READONLY})
    _course(conn, course_id, sb)
    item = _line_item(conn, sb, reg, course_id, item_id)
    all_results = storage.rows(
        conn,
        "SELECT r.*, u.uuid FROM results r JOIN users u ON u.id = r.user_id "
        "JOIN enrollments e ON e.user_id = r.user_id AND e.course_id = ? AND e.role = 'student' "
        "WHERE r.line_item_id = ? ORDER BY r.id",
        (course_id, item_id),
    )
    if result_id is not None:
        match = [r for r in all_results if r["id"] == result_id]
        if not match:
            raise ServiceError(404, "Result not found")
        return _media_response(_result_json(sb, reg, item, match[0]), MT_RESULT_CONTAINER)
    user_filter = request.args.get("user_id")
    if user_filter:
        all_results = [
            r
            for r in all_results
            if user_filter in (str(r["user_id"]), r["uuid"] if sb.is_canvas else "")
        ]
    endpoint = f"{sb.base_url}{request.path}"
    if sb.is_canvas:
        page, link = canvas_page(all_results, endpoint, default=10, maximum=50)
    else:
        page, link = moodle_offset(all_results, endpoint, [("type_id", reg["id"])])
    resp = _media_response([_result_json(sb, reg, item, r) for r in page], MT_RESULT_CONTAINER)
    if link:
        resp.headers["Link"] = link
    return resp


# -- blueprint --------------------------------------------------------------------------------


def make_blueprint(flavor: Flavor) -> Blueprint:
    bp = Blueprint("sandbox_ags", __name__)
    if flavor.name == "canvas":
        root = "/api/lti/courses/<int:course_id>/line_items"
        item = root + "/<int:item_id>"
    else:
        root = "/mod/lti/services.php/<int:course_id>/lineitems"
        item = root + "/<int:item_id>/lineitem"
    bp.add_url_rule(root, "lineitems", lineitems, methods=["GET", "POST"])
    bp.add_url_rule(item, "lineitem", lineitem, methods=["GET", "PUT", "DELETE"])
    bp.add_url_rule(item + "/scores", "scores", scores, methods=["GET", "POST"])
    bp.add_url_rule(item + "/results", "results", results, methods=["GET"])
    if flavor.name == "canvas":
        bp.add_url_rule(item + "/results/<int:result_id>", "result", results, methods=["GET"])
    return bp
