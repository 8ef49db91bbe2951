"""Grade passback under faults, against the sandbox LMS over real HTTP (both
flavours): 503s for a while, 429 with Retry-After, read timeouts after the LMS
applied the score, dropped connections, the LMS down (connection refused), a
worker killed with SIGKILL mid-batch, and two workers on one PostgreSQL outbox.

In every case the sandbox's final gradebook equals the scores computed here,
no score is lost (every outbox row ends sent or superseded), and nothing is
written twice except identical idempotent retries: every (line item, user,
timestamp) the LMS saw carries one payload, and a retry reuses the timestamp
of the attempt it repeats.

The worker's backoff and lease come from LTI_TOOL_PASSBACK_* (worker.py), so
the faults resolve in seconds, not minutes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lti_tool.db import dispose_engines
from lti_tool.passback import worker
from lti_tool.passback.platform_client import reset_clients
from tests.support.databases import throwaway_postgres
from tests.support.http_launch import ServerProcess, tool_env
from tests.support.lms_driver import (
    Course,
    Stack,
    build_stack,
    db_rows,
    expected_share,
    setup_course,
    wait_for,
)

PATTERNS = [(2, 1), (3, 2), (4, 3), (3, 3), (1, 4)]  # 0, 50, 100, 100, 50 of 100
FAST = {worker.ENV_BASE_DELAY: "0.2", worker.ENV_MAX_DELAY: "1"}


# -- what the LMS saw and what it keeps -------------------------------------------------
def levels_for(course: Course, round_no: int) -> tuple[dict[int, tuple[int, int]],
                                                      dict[str, float]]:
    """New evidence for every student ({user id: (F.1, F.2)}) and the LMS
    score each must end with ({sub: score}), computed independently."""
    students = sorted(course.students().items())
    levels, expected = {}, {}
    for index, (sub, pk) in enumerate(students):
        pair = PATTERNS[(index + round_no) % len(PATTERNS)]
        levels[pk], expected[sub] = pair, expected_share(pair)
    return levels, expected


def settle(course: Course, expected: dict[str, float], timeout: float = 20.0) -> None:
    """Wait until the LMS gradebook shows exactly the expected scores and the
    outbox has nothing left to do; then check that nothing was lost."""
    def matches() -> bool:
        try:
            results = course.results()
        except Exception:  # noqa: BLE001 - the LMS may be restarting
            return False
        return all(sub in results and results[sub]["scoreGiven"] == score
                   and results[sub]["gradingProgress"] == "FullyGraded"
                   for sub, score in expected.items())

    wait_for(matches, timeout)
    wait_for(lambda: not open_rows(course), timeout)
    results = course.results()
    for sub, score in expected.items():
        got = results[sub]
        assert got["scoreGiven"] == score and got["scoreMaximum"] == 100.0, (sub, got)
        assert got["grade"] == score
        mastered = int(score // 50)
        assert got["comment"].startswith(f"Mastered {mastered} of 2 standards"), got
    # The LMS holds the newest score Pathwise wrote for each student, timestamp and all.
    newest = {sub: ts for sub, ts in db_rows(
        course.stack,
        "SELECT o.user_sub, o.score_ts FROM score_outbox o WHERE o.id IN (SELECT MAX(id) "
        "FROM score_outbox WHERE placement_id = :p GROUP BY student_id, line_item_id)",
        p=course.placement_id)}
    for sub in expected:
        assert _same_instant(results[sub]["timestamp"], newest[sub]), (sub, results[sub])


def _same_instant(lms: str, ours: str) -> bool:
    from lti_tool.passback.rules import parse_timestamp

    a, b = parse_timestamp(lms), parse_timestamp(ours)
    # Moodle keeps whole seconds (B8); Canvas the instant.
    return abs((a - b).total_seconds()) < 1.0 and a.replace(microsecond=0) == \
        b.replace(microsecond=0)


def open_rows(course: Course) -> list:
    """Outbox rows not yet settled (anything but sent or superseded)."""
    return db_rows(course.stack, "SELECT id, status, attempts, last_error FROM score_outbox "
                   "WHERE status NOT IN ('sent', 'superseded')")


def score_posts(stack: Stack) -> list[dict]:
    return [e for e in stack.service_requests("/scores")
            if e["method"] == "POST" and e.get("score")]


def check_idempotent(stack: Stack) -> dict[tuple, list[dict]]:
    """One payload per (line item, user, timestamp); returns the attempts by key."""
    attempts: dict[tuple, list[dict]] = defaultdict(list)
    for entry in score_posts(stack):
        score = entry["score"]
        attempts[(entry["path"], score["userId"], score["timestamp"])].append(entry)
    for key, entries in attempts.items():
        payloads = {json.dumps(e["score"], sort_keys=True) for e in entries}
        assert len(payloads) == 1, f"{key} was sent with {len(payloads)} different payloads"
    return attempts


def check_retried(stack: Stack, faulted: int, ok: tuple[int, ...] = (200,)) -> None:
    """Every faulted attempt was repeated later with the same timestamp (and
    payload), answered with one of `ok` — unless a newer score for the same
    student replaced it in the outbox before its retry was due (coalescing)."""
    attempts = check_idempotent(stack)
    status = {(sub, ts): st for sub, ts, st in db_rows(
        stack, "SELECT user_sub, score_ts, status FROM score_outbox")}
    hit = repeated = 0
    for key, entries in attempts.items():
        entries.sort(key=lambda e: e["seq"])
        for n, entry in enumerate(entries):
            if entry["fault"] is None:
                continue
            hit += 1
            later = [e for e in entries[n + 1:] if e["fault"] is None]
            if later:
                repeated += 1
                assert later[0]["status"] in ok, (key, later[0])
                continue
            path, sub, ts = key
            assert status[(sub, ts)] == "superseded", f"{key}: faulted and never retried"
            assert any(k[0] == path and k[1] == sub and k[2] > ts and any(
                e["fault"] is None and e["status"] in ok for e in v)
                for k, v in attempts.items()), f"{key}: nothing newer delivered"
    assert hit == faulted, f"{hit} faulted score requests, expected {faulted}"
    assert repeated, "no faulted attempt was retried with its timestamp"


# -- one course per flavour, faults one after another ---------------------------------
@pytest.fixture(scope="module", params=["canvas", "moodle"])
def course(request, tmp_path_factory) -> Iterator[Course]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in FAST.items():
            mp.setenv(name, value)
        stack = build_stack(tmp_path_factory.mktemp(f"faults-{request.param}"),
                            request.param)
        try:
            made = setup_course(stack)
            # Passback was just enabled: everyone's first score arrives first.
            settle(made, {sub: 0.0 for sub in made.students()})
            made.round = 0
            yield made
        finally:
            stack.close()
            reset_clients()
            dispose_engines()


def new_round(course: Course, *faults: dict, paused: bool = True) -> dict[str, float]:
    """Clear the LMS's log, arm the faults, record new evidence (F.1 then
    F.2); returns the expected scores. `paused`: the worker waits until both
    are recorded, so each student has one score to send; otherwise it starts
    on the F.1 scores at once and F.2's replace them while they are retried."""
    stack = course.stack
    stack.clear_faults()
    stack.clear_requests()
    for rule in faults:
        stack.fault(**rule)
    course.round += 1
    levels, expected = levels_for(course, course.round)
    if paused:
        stack.stop_worker()
    try:
        course.record(levels)
    finally:
        stack.start_worker()
    return expected


