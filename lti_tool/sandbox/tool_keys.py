"""Verifying JWTs the tool signs (client assertions, deep linking responses).

The tool's public keys are fetched from its JWKS URL (RS256 only, `kid` lookup), cached a
short while, and re-fetched once when a `kid` is unknown so key rotation on the tool side
works without restarting the sandbox.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
import requests

JWKS_CACHE_SECONDS = 60
JWKS_TIMEOUT_SECONDS = 5


class ToolJWTError(Exception):
    """A tool-signed JWT was refused; the message says why (safe to show)."""


class ToolKeyset:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _fetch(self, url: str, *, force: bool) -> dict[str, Any]:
        with self._lock:
            cached = self._cache.get(url)
            if cached and not force and time.monotonic() - cached[0] < JWKS_CACHE_SECONDS:
                return cached[1]
        try:
            # A plain GET per fetch: fetches are rare (cached) and a Session is not thread-safe.
            resp = requests.get(
                url, timeout=JWKS_TIMEOUT_SECONDS, headers={"Accept": "application/json"}
            )
            resp.raise_for_status()
            jwks = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise ToolJWTError(
                f"could not fetch the tool's JWKS from {url}: {exc.__class__.__name__}"
            ) from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise ToolJWTError(f"the tool's JWKS at {url} has no 'keys' list")
        with self._lock:
            self._cache[url] = (time.monotonic(), jwks)
        return jwks

    def _key_for(self, url: str, kid: str) -> Any:
        for force in (False, True):
            for jwk in self._fetch(url, force=force)["keys"]:
                if isinstance(jwk, dict) and jwk.get("kid") == kid:
                    if jwk.get("kty") != "RSA" or jwk.get("alg", "RS256") != "RS256":
                        raise ToolJWTError(f"key {kid!r} is not an RS256 RSA key")
                    try:
                        return jwt.PyJWK(jwk, algorithm="RS256").key
                    except jwt.PyJWTError as exc:
                        raise ToolJWTError(f"key {kid!r} in the tool's JWKS is malformed") from exc
        raise ToolJWTError(f"no key with kid {kid!r} in the tool's JWKS ({url})")

    def verify(self, token: str, jwks_url: str, **decode_kwargs: Any) -> dict[str, Any]:
        """Check header, signature and the registered claims passed in `decode_kwargs`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise ToolJWTError("not a JWT") from exc
        # Never let the token pick the algorithm (no `none`, no HS256 with the public key).
        if header.get("alg") != "RS256":
            raise ToolJWTError(f"alg must be RS256, got {header.get('alg')!r}")
        kid = header.get("kid")
        if not kid or not isinstance(kid, str):
            raise ToolJWTError("the JWT header has no kid")
        key = self._key_for(jwks_url, kid)
        try:
            return jwt.decode(token, key, algorithms=["RS256"], **decode_kwargs)
        except jwt.InvalidSignatureError as exc:
            raise ToolJWTError("signature verification failed") from exc
        except jwt.ExpiredSignatureError as exc:
            raise ToolJWTError("the JWT has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise ToolJWTError("the 'aud' is invalid") from exc
        except jwt.InvalidIssuerError as exc:
            raise ToolJWTError("the 'iss' is invalid") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise ToolJWTError(f"the following assertions are missing: {exc.claim}") from exc
        except jwt.ImmatureSignatureError as exc:
            raise ToolJWTError("the 'iat' must not be in the future") from exc
        except jwt.PyJWTError as exc:
            raise ToolJWTError(f"invalid JWT: {exc}") from exc
