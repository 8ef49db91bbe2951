"""The platforms' public keys: fetched only from the registered JWKS URL,
cached in the database for every process (honouring Cache-Control), refetched
at most once per interval on an unknown kid. `jku`/`jwk` headers are ignored."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import datetime, timedelta

import jwt
import requests
from sqlalchemy.orm import Session

from lti_tool.db import upsert
from lti_tool.launch.errors import LaunchError, unauthorized
from lti_tool.launch.models import KeySetCache, Platform
from lti_tool.timeutil import aware, utcnow

log = logging.getLogger("lti_tool.launch")

MAX_JWKS_BYTES = 64 * 1024
MIN_TTL, MAX_TTL = 60, 86400

_parsed: dict[tuple[int, str, str], object] = {}
_parsed_lock = threading.Lock()


def unavailable(reason: str) -> LaunchError:
    return LaunchError("PLATFORM_KEYS_UNAVAILABLE", 503,
                       f"Pathwise could not get the LMS's signing keys: {reason}",
                       "This is usually temporary. Wait a minute and open the activity again; "
                       "if it persists, an LMS administrator should check the JWKS URL "
                       "registered for this platform.", retry_after=60)


def _ttl(cache_control: str | None, default: int) -> int:
    if cache_control:
        if re.search(r"\bno-(store|cache)\b", cache_control):
            return MIN_TTL
        match = re.search(r"\bmax-age=(\d+)", cache_control)
        if match:
            return max(MIN_TTL, min(MAX_TTL, int(match.group(1))))
    return default


def fetch_jwks(url: str, http: requests.Session, timeout: float) -> tuple[dict, str | None]:
    """GET the key set: no redirects, a size cap, and JSON with a `keys` list."""
    try:
        with http.get(url, timeout=timeout, allow_redirects=False, stream=True,
                      headers={"Accept": "application/json"}) as resp:
            if resp.status_code != 200:
                raise unavailable(f"the JWKS URL answered HTTP {resp.status_code}")
            body = resp.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
            cache_control = resp.headers.get("Cache-Control")
    except requests.RequestException as exc:
        raise unavailable(f"the JWKS URL could not be reached ({type(exc).__name__})") from None
    if len(body) > MAX_JWKS_BYTES:
        raise unavailable("the JWKS document is larger than 64 KB")
    try:
        data = json.loads(body)
    except ValueError:
        raise unavailable("the JWKS URL did not return JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise unavailable("the JWKS document has no `keys` list")
    return data, cache_control


def _find(jwks: dict, kid: str) -> dict | None:
    for key in jwks.get("keys", []):
        if isinstance(key, dict) and key.get("kid") == kid and key.get("kty") == "RSA" \
                and key.get("alg", "RS256") == "RS256" and key.get("use", "sig") == "sig":
            return key
    return None


def _parse(platform_id: int, kid: str, jwk: dict):
    fingerprint = hashlib.sha256(json.dumps(jwk, sort_keys=True).encode()).hexdigest()
    cache_key = (platform_id, kid, fingerprint)
    key = _parsed.get(cache_key)
    if key is None:
        try:
            key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
        except Exception:
            raise unauthorized("JWT_KEY_INVALID",
                               "The LMS published a signing key Pathwise cannot read.") from None
        with _parsed_lock:
            _parsed[cache_key] = key
    return key


class PlatformKeys:
    def __init__(self, http: requests.Session, *, timeout: float, default_ttl: int,
                 refetch_interval: int):
        self.http = http
        self.timeout = timeout
        self.default_ttl = default_ttl
        self.refetch_interval = refetch_interval
        # A per-process copy of the shared database cache, until it expires.
        self._memory: dict[tuple[int, str], tuple[datetime, dict]] = {}

    def public_key(self, session: Session, platform: Platform, kid: str):
        """The RSA public key for `kid`, or a LaunchError (401 unknown kid,
        503 when the LMS's keys cannot be had and none is cached)."""
        now = utcnow()
        memory_key = (platform.id, platform.jwks_url)
        remembered = self._memory.get(memory_key)
        if remembered and remembered[0] > now:
            jwk = _find(remembered[1], kid)
            if jwk:
                return _parse(platform.id, kid, jwk)
        return self._from_database(session, platform, kid, now)

    def _from_database(self, session: Session, platform: Platform, kid: str, now: datetime):
        memory_key = (platform.id, platform.jwks_url)
        row = session.get(KeySetCache, platform.id)
        cached = json.loads(row.jwks) if row else None
        fresh = row is not None and aware(row.expires_at) > now
        if cached and fresh:
            self._memory[memory_key] = (aware(row.expires_at), cached)
            jwk = _find(cached, kid)
            if jwk:
                return _parse(platform.id, kid, jwk)
            recently = aware(row.fetched_at) > now - timedelta(seconds=self.refetch_interval)
            if recently:
                raise self._unknown(platform, kid)
        try:
            jwks, cache_control = fetch_jwks(platform.jwks_url, self.http, self.timeout)
        except LaunchError:
            # Fall back to the stale cached set when it has the key.
            jwk = _find(cached, kid) if cached else None
            if jwk:
                log.warning("jwks_refresh_failed platform=%s using_stale=1", platform.id)
                return _parse(platform.id, kid, jwk)
            raise
        expires = now + timedelta(seconds=_ttl(cache_control, self.default_ttl))
        # Several workers may refresh at once: last writer wins, nobody fails.
        upsert(session, KeySetCache, ["platform_id"],
               {"platform_id": platform.id, "jwks": json.dumps(jwks), "fetched_at": now,
                "expires_at": expires}, ["jwks", "fetched_at", "expires_at"],
               returning_id=False)
        self._memory[memory_key] = (expires, jwks)
        jwk = _find(jwks, kid)
        if not jwk:
            raise self._unknown(platform, kid)
        return _parse(platform.id, kid, jwk)

    @staticmethod
    def _unknown(platform: Platform, kid: str) -> LaunchError:
        return unauthorized("JWT_KID_UNKNOWN",
                            "The launch was signed with a key the LMS does not publish.",
                            "Open the activity again. If it persists, an LMS administrator "
                            f"should check the JWKS URL registered for {platform.name}.")