def test_503_for_a_while(course: Course) -> None:
    expected = new_round(course, {"match": "/scores", "method": "POST", "status": 503,
                                  "count": 9}, paused=False)
    settle(course, expected)
    check_retried(course.stack, faulted=9)
    rows = db_rows(course.stack, "SELECT MAX(attempts) FROM score_outbox")
    assert rows[0][0] >= 2


def test_429_with_retry_after(course: Course) -> None:
    expected = new_round(course, {"match": "/scores", "method": "POST", "status": 429,
                                  "retry_after": 1, "count": 3})
    started = time.monotonic()
    settle(course, expected)
    assert time.monotonic() - started >= 1.0
    check_retried(course.stack, faulted=3)
    for key, entries in check_idempotent(course.stack).items():
        entries.sort(key=lambda e: e["seq"])
        for before, after in zip(entries, entries[1:], strict=False):
            if before["status"] == 429:
                waited = after["time"] - (before["time"] + before["duration_ms"] / 1000)
                assert waited >= 0.95, f"{key}: retried {waited:.2f} s after Retry-After: 1"


def test_read_timeout_after_the_lms_applied_the_score(course: Course, monkeypatch) -> None:
    """The LMS stores the score but answers after the client gave up; the
    retry (same timestamp) comes after the score was stored: Canvas accepts
    the equal timestamp, Moodle refuses it with 409, which counts as
    delivered (security.md I.107)."""
    monkeypatch.setenv(worker.ENV_TIMEOUT, "0.5")
    monkeypatch.setenv(worker.ENV_BASE_DELAY, "1")  # first retry 0.5-1 s after the timeout
    expected = new_round(course, {"match": "/scores", "method": "POST", "delay_ms": 700,
                                  "count": 2})
    settle(course, expected)
    ok = (200,) if course.stack.flavor == "canvas" else (409,)
    check_retried(course.stack, faulted=2, ok=ok)
    attempts = check_idempotent(course.stack)
    delayed = [e for entries in attempts.values() for e in entries if e["fault"]]
    assert len(delayed) == 2
    assert all(e["status"] == 200 and e["duration_ms"] >= 700 for e in delayed), delayed
    rows = {(sub, ts): (status, attempts, error) for sub, ts, status, attempts, error in db_rows(
        course.stack, "SELECT user_sub, score_ts, status, attempts, last_error FROM score_outbox")}
    for entry in delayed:
        status, tries, error = rows[(entry["score"]["userId"], entry["score"]["timestamp"])]
        assert status == "sent" and tries == 2
        # Moodle's 409 for the repeat is counted as delivered, and said so.
        assert error == ("" if course.stack.flavor == "canvas"
                         else "The LMS already had a newer score.")


