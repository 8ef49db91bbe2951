"""LTI Dynamic Registration (/lti/register) against the sandbox LMS served over
real HTTP on loopback (both flavours), then real launches with the new
registration; the failures (each stores nothing); the first-deployment rule;
and the administrator's review and disable."""

from __future__ import annotations

import html
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lti_tool import create_app
from lti_tool.cli import main as cli_main
from lti_tool.db import get_engine, session_scope
from lti_tool.launch import registration as dr
from lti_tool.launch.models import Platform
from lti_tool.sandbox import create_sandbox_app, seed, storage
from lti_tool.sandbox import registration as sandbox_dr
from tests.conftest import TOOL_URL
from tests.support.databases import wipe
from tests.support.flows import error_code, login, post_launch
from tests.support.platform import LTI, TestPlatform, canvas_flavor

ADMIN = "admin-" + uuid.uuid4().hex
HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


# -- fixtures ----------------------------------------------------------------------------------


def _make_app(database_url, keys_dir, tmp_path, **extra):
    return create_app({
        "instance_path": tmp_path / "instance",
        "database_url": database_url,
        "keys_dir": keys_dir,
        "base_url": TOOL_URL,
        "secret_key": "test-secret-" + uuid.uuid4().hex,
        "jwks_refetch_interval": 0,
        "extra": {"registration_allow_loopback": True, "admin_token": ADMIN, **extra},
    })


@pytest.fixture
def app(database_url, tool_keys_dir, tmp_path):
    return _make_app(database_url, tool_keys_dir, tmp_path)


@pytest.fixture
def one_db(_sqlite_database):
    """For tests about HTTP behaviour only (nothing stored): one backend is enough."""
    wipe(_sqlite_database)
    yield _sqlite_database
    wipe(_sqlite_database)


@pytest.fixture
def http_client(one_db, tool_keys_dir, tmp_path):
    return _make_app(one_db, tool_keys_dir, tmp_path).test_client()


@pytest.fixture(scope="module")
def lms_keys(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("dr-lms-keys"))


