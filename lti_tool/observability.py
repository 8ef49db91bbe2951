"""Request ids, structured JSON logs, the access log, and cluster-wide metrics.

Request id
    A sane incoming `X-Request-Id` (1-64 characters of [A-Za-z0-9._-], as a
    proxy such as nginx's `$request_id` sends) is kept, anything else is
    replaced by a fresh one. It lives on `g.request_id`, goes back in the
    `X-Request-Id` response header, rides on every log record made during the
    request (`record.request_id`), is a field of every JSON log line, and is
    the "reference" error pages show.

Logs
    One JSON object per line. `log_event(logger, "name", **fields)` writes
    such a line with the request id in it; `JsonFormatter` turns any other
    record into one as well. When nobody configured logging (no root handler:
    gunicorn, `lti-tool serve`), the `lti_tool` loggers get a stderr handler
    with that formatter; an operator's own logging configuration wins.
    One access line per request: method, path (never the query string: it
    carries `t` session tokens and OIDC `state`), status, duration_ms,
    request_id. Nothing else from the request is logged: no form fields
    (`id_token`, `JWT`, `client_assertion`), no `Authorization`, no cookies.
    The request lines Werkzeug's and gunicorn's own access logs write are
    stripped of query strings and credentials for the same reason, and
    SQLAlchemy's statement log (which would show bound parameters: states,
    nonces, service tokens) stays at WARNING unless the operator set it.

Metrics (`GET /metrics`, Prometheus text format 0.0.4)
    Counters and histogram buckets are counted in each process's memory and
    added to shared rows in the database (`metric_series`: one row per series,
    `value = value + delta`) at most every ten seconds per process, after a
    response has been sent, and at once when /metrics is scraped. So any
    process answers a scrape with cluster-wide totals of every process,
    including ones that have since exited, and the totals only ever grow (a
    per-process snapshot that disappears when its process does would look to
    Prometheus like a counter reset). Increments of a process that dies
    between two flushes (≤ 10 s) are lost; those of a process that has gone
    idle reach the totals with its next request or when it exits. Gauges (the
    passback outbox) are read from their tables at scrape time. Set
    `LTI_TOOL_METRICS_TOKEN` to require `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import atexit
import hmac
import json
import logging
import math
import os
import re
import secrets
import sys
import threading
import time
import weakref
from datetime import UTC, datetime

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from sqlalchemy import Float, String, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.db import WRITE_OPTION, Base, get_engine

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
access_log = logging.getLogger("lti_tool.access")
log = logging.getLogger("lti_tool.observability")


# ------------------------------------------------------------- request id

def request_id() -> str | None:
    """The current request's id (None outside a request)."""
    return g.get("request_id") if has_request_context() else None


def _start_request() -> None:
    g.request_started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)


# ------------------------------------------------------------------- logs

def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields) -> None:
    """One structured JSON line: {"event": …, "request_id": …, **fields}."""
    if not logger.isEnabledFor(level):
        return
    data = {"event": event, **fields}
    rid = request_id()
    if rid is not None:
        data.setdefault("request_id", rid)
    logger.log(level, json.dumps(data, sort_keys=True, default=str))


class JsonFormatter(logging.Formatter):
    """Every record as one JSON object: time, level, logger, request_id and
    either the fields of a JSON message (log_event) or `message`."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                   timespec="milliseconds"),
               "level": record.levelname, "logger": record.name}
        fields = None
        if message.startswith("{"):
            try:
                fields = json.loads(message)
            except ValueError:
                fields = None
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = message
        rid = getattr(record, "request_id", None)
        if rid and "request_id" not in out:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


_factory_installed = False


def _install_record_factory() -> None:
    """Every log record made inside a request carries `request_id`."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            record.request_id = request_id()
        except Exception:  # noqa: BLE001 (logging must never fail)
            record.request_id = None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


_QUERY = re.compile(r"\?[^\s\"]*")
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")


def strip_query(text: str) -> str:
    return _QUERY.sub("", text)


