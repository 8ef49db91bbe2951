"""Drive the OIDC login and launch through the Flask test client."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from lti_tool.db import get_engine
from tests.support.platform import TestPlatform

RECORD_TABLES = ("lti_user", "course", "enrollment", "resource_link", "tool_session")


@dataclass
class Login:
    response: object
    state: str
    nonce: str
    auth: dict
    location: str


def login(client, platform: TestPlatform, method: str = "POST", **overrides) -> Login:
    params = platform.login_params(**overrides)
    if method == "GET":
        response = client.get("/lti/login", query_string=params)
    else:
        response = client.post("/lti/login", data=params)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    # The tool checks its state cookie came back before going to the platform.
    onward = client.get(response.headers["Location"])
    assert onward.status_code == 302, onward.get_data(as_text=True)[:500]
    auth = platform.auth_request(onward.headers["Location"])
    return Login(response=response, state=auth["state"], nonce=auth["nonce"], auth=auth,
                 location=onward.headers["Location"])


def post_launch(client, token: str | None, state: str | None, **extra):
    data = {k: v for k, v in {"id_token": token, "state": state, **extra}.items()
            if v is not None}
    return client.post("/lti/launch", data=data)


def launch(client, platform: TestPlatform, role: str = "student", **claim_overrides):
    """A full, valid login + launch; returns (launch response, login)."""
    started = login(client, platform)
    claims = platform.claims(started.nonce, role=role, **claim_overrides)
    return post_launch(client, platform.sign(claims), started.state), started


def session_token(response) -> str:
    """The tool session token (`t`) of a launch's redirect to its first page."""
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return parse_qs(urlsplit(response.headers["Location"]).query)["t"][0]


def launch_as(client, platform: TestPlatform, role: str, sub: str, name: str,
              **claim_overrides) -> str:
    """A launch as `name` ("Given Family"); returns the tool session token."""
    given, family = name.split(" ", 1)
    response, _ = launch(client, platform, role=role, sub=sub, name=name, given_name=given,
                         family_name=family, **claim_overrides)
    return session_token(response)


def record_counts(database_url: str) -> dict[str, int]:
    with get_engine(database_url).connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in RECORD_TABLES}


def error_code(response) -> str | None:
    import re

    match = re.search(r'data-error-code="([A-Z_]+)"', response.get_data(as_text=True))
    return match.group(1) if match else None
