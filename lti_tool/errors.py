"""The one error a person can act on: bad input, or an id outside their course.

Each feature raises its own subclass (GradingError, PlaylistError, ...), so a
caller can catch one feature's refusals; routes answer all of them the same
way with `lti_tool.web.refuse`."""

from __future__ import annotations


class UserError(ValueError):
    """The message says what to fix. `status` is the HTTP answer: 400 bad
    input, 403 not yours, 404 not in this course, 409 a conflict (a locked
    item, a link bound elsewhere)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
