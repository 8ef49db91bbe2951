"""Latency, fault injection, a request log and a JSON gradebook for tests and benchmarks.

Only *service* requests are affected: the token endpoint, AGS and NRPS (not the HTML pages,
OIDC or the JWKS). Each one first waits `SANDBOX_LATENCY_MS` (a plain `time.sleep` in the
request's own thread: the sandbox is served threaded, so requests still run in parallel).

With `test_controls=True` the app also gets, under `/sandbox/` (404 otherwise):

* `POST/GET/DELETE /sandbox/faults` – rules checked before the normal handler, so a faulted
  request has no effect on the sandbox's data (a 503'd score is not stored);
* `GET/DELETE /sandbox/requests` – the service requests received, bounded in memory;
* `GET /sandbox/gradebook.json?course=<id>` – the gradebook as the LMS would show it.

State lives in memory on the app (one process); drive it over HTTP from another process.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.http import HTTP_STATUS_CODES

from . import storage
from .errors import _CANVAS_TYPES
from .flavors import Flavor

SERVICE_BLUEPRINTS = frozenset({"sandbox_tokens", "sandbox_ags", "sandbox_nrps"})
REQUEST_LOG_SIZE = 20_000
SCORE_FIELDS = (
    "userId",
    "timestamp",
    "scoreGiven",
    "scoreMaximum",
    "activityProgress",
    "gradingProgress",
    "comment",
)
_RULE_KEYS = frozenset(
    {
        "match",
        "method",
        "status",
        "count",
        "retry_after",
        "body",
        "content_type",
        "headers",
        "delay_ms",
        "drop",
    }
)


class FaultSpecError(ValueError):
    """A fault rule posted to /sandbox/faults is malformed."""


@dataclass
class FaultRule:
    id: int
    match: str
    method: str | None = None
    status: int | None = None
    count: int | None = None  # how many matching requests get the fault; None = until cleared
    retry_after: str | None = None
    body: Any = None  # None = the flavour's own wording
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_ms: int = 0
    drop: bool = False
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.match in path

    def to_json(self) -> dict[str, Any]:
        remaining = None if self.count is None else max(self.count - self.fired, 0)
        return {
            "id": self.id,
            "match": self.match,
            "method": self.method,
            "status": self.status,
            "count": self.count,
            "remaining": remaining,
            "fired": self.fired,
            "retry_after": self.retry_after,
            "body": self.body,
            "content_type": self.content_type,
            "headers": self.headers,
            "delay_ms": self.delay_ms,
            "drop": self.drop,
        }

    @classmethod
    def parse(cls, rule_id: int, spec: Any) -> FaultRule:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault rule is a JSON object")
        unknown = sorted(set(spec) - _RULE_KEYS)
        if unknown:
            raise FaultSpecError(f"unknown keys: {', '.join(unknown)}")
        match = spec.get("match", "")
        if not isinstance(match, str):
            raise FaultSpecError("match must be a string (a substring of the path)")
        method = spec.get("method")
        if method is not None and (not isinstance(method, str) or not method.isalpha()):
            raise FaultSpecError("method must be an HTTP method name")
        status = _opt_int(spec, "status", 100, 599)
        count = _opt_int(spec, "count", 0, None)
        delay_ms = _opt_int(spec, "delay_ms", 0, 600_000) or 0
        drop = spec.get("drop", False)
        if not isinstance(drop, bool):
            raise FaultSpecError("drop must be true or false")
        if drop and status is not None:
            raise FaultSpecError("a dropped connection has no status: give drop or status")
        if status is None and not drop and not delay_ms:
            raise FaultSpecError("give a status, delay_ms or drop")
        retry_after = spec.get("retry_after")
        if retry_after is not None:
            if isinstance(retry_after, bool) or not isinstance(retry_after, int | float | str):
                raise FaultSpecError("retry_after must be a number or a string")
            if isinstance(retry_after, int | float):
                retry_after = str(math.ceil(retry_after))  # delta-seconds are whole numbers
        body = spec.get("body")
        if body is not None and not isinstance(body, str | dict | list):
            raise FaultSpecError("body must be a string or JSON")
        content_type = spec.get("content_type")
        if content_type is not None and not isinstance(content_type, str):
            raise FaultSpecError("content_type must be a string")
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise FaultSpecError("headers must map names to string values")
        return cls(
            id=rule_id,
            match=match,
            method=method.upper() if method else None,
            status=status,
            count=count,
            retry_after=retry_after,
            body=body,
            content_type=content_type,
            headers=headers,
            delay_ms=delay_ms,
            drop=drop,
        )


def _opt_int(spec: dict[str, Any], key: str, low: int, high: int | None) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultSpecError(f"{key} must be an integer")
    if value < low or (high is not None and value > high):
        raise FaultSpecError(f"{key} out of range")
    return value


class FaultSet:
    """The fault rules, in the order added; the first matching rule with uses left wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, spec: Any) -> FaultRule:
        with self._lock:
            rule = FaultRule.parse(self._next_id, spec)
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule this request triggers (its use counted), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.fired += 1
                    return rule
        return None

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def clear(self, rule_id: int | None = None) -> int:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if rule_id is not None and r.id != rule_id]
            return before - len(self._rules)


