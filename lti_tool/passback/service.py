"""Placements and the score outbox.

A placement binds an LMS resource link to a playlist and says how mastery
becomes an LMS score (rules.py, pure). Whenever something that moves a score
changes (evidence, an override, a recalculation, a student's progress, the
placement's rule), `enqueue_scores` writes outbox rows in the caller's
transaction: the change and its scores commit together or not at all. The
worker (worker.py) delivers them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from lti_tool.courses.models import Course, Enrollment, ResourceLink, User
from lti_tool.db import insert_ignore
from lti_tool.errors import UserError
from lti_tool.grades import service as grading
from lti_tool.grades.models import Rollup, Standard
from lti_tool.launch.models import Deployment, Platform
from lti_tool.launch.urls import origin_of
from lti_tool.passback import rules
from lti_tool.passback.models import (
    RULES,
    CourseServices,
    LineItem,
    Placement,
    ScoreOutbox,
)
from lti_tool.playlists import path
from lti_tool.playlists import service as playlists
from lti_tool.playlists.models import ItemProgress, Playlist
from lti_tool.timeutil import aware, utcnow

AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
CUSTOM_KEY = "pathwise_playlist"
POINTS_KEY = "pathwise_points"
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
ROSTER_INTERVAL = timedelta(minutes=5)


class PassbackError(UserError):
    """A placement or passback setting a teacher can fix."""


def allowed_origins(services: CourseServices | None, platform: Platform) -> list[str]:
    """Where our bearer token may go for a course: the origins the platform
    itself used for service URLs in signed launches, and its token endpoint."""
    hosts = set(services.service_hosts or []) if services else set()
    token = origin_of(platform.auth_token_url)
    return sorted(hosts | ({token} if token else set()))


# -- launches ------------------------------------------------------------------------
def on_launch(session: Session, *, platform: Platform, claims: dict, course_id: int | None,
              resource_link_pk: int | None, is_teacher: bool, custom: dict) -> Placement | None:
    """Remember the service endpoints this signed launch announced, and bind
    the resource link to its playlist when the link carries our custom
    parameter (a link made by deep linking). Returns the link's placement."""
    if course_id is None:
        return None
    ags = claims.get(AGS) if isinstance(claims.get(AGS), dict) else {}
    nrps = claims.get(NRPS) if isinstance(claims.get(NRPS), dict) else {}
    lineitems = ags.get("lineitems") if isinstance(ags.get("lineitems"), str) else None
    lineitem = ags.get("lineitem") if isinstance(ags.get("lineitem"), str) else None
    scopes = [s for s in ags.get("scope") or [] if isinstance(s, str)]
    nrps_url = nrps.get("context_memberships_url") \
        if isinstance(nrps.get("context_memberships_url"), str) else None
    hosts = sorted({o for o in (origin_of(u) for u in (lineitems, lineitem, nrps_url)) if o})
    services = session.get(CourseServices, course_id)
    now = utcnow()
    if services is None:
        insert_ignore(session, CourseServices, ["course_id"], {
            "course_id": course_id, "platform_id": platform.id, "service_hosts": [],
            "ags_scopes": [], "roster_error": "", "roster_count": 0, "updated_at": now})
        services = session.get(CourseServices, course_id)
    # Only write what changed: every launch of a class reads this row, and a
    # write would lock it until the launch commits.
    wanted = {}
    if nrps_url and services.nrps_url != nrps_url:
        wanted["nrps_url"] = nrps_url
    if lineitems and (services.lineitems_url, services.ags_scopes) != (lineitems, scopes):
        wanted.update(lineitems_url=lineitems, ags_scopes=scopes)
    merged = sorted(set(services.service_hosts or []) | set(hosts))
    if merged != sorted(services.service_hosts or []):
        wanted["service_hosts"] = merged
    if is_teacher and (nrps_url or services.nrps_url) and (
            services.roster_synced_at is None
            or aware(services.roster_synced_at) < now - ROSTER_INTERVAL) and (
            services.roster_requested_at is None
            or aware(services.roster_requested_at) < now - ROSTER_INTERVAL
            or (services.roster_synced_at is not None
                and aware(services.roster_requested_at) <= aware(services.roster_synced_at))):
        wanted["roster_requested_at"] = now  # the worker syncs the roster
    if wanted:
        for key, value in wanted.items():
            setattr(services, key, value)
        services.updated_at = now

    if resource_link_pk is None:
        return None
    placement = session.scalar(select(Placement).where(
        Placement.resource_link_pk == resource_link_pk))
    if placement is not None and placement.course_id != course_id:
        return None  # never another course's placement (record_launch refuses this too)
    if placement is None:
        wanted = str(custom.get(CUSTOM_KEY, "")).strip()
        playlist = session.get(Playlist, int(wanted)) if wanted.isdigit() else None
        if playlist is None or playlist.course_id != course_id:
            return None  # a link added by hand: the teacher is asked once
        placement = bind(session, course_id, resource_link_pk, playlist.id)
        # The points the teacher gave the column when placing it (deep linking).
        points = _points(custom.get(POINTS_KEY))
        if points is not None:
            placement.score_maximum = points
    if lineitems:
        placement.lineitems_url, placement.ags_scopes = lineitems, scopes
    if lineitem and lineitem != placement.lineitem_url:
        placement.lineitem_url = lineitem
        _own_line_item(session, placement, lineitem)
    session.flush()
    return placement


