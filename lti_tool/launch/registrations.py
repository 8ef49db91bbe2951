"""Platform registrations and their deployments, as database rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from lti_tool.launch.models import Deployment, Platform
from lti_tool.launch.urls import check_service_url


class RegistrationError(ValueError):
    """Bad registration input; the message says what to fix."""


def _clean(value: str | None, what: str, limit: int = 255) -> str:
    value = (value or "").strip()
    if not value:
        raise RegistrationError(f"{what} is required")
    if len(value) > limit:
        raise RegistrationError(f"{what} is longer than {limit} characters")
    return value


def add_platform(
    session: Session,
    *,
    issuer: str,
    client_id: str,
    auth_login_url: str,
    auth_token_url: str,
    jwks_url: str,
    deployment_ids: list[str],
    name: str | None = None,
    auth_audience: str | None = None,
) -> Platform:
    """Register a platform, or update the one with the same (issuer, client_id)
    and add any new deployments. Validates everything before writing."""
    issuer = _clean(issuer, "--issuer")
    client_id = _clean(client_id, "--client-id")
    deployments = [_clean(d, "--deployment-id") for d in deployment_ids]
    if not deployments:
        raise RegistrationError("at least one --deployment-id is required")
    try:
        urls = {
            "auth_login_url": check_service_url(auth_login_url, "--auth-login-url"),
            "auth_token_url": check_service_url(auth_token_url, "--auth-token-url"),
            "jwks_url": check_service_url(jwks_url, "--jwks-url"),
        }
        if auth_audience:
            check_service_url(auth_audience, "--auth-audience")
    except ValueError as exc:
        raise RegistrationError(str(exc)) from None

    platform = session.scalar(
        select(Platform).where(Platform.issuer == issuer, Platform.client_id == client_id)
        .options(selectinload(Platform.deployments))
    )
    if platform is None:
        platform = Platform(issuer=issuer, client_id=client_id, name=name or issuer,
                            auth_audience=auth_audience, active=True, **urls)
        session.add(platform)
    else:
        for key, value in urls.items():
            setattr(platform, key, value)
        if name:
            platform.name = name
        if auth_audience:
            platform.auth_audience = auth_audience
    known = {d.deployment_id for d in platform.deployments}
    for dep in deployments:
        if dep not in known:
            platform.deployments.append(Deployment(deployment_id=dep, active=True))
            known.add(dep)
    session.flush()
    return platform


def platform_as_dict(platform: Platform) -> dict:
    return {
        "id": platform.id,
        "name": platform.name,
        "issuer": platform.issuer,
        "client_id": platform.client_id,
        "auth_login_url": platform.auth_login_url,
        "auth_token_url": platform.auth_token_url,
        "auth_audience": platform.auth_audience,
        "jwks_url": platform.jwks_url,
        "active": platform.active,
        "deployments": [
            {"deployment_id": d.deployment_id, "active": d.active}
            for d in platform.deployments
        ],
    }


def list_platforms(session: Session) -> list[Platform]:
    return list(session.scalars(
        select(Platform).options(selectinload(Platform.deployments)).order_by(Platform.id)
    ))


def find_platforms(session: Session, issuer: str, client_id: str | None, *,
                   active: bool = True) -> list[Platform]:
    """Registrations for an issuer (narrowed by client_id when given): the
    active ones, or with active=False the disabled ones."""
    query = select(Platform).where(Platform.issuer == issuer, Platform.active.is_(active))
    if client_id:
        query = query.where(Platform.client_id == client_id)
    return list(session.scalars(query))


def find_deployment(session: Session, platform_id: int, deployment_id: str) -> Deployment | None:
    return session.scalar(select(Deployment).where(
        Deployment.platform_id == platform_id, Deployment.deployment_id == deployment_id))
