"""Grading services: the course's policy and scale, evidence and rollups.

Each function works inside the caller's transaction: evidence and the rollup
it changes are written together, or not at all."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lti_tool.courses.models import Enrollment, User
from lti_tool.db import insert_ignore, transaction_memo, upsert
from lti_tool.errors import UserError
from lti_tool.grades import charts, mastery
from lti_tool.grades.models import (
    EVIDENCE_SOURCES,
    Evidence,
    GradingPolicy,
    MasteryOverride,
    Rollup,
    ScaleLevel,
    Standard,
    StandardGroup,
)
from lti_tool.timeutil import utcnow

# The default proficiency scale; "No evidence" is the absence of evidence,
# never a level. Colours carry white text at >= 4.5:1 and each has a pattern.
DEFAULT_SCALE = tuple((lvl.points, lvl.label, lvl.colour, lvl.pattern)
                      for lvl in charts.DEFAULT_LEVELS)


class GradingError(UserError):
    """Bad grading input; the message says what to fix (404 for things
    outside the course)."""


@dataclass(frozen=True)
class Settings:
    method: str
    mastery_points: float
    weight: float
    n: int
    scale_min: float
    scale_max: float

    def rollup(self, scores: list[float]) -> float | None:
        return mastery.rollup(scores, self.method, mastery_points=self.mastery_points,
                              weight=self.weight, n=self.n, scale_min=self.scale_min,
                              scale_max=self.scale_max)


def scores_changed(session: Session, course_id: int,
                   student_ids: Iterable[int] | None = None) -> int:
    """Mastery moved: queue the LMS scores that depend on it, in this same
    transaction (the transactional outbox). Imported here, not at the top:
    passback builds on grades."""
    from lti_tool.passback.service import enqueue_scores

    return enqueue_scores(session, course_id, student_ids)


def ensure_defaults(session: Session, course_id: int) -> GradingPolicy:
    """Give a course the default policy and scale the first time it needs them;
    returns the policy. Reads first: pages only read, and on SQLite a read
    transaction that turns into a write fails at once when another process is
    writing. The launch that creates the course calls this in its own write
    transaction."""
    policy = session.get(GradingPolicy, course_id)
    if policy is not None:
        return policy
    insert_ignore(session, GradingPolicy, ["course_id"], {
        "course_id": course_id, "method": mastery.Method.DECAYING_AVERAGE.value,
        "mastery_points": mastery.DEFAULT_MASTERY_POINTS, "weight": mastery.DEFAULT_WEIGHT,
        "n": mastery.DEFAULT_N, "updated_at": utcnow()})
    if session.scalar(select(ScaleLevel.id).where(ScaleLevel.course_id == course_id)
                      .limit(1)) is None:
        for points, label, colour, pattern in DEFAULT_SCALE:
            insert_ignore(session, ScaleLevel, ["course_id", "points"], {
                "course_id": course_id, "points": points, "label": label,
                "colour": colour, "pattern": pattern})
    return session.get(GradingPolicy, course_id)


def policy_for(session: Session, course_id: int) -> GradingPolicy:
    """The course's policy, read once per transaction (one request asks for
    it from many places; the ORM keeps no strong reference to it)."""
    memo = transaction_memo(session)
    policy = memo.get(("policy", course_id))
    if policy is None:
        policy = memo[("policy", course_id)] = ensure_defaults(session, course_id)
    return policy


def scale_for(session: Session, course_id: int) -> list[ScaleLevel]:
    """The course's levels, highest first, read once per transaction."""
    memo = transaction_memo(session)
    levels = memo.get(("scale", course_id))
    if levels is None:
        policy_for(session, course_id)   # the defaults exist
        levels = memo[("scale", course_id)] = list(session.scalars(
            select(ScaleLevel).where(ScaleLevel.course_id == course_id)
            .order_by(ScaleLevel.points.desc())))
    return list(levels)


def settings_for(policy: GradingPolicy, levels: list[ScaleLevel],
                 standard: Standard | None = None) -> Settings:
    """The course policy with the standard's own overrides applied."""
    return Settings(
        method=(standard.method if standard and standard.method else policy.method),
        mastery_points=policy.mastery_points,
        weight=(standard.weight if standard and standard.weight is not None
                else policy.weight),
        n=(standard.n if standard and standard.n is not None else policy.n),
        scale_min=0.0,
        scale_max=max((lvl.points for lvl in levels), default=mastery.DEFAULT_SCALE_MAX))


