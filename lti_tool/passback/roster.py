"""Roster sync through Names and Role Provisioning Services.

The gradebook and the progress views list every enrolled student, including
those who never opened the tool. Members are fetched first (every page, no
database transaction held while the LMS answers), then written in one
transaction. Students the LMS no longer lists are marked inactive, never
deleted: their evidence stays."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from lti_tool.courses.models import Enrollment, User
from lti_tool.db import session_factory, session_scope, upsert
from lti_tool.launch import keys as tool_keys
from lti_tool.launch.models import Platform
from lti_tool.launch.roles import STUDENT, decide
from lti_tool.passback import platform_client
from lti_tool.passback.models import CourseServices
from lti_tool.passback.service import allowed_origins, enqueue_scores
from lti_tool.timeutil import utcnow

log = logging.getLogger("lti_tool.passback")


@dataclass(frozen=True)
class RosterResult:
    members: int
    students: int
    deactivated: int


def _text(value, limit: int) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def sync_course(database_url: str, keys_dir, course_id: int) -> RosterResult:
    """Fetch the course's members from the LMS and bring enrolments in line.
    Raises platform_client.ServiceError when the LMS cannot be asked."""
    with session_factory(database_url, write=False)() as session:
        services = session.get(CourseServices, course_id)
        if services is None or not services.nrps_url:
            raise platform_client.ServiceError(
                "config", "The LMS has not offered a roster for this course (Names and "
                "Role Provisioning is off for this tool).")
        platform = session.get(Platform, services.platform_id)
        allowed = allowed_origins(services, platform)
        nrps_url = services.nrps_url
        session.expunge_all()
    client = platform_client.client_for(platform, tool_keys.load(keys_dir).sign, database_url)
    members = client.members(nrps_url, allowed_origins=allowed)

    now = utcnow()
    seen: set[int] = set()
    joined: list[int] = []   # students new to the class, or back in it
    students = 0
    with session_scope(database_url) as session:
        for member in members:
            sub = member.get("user_id")
            if not isinstance(sub, str) or not sub.strip():
                continue
            roles = [r for r in member.get("roles") or [] if isinstance(r, str)]
            role = decide(roles).role
            user_id = upsert(session, User, ["platform_id", "sub"], {
                "platform_id": platform.id, "sub": sub.strip()[:255],
                "name": _text(member.get("name"), 300),
                "given_name": _text(member.get("given_name"), 200),
                "family_name": _text(member.get("family_name"), 200),
                "email": _text(member.get("email"), 320),
                "created_at": now, "updated_at": now},
                ["name", "given_name", "family_name", "email", "updated_at"])
            active = member.get("status", "Active") != "Inactive"
            existing = session.scalar(select(Enrollment).where(
                Enrollment.user_id == user_id, Enrollment.course_id == course_id))
            if active and (existing is None or not existing.active) and \
                    (existing.role if existing is not None else role) == STUDENT:
                joined.append(user_id)
            if existing is None:
                session.add(Enrollment(user_id=user_id, course_id=course_id, role=role,
                                       lis_roles=roles, active=active, source="nrps",
                                       updated_at=now))
            else:
                # A launch's roles are as authoritative as the roster's; keep
                # the enrolment, refresh whether the LMS still lists it.
                existing.active = active
                existing.updated_at = now
            seen.add(user_id)
            students += role == STUDENT and active
        session.flush()
        gone = session.execute(update(Enrollment).where(
            Enrollment.course_id == course_id, Enrollment.role == STUDENT,
            Enrollment.active.is_(True), Enrollment.user_id.not_in(seen or {0}))
            .values(active=False, updated_at=now)).rowcount or 0
        if joined:
            # Their LMS scores, as the class got when sending was turned on.
            enqueue_scores(session, course_id, joined)
        services = session.get(CourseServices, course_id)
        services.roster_synced_at, services.roster_error = now, ""
        services.roster_count = students
    log.info('{"event": "roster_synced", "course_id": %d, "members": %d, "inactive": %d}',
             course_id, len(members), gone)
    return RosterResult(members=len(members), students=students, deactivated=gone)


def sync_requested(database_url: str, keys_dir) -> int:
    """Sync every course whose teacher launched since its last sync; a
    failure is recorded for the teacher and retried on the next request."""
    with session_factory(database_url, write=False)() as session:
        due = list(session.scalars(select(CourseServices.course_id).where(
            CourseServices.roster_requested_at.is_not(None),
            (CourseServices.roster_synced_at.is_(None))
            | (CourseServices.roster_synced_at < CourseServices.roster_requested_at))))
    done = 0
    for course_id in due:
        try:
            sync_course(database_url, keys_dir, course_id)
            done += 1
        except platform_client.ServiceError as exc:
            with session_scope(database_url) as session:
                row = session.get(CourseServices, course_id)
                row.roster_error = exc.detail or exc.kind
                row.roster_synced_at = utcnow()  # try again on the next teacher launch
    return done