def test_dropped_connections(course: Course) -> None:
    expected = new_round(course, {"match": "/scores", "method": "POST", "drop": True,
                                  "count": 4})
    settle(course, expected)
    check_retried(course.stack, faulted=4)


def test_refused_score_is_shown_and_sent_again_on_demand(course: Course) -> None:
    """A refusal retrying cannot fix (not a student) dead-letters the score
    with its reason on the teacher's page; "Sync now" sends it again."""
    refusal = ({"status": 422, "body": {"errors": {
        "type": "unprocessable_entity",
        "message": "User not found in course or is not a student"}}}
        if course.stack.flavor == "canvas" else
        {"status": 400, "body": {"status": 400, "reason": "Incorrect score received{}"}})
    expected = new_round(course, {"match": "/scores", "method": "POST", "count": 1,
                                  **refusal})
    page_path = f"/course/placements/{course.placement_id}"
    dead = wait_for(lambda: [r for r in open_rows(course) if r.status == "dead"])
    assert len(dead) == 1 and dead[0].attempts == 1
    page = course.teacher.get(page_path)
    assert "not a student in the course" in page.text
    r = course.teacher.post(f"{page_path}/sync")
    assert r.status_code == 303, r.text[:500]
    settle(course, expected)
    check_retried(course.stack, faulted=1)


