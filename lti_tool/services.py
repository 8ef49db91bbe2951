"""Long-lived collaborators of one app: settings, HTTP pool, validators."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from flask import current_app

from lti_tool.config import Settings
from lti_tool.launch.platform_keys import PlatformKeys
from lti_tool.launch.tool_session import SessionTokens
from lti_tool.launch.validation import LaunchValidator

USER_AGENT = "Pathwise-LTI/0.1 (+https://github.com/pathwise)"


@dataclass
class Services:
    settings: Settings
    http: requests.Session
    platform_keys: PlatformKeys
    validator: LaunchValidator
    tokens: SessionTokens


def build_services(settings: Settings) -> Services:
    http = requests.Session()
    http.headers["User-Agent"] = USER_AGENT
    keys = PlatformKeys(http, timeout=settings.http_timeout,
                        default_ttl=settings.jwks_default_ttl,
                        refetch_interval=settings.jwks_refetch_interval)
    return Services(settings=settings, http=http, platform_keys=keys,
                    validator=LaunchValidator(settings, keys),
                    tokens=SessionTokens(settings.secret_key, settings.session_ttl))


def services() -> Services:
    return current_app.extensions["pathwise"]
