"""The tool's own keys: creation, JWKS, rotation, retirement, caching."""

from __future__ import annotations

import stat

import jwt
import pytest

from lti_tool.launch import keys


def test_init_creates_one_private_key_with_mode_600(tmp_path):
    kid = keys.ensure_key(tmp_path)
    assert kid and keys.ensure_key(tmp_path) is None  # idempotent
    pem = tmp_path / f"{kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert keys.load(tmp_path).signing.private_key.key_size == 2048


def test_jwks_has_public_members_only(tmp_path):
    keys.ensure_key(tmp_path)
    (jwk,) = keys.load(tmp_path).jwks()["keys"]
    assert {"kid", "kty", "n", "e", "alg", "use"} <= set(jwk)
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


def test_rotate_then_retire(tmp_path):
    old = keys.ensure_key(tmp_path)
    new = keys.rotate(tmp_path)
    keyset = keys.load(tmp_path)
    assert keyset.signing.kid == new
    assert [k["kid"] for k in keyset.jwks()["keys"]] == [old, new]
    token = keyset.sign({"hello": "world"})
    assert jwt.get_unverified_header(token)["kid"] == new
    with pytest.raises(keys.KeyFolderError, match="signing key"):
        keys.retire(tmp_path, new)
    keys.retire(tmp_path, old)
    assert [k["kid"] for k in keys.load(tmp_path).jwks()["keys"]] == [new]
    assert (tmp_path / "retired" / f"{old}.pem").exists()
    with pytest.raises(keys.KeyFolderError, match="no active key"):
        keys.retire(tmp_path, old)


def test_keys_are_parsed_once_until_they_change(tmp_path):
    keys.ensure_key(tmp_path)
    first = keys.load(tmp_path)
    assert keys.load(tmp_path) is first
    keys.rotate(tmp_path)
    assert keys.load(tmp_path) is not first


def test_missing_keys_say_what_to_run(tmp_path):
    with pytest.raises(keys.KeyFolderError, match="lti-tool init"):
        keys.load(tmp_path / "empty")


def test_jwks_endpoint(client, app):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["Cache-Control"]
    kids = [k["kid"] for k in response.get_json()["keys"]]
    assert keys.load(app.config["SETTINGS"].keys_dir).signing.kid in kids