def _points(raw) -> float | None:
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 < value <= 10000 else None


def bind(session: Session, course_id: int, resource_link_pk: int, playlist_id: int
         ) -> Placement:
    """Bind a resource link of this course to a playlist of this course."""
    link = session.get(ResourceLink, resource_link_pk)
    if link is None or link.course_id != course_id:
        raise PassbackError("That activity is not part of this course.", 404)
    playlists.course_playlist(session, course_id, playlist_id)
    placement = Placement(course_id=course_id, resource_link_pk=resource_link_pk,
                          playlist_id=playlist_id, rule="share", score_maximum=100.0,
                          passback_enabled=False, ags_scopes=[], created_at=utcnow(),
                          updated_at=utcnow())
    session.add(placement)
    session.flush()
    return placement


def _own_line_item(session: Session, placement: Placement, url: str) -> LineItem:
    row = session.scalar(select(LineItem).where(LineItem.placement_id == placement.id,
                                                LineItem.standard_id.is_(None)))
    if row is None:
        row = LineItem(placement_id=placement.id, standard_id=None, url=url,
                       label="", score_maximum=placement.score_maximum, created_at=utcnow())
        session.add(row)
    else:
        row.url, row.active = url, True
    session.flush()
    return row


def placement_for_link(session: Session, resource_link_pk: int | None) -> Placement | None:
    if resource_link_pk is None:
        return None
    return session.scalar(select(Placement).where(
        Placement.resource_link_pk == resource_link_pk))


def course_placement(session: Session, course_id: int, placement_id: int) -> Placement:
    row = session.get(Placement, placement_id)
    if row is None or row.course_id != course_id:
        raise PassbackError("That placement is not part of this course.", 404)
    return row


def placements_of(session: Session, course_id: int) -> list[tuple[Placement, ResourceLink,
                                                                   Playlist]]:
    return list(session.execute(
        select(Placement, ResourceLink, Playlist)
        .join(ResourceLink, ResourceLink.id == Placement.resource_link_pk)
        .join(Playlist, Playlist.id == Placement.playlist_id)
        .where(Placement.course_id == course_id).order_by(Placement.id)).all())


# -- scores ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StudentScores:
    student: User
    outs: list[rules.ScoreOut]


def placement_standards(session: Session, course_id: int, placement: Placement
                         ) -> list[Standard]:
    """The playlist's targeted standards, else those its items are aligned to."""
    playlist = session.get(Playlist, placement.playlist_id)
    ids = list(playlist.standard_ids or [])
    if not ids:
        for item in playlists.items_of(session, playlist.id):
            ids += [i for i in item.standard_ids or [] if i not in ids]
    by_id = {s.id: s for s in grading.standards_of(session, course_id)}
    return [by_id[i] for i in ids if i in by_id]


