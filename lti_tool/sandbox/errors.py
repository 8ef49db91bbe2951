"""Service (AGS / NRPS) errors in each platform's envelope.

Canvas: `{"errors": {"type": <status symbol>, "message": ...}}` (A9).
Moodle: `{"status": ..., "reason": ..., "request": {...}}` (B8).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request

_CANVAS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
}


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def service_error_response(err: ServiceError) -> Any:
    if current_app.config["SANDBOX_FLAVOR"] == "canvas":
        body: dict[str, Any] = {
            "errors": {"type": _CANVAS_TYPES.get(err.status, "error"), "message": err.message}
        }
    else:
        path = request.full_path.rstrip("?")
        body = {
            "status": err.status,
            "reason": err.message,
            "request": {
                "method": request.method,
                "url": path,
                "accept": request.headers.get("Accept", ""),
                "contentType": request.headers.get("Content-Type", ""),
            },
        }
    resp = jsonify(body)
    resp.status_code = err.status
    if err.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="sandbox-lms"'
    return resp
