"""Delivers the score outbox to the LMSs.

Claiming: due rows are leased (status 'sending', `claimed_until`) in a short
transaction — `FOR UPDATE SKIP LOCKED` on PostgreSQL so several workers never
take the same row, SQLite's single writer elsewhere. A worker that dies
mid-batch leaves leases that expire and are claimed again; the row's
timestamp never changes, so a resend is the identical request and the LMS
answers it idempotently (Canvas accepts an equal timestamp, Moodle's 409 is
counted as delivered).

Coalescing: of several pending rows for one (line item, student), only the
newest is sent; the older ones are marked superseded.

Results: sent; superseded (the LMS already has something newer); retried
with jittered exponential backoff honouring Retry-After (429, 503, Canvas's
403 "Rate Limit Exceeded", timeouts, 5xx); dead-lettered with the reason for
the teacher when retrying cannot help (not a student, line item deleted,
course concluded, malformed) or after MAX_AGE."""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, aliased

from lti_tool.db import session_factory, session_scope
from lti_tool.launch import keys as tool_keys
from lti_tool.launch.models import Platform
from lti_tool.passback import platform_client
from lti_tool.passback.models import CourseServices, LineItem, ScoreOutbox
from lti_tool.passback.service import allowed_origins
from lti_tool.timeutil import aware, utcnow

log = logging.getLogger("lti_tool.passback")

LEASE = timedelta(seconds=60)
BATCH = 200
BASE_DELAY = 2.0
MAX_DELAY = 3600.0
MAX_AGE = timedelta(days=7)
THREADS = 8
# Operators (and fault tests, which cannot wait minutes) may tune these through
# the environment; read on every use, so a running process sees its own
# environment and the defaults above stay the documented values.
ENV_BASE_DELAY = "LTI_TOOL_PASSBACK_BASE_DELAY"   # seconds, first retry's ceiling
ENV_MAX_DELAY = "LTI_TOOL_PASSBACK_MAX_DELAY"     # seconds, backoff cap
ENV_LEASE = "LTI_TOOL_PASSBACK_LEASE"             # seconds a claimed batch is held
ENV_BATCH = "LTI_TOOL_PASSBACK_BATCH"             # rows claimed at a time
ENV_TIMEOUT = "LTI_TOOL_PASSBACK_TIMEOUT"         # seconds to wait for an LMS answer
PERMANENT = {
    "user_not_gradable": "The LMS says this person is not a student in the course.",
    "lineitem_dead": "The LMS gradebook column no longer exists (deleted, or the course "
                     "was copied). Open the activity from the LMS once to reconnect it.",
    "closed": "The LMS refused the score: the course has concluded or the assignment is "
              "closed.",
    "malformed": "The LMS refused the score as invalid.",
    "config": "The LMS no longer accepts this tool's key; ask the LMS administrator to "
              "check the Pathwise developer key or registration.",
    "forbidden_host": "The LMS gave a service address outside its own hosts; refused.",
}


@dataclass
class Stats:
    sent: int = 0
    superseded: int = 0
    retried: int = 0
    dead: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Stats) -> None:
        self.sent += other.sent
        self.superseded += other.superseded
        self.retried += other.retried
        self.dead += other.dead
        for k, v in other.by_kind.items():
            self.by_kind[k] += v


