"""Student agency pages: goals, reflections and the learner profile.

Thin: the work is in agency.py. One commit per request; bad input re-renders
the page with a 400 and the message next to its field, and nothing is written."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for

from lti_tool.courses.routes import require_session
from lti_tool.grades import service as grades
from lti_tool.playlists import agency
from lti_tool.web import get_db, refuse

bp = Blueprint("agency", __name__)

# Messages shown after a redirect, by code (never text taken from the URL).
DONE = {
    "goal": "Your goal was added.",
    "met": "Goal marked as met. Well done!",
    "reopened": "Goal reopened.",
    "reflection": "Your reflection was saved. Your teacher can read it.",
    "profile": "Your learner profile was saved. Your teachers can read it.",
    "comment": "Your comment was added. The student sees it with their goal.",
    "requested": "Your question was sent.",
}


def _refuse(status: int, title: str, text: str):
    return render_template("error.html", status=status, title=title, text=text), status


def _students_only(current):
    if current.is_teacher:
        return _refuse(403, "For students only",
                       "This page belongs to each student. Teachers can read their "
                       "students' goals, reflections and profiles from the Goals page.")
    return None


def _done_message() -> str | None:
    return DONE.get(request.args.get("done", ""))


def _optional_id(name: str) -> int | None:
    """An optional id from the form; anything but digits is bad input."""
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise agency.AgencyError(f"Choose from the list ({name.replace('_', ' ')}).",
                                 errors={name: "Choose from the list."})
    return int(raw)


# -- student: goals ------------------------------------------------------------
@bp.route("/my/goals", methods=["GET", "POST"])
@require_session(course=True)
def my_goals(current):
    refused = _students_only(current)
    if refused:
        return refused
    db = get_db()
    if request.method == "POST":
        try:
            agency.create_goal(db, current.course.id, current.user.id,
                               request.form.get("text"),
                               standard_id=_optional_id("standard_id"),
                               due_date=request.form.get("due_date"))
            db.commit()
        except agency.AgencyError as exc:
            if exc.status != 400:
                return refuse(exc, title="Not allowed")
            db.rollback()
            return _goals_page(current, error=exc, form=request.form)
        return redirect(url_for("agency.my_goals", t=current.token, done="goal"), code=303)
    return _goals_page(current, message=_done_message())


def _goals_page(current, *, error: agency.AgencyError | None = None, form=None,
                message: str | None = None):
    db = get_db()
    course_id = current.course.id
    return render_template(
        "playlists/agency/my_goals.html", current=current,
        goals=agency.goals_for(db, course_id, current.user.id),
        standards=grades.standards_of(db, course_id), today=agency.earliest_today(),
        limit=agency.GOAL_MAX, error=str(error) if error else None,
        errors=error.errors if error else {}, form=form or {}, message=message,
    ), 400 if error else 200


@bp.route("/my/goals/<int:goal_id>/met", methods=["POST"])
@require_session(course=True)
def goal_met(current, goal_id: int):
    refused = _students_only(current)
    if refused:
        return refused
    db = get_db()
    met = request.form.get("met")
    try:
        if met not in ("1", "0"):
            raise agency.AgencyError("Choose whether the goal is met or still open.")
        agency.set_goal_met(db, current.course.id, current.user.id, goal_id, met == "1")
        db.commit()
    except agency.AgencyError as exc:
        if exc.status != 400:
            return refuse(exc, title="Not allowed")
        db.rollback()
        return _goals_page(current, error=exc)
    return redirect(url_for("agency.my_goals", t=current.token,
                            done="met" if met == "1" else "reopened"), code=303)


# -- student: reflections ------------------------------------------------------
@bp.route("/my/reflections", methods=["GET", "POST"])
@require_session(course=True)
def my_reflections(current):
    refused = _students_only(current)
    if refused:
        return refused
    db = get_db()
    course_id = current.course.id
    if request.method == "POST":
        try:
            reflection_id = _optional_id("reflection_id")
            item_id = _optional_id("item_id")
            agency.answer_reflection(db, course_id, current.user.id, request.form.get("text"),
                                     reflection_id=reflection_id, item_id=item_id)
            db.commit()
        except agency.AgencyError as exc:
            if exc.status != 400:
                return refuse(exc, title="Not allowed")
            db.rollback()
            return _reflections_page(current, error=exc, item_id=_digits("item_id"),
                                     draft=request.form.get("text") or "")
        return redirect(url_for("agency.my_reflections", t=current.token, done="reflection"),
                        code=303)
    item_id = request.args.get("item_id", "")
    return _reflections_page(current, item_id=int(item_id) if item_id.isdigit() else None,
                             message=_done_message())


def _digits(name: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    return int(raw) if raw.isdigit() else None


def _reflections_page(current, *, error: agency.AgencyError | None = None,
                      item_id: int | None = None, draft: str = "",
                      message: str | None = None):
    """Open requests with answer forms, a checkpoint's reflection form when
    `item_id` names one, and the student's past reflections."""
    db = get_db()
    course_id = current.course.id
    item = None
    if item_id is not None:
        try:
            item = agency.reflection_item(db, course_id, item_id)
        except agency.AgencyError as exc:
            if exc.status == 404:
                abort(404)
            error = error or exc
    return render_template(
        "playlists/agency/my_reflections.html", current=current, item=item,
        requests=agency.open_reflection_requests(db, course_id, current.user.id),
        past=agency.answered_reflections(db, course_id, current.user.id),
        limit=agency.REFLECTION_MAX, error=str(error) if error else None,
        errors=error.errors if error else {}, draft=draft,
        answering=_digits("reflection_id") if error else None, message=message,
    ), 400 if error else 200