def _serve(app_holder: dict) -> tuple[Any, str]:
    server = make_server("127.0.0.1", 0, lambda e, s: app_holder["app"](e, s), threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@dataclass
class Lms:
    flavor: str
    app: Any
    base: str
    info: dict

    @property
    def ctx(self):
        return self.app.extensions["lti_sandbox"]

    def conn(self):
        return storage.connect(self.ctx.db_path)

    def dynamic(self) -> list[dict]:
        conn = self.conn()
        try:
            return sandbox_dr.dynamic_tools(conn)
        finally:
            conn.close()


@pytest.fixture
def lms_factory(tmp_path, lms_keys):
    servers = []

    def start(flavor: str, issuer: str | None = "self") -> Lms:
        holder: dict = {}
        server, base = _serve(holder)
        servers.append(server)
        app = create_sandbox_app(
            flavor=flavor, base_url=base, tool_url=TOOL_URL,
            db_path=str(tmp_path / f"lms-{flavor}-{len(servers)}.db"),
            key_path=f"{lms_keys}/{flavor}.pem",
            issuer=issuer if flavor == "canvas" else None)
        app.config["TESTING"] = True
        holder["app"] = app
        return Lms(flavor, app, base, seed(app))

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class FakePlatform:
    """A misbehaving platform: serves whatever configuration and registration
    answer a test sets, and records every request."""

    base: str = ""
    config: Any = None              # dict (JSON), bytes (raw), or None (built)
    config_status: int = 200
    register_status: int = 200
    register_body: Any = None
    requests: list = field(default_factory=list)

    def configuration(self) -> dict:
        return {"issuer": self.base,
                "authorization_endpoint": self.base + "/auth",
                "token_endpoint": self.base + "/token",
                "jwks_uri": self.base + "/jwks",
                "registration_endpoint": self.base + "/register",
                "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                    "product_family_code": "moodle", "version": "4.5"}}

    def wsgi(self, environ, start_response):
        request = Request(environ)
        self.requests.append((request.method, request.path,
                              request.headers.get("Authorization")))
        if request.path == "/config":
            body = self.config if self.config is not None else self.configuration()
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = Response(data, status=self.config_status,
                                mimetype="application/json")
        elif request.path == "/register":
            body = self.register_body if self.register_body is not None else {
                "client_id": "fake-client",
                dr.TOOL_CONFIGURATION: {"deployment_id": "1"}}
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = Response(data, status=self.register_status, mimetype="application/json")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)


@pytest.fixture
def fake_platform():
    fake = FakePlatform()
    server = make_server("127.0.0.1", 0, fake.wsgi, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    fake.base = f"http://127.0.0.1:{server.server_port}"
    yield fake
    server.shutdown()
    server.server_close()


# -- helpers -----------------------------------------------------------------------------------


def _text(response) -> str:
    return response.get_data(as_text=True)


def _hidden(page: str) -> dict[str, str]:
    return {html.unescape(k): html.unescape(v) for k, v in HIDDEN.findall(page)}


def sandbox_start(lms: Lms) -> str:
    """The sandbox administrator starts DR; returns the tool URL it frames (a path)."""
    page = lms.app.test_client().post("/sandbox/register",
                                      data={"registration_url": TOOL_URL + "/lti/register"})
    assert page.status_code == 200, _text(page)[:300]
    src = html.unescape(re.search(r'id="tool-frame"[^>]*src="([^"]+)"', _text(page)).group(1))
    assert src.startswith(TOOL_URL + "/lti/register?")
    return src[len(TOOL_URL):]


def register(client, path: str, **overrides):
    page = client.get(path)
    assert page.status_code == 200, _text(page)[:500]
    form = _hidden(_text(page))
    form["accept_first_deployment"] = "1"
    form.update(overrides)
    return client.post("/lti/register", data={k: v for k, v in form.items() if v is not None})


def register_path(configuration_url: str, token: str | None = "tok") -> str:
    params = {"openid_configuration": configuration_url}
    if token is not None:
        params["registration_token"] = token
    return "/lti/register?" + urlencode(params)


def stored_platforms(database_url) -> list[Platform]:
    with session_scope(database_url) as session:
        rows = list(session.scalars(sa.select(Platform).order_by(Platform.id)))
        for row in rows:
            row.deployments  # noqa: B018 (load before the session closes)
        session.expunge_all()
        return rows


def counts(database_url) -> tuple[int, int]:
    with get_engine(database_url).connect() as conn:
        return (conn.execute(sa.text("SELECT COUNT(*) FROM platform")).scalar_one(),
                conn.execute(sa.text("SELECT COUNT(*) FROM deployment")).scalar_one())


def _autopost(page: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form id="autopost" method="post" action="([^"]*)"', page)
    assert action, page[:500]
    return html.unescape(action.group(1)), _hidden(page)


def launch_from_lms(client, lms: Lms, launch_path: str):
    """A teacher opens the tool in the sandbox course: initiation → tool login →
    platform authorization (over the sandbox's own routes) → tool launch."""
    browser = lms.app.test_client()
    signed = browser.post("/session", data={"course_id": lms.info["course_id"],
                                            "user_id": lms.info["teacher_ids"][0]})
    assert signed.status_code == 303
    page = browser.get(launch_path)
    assert page.status_code == 200, _text(page)[:300]
    src = html.unescape(re.search(r'id="tool-frame"[^>]*src="([^"]+)"', _text(page)).group(1))
    action, fields = _autopost(_text(browser.get(src)))
    assert action == TOOL_URL + "/lti/login"
    fields.pop("lti_storage_target", None)   # the cookie path, not platform storage
    first = client.post("/lti/login", data=fields)
    assert first.status_code == 302, _text(first)[:500]
    onward = client.get(first.headers["Location"])
    assert onward.status_code == 302, _text(onward)[:500]
    auth = onward.headers["Location"]
    assert auth.startswith(lms.base)
    platform = lms.app.test_client()   # no sandbox cookie: a cross-site iframe
    answer = platform.get(auth[len(lms.base):])
    if answer.status_code == 302:       # Canvas: sso host → the school's /api/lti/authorize
        location = answer.headers["Location"]
        assert location.startswith(lms.base)
        answer = platform.get(location[len(lms.base):])
    action, fields = _autopost(_text(answer))
    assert action == TOOL_URL + "/lti/launch" and "id_token" in fields, fields
    fields.pop("lti_storage_target", None)
    return client.post("/lti/launch", data=fields)


def nav_path(lms: Lms, tool_id: int) -> str:
    return f"/courses/{lms.info['course_id']}/launch/nav?tool={tool_id}"


def activity_path(lms: Lms, tool_id: int) -> str:
    conn = lms.conn()
    try:
        rl = conn.execute("SELECT id FROM resource_links WHERE registration_id = ?",
                          (tool_id,)).fetchone()
    finally:
        conn.close()
    return f"/courses/{lms.info['course_id']}/launch/link/{rl['id']}"


# -- the full registration, then launches ------------------------------------------------------


def test_canvas_registration_then_first_launch_takes_its_deployment(client, lms_factory,
                                                                    database_url):
    lms = lms_factory("canvas")
    path = sandbox_start(lms)
    page = client.get(path)
    body = _text(page)
    assert page.status_code == 200 and "Register Pathwise" in body
    for expected in ("https://tool.test/lti/login", "https://tool.test/lti/launch",
                     "https://tool.test/.well-known/jwks.json", "assignment_selection",
                     "link_selection", "editor_button", "course_navigation",
                     "lti-ags/scope/score", "contextmembership.readonly"):
        assert expected in body
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https: " + lms.base in csp

    done = register(client, path)
    text = _text(done)
    assert done.status_code == 200, text[:800]
    assert "org.imsglobal.lti.close" in text and "window.opener || window.parent" in text
    assert "close this window" in text
    nonce = re.search(r"'nonce-([^']+)'", done.headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in text

    # The LMS created the tool with what Pathwise asked for.
    [tool] = lms.dynamic()
    assert set(tool["placements"]) == {"assignment_selection", "link_selection",
                                      "editor_button", "course_navigation"}
    conn = lms.conn()
    try:
        reg = storage.get_registration(conn, tool["id"])
        stored = json.loads(conn.execute("SELECT body FROM dynamic_registrations").fetchone()[0])
    finally:
        conn.close()
    assert reg["redirect_uris"] == [TOOL_URL + "/lti/launch"]
    assert reg["login_url"] == TOOL_URL + "/lti/login"
    assert reg["jwks_url"] == TOOL_URL + "/.well-known/jwks.json"
    assert len(reg["scopes"]) == 5
    config = stored[dr.TOOL_CONFIGURATION]
    assert config[dr.CANVAS + "privacy_level"] == "public"
    assert config["domain"] == "tool.test"
    assert stored["logo_uri"] == TOOL_URL + "/static/pathwise-icon.svg"

    # Pathwise stored the platform, without a deployment (Canvas sends none).
    [platform] = stored_platforms(database_url)
    assert platform.issuer == lms.base and platform.client_id == reg["client_id"]
    assert platform.auth_login_url == lms.base + "/api/lti/authorize_redirect"
    assert platform.auth_token_url == lms.base + "/login/oauth2/token"
    assert platform.jwks_url == lms.base + "/api/lti/security/jwks"
    assert platform.name == "Sandbox School District"
    assert platform.registered_via == "dynamic" and platform.accept_first_deployment
    assert platform.deployments == []

    # The first launch records its deployment and clears the flag.
    first = launch_from_lms(client, lms, nav_path(lms, tool["id"]))
    assert first.status_code == 303, _text(first)[:800]
    [platform] = stored_platforms(database_url)
    assert [d.deployment_id for d in platform.deployments] == [reg["deployment_id"]]
    assert not platform.accept_first_deployment
    again = launch_from_lms(client, lms, nav_path(lms, tool["id"]))
    assert again.status_code == 303

    # Another deployment (installed elsewhere) is refused until an administrator adds it.
    conn = lms.conn()
    try:
        conn.execute("UPDATE registrations SET deployment_id = ? WHERE id = ?",
                     (f"{tool['id']}:{'c' * 40}", tool["id"]))
    finally:
        conn.close()
    other = launch_from_lms(client, lms, nav_path(lms, tool["id"]))
    assert other.status_code == 403 and error_code(other) == "UNKNOWN_DEPLOYMENT"
    assert counts(database_url) == (1, 1)


def test_moodle_registration_stores_the_deployment_and_launches(client, lms_factory,
                                                                database_url):
    lms = lms_factory("moodle")
    done = register(client, sandbox_start(lms))
    assert done.status_code == 200, _text(done)[:800]
    assert "activate Pathwise" in _text(done)
    [tool] = lms.dynamic()
    [platform] = stored_platforms(database_url)
    assert platform.issuer == lms.base
    assert platform.client_id == tool["client_id"] and len(tool["client_id"]) == 15
    assert [d.deployment_id for d in platform.deployments] == [tool["deployment_id"]]
    assert not platform.accept_first_deployment
    assert platform.auth_login_url == lms.base + "/mod/lti/auth.php"
    assert platform.registration_info["product_family_code"] == "moodle"
    assert platform.name == f"Moodle ({urlsplit(lms.base).netloc})"

    response = launch_from_lms(client, lms, activity_path(lms, tool["id"]))
    assert response.status_code == 303, _text(response)[:800]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and "Dolores" in _text(page)


def test_moodle_sent_the_domain_of_the_launch_url(client, lms_factory):
    lms = lms_factory("moodle")
    assert register(client, sandbox_start(lms)).status_code == 200
    conn = lms.conn()
    try:
        body = json.loads(conn.execute("SELECT body FROM dynamic_registrations").fetchone()[0])
    finally:
        conn.close()
    config = body[dr.TOOL_CONFIGURATION]
    assert config["domain"] == "tool.test"
    assert config["target_link_uri"] == TOOL_URL + "/lti/launch"
    assert [m["type"] for m in config["messages"]] == ["LtiDeepLinkingRequest"]
    assert dr.CANVAS + "privacy_level" not in config


def test_without_permission_canvas_launches_wait_for_an_administrator(client, lms_factory,
                                                                      database_url):
    lms = lms_factory("canvas")
    done = register(client, sandbox_start(lms), accept_first_deployment=None)
    assert done.status_code == 200 and "lti-tool platform add" in _text(done)
    [platform] = stored_platforms(database_url)
    assert not platform.accept_first_deployment and platform.deployments == []
    [tool] = lms.dynamic()
    refused = launch_from_lms(client, lms, nav_path(lms, tool["id"]))
    assert refused.status_code == 403 and error_code(refused) == "UNKNOWN_DEPLOYMENT"
    assert counts(database_url) == (1, 0)


# -- failures: a clear page, nothing stored --------------------------------------------------


def _refused(response, status: int, code: str, one_db) -> str:
    text = _text(response)
    assert response.status_code == status, text[:800]
    assert error_code(response) == code, text[:800]
    assert "Nothing was saved" in text
    assert counts(one_db) == (0, 0)
    return text


def test_issuer_whose_host_is_not_the_configuration_host(http_client, lms_factory, one_db):
    lms = lms_factory("canvas", issuer=None)   # hosted issuer, served from 127.0.0.1
    text = _refused(register(http_client, sandbox_start(lms)), 502, "ISSUER_MISMATCH", one_db)
    assert "https://canvas.instructure.com" in text
    assert lms.dynamic() == []


def test_registration_endpoint_on_another_host(http_client, fake_platform, one_db):
    fake_platform.config = {**fake_platform.configuration(),
                            "registration_endpoint": "https://evil.example/register"}
    response = register(http_client, register_path(fake_platform.base + "/config"))
    text = _refused(response, 502, "REGISTRATION_ENDPOINT_MISMATCH", one_db)
    assert "evil.example" in text
    assert [r[1] for r in fake_platform.requests] == ["/config"]


def test_configuration_not_json(http_client, fake_platform, one_db):
    fake_platform.config = b"<html>maintenance</html>"
    _refused(register(http_client, register_path(fake_platform.base + "/config")), 502,
             "PLATFORM_NOT_JSON", one_db)


@pytest.mark.parametrize("where,status", [("config", 404), ("config", 503),
                                          ("register", 400), ("register", 500)])
def test_platform_answers_an_error(http_client, fake_platform, one_db, where, status):
    if where == "config":
        fake_platform.config_status = status
    else:
        fake_platform.register_status = status
        fake_platform.register_body = b"missing required attribute jwks_uri"
    text = _refused(register(http_client, register_path(fake_platform.base + "/config")), 502,
                    "PLATFORM_ERROR", one_db)
    assert f"HTTP {status}" in text
    if where == "register":
        assert "missing required attribute jwks_uri" in text
        # The token went to the registration endpoint as a Bearer, as to the configuration.
        assert [r[2] for r in fake_platform.requests] == ["Bearer tok", "Bearer tok"]


def test_registration_answer_without_client_id(http_client, fake_platform, one_db):
    fake_platform.register_body = {"scope": ""}
    _refused(register(http_client, register_path(fake_platform.base + "/config")), 502,
             "REGISTRATION_RESPONSE_INVALID", one_db)


def test_platform_redirect_is_not_followed(http_client, fake_platform, one_db):
    fake_platform.config_status = 302
    _refused(register(http_client, register_path(fake_platform.base + "/config")), 502,
             "PLATFORM_REDIRECTED", one_db)


def test_canvas_refuses_a_missing_token(http_client, lms_factory, one_db):
    lms = lms_factory("canvas")
    path = register_path(sandbox_dr.configuration_url(lms.ctx), token=None)
    text = _refused(register(http_client, path), 502, "REGISTRATION_TOKEN_REFUSED", one_db)
    assert "Missing registration token" in text
    assert lms.dynamic() == []


@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_expired_token_is_refused_by_the_lms(http_client, lms_factory, one_db, flavor):
    lms = lms_factory(flavor)
    token = sandbox_dr.issue_token(lms.ctx, lifetime=-10)
    path = register_path(sandbox_dr.configuration_url(lms.ctx, token), token)
    text = _refused(register(http_client, path), 502, "REGISTRATION_TOKEN_REFUSED", one_db)
    assert "expired" in text
    assert lms.dynamic() == []


def test_forged_post_without_or_with_a_foreign_form_token(http_client, fake_platform, one_db):
    url = fake_platform.base + "/config"
    forged = http_client.post("/lti/register", data={"openid_configuration": url,
                                                "registration_token": "tok"})
    _refused(forged, 403, "FORM_TOKEN_MISSING", one_db)
    # A form token issued for another configuration URL (or token) does not fit.
    other = _hidden(_text(http_client.get(register_path(fake_platform.base + "/other"))))
    swapped = http_client.post("/lti/register", data={"openid_configuration": url,
                                                 "registration_token": "tok",
                                                 "form_token": other["form_token"]})
    _refused(swapped, 403, "FORM_TOKEN_INVALID", one_db)
    page = _hidden(_text(http_client.get(register_path(url))))
    cross = http_client.post("/lti/register", data=page, headers={"Sec-Fetch-Site": "cross-site"})
    _refused(cross, 403, "CROSS_SITE_REQUEST", one_db)
    assert fake_platform.requests == []   # nothing was fetched


@pytest.mark.parametrize("url,code", [
    ("", "MISSING_OPENID_CONFIGURATION"),
    ("http://lms.example.edu/config", "OPENID_CONFIGURATION_INVALID"),
    ("javascript:alert(1)", "OPENID_CONFIGURATION_INVALID"),
    ("https://10.0.0.5/config", "OPENID_CONFIGURATION_INVALID"),
    ("https://169.254.169.254/latest", "OPENID_CONFIGURATION_INVALID"),
])
def test_bad_configuration_url_is_refused_before_anything_is_fetched(http_client, url, code):
    response = http_client.get("/lti/register?" + urlencode({"openid_configuration": url}))
    assert response.status_code == 400 and error_code(response) == code


def test_loopback_platforms_only_when_allowed(one_db, tool_keys_dir, tmp_path,
                                              fake_platform):
    app = _make_app(one_db, tool_keys_dir, tmp_path, registration_allow_loopback=False)
    response = app.test_client().get(register_path(fake_platform.base + "/config"))
    assert response.status_code == 400
    assert error_code(response) == "OPENID_CONFIGURATION_INVALID"


def test_registration_attempts_are_rate_limited(one_db, tool_keys_dir, tmp_path,
                                                fake_platform):
    app = _make_app(one_db, tool_keys_dir, tmp_path,
                    rate_limits={"register": "2/minute"})
    client = app.test_client()
    fake_platform.config_status = 500
    for _ in range(2):
        assert register(client, register_path(fake_platform.base + "/config")).status_code == 502
    limited = register(client, register_path(fake_platform.base + "/config"))
    assert limited.status_code == 429 and error_code(limited) == "TOO_MANY_REGISTRATIONS"
    assert int(limited.headers["Retry-After"]) >= 1
    assert len(fake_platform.requests) == 2


# -- host rules (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint,config,ok", [
    # Canvas: configuration on the issuer host, registration on the school's domain (A7).
    ("https://school.instructure.com/api/lti/registrations",
     "https://canvas.instructure.com/api/lti/security/openid-configuration", True),
    ("https://school.beta.instructure.com/api/lti/registrations",
     "https://canvas.beta.instructure.com/api/lti/security/openid-configuration", True),
    # Moodle: one host for everything (B6).
    ("https://moodle.example.edu/mod/lti/openid-registration.php",
     "https://moodle.example.edu/mod/lti/openid-configuration.php", True),
    ("http://127.0.0.1:5101/register", "http://127.0.0.1:5101/config", True),
    ("https://evil.example/register", "https://canvas.instructure.com/config", False),
    ("https://instructure.com.evil.example/r", "https://canvas.instructure.com/config", False),
    ("https://other.example.com/r", "https://example.com/config", False),
    ("https://evil.co.uk/r", "https://school.co.uk/config", False),
    ("https://lms.school.co.uk/r", "https://moodle.school.co.uk/config", True),
    ("http://127.0.0.1:9999/register", "http://127.0.0.1:5101/config", False),
    ("http://school.instructure.com/r", "https://canvas.instructure.com/config", False),
])
def test_registration_endpoint_site_rule(endpoint, config, ok):
    assert dr.same_site(endpoint, config) is ok


