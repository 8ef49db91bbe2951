"""The sandbox platform's own RSA signing key (id_tokens, Canvas access tokens).

The key is generated on first start into `key_path` (PEM, mode 0600) with its `kid` in a
sidecar file, so a restarted sandbox keeps signing with the key the tool already cached.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass(frozen=True)
class PlatformKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        # Same members real Moodle and Canvas publish (B1, A1).
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "e": jwk["e"],
            "n": jwk["n"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def sign(self, payload: dict[str, Any]) -> str:
        return jwt.encode(
            payload, self.private_key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"}
        )

    def verify(self, token: str, **kwargs: Any) -> dict[str, Any]:
        return jwt.decode(token, self.private_key.public_key(), algorithms=["RS256"], **kwargs)


def load_or_create_key(key_path: str, new_kid: Any) -> PlatformKey:
    """Load the PEM key at key_path, or create it (and its kid via `new_kid()`)."""
    kid_path = key_path + ".kid"
    if os.path.exists(key_path):
        with open(key_path, "rb") as fh:
            private_key = serialization.load_pem_private_key(fh.read(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{key_path} is not an RSA private key")
        if os.path.exists(kid_path):
            with open(kid_path, encoding="utf-8") as fh:
                kid = fh.read().strip()
        else:
            kid = new_kid()
            _write(kid_path, kid.encode())
        return PlatformKey(kid=kid, private_key=private_key)

    os.makedirs(os.path.dirname(os.path.abspath(key_path)), exist_ok=True)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kid = new_kid()
    _write(key_path, pem)
    _write(kid_path, kid.encode())
    return PlatformKey(kid=kid, private_key=private_key)


def _write(path: str, data: bytes) -> None:
    # Private key material: readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