def standards_of(session: Session, course_id: int) -> list[Standard]:
    """A course's standards in teaching order: by strand, then position, then code."""
    return list(session.scalars(
        select(Standard).outerjoin(StandardGroup, StandardGroup.id == Standard.group_id)
        .where(Standard.course_id == course_id)
        .order_by(StandardGroup.position.nulls_last(), StandardGroup.name.nulls_last(),
                  Standard.position, Standard.code)))


def groups_of(session: Session, course_id: int) -> dict[int, StandardGroup]:
    return {g.id: g for g in session.scalars(
        select(StandardGroup).where(StandardGroup.course_id == course_id))}


def students_of(session: Session, course_id: int) -> list[User]:
    """Active learners of the course (launched as students, or listed by the
    LMS roster and not since removed from it), by name."""
    users = session.scalars(
        select(User).join(Enrollment, Enrollment.user_id == User.id)
        .where(Enrollment.course_id == course_id, Enrollment.role == "student",
               Enrollment.active.is_(True)))
    return sorted(users, key=lambda u: ((u.family_name or u.display_name or "").casefold(),
                                        (u.given_name or "").casefold(), u.id))


def course_standard(session: Session, course_id: int, standard_id: int) -> Standard:
    standard = session.get(Standard, standard_id)
    if standard is None or standard.course_id != course_id:
        raise GradingError("That standard is not part of this course.", 404)
    return standard


def course_student(session: Session, course_id: int, student_id: int) -> User:
    student = session.scalar(select(User).join(Enrollment, Enrollment.user_id == User.id).where(
        Enrollment.course_id == course_id, Enrollment.user_id == student_id,
        Enrollment.role == "student"))
    if student is None:
        raise GradingError("That student is not in this course.", 404)
    return student


def active_evidence(session: Session, student_id: int, standard_id: int) -> list[Evidence]:
    """Evidence that counts, oldest first; equal times are ordered by id so
    'latest' never changes between page loads."""
    return list(session.scalars(
        select(Evidence).where(Evidence.student_id == student_id,
                               Evidence.standard_id == standard_id,
                               Evidence.superseded_by.is_(None))
        .order_by(Evidence.assessed_at, Evidence.id)))


def current_override(session: Session, student_id: int, standard_id: int
                     ) -> MasteryOverride | None:
    latest = session.scalar(
        select(MasteryOverride).where(MasteryOverride.student_id == student_id,
                                      MasteryOverride.standard_id == standard_id)
        .order_by(MasteryOverride.created_at.desc(), MasteryOverride.id.desc()).limit(1))
    return latest if latest is not None and latest.value is not None else None


def _store_rollup(session: Session, course_id: int, student_id: int, standard_id: int,
                  calculated: float | None, override: float | None, count: int,
                  last: datetime | None) -> None:
    upsert(session, Rollup, ["student_id", "standard_id"], {
        "course_id": course_id, "student_id": student_id, "standard_id": standard_id,
        "calculated": calculated,
        "value": override if override is not None else calculated,
        "overridden": override is not None, "evidence_count": count,
        "last_assessed_at": last, "updated_at": utcnow()},
        ["calculated", "value", "overridden", "evidence_count", "last_assessed_at",
         "updated_at"], returning_id=False)


def recompute_rollup(session: Session, course_id: int, student_id: int,
                     standard: Standard, settings: Settings) -> None:
    evidence = active_evidence(session, student_id, standard.id)
    override = current_override(session, student_id, standard.id)
    _store_rollup(session, course_id, student_id, standard.id,
                  settings.rollup([e.score for e in evidence]),
                  override.value if override else None, len(evidence),
                  evidence[-1].assessed_at if evidence else None)


def check_score(score, levels: list[ScaleLevel]) -> float:
    top = max((lvl.points for lvl in levels), default=mastery.DEFAULT_SCALE_MAX)
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise GradingError(f"The score {str(score)[:20]!r} is not a number.") from None
    if not math.isfinite(value) or value < 0 or value > top:
        raise GradingError(f"Scores go from 0 to {top:g} on this course's scale; "
                           f"{str(score)[:20]} is outside it.")
    return value


