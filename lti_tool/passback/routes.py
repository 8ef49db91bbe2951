"""Teacher pages for LMS grades: which playlist an activity shows, how mastery
becomes its LMS score (with a preview of every student's score), sync status
with failures and "sync now", and the roster sync."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from lti_tool.courses.models import ResourceLink
from lti_tool.courses.routes import require_session
from lti_tool.grades import service as grading
from lti_tool.passback import line_items, platform_client, roster, rules, service
from lti_tool.passback.models import RULES, CourseServices, LineItem
from lti_tool.passback.service import PassbackError
from lti_tool.playlists import service as playlists
from lti_tool.playlists.models import Playlist
from lti_tool.web import get_db, refuse

bp = Blueprint("passback", __name__)


@bp.route("/course/link/bind", methods=["POST"])
@require_session(teacher=True, course=True)
def bind(current):
    """The activity this session was launched from shows this playlist."""
    db = get_db()
    link_pk = current.row.resource_link_pk
    raw = request.form.get("playlist_id", "")
    if link_pk is None:
        return refuse(PassbackError("Open Pathwise from an activity in the LMS to choose what "
                                   "it shows."))
    existing = service.placement_for_link(db, link_pk)
    if existing is not None:
        return redirect(url_for("passback.placement", placement_id=existing.id,
                                t=current.token), code=303)
    if not raw.isdigit():
        return refuse(PassbackError("Choose the playlist this activity shows."))
    try:
        placement = service.bind(db, current.course.id, link_pk, int(raw))
        playlist = db.get(Playlist, placement.playlist_id)
        playlist.published = True  # placing a playlist in the LMS shares it with students
        db.commit()
    except (PassbackError, playlists.PlaylistError) as exc:
        return refuse(PassbackError(str(exc), exc.status))
    return redirect(url_for("passback.placement", placement_id=placement.id,
                            t=current.token), code=303)


def _page(current, placement, *, error=None, message=None, preview_rule=None,
          preview_max=None, preview_power=None, status=200):
    db = get_db()
    course_id = current.course.id
    students = service.active_students(db, course_id)
    scores = service.compute_scores(db, course_id, placement, students, rule=preview_rule,
                                    score_maximum=preview_max, power_incomplete=preview_power)
    policy = grading.policy_for(db, course_id)
    levels = grading.scale_for(db, course_id)
    label = next((lvl.label for lvl in levels if lvl.points == policy.mastery_points),
                 "Mastery")
    link = db.get(ResourceLink, placement.resource_link_pk)
    standards = service.placement_standards(db, course_id, placement)
    # A standard added to the playlist after its columns were made has no LMS
    # column yet: say so, since its scores cannot be sent until "Save".
    columns = set(db.scalars(select(LineItem.standard_id).where(
        LineItem.placement_id == placement.id, LineItem.standard_id.is_not(None))))
    missing = [s for s in standards if s.id not in columns] \
        if placement.passback_enabled and placement.rule == "per_standard" else []
    return render_template(
        "passback/placement.html", current=current, placement=placement, link=link,
        playlist=db.get(Playlist, placement.playlist_id), scores=scores,
        standards=standards, missing_columns=missing,
        status=service.sync_status(db, placement), rules=RULES,
        labels=rules.RULE_LABELS,
        explanations={r: rules.explain_rule(r, preview_max or placement.score_maximum, label)
                      for r in RULES},
        chosen_rule=preview_rule or placement.rule,
        chosen_max=preview_max or placement.score_maximum,
        chosen_power=placement.power_incomplete if preview_power is None else preview_power,
        error=error, message=message), status


@bp.route("/course/placements/<int:placement_id>", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def placement(current, placement_id: int):
    db = get_db()
    try:
        row = service.course_placement(db, current.course.id, placement_id)
    except PassbackError:
        abort(404)
    if request.method == "GET":
        return _page(current, row, message=request.args.get("message"))
    action = request.form.get("action", "preview")
    try:
        rule, maximum, power = service.parse_settings(request.form)
    except PassbackError as exc:
        db.rollback()
        return _page(current, row, error=str(exc), status=400)
    if action == "preview":
        return _page(current, row, preview_rule=rule, preview_max=maximum, preview_power=power,
                     message="Preview only: nothing is sent until you save.")
    enabled = action == "enable" or (action == "save" and row.passback_enabled)
    if action == "disable":
        enabled = False
    try:
        if enabled:
            line_items.ensure_line_items(db, row, rule, maximum)
        queued = service.save_settings(db, row, rule=rule, score_maximum=maximum,
                                       power_incomplete=power, enabled=enabled)
        db.commit()
    except PassbackError as exc:
        db.rollback()
        row = service.course_placement(db, current.course.id, placement_id)
        return _page(current, row, error=str(exc), status=exc.status)
    text = (f"Saved. {queued} score(s) are on their way to the LMS." if enabled
            else "Saved. Scores are not sent to the LMS.")
    return redirect(url_for("passback.placement", placement_id=row.id, t=current.token,
                            message=text), code=303)


@bp.route("/course/placements/<int:placement_id>/sync", methods=["POST"])
@require_session(teacher=True, course=True)
def sync(current, placement_id: int):
    db = get_db()
    try:
        row = service.course_placement(db, current.course.id, placement_id)
    except PassbackError:
        abort(404)
    if not row.passback_enabled:
        return refuse(PassbackError("Turn on sending scores first."))
    count = service.sync_now(db, row)
    db.commit()
    return redirect(url_for("passback.placement", placement_id=row.id, t=current.token,
                            message=f"Sync started: {count} score(s) queued or retried."),
                    code=303)


@bp.route("/course/roster/sync", methods=["POST"])
@require_session(teacher=True, course=True)
def roster_sync(current):
    """On demand: fetch every page of the LMS roster now."""
    settings = current_app.extensions["pathwise"].settings
    course_id = current.course.id
    get_db().rollback()  # no transaction held while the LMS answers
    try:
        result = roster.sync_course(settings.database_url, settings.keys_dir, course_id)
    except platform_client.ServiceError as exc:
        return render_template("error.html", status=502, title="The roster could not be "
                               "fetched", text=f"The LMS did not send the roster: "
                               f"{exc.detail or exc.kind}. Try again in a minute."), 502
    return redirect(url_for("grades.gradebook", t=current.token,
                            roster=f"{result.students}"), code=303)


def roster_status(db, course_id: int) -> CourseServices | None:
    return db.get(CourseServices, course_id)
