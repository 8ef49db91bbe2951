"""Launch and login failures: a stable code, an HTTP status, and text that
tells the person in front of the screen and the LMS administrator what to do."""

from __future__ import annotations


class LaunchError(Exception):
    def __init__(self, code: str, status: int, reason: str, action: str | None = None,
                 *, retry_after: int | None = None, new_window_url: str | None = None):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.status = status
        self.reason = reason
        self.action = action
        self.retry_after = retry_after
        self.new_window_url = new_window_url


RELAUNCH = "Go back to your course and open the activity again."
ADMIN = "If this keeps happening, ask your LMS administrator to check the Pathwise registration."


def bad_request(code: str, reason: str, action: str | None = None) -> LaunchError:
    return LaunchError(code, 400, reason, action or ADMIN)


def unauthorized(code: str, reason: str, action: str | None = None) -> LaunchError:
    return LaunchError(code, 401, reason, action or RELAUNCH)


def forbidden(code: str, reason: str, action: str | None = None) -> LaunchError:
    return LaunchError(code, 403, reason, action or ADMIN)


def invalid_message(code: str, reason: str, action: str | None = None) -> LaunchError:
    return LaunchError(code, 422, reason, action or (
        "The LMS sent an incomplete LTI message. An LMS administrator should check the "
        "tool's configuration in the LMS."))