def test_lms_down_connection_refused(course: Course) -> None:
    stack = course.stack
    stack.clear_faults()
    stack.clear_requests()
    stack.stop_sandbox()
    try:
        course.round += 1
        levels, expected = levels_for(course, course.round)
        course.record(levels)
        # The worker tries, is refused, and backs off (twice at least).
        refused = wait_for(lambda: [r for r in open_rows(course)
                                    if r.attempts >= 2 and "could not reach" in r.last_error])
        assert all(r.status == "pending" for r in refused)
    finally:
        stack.start_sandbox()
    settle(course, expected)
    attempts = check_idempotent(stack)
    assert all(len(entries) == 1 for entries in attempts.values())  # each arrived once


# -- a worker killed mid-batch; two workers on one outbox ------------------------------
def worker_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = tool_env(stack.root, stack.tool_url, stack.database_url)
    env.update(FAST)
    env.update(extra)
    return env


def start_worker(stack: Stack, name: str, *args: str, **env: str) -> ServerProcess:
    return ServerProcess([sys.executable, "-m", "lti_tool.cli", "worker", *args],
                         env=worker_env(stack, **env), log_path=stack.root / f"{name}.log")


def crowded_course(stack: Stack, students: int) -> tuple[Course, dict[str, float]]:
    """`students` more students enrolled by roster sync, passback on, then F.1
    evidence for all: two outbox rows per student, none delivered yet."""
    stack.add_students(students)
    course = setup_course(stack)
    students = sorted(course.students().items())
    levels = {pk: PATTERNS[n % len(PATTERNS)][:1] for n, (_, pk) in enumerate(students)}
    expected = {sub: expected_share(levels[pk]) for sub, pk in students}
    course.record(levels)
    assert db_rows(stack, "SELECT COUNT(*) FROM score_outbox")[0][0] == 2 * len(expected)
    return course, expected


def once_stats(process: ServerProcess) -> dict:
    """What `lti-tool worker --once` printed when it finished."""
    assert process.process.returncode == 0, process.log_tail()
    text = process.log_path.read_text()
    return json.loads(text[text.rindex('{\n  "sent"'):])


@pytest.fixture
def quiet_stack(request, tmp_path) -> Iterator[Stack]:
    """A stack with no inline worker: only `lti-tool worker` processes deliver."""
    flavor, database_url = request.param
    stack = build_stack(tmp_path / flavor, flavor, database_url=database_url,
                        inline_worker=False)
    try:
        yield stack
    finally:
        stack.close()
        reset_clients()
        dispose_engines()


@pytest.mark.parametrize("quiet_stack", [("canvas", None), ("moodle", None)],
                         indirect=True, ids=["canvas", "moodle"])
