"""The tool session after a launch.

Third-party cookies cannot be relied on inside an LMS iframe, so the session is
a database row referenced by a short-lived signed token that pages carry on
their links and forms (and scripts in an Authorization header). A partitioned
cookie carries the same token as a convenience where the browser keeps it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.courses.models import Course, ResourceLink, User
from lti_tool.launch.models import ToolSession
from lti_tool.timeutil import aware, utcnow

SALT = "pathwise.tool-session"
COOKIE = "pathwise_session"


@dataclass(frozen=True)
class CurrentSession:
    row: ToolSession
    user: User
    course: Course | None
    resource_link: ResourceLink | None
    token: str

    @property
    def is_teacher(self) -> bool:
        return self.row.role == "teacher"


class SessionTokens:
    def __init__(self, secret_key: str, ttl: int):
        self.serializer = URLSafeTimedSerializer(secret_key, salt=SALT)
        self.ttl = ttl

    def issue(self, session_id: str) -> str:
        return self.serializer.dumps(session_id)

    def read(self, token: str) -> str | None:
        try:
            value = self.serializer.loads(token, max_age=self.ttl)
        except (BadSignature, SignatureExpired):
            return None
        return value if isinstance(value, str) else None


# A session row lives for a school day; each token lives `ttl` seconds and is
# renewed on every page, so only an idle page loses its session.
ABSOLUTE_LIFETIME = timedelta(hours=8)


def create_session(session: Session, **fields) -> ToolSession:
    now = utcnow()
    row = ToolSession(id=secrets.token_urlsafe(32), created_at=now,
                      expires_at=now + ABSOLUTE_LIFETIME, **fields)
    session.add(row)
    return row


def load_session(session: Session, tokens: SessionTokens, token: str | None
                 ) -> CurrentSession | None:
    if not token:
        return None
    session_id = tokens.read(token)
    if session_id is None:
        return None
    # One query for the session and everything a page shows about it.
    found = session.execute(
        select(ToolSession, User, Course, ResourceLink)
        .join(User, User.id == ToolSession.user_id)
        .outerjoin(Course, Course.id == ToolSession.course_id)
        .outerjoin(ResourceLink, ResourceLink.id == ToolSession.resource_link_pk)
        .where(ToolSession.id == session_id)).one_or_none()
    if found is None:
        return None
    row, user, course, link = found
    if aware(row.expires_at) < utcnow():
        return None
    # A fresh token on every page keeps an active person signed in while an
    # idle page's token still expires.
    return CurrentSession(row=row, user=user, course=course, resource_link=link,
                          token=tokens.issue(row.id))
