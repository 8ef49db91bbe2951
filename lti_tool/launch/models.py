"""Registrations and the launch protocol's server-side state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base
from lti_tool.timeutil import utcnow


class Platform(Base):
    """One LMS registration. Canvas uses one issuer for every hosted school,
    so the identity is (issuer, client_id), never the issuer alone."""

    __tablename__ = "platform"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(1000))
    auth_token_url: Mapped[str] = mapped_column(String(1000))
    auth_audience: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    jwks_url: Mapped[str] = mapped_column(String(1000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # How the row came to be: "manual" (`lti-tool platform add`) or "dynamic"
    # (LTI Dynamic Registration at /lti/register).
    registered_via: Mapped[str] = mapped_column(String(20), default="manual",
                                                server_default="manual")
    # Canvas answers a dynamic registration without a deployment_id: when the
    # LMS administrator allowed it, the first valid launch's deployment is
    # recorded (and the flag cleared, atomically). Only dynamic registration
    # sets it; every other unknown deployment is refused.
    accept_first_deployment: Mapped[bool] = mapped_column(Boolean, default=False,
                                                          server_default=false())
    # What the platform said during dynamic registration (configuration URL,
    # product, granted scopes, placements), for the administrator's review.
    registration_info: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="platform", order_by="Deployment.id", cascade="all, delete-orphan"
    )


class Deployment(Base):
    __tablename__ = "deployment"
    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    platform: Mapped[Platform] = relationship(back_populates="deployments")


class LoginState(Base):
    """OIDC state and nonce issued at login; single use, with an expiry.
    Kept after use (used_at set) until purged, so a replay is recognised."""

    __tablename__ = "login_state"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    lti_deployment_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The login parameters, to reopen the login top-level when no cookie came back.
    login_params: Mapped[dict] = mapped_column(JSON, default=dict)
    # The platform authentication request, sent once the browser is bound.
    auth_url: Mapped[str] = mapped_column(Text, default="")
    # sha256 of the secret put into LTI platform storage (cookie-less binding).
    binding_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UsedNonce(Base):
    """Every nonce accepted in a verified id_token; the primary key makes a
    second use fail in every worker and process at once."""

    __tablename__ = "used_nonce"

    nonce: Mapped[str] = mapped_column(String(255), primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class KeySetCache(Base):
    """The platform's JWKS as last fetched, shared by every process."""

    __tablename__ = "key_set_cache"

    platform_id: Mapped[int] = mapped_column(
        ForeignKey("platform.id", ondelete="CASCADE"), primary_key=True
    )
    jwks: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ToolSession(Base):
    """The tool session after a launch, referenced by a short-lived signed
    token carried on links and forms (no third-party cookie needed)."""

    __tablename__ = "tool_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    deployment_pk: Mapped[int] = mapped_column(ForeignKey("deployment.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    course_id: Mapped[int | None] = mapped_column(
        ForeignKey("course.id", ondelete="CASCADE"), nullable=True
    )
    resource_link_pk: Mapped[int | None] = mapped_column(
        ForeignKey("resource_link.id", ondelete="CASCADE"), nullable=True
    )
    role: Mapped[str] = mapped_column(String(20))
    role_notice: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message_type: Mapped[str] = mapped_column(String(60))
    return_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # Origins allowed to frame the tool for this session (CSP frame-ancestors).
    frame_origins: Mapped[list] = mapped_column(JSON, default=list)
    # The verified launch claims: services (AGS, NRPS, deep linking) are
    # rebuilt from them through pylti1p3 in any process.
    launch_claims: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
