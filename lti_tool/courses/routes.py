"""Pages after launch: the role's landing page and the account page."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, g, render_template, request

from lti_tool.launch.tool_session import COOKIE, load_session
from lti_tool.services import services
from lti_tool.web import get_db

bp = Blueprint("pages", __name__)


def _token_from_request() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    return request.values.get("t") or request.cookies.get(COOKIE)


def require_session(view):
    """Pages need a tool session from a launch: signed token, then the row."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        current = load_session(get_db(), services().tokens, _token_from_request())
        if current is None:
            return render_template(
                "error.html", status=401, title="Your session has ended",
                text="Open Pathwise again from your course in the LMS."), 401
        g.current = current
        g.frame_ancestors = list(current.row.frame_origins or [])
        return view(current, *args, **kwargs)
    return wrapped


def _back_link(current) -> str | None:
    """'Back to course', kept at launch only when it points at a trusted origin."""
    return current.row.return_url


@bp.route("/home")
@require_session
def home(current):
    template = "teacher_home.html" if current.is_teacher else "student_home.html"
    return render_template(template, current=current, back_url=_back_link(current))


@bp.route("/account")
@require_session
def account(current):
    return render_template("account.html", current=current, back_url=_back_link(current))