# -- student: learner profile --------------------------------------------------
@bp.route("/my/profile", methods=["GET", "POST"])
@require_session(course=True)
def my_profile(current):
    if current.is_teacher:
        return _refuse(403, "For students only",
                       "Only the student writes their learner profile. You can read your "
                       "students' profiles from the Goals page.")
    db = get_db()
    course_id = current.course.id
    error = None
    if request.method == "POST":
        values = {name: request.form.get(name) for name, _ in agency.PROFILE_FIELDS}
        try:
            agency.save_profile(db, course_id, current.user.id, values)
            db.commit()
            return redirect(url_for("agency.my_profile", t=current.token, done="profile"),
                            code=303)
        except agency.AgencyError as exc:
            if exc.status != 400:
                return refuse(exc, title="Not allowed")
            db.rollback()
            error = exc
    try:
        profile = agency.profile_for(db, course_id, current.user.id)
    except agency.AgencyError as exc:
        return refuse(exc, title="Not allowed")
    values = request.form if error else {name: getattr(profile, name)
                                         for name, _ in agency.PROFILE_FIELDS}
    return render_template(
        "playlists/agency/my_profile.html", current=current, fields=agency.PROFILE_FIELDS,
        values=values, profile=profile, limit=agency.PROFILE_MAX,
        error=str(error) if error else None, errors=error.errors if error else {},
        message=None if error else _done_message(),
    ), 400 if error else 200


# -- teacher: goals ------------------------------------------------------------
@bp.route("/course/goals", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def course_goals(current):
    db = get_db()
    course_id = current.course.id
    error = None
    goal_id = None
    if request.method == "POST":
        try:
            goal_id = _optional_id("goal_id")
            if goal_id is None:
                raise agency.AgencyError("Choose the goal to comment on.")
            agency.comment_on_goal(db, course_id, current.user.id, goal_id,
                                   request.form.get("comment"))
            db.commit()
            return redirect(url_for("agency.course_goals", t=current.token, done="comment",
                                    _anchor=f"goal-{goal_id}"), code=303)
        except agency.AgencyError as exc:
            if exc.status != 400:
                return refuse(exc, title="Not allowed")
            db.rollback()
            error = exc
    return render_template(
        "playlists/agency/course_goals.html", current=current,
        students=agency.course_goals(db, course_id, current.user.id),
        limit=agency.COMMENT_MAX, error=str(error) if error else None,
        errors=error.errors if error else {}, error_goal=goal_id,
        draft=request.form.get("comment", "") if error else "",
        message=None if error else _done_message(),
    ), 400 if error else 200


# -- teacher: reflections ------------------------------------------------------
@bp.route("/course/reflections", methods=["GET", "POST"])
@require_session(teacher=True, course=True)
def course_reflections(current):
    db = get_db()
    course_id = current.course.id
    students = grades.students_of(db, course_id)
    error = None
    if request.method == "POST":
        if request.form.get("everyone") == "1":
            chosen = [s.id for s in students]
        else:
            chosen = request.form.getlist("student_ids")
        try:
            agency.request_reflection(db, course_id, current.user.id, chosen,
                                      request.form.get("prompt"))
            db.commit()
            return redirect(url_for("agency.course_reflections", t=current.token,
                                    done="requested"), code=303)
        except agency.AgencyError as exc:
            if exc.status != 400:
                return refuse(exc, title="Not allowed")
            db.rollback()
            error = exc
    return render_template(
        "playlists/agency/course_reflections.html", current=current, students=students,
        reflections=agency.course_reflections(db, course_id, current.user.id),
        limit=agency.PROMPT_MAX, error=str(error) if error else None,
        errors=error.errors if error else {}, form=request.form if error else {},
        chosen=set(request.form.getlist("student_ids")) if error else set(),
        message=None if error else _done_message(),
    ), 400 if error else 200


# -- teacher: one student ------------------------------------------------------
@bp.route("/course/students/<int:student_id>/profile")
@require_session(teacher=True, course=True)
def student_profile(current, student_id: int):
    db = get_db()
    course_id = current.course.id
    try:
        student = agency.course_student(db, course_id, student_id)
        profile = agency.profile_for(db, course_id, student_id)
    except agency.AgencyError as exc:
        return refuse(exc, title="Not allowed")
    return render_template(
        "playlists/agency/student_profile.html", current=current, student=student,
        profile=profile, fields=agency.PROFILE_FIELDS,
        goals=agency.goals_for(db, course_id, student_id),
        reflections=agency.student_reflections(db, course_id, student_id))
