"""The `lti-tool` commands, run as an administrator would."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lti_tool.cli import main
from lti_tool.db import dispose_engines


@pytest.fixture
def cli_env(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("LTI_TOOL_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("LTI_TOOL_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("LTI_TOOL_DATABASE_URL", database_url)
    yield tmp_path
    dispose_engines()


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


ADD = ["platform", "add", "--issuer", "https://canvas.instructure.com",
       "--client-id", "10000000000042",
       "--auth-login-url", "https://sso.canvaslms.com/api/lti/authorize_redirect",
       "--auth-token-url", "https://sso.canvaslms.com/login/oauth2/token",
       "--jwks-url", "https://sso.canvaslms.com/api/lti/security/jwks",
       "--deployment-id", "87:abc", "--deployment-id", "88:def", "--name", "District Canvas"]


def test_init_is_idempotent_and_creates_a_key(cli_env):
    first = run("init")
    assert first.exit_code == 0 and "created signing key" in first.output
    second = run("init")
    assert second.exit_code == 0 and "signing key present" in second.output
    listing = json.loads(run("keys", "list").output)
    assert listing["signing"] in listing["active"]


def test_platform_add_and_list(cli_env):
    result = run(*ADD)
    assert result.exit_code == 0, result.output
    added = json.loads(result.output)
    assert added["client_id"] == "10000000000042"
    assert [d["deployment_id"] for d in added["deployments"]] == ["87:abc", "88:def"]
    # Same issuer, another school's client id: a second registration.
    other = [*ADD[:5], "10000000000077", *ADD[6:]]
    assert run(*other).exit_code == 0
    # Adding again updates and adds deployments, never duplicates.
    again = run(*ADD[:-4], "--deployment-id", "89:ghi")
    assert [d["deployment_id"] for d in json.loads(again.output)["deployments"]] == \
        ["87:abc", "88:def", "89:ghi"]
    listed = json.loads(run("platform", "list").output)
    assert [p["client_id"] for p in listed] == ["10000000000042", "10000000000077"]


@pytest.mark.parametrize("bad,message", [
    (["--auth-login-url", "javascript:alert(1)"], "--auth-login-url"),
    (["--jwks-url", "http://lms.example/jwks"], "https"),
    (["--deployment-id", " "], "--deployment-id"),
])
def test_platform_add_refuses_bad_input_and_writes_nothing(cli_env, bad, message):
    args = list(ADD)
    index = args.index(bad[0])
    args[index + 1] = bad[1]
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert json.loads(run("platform", "list").output) == []


def test_keys_rotate_and_retire(cli_env):
    run("init")
    old = json.loads(run("keys", "list").output)["signing"]
    rotated = json.loads(run("keys", "rotate").output)
    assert rotated["signing"] != old and old in rotated["active"]
    refused = run("keys", "retire", rotated["signing"])
    assert refused.exit_code == 1 and "signing key" in refused.output
    retired = json.loads(run("keys", "retire", old).output)
    assert retired["active"] == [rotated["signing"]]


def test_recompute(cli_env):
    run("init")
    result = run("recompute")
    assert result.exit_code == 0 and json.loads(result.output) == {"courses": 0, "rollups": 0}
    missing = run("recompute", "--course", "999")
    assert missing.exit_code == 1 and "no course with id 999" in missing.output