class RedactRequestLines(logging.Filter):
    """For Werkzeug's and gunicorn's own access logs: no query strings (session
    tokens, OIDC state), no credentials, even if an operator turns them on."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):  # gunicorn.access: the atoms
            for key in list(args):
                low = key.lower()
                if low in ("r", "f") or low in ("{location}o", "{referer}i"):
                    value = dict.__getitem__(args, key)
                    if isinstance(value, str):
                        args[key] = strip_query(value)
                elif low == "q" or (low.startswith("{") and low[1:-2] in _SECRET_HEADERS):
                    args[key] = "-"
        elif isinstance(args, tuple) and args:
            record.args = tuple(strip_query(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str) and not args:
            record.msg = strip_query(record.msg)
        return True


_REDACTOR = RedactRequestLines()


def configure_logging(app: Flask) -> None:
    _install_record_factory()
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
    engine_log = logging.getLogger("sqlalchemy.engine")
    if engine_log.level == logging.NOTSET:
        engine_log.setLevel(logging.WARNING)
    tool_log = logging.getLogger("lti_tool")
    if not logging.getLogger().handlers and not any(
            getattr(h, "pathwise_json", False) for h in tool_log.handlers):
        from flask.logging import default_handler

        tool_log.removeHandler(default_handler)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.pathwise_json = True
        tool_log.addHandler(handler)


# ---------------------------------------------------------------- metrics

class MetricSeries(Base):
    """Cluster-wide running total of one series (name + labels): every
    process adds what it counted since its last flush."""

    __tablename__ = "metric_series"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    labels: Mapped[str] = mapped_column(String(500), primary_key=True)  # canonical JSON
    value: Mapped[float] = mapped_column(Float, default=0.0)


DURATION = "pathwise_http_request_duration_seconds"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

FAMILIES = {
    "pathwise_launches_total": (
        "counter", "LTI launches (POST /lti/launch) by result; reason is the error code "
                   "when refused."),
    "pathwise_logins_total": (
        "counter", "OIDC login initiations (/lti/login) by result; reason is the error "
                   "code when refused."),
    "pathwise_rate_limited_total": ("counter", "Requests refused by a rate limit, by bucket."),
    DURATION: ("histogram", "Time to produce a response, by method and status class."),
    "pathwise_passback_scores": (
        "gauge", "Scores in the grade passback outbox by status (pending includes "
                 "scores being sent; failed are dead letters)."),
}
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.:/ -]")


def _labels_key(labels: dict) -> str:
    return json.dumps(sorted((str(k), str(v)) for k, v in labels.items()),
                      separators=(",", ":"))


def reason_label(code: str | None) -> str:
    """Error codes are constants in the code; keep the label set bounded anyway."""
    return _LABEL_VALUE.sub("_", str(code or "unknown"))[:60]


class Metrics:
    """This process's increments not yet added to the database."""

    FLUSH_EVERY = 10.0

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], float] = {}
        self._last_flush = time.monotonic()
        self._statements: dict[str, object] = {}

    def add(self, name: str, value: float = 1.0, **labels) -> None:
        key = (name, _labels_key(labels))
        with self._lock:
            self._pending[key] = self._pending.get(key, 0.0) + value

    def observe_request(self, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        klass = f"{status // 100}xx" if 100 <= status < 600 else "other"
        base = {"method": method, "status": klass}
        keys = [(f"{DURATION}_bucket", _labels_key({**base, "le": _le(b)}))
                for b in BUCKETS if seconds <= b]
        with self._lock:
            pending = self._pending
            for key in keys:
                pending[key] = pending.get(key, 0.0) + 1
            key = (f"{DURATION}_sum", _labels_key(base))
            pending[key] = pending.get(key, 0.0) + seconds
            key = (f"{DURATION}_count", _labels_key(base))
            pending[key] = pending.get(key, 0.0) + 1

    def pending(self) -> dict[tuple[str, str], float]:
        with self._lock:
            return dict(self._pending)

    def due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last_flush >= self.FLUSH_EVERY

    def _statement(self, dialect: str):
        stmt = self._statements.get(dialect)
        if stmt is None:
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            table = MetricSeries.__table__
            stmt = insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name", "labels"],
                set_={"value": table.c.value + stmt.excluded.value})
            self._statements[dialect] = stmt
        return stmt

    def flush(self) -> None:
        """Add this process's increments to the shared totals (one
        transaction; on failure they stay pending for the next try)."""
        with self._lock:
            batch, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if not batch:
            return
        # Sorted: concurrent flushes lock rows in the same order (no deadlock).
        rows = [{"name": n, "labels": lab, "value": v} for (n, lab), v in sorted(batch.items())]
        try:
            engine = get_engine(self.database_url).execution_options(**{WRITE_OPTION: True})
            with engine.begin() as conn:
                conn.execute(self._statement(conn.dialect.name), rows)
        except Exception:
            with self._lock:
                for key, value in batch.items():
                    self._pending[key] = self._pending.get(key, 0.0) + value
            raise

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 (metrics never break a request)
            log.warning("metrics_flush_failed error=%s", type(exc).__name__)

    def totals(self, conn) -> dict[tuple[str, str], float]:
        rows = conn.execute(select(MetricSeries.name, MetricSeries.labels, MetricSeries.value))
        return {(name, labels): value for name, labels, value in rows}


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def metrics_registry(app: Flask | None = None) -> Metrics | None:
    app = app or (current_app if has_app_context() else None)
    return app.extensions.get("pathwise_metrics") if app is not None else None


