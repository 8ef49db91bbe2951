"""Pages after launch: the role's landing page and the account page."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, g, render_template, request

from lti_tool.launch.tool_session import COOKIE, load_session
from lti_tool.services import services
from lti_tool.web import get_db

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
            if request.method not in SAFE_METHODS and \
                    request.headers.get("Sec-Fetch-Site") == "cross-site":
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
    template = "teacher_home.html" if current.is_teacher else "student_home.html"
    return render_template(template, current=current)


@bp.route("/account")
@require_session
def account(current):
    return render_template("account.html", current=current)