def record_evidence(session: Session, *, course_id: int, student_id: int, standard_id: int,
                    score, assessed_at: datetime, source: str, recorded_by: int | None,
                    item_ref: str | None = None, note: str = "",
                    supersedes: Iterable[int] = (), queue_scores: bool = True) -> Evidence:
    """Append evidence (optionally replacing earlier pieces, which stay in the
    history marked superseded) and update the rollup in the same transaction.
    queue_scores=False: the caller records more and calls scores_changed once
    at the end (one LMS score per student, not one per piece)."""
    if source not in EVIDENCE_SOURCES:
        raise GradingError(f"Unknown evidence source {source[:40]!r}; use one of: "
                           + ", ".join(EVIDENCE_SOURCES) + ".")
    standard = course_standard(session, course_id, standard_id)
    course_student(session, course_id, student_id)
    levels = scale_for(session, course_id)
    value = check_score(score, levels)
    row = Evidence(course_id=course_id, student_id=student_id, standard_id=standard_id,
                   score=value, assessed_at=assessed_at, source=source,
                   item_ref=(item_ref or None) and item_ref[:200], note=(note or "")[:5000],
                   recorded_by=recorded_by, created_at=utcnow())
    session.add(row)
    session.flush()
    for old_id in supersedes:
        old = session.get(Evidence, int(old_id))
        if old is None or old.student_id != student_id or old.standard_id != standard_id:
            raise GradingError("Only this student's earlier evidence on this standard can "
                               "be replaced.")
        if old.superseded_by is None:
            old.superseded_by = row.id
    session.flush()
    recompute_rollup(session, course_id, student_id, standard,
                     settings_for(policy_for(session, course_id), levels, standard))
    if queue_scores:
        scores_changed(session, course_id, [student_id])
    return row


def record_override(session: Session, *, course_id: int, student_id: int, standard_id: int,
                    value, note: str, created_by: int | None) -> None:
    """A teacher's judgement over the computed value, with a required reason;
    value None clears it. Kept as an audit trail of rows."""
    note = (note or "").strip()
    if not note:
        raise GradingError("Say why you are overriding the calculated level: a note is "
                           "required.")
    standard = course_standard(session, course_id, standard_id)
    course_student(session, course_id, student_id)
    levels = scale_for(session, course_id)
    checked = None if value in (None, "") else check_score(value, levels)
    session.add(MasteryOverride(course_id=course_id, student_id=student_id,
                                standard_id=standard_id, value=checked, note=note[:2000],
                                created_by=created_by, created_at=utcnow()))
    session.flush()
    recompute_rollup(session, course_id, student_id, standard,
                     settings_for(policy_for(session, course_id), levels, standard))
    scores_changed(session, course_id, [student_id])


def recompute_course(session: Session, course_id: int) -> int:
    """Rebuild every rollup of a course from evidence (after a method change,
    or `lti-tool recompute`). Returns how many rollups were written."""
    policy = policy_for(session, course_id)
    levels = scale_for(session, course_id)
    standards = {s.id: s for s in standards_of(session, course_id)}
    settings = {sid: settings_for(policy, levels, s) for sid, s in standards.items()}
    scores: dict[tuple[int, int], list[float]] = defaultdict(list)
    last: dict[tuple[int, int], datetime] = {}
    rows = session.execute(
        select(Evidence.student_id, Evidence.standard_id, Evidence.score,
               Evidence.assessed_at)
        .where(Evidence.course_id == course_id, Evidence.superseded_by.is_(None))
        .order_by(Evidence.student_id, Evidence.standard_id, Evidence.assessed_at,
                  Evidence.id))
    for student_id, standard_id, score, assessed_at in rows:
        scores[(student_id, standard_id)].append(score)
        last[(student_id, standard_id)] = assessed_at
    overrides: dict[tuple[int, int], float | None] = {}
    for o in session.scalars(select(MasteryOverride).where(
            MasteryOverride.course_id == course_id)
            .order_by(MasteryOverride.created_at, MasteryOverride.id)):
        overrides[(o.student_id, o.standard_id)] = o.value
    session.execute(delete(Rollup).where(Rollup.course_id == course_id))
    now = utcnow()
    values = []
    for key in set(scores) | {k for k, v in overrides.items() if v is not None}:
        student_id, standard_id = key
        if standard_id not in settings:
            continue
        calculated = settings[standard_id].rollup(scores.get(key, []))
        override = overrides.get(key)
        values.append({
            "course_id": course_id, "student_id": student_id, "standard_id": standard_id,
            "calculated": calculated,
            "value": override if override is not None else calculated,
            "overridden": override is not None, "evidence_count": len(scores.get(key, [])),
            "last_assessed_at": last.get(key), "updated_at": now})
    for start in range(0, len(values), 2000):
        session.execute(Rollup.__table__.insert(), values[start:start + 2000])
    scores_changed(session, course_id)
    return len(values)