class RequestLog:
    """The last REQUEST_LOG_SIZE service requests, oldest first."""

    def __init__(self, size: int = REQUEST_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append({"seq": self._seq, **entry})

    def listing(self) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            return list(self._entries), self._seq

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class SandboxControls:
    """The in-memory state behind /sandbox/* (one per app)."""

    faults: FaultSet = field(default_factory=FaultSet)
    requests: RequestLog = field(default_factory=RequestLog)


# -- hooks on every request ------------------------------------------------------------------


def is_service_request() -> bool:
    return request.blueprint in SERVICE_BLUEPRINTS


def install(app: Flask, flavor: Flavor, controls: SandboxControls | None) -> None:
    """Latency for service requests; with `controls`, faults, the log and /sandbox/*."""

    @app.before_request
    def _before_service_request() -> Any:
        if not is_service_request():
            return None
        g.sandbox_started = time.time()
        latency = current_app.config.get("SANDBOX_LATENCY_MS") or 0
        if latency > 0:
            time.sleep(latency / 1000)
        if controls is None:
            return None
        rule = controls.faults.take(request.method, request.path)
        if rule is None:
            return None
        g.sandbox_fault = rule.id
        if rule.delay_ms:
            time.sleep(rule.delay_ms / 1000)
        if rule.drop:
            return _drop_connection(controls)
        if rule.status is None:
            return None  # delay only: answer normally
        return fault_response(flavor, rule)

    if controls is None:
        return

    @app.after_request
    def _log_service_request(resp: Response) -> Response:
        if is_service_request() and not g.get("sandbox_logged"):
            controls.requests.add(_log_entry(resp.status_code))
        return resp

    app.register_blueprint(_controls_blueprint(flavor, controls))


def _log_entry(status: int | None, *, dropped: bool = False) -> dict[str, Any]:
    started = g.get("sandbox_started") or time.time()
    entry: dict[str, Any] = {
        "time": started,
        "duration_ms": round((time.time() - started) * 1000, 3),
        "method": request.method,
        "path": request.path,
        "query": request.query_string.decode("latin-1"),
        "status": status,
        "dropped": dropped,
        "fault": g.get("sandbox_fault"),
        "authorization": bool(request.headers.get("Authorization")),
    }
    if request.endpoint == "sandbox_ags.scores" and request.method == "POST":
        try:
            body = json.loads(request.get_data(cache=True, as_text=True))
        except Exception:  # noqa: BLE001 - unparseable or too large: log the request anyway
            body = None
        entry["score"] = {k: body.get(k) for k in SCORE_FIELDS} if isinstance(body, dict) else None
    return entry


def _drop_connection(controls: SandboxControls) -> Response:
    """Close the socket without an answer (werkzeug's server hands it over in the environ)."""
    controls.requests.add(_log_entry(None, dropped=True))
    g.sandbox_logged = True
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        # The Flask test client has no socket: the closest thing is the exception a client sees.
        raise ConnectionAbortedError("sandbox fault: connection dropped without an answer")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    # Never reaches the client: werkzeug's write fails (broken pipe) and it drops the request;
    # only its access log shows this status (nginx's "closed without a response").
    return Response(status="444 Connection Closed Without Response")


def fault_response(flavor: Flavor, rule: FaultRule) -> Response:
    status = rule.status
    assert status is not None
    headers: dict[str, str] = {}
    if rule.body is not None:
        if isinstance(rule.body, str):
            body, ctype = rule.body, rule.content_type or "text/plain; charset=utf-8"
        else:
            body, ctype = json.dumps(rule.body), rule.content_type or "application/json"
        status_line: int | str = status
    else:
        status_line, body, ctype, headers = default_fault(flavor, status)
        ctype = rule.content_type or ctype
    resp = Response(body, status=status_line, content_type=ctype)
    for name, value in headers.items():
        resp.headers[name] = value
    if rule.retry_after is not None:
        resp.headers["Retry-After"] = rule.retry_after
    for name, value in rule.headers.items():
        resp.headers[name] = value
    return resp


def default_fault(flavor: Flavor, status: int) -> tuple[int | str, str, str, dict[str, str]]:
    """(status line, body, content type, headers) in the platform's own wording.

    Canvas throttling (platforms.md A9 "Rate limits"): 403, or 429 when `send_429_response`
    is on, text/plain "<status> (Rate Limit Exceeded)\\n" with X-Rate-Limit-Remaining: 0.0.
    Moodle has no rate limit; its 503 is the maintenance page (lib/setup.php: status line
    "503 Moodle under maintenance"; real Moodle also sends Retry-After: 300, add it with
    `retry_after`). Anything else: the flavour's service error envelope (errors.py).
    """
    reason = HTTP_STATUS_CODES.get(status, "Error")
    plain = "text/plain; charset=utf-8"
    if flavor.name == "canvas":
        if status in (403, 429):
            return (
                status,
                f"{status} {reason} (Rate Limit Exceeded)\n",
                plain,
                {"X-Rate-Limit-Remaining": "0.0", "X-Request-Cost": "50.0"},
            )
        if status == 503:
            return status, "Service Unavailable", plain, {}
        kind = _CANVAS_TYPES.get(status) or reason.lower().replace(" ", "_")
        body: dict[str, Any] = {"errors": {"type": kind, "message": reason}}
        return status, json.dumps(body), "application/json", {}
    if status == 503:
        page = (
            "<!DOCTYPE html><html><head><title>Site maintenance</title></head><body>"
            "<h1>Site maintenance</h1><p>This site is undergoing maintenance and is currently "
            "not available.</p></body></html>"
        )
        return "503 Moodle under maintenance", page, "text/html; charset=utf-8", {}
    body = {
        "status": status,
        "reason": reason,
        "request": {
            "method": request.method,
            "url": request.full_path.rstrip("?"),
            "accept": request.headers.get("Accept", ""),
            "contentType": request.headers.get("Content-Type", ""),
        },
    }
    return status, json.dumps(body), "application/json", {}


# -- /sandbox/* endpoints ----------------------------------------------------------------------


def _controls_blueprint(flavor: Flavor, controls: SandboxControls) -> Blueprint:
    bp = Blueprint("sandbox_controls", __name__, url_prefix="/sandbox")

    def bad(message: str) -> Any:
        resp = jsonify({"error": message})
        resp.status_code = 400
        return resp

    @bp.route("/faults", methods=["GET", "POST", "DELETE"])
    def faults() -> Any:
        if request.method == "GET":
            return jsonify({"faults": controls.faults.listing()})
        if request.method == "DELETE":
            return jsonify({"cleared": controls.faults.clear()})
        spec = request.get_json(force=True, silent=True)
        specs = spec if isinstance(spec, list) else [spec]
        added = []
        for one in specs:
            try:
                added.append(controls.faults.add(one).to_json())
            except FaultSpecError as exc:
                return bad(str(exc))
        return jsonify(added if isinstance(spec, list) else added[0]), 201

    @bp.route("/faults/<int:rule_id>", methods=["DELETE"])
    def fault(rule_id: int) -> Any:
        cleared = controls.faults.clear(rule_id)
        if not cleared:
            return bad(f"no fault rule {rule_id}")
        return jsonify({"cleared": cleared})

    @bp.route("/requests", methods=["GET", "DELETE"])
    def requests_log() -> Any:
        if request.method == "DELETE":
            controls.requests.clear()
            return jsonify({"cleared": True})
        entries, total = controls.requests.listing()
        match, method = request.args.get("match"), request.args.get("method")
        if match:
            entries = [e for e in entries if match in e["path"]]
        if method:
            entries = [e for e in entries if e["method"] == method.upper()]
        return jsonify({"requests": entries, "total": total, "kept": REQUEST_LOG_SIZE})

    @bp.route("/gradebook.json")
    def gradebook() -> Any:
        from .app import ctx, db

        conn = db()
        course_id = request.args.get("course", type=int)
        if course_id is None:
            courses = storage.list_courses(conn)
            course_id = courses[0]["id"] if courses else 0
        data = gradebook_json(conn, ctx(), course_id, history=request.args.get("history") == "1")
        if data is None:
            resp = jsonify({"error": f"no course {course_id}"})
            resp.status_code = 404
            return resp
        return jsonify(data)

    return bp


def _applies_grade(flavor: Flavor, grading_progress: str | None) -> bool:
    if flavor.name == "canvas":
        return grading_progress in ("FullyGraded", "PendingManual")
    return grading_progress == "FullyGraded"


def gradebook_json(conn: Any, sb: Any, course_id: int, *, history: bool = False) -> dict | None:
    """Every line item and, per user, the grade the platform keeps (see README)."""
    course = storage.get_course(conn, course_id)
    if course is None:
        return None
    canvas = sb.is_canvas
    links = {rl["id"]: rl for rl in storage.course_resource_links(conn, course_id)}
    items = []
    for item in storage.course_line_items(conn, course_id):
        rl = links.get(item["resource_link_id"]) if item["resource_link_id"] else None
        scores = storage.rows(
            conn,
            "SELECT user_id, score_given, score_maximum, activity_progress, grading_progress, "
            "comment, timestamp, grade, received_at FROM scores WHERE line_item_id = ? "
            "ORDER BY id",
            (item["id"],),
        )
        by_user: dict[int, list[dict[str, Any]]] = {}
        for score in scores:
            by_user.setdefault(score["user_id"], []).append(score)
        results = storage.rows(
            conn,
            "SELECT r.*, u.uuid, u.given_name, u.family_name FROM results r "
            "JOIN users u ON u.id = r.user_id WHERE r.line_item_id = ? ORDER BY r.user_id",
            (item["id"],),
        )
        out_results = []
        for res in results:
            accepted = by_user.get(res["user_id"], [])
            given, maximum = _kept_score(sb.flavor, accepted)
            if res["grade"] is None:
                given = maximum = None
            entry: dict[str, Any] = {
                "userId": res["uuid"] if canvas else str(res["user_id"]),
                "user_id": res["user_id"],
                "name": f"{res['given_name']} {res['family_name']}",
                "scoreGiven": given,
                "scoreMaximum": maximum,
                "grade": res["grade"],
                "comment": res["comment"],
                "activityProgress": res["activity_progress"],
                "gradingProgress": res["grading_progress"],
                "timestamp": res["timestamp"],
                "accepted_scores": len(accepted),
            }
            if history:
                entry["history"] = [
                    {
                        "scoreGiven": s["score_given"],
                        "scoreMaximum": s["score_maximum"],
                        "activityProgress": s["activity_progress"],
                        "gradingProgress": s["grading_progress"],
                        "comment": s["comment"],
                        "timestamp": s["timestamp"],
                        "received_at": s["received_at"],
                    }
                    for s in accepted
                ]
            out_results.append(entry)
        items.append(
            {
                "id": sb.flavor.lineitem_url(
                    sb.base_url, course_id, item["id"], item["registration_id"]
                ),
                "label": item["label"],
                "resourceId": item["resource_id"],
                "tag": item["tag"],
                "scoreMaximum": float(item["score_maximum"]),
                "resourceLinkId": (rl["uuid"] if canvas else str(rl["id"])) if rl else None,
                "coupled": bool(item["coupled"]),
                "results": out_results,
            }
        )
    return {
        "course": {
            "id": course["id"],
            "label": course["label"],
            "title": course["title"],
            "context_id": course["opaque_id"] if canvas else str(course["id"]),
        },
        "flavor": sb.flavor.name,
        "line_items": items,
    }


def _kept_score(flavor: Flavor, accepted: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The (scoreGiven, scoreMaximum) behind the current grade, replaying accepted scores.

    A score that sets a grade replaces it; one that clears the grade (Moodle: anything but
    FullyGraded or no scoreGiven; Canvas: Pending/Failed/NotReady or no scoreGiven) empties
    it; a Canvas `preserve_score` keeps the previous one.
    """
    given = maximum = None
    for score in accepted:
        if score["grade"] is None:
            given = maximum = None
        elif score["score_given"] is not None and _applies_grade(flavor, score["grading_progress"]):
            given, maximum = score["score_given"], score["score_maximum"]
    return given, maximum