def compute_scores(session: Session, course_id: int, placement: Placement,
                   students: list[User], *, rule: str | None = None,
                   score_maximum: float | None = None, power_incomplete: bool | None = None
                   ) -> list[StudentScores]:
    """Every student's scores under the placement's rule (or the one given,
    for the teacher's preview before saving)."""
    rule = rule or placement.rule
    score_maximum = placement.score_maximum if score_maximum is None else score_maximum
    power_incomplete = placement.power_incomplete if power_incomplete is None \
        else power_incomplete
    standards = placement_standards(session, course_id, placement)
    policy = grading.policy_for(session, course_id)
    levels = grading.scale_for(session, course_id)
    scale_max = max((lvl.points for lvl in levels), default=4.0)
    label = next((lvl.label for lvl in levels if lvl.points == policy.mastery_points),
                 "Mastery")
    ids = [s.id for s in students]
    values: dict[int, dict[int, float | None]] = defaultdict(dict)
    if ids:
        for student_id, standard_id, value in session.execute(
                select(Rollup.student_id, Rollup.standard_id, Rollup.value)
                .where(Rollup.course_id == course_id, Rollup.student_id.in_(ids))):
            values[student_id][standard_id] = value
    progress: dict[int, dict[int, str]] = defaultdict(dict)
    if ids:
        for student_id, item_id, status in session.execute(
                select(ItemProgress.student_id, ItemProgress.item_id, ItemProgress.status)
                .where(ItemProgress.playlist_id == placement.playlist_id,
                       ItemProgress.student_id.in_(ids))):
            progress[student_id][item_id] = status
    ctx = playlists.playlist_context(session, course_id,
                                     session.get(Playlist, placement.playlist_id))
    out = []
    for student in students:
        mine = values.get(student.id, {})
        student_path: path.Path = ctx.compute(mine, progress.get(student.id, {}))
        standings = [rules.Standing(standard_id=s.id, code=s.code, value=mine.get(s.id),
                                    power=bool(s.power)) for s in standards]
        started = any(v in ("started", "done") for v in progress.get(student.id, {}).values())
        out.append(StudentScores(student, rules.scores(
            rule, standings, mastery_points=policy.mastery_points, scale_max=scale_max,
            score_maximum=score_maximum, power_incomplete=power_incomplete,
            progress=rules.Progress(done=student_path.must_done,
                                    total=student_path.must_total, started=started),
            mastery_label=label)))
    return out


def active_students(session: Session, course_id: int,
                    student_ids: Iterable[int] | None = None) -> list[User]:
    query = (select(User).join(Enrollment, Enrollment.user_id == User.id)
             .where(Enrollment.course_id == course_id, Enrollment.role == "student",
                    Enrollment.active.is_(True)))
    if student_ids is not None:
        ids = list(set(student_ids))
        if not ids:
            return []
        query = query.where(User.id.in_(ids))
    return sorted(session.scalars(query), key=lambda u: (
        (u.family_name or u.display_name or "").casefold(), u.id))


def enqueue_scores(session: Session, course_id: int, student_ids: Iterable[int] | None = None,
                   *, placement_ids: Iterable[int] | None = None, force: bool = False) -> int:
    """Write an outbox row for every passed-back score that changed (all of
    them with `force`, after a rule change). Returns how many were written."""
    query = select(Placement).where(Placement.course_id == course_id,
                                    Placement.passback_enabled.is_(True))
    if placement_ids is not None:
        query = query.where(Placement.id.in_(list(placement_ids)))
    placements = list(session.scalars(query))
    if not placements:
        return 0
    students = active_students(session, course_id, student_ids)
    if not students:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # One writer of a course's scores at a time, so timestamps read as
        # "the last one" really are the last (strictly increasing per target).
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 7_000_000 + course_id})
    platform_id = session.scalar(select(Deployment.platform_id).join(
        Course, Course.deployment_pk == Deployment.id).where(Course.id == course_id))
    now = utcnow()
    now_stamp = rules.format_timestamp(now)  # only to compare payloads; ignored by same_score
    written = 0
    for placement in placements:
        items = {li.standard_id: li for li in session.scalars(select(LineItem).where(
            LineItem.placement_id == placement.id, LineItem.active.is_(True)))}
        if not items:
            continue
        latest_ids = select(func.max(ScoreOutbox.id)).where(
            ScoreOutbox.line_item_id.in_([li.id for li in items.values()]),
            ScoreOutbox.student_id.in_([s.id for s in students])
        ).group_by(ScoreOutbox.line_item_id, ScoreOutbox.student_id)
        last = {(r.line_item_id, r.student_id): r for r in session.scalars(
            select(ScoreOutbox).where(ScoreOutbox.id.in_(latest_ids)))}
        rows = []
        for scored in compute_scores(session, course_id, placement, students):
            for out in scored.outs:
                if placement.rule == "per_standard" and out.standard_id is None:
                    continue
                line_item = items.get(out.standard_id)
                if line_item is None:
                    continue
                previous = last.get((line_item.id, scored.student.id))
                probe = rules.score_payload(out, user_id=scored.student.sub,
                                            timestamp=now_stamp)
                if previous is not None and not force and \
                        rules.same_score(previous.payload, probe):
                    continue
                ts = rules.next_timestamp(now, aware(previous.ts_value) if previous else None)
                stamp = rules.format_timestamp(ts)
                rows.append({
                    "course_id": course_id, "platform_id": platform_id,
                    "placement_id": placement.id, "line_item_id": line_item.id,
                    "student_id": scored.student.id, "user_sub": scored.student.sub,
                    "payload": rules.score_payload(out, user_id=scored.student.sub,
                                                   timestamp=stamp),
                    "score_ts": stamp, "ts_value": ts, "status": "pending", "attempts": 0,
                    "next_attempt_at": now, "claimed_until": None, "last_http_status": None,
                    "last_error": "", "created_at": now, "sent_at": None})
        for start in range(0, len(rows), 1000):
            session.execute(ScoreOutbox.__table__.insert(), rows[start:start + 1000])
        written += len(rows)
    if written:
        _wake_worker()
    return written