def setting(name: str, default: float) -> float:
    """A positive number from the environment variable `name`, else `default`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        log.warning('{"event": "passback_setting_ignored", "name": "%s"}', name)
        return default
    return value


def lease() -> timedelta:
    return timedelta(seconds=setting(ENV_LEASE, LEASE.total_seconds()))


def batch_size() -> int:
    return max(1, int(setting(ENV_BATCH, BATCH)))


def backoff(attempts: int, retry_after: float | None, rng: random.Random | None = None
            ) -> float:
    """Seconds to wait: full jitter over an exponential ceiling, never less
    than what the LMS asked for."""
    ceiling = min(setting(ENV_MAX_DELAY, MAX_DELAY),
                  setting(ENV_BASE_DELAY, BASE_DELAY) * (2 ** max(attempts - 1, 0)))
    wait = (rng or random).uniform(ceiling / 2, ceiling)
    return max(wait, retry_after or 0.0)


def _supersede_older(session: Session) -> None:
    """Pending rows with a newer row for the same (line item, student) will
    never be worth sending (the LMS keeps the newest timestamp): mark them
    superseded, wherever they are in their backoff. Without this, a score
    waiting out a retry after an LMS hiccup is sent after its replacement.
    Rows another worker holds are skipped, never waited for (no deadlock
    between two workers' claims)."""
    row, newer = aliased(ScoreOutbox), aliased(ScoreOutbox)
    stale = select(row.id).where(
        row.status == "pending",
        select(newer.id).where(newer.line_item_id == row.line_item_id,
                               newer.student_id == row.student_id,
                               newer.id > row.id).exists())
    if session.get_bind().dialect.name == "postgresql":
        stale = stale.with_for_update(skip_locked=True)
    session.execute(update(ScoreOutbox).where(ScoreOutbox.id.in_(stale))
                    .values(status="superseded", claimed_until=None)
                    .execution_options(synchronize_session=False))


def _claim(session: Session, now: datetime, limit: int) -> list[ScoreOutbox]:
    _supersede_older(session)
    due = (select(ScoreOutbox)
           .where(((ScoreOutbox.status == "pending") & (ScoreOutbox.next_attempt_at <= now))
                  | ((ScoreOutbox.status == "sending") & (ScoreOutbox.claimed_until < now)))
           .order_by(ScoreOutbox.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = list(session.scalars(due))
    if not rows:
        return []
    # Coalesce: only the newest claimed row per target goes out.
    newest: dict[tuple[int, int], ScoreOutbox] = {}
    for row in rows:
        key = (row.line_item_id, row.student_id)
        if key not in newest or row.id > newest[key].id:
            newest[key] = row
    keep = {row.id for row in newest.values()}
    for row in rows:
        if row.id not in keep:
            row.status, row.claimed_until = "superseded", None
    until = now + lease()
    for row in newest.values():
        row.status, row.claimed_until = "sending", until
    session.flush()
    return list(newest.values())


@dataclass(frozen=True)
class _Job:
    row_id: int
    platform_id: int
    course_id: int
    url: str
    payload: dict
    attempts: int
    created_at: datetime
    lease: datetime | None  # claimed_until as written by our claim: our lease's identity


def _jobs(session: Session, rows: list[ScoreOutbox]) -> list[_Job]:
    urls = dict(session.execute(select(LineItem.id, LineItem.url).where(
        LineItem.id.in_({r.line_item_id for r in rows}))).all())
    return [_Job(r.id, r.platform_id, r.course_id, urls[r.line_item_id], dict(r.payload),
                 r.attempts, aware(r.created_at), r.claimed_until) for r in rows]


class Deliverer:
    """One process's delivery loop over one database."""

    def __init__(self, database_url: str, keys_dir, *, concurrency: int = 4):
        self.database_url = database_url
        self.keys_dir = keys_dir
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="passback")
        self._paused: dict[int, float] = {}  # platform id -> monotonic time to resume

    def _client(self, session: Session, platform_id: int) -> platform_client.PlatformClient:
        platform = session.get(Platform, platform_id)
        keyset = tool_keys.load(self.keys_dir)
        client = platform_client.client_for(platform, keyset.sign, self.database_url,
                                            concurrency=self.concurrency)
        if os.environ.get(ENV_TIMEOUT, "").strip():
            read = setting(ENV_TIMEOUT, client.timeout[1])
            client.timeout = (min(client.timeout[0], read), read)
        return client

    def _claim_jobs(self, limit: int) -> tuple[list[_Job], dict, dict]:
        """Lease up to `limit` due rows; their jobs, clients and allowed hosts."""
        with session_scope(self.database_url) as session:
            rows = _claim(session, utcnow(), limit)
            jobs = _jobs(session, rows)
            clients = {pid: self._client(session, pid) for pid in {j.platform_id for j in jobs}}
            allowed = {}
            for course_id, platform_id in {(j.course_id, j.platform_id) for j in jobs}:
                allowed[course_id] = allowed_origins(session.get(CourseServices, course_id),
                                                     session.get(Platform, platform_id))
        return jobs, clients, allowed

    def run_once(self, *, limit: int | None = None) -> Stats:
        """Claim one batch of due rows, deliver them, record the outcomes."""
        jobs, clients, allowed = self._claim_jobs(limit or batch_size())
        if not jobs:
            return Stats()
        self._paused = {}
        outcomes = list(self._pool.map(
            lambda job: self._send(clients[job.platform_id], allowed[job.course_id], job),
            jobs))
        return self._record(list(zip(jobs, outcomes, strict=True)))

    def drain(self, *, deadline: float | None = None) -> Stats:
        """Deliver until nothing is due (or the deadline passes), as a
        pipeline: small chunks are claimed while earlier ones are in flight and
        outcomes are recorded in bulk as they finish, so the LMS connection is
        never idle while the database is busy (and leases stay short)."""
        total = Stats()
        self._paused = {}
        chunk = max(4, min(batch_size(), 4 * self.concurrency))
        low_water = 2 * self.concurrency
        in_flight: dict[Future, _Job] = {}
        finished: list[tuple[_Job, tuple]] = []
        more = True
        while True:
            if more and len(in_flight) < low_water and (
                    deadline is None or time.monotonic() < deadline):
                jobs, clients, allowed = self._claim_jobs(chunk)
                more = bool(jobs)
                for job in jobs:
                    future = self._pool.submit(self._send, clients[job.platform_id],
                                               allowed[job.course_id], job)
                    in_flight[future] = job
            if not in_flight:
                break
            done, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                finished.append((in_flight.pop(future), future.result()))
            if len(finished) >= chunk or (finished and not in_flight):
                total.add(self._record(finished))
                finished = []
        if finished:
            total.add(self._record(finished))
        return total

    def _record(self, finished: list[tuple[_Job, tuple]]) -> Stats:
        """Every outcome in one statement (executemany). Only the lease holder
        records (a lease that expired and was claimed again belongs to the new
        holder)."""
        stats = Stats()
        now = utcnow()
        params = []
        for job, (kind, status, detail, retry_after) in finished:
            stats.by_kind[kind or "sent"] += 1
            row = {"b_id": job.row_id, "b_lease": job.lease, "v_http": status,
                   "v_attempts": job.attempts + 1, "v_sent_at": None, "v_next": now}
            if kind is None:
                row.update(v_status="sent", v_sent_at=now, v_error="")
                stats.sent += 1
            elif kind == "superseded":
                row.update(v_status="sent", v_sent_at=now,
                           v_error="The LMS already had a newer score.")
                stats.superseded += 1
            elif kind in PERMANENT or now - job.created_at > MAX_AGE:
                row.update(v_status="dead",
                           v_error=(PERMANENT.get(kind) or "Gave up after retrying for a "
                                    "week.") + (f" ({detail})" if detail else ""))
                stats.dead += 1
            else:
                delay = backoff(job.attempts + 1, retry_after)
                row.update(v_status="pending", v_next=now + timedelta(seconds=delay),
                           v_error=detail or kind)
                stats.retried += 1
            params.append(row)
        table = ScoreOutbox.__table__
        statement = update(table).where(
            table.c.id == bindparam("b_id"), table.c.status == "sending",
            table.c.claimed_until == bindparam("b_lease")).values(
            status=bindparam("v_status"), sent_at=bindparam("v_sent_at"),
            next_attempt_at=bindparam("v_next"), last_error=bindparam("v_error"),
            last_http_status=bindparam("v_http"), attempts=bindparam("v_attempts"),
            claimed_until=None)
        with session_scope(self.database_url) as session:
            # The LMS asked this token to slow down: hold every waiting score
            # of that platform, not just the ones that were refused.
            for platform_id, until in list(self._paused.items()):
                resume = now + timedelta(seconds=max(until - time.monotonic(), 1.0))
                session.execute(update(ScoreOutbox).where(
                    ScoreOutbox.platform_id == platform_id, ScoreOutbox.status == "pending",
                    ScoreOutbox.next_attempt_at < resume).values(next_attempt_at=resume))
            session.connection().execute(statement, params)
        return stats

    def _send(self, client, allowed: list[str], job: _Job):
        paused = self._paused.get(job.platform_id)
        if paused is not None and time.monotonic() < paused:
            # Not sent at all: the LMS is throttling this token right now.
            return "rate_limit", None, "Waiting: the LMS asked Pathwise to slow down.", \
                paused - time.monotonic()
        try:
            response = client.post_score(job.url, job.payload, allowed_origins=allowed)
            return None, response.status_code, "", None
        except platform_client.ServiceError as exc:
            log.info('{"event": "score_not_delivered", "kind": "%s", "status": %s, '
                     '"outbox_id": %d}', exc.kind, exc.status or "null", job.row_id)
            if exc.kind == "rate_limit":
                wait = backoff(job.attempts + 1, exc.retry_after)
                self._paused[job.platform_id] = max(
                    self._paused.get(job.platform_id, 0.0), time.monotonic() + wait)
            return exc.kind, exc.status, exc.detail, exc.retry_after

    def next_due_in(self) -> float | None:
        with session_factory(self.database_url, write=False)() as session:
            when = session.scalar(select(ScoreOutbox.next_attempt_at).where(
                ScoreOutbox.status == "pending").order_by(ScoreOutbox.next_attempt_at)
                .limit(1))
        if when is None:
            return None
        return max(0.0, (aware(when) - utcnow()).total_seconds())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- running in the background ---------------------------------------------------------
_wake = threading.Event()


def poke() -> None:
    """New scores were queued in this process: deliver soon."""
    _wake.set()


def run_forever(deliverer: Deliverer, stop: threading.Event, *, poll: float = 2.0,
                roster=None) -> None:
    """The worker loop: drain what is due, then sleep until poked, until the
    next row is due, or `poll` seconds (other processes queue rows too)."""
    while not stop.is_set():
        try:
            deliverer.drain()
            if roster is not None:
                roster()
            wait = deliverer.next_due_in()
        except Exception:  # noqa: BLE001 — a worker must outlive a bad batch or a DB blip
            log.exception('{"event": "passback_worker_error"}')
            wait = poll
        wait = poll if wait is None else min(wait, poll)
        # In short slices, so a stop (SIGTERM) is seen at once, not after the poll.
        deadline = time.monotonic() + max(wait, 0.05)
        while not stop.is_set() and not _wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _wake.wait(timeout=min(left, 0.1))
        _wake.clear()


def start_inline(database_url: str, keys_dir, *, concurrency: int = 4) -> threading.Event:
    """The embedded mode's background thread; returns the event that stops it."""
    stop = threading.Event()
    deliverer = Deliverer(database_url, keys_dir, concurrency=concurrency)
    from lti_tool.passback import roster

    thread = threading.Thread(
        target=run_forever, args=(deliverer, stop),
        kwargs={"roster": lambda: roster.sync_requested(database_url, keys_dir)},
        name="pathwise-passback", daemon=True)
    thread.start()
    return stop
