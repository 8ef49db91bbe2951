"""Placements (a playlist placed in the LMS as a graded activity), their LMS
line items, the transactional score outbox, cached service tokens, and the
service endpoints the LMS announced in its signed launches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.db import Base
from lti_tool.timeutil import utcnow

RULES = ("share", "average", "per_standard")


class Placement(Base):
    """One LMS activity (resource link) showing one playlist, and how mastery
    becomes its LMS score."""

    __tablename__ = "placement"
    __table_args__ = (UniqueConstraint("resource_link_pk"),
                      Index("ix_placement_course", "course_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    resource_link_pk: Mapped[int] = mapped_column(
        ForeignKey("resource_link.id", ondelete="CASCADE"))
    playlist_id: Mapped[int] = mapped_column(ForeignKey("playlist.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(20), default="share")
    power_incomplete: Mapped[bool] = mapped_column(Boolean, default=False)
    score_maximum: Mapped[float] = mapped_column(Float, default=100.0)
    passback_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The latest AGS endpoint claim of a launch of this link (URLs can change).
    lineitems_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    lineitem_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    ags_scopes: Mapped[list] = mapped_column(JSON, default=list)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LineItem(Base):
    """An LMS gradebook column fed by a placement: the link's own column
    (standard_id None) or one per standard."""

    __tablename__ = "line_item"
    __table_args__ = (UniqueConstraint("placement_id", "standard_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    placement_id: Mapped[int] = mapped_column(ForeignKey("placement.id", ondelete="CASCADE"))
    standard_id: Mapped[int | None] = mapped_column(
        ForeignKey("standard.id", ondelete="CASCADE"), nullable=True)
    url: Mapped[str] = mapped_column(String(2000))
    label: Mapped[str] = mapped_column(String(300), default="")
    score_maximum: Mapped[float] = mapped_column(Float, default=100.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


OUTBOX_STATES = ("pending", "sending", "sent", "superseded", "dead")


class ScoreOutbox(Base):
    """One score to deliver, written in the transaction that changed it. Its
    timestamp is fixed here and never changed on retry, so a resend is an
    identical, idempotent request."""

    __tablename__ = "score_outbox"
    __table_args__ = (UniqueConstraint("line_item_id", "student_id", "score_ts"),
                      Index("ix_outbox_due", "status", "next_attempt_at"),
                      Index("ix_outbox_target", "line_item_id", "student_id", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    placement_id: Mapped[int] = mapped_column(ForeignKey("placement.id", ondelete="CASCADE"))
    line_item_id: Mapped[int] = mapped_column(ForeignKey("line_item.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    user_sub: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict] = mapped_column(JSON)
    score_ts: Mapped[str] = mapped_column(String(40))  # exactly as sent
    ts_value: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                           nullable=True)
    last_http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ServiceToken(Base):
    """An LMS access token, shared by every process, keyed by the platform
    registration (issuer + client_id: two schools may share an issuer) and
    the exact scopes asked for."""

    __tablename__ = "service_token"
    __table_args__ = (UniqueConstraint("platform_id", "scopes"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    scopes: Mapped[str] = mapped_column(String(1000))
    access_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CourseServices(Base):
    """The service endpoints the LMS announced for a course in signed
    launches (NRPS), and the roster sync bookkeeping."""

    __tablename__ = "course_services"

    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"),
                                           primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    nrps_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    lineitems_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    ags_scopes: Mapped[list] = mapped_column(JSON, default=list)
    # Origins the platform itself used for service URLs in signed launches:
    # the only hosts our bearer token is ever sent to for this course.
    service_hosts: Mapped[list] = mapped_column(JSON, default=list)
    roster_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                                 nullable=True)
    roster_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    roster_error: Mapped[str] = mapped_column(Text, default="")
    roster_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