def _wake_worker() -> None:
    """Tell this process's inline worker (if any) that there is work, after
    the caller commits; other processes poll."""
    from lti_tool.passback import worker

    worker.poke()


# -- settings ---------------------------------------------------------------------------
def parse_settings(form) -> tuple[str, float, bool]:
    rule = form.get("rule", "")
    if rule not in RULES:
        raise PassbackError("Choose how mastery becomes the LMS score.")
    try:
        maximum = float(form.get("score_maximum") or 100)
    except ValueError:
        raise PassbackError("Points possible must be a number, e.g. 100.") from None
    if not 0 < maximum <= 10000:
        raise PassbackError("Points possible must be above 0 and at most 10,000.")
    return rule, maximum, form.get("power_incomplete") == "1"


def save_settings(session: Session, placement: Placement, *, rule: str, score_maximum: float,
                  power_incomplete: bool, enabled: bool) -> int:
    """Change the rule (every score is re-sent) and/or turn passback on or
    off. Line items must exist already (ensure_line_items). Returns how many
    scores were queued."""
    changed = (placement.rule, placement.score_maximum, placement.power_incomplete) != \
        (rule, score_maximum, power_incomplete)
    was_enabled = placement.passback_enabled
    placement.rule, placement.score_maximum = rule, score_maximum
    placement.power_incomplete, placement.passback_enabled = power_incomplete, enabled
    placement.updated_at = utcnow()
    session.execute(update(LineItem).where(
        LineItem.placement_id == placement.id,
        LineItem.standard_id.is_(None) if rule != "per_standard"
        else LineItem.standard_id.is_not(None)).values(active=True))
    session.execute(update(LineItem).where(
        LineItem.placement_id == placement.id,
        LineItem.standard_id.is_not(None) if rule != "per_standard"
        else LineItem.standard_id.is_(None)).values(active=False))
    session.flush()
    if not enabled:
        return 0
    return enqueue_scores(session, placement.course_id, placement_ids=[placement.id],
                          force=changed or not was_enabled)


@dataclass(frozen=True)
class SyncStatus:
    pending: int
    sent: int
    dead: list[tuple[ScoreOutbox, User]]
    last_sent_at: datetime | None


def sync_status(session: Session, placement: Placement) -> SyncStatus:
    counts = dict(session.execute(
        select(ScoreOutbox.status, func.count()).where(ScoreOutbox.placement_id == placement.id)
        .group_by(ScoreOutbox.status)).all())
    dead = list(session.execute(
        select(ScoreOutbox, User).join(User, User.id == ScoreOutbox.student_id)
        .where(ScoreOutbox.placement_id == placement.id, ScoreOutbox.status == "dead")
        .order_by(ScoreOutbox.id.desc()).limit(200)).all())
    last = session.scalar(select(func.max(ScoreOutbox.sent_at)).where(
        ScoreOutbox.placement_id == placement.id))
    return SyncStatus(pending=counts.get("pending", 0) + counts.get("sending", 0),
                      sent=counts.get("sent", 0), dead=dead,
                      last_sent_at=aware(last) if last else None)


def sync_now(session: Session, placement: Placement) -> int:
    """Retry failed scores and send anything waiting now, not at its backoff."""
    now = utcnow()
    retried = session.execute(update(ScoreOutbox).where(
        ScoreOutbox.placement_id == placement.id, ScoreOutbox.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=now, last_error="")).rowcount
    session.execute(update(ScoreOutbox).where(
        ScoreOutbox.placement_id == placement.id, ScoreOutbox.status == "pending")
        .values(next_attempt_at=now))
    queued = enqueue_scores(session, placement.course_id, placement_ids=[placement.id])
    _wake_worker()
    return (retried or 0) + queued
