"""End to end: `lti-tool init`, `platform add` and `serve` (gunicorn, two
workers) as an operator runs them, then launches over real HTTP on loopback.

Everything that must hold across processes is checked here and only here: the
OIDC state and nonce written by one worker are honoured (and used up) by any
other, and key rotation reaches every worker without a restart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.support.http_launch import (
    HttpLauncher,
    ServerProcess,
    error_code,
    free_port,
    tool_env,
)
from tests.support.platform import JwksServer, TestPlatform, canvas_flavor, moodle_flavor

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}
# gunicorn reads extra options from this variable: the access log names the
# worker pid (so a test can tell which worker answered), and no control socket
# in ~/.gunicorn, which another gunicorn on this machine may be using.
GUNICORN_CMD_ARGS = ("--no-control-socket --access-logfile - "
                     "--access-logformat 'pid=%(p)s \"%(r)s\" %(s)s'")


@dataclass
class ServedTool:
    base_url: str
    env: dict[str, str]
    platforms: dict[str, TestPlatform]
    server: ServerProcess

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `lti-tool ARGS` against this install, failing with its output."""
        return run_cli(self.env, *args)

    def launcher(self, flavor: str) -> HttpLauncher:
        return HttpLauncher(self.base_url, self.platforms[flavor])

    def worker_pids(self, request_line: str, status: int) -> list[str]:
        """Pids of the workers that answered `request_line` with `status`."""
        pattern = rf'pid=<(\d+)> "{re.escape(request_line)} HTTP/1.1" {status}'
        return re.findall(pattern, self.server.log_tail(10**7))


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "lti_tool.cli", *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"lti-tool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedTool]:
    root = tmp_path_factory.mktemp("served")
    port = free_port()
    # 127.0.0.1 rather than localhost: no IPv6-first connection attempts.
    base_url = f"http://127.0.0.1:{port}"
    env = tool_env(root, base_url)
    run_cli(env, "init")

    jwks = JwksServer()
    server = None
    try:
        platforms = {"canvas": TestPlatform(canvas_flavor(), jwks, base_url),
                     "moodle": TestPlatform(moodle_flavor(), jwks, base_url)}
        for platform in platforms.values():
            reg = platform.registration()
            out = run_cli(env, "platform", "add", "--issuer", reg["issuer"],
                          "--client-id", reg["client_id"],
                          "--auth-login-url", reg["auth_login_url"],
                          "--auth-token-url", reg["auth_token_url"],
                          "--jwks-url", reg["jwks_url"],
                          "--deployment-id", reg["deployment_ids"][0],
                          "--name", reg["name"])
            added = json.loads(out.stdout)
            assert added["issuer"] == reg["issuer"]
            assert added["client_id"] == reg["client_id"]
            assert added["jwks_url"] == jwks.url
            assert added["active"] is True
            assert added["deployments"] == [{"deployment_id": reg["deployment_ids"][0],
                                             "active": True}]
        listed = json.loads(run_cli(env, "platform", "list").stdout)
        assert {p["issuer"] for p in listed} == {p.flavor.issuer for p in platforms.values()}

        server = ServerProcess(
            [sys.executable, "-m", "lti_tool.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "2"],
            env={**env, "GUNICORN_CMD_ARGS": GUNICORN_CMD_ARGS}, log_path=root / "serve.log")
        server.wait_ready(base_url + "/healthz")
        yield ServedTool(base_url=base_url, env=env, platforms=platforms, server=server)
    finally:
        if server is not None:
            server.stop()
        jwks.close()


@pytest.mark.parametrize("role", ["teacher", "student"])
@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_launch_greets_by_name(served: ServedTool, flavor: str, role: str) -> None:
    launcher = served.launcher(flavor)
    try:
        result = launcher.launch(role=role)
    finally:
        launcher.close()
    assert result.launch_response.status_code == 303
    assert result.page.url.startswith(served.base_url + "/home?t=")
    name = "Grace Hopper" if role == "teacher" else "Ada Lovelace"
    assert f"Hello, {name}" in result.page.text


def test_healthz_reports_database(served: ServedTool) -> None:
    response = requests.get(served.base_url + "/healthz", timeout=5)
    assert response.json() == {"status": "ok", "database": "ok"}


def test_jwks_publishes_public_key_only(served: ServedTool) -> None:
    response = requests.get(served.base_url + "/.well-known/jwks.json", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert {"kid", "kty", "n", "e", "alg", "use"} <= key.keys()
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
        assert not PRIVATE_MEMBERS & key.keys(), f"private key material published: {key}"


def test_replayed_launch_is_refused_by_every_worker(served: ServedTool) -> None:
    """The state and nonce live in the database: whichever worker receives the
    replay refuses it. Each replay uses a new connection, so gunicorn's workers
    share them out (a kept-alive connection would pin one worker); replays go on
    until both workers have refused one, which the access log (pid) shows."""
    launcher = served.launcher("moodle")
    try:
        first = launcher.launch()
    finally:
        launcher.close()
    before = len(served.worker_pids("POST /lti/launch", 401))
    refused_by: set[str] = set()
    for attempt in range(1, 21):
        replayer = served.launcher("moodle")
        try:
            replay = replayer.post_launch(first.id_token, first.state, first.cookies)
        finally:
            replayer.close()
        assert replay.status_code == 401, replay.text[:300]
        assert error_code(replay) == "STATE_ALREADY_USED"
        assert "Location" not in replay.headers
        assert "pathwise_session" not in replay.headers.get("Set-Cookie", "")
        deadline = time.monotonic() + 2   # the access log line lands just after
        while True:
            pids = served.worker_pids("POST /lti/launch", 401)[before:]
            if len(pids) >= attempt or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        refused_by = set(pids)
        if len(refused_by) >= 2:
            break
    assert len(refused_by) >= 2, f"all replays reached one worker: {refused_by}"


def _kids(served: ServedTool) -> set[str]:
    response = requests.get(served.base_url + "/.well-known/jwks.json", timeout=5)
    assert response.status_code == 200
    return {key["kid"] for key in response.json()["keys"]}


def test_key_rotation_reaches_running_workers(served: ServedTool) -> None:
    old = json.loads(served.cli("keys", "list").stdout)["signing"]
    # Several fetches over fresh connections, so both workers are asked.
    assert all(_kids(served) == {old} for _ in range(4))

    new = json.loads(served.cli("keys", "rotate").stdout)["signing"]
    assert new != old
    assert all(_kids(served) == {old, new} for _ in range(4))

    retired = json.loads(served.cli("keys", "retire", old).stdout)
    assert retired["active"] == [new]
    assert all(_kids(served) == {new} for _ in range(4))

    # Launches do not depend on the tool's own key: still fine after rotation.
    launcher = served.launcher("canvas")
    try:
        launcher.launch(role="teacher")
    finally:
        launcher.close()