def test_worker_killed_mid_batch(quiet_stack: Stack) -> None:
    stack = quiet_stack
    course, expected = crowded_course(stack, 40)
    stack.sandbox_app.config["SANDBOX_LATENCY_MS"] = 200
    lease = {worker.ENV_LEASE: "2"}
    first = start_worker(stack, "worker-1", **lease)
    try:
        wait_for(lambda: len([e for e in score_posts(stack) if e["status"] == 200]) >= 6,
                 timeout=20)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.stop()
    assert first.process.returncode == -signal.SIGKILL
    time.sleep(0.3)  # requests already in flight when it died still land
    delivered_before = {(e["score"]["userId"], e["score"]["timestamp"])
                        for e in score_posts(stack) if e["status"] == 200}
    assert 6 <= len(delivered_before) < len(expected), "not killed mid-batch"
    # The rows it had in flight died with it, still leased to it; the rest
    # were recorded (sent) or never claimed (pending).
    states = dict(db_rows(stack, "SELECT status, COUNT(*) FROM score_outbox GROUP BY status"))
    assert states.get("sending", 0) >= 1, states
    assert states["superseded"] == len(expected), states
    assert sum(states.values()) == 2 * len(expected), states
    recorded_before = states.get("sent", 0)

    # Another worker takes the rows over once the dead one's lease has expired.
    (until,) = db_rows(stack, "SELECT MAX(claimed_until) FROM score_outbox")[0]
    orphans = ",".join(str(row[0]) for row in db_rows(
        stack, "SELECT id FROM score_outbox WHERE status = 'sending'"))
    stack.sandbox_app.config["SANDBOX_LATENCY_MS"] = 0
    # `--once` delivers what is due now: start it once the lease has run out
    # (the worker's start-up alone may or may not take that long).
    left = (datetime.fromisoformat(str(until)) - datetime.now(timezone.utc)
            .replace(tzinfo=None)).total_seconds()
    time.sleep(max(0.0, left) + 0.2)
    second = start_worker(stack, "worker-2", "--once", **lease)
    try:
        second.process.wait(60)
    finally:
        second.stop()
    stats = once_stats(second)
    # The dead worker's rows were taken over only after its lease expired
    # (rows it recorded before dying were sent earlier, and that is fine).
    assert str(until) < str(db_rows(
        stack, f"SELECT MIN(sent_at) FROM score_outbox WHERE id IN ({orphans})")[0][0])
    settle(course, expected, timeout=10)
    # Every score was resent with its timestamp: Canvas accepts the equal
    # timestamp again; Moodle answers 409 for those it already had.
    again = len(delivered_before) - recorded_before if stack.flavor == "moodle" else 0
    assert stats == {"sent": len(expected) - recorded_before - again, "superseded": again,
                     "retried": 0, "failed": 0}, stats
    attempts = check_idempotent(stack)
    assert {(k[1], k[2]) for k in attempts} >= delivered_before
    # Only the newest row of each student was ever sent (coalesced), each
    # (student, timestamp) at most twice: before the kill and after it.
    assert len(attempts) == len(expected)
    assert all(len(entries) <= 2 for entries in attempts.values())
    states = dict(db_rows(stack, "SELECT status, COUNT(*) FROM score_outbox GROUP BY status"))
    assert states == {"sent": len(expected), "superseded": len(expected)}, states


# -- two workers, one PostgreSQL outbox --------------------------------------------------
@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL database (LTI_TOOL_TEST_DATABASE_URL's server)."""
    with throwaway_postgres("pathwise_faults") as url:
        yield url


@pytest.fixture
def pg_stack(request, tmp_path, pg_url) -> Iterator[Stack]:
    stack = build_stack(tmp_path / request.param, request.param, database_url=pg_url,
                        inline_worker=False)
    try:
        yield stack
    finally:
        stack.close()
        reset_clients()
        dispose_engines()


@pytest.mark.parametrize("pg_stack", ["canvas", "moodle"], indirect=True)
def test_two_workers_share_one_postgresql_outbox(pg_stack: Stack) -> None:
    stack = pg_stack
    course, expected = crowded_course(stack, 20)
    # A slow LMS and small batches: one worker alone would need several
    # seconds, so both keep claiming from the same outbox at once.
    stack.sandbox_app.config["SANDBOX_LATENCY_MS"] = 250
    workers = [start_worker(stack, f"worker-{n}", "--once", **{worker.ENV_BATCH: "2"})
               for n in (1, 2)]
    try:
        for w in workers:
            w.process.wait(60)
    finally:
        for w in workers:
            w.stop()
    stats = [once_stats(w) for w in workers]
    assert all(s["sent"] + s["superseded"] > 0 for s in stats), stats  # both worked
    assert all(s["retried"] == 0 and s["failed"] == 0 for s in stats), stats
    settle(course, expected, timeout=30)
    attempts = check_idempotent(stack)
    # Every score delivered exactly once per (user, timestamp): SKIP LOCKED
    # never lets both workers take the same row.
    assert all(len(entries) == 1 for entries in attempts.values()), \
        [k for k, v in attempts.items() if len(v) > 1]
    states = dict(db_rows(stack, "SELECT status, COUNT(*) FROM score_outbox GROUP BY status"))
    assert set(states) <= {"sent", "superseded"}, states
    total = sum(s["sent"] + s["superseded"] for s in stats)
    assert total == states.get("sent", 0)
    assert Path(stack.root).exists()
