"""Fixtures for the LMS service client: the sandbox LMS served over real HTTP
on loopback (both flavours) with the tool's key registered, a recording and
tampering wrapper around it, and tiny local WSGI servers for faults."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lti_tool.db import migrate, session_scope
from lti_tool.launch import keys
from lti_tool.launch.models import Platform
from lti_tool.passback.platform_client import PlatformClient, reset_clients
from lti_tool.sandbox import create_sandbox_app, seed, storage
from lti_tool.sandbox.flavors import REGISTERED_SCOPES


def _serve(app: Any) -> tuple[Any, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _stop(server: Any) -> None:
    server.shutdown()
    server.server_close()


def _record(environ: dict) -> dict[str, Any]:
    return {
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO", ""),
        "query": environ.get("QUERY_STRING", ""),
        "authorization": environ.get("HTTP_AUTHORIZATION"),
        "content_type": environ.get("CONTENT_TYPE", ""),
        "accept": environ.get("HTTP_ACCEPT", ""),
        "user_agent": environ.get("HTTP_USER_AGENT", ""),
    }


# -- the tool's side -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tool_sign(tool_keys_dir) -> Callable[[dict], str]:
    """How the tool signs a client assertion (its current key and kid)."""
    return lambda claims: keys.load(tool_keys_dir).sign(claims)


@pytest.fixture(scope="session")
def tool_url(tool_keys_dir) -> Iterator[str]:
    """The tool's JWKS over HTTP: the sandbox verifies our assertions with it."""

    @Request.application
    def app(request: Request) -> Response:
        if request.path == "/.well-known/jwks.json":
            return Response(json.dumps(keys.load(tool_keys_dir).jwks()),
                            mimetype="application/json")
        return Response("not found", status=404)

    server, url = _serve(app)
    yield url
    _stop(server)


@pytest.fixture(scope="session")
def sandbox_key_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("sandbox-keys"))


