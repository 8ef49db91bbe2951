"""Gradebook benchmark: a full-size class on SQLite and on PostgreSQL.

For each database it migrates a fresh, throw-away database, seeds one course
(500 students x 60 standards x 12 pieces of evidence = 360,000 evidence rows by
default) with bulk Core inserts, computes every rollup with
`service.recompute_course`, opens a teacher and a student tool session (rows,
as a launch would leave them) and then measures, with the Flask test client of
`create_app` (server time = wall time of the request inside this process):

1. the teacher gradebook of the whole class (`GET /course/gradebook`),
2. one student's own pages (`GET /my/mastery`, `GET /my/mastery/<standard>`),
3. recording one piece of evidence with its rollup
   (`POST /course/students/<student>/standards/<standard>`),
4. recomputing every rollup after a method change (`service.recompute_course`
   and `POST /course/settings`).

Every request's SQL statements are counted with a `before_cursor_execute`
listener on the engine; the same pages of a tiny second course must issue the
same number of statements (no N+1). See benchmarks/README.md.

    .venv/bin/python benchmarks/gradebook.py [--database both] [--repeat 10]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import platform as pyplatform
import pstats
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import event, insert, select  # noqa: E402

from lti_tool import create_app  # noqa: E402
from lti_tool.courses.models import Course, Enrollment, User  # noqa: E402
from lti_tool.db import (  # noqa: E402
    dispose_engines,
    get_engine,
    migrate,
    session_factory,
    session_scope,
)
from lti_tool.grades import service  # noqa: E402
from lti_tool.grades.models import (  # noqa: E402
    EVIDENCE_SOURCES,
    Evidence,
    GradingPolicy,
    MasteryOverride,
    Standard,
    StandardGroup,
)
from lti_tool.launch import keys  # noqa: E402
from lti_tool.launch.models import Deployment, Platform  # noqa: E402
from lti_tool.launch.tool_session import create_session  # noqa: E402
from tests.support.databases import scratch_postgres  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

# From the issue: what a teacher and a school should be able to count on.
TARGETS_MS = {
    "gradebook": 300.0,
    "evidence_write": 10.0,
    "recompute": 10_000.0,
}

CHUNK = 5_000  # rows per executemany batch
TERM_START = datetime(2025, 9, 1, 8, 0, tzinfo=timezone.utc)
TERM_DAYS = 108  # to mid-December

GIVEN = ("Ada", "Alan", "Amara", "Ana", "Ben", "Chen", "Chloe", "Dev", "Diego", "Elif",
         "Emma", "Farah", "Finn", "Grace", "Hana", "Ibrahim", "Isla", "Jae", "Jonas", "Kofi",
         "Lena", "Leo", "Maya", "Mateo", "Nia", "Noah", "Omar", "Priya", "Ravi", "Sofia")
FAMILY = ("Abara", "Becker", "Castillo", "Dubois", "Eriksen", "Fernandes", "García", "Haddad",
          "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Mbeki", "Nakamura", "O'Brien",
          "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka", "Umarov", "Varga", "Wright",
          "Xu", "Yilmaz", "Zhang", "Álvarez", "Bauer", "Costa", "Delgado")
STRANDS = ("Number sense", "Operations", "Fractions", "Measurement", "Geometry",
           "Data and statistics", "Algebraic thinking", "Ratios", "Problem solving",
           "Communication")


# -- measuring -------------------------------------------------------------------
class StatementCounter:
    """Counts the SQL statements an engine sends while `capture()` is open, and
    the time spent in them (cursor execute until its result is back)."""

    def __init__(self, engine: sa.Engine):
        self.active = False
        self.statements: list[str] = []
        self.sql_seconds = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.active:
            self.statements.append(statement)
            conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        started = conn.info.pop("bench_started", None)
        if self.active and started is not None:
            self.sql_seconds += time.perf_counter() - started

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        self.statements = []
        self.sql_seconds = 0.0
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


def kinds(statements: list[str]) -> dict[str, int]:
    """SELECT / INSERT / UPDATE / DELETE / BEGIN ... counts of a statement list."""
    return dict(Counter(s.lstrip().split(None, 1)[0].upper() for s in statements if s.strip()))


def load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Timing:
    samples_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    example: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    first_ms: float | None = None
    target_ms: float | None = None
    checks: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def met(self) -> bool | None:
        return None if self.target_ms is None else self.median <= self.target_ms

    def summary(self) -> dict:
        out = {
            "median_ms": round(self.median, 2),
            "min_ms": round(min(self.samples_ms), 2),
            "max_ms": round(max(self.samples_ms), 2),
            "samples_ms": [round(v, 2) for v in self.samples_ms],
            # CPU time of this process (Flask, SQLAlchemy, the driver's client side):
            # less sensitive than wall time to other work on a shared machine.
            "cpu_median_ms": round(statistics.median(self.cpu_ms), 2) if self.cpu_ms else None,
            "sql_median_ms": round(statistics.median(self.sql_ms), 2) if self.sql_ms else None,
            "statements_per_request": (max(self.statements) if self.statements else None),
            "statement_kinds": self.kinds,
        }
        if self.example:
            out["statements_example"] = [" ".join(s.split())[:160] for s in self.example]
        if self.first_ms is not None:
            out["first_request_ms"] = round(self.first_ms, 2)
        if self.bytes:
            out["response_bytes"] = self.bytes
        if self.target_ms is not None:
            out["target_ms"] = self.target_ms
            out["met"] = self.met
        if self.checks:
            out["checks"] = self.checks
        return out


# -- databases -------------------------------------------------------------------
@contextmanager
def fresh_database(kind: str, pg_admin: str, workdir: Path) -> Iterator[str]:
    """A new, empty database URL of `kind`, dropped afterwards."""
    if kind == "sqlite":
        try:
            yield f"sqlite:///{workdir / 'gradebook-bench.sqlite3'}"
        finally:
            dispose_engines()
        return
    with scratch_postgres(pg_admin, "pathwise_bench") as url:
        yield url


# -- seeding ---------------------------------------------------------------------
@dataclass
class SeededCourse:
    course_id: int
    teacher_id: int
    student_ids: list[int]
    standard_ids: list[int]
    evidence_rows: int
    override_rows: int


def _one(conn, table, values: dict) -> int:
    return conn.execute(insert(table).returning(table.c.id), values).scalar_one()


def _bulk(conn, table, rows: Iterator[dict] | list[dict]) -> int:
    """Core INSERT executemany in chunks; returns how many rows went in."""
    count, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            conn.execute(insert(table), batch)
            count, batch = count + len(batch), []
    if batch:
        conn.execute(insert(table), batch)
        count += len(batch)
    return count


def _evidence_rows(rng: random.Random, course_id: int, teacher_id: int,
                   student_ids: list[int], standard_ids: list[int], per_cell: int
                   ) -> Iterator[dict]:
    """Scores on the 1-4 scale that grow over the term: each student has an
    ability, each standard a difficulty, each score some noise."""
    ability = {sid: rng.gauss(0.0, 0.6) for sid in student_ids}
    difficulty = {sid: rng.gauss(0.0, 0.4) for sid in standard_ids}
    weights = (5, 3, 1, 1, 2)  # checkpoints most, then observations, quick checks, ...
    for std_index, standard_id in enumerate(standard_ids):
        # A standard is taught for a stretch of the term: its evidence falls there.
        start = (std_index * TERM_DAYS) // (2 * len(standard_ids))
        span = TERM_DAYS - start
        for student_id in student_ids:
            days = sorted(rng.uniform(start, start + span) for _ in range(per_cell))
            for k, day in enumerate(days):
                progress = k / max(per_cell - 1, 1)
                raw = (2.2 + ability[student_id] - difficulty[standard_id]
                       + 1.1 * progress + rng.gauss(0.0, 0.55))
                score = float(min(4, max(1, round(raw))))
                when = TERM_START + timedelta(days=day, minutes=rng.randrange(0, 420))
                source = rng.choices(EVIDENCE_SOURCES, weights)[0]
                yield {
                    "course_id": course_id, "student_id": student_id,
                    "standard_id": standard_id, "score": score, "assessed_at": when,
                    "source": source,
                    "item_ref": f"Checkpoint {k + 1}" if source == "checkpoint" else None,
                    "recorded_by": teacher_id,
                    "note": "Explained the strategy aloud" if rng.random() < 0.05 else "",
                    "created_at": when, "superseded_by": None,
                }


def seed_course(conn, rng: random.Random, *, deployment_pk: int, platform_id: int,
                context_id: str, title: str, students: int, standards: int,
                evidence: int) -> SeededCourse:
    """One course, its teacher, students, standards (in strands), evidence and a
    few teacher overrides, with bulk inserts. Rollups are left to the service."""
    now = datetime.now(timezone.utc)
    course_id = _one(conn, Course.__table__, {
        "deployment_pk": deployment_pk, "context_id": context_id, "title": title,
        "label": context_id, "context_types": [], "created_at": now, "updated_at": now})
    teacher_id = _one(conn, User.__table__, {
        "platform_id": platform_id, "sub": f"{context_id}-teacher", "name": "Grace Hopper",
        "given_name": "Grace", "family_name": "Hopper", "email": None,
        "created_at": now, "updated_at": now})
    people = []
    for i in range(students):
        given, family = GIVEN[i % len(GIVEN)], FAMILY[(i // len(GIVEN) + i) % len(FAMILY)]
        people.append({"platform_id": platform_id, "sub": f"{context_id}-s{i:05d}",
                       "name": f"{given} {family}", "given_name": given,
                       "family_name": family, "email": None, "created_at": now,
                       "updated_at": now})
    _bulk(conn, User.__table__, people)
    student_ids = list(conn.scalars(
        select(User.id).where(User.sub.like(f"{context_id}-s%")).order_by(User.sub)))
    enrol = [{"user_id": teacher_id, "course_id": course_id, "role": "teacher",
              "lis_roles": [], "updated_at": now}]
    enrol += [{"user_id": sid, "course_id": course_id, "role": "student", "lis_roles": [],
               "updated_at": now} for sid in student_ids]
    _bulk(conn, Enrollment.__table__, enrol)

    strands = STRANDS[:max(1, math.ceil(standards / 10))]
    group_ids = [_one(conn, StandardGroup.__table__, {
        "course_id": course_id, "name": name, "position": pos})
        for pos, name in enumerate(strands)]
    rows = []
    for i in range(standards):
        strand = i * len(strands) // standards
        rows.append({
            "course_id": course_id, "group_id": group_ids[strand],
            "code": f"{strand + 1}.{i % 10 + 1}",
            "title": f"{strands[strand]}: learning target {i % 10 + 1}",
            "description": "I can explain my thinking and check that my answer makes sense.",
            "position": i, "method": None, "weight": None, "n": None,
            "case_identifier": None, "created_at": now})
    _bulk(conn, Standard.__table__, rows)
    standard_ids = list(conn.scalars(select(Standard.id).where(
        Standard.course_id == course_id).order_by(Standard.position)))

    evidence_rows = _bulk(conn, Evidence.__table__, _evidence_rows(
        rng, course_id, teacher_id, student_ids, standard_ids, evidence))
    overrides = []
    for _ in range(max(1, students * standards // 200)):  # 0.5 % of cells
        overrides.append({
            "course_id": course_id, "student_id": rng.choice(student_ids),
            "standard_id": rng.choice(standard_ids), "value": float(rng.randint(2, 4)),
            "note": "Showed it in a conference", "created_by": teacher_id,
            "created_at": TERM_START + timedelta(days=rng.uniform(30, TERM_DAYS))})
    override_rows = _bulk(conn, MasteryOverride.__table__, overrides)
    return SeededCourse(course_id, teacher_id, student_ids, standard_ids, evidence_rows,
                        override_rows)


def seed(url: str, args: argparse.Namespace) -> tuple[dict, dict]:
    rng = random.Random(args.seed)
    engine = get_engine(url)
    now = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with engine.begin() as conn:
        platform_id = _one(conn, Platform.__table__, {
            "name": "Bench LMS", "issuer": "https://lms.example", "client_id": "bench",
            "auth_login_url": "https://lms.example/auth",
            "auth_token_url": "https://lms.example/token", "auth_audience": None,
            "jwks_url": "https://lms.example/jwks", "active": True, "created_at": now})
        deployment_pk = _one(conn, Deployment.__table__, {
            "platform_id": platform_id, "deployment_id": "1", "active": True,
            "created_at": now})
        big = seed_course(conn, rng, deployment_pk=deployment_pk, platform_id=platform_id,
                          context_id="big", title="Grade 7 Mathematics",
                          students=args.students, standards=args.standards,
                          evidence=args.evidence)
        small = seed_course(conn, rng, deployment_pk=deployment_pk, platform_id=platform_id,
                            context_id="small", title="Small course", students=5,
                            standards=3, evidence=2)
    timings["insert_s"] = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        # Autovacuum would analyse the new tables within a minute in production.
        started_analyze = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        timings["analyze_s"] = time.perf_counter() - started_analyze
    started_rollups = time.perf_counter()
    with session_scope(url) as s:
        written = service.recompute_course(s, big.course_id)
        service.recompute_course(s, small.course_id)
    timings["initial_rollups_s"] = time.perf_counter() - started_rollups
    timings["total_s"] = time.perf_counter() - started
    info = {
        "platform_id": platform_id, "deployment_pk": deployment_pk, "big": big,
        "small": small,
    }
    summary = {k: round(v, 2) for k, v in timings.items()}
    summary.update(evidence_rows=big.evidence_rows + small.evidence_rows,
                   evidence_rows_per_s=round(big.evidence_rows / timings["insert_s"]),
                   override_rows=big.override_rows + small.override_rows,
                   rollups=written)
    return info, summary


def open_sessions(url: str, app, info: dict) -> dict[str, str]:
    """Tool-session rows as a launch leaves them, and the `t` token pages accept."""
    tokens = app.extensions["pathwise"].tokens
    out = {}
    with session_scope(url) as s:
        for name, course, user_id, role in (
                ("teacher", info["big"], info["big"].teacher_id, "teacher"),
                ("student", info["big"], info["big"].student_ids[0], "student"),
                ("small_teacher", info["small"], info["small"].teacher_id, "teacher"),
                ("small_student", info["small"], info["small"].student_ids[0], "student")):
            row = create_session(s, platform_id=info["platform_id"],
                                 deployment_pk=info["deployment_pk"], user_id=user_id,
                                 course_id=course.course_id, role=role,
                                 message_type="LtiResourceLinkRequest",
                                 frame_origins=["https://lms.example"], launch_claims={})
            s.flush()
            out[name] = tokens.issue(row.id)
    return out


# -- the benchmark -----------------------------------------------------------------
@dataclass
class Sample:
    response: object
    body: bytes
    wall_ms: float
    cpu_ms: float
    sql_ms: float
    statements: list[str]


def timed_request(client, counter: StatementCounter, method: str, path: str,
                  data: dict | None = None) -> Sample:
    with counter.capture() as statements:
        cpu = time.process_time()
        started = time.perf_counter()
        response = client.open(path, method=method, data=data)
        body = response.get_data()
        elapsed = (time.perf_counter() - started) * 1000
        cpu = (time.process_time() - cpu) * 1000
    return Sample(response, body, elapsed, cpu, counter.sql_seconds * 1000, list(statements))


def measure_requests(client, counter: StatementCounter, repeat: int,
                     make: Callable[[int], tuple[str, str, dict | None]],
                     expect: int, warmup: bool = True,
                     check: Callable[[bytes], dict] | None = None) -> Timing:
    """`make(i)` gives the i-th request (method, path, form); a warm-up request
    first (its time is reported as the first request's), then `repeat` ones."""
    timing = Timing()
    for i in range(-1 if warmup else 0, repeat):
        method, path, data = make(i)
        sample = timed_request(client, counter, method, path, data)
        if sample.response.status_code != expect:
            raise SystemExit(f"{method} {path} answered {sample.response.status_code}, "
                             f"expected {expect}: {sample.body[:400]!r}")
        if i < 0:
            timing.first_ms = sample.wall_ms
            if check:
                timing.checks = check(sample.body)
            continue
        timing.samples_ms.append(sample.wall_ms)
        timing.cpu_ms.append(sample.cpu_ms)
        timing.sql_ms.append(sample.sql_ms)
        timing.statements.append(len(sample.statements))
        timing.kinds = kinds(sample.statements)
        if len(sample.statements) <= 40:
            timing.example = sample.statements
        timing.bytes = len(sample.body)
    return timing


def gradebook_check(students: int, standards: int, token: str
                    ) -> Callable[[bytes], dict]:
    def check(body: bytes) -> dict:
        text = body.decode()
        rows = text.count('<th scope="row" class="sticky-col">')
        cells = text.count('<td><a class="cell"')
        ok = rows == students and cells == students * standards
        if not ok:
            raise SystemExit(f"gradebook shows {rows} rows and {cells} cells, expected "
                             f"{students} and {students * standards}")
        # Every cell links with the session token: how much of the page that is.
        token_bytes = text.count("?t=") * len(token)
        return {"rows": rows, "cells": cells, "ok": ok, "token_bytes_in_links": token_bytes}
    return check


def time_recompute(url: str, counter: StatementCounter, course_id: int, method: str
                   ) -> tuple[float, int, list[str], float]:
    """Switch the course's method, then time recompute_course + commit."""
    s = session_factory(url)()
    try:
        s.get(GradingPolicy, course_id).method = method
        s.flush()
        with counter.capture() as statements:
            started = time.perf_counter()
            count = service.recompute_course(s, course_id)
            s.commit()
            elapsed = (time.perf_counter() - started) * 1000
        return elapsed, count, list(statements), counter.sql_seconds * 1000
    finally:
        s.close()


def profile_call(label: str, fn: Callable[[], object], top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs()
    out.write(f"\n=== profile: {label} (top {top} by own time) ===\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"=== profile: {label} (top {top} by cumulative time) ===\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


@dataclass
class BenchDatabase:
    """A run's scratch folder (the tool's keys and instance) and database."""

    url: str
    workdir: Path
    migrate_s: float
    load_before: list[float]
    apps: list = field(default_factory=list)

    def app(self):
        """The tool, in this process, on this database."""
        app = create_app({"instance_path": self.workdir / "instance", "database_url": self.url,
                          "keys_dir": self.workdir / "keys", "base_url": "https://tool.test",
                          "secret_key": secrets.token_urlsafe(32),
                          "jwks_refetch_interval": 0})
        self.apps.append(app)
        return app

    def outcome(self, kind: str, seeding: dict, results: dict, profiles: str) -> dict:
        """What a run reports for this database."""
        server = None
        if kind == "postgresql":
            with get_engine(self.url).connect() as conn:
                server = conn.scalar(sa.text("SHOW server_version"))
        return {"database": kind, "server_version": server, "seeding": seeding,
                "requests": results, "profile": profiles or None,
                "load_average": {"before": self.load_before, "after": load_average()}}

    def flush_metrics(self) -> None:
        """The tool's request counters, written while their database still
        exists (not at interpreter exit, after it was dropped)."""
        for app in self.apps:
            metrics = app.extensions.get("pathwise_metrics")
            if metrics is not None:
                metrics.flush_quietly()


@contextmanager
def migrated_database(kind: str, pg_admin_url: str, prefix: str) -> Iterator[BenchDatabase]:
    """A new database of `kind`, migrated (timed), with a scratch folder and the
    tool's key in it; both are removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        load_before = load_average()
        keys.ensure_key(workdir / "keys")
        with fresh_database(kind, pg_admin_url, workdir) as url:
            started = time.perf_counter()
            migrate(url)
            db = BenchDatabase(url, workdir, time.perf_counter() - started, load_before)
            try:
                yield db
            finally:
                db.flush_metrics()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def save_profile(name: str, text: str) -> None:
    path = RESULTS_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_database(kind: str, args: argparse.Namespace, say: Callable[[str], None]) -> dict:
    with migrated_database(kind, args.pg_admin_url, "pathwise-gradebook-") as db:
        return _run_database(kind, args, say, db)


def _run_database(kind: str, args: argparse.Namespace, say: Callable[[str], None],
                  db: BenchDatabase) -> dict:
    url, migrate_s = db.url, db.migrate_s
    say(f"[{kind}] migrated in {migrate_s:.1f} s; seeding "
        f"{args.students} x {args.standards} x {args.evidence} evidence ...")
    info, seeding = seed(url, args)
    seeding["migrate_s"] = round(migrate_s, 2)
    say(f"[{kind}] seeded {seeding['evidence_rows']} evidence rows in "
        f"{seeding['insert_s']} s ({seeding['evidence_rows_per_s']}/s); "
        f"initial rollups {seeding['initial_rollups_s']} s")
    app = db.app()
    counter = StatementCounter(get_engine(url))
    tokens = open_sessions(url, app, info)
    client = app.test_client()
    big, small = info["big"], info["small"]
    results: dict[str, dict] = {}
    timings: dict[str, Timing] = {}
    rng = random.Random(args.seed + 1)

    def get(path: str, token: str) -> Callable[[int], tuple[str, str, None]]:
        return lambda _i: ("GET", f"{path}?t={token}", None)

    say(f"[{kind}] gradebook page x{args.repeat} ...")
    timings["gradebook"] = measure_requests(
        client, counter, args.repeat, get("/course/gradebook", tokens["teacher"]), 200,
        check=gradebook_check(len(big.student_ids), len(big.standard_ids),
                             tokens["teacher"]))
    timings["gradebook"].target_ms = TARGETS_MS["gradebook"]
    say(f"[{kind}] student pages x{args.repeat} ...")
    timings["my_mastery"] = measure_requests(
        client, counter, args.repeat, get("/my/mastery", tokens["student"]), 200)
    std = big.standard_ids[len(big.standard_ids) // 2]
    timings["my_mastery_standard"] = measure_requests(
        client, counter, args.repeat, get(f"/my/mastery/{std}", tokens["student"]), 200)
    timings["teacher_student_standard"] = measure_requests(
        client, counter, args.repeat,
        get(f"/course/students/{big.student_ids[7]}/standards/{std}", tokens["teacher"]),
        200)

    say(f"[{kind}] evidence writes x{args.repeat} ...")

    def write(i: int) -> tuple[str, str, dict]:
        # A different cell each time, spread over the class.
        student = big.student_ids[(i * 37 + 11) % len(big.student_ids)]
        standard = big.standard_ids[(i * 7 + 3) % len(big.standard_ids)]
        return ("POST", f"/course/students/{student}/standards/{standard}", {
            "t": tokens["teacher"], "score": str(rng.randint(1, 4)),
            "assessed_at": "2025-12-18", "source": "observation",
            "note": "Benchmark observation"})
    timings["evidence_write"] = measure_requests(client, counter, args.repeat, write, 303)
    timings["evidence_write"].target_ms = TARGETS_MS["evidence_write"]

    say(f"[{kind}] recompute_course after a method change ...")
    recompute = Timing(target_ms=TARGETS_MS["recompute"])
    per_method = {}
    for method in args.methods:
        elapsed, count, statements, sql_ms = time_recompute(url, counter, big.course_id,
                                                            method)
        per_method[method] = round(elapsed, 1)
        recompute.samples_ms.append(elapsed)
        recompute.sql_ms.append(sql_ms)
        recompute.statements.append(len(statements))
        recompute.kinds = kinds(statements)
        recompute.checks = {"rollups_written": count}
        say(f"[{kind}]   {method}: {elapsed / 1000:.2f} s, {count} rollups")
    recompute.checks["ms_per_method"] = per_method
    timings["recompute_service"] = recompute

    say(f"[{kind}] POST /course/settings x{args.settings_repeat} ...")
    cycle = ["highest", "decaying_average"]

    def settings(i: int) -> tuple[str, str, dict]:
        return ("POST", "/course/settings", {
            "t": tokens["teacher"], "method": cycle[i % len(cycle)], "weight": "0.65",
            "n": "3", "mastery_points": "3"})

    def saw_recalculated(body: bytes) -> dict:
        text = body.decode()
        if "recalculated" not in text:
            raise SystemExit("the settings page did not say it recalculated")
        return {"message": text.split("Saved.", 1)[1].split("<", 1)[0].strip()}
    timings["settings_recompute"] = measure_requests(
        client, counter, args.settings_repeat, settings, 200, warmup=False)
    timings["settings_recompute"].checks = saw_recalculated(
        timed_request(client, counter, *settings(0)).body)
    timings["settings_recompute"].target_ms = TARGETS_MS["recompute"]

    # No N+1: a course of 5 students x 3 standards must cost as many statements.
    say(f"[{kind}] statement counts on a 5 x 3 course ...")
    small_counts = {}
    for name, method, path, data, expect in (
            ("gradebook", "GET", f"/course/gradebook?t={tokens['small_teacher']}",
             None, 200),
            ("my_mastery", "GET", f"/my/mastery?t={tokens['small_student']}", None, 200),
            ("my_mastery_standard", "GET",
             f"/my/mastery/{small.standard_ids[0]}?t={tokens['small_student']}", None,
             200),
            ("evidence_write", "POST",
             f"/course/students/{small.student_ids[1]}/standards/{small.standard_ids[1]}",
             {"t": tokens["small_teacher"], "score": "3", "assessed_at": "2025-12-18",
              "source": "observation"}, 303)):
        timed_request(client, counter, method, path, data)  # warm
        if method == "POST":
            data = dict(data, score="2")
        sample = timed_request(client, counter, method, path, data)
        if sample.response.status_code != expect:
            raise SystemExit(f"{name} on the small course answered "
                             f"{sample.response.status_code}")
        small_counts[name] = len(sample.statements)

    for name, timing in timings.items():
        results[name] = timing.summary()
        if name in small_counts:
            results[name]["statements_small_course"] = small_counts[name]
            results[name]["no_n_plus_1"] = (
                small_counts[name] == results[name]["statements_per_request"])

    profiles = ""
    if args.profile:
        say(f"[{kind}] profiling one gradebook request, one write and one recompute ...")
        profiles += profile_call(
            f"{kind} GET /course/gradebook",
            lambda: client.get(f"/course/gradebook?t={tokens['teacher']}"), args.top)
        _method, path, form = write(999)
        profiles += profile_call(f"{kind} POST evidence",
                                 lambda: client.post(path, data=form), args.top)
        profiles += profile_call(
            f"{kind} recompute_course (power_law)",
            lambda: time_recompute(url, counter, big.course_id, "power_law"), args.top)
        save_profile(f"gradebook-profile-{kind}.txt", profiles)
    return db.outcome(kind, seeding, results, profiles)


# -- report ------------------------------------------------------------------------
ROWS = (
    ("gradebook", "teacher gradebook page"),
    ("my_mastery", "student: /my/mastery"),
    ("my_mastery_standard", "student: /my/mastery/<id>"),
    ("teacher_student_standard", "teacher: student x standard page"),
    ("evidence_write", "record evidence + rollup (POST)"),
    ("recompute_service", "recompute_course (service)"),
    ("settings_recompute", "method change (POST /course/settings)"),
)


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def report(runs: list[dict], args: argparse.Namespace) -> str:
    lines = [f"Gradebook benchmark: {args.students} students x {args.standards} standards "
             f"x {args.evidence} evidence; median of {args.repeat} requests "
             f"({args.settings_repeat} for settings, one per method for recompute)", ""]
    for run in runs:
        seed_info = run["seeding"]
        version = f" {run['server_version']}" if run["server_version"] else ""
        lines.append(f"== {run['database']}{version} ==")
        lines.append(
            f"seeding: {seed_info['evidence_rows']:,} evidence rows in {seed_info['insert_s']} s "
            f"({seed_info['evidence_rows_per_s']:,} rows/s), "
            + (f"ANALYZE {seed_info['analyze_s']} s, " if "analyze_s" in seed_info else "")
            + f"initial rollups ({seed_info['rollups']:,}) {seed_info['initial_rollups_s']} s, "
            f"migrate {seed_info['migrate_s']} s")
        header = (f"{'measurement':40} {'median':>9} {'min':>9} {'CPU':>9} {'in SQL':>9} "
                  f"{'first':>9} {'SQL':>4} {'5x3':>4} {'target':>8}  result")
        lines += [header, "-" * len(header)]
        for key, label in ROWS:
            r = run["requests"][key]
            first = _ms(r["first_request_ms"]) if "first_request_ms" in r else "-"
            small = r.get("statements_small_course")
            target = _ms(r["target_ms"]) if "target_ms" in r else "-"
            result = ("" if "met" not in r else "met" if r["met"] else "NOT met")
            cpu = _ms(r["cpu_median_ms"]) if r.get("cpu_median_ms") is not None else "-"
            sql = _ms(r["sql_median_ms"]) if r.get("sql_median_ms") is not None else "-"
            lines.append(f"{label:40} {_ms(r['median_ms']):>9} {_ms(r['min_ms']):>9} "
                         f"{cpu:>9} {sql:>9} {first:>9} {r['statements_per_request']:>4} "
                         f"{small if small else '-':>4} {target:>8}  {result}")
        gb = run["requests"]["gradebook"]
        lines.append(f"gradebook page: {gb['checks']['rows']} rows, {gb['checks']['cells']:,} "
                     f"cells, {gb['response_bytes'] / 1e6:.1f} MB of HTML (session token in "
                     f"links: {gb['checks']['token_bytes_in_links'] / 1e6:.1f} MB)")
        per = run["requests"]["recompute_service"]["checks"]["ms_per_method"]
        lines.append("recompute by method: " + ", ".join(f"{m} {_ms(v)}" for m, v in per.items()))
        load = run["load_average"]
        lines.append(f"load average before/after: {load['before']} / {load['after']}")
        lines.append("")
    lines += [
        "median/min = wall time of the request in-process; CPU = this process's CPU time "
        "(PostgreSQL's own work is not in it);",
        "in SQL = time inside cursor.execute (psycopg reads the rows there; sqlite3 reads "
        "them later, so SQLite's figure leaves that out);",
        "SQL = statements per request (incl. BEGIN on SQLite); 5x3 = the same request on a "
        "5-student, 3-standard course (equal = no N+1); result compares the median.",
    ]
    return "\n".join(lines)


def code_version() -> dict:
    """Which lti_tool was measured: its folder and, in a git checkout, the commit
    and whether lti_tool/ had uncommitted changes."""
    import subprocess

    import lti_tool

    out = {"lti_tool": str(Path(lti_tool.__file__).parent), "commit": None, "dirty": None}
    try:
        out["commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
            check=True).stdout.strip()
        out["dirty"] = bool(subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "lti_tool"],
            capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def say(text: str) -> None:
    """Progress, on stderr: stdout carries the report."""
    print(text, file=sys.stderr, flush=True)


def databases_of(choice: str) -> list[str]:
    """--database sqlite|postgresql|both as the list of databases to run."""
    return ["sqlite", "postgresql"] if choice == "both" else [choice]


def announce_code() -> dict:
    """code_version(), said before a run starts."""
    version = code_version()
    say(f"measuring lti_tool from {version['lti_tool']} (commit {version['commit']}"
        f"{', with uncommitted changes' if version['dirty'] else ''})")
    return version


def write_results(args: argparse.Namespace, version: dict, runs: list[dict],
                  **fields) -> None:
    """Print each run's profile, then write the configuration, `fields`, the
    machine, the code and the runs (profiles left out) as JSON to --out."""
    for run in runs:
        if run["profile"]:
            print(run["profile"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **fields,
        "machine": {"python": pyplatform.python_version(), "platform": pyplatform.platform()},
        "code": version,
        "runs": [{k: v for k, v in run.items() if k != "profile"} for run in runs],
    }, indent=2))
    print(f"\nwritten to {args.out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--standards", type=int, default=60)
    parser.add_argument("--evidence", type=int, default=12, help="pieces per student-standard")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page (median)")
    parser.add_argument("--settings-repeat", type=int, default=3,
                        help="POST /course/settings requests (each recomputes everything)")
    parser.add_argument("--methods", nargs="+",
                        default=["highest", "power_law", "decaying_average"],
                        help="methods switched to, in turn, for the service recompute")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN,
                        help="a PostgreSQL database to create the throw-away one from")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one gradebook request, one write and one recompute")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "gradebook.json")
    args = parser.parse_args(argv)

    version = announce_code()
    runs = [run_database(kind, args, say) for kind in databases_of(args.database)]
    print(report(runs, args))
    write_results(args, version, runs, targets_ms=TARGETS_MS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
