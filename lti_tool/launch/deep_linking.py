"""The Deep Linking 2.0 response (pure): what Pathwise answers the LMS when a
teacher picks playlists to place. The route signs it with the tool's key and
posts it to the platform's return URL."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
CUSTOM_KEY = "pathwise_playlist"
POINTS_KEY = "pathwise_points"  # the column's points, so the placement starts out of them
TAG = "pathwise-mastery"
LIFETIME = 300


@dataclass(frozen=True)
class Settings:
    """The platform's deep_linking_settings, read defensively."""

    return_url: str
    data: str | None
    accept_multiple: bool
    accept_lineitem: bool
    accept_types: tuple[str, ...]


def read_settings(raw: dict) -> Settings:
    types = raw.get("accept_types")
    # Canvas never sends accept_lineitem (platforms.md A5): absent means
    # "allowed"; a platform that sends false gets no lineItem.
    return Settings(
        return_url=str(raw["deep_link_return_url"]),
        data=raw["data"] if isinstance(raw.get("data"), str) else None,
        accept_multiple=raw.get("accept_multiple") is True,
        accept_lineitem=raw.get("accept_lineitem", True) is not False,
        accept_types=tuple(t for t in types if isinstance(t, str))
        if isinstance(types, list) else ("ltiResourceLink",))


@dataclass(frozen=True)
class Choice:
    playlist_id: int
    title: str
    text: str = ""


def resource_link(choice: Choice, *, launch_url: str, score_maximum: float | None,
                  graded: bool) -> dict:
    """One ltiResourceLink: a custom parameter binds it to the playlist, and
    a lineItem (when graded) makes the LMS create its gradebook column."""
    item: dict = {
        "type": "ltiResourceLink", "title": choice.title[:255], "url": launch_url,
        "custom": {CUSTOM_KEY: str(choice.playlist_id)},
    }
    if choice.text:
        item["text"] = choice.text[:1000]
    if graded and score_maximum is not None:
        item["lineItem"] = {"label": choice.title[:255], "scoreMaximum": score_maximum,
                            "resourceId": f"pathwise-playlist-{choice.playlist_id}",
                            "tag": TAG}
        item["custom"][POINTS_KEY] = f"{score_maximum:g}"
    return item


def response_claims(*, client_id: str, platform_issuer: str, deployment_id: str,
                    settings: Settings, items: Sequence[dict], message: str | None = None,
                    now: float | None = None, nonce: str | None = None) -> dict:
    """The LtiDeepLinkingResponse claims (iss = our client_id, aud = the
    platform, fresh nonce, data echoed)."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": client_id, "aud": platform_issuer, "azp": platform_issuer,
        "iat": issued, "exp": issued + LIFETIME, "nonce": nonce or secrets.token_urlsafe(24),
        LTI + "message_type": "LtiDeepLinkingResponse", LTI + "version": "1.3.0",
        LTI + "deployment_id": deployment_id, DL + "content_items": list(items),
    }
    if settings.data is not None:
        claims[DL + "data"] = settings.data
    if message:
        claims[DL + "msg"] = message[:500]
    return claims
