"""Rate limits shared by every process: fixed-window counters in the database.

One statement per limited request:

    INSERT INTO rate_limit_counter (bucket, key, window_start, window_end, count)
    VALUES (…, 1)
    ON CONFLICT (bucket, key, window_start) DO UPDATE SET count = count + 1
    RETURNING count

It runs on its own short connection (autocommit on PostgreSQL), so a request
that fails afterwards and rolls back still counts: failures are exactly what a
flood produces. Rows of finished windows are deleted at most once a minute per
process, by the request that happens to come along.

Use `check(bucket)` from any view (another engineer's /lti/register does):

    decision = ratelimit.check("register")
    if not decision.allowed:
        return ratelimit.too_many_requests(decision)

Call it before the view opens its own write transaction: on SQLite every
writer of the install queues on one lock, and a second writer in the same
thread would wait for itself. (When the request already holds a transaction,
`check` counts inside it instead.)

The key is the client's IP address as the tool can trust it: the socket peer,
or, when that peer is a trusted proxy (`FORWARDED_ALLOW_IPS`, the same setting
`lti-tool serve` hands to gunicorn, default 127.0.0.1), the nearest address in
`X-Forwarded-For` that is not itself a trusted proxy. IPv6 clients are counted
per /64, the block one subscriber gets.

Limits come from `LTI_TOOL_RATE_LIMIT_<BUCKET>` ("300/minute", "10/min",
"1000/hour", "5/30s"; "0" or "off" disables) or from the settings' `extra`
`{"rate_limits": {bucket: spec}}`; defaults below. The defaults are per IP
address, and a whole school often shares one address (NAT), so login and
launch allow a class starting the same activity at once (a launch is one
login plus one or two launch posts per student)."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps

from flask import current_app, g, has_request_context, render_template, request
from sqlalchemy import BigInteger, Index, Integer, String, delete
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.db import WRITE_OPTION, Base, get_engine

log = logging.getLogger("lti_tool.ratelimit")

DEFAULT_LIMITS = {
    "login": "300/minute",
    "launch": "300/minute",
    "register": "10/minute",
}
KEY_LENGTH = 64


class RateLimitCounter(Base):
    """Requests of one key (an IP address) in one bucket in one window."""

    __tablename__ = "rate_limit_counter"
    __table_args__ = (Index("ix_rate_limit_counter_window_end", "window_end"),)

    bucket: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    window_end: Mapped[int] = mapped_column(BigInteger)  # epoch seconds: delete after
    count: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class Limit:
    count: int
    period: int  # seconds


@dataclass(frozen=True)
class Decision:
    allowed: bool
    bucket: str
    count: int
    limit: int
    retry_after: int  # seconds until the window ends (0 when allowed or unlimited)
    reset_at: int     # epoch seconds when the window ends


_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600}
_SPEC = re.compile(r"\s*(\d+)\s*(?:/|per)\s*(\d*)\s*([a-z]+)\s*")


def parse_limit(spec: str | None) -> Limit | None:
    """'300/minute' → Limit(300, 60); '0', 'off', 'none' → None (no limit)."""
    if spec is None:
        return None
    text = str(spec).strip().lower()
    if text in ("", "0", "off", "none", "unlimited", "false", "no"):
        return None
    match = _SPEC.fullmatch(text)
    if not match or match.group(3) not in _UNITS:
        raise ValueError(f"rate limit {spec!r}: expected e.g. '300/minute', '10/min', "
                         f"'1000/hour', '5/30s' or 'off'")
    count = int(match.group(1))
    period = int(match.group(2) or 1) * _UNITS[match.group(3)]
    if count <= 0:
        return None
    if not 1 <= period <= 86400:
        raise ValueError(f"rate limit {spec!r}: the window must be 1 s to 1 day")
    return Limit(count, period)


def load_limits(extra: dict | None = None, env: dict | None = None) -> dict[str, Limit | None]:
    env = os.environ if env is None else env
    configured = dict((extra or {}).get("rate_limits") or {})
    buckets = set(DEFAULT_LIMITS) | set(configured)
    limits = {}
    for bucket in buckets:
        spec = configured.get(bucket)
        if spec is None:
            spec = env.get(f"LTI_TOOL_RATE_LIMIT_{bucket.upper()}", DEFAULT_LIMITS.get(bucket))
        limits[bucket] = parse_limit(spec)
    return limits


# ---------------------------------------------------------------- client IP

def _networks(spec: str) -> list | None:
    """FORWARDED_ALLOW_IPS as gunicorn reads it: addresses or networks,
    comma-separated; '*' trusts every peer (None here)."""
    nets = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part == "*":
            return None
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            log.warning("FORWARDED_ALLOW_IPS: ignoring %r (not an address)", part)
    return nets


class ClientAddress:
    def __init__(self, trusted: str | None = None):
        self.trusted = _networks(trusted if trusted is not None
                                 else os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))

    def _is_trusted(self, addr) -> bool:
        if self.trusted is None:
            return True
        return any(addr.version == net.version and addr in net for net in self.trusted)

    def of(self, remote_addr: str | None, forwarded_for: str | None) -> str:
        peer = _parse_ip(remote_addr)
        if peer is None:
            return _key_of_text(remote_addr or "unknown")
        if forwarded_for and self._is_trusted(peer):
            # Right to left: each trusted proxy appended the address it saw.
            hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
            client = peer
            for hop in reversed(hops):
                addr = _parse_ip(hop)
                if addr is None:
                    break  # garbage further left is the client's own claim
                client = addr
                if not self._is_trusted(addr):
                    break
            peer = client
        return _key_of(peer)


def _parse_ip(text: str | None):
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _key_of(addr) -> str:
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def _key_of_text(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.:/_-]", "_", text)[:KEY_LENGTH]


def client_ip() -> str:
    """The key rate limits count by, for the current request."""
    resolver = current_app.extensions.get("pathwise_client_address")
    if resolver is None:
        resolver = current_app.extensions["pathwise_client_address"] = ClientAddress()
    return resolver.of(request.remote_addr, request.headers.get("X-Forwarded-For"))


# ------------------------------------------------------------------ limiter

class RateLimiter:
    """Counts hits per (bucket, key, window) in the database of one install."""

    CLEANUP_EVERY = 60.0

    def __init__(self, database_url: str, limits: dict[str, Limit | None]):
        self.database_url = database_url
        self.limits = limits
        self._statements: dict[str, object] = {}
        self._engine_cache = None
        self._last_cleanup = 0.0
        self._lock = threading.Lock()

    def limit_for(self, bucket: str) -> Limit | None:
        if bucket not in self.limits:
            raise KeyError(f"unknown rate-limit bucket {bucket!r} (known: {sorted(self.limits)})")
        return self.limits[bucket]

    def _engine(self):
        """Its own connection: autocommit on PostgreSQL (one round trip), a
        queued writer on SQLite."""
        base = get_engine(self.database_url)
        cached = self._engine_cache
        if cached is None or cached[0] is not base:
            if base.dialect.name == "postgresql":
                engine = base.execution_options(isolation_level="AUTOCOMMIT")
            else:
                engine = base.execution_options(**{WRITE_OPTION: True})
            cached = self._engine_cache = (base, engine)
        return cached[1]

    def _statement(self, dialect: str):
        stmt = self._statements.get(dialect)
        if stmt is None:
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            table = RateLimitCounter.__table__
            stmt = insert(table).values(count=1)
            stmt = stmt.on_conflict_do_update(
                index_elements=["bucket", "key", "window_start"],
                set_={"count": table.c.count + 1}).returning(table.c.count)
            self._statements[dialect] = stmt
        return stmt

    def hit(self, bucket: str, key: str, *, now: float | None = None, connection=None
            ) -> Decision:
        """Count one request; `allowed` is False once the window's count
        exceeds the limit. A database failure lets the request through: the
        limiter must never be what takes the tool down."""
        limit = self.limit_for(bucket)
        now = time.time() if now is None else now
        if limit is None:
            return Decision(True, bucket, 0, 0, 0, int(now))
        window = int(now) - int(now) % limit.period
        reset_at = window + limit.period
        params = {"bucket": bucket[:40], "key": key[:KEY_LENGTH], "window_start": window,
                  "window_end": reset_at}
        try:
            if connection is not None:  # inside the request's transaction
                with connection.begin_nested():  # a failure must not spoil it
                    count = connection.execute(self._statement(connection.dialect.name),
                                               params).scalar_one()
                    self._maybe_cleanup(connection, now)
            else:
                with self._engine().begin() as conn:
                    count = conn.execute(self._statement(conn.dialect.name),
                                         params).scalar_one()
                    self._maybe_cleanup(conn, now)
        except Exception as exc:  # noqa: BLE001 (fail open, say so)
            log.warning("rate_limit_unavailable bucket=%s error=%s", bucket, type(exc).__name__)
            return Decision(True, bucket, 0, limit.count, 0, reset_at)
        allowed = count <= limit.count
        retry_after = 0 if allowed else max(1, math.ceil(reset_at - now))
        return Decision(allowed, bucket, count, limit.count, retry_after, reset_at)

    def _maybe_cleanup(self, conn, now: float) -> None:
        with self._lock:
            if now - self._last_cleanup < self.CLEANUP_EVERY:
                return
            self._last_cleanup = now
        conn.execute(delete(RateLimitCounter).where(RateLimitCounter.window_end < int(now)))


def init_app(app) -> None:
    settings = app.config["SETTINGS"]
    app.extensions["pathwise_ratelimit"] = RateLimiter(settings.database_url,
                                                       load_limits(settings.extra))
    app.extensions["pathwise_client_address"] = ClientAddress()


def limiter() -> RateLimiter:
    return current_app.extensions["pathwise_ratelimit"]


def check(bucket: str, key: str | None = None) -> Decision:
    """Count this request against `bucket` (by client IP unless `key` is given)."""
    key = client_ip() if key is None else key
    connection = None
    db = g.get("db") if has_request_context() else None
    if db is not None and db.in_transaction():
        connection = db.connection()
    decision = limiter().hit(bucket, key, connection=connection)
    if not decision.allowed:
        from lti_tool import observability

        observability.count("pathwise_rate_limited_total", bucket=bucket)
    return decision


def retry_text(decision: Decision) -> str:
    when = datetime.fromtimestamp(decision.reset_at, UTC).strftime("%H:%M:%S UTC")
    seconds = decision.retry_after
    wait = f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"Please try again in {wait} (after {when})."


def too_many_requests(decision: Decision):
    """429 page with Retry-After for a refused request."""
    response = current_app.make_response((render_template(
        "error.html", status=429, title="Too many requests",
        text="Too many requests came from your network in a short time. "
             + retry_text(decision)), 429))
    response.headers["Retry-After"] = str(decision.retry_after)
    return response


def limit(bucket: str):
    """Decorator: refuse with 429 once the client is over `bucket`'s limit."""
    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            decision = check(bucket)
            if not decision.allowed:
                return too_many_requests(decision)
            return view(*args, **kwargs)
        return wrapped
    return decorate
