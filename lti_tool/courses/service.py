"""Record who launched, in which course and link (upserts, tenant-keyed)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.courses.models import Course, Enrollment, ResourceLink, User
from lti_tool.db import upsert
from lti_tool.grades.service import ensure_defaults, scores_changed
from lti_tool.launch.claims import LaunchMessage
from lti_tool.launch.models import Deployment, Platform
from lti_tool.launch.roles import STUDENT, RoleDecision
from lti_tool.timeutil import utcnow


@dataclass(frozen=True)
class LaunchRecord:
    user_id: int
    course_id: int | None
    resource_link_pk: int | None


class ResourceLinkConflict(Exception):
    """The launch's resource link id already belongs to another course."""


def record_launch(session: Session, platform: Platform, deployment: Deployment,
                  message: LaunchMessage, decision: RoleDecision) -> LaunchRecord:
    now = utcnow()
    # Read first, as for the course below: most launches change nothing about
    # the person, and an upsert would write (and lock) their row every time.
    person = (message.name, message.given_name, message.family_name, message.email)
    known_user = session.execute(select(
        User.id, User.name, User.given_name, User.family_name, User.email).where(
        User.platform_id == platform.id, User.sub == message.sub)).first()
    if known_user is not None and tuple(known_user[1:]) == person:
        user_id = known_user.id
    else:
        user_id = upsert(session, User, ["platform_id", "sub"], {
            "platform_id": platform.id, "sub": message.sub, "name": message.name,
            "given_name": message.given_name, "family_name": message.family_name,
            "email": message.email, "created_at": now, "updated_at": now,
        }, ["name", "given_name", "family_name", "email", "updated_at"])

    course_id = None
    context = message.context
    if context:
        types = context.get("type")
        fields = {"title": _text(context.get("title"), 500),
                  "label": _text(context.get("label"), 255),
                  "context_types": [t for t in types if isinstance(t, str)]
                  if isinstance(types, list) else []}
        # Read first: a whole class launches into one course row, and an
        # upsert would lock it until each launch commits (launches queue).
        known = session.execute(select(Course.id, Course.title, Course.label,
                                       Course.context_types).where(
            Course.deployment_pk == deployment.id, Course.context_id == context["id"])).first()
        if known is not None and (known.title, known.label, list(known.context_types or [])) \
                == (fields["title"], fields["label"], fields["context_types"]):
            course_id = known.id
        else:
            course_id = upsert(session, Course, ["deployment_pk", "context_id"], {
                "deployment_pk": deployment.id, "context_id": context["id"], **fields,
                "created_at": now, "updated_at": now,
            }, ["title", "label", "context_types", "updated_at"])
        # The course's grading defaults exist before any page reads them.
        ensure_defaults(session, course_id)
        enrolled = session.execute(select(
            Enrollment.role, Enrollment.lis_roles, Enrollment.active).where(
            Enrollment.user_id == user_id, Enrollment.course_id == course_id)).first()
        wanted = (decision.role, list(message.roles), True)
        if enrolled is None or (enrolled.role, list(enrolled.lis_roles or []),
                                enrolled.active) != wanted:
            upsert(session, Enrollment, ["user_id", "course_id"], {
                "user_id": user_id, "course_id": course_id, "role": decision.role,
                "lis_roles": list(message.roles), "active": True, "source": "launch",
                "updated_at": now,
            }, ["role", "lis_roles", "active", "updated_at"])
            if decision.role == STUDENT and (enrolled is None or not enrolled.active
                                             or enrolled.role != STUDENT):
                # A student new to the class gets the LMS score the placements'
                # rules give them now, as the class did when sending was turned on.
                scores_changed(session, course_id, [user_id])

    link_pk = None
    link = message.resource_link
    if link:
        # A resource link id is unique within its deployment: a launch that
        # reuses one from another course must not move that activity (and
        # its placement and grades) into this course.
        known = session.execute(select(
            ResourceLink.id, ResourceLink.course_id, ResourceLink.title,
            ResourceLink.description).where(
            ResourceLink.deployment_pk == deployment.id,
            ResourceLink.resource_link_id == link["id"])).first()
        if known is not None and known.course_id is not None and known.course_id != course_id:
            raise ResourceLinkConflict(link["id"])
        title, description = _text(link.get("title"), 500), _text(link.get("description"), 20000)
        if known is not None and (known.course_id, known.title, known.description) == \
                (course_id, title, description):
            link_pk = known.id  # unchanged: no lock on a row the whole class shares
        else:
            link_pk = upsert(session, ResourceLink, ["deployment_pk", "resource_link_id"], {
                "deployment_pk": deployment.id, "resource_link_id": link["id"],
                "course_id": course_id, "title": title, "description": description,
                "created_at": now, "updated_at": now,
            }, ["course_id", "title", "description", "updated_at"])
    return LaunchRecord(user_id=user_id, course_id=course_id, resource_link_pk=link_pk)


def _text(value, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None
