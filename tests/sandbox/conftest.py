"""Fixtures for the sandbox LMS tests.

A fake *tool* publishes a JWKS from a tiny werkzeug server on 127.0.0.1 (port 0); the sandbox
fetches it over real HTTP to verify client assertions and deep-linking responses. Most tests
drive the sandbox through Flask's test client; `served_sandbox` runs it on a threaded
werkzeug server for real-HTTP tests.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lti_tool.sandbox import create_sandbox_app, seed

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AGS_ALL = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem "
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly "
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly "
    "https://purl.imsglobal.org/spec/lti-ags/scope/score"
)
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeTool:
    """The tool's key pair and its JWKS endpoint, served over HTTP."""

    url: str
    key: rsa.RSAPrivateKey
    kid: str = "tool-key-1"
    published: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, key: rsa.RSAPrivateKey, kid: str) -> None:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        self.published.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})

    def sign(
        self,
        payload: dict[str, Any],
        *,
        key: Any = None,
        kid: str | None = None,
        alg: str = "RS256",
    ) -> str:
        return jwt.encode(
            payload,
            key if key is not None else self.key,
            algorithm=alg,
            headers={"kid": kid or self.kid},
        )


@pytest.fixture(scope="session")
def fake_tool() -> Iterator[FakeTool]:
    state: dict[str, FakeTool] = {}

    @Request.application
    def wsgi(request: Request) -> Response:
        if request.path == "/.well-known/jwks.json":
            return Response(
                json.dumps({"keys": state["tool"].published}), mimetype="application/json"
            )
        return Response("not found", status=404)

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tool = FakeTool(url=f"http://127.0.0.1:{server.server_port}", key=_new_key())
    tool.publish(tool.key, tool.kid)
    state["tool"] = tool
    yield tool
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    """A key the tool never published (forged signatures)."""
    return _new_key()


@pytest.fixture(scope="session")
def platform_key_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One platform key per flavour for the whole run: RSA generation is the slow part.
    return str(tmp_path_factory.mktemp("platform-keys"))


