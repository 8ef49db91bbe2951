"""Standards, proficiency scales, evidence and the rollups derived from it.

Every row belongs to a course (and so to its deployment and platform); queries
always start from the course of the current tool session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
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
from sqlalchemy.sql.expression import false

from lti_tool.db import Base
from lti_tool.timeutil import utcnow

EVIDENCE_SOURCES = ("checkpoint", "observation", "conversation", "imported assessment",
                    "quick check")


class GradingPolicy(Base):
    """How a course turns evidence into mastery (per-standard overrides below)."""

    __tablename__ = "grading_policy"

    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"),
                                           primary_key=True)
    method: Mapped[str] = mapped_column(String(30), default="decaying_average")
    mastery_points: Mapped[float] = mapped_column(Float, default=3.0)
    weight: Mapped[float] = mapped_column(Float, default=0.65)
    n: Mapped[int] = mapped_column(Integer, default=3)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScaleLevel(Base):
    """One level of a course's proficiency scale. A colour is always shown
    with its label and a pattern, never alone."""

    __tablename__ = "scale_level"
    __table_args__ = (UniqueConstraint("course_id", "points"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"),
                                           index=True)
    points: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(60))
    colour: Mapped[str] = mapped_column(String(7))
    pattern: Mapped[str] = mapped_column(String(20))


class StandardGroup(Base):
    __tablename__ = "standard_group"
    __table_args__ = (UniqueConstraint("course_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Standard(Base):
    __tablename__ = "standard"
    __table_args__ = (UniqueConstraint("course_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("standard_group.id", ondelete="SET NULL"), nullable=True)
    code: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Per-standard calculation override; None = the course's policy.
    method: Mapped[str | None] = mapped_column(String(30), nullable=True)
    weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    case_identifier: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # A power standard: scores passed back can be held "incomplete" below it.
    power: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Evidence(Base):
    """Append-only: a correction is new evidence that supersedes the old."""

    __tablename__ = "evidence"
    __table_args__ = (Index("ix_evidence_student_standard", "student_id", "standard_id",
                            "assessed_at"),
                      Index("ix_evidence_course", "course_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    standard_id: Mapped[int] = mapped_column(ForeignKey("standard.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    assessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(30))
    item_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    superseded_by: Mapped[int | None] = mapped_column(
        ForeignKey("evidence.id", ondelete="SET NULL"), nullable=True)


class Rollup(Base):
    """The current mastery of one student on one standard, derived from
    evidence (and any override) in the same transaction that changed it."""

    __tablename__ = "rollup"
    __table_args__ = (UniqueConstraint("student_id", "standard_id"),
                      Index("ix_rollup_course", "course_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    standard_id: Mapped[int] = mapped_column(ForeignKey("standard.id", ondelete="CASCADE"))
    calculated: Mapped[float | None] = mapped_column(Float, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence_count: Mapped[int] = mapped_column(Integer, default=0)
    last_assessed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MasteryOverride(Base):
    """A teacher's judgement over the computed level, with its reason. Rows
    are never edited: clearing an override is a new row with value None."""

    __tablename__ = "mastery_override"
    __table_args__ = (Index("ix_override_student_standard", "student_id", "standard_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    standard_id: Mapped[int] = mapped_column(ForeignKey("standard.id", ondelete="CASCADE"))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReassessmentRequest(Base):
    __tablename__ = "reassessment_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"),
                                           index=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    standard_id: Mapped[int] = mapped_column(ForeignKey("standard.id", ondelete="CASCADE"))
    reflection: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("lti_user.id", ondelete="SET NULL"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