def count(name: str, value: float = 1.0, **labels) -> None:
    """Add to a counter of the current app (no-op outside an app)."""
    registry = metrics_registry()
    if registry is not None:
        registry.add(name, value, **labels)


def count_launch(result: str, reason: str = "ok") -> None:
    count("pathwise_launches_total", result=result, reason=reason_label(reason))


def count_login(result: str, reason: str = "ok") -> None:
    count("pathwise_logins_total", result=result, reason=reason_label(reason))


# ------------------------------------------------------------- exposition

def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(pairs) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _family_of(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in FAMILIES:
            return name[: -len(suffix)]
    return name


def _sample_order(item):
    (name, labels), _ = item
    pairs = json.loads(labels)
    le = next((float(v) for k, v in pairs if k == "le"), None)
    rest = [p for p in pairs if p[0] != "le"]
    suffix = 0 if name.endswith("_bucket") else 1 if name.endswith("_sum") else 2
    return (rest, suffix, le if le is not None else 0.0)


def render(series: dict[tuple[str, str], float]) -> str:
    """Prometheus text exposition format 0.0.4."""
    by_family: dict[str, list] = {name: [] for name in FAMILIES}
    for item in series.items():
        by_family.setdefault(_family_of(item[0][0]), []).append(item)
    lines = []
    for family, items in by_family.items():
        kind, text = FAMILIES.get(family, ("untyped", ""))
        lines.append(f"# HELP {family} {text}")
        lines.append(f"# TYPE {family} {kind}")
        for (name, labels), value in sorted(items, key=_sample_order):
            lines.append(f"{name}{_format_labels(json.loads(labels))} {_format_value(value)}")
    return "\n".join(lines) + "\n"


OUTBOX_STATUS = {"pending": "pending", "sending": "pending", "sent": "sent", "dead": "failed",
                 "superseded": "superseded"}


def outbox_counts(conn) -> dict[str, int]:
    from lti_tool.passback.models import ScoreOutbox

    found = {"pending": 0, "sent": 0, "failed": 0, "superseded": 0}
    for status, n in conn.execute(select(ScoreOutbox.status, func.count())
                                  .group_by(ScoreOutbox.status)):
        label = OUTBOX_STATUS.get(status, reason_label(status))
        found[label] = found.get(label, 0) + n
    return found


def outbox_pending(conn) -> int:
    from lti_tool.passback.models import ScoreOutbox

    return conn.execute(select(func.count()).select_from(ScoreOutbox).where(
        ScoreOutbox.status.in_(("pending", "sending")))).scalar_one()


def metrics_view():
    app = current_app
    token = app.extensions.get("pathwise_metrics_token")
    if token:
        given = request.headers.get("Authorization", "")
        if not (given.startswith("Bearer ")
                and hmac.compare_digest(given[7:].strip().encode(), token.encode())):
            response = app.response_class("metrics need a bearer token\n", status=401,
                                          mimetype="text/plain")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    registry = metrics_registry(app)
    try:
        registry.flush()
        with get_engine(registry.database_url).connect() as conn:
            series = registry.totals(conn)
            for status, n in outbox_counts(conn).items():
                series[("pathwise_passback_scores", _labels_key({"status": status}))] = n
    except SQLAlchemyError as exc:
        log.warning("metrics_unavailable error=%s", type(exc).__name__)
        return app.response_class("database unavailable\n", status=503,
                                  mimetype="text/plain", headers={"Retry-After": "10"})
    response = app.response_class(render(series), mimetype="text/plain")
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------ per request

def _finish_request(response):
    rid = g.get("request_id")
    if rid:
        response.headers["X-Request-Id"] = rid
    started = g.get("request_started")
    elapsed = time.perf_counter() - started if started is not None else 0.0
    registry = metrics_registry()
    if registry is not None:
        registry.observe_request(request.method, response.status_code, elapsed)
        if registry.due():
            # After the response has gone out (and the request's own
            # transaction is closed), not while the client waits.
            response.call_on_close(registry.flush_quietly)
    log_event(access_log, "request", method=request.method, path=request.path,
              status=response.status_code, duration_ms=round(elapsed * 1000, 1))
    return response


_registries: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for registry in list(_registries):
        registry.flush_quietly()


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    configure_logging(app)
    registry = Metrics(settings.database_url)
    _registries.add(registry)
    app.extensions["pathwise_metrics"] = registry
    app.extensions["pathwise_metrics_token"] = (
        settings.extra.get("metrics_token") or os.environ.get("LTI_TOOL_METRICS_TOKEN") or None)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.add_url_rule("/metrics", "metrics", metrics_view)
