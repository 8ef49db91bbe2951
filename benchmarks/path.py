"""Student path benchmark: a 40-item playlist for a class of 500, on SQLite and PostgreSQL.

From the issue: "a playlist of 40 items over 15 standards for 500 students; the
student path page <= 50 ms server time, the class progress view <= 300 ms."

For each database it migrates a fresh, throw-away database and seeds, with bulk
Core inserts (the helpers of benchmarks/gradebook.py), one course of 500
students x 15 standards with 0-4 pieces of evidence per student and standard
(random, seeded: students differ), and one published playlist of 40 items built
like a real one: readings, videos, practice, resources, quick checks (2-3
questions in the stored JSON format), checkpoints and a choice board with 3
options; must do / may do / challenge; each item aligned to 1-2 standards,
about a third with prerequisite standards, some with prerequisite items (always
earlier ones). Students' item progress follows the playlist order (started and
done, varied, some never started, some idle); done quick checks and checkpoints
left evidence (quick checks often below mastery first); a few students set
target dates. Rollups come from `service.recompute_course`. Tool sessions are
rows, as a launch leaves them, and the pages are measured with the Flask test
client of `create_app` (server time = wall time of the request in-process):

1. `GET /account` for the student: the baseline, a trivial session page,
2. `GET /home` for the student (lists their playlists with progress),
3. `GET /my/playlists/<id>` the student's path page (target <= 50 ms),
4. `GET /course/playlists/<id>/progress` the teacher's class progress view
   (target <= 300 ms).

Median and p95 of `--repeat` requests after `--warmup` warm-ups, and the ratio
of each to the baseline. Every request's SQL statements are counted; the same
pages of a 5-student, 8-item course must issue the same number (no N+1).
See benchmarks/README.md.

    .venv/bin/python benchmarks/path.py [--database both] [--repeat 20] [--profile]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from benchmarks.gradebook import (  # noqa: E402
    DEFAULT_PG_ADMIN,
    RESULTS_DIR,
    BenchDatabase,
    SeededCourse,
    StatementCounter,
    Timing,
    _bulk,
    _ms,
    _one,
    announce_code,
    databases_of,
    measure_requests,
    migrated_database,
    open_sessions,
    profile_call,
    save_profile,
    say,
    seed_course,
    timed_request,
    write_results,
)
from lti_tool.db import get_engine, session_scope  # noqa: E402
from lti_tool.grades import service  # noqa: E402
from lti_tool.grades.models import Evidence  # noqa: E402
from lti_tool.launch.models import Deployment, Platform  # noqa: E402
from lti_tool.playlists.models import (  # noqa: E402
    ItemProgress,
    Playlist,
    PlaylistItem,
    PlaylistTarget,
)
from lti_tool.playlists.quick_check import (  # noqa: E402
    Question,
    questions_from_json,
    questions_to_json,
)

# From the issue.
TARGETS_MS = {"path": 50.0, "progress": 300.0}
BASELINE = "account"
MASTERY = 3.0  # the default policy's mastery points (the seeded courses keep it)

# Only what a student does: the rest of the evidence comes from the playlist's
# quick checks and checkpoints, tied to those items.
OTHER_SOURCES = ("checkpoint", "observation", "conversation", "imported assessment")
OTHER_WEIGHTS = (3, 4, 2, 2)
BOARD_OPTIONS = 3
# One unit of the playlist, repeated: the kinds of its top-level items in order.
UNIT = ("reading", "video", "practice", "quick_check", "resource", "practice", "checkpoint")
OPTION_KINDS = ("video", "practice", "reading")
KIND_TITLES = {
    "reading": "Read: worked examples", "video": "Watch: the idea in 6 minutes",
    "practice": "Practice set", "quick_check": "Quick check", "resource": "Explore online",
    "checkpoint": "Checkpoint", "choice_board": "Choose how to show it",
}
BODY = ("<p>Work through the examples, then explain to a partner <strong>why</strong> "
        "each step works.</p><ul><li>Show your thinking</li><li>Check your answer makes "
        "sense</li></ul>")


# -- seeding -----------------------------------------------------------------------
def _varied_evidence(rng: random.Random, course_id: int, teacher_id: int,
                     student_ids: list[int], standard_ids: list[int], most: int,
                     now: datetime) -> Iterator[dict]:
    """0..`most` pieces per student and standard over the last 90 days, scores
    on the 1-4 scale from a per-student ability and per-standard difficulty."""
    ability = {sid: rng.gauss(0.0, 0.7) for sid in student_ids}
    difficulty = {sid: rng.gauss(0.0, 0.4) for sid in standard_ids}
    for standard_id in standard_ids:
        for student_id in student_ids:
            count = rng.randint(0, most)
            for k, ago in enumerate(sorted((rng.uniform(5, 90) for _ in range(count)),
                                           reverse=True)):
                raw = (2.3 + ability[student_id] - difficulty[standard_id]
                       + 0.8 * k / max(count - 1, 1) + rng.gauss(0.0, 0.5))
                when = now - timedelta(days=ago)
                source = rng.choices(OTHER_SOURCES, OTHER_WEIGHTS)[0]
                yield {"course_id": course_id, "student_id": student_id,
                       "standard_id": standard_id, "score": float(min(4, max(1, round(raw)))),
                       "assessed_at": when, "source": source, "item_ref": None,
                       "recorded_by": teacher_id, "note": "", "created_at": when,
                       "superseded_by": None}


def _questions(rng: random.Random, number: int) -> list[dict]:
    """2-3 questions in the stored JSON format (checked by reading them back)."""
    pool = [
        Question(prompt=f"What is {number + 2}/4 of 20?", kind="numeric", choices=(),
                 answer=float((number + 2) * 5), tolerance=0.0,
                 explanation="Divide by the denominator, then multiply by the numerator."),
        Question(prompt="Which fraction is the largest?", kind="choice",
                 choices=("1/2", "2/3", "3/5", "5/9"), answer=1.0,
                 explanation="Compare each with a common denominator of 90."),
        Question(prompt="Round 3.476 to one decimal place.", kind="numeric", choices=(),
                 answer=3.5, tolerance=0.001, explanation="Look at the hundredths digit."),
        Question(prompt="Which is a prime number?", kind="choice",
                 choices=("21", "27", "29", "33"), answer=2.0,
                 explanation="29 has no divisors other than 1 and itself."),
    ]
    data = questions_to_json(rng.sample(pool, rng.choice((2, 3))))
    questions_from_json(data)  # raises if the format changed
    return data


def plan_items(rng: random.Random, n_items: int, standard_ids: list[int]) -> list[dict]:
    """Item rows in playlist order (a board's options straight after it), with
    `board` and `prereq_items` as indices into the list (always earlier ones)."""
    n_top = n_items - BOARD_OPTIONS  # top-level items, the board included
    if n_top < 2:
        raise SystemExit(f"--items must be at least {BOARD_OPTIONS + 2}")
    board_at = (n_top * 3) // 5
    count = len(standard_ids)
    specs: list[dict] = []
    unit = 0
    last_quick_check = None
    top_index: list[int] = []  # spec index of each top-level item
    for t in range(n_top):
        primary = t * count // n_top
        kind = "choice_board" if t == board_at else UNIT[unit % len(UNIT)]
        if kind != "choice_board":
            unit += 1
        if kind == "quick_check":
            own = [primary]  # a quick check is scored onto exactly one standard
        elif kind == "checkpoint" and primary > 0:
            own = [primary - 1, primary]
        elif primary + 1 < count and rng.random() < 0.35:
            own = [primary, primary + 1]
        else:
            own = [primary]
        tag = "must_do" if kind in ("quick_check", "checkpoint", "choice_board") else \
            rng.choices(("must_do", "may_do", "challenge"), (6, 3, 2))[0]
        spec = {"kind": kind, "tag": tag, "own": own, "prereq_std": [], "prereq_items": [],
                "board": None, "title": f"{KIND_TITLES[kind]} {t + 1}",
                "questions": _questions(rng, t) if kind == "quick_check" else [],
                "url": (f"https://www.youtube.com/watch?v=bench{t:07d}" if kind == "video"
                        else f"https://example.org/lessons/{t + 1}" if kind == "resource"
                        else None)}
        if kind == "checkpoint" and last_quick_check is not None:
            spec["prereq_items"].append(last_quick_check)  # the unit's quick check first
        if tag == "challenge" and top_index:
            spec["prereq_items"].append(top_index[-1])  # stretch after the step before
        if t == board_at + 1:
            spec["prereq_items"].append(top_index[board_at])  # after the board: needs it
        top_index.append(len(specs))
        specs.append(spec)
        if kind == "quick_check":
            last_quick_check = len(specs) - 1
        if kind == "choice_board":
            board = len(specs) - 1
            for o in range(BOARD_OPTIONS):
                okind = OPTION_KINDS[o % len(OPTION_KINDS)]
                specs.append({"kind": okind, "tag": "must_do", "own": list(own),
                              "prereq_std": [], "prereq_items": [], "board": board,
                              "title": f"Option {o + 1}: {KIND_TITLES[okind]}",
                              "questions": [],
                              "url": (f"https://www.youtube.com/watch?v=opt{o:08d}"
                                      if okind == "video" else None)})
    # About a third of the items wait on earlier standards than their own.
    eligible = [i for i in top_index if min(specs[i]["own"]) > 0]
    for i in rng.sample(eligible, min(len(eligible), round(n_items / 3))):
        before = min(specs[i]["own"])
        specs[i]["prereq_std"] = sorted(rng.sample(range(before), min(before, rng.choice(
            (1, 1, 2)))))
    for spec in specs:
        spec["prereq_items"] = sorted(set(spec["prereq_items"]))
    return specs


@dataclass
class SeededPlaylist:
    playlist_id: int
    item_ids: list[int]
    facts: dict


def seed_playlist(conn, rng: random.Random, course: SeededCourse, *, n_items: int,
                  now: datetime, title: str) -> SeededPlaylist:
    """The playlist, its items, the class's progress on it, the evidence its
    quick checks and checkpoints left, and a few students' target dates."""
    playlist_id = _one(conn, Playlist.__table__, {
        "course_id": course.course_id, "title": title,
        "description": "<p>Fractions, decimals and ratio: work at your own pace.</p>",
        "standard_ids": list(course.standard_ids), "published": True, "position": 1,
        "created_by": course.teacher_id, "created_at": now, "updated_at": now})
    specs = plan_items(rng, n_items, course.standard_ids)
    ids: list[int] = []
    positions: Counter = Counter()
    for spec in specs:
        board_id = ids[spec["board"]] if spec["board"] is not None else None
        positions[board_id] += 1
        ids.append(_one(conn, PlaylistItem.__table__, {
            "playlist_id": playlist_id, "board_id": board_id,
            "position": positions[board_id], "kind": spec["kind"], "tag": spec["tag"],
            "title": spec["title"], "body": BODY if spec["kind"] != "choice_board" else
            "<p>Pick one way to show what you learned.</p>", "url": spec["url"],
            "embeddable": False,
            "standard_ids": [course.standard_ids[s] for s in spec["own"]],
            "prereq_standard_ids": [course.standard_ids[s] for s in spec["prereq_std"]],
            "prereq_item_ids": [ids[i] for i in spec["prereq_items"]], "min_choices": 1,
            "questions": spec["questions"], "updated_at": now}))

    top = [i for i, s in enumerate(specs) if s["board"] is None]
    options = {b: [i for i, s in enumerate(specs) if s["board"] == b]
               for b in top if specs[b]["kind"] == "choice_board"}
    ability = {sid: rng.gauss(0.0, 0.7) for sid in course.student_ids}
    progress: list[dict] = []
    evidence: list[dict] = []
    never = 0
    for n, student_id in enumerate(course.student_ids):
        if n > 0 and rng.random() < 0.08:
            never += 1  # never opened it: no rows at all
            continue
        # How far along the playlist: the first student is mid-way and active (the
        # student whose path page is measured).
        reach = len(top) // 2 if n == 0 else min(len(top), int(
            rng.betavariate(1.6, 1.8) * (len(top) + 1)))
        idle = 1.0 if n == 0 else (rng.uniform(0, 6) if rng.random() < 0.85
                                   else rng.uniform(8, 40))
        last = now - timedelta(days=idle)
        span = timedelta(days=rng.uniform(5, 35))

        def when(j: int, reach=reach, last=last, span=span) -> datetime:
            return last - span * (reach - j) / max(reach, 1)

        def mark(index: int, status: str, at: datetime, student_id=student_id) -> None:
            progress.append({
                "course_id": course.course_id, "playlist_id": playlist_id,
                "item_id": ids[index], "student_id": student_id, "status": status,
                "started_at": at - timedelta(minutes=rng.randint(5, 90)),
                "done_at": at if status == "done" else None, "updated_at": at})

        for j, index in enumerate(top[:reach + 1]):
            spec, at = specs[index], when(j)
            current = j == reach
            if spec["kind"] == "choice_board":
                chosen = rng.sample(options[index], 2)
                mark(chosen[0], "started" if current else "done", at)
                if rng.random() < 0.3:
                    mark(chosen[1], "started", at)
                continue
            if current:
                mark(index, "started", at)
                continue
            if spec["kind"] in ("quick_check", "checkpoint"):
                if rng.random() < 0.9:
                    mark(index, "done", at)
                    evidence += _item_evidence(rng, course, spec, student_id, ability, at)
                continue
            chance = {"must_do": (0.92, 0.08), "may_do": (0.5, 0.1),
                      "challenge": (0.25, 0.05)}[spec["tag"]]
            roll = rng.random()
            if roll < chance[0]:
                mark(index, "done", at)
            elif roll < chance[0] + chance[1]:
                mark(index, "started", at)
    below = sum(1 for e in evidence if e["source"] == "quick check" and e["score"] < MASTERY)
    progress_rows = _bulk(conn, ItemProgress.__table__, progress)
    evidence_rows = _bulk(conn, Evidence.__table__, evidence)

    today = now.date()
    chosen = {course.student_ids[0]} | set(rng.sample(
        course.student_ids, max(1, len(course.student_ids) // 20)))
    targets = []
    for student_id in sorted(chosen):
        start = today - timedelta(days=rng.randint(10, 30))
        targets.append({"course_id": course.course_id, "playlist_id": playlist_id,
                        "student_id": student_id, "start_date": start,
                        "target_date": max(start, today + timedelta(days=rng.randint(-5, 30))),
                        "updated_at": now})
    target_rows = _bulk(conn, PlaylistTarget.__table__, targets)
    return SeededPlaylist(playlist_id, ids, {
        "items": len(ids), "top_level_items": len(top),
        "kinds": dict(Counter(s["kind"] for s in specs)),
        "tags": dict(Counter(s["tag"] for s in specs if s["board"] is None)),
        "with_prereq_standards": sum(1 for s in specs if s["prereq_std"]),
        "with_prereq_items": sum(1 for s in specs if s["prereq_items"]),
        "aligned_to_two_standards": sum(1 for s in specs if len(s["own"]) == 2),
        "progress_rows": progress_rows, "students_never_started": never,
        "item_evidence_rows": evidence_rows, "quick_check_evidence_below_mastery": below,
        "target_rows": target_rows})


def _item_evidence(rng: random.Random, course: SeededCourse, spec: dict, student_id: int,
                   ability: dict[int, float], at: datetime) -> list[dict]:
    """A done quick check: 1-3 attempts, the earlier ones below mastery. A done
    checkpoint: the teacher's score on each of its standards."""
    rows = []

    def row(standard_index: int, score: float, when: datetime, source: str, ref: str,
            by: int, note: str) -> dict:
        return {"course_id": course.course_id, "student_id": student_id,
                "standard_id": course.standard_ids[standard_index], "score": score,
                "assessed_at": when, "source": source, "item_ref": ref[:200],
                "recorded_by": by, "note": note, "created_at": when, "superseded_by": None}

    if spec["kind"] == "quick_check":
        attempts = rng.choices((1, 2, 3), (6, 3, 1))[0]
        total = len(spec["questions"])
        for k in range(attempts):
            final = k == attempts - 1
            score = (rng.choices((2.0, 3.0, 4.0), (2, 5, 3))[0] if final
                     else rng.choice((1.0, 2.0)))
            correct = max(0, min(total, round(total * score / 4)))
            rows.append(row(spec["own"][0], score,
                            at - timedelta(hours=(attempts - 1 - k) * 20), "quick check",
                            f"Quick check: {spec['title']}", student_id,
                            f"{correct} of {total} correct"))
    else:
        for s in spec["own"]:
            raw = 2.6 + ability[student_id] + rng.gauss(0.0, 0.6)
            rows.append(row(s, float(min(4, max(1, round(raw)))), at, "checkpoint",
                            f"Checkpoint: {spec['title']}", course.teacher_id, ""))
    return rows


def seed(url: str, args: argparse.Namespace) -> tuple[dict, dict]:
    rng = random.Random(args.seed)
    engine = get_engine(url)
    now = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    facts: dict[str, dict] = {}
    with engine.begin() as conn:
        platform_id = _one(conn, Platform.__table__, {
            "name": "Bench LMS", "issuer": "https://lms.example", "client_id": "bench",
            "auth_login_url": "https://lms.example/auth",
            "auth_token_url": "https://lms.example/token", "auth_audience": None,
            "jwks_url": "https://lms.example/jwks", "active": True, "created_at": now})
        deployment_pk = _one(conn, Deployment.__table__, {
            "platform_id": platform_id, "deployment_id": "1", "active": True,
            "created_at": now})
        courses, playlists = {}, {}
        for name, context_id, title, students, standards, items in (
                ("big", "big", "Grade 7 Mathematics", args.students, args.standards,
                 args.items),
                ("small", "small", "Small course", 5, 3, 8)):
            course = seed_course(conn, rng, deployment_pk=deployment_pk,
                                 platform_id=platform_id, context_id=context_id,
                                 title=title, students=students, standards=standards,
                                 evidence=0)
            course.evidence_rows = _bulk(conn, Evidence.__table__, _varied_evidence(
                rng, course.course_id, course.teacher_id, course.student_ids,
                course.standard_ids, args.evidence_max, now))
            playlist = seed_playlist(conn, rng, course, n_items=items, now=now,
                                     title="Fractions, decimals and ratio")
            courses[name], playlists[name] = course, playlist
            facts[name] = dict(playlist.facts, students=students, standards=standards,
                               evidence_rows=course.evidence_rows,
                               override_rows=course.override_rows)
    timings["insert_s"] = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        started_analyze = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        timings["analyze_s"] = time.perf_counter() - started_analyze
    started_rollups = time.perf_counter()
    with session_scope(url) as s:
        for name, course in courses.items():
            facts[name]["rollups"] = service.recompute_course(s, course.course_id)
    timings["initial_rollups_s"] = time.perf_counter() - started_rollups
    timings["total_s"] = time.perf_counter() - started
    info = {"platform_id": platform_id, "deployment_pk": deployment_pk,
            "big": courses["big"], "small": courses["small"],
            "playlists": playlists}
    summary = {k: round(v, 2) for k, v in timings.items()}
    summary["courses"] = facts
    return info, summary


# -- measuring ---------------------------------------------------------------------
def p95(samples: list[float]) -> float:
    """Nearest rank: the smallest sample with 95 % of the samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure_page(client, counter: StatementCounter, args: argparse.Namespace, url: str,
                 check: Callable[[bytes], dict] | None = None) -> Timing:
    """`--warmup` requests (the first is reported as "first", the last is
    checked), then `--repeat` measured ones."""
    first = None
    for _ in range(args.warmup - 1):
        sample = timed_request(client, counter, "GET", url)
        if sample.response.status_code != 200:
            raise SystemExit(f"GET {url} answered {sample.response.status_code}: "
                             f"{sample.body[:400]!r}")
        first = sample.wall_ms if first is None else first
    timing = measure_requests(client, counter, args.repeat,
                              lambda _i: ("GET", url, None), 200, check=check)
    if first is not None:
        timing.first_ms = first
    return timing


def path_check(items: int) -> Callable[[bytes], dict]:
    def check(body: bytes) -> dict:
        text = body.decode()
        entries = text.count('class="entry state-')
        if entries != items:
            raise SystemExit(f"the path page shows {entries} items, expected {items}")
        states = Counter(part.split('"', 1)[0].split()[0]
                         for part in text.split('class="entry state-')[1:])
        return {"entries": entries, "states": dict(states),
                "recommended": 'aria-current="step"' in text}
    return check


def progress_check(students: int) -> Callable[[bytes], dict]:
    def check(body: bytes) -> dict:
        text = body.decode()
        rows = text.count('<tr><th scope="row">')
        if rows != students:
            raise SystemExit(f"the progress view shows {rows} students, expected {students}")
        return {"rows": rows, "item_bars": text.count('class="item-bar"')}
    return check


def contains(needle: str) -> Callable[[bytes], dict]:
    def check(body: bytes) -> dict:
        if needle not in body.decode():
            raise SystemExit(f"the page does not say {needle!r}")
        return {"says": needle}
    return check


# (key, label, session, url) of each page; the big course's sessions, then the small's.
def pages(tokens: dict[str, str], playlist_id: int, prefix: str = "") -> list[tuple]:
    student, teacher = tokens[f"{prefix}student"], tokens[f"{prefix}teacher"]
    return [
        ("account", "GET /account (baseline)", f"/account?t={student}"),
        ("home", "GET /home (student)", f"/home?t={student}"),
        ("path", "GET /my/playlists/<id> (path)", f"/my/playlists/{playlist_id}?t={student}"),
        ("progress", "GET .../<id>/progress (class)",
         f"/course/playlists/{playlist_id}/progress?t={teacher}"),
    ]


def run_database(kind: str, args: argparse.Namespace, say: Callable[[str], None]) -> dict:
    with migrated_database(kind, args.pg_admin_url, "pathwise-path-") as db:
        return _run_database(kind, args, say, db)


def _run_database(kind: str, args: argparse.Namespace, say: Callable[[str], None],
                  db: BenchDatabase) -> dict:
    url, migrate_s = db.url, db.migrate_s
    say(f"[{kind}] migrated in {migrate_s:.1f} s; seeding {args.students} students x "
        f"{args.standards} standards, a playlist of {args.items} items ...")
    info, seeding = seed(url, args)
    seeding["migrate_s"] = round(migrate_s, 2)
    big_facts = seeding["courses"]["big"]
    say(f"[{kind}] seeded in {seeding['insert_s']} s: {big_facts['evidence_rows']:,} + "
        f"{big_facts['item_evidence_rows']:,} evidence rows, "
        f"{big_facts['progress_rows']:,} progress rows; rollups "
        f"{seeding['initial_rollups_s']} s")
    app = db.app()
    counter = StatementCounter(get_engine(url))
    tokens = open_sessions(url, app, info)
    client = app.test_client()
    big, small = info["big"], info["small"]
    big_playlist = info["playlists"]["big"].playlist_id
    small_playlist = info["playlists"]["small"].playlist_id
    checks = {
        "account": None, "home": contains("Fractions, decimals and ratio"),
        "path": path_check(big_facts["items"]),
        "progress": progress_check(len(big.student_ids)),
    }
    timings: dict[str, Timing] = {}
    for key, label, url_ in pages(tokens, big_playlist):
        say(f"[{kind}] {label} x{args.repeat} ...")
        timings[key] = measure_page(client, counter, args, url_, checks[key])
        timings[key].target_ms = TARGETS_MS.get(key)

    # No N+1: the same pages of a 5-student, 8-item course, as many statements.
    say(f"[{kind}] statement counts on a 5-student, 8-item course ...")
    small_counts = {}
    small_checks = {"path": path_check(seeding["courses"]["small"]["items"]),
                    "progress": progress_check(len(small.student_ids))}
    for key, _label, url_ in pages(tokens, small_playlist, "small_"):
        timed_request(client, counter, "GET", url_)  # warm
        sample = timed_request(client, counter, "GET", url_)
        if sample.response.status_code != 200:
            raise SystemExit(f"{key} on the small course answered "
                             f"{sample.response.status_code}")
        if key in small_checks:
            small_checks[key](sample.body)
        small_counts[key] = len(sample.statements)

    base = timings[BASELINE]
    results: dict[str, dict] = {}
    for key, timing in timings.items():
        r = timing.summary()
        r["p95_ms"] = round(p95(timing.samples_ms), 2)
        r["ratio_to_baseline"] = round(timing.median / base.median, 1)
        r["p95_ratio_to_baseline"] = round(p95(timing.samples_ms) / p95(base.samples_ms),
                                           1)
        if timing.target_ms is not None:
            r["result"] = "PASS" if timing.met else "FAIL"
            r["p95_met"] = r["p95_ms"] <= timing.target_ms
        r["statements_small_course"] = small_counts[key]
        r["no_n_plus_1"] = small_counts[key] == r["statements_per_request"]
        results[key] = r

    profiles = ""
    if args.profile:
        say(f"[{kind}] profiling one request of each page ...")
        for _key, label, url_ in pages(tokens, big_playlist):
            profiles += profile_call(f"{kind} {label}",
                                     lambda url_=url_: client.get(url_), args.top)
        save_profile(f"path-profile-{kind}.txt", profiles)
    return db.outcome(kind, seeding, results, profiles)


# -- report ------------------------------------------------------------------------
def report(runs: list[dict], args: argparse.Namespace) -> str:
    lines = [f"Student path benchmark: {args.students} students x {args.standards} standards, "
             f"a playlist of {args.items} items; median and p95 of {args.repeat} requests "
             f"after {args.warmup} warm-ups; x base = ratio to GET /account", ""]
    verdicts = []
    for run in runs:
        seed_info = run["seeding"]
        big = seed_info["courses"]["big"]
        version = f" {run['server_version']}" if run["server_version"] else ""
        lines.append(f"== {run['database']}{version} ==")
        lines.append(
            f"seeding {seed_info['insert_s']} s"
            + (f", ANALYZE {seed_info['analyze_s']} s" if "analyze_s" in seed_info else "")
            + f", rollups ({big['rollups']:,}) {seed_info['initial_rollups_s']} s, migrate "
            f"{seed_info['migrate_s']} s: {big['evidence_rows']:,} evidence rows + "
            f"{big['item_evidence_rows']:,} from quick checks/checkpoints "
            f"({big['quick_check_evidence_below_mastery']:,} quick checks below mastery), "
            f"{big['progress_rows']:,} progress rows, {big['target_rows']} targets")
        lines.append(
            f"playlist: {big['items']} items ({big['top_level_items']} top level), kinds "
            + ", ".join(f"{k} {v}" for k, v in sorted(big["kinds"].items()))
            + "; tags " + ", ".join(f"{k} {v}" for k, v in sorted(big["tags"].items()))
            + f"; {big['with_prereq_standards']} with prerequisite standards, "
            f"{big['with_prereq_items']} with prerequisite items")
        header = (f"{'page':34} {'median':>9} {'p95':>9} {'min':>9} {'CPU':>9} {'in SQL':>9} "
                  f"{'x base':>7} {'SQL':>4} {'small':>5} {'N+1':>5} {'target':>8}  result")
        lines += [header, "-" * len(header)]
        for key, label, _url in pages({"student": "", "teacher": ""}, 0):
            r = run["requests"][key]
            cpu = _ms(r["cpu_median_ms"]) if r.get("cpu_median_ms") is not None else "-"
            sql = _ms(r["sql_median_ms"]) if r.get("sql_median_ms") is not None else "-"
            target = _ms(r["target_ms"]) if "target_ms" in r else "-"
            result = r.get("result", "")
            if result:
                result += "" if r["p95_met"] else " (p95 over)"
                verdicts.append(f"{run['database']} {key}: {r['result']}")
            n1 = "PASS" if r["no_n_plus_1"] else "FAIL"
            if key == "path":
                verdicts.append(f"{run['database']} path page no N+1: {n1}")
            lines.append(
                f"{label:34} {_ms(r['median_ms']):>9} {_ms(r['p95_ms']):>9} "
                f"{_ms(r['min_ms']):>9} {cpu:>9} {sql:>9} {r['ratio_to_baseline']:>6}x "
                f"{r['statements_per_request']:>4} {r['statements_small_course']:>5} "
                f"{n1:>5} {target:>8}  {result}")
        path_checks = run["requests"]["path"].get("checks", {})
        if path_checks:
            lines.append("measured student's path: " + ", ".join(
                f"{k} {v}" for k, v in sorted(path_checks["states"].items())))
        load = run["load_average"]
        lines.append(f"load average before/after: {load['before']} / {load['after']}")
        lines.append("")
    lines += [
        "median/p95/min = wall time of the request in-process; CPU = this process's CPU "
        "time; in SQL = time inside cursor.execute;",
        "SQL = statements per request (incl. BEGIN on SQLite); small = the same page on a "
        "5-student, 8-item course (N+1 PASS = equal counts);",
        "result = median against the target (\"p95 over\" when the p95 is not within it).",
        "",
        "verdicts: " + "; ".join(verdicts),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--standards", type=int, default=15)
    parser.add_argument("--items", type=int, default=40,
                        help=f"items of the playlist, the board's {BOARD_OPTIONS} options "
                             "included")
    parser.add_argument("--evidence-max", type=int, default=4,
                        help="most pieces of (non-playlist) evidence per student-standard")
    parser.add_argument("--repeat", type=int, default=20, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up requests per page")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN,
                        help="a PostgreSQL database to create the throw-away one from")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one request of each page (printed, and written to "
                             "benchmarks/results/path-profile-<database>.txt)")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "path.json")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 1:
        parser.error("--repeat and --warmup must be at least 1")
    if args.standards < 2 or args.students < 1:
        parser.error("give at least 1 student and 2 standards")

    version = announce_code()
    runs = [run_database(kind, args, say) for kind in databases_of(args.database)]
    print(report(runs, args))
    write_results(args, version, runs, targets_ms=TARGETS_MS, baseline=BASELINE,
                  today=date.today().isoformat())
    return 0


if __name__ == "__main__":
    sys.exit(main())
