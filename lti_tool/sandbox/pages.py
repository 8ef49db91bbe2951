"""The sandbox's own pages: pick a person, open the course, launch the tool, see the gradebook.

The sandbox is the top-level site, so its own cookie session is first-party here. The launch
itself does not depend on that cookie (see oidc.py): the course page creates the launch row
and frames `/lti/initiate/<launch id>`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, session, url_for

from . import registration, storage
from .app import ctx, db, error_page
from .claims import (
    CANVAS_DL_PLACEMENTS,
    DEEP_LINKING_REQUEST,
    MOODLE_DL_PLACEMENT,
    RESOURCE_LINK_REQUEST,
)
from .flavors import Flavor
from .oidc import create_launch

PLACEMENT_LABELS = {
    "assignment_selection": "Add a graded assignment from Pathwise",
    "link_selection": "Add Pathwise content to a module",
    MOODLE_DL_PLACEMENT: "Add an activity: select content from Pathwise",
}


def _fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_num(value: float | None) -> str:
    if value is None:
        return "\u2014"
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def _current_member(conn: sqlite3.Connection, course_id: int) -> dict[str, Any] | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    for member in storage.course_members(conn, course_id):
        if member["id"] == user_id:
            return member
    return None


def _course_and_member(conn: sqlite3.Connection, course_id: int
                       ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The course (404 when unknown) and the signed-in person's membership in it."""
    course_row = storage.get_course(conn, course_id)
    if course_row is None:
        abort(404)
    return course_row, _current_member(conn, course_id)


def _dl_placements() -> list[str]:
    return list(CANVAS_DL_PLACEMENTS) if ctx().is_canvas else [MOODLE_DL_PLACEMENT]