# -- the first deployment, exactly once -------------------------------------------------------


@pytest.fixture
def waiting_canvas(app, jwks_server):
    """A Canvas registered dynamically: no deployment yet, the flag set."""
    jwks_server.mode = "ok"
    flavor = canvas_flavor()
    platform = TestPlatform(flavor, jwks_server, TOOL_URL)
    reg = platform.registration()
    with session_scope(app.config["SETTINGS"].database_url) as session:
        session.add(Platform(issuer=reg["issuer"], client_id=reg["client_id"], name="Canvas",
                             auth_login_url=reg["auth_login_url"],
                             auth_token_url=reg["auth_token_url"], jwks_url=reg["jwks_url"],
                             registered_via="dynamic", accept_first_deployment=True))
    return platform


def _prepared(app, platform, deployment_id: str):
    client = app.test_client()
    started = login(client, platform, lti_deployment_id=deployment_id)
    token = platform.sign(platform.claims(started.nonce, **{LTI + "deployment_id": deployment_id}))
    return client, token, started.state


def _race(attempts) -> list[int]:
    results: list[int] = []
    barrier = threading.Barrier(len(attempts))

    def run(client, token, state):
        barrier.wait()
        results.append(post_launch(client, token, state).status_code)

    threads = [threading.Thread(target=run, args=a) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


def test_two_concurrent_first_launches_of_one_deployment_both_succeed(app, waiting_canvas,
                                                                      database_url):
    attempts = [_prepared(app, waiting_canvas, "5:" + "a" * 40) for _ in range(2)]
    assert _race(attempts) == [303, 303]
    [platform] = stored_platforms(database_url)
    assert [d.deployment_id for d in platform.deployments] == ["5:" + "a" * 40]
    assert not platform.accept_first_deployment


def test_two_concurrent_first_launches_of_different_deployments_one_wins(app, waiting_canvas,
                                                                         database_url):
    attempts = [_prepared(app, waiting_canvas, f"{n}:" + "b" * 40) for n in (5, 6)]
    assert _race(attempts) == [303, 403]
    [platform] = stored_platforms(database_url)
    assert len(platform.deployments) == 1 and not platform.accept_first_deployment


def test_a_refused_first_launch_records_no_deployment(client, waiting_canvas, database_url):
    started = login(client, waiting_canvas)
    claims = waiting_canvas.claims(started.nonce,
                                   **{LTI + "target_link_uri": "https://evil.example/x"})
    response = post_launch(client, waiting_canvas.sign(claims), started.state)
    assert response.status_code == 422 and error_code(response) == "INVALID_TARGET_LINK_URI"
    [platform] = stored_platforms(database_url)
    assert platform.accept_first_deployment and platform.deployments == []


def test_manual_registrations_never_take_an_unknown_deployment(client, canvas, database_url):
    started = login(client, canvas)
    claims = canvas.claims(started.nonce, **{LTI + "deployment_id": "99:" + "d" * 40})
    response = post_launch(client, canvas.sign(claims), started.state)
    assert response.status_code == 403 and error_code(response) == "UNKNOWN_DEPLOYMENT"


# -- the administrator -------------------------------------------------------------------------


BEARER = {"Authorization": f"Bearer {ADMIN}"}


def test_admin_pages_refuse_without_the_token(client, platforms):
    for path in ("/admin/registrations",):
        bare = client.get(path)
        assert bare.status_code == 401 and "Bearer" in bare.headers["WWW-Authenticate"]
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/admin/registrations/1/active", data={"active": "0"}).status_code == 401
    assert client.post("/admin/registrations/1/active", data={"active": "0"},
                       headers={"Authorization": "Bearer nope"}).status_code == 401
    # A cookie that was not signed by this tool counts for nothing.
    client.set_cookie("__Host-pathwise_admin", "forged")
    assert client.get("/admin/registrations").status_code == 401


def test_admin_lists_registrations_with_a_bearer_token(client, platforms):
    page = client.get("/admin/registrations", headers=BEARER)
    text = _text(page)
    assert page.status_code == 200
    assert "https://canvas.instructure.com" in text and "10000000000042" in text
    assert "87:4dde05e8ca1973bcca9bffc13e1548820eee93a3" in text
    assert "By hand" in text and "Disable" in text
    assert page.headers["Content-Security-Policy"].endswith("frame-ancestors 'self'")
    data = client.get("/admin/registrations",
                      headers={**BEARER, "Accept": "application/json"}).get_json()
    assert {p["client_id"] for p in data["platforms"]} == {"10000000000042", "aB3dE5fG7hI9jK1"}


def test_admin_sign_in_form_sets_a_strict_cookie_and_forms_need_the_csrf_token(
        client, platforms, database_url):
    form = _hidden(_text(client.get("/admin/login")))
    wrong = client.post("/admin/login", data={**form, "token": "nope"})
    assert wrong.status_code == 401
    no_csrf = client.post("/admin/login", data={"token": ADMIN})
    assert no_csrf.status_code == 403
    signed = client.post("/admin/login", data={**form, "token": ADMIN})
    assert signed.status_code == 303
    cookie = signed.headers["Set-Cookie"]
    assert cookie.startswith("__Host-pathwise_admin=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie

    page = client.get("/admin/registrations")
    assert page.status_code == 200
    moodle_id = next(p.id for p in stored_platforms(database_url)
                     if p.client_id != "10000000000042")
    csrf = _hidden(_text(page))["csrf_token"]
    refused = client.post(f"/admin/registrations/{moodle_id}/active", data={"active": "0"})
    assert refused.status_code == 403
    cross = client.post(f"/admin/registrations/{moodle_id}/active",
                        data={"active": "0", "csrf_token": csrf},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert all(p.active for p in stored_platforms(database_url))
    done = client.post(f"/admin/registrations/{moodle_id}/active",
                       data={"active": "0", "csrf_token": csrf})
    assert done.status_code == 303
    assert [p.active for p in stored_platforms(database_url) if p.id == moodle_id] == [False]


def test_disable_refuses_launches_and_enable_restores_them(client, canvas, database_url):
    platform_id = next(p.id for p in stored_platforms(database_url)
                       if p.client_id == canvas.flavor.client_id)
    in_flight = login(client, canvas)   # logged in before the administrator acts
    assert client.post(f"/admin/registrations/{platform_id}/active", data={"active": "0"},
                       headers=BEARER).status_code == 303
    token = canvas.sign(canvas.claims(in_flight.nonce))
    refused = post_launch(client, token, in_flight.state)
    assert refused.status_code == 403 and error_code(refused) == "PLATFORM_DISABLED"
    new_login = client.post("/lti/login", data=canvas.login_params())
    # Known but disabled, not "unknown issuer": the administrator is told what to do.
    assert new_login.status_code == 403 and error_code(new_login) == "PLATFORM_DISABLED"
    assert "/admin/registrations" in _text(new_login)
    listed = _text(client.get("/admin/registrations", headers=BEARER))
    assert "Disabled" in listed and "Enable" in listed

    assert client.post(f"/admin/registrations/{platform_id}/active", data={"active": "1"},
                       headers=BEARER).status_code == 303
    started = login(client, canvas)
    assert post_launch(client, canvas.sign(canvas.claims(started.nonce)),
                       started.state).status_code == 303


def test_review_page_shows_how_a_platform_was_registered(client, lms_factory):
    lms = lms_factory("canvas")
    assert register(client, sandbox_start(lms)).status_code == 200
    text = _text(client.get("/admin/registrations", headers=BEARER))
    assert "Dynamic registration (canvas)" in text
    assert "Accepts the deployment of the first launch" in text
    assert "Sandbox School District" in text


def test_admin_token_from_the_environment_or_the_instance_folder(
        database_url, tool_keys_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LTI_TOOL_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("LTI_TOOL_DATABASE_URL", database_url)
    monkeypatch.delenv(dr.ADMIN_TOKEN_ENV, raising=False)
    printed = CliRunner().invoke(cli_main, ["admin-token"]).output.strip()
    assert len(printed) >= 40
    assert (tmp_path / "instance" / "admin_token").read_text().strip() == printed
    assert CliRunner().invoke(cli_main, ["admin-token"]).output.strip() == printed
    app = create_app({"instance_path": tmp_path / "instance", "database_url": database_url,
                      "keys_dir": tool_keys_dir, "base_url": TOOL_URL, "secret_key": "s" * 40})
    client = app.test_client()
    assert client.get("/admin/registrations",
                      headers={"Authorization": f"Bearer {printed}"}).status_code == 200
    monkeypatch.setenv(dr.ADMIN_TOKEN_ENV, "from-the-environment")
    assert CliRunner().invoke(cli_main, ["admin-token"]).output.strip() == "from-the-environment"
    assert client.get("/admin/registrations",
                      headers={"Authorization": f"Bearer {printed}"}).status_code == 401
    assert client.get("/admin/registrations",
                      headers={"Authorization": "Bearer from-the-environment"}).status_code == 200
