"""Pages after launch: the role's landing page and the account page."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, g, render_template, request

from lti_tool.launch.tool_session import COOKIE, load_session
from lti_tool.services import services
from lti_tool.web import cross_site_change, get_db

bp = Blueprint("pages", __name__)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _token_from_request() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    if request.method not in SAFE_METHODS:
        # Changes need the token in the form or header, never only the cookie:
        # a cross-site page cannot read the token, so it cannot forge a change.
        return request.form.get("t")
    return request.args.get("t") or request.cookies.get(COOKIE)


def _refuse(status: int, title: str, text: str):
    return render_template("error.html", status=status, title=title, text=text), status


def require_session(view=None, *, teacher: bool = False, course: bool = False):
    """Pages need a tool session from a launch (signed token, then the row);
    `teacher` pages need a staff role in the course, `course` pages a course."""
    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            # CSRF: the session token `t` a change must carry (see
            # _token_from_request) plus the header checks (web.cross_site_change).
            if cross_site_change():
                return _refuse(403, "Not allowed",
                               "This change came from another site and was refused.")
            current = load_session(get_db(), services().tokens, _token_from_request())
            if current is None:
                return _refuse(401, "Your session has ended",
                               "Open Pathwise again from your course in the LMS.")
            g.current = current
            g.frame_ancestors = list(current.row.frame_origins or [])
            if teacher and not current.is_teacher:
                return _refuse(403, "For teachers only",
                               "This page is for the course's teachers.")
            if course and current.course is None:
                return _refuse(404, "No course",
                               "This activity was opened outside a course, so course "
                               "features are not available here.")
            return view(current, *args, **kwargs)
        return wrapped
    return decorate(view) if view is not None else decorate


@bp.app_context_processor
def _back_link() -> dict:
    """'Back to course' on every session page; the launch kept the LMS's
    return URL only when it points at a trusted origin."""
    current = g.get("current")
    return {"back_url": current.row.return_url if current else None}


@bp.route("/home")
@require_session
def home(current):
    # Imported here: the playlists package builds on courses, not the reverse.
    from lti_tool.playlists import agency
    from lti_tool.playlists import routes as playlist_pages
    from lti_tool.playlists import service as playlists

    db = get_db()
    if current.is_teacher:
        from lti_tool.passback import service as passback

        listed = playlists.playlists_of(db, current.course.id) if current.course else []
        placed = passback.placements_of(db, current.course.id) if current.course else []
        unbound = current.course is not None and current.row.resource_link_pk is not None \
            and passback.placement_for_link(db, current.row.resource_link_pk) is None
        return render_template("teacher_home.html", current=current, playlists=listed,
                               placements=placed, ask_binding=unbound)
    summary, assignments, goals = [], [], []
    if current.course:
        course_id, user_id = current.course.id, current.user.id
        summary = playlist_pages.student_playlists_summary(db, course_id, user_id)
        assignments = playlists.open_assignments(db, course_id, user_id)
        goals = agency.goals_for(db, course_id, user_id)
    return render_template("student_home.html", current=current, summary=summary,
                           assignments=assignments, goals=goals)


@bp.route("/account")
@require_session
def account(current):
    return render_template("account.html", current=current)