@pytest.fixture(scope="session")
def http_db(tmp_path_factory) -> str:
    """A SQLite database for tests about HTTP behaviour only (one backend is enough)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('passback-http') / 'client.sqlite3'}"
    migrate(url)
    return url


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    yield
    reset_clients()


def register(database_url: str, *, issuer: str, client_id: str, token_url: str) -> int:
    """The platform row the token cache hangs off (registration checks bypassed)."""
    with session_scope(database_url) as session:
        platform = Platform(name="LMS", issuer=issuer, client_id=client_id,
                            auth_login_url=token_url, auth_token_url=token_url,
                            jwks_url=token_url)
        session.add(platform)
        session.flush()
        return platform.id


# -- the sandbox LMS served over HTTP ----------------------------------------------------------


@dataclass
class Lms:
    flavor: str
    app: Any
    base_url: str
    info: dict[str, Any]
    registration_id: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    # tamper(headers) -> headers: rewrites the response headers the tool sees.
    tamper: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] | None = None

    @property
    def ctx(self) -> Any:
        return self.app.extensions["lti_sandbox"]

    @property
    def token_url(self) -> str:
        return self.ctx.token_url

    @property
    def issuer(self) -> str:
        return self.ctx.issuer

    @property
    def client_id(self) -> str:
        return self.info["client_id"]

    @property
    def course_id(self) -> int:
        return self.info["course_id"]

    @property
    def lineitems_url(self) -> str:
        return self.ctx.flavor.lineitems_url(self.base_url, self.course_id, self.registration_id)

    def lineitem_url(self, item_id: int) -> str:
        return self.ctx.flavor.lineitem_url(self.base_url, self.course_id, item_id,
                                            self.registration_id)

    @property
    def nrps_url(self) -> str:
        return self.ctx.flavor.memberships_url(self.base_url, self.course_id,
                                               self.registration_id)

    def calls(self, method: str | None = None, path_end: str = "") -> list[dict[str, Any]]:
        return [r for r in self.requests
                if (method is None or r["method"] == method) and r["path"].endswith(path_end)]

    def token_calls(self) -> list[dict[str, Any]]:
        return self.calls("POST", "/login/oauth2/token" if self.flavor == "canvas"
                          else "/mod/lti/token.php")

    def add_registration(self, client_id: str, registration_id: int) -> None:
        """A second tool registration in this LMS (same issuer, other client_id)."""
        conn = storage.connect(self.ctx.db_path)
        try:
            with storage.transaction(conn):
                conn.execute(
                    "INSERT INTO registrations (id, client_id, deployment_id, name, login_url, "
                    "redirect_uris, jwks_url, target_link_uri, scopes, custom) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '{}')",
                    (registration_id, client_id, f"{registration_id}:second", "Second school",
                     f"{self.ctx.tool_url}/lti/login",
                     json.dumps([f"{self.ctx.tool_url}/lti/launch"]),
                     f"{self.ctx.tool_url}/.well-known/jwks.json",
                     f"{self.ctx.tool_url}/lti/launch", json.dumps(list(REGISTERED_SCOPES))))
        finally:
            conn.close()

    def register_with(self, database_url: str, client_id: str | None = None) -> int:
        return register(database_url, issuer=self.issuer, client_id=client_id or self.client_id,
                        token_url=self.token_url)


@pytest.fixture
def served(tmp_path, tool_url, sandbox_key_dir) -> Iterator[Callable[[str], Lms]]:
    """Factory: a seeded sandbox LMS of a flavour on a threaded loopback server."""
    servers: list[Any] = []

    def start(flavor: str) -> Lms:
        holder: dict[str, Lms] = {}

        def dispatch(environ: Any, start_response: Any) -> Any:
            lms = holder["lms"]
            lms.requests.append(_record(environ))

            def respond(status: str, headers: list, exc_info: Any = None) -> Any:
                if lms.tamper is not None:
                    headers = lms.tamper(list(headers))
                return start_response(status, headers, exc_info)

            return lms.app(environ, respond)

        server, base = _serve(dispatch)
        app = create_sandbox_app(flavor=flavor, base_url=base, tool_url=tool_url,
                                 db_path=str(tmp_path / f"{flavor}-{uuid.uuid4().hex[:6]}.db"),
                                 key_path=f"{sandbox_key_dir}/{flavor}.pem")
        app.config["TESTING"] = True
        info = seed(app)
        conn = storage.connect(app.extensions["lti_sandbox"].db_path)
        try:
            reg = storage.first_registration(conn)
        finally:
            conn.close()
        holder["lms"] = Lms(flavor=flavor, app=app, base_url=base, info=info,
                            registration_id=reg["id"])
        servers.append(server)
        return holder["lms"]

    yield start
    reset_clients()
    for server in servers:
        _stop(server)


def make_client(lms_or_url: Lms | str, platform_id: int, database_url: str,
                sign: Callable[[dict], str], **kwargs: Any) -> PlatformClient:
    if isinstance(lms_or_url, Lms):
        issuer, client_id, token_url = (lms_or_url.issuer, lms_or_url.client_id,
                                        lms_or_url.token_url)
    else:
        issuer, client_id, token_url = "https://lms.example", "client-1", lms_or_url
    kwargs.setdefault("client_id", client_id)
    return PlatformClient(platform_id=platform_id, issuer=issuer, token_url=token_url,
                          audience=None, sign=sign, database_url=database_url, **kwargs)


# -- tiny local servers for faults ---------------------------------------------------------------


@dataclass
class LocalServer:
    url: str
    handler: Callable[[Request], Response]
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    tokens_issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue_token(self, expires_in: Any = 3600) -> Response:
        with self.lock:
            self.tokens_issued += 1
            n = self.tokens_issued
        return Response(json.dumps({"access_token": f"tok-{n}-{uuid.uuid4().hex}",
                                    "token_type": "Bearer", "expires_in": expires_in}),
                        mimetype="application/json")


@pytest.fixture
def local_server() -> Iterator[Callable[[Callable[[Request], Response]], LocalServer]]:
    """Factory: serve `handler(request) -> Response` on loopback, recording every
    request and how many were in flight at once."""
    servers: list[Any] = []

    def start(handler: Callable[[Request], Response]) -> LocalServer:
        holder: dict[str, LocalServer] = {}

        @Request.application
        def app(request: Request) -> Response:
            srv = holder["srv"]
            with srv.lock:
                srv.requests.append(_record(request.environ))
                srv.in_flight += 1
                srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            try:
                return srv.handler(request)
            finally:
                with srv.lock:
                    srv.in_flight -= 1

        server, url = _serve(app)
        holder["srv"] = LocalServer(url=url, handler=handler)
        servers.append(server)
        return holder["srv"]

    yield start
    reset_clients()
    time.sleep(0)  # let handler threads finish their bookkeeping
    for server in servers:
        _stop(server)