@dataclass
class Sandbox:
    flavor: str
    app: Any
    client: Any
    tool: FakeTool
    info: dict[str, Any]
    base_url: str

    # Helpers reachable from tests without importing conftest.
    parse_form = staticmethod(lambda page: parse_form(page))
    query_of = staticmethod(lambda url: query_of(url))

    @property
    def ctx(self) -> Any:
        return self.app.extensions["lti_sandbox"]

    @property
    def client_id(self) -> str:
        return self.info["client_id"]

    @property
    def course_id(self) -> int:
        return self.info["course_id"]

    @property
    def teacher_id(self) -> int:
        return self.info["teacher_ids"][0]

    @property
    def student_id(self) -> int:
        return sorted(self.info["student_ids"])[0]

    @property
    def token_url(self) -> str:
        return self.ctx.token_url

    @property
    def issuer(self) -> str:
        return self.ctx.issuer

    # -- OAuth -------------------------------------------------------------------------
    def assertion(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def request_token(
        self, scope: str = AGS_ALL, *, assertion: str | None = None, **form: Any
    ) -> Any:
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion or self.tool.sign(self.assertion()),
            "scope": scope,
            **form,
        }
        return self.client.post(self.path(self.token_url), data=data)

    def token(self, scope: str = AGS_ALL) -> str:
        resp = self.request_token(scope)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()["access_token"]

    def path(self, url: str) -> str:
        """Strip the base URL so the test client can request a URL the sandbox handed out."""
        assert url.startswith(self.base_url), url
        return url[len(self.base_url) :] or "/"

    # -- launches ----------------------------------------------------------------------
    def sign_in(self, client: Any, user_id: int) -> None:
        resp = client.post("/session", data={"course_id": self.course_id, "user_id": user_id})
        assert resp.status_code == 303

    def start_launch(self, user_id: int, launch_path: str) -> dict[str, str]:
        """Open a launch page as `user_id`; return the login-initiation form fields."""
        client = self.app.test_client()
        self.sign_in(client, user_id)
        page = client.get(launch_path)
        assert page.status_code == 200, page.get_data(as_text=True)
        src = re.search(r'id="tool-frame"[^>]*src="([^"]+)"', page.get_data(as_text=True))
        assert src, "launch page has no tool frame"
        init = client.get(html.unescape(src.group(1)))
        assert init.status_code == 200
        action, fields = parse_form(init.get_data(as_text=True))
        assert action == f"{self.tool.url}/lti/login"
        return fields

    def auth_params(self, login: dict[str, str], **overrides: Any) -> dict[str, str]:
        params = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": login["client_id"],
            "redirect_uri": f"{self.tool.url}/lti/launch",
            "login_hint": login["login_hint"],
            "lti_message_hint": login["lti_message_hint"],
            "state": "state-" + uuid.uuid4().hex,
            "nonce": "nonce-" + uuid.uuid4().hex,
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    @property
    def auth_path(self) -> str:
        return "/api/lti/authorize" if self.flavor == "canvas" else "/mod/lti/auth.php"

    def authorize(self, login: dict[str, str], **overrides: Any) -> Any:
        # A fresh client: no sandbox cookie, as in a cross-site iframe with 3p cookies blocked.
        return self.app.test_client().post(
            self.auth_path, data=self.auth_params(login, **overrides)
        )

    def id_token(
        self, user_id: int, launch_path: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """Run a whole launch; return (header, verified claims, posted fields)."""
        login = self.start_launch(user_id, launch_path)
        resp = self.authorize(login)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        action, fields = parse_form(resp.get_data(as_text=True))
        assert action == f"{self.tool.url}/lti/launch"
        assert "error" not in fields, fields
        token = fields["id_token"]
        jwks_path = "/api/lti/security/jwks" if self.flavor == "canvas" else "/mod/lti/certs.php"
        jwks = self.client.get(jwks_path).get_json()
        header = jwt.get_unverified_header(token)
        jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        claims = jwt.decode(
            token,
            jwt.PyJWK(jwk, algorithm="RS256").key,
            algorithms=["RS256"],
            audience=self.client_id,
            issuer=self.issuer,
        )
        return header, claims, fields

    def nav_path(self) -> str:
        if self.flavor == "canvas":
            return f"/courses/{self.course_id}/launch/nav"
        return f"/courses/{self.course_id}/launch/link/5"

    def dl_path(self) -> str:
        placement = "assignment_selection" if self.flavor == "canvas" else "ContentArea"
        return f"/courses/{self.course_id}/launch/deep_link/{placement}"


def parse_form(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the auto-post form on a page."""
    action = re.search(r'<form id="autopost" method="post" action="([^"]*)"', page)
    assert action, page[:500]
    fields = {
        html.unescape(m.group(1)): html.unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)
    }
    return html.unescape(action.group(1)), fields


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def make_sandbox(
    flavor: str, tmp_path: Any, tool: FakeTool, key_dir: str, base_url: str = "", **options: Any
) -> Sandbox:
    """options go to create_sandbox_app (latency_ms, test_controls)."""
    base_url = base_url or (
        "http://canvas.sandbox.test" if flavor == "canvas" else "http://moodle.sandbox.test"
    )
    app = create_sandbox_app(
        flavor=flavor,
        base_url=base_url,
        tool_url=tool.url,
        db_path=str(tmp_path / f"{flavor}.db"),
        key_path=os.path.join(key_dir, f"{flavor}.pem"),
        **options,
    )
    app.config["TESTING"] = True
    info = seed(app)
    return Sandbox(
        flavor=flavor, app=app, client=app.test_client(), tool=tool, info=info, base_url=base_url
    )


@pytest.fixture
def canvas(tmp_path: Any, fake_tool: FakeTool, platform_key_dir: str) -> Sandbox:
    return make_sandbox("canvas", tmp_path, fake_tool, platform_key_dir)


@pytest.fixture
def moodle(tmp_path: Any, fake_tool: FakeTool, platform_key_dir: str) -> Sandbox:
    return make_sandbox("moodle", tmp_path, fake_tool, platform_key_dir)


@pytest.fixture(params=["canvas", "moodle"])
def sandbox(
    request: pytest.FixtureRequest, tmp_path: Any, fake_tool: FakeTool, platform_key_dir: str
) -> Sandbox:
    return make_sandbox(request.param, tmp_path, fake_tool, platform_key_dir)


@pytest.fixture
def served_sandbox(
    tmp_path: Any, fake_tool: FakeTool, platform_key_dir: str
) -> Iterator[Callable[..., Sandbox]]:
    """Factory: a sandbox of the given flavour served on a threaded werkzeug server.

    Keyword options go to create_sandbox_app, e.g. `start("moodle", latency_ms=20,
    test_controls=True)`.
    """
    servers: list[Any] = []

    def start(flavor: str, **options: Any) -> Sandbox:
        holder: dict[str, Any] = {}

        def dispatch(environ: Any, start_response: Any) -> Any:
            return holder["app"](environ, start_response)

        # Bind first (port 0) so the sandbox knows its own public URL.
        server = make_server("127.0.0.1", 0, dispatch, threaded=True)
        base = f"http://127.0.0.1:{server.server_port}"
        sb = make_sandbox(
            flavor, tmp_path, fake_tool, platform_key_dir, base_url=base, **options
        )
        holder["app"] = sb.app
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        return sb

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