def parse_when(value: str | None) -> datetime:
    """A date or date-time from a form or CSV (ISO 8601); naive means UTC."""
    from datetime import timezone

    if not value:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise GradingError(f"{value[:30]!r} is not a date; use YYYY-MM-DD.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def import_standards(session: Session, course_id: int, rows) -> tuple[int, int]:
    """Create or update standards by code (groups by name); returns
    (created, updated). `rows` are standards_io.StandardRow values."""
    groups = {g.name: g for g in groups_of(session, course_id).values()}
    existing = {s.code: s for s in session.scalars(
        select(Standard).where(Standard.course_id == course_id))}
    start = max((s.position for s in existing.values()), default=0)
    created = updated = 0
    for index, row in enumerate(rows):
        group_id = None
        if row.group:
            group = groups.get(row.group)
            if group is None:
                group = StandardGroup(course_id=course_id, name=row.group,
                                      position=len(groups))
                session.add(group)
                session.flush()
                groups[row.group] = group
            group_id = group.id
        standard = existing.get(row.code)
        if standard is None:
            session.add(Standard(course_id=course_id, code=row.code, title=row.title,
                                 description=row.description or "", group_id=group_id,
                                 position=start + index + 1,
                                 case_identifier=row.case_identifier))
            created += 1
        else:
            standard.title, standard.description = row.title, row.description or ""
            standard.group_id = group_id
            if row.case_identifier:
                standard.case_identifier = row.case_identifier
            updated += 1
    session.flush()
    return created, updated


def import_evidence(session: Session, course_id: int, rows, recorded_by: int | None,
                    source: str = "imported assessment") -> int:
    """Append many pieces of evidence (already checked against the course by
    evidence_io) and refresh each affected rollup once."""
    now = utcnow()
    session.execute(Evidence.__table__.insert(), [{
        "course_id": course_id, "student_id": r.student_id, "standard_id": r.standard_id,
        "score": r.score, "assessed_at": r.assessed_at, "source": source,
        "item_ref": None, "recorded_by": recorded_by, "note": "", "created_at": now,
        "superseded_by": None} for r in rows])
    policy = policy_for(session, course_id)
    levels = scale_for(session, course_id)
    standards = {s.id: s for s in standards_of(session, course_id)}
    for student_id, standard_id in {(r.student_id, r.standard_id) for r in rows}:
        standard = standards[standard_id]
        recompute_rollup(session, course_id, student_id, standard,
                         settings_for(policy, levels, standard))
    scores_changed(session, course_id, {r.student_id for r in rows})
    return len(rows)


def identifiers_of(students: list[User]) -> dict[str, int]:
    """The ways a teacher's spreadsheet may name a student: LMS id, email or
    full name (case-folded). Ambiguous names are left out, not guessed."""
    seen: dict[str, set[int]] = defaultdict(set)
    for s in students:
        for key in (s.sub, s.email, s.display_name, s.name):
            if key:
                seen[key.strip().casefold()].add(s.id)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def save_scale(session: Session, course_id: int, levels: list[dict]) -> None:
    """Replace a course's levels after checking them all: labels, distinct
    points within 0..10, #rrggbb colours and known patterns (never colour alone)."""
    import re

    problems = []
    if not 2 <= len(levels) <= 8:
        problems.append("A scale needs between 2 and 8 levels.")
    points_seen = set()
    for number, level in enumerate(levels, start=1):
        label = (level.get("label") or "").strip()
        if not label or len(label) > 60:
            problems.append(f"Level {number}: give it a name of 1 to 60 characters.")
        try:
            points = float(level.get("points"))
            if not math.isfinite(points) or not 0 < points <= 10:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"Level {number}: points must be a number above 0, at most 10.")
            points = None
        if points is not None:
            if points in points_seen:
                problems.append(f"Level {number}: another level already has {points:g} points.")
            points_seen.add(points)
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", level.get("colour") or ""):
            problems.append(f"Level {number}: choose a colour.")
        if level.get("pattern") not in charts.PATTERNS:
            problems.append(f"Level {number}: choose a pattern, so the level never depends "
                            "on colour alone.")
    if problems:
        raise GradingError(" ".join(problems))
    policy = policy_for(session, course_id)
    if not any(float(lvl["points"]) == policy.mastery_points for lvl in levels):
        raise GradingError(f"One level must have the mastery threshold's points "
                           f"({policy.mastery_points:g}); change the threshold first.")
    session.execute(delete(ScaleLevel).where(ScaleLevel.course_id == course_id))
    for level in levels:
        session.add(ScaleLevel(course_id=course_id, points=float(level["points"]),
                               label=level["label"].strip(), colour=level["colour"].lower(),
                               pattern=level["pattern"]))
    session.flush()
    transaction_memo(session).pop(("scale", course_id), None)   # the old levels
    recompute_course(session, course_id)
