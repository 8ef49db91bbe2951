"""The tool's RSA signing keys: creation, rotation, retirement and the JWKS.

Layout of the keys folder:
  keys.json          {"signing": kid, "active": [kid, ...]}  (which keys are published)
  <kid>.pem          private key, mode 600, never committed
  retired/<kid>.pem  keys taken out of the JWKS

Parsing a PEM private key costs tens of milliseconds, so a process parses
them once and reuses them until `keys.json` changes (a cheap stat per use).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MANIFEST = "keys.json"


class KeyFolderError(Exception):
    """A problem with the key folder an operator must fix."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    private_pem: str

    def public_jwk(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                "n": jwk["n"], "e": jwk["e"]}


@dataclass(frozen=True)
class KeySet:
    signing: SigningKey
    active: tuple[SigningKey, ...]

    def jwks(self) -> dict:
        return {"keys": [k.public_jwk() for k in self.active]}

    def sign(self, claims: dict, headers: dict | None = None) -> str:
        """RS256 with the current signing key's kid in the header."""
        return jwt.encode(claims, self.signing.private_key, algorithm="RS256",
                          headers={"kid": self.signing.kid, **(headers or {})})


def _new_kid() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


def _write_private(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f".{MANIFEST}.{secrets.token_hex(4)}"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, folder / MANIFEST)


class _FolderLock:
    """An exclusive lock file, so two processes never rotate at once."""

    def __init__(self, folder: Path):
        self.path = folder / ".lock"

    def __enter__(self):
        import fcntl

        self.fh = open(self.path, "a")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _add_key(folder: Path, manifest: dict | None) -> str:
    kid = _new_kid()
    _write_private(folder / f"{kid}.pem", rsa.generate_private_key(public_exponent=65537,
                                                                   key_size=2048))
    active = list((manifest or {}).get("active", [])) + [kid]
    _write_manifest(folder, {"signing": kid, "active": active})
    return kid


def ensure_key(folder: Path) -> str | None:
    """Create the first signing key when none exists; returns its kid, or None."""
    folder.mkdir(parents=True, exist_ok=True)
    with _FolderLock(folder):
        if _read_manifest(folder) is not None:
            return None
        return _add_key(folder, None)


def rotate(folder: Path) -> str:
    """Add a key that becomes the signing key; older keys stay published."""
    folder.mkdir(parents=True, exist_ok=True)
    with _FolderLock(folder):
        return _add_key(folder, _read_manifest(folder))


def retire(folder: Path, kid: str) -> None:
    """Take a key out of the JWKS. The signing key cannot be retired."""
    with _FolderLock(folder):
        manifest = _read_manifest(folder)
        if manifest is None or kid not in manifest["active"]:
            raise KeyFolderError(f"no active key with kid {kid!r}")
        if manifest["signing"] == kid:
            raise KeyFolderError(f"{kid} is the signing key: run `lti-tool keys rotate` first")
        retired = folder / "retired"
        retired.mkdir(exist_ok=True)
        src = folder / f"{kid}.pem"
        if src.exists():
            os.replace(src, retired / src.name)
        manifest["active"] = [k for k in manifest["active"] if k != kid]
        _write_manifest(folder, manifest)


def describe(folder: Path) -> dict:
    manifest = _read_manifest(folder) or {"signing": None, "active": []}
    return {"signing": manifest["signing"], "active": manifest["active"]}


_cache: dict[str, tuple[int, KeySet]] = {}
_cache_lock = threading.Lock()


def load(folder: Path) -> KeySet:
    """The published keys, parsed once per process per change of keys.json."""
    manifest_path = folder / MANIFEST
    try:
        stamp = manifest_path.stat().st_mtime_ns
    except FileNotFoundError:
        raise KeyFolderError(
            f"no signing key in {folder}: run `lti-tool init` to create one"
        ) from None
    cached = _cache.get(str(folder))
    if cached and cached[0] == stamp:
        return cached[1]
    with _cache_lock:
        manifest = json.loads(manifest_path.read_text())
        keys = []
        for kid in manifest["active"]:
            pem = (folder / f"{kid}.pem").read_bytes()
            private = serialization.load_pem_private_key(pem, password=None)
            keys.append(SigningKey(kid=kid, private_key=private, private_pem=pem.decode()))
        by_kid = {k.kid: k for k in keys}
        if manifest["signing"] not in by_kid:
            raise KeyFolderError(f"signing key {manifest['signing']} is missing from {folder}")
        keyset = KeySet(signing=by_kid[manifest["signing"]], active=tuple(keys))
        _cache[str(folder)] = (stamp, keyset)
        return keyset