def make_blueprint(flavor: Flavor) -> Blueprint:
    bp = Blueprint("sandbox_pages", __name__)
    bp.app_template_filter("time")(_fmt_time)
    bp.app_template_filter("num")(_fmt_num)

    @bp.route("/")
    def home() -> Any:
        conn = db()
        courses = storage.list_courses(conn)
        people = {c["id"]: storage.course_members(conn, c["id"]) for c in courses}
        return render_template("sandbox/home.html", courses=courses, people=people)

    @bp.route("/session", methods=["POST"])
    def sign_in() -> Any:
        conn = db()
        course_id = request.form.get("course_id", type=int)
        user_id = request.form.get("user_id", type=int)
        if (
            course_id is None
            or user_id is None
            or storage.enrollment_role(conn, course_id, user_id) is None
        ):
            return error_page(
                "Choose a person", "Pick a person enrolled in the course, then open it.", 400
            )
        session.clear()
        session["user_id"] = user_id
        return redirect(url_for("sandbox_pages.course", course_id=course_id), code=303)

    @bp.route("/logout", methods=["POST"])
    def sign_out() -> Any:
        session.clear()
        return redirect(url_for("sandbox_pages.home"), code=303)

    @bp.route("/courses/<int:course_id>")
    def course(course_id: int) -> Any:
        conn = db()
        course_row, me = _course_and_member(conn, course_id)
        if me is None:
            return redirect(url_for("sandbox_pages.home"))
        links = storage.course_resource_links(conn, course_id)
        graded = {rl["id"]: storage.line_items_of_link(conn, rl["id"]) for rl in links}
        return render_template(
            "sandbox/course.html",
            course=course_row,
            me=me,
            links=links,
            graded=graded,
            placements=[(p, PLACEMENT_LABELS[p]) for p in _dl_placements()],
            dynamic_tools=[t for t in registration.dynamic_tools(conn)
                           if "course_navigation" in t["placements"]],
        )

    def _launch_page(
        course_id: int,
        *,
        message_type: str,
        placement: str | None,
        rl_id: int | None,
        title: str,
        registration_id: int | None = None,
    ) -> Any:
        sb = ctx()
        conn = db()
        course_row, me = _course_and_member(conn, course_id)
        if me is None:
            return redirect(url_for("sandbox_pages.home"))
        if message_type == DEEP_LINKING_REQUEST and me["role"] != "teacher":
            return error_page("Teachers only", "Only a teacher can add content to the course.", 403)
        try:
            launch = create_launch(
                sb,
                conn,
                user_id=me["id"],
                course_id=course_id,
                message_type=message_type,
                placement=placement,
                resource_link_id=rl_id,
                registration_id=registration_id,
            )
        except LookupError as exc:
            return error_page("Cannot launch", str(exc), 404)
        return render_template(
            "sandbox/launch.html",
            course=course_row,
            me=me,
            title=title,
            frame_src=url_for("sandbox_oidc.initiate", launch_id=launch["id"]),
        )

    if flavor.name == "canvas":

        @bp.route("/courses/<int:course_id>/launch/nav")
        def launch_nav(course_id: int) -> Any:
            # Canvas course_navigation placement: a launch with no resource link (A4).
            # ?tool=<id>: a tool registered dynamically (its own course navigation link).
            return _launch_page(
                course_id,
                message_type=RESOURCE_LINK_REQUEST,
                placement="course_navigation",
                rl_id=None,
                title="Pathwise",
                registration_id=request.args.get("tool", type=int),
            )

    @bp.route("/courses/<int:course_id>/assignments")
    def assignments(course_id: int) -> Any:
        # Canvas's launch_presentation.return_url for assignment launches.
        return redirect(url_for("sandbox_pages.course", course_id=course_id))

    @bp.route("/courses/<int:course_id>/launch/link/<int:rl_id>")
    def launch_link(course_id: int, rl_id: int) -> Any:
        rl = storage.get_resource_link(db(), rl_id)
        if rl is None or rl["course_id"] != course_id:
            abort(404)
        return _launch_page(
            course_id,
            message_type=RESOURCE_LINK_REQUEST,
            placement=None,
            rl_id=rl_id,
            title=rl["title"],
            registration_id=rl["registration_id"],
        )

    @bp.route("/courses/<int:course_id>/launch/deep_link/<placement>")
    def launch_deep_link(course_id: int, placement: str) -> Any:
        if placement not in _dl_placements():
            abort(404)
        return _launch_page(
            course_id,
            message_type=DEEP_LINKING_REQUEST,
            placement=placement,
            rl_id=None,
            title=PLACEMENT_LABELS[placement],
            registration_id=request.args.get("tool", type=int),
        )

    if flavor.name == "canvas":

        @bp.route("/lti/post_message_forwarding")
        def post_message_forwarding() -> Any:
            # The hidden sibling frame that answers lti.put_data / lti.get_data (A11).
            return render_template("sandbox/post_message_forwarding.html")

    else:

        @bp.route("/mod/lti/return.php")
        def moodle_return() -> Any:
            course_id = request.args.get("course", type=int)
            if course_id is None:
                return redirect(url_for("sandbox_pages.home"))
            return redirect(url_for("sandbox_pages.course", course_id=course_id))

    @bp.route("/gradebook")
    def gradebook_default() -> Any:
        course_id = request.args.get("course", type=int)
        if course_id is None:
            courses = storage.list_courses(db())
            if not courses:
                return error_page("No course", "Seed the sandbox first.", 404)
            course_id = courses[0]["id"]
        return gradebook(course_id)

    @bp.route("/courses/<int:course_id>/gradebook")
    def gradebook(course_id: int) -> Any:
        data = gradebook_data(db(), course_id)
        if data is None:
            abort(404)
        return render_template("sandbox/gradebook.html", **data)

    @bp.route("/gradebook.json")
    def gradebook_json() -> Any:
        """Machine-readable gradebook for end-to-end tests."""
        conn = db()
        course_id = request.args.get("course", type=int)
        if course_id is None:
            courses = storage.list_courses(conn)
            course_id = courses[0]["id"] if courses else 0
        data = gradebook_data(conn, course_id)
        if data is None:
            abort(404)
        return jsonify(
            {
                "course": {k: data["course"][k] for k in ("id", "label", "title")},
                "line_items": [
                    {
                        **{
                            k: e["item"][k]
                            for k in (
                                "id",
                                "label",
                                "score_maximum",
                                "resource_id",
                                "tag",
                                "coupled",
                            )
                        },
                        "resource_link_id": e["item"]["resource_link_id"],
                        "results": e["results"],
                        "scores": e["scores"],
                    }
                    for e in data["entries"]
                ],
            }
        )

    return bp


def gradebook_data(conn: sqlite3.Connection, course_id: int) -> dict[str, Any] | None:
    course_row = storage.get_course(conn, course_id)
    if course_row is None:
        return None
    students = [m for m in storage.course_members(conn, course_id) if m["role"] == "student"]
    names = {m["id"]: f"{m['given_name']} {m['family_name']}" for m in students}
    links = {rl["id"]: rl for rl in storage.course_resource_links(conn, course_id)}
    entries = []
    for item in storage.course_line_items(conn, course_id):
        results = storage.rows(
            conn,
            "SELECT user_id, result_score, result_maximum, grade, comment, activity_progress, "
            "grading_progress, timestamp, updated_at FROM results WHERE line_item_id = ?",
            (item["id"],),
        )
        by_user = {r["user_id"]: r for r in results}
        scores = storage.rows(
            conn,
            "SELECT user_id, score_given, score_maximum, activity_progress, grading_progress, "
            "comment, timestamp, grade, received_at FROM scores WHERE line_item_id = ? ORDER BY id",
            (item["id"],),
        )
        for score in scores:
            score["student"] = names.get(score["user_id"], f"user {score['user_id']}")
        rows = [
            {"student": names[m["id"]], "user_id": m["id"], "result": by_user.get(m["id"])}
            for m in students
        ]
        link = links.get(item["resource_link_id"]) if item["resource_link_id"] else None
        entries.append(
            {
                "item": item,
                "link": link,
                "rows": rows,
                "results": list(by_user.values()),
                "scores": scores,
            }
        )
    return {"course": course_row, "entries": entries}
