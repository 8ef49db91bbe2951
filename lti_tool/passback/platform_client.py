"""The only way the tool talks to an LMS's services (AGS scores and line items,
NRPS rosters): one pooled HTTP client per platform registration per process.

What it guarantees (security.md 1.6, 3.6 and 4; platforms.md A8-A10, B7-B9):

* Access tokens come from the registered token URL by `client_credentials` with
  an RS256 JWT assertion, and are cached per (platform registration, exact
  scopes) in the `service_token` table, so every process shares them, with a
  small in-process cache in front. Never keyed by issuer alone: Canvas uses one
  issuer for every school.
* The bearer token is only ever sent to an allowed origin (scheme, host, port):
  never to a redirect target, never to a `Link: rel="next"` on another origin.
* At most `concurrency` requests per platform are in flight in a process.
* Every failure is a `ServiceError` whose `kind` tells the caller what to do
  (the table of security.md 4.4); its `detail` is short, safe to show a teacher
  and never contains a token.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from lti_tool.db import normalise_url, session_factory, session_scope, upsert
from lti_tool.passback.models import ServiceToken
from lti_tool.timeutil import aware

log = logging.getLogger(__name__)

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"

MT_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
MT_LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
MT_SCORE = "application/vnd.ims.lis.v1.score+json"
MT_RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
MT_MEMBERSHIPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300          # "exp typically five minutes after the iat"
TOKEN_MARGIN = 60                 # stop using a token this long before it expires
DEFAULT_EXPIRES_IN = 3600
MAX_BODY = 8 * 1024 * 1024        # response size cap
MAX_PAGES = 1000                  # pagination guard (50 per page: 50,000 rows)
DEFAULT_USER_AGENT = "Pathwise-LTI/1.0 (+grade passback)"

KINDS = ("superseded", "transient", "rate_limit", "token", "config", "lineitem_dead",
         "user_not_gradable", "closed", "malformed", "forbidden_host", "unknown")


class ServiceError(Exception):
    """An LMS service call that did not succeed.

    kind: what the caller should do (see `classify`); status: the HTTP status
    when there was an answer; retry_after: seconds from `Retry-After`;
    rate_limit_remaining: Canvas's `X-Rate-Limit-Remaining` when sent;
    detail: short, safe to show a teacher, never a token."""

    def __init__(self, kind: str, detail: str = "", *, status: int | None = None,
                 retry_after: float | None = None,
                 rate_limit_remaining: float | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown ServiceError kind {kind!r}")
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.rate_limit_remaining = rate_limit_remaining
        self.detail = detail or kind.replace("_", " ")
        super().__init__(self.detail)

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.kind}{where}: {self.detail}"

    def __repr__(self) -> str:
        return (f"ServiceError(kind={self.kind!r}, status={self.status!r}, "
                f"retry_after={self.retry_after!r}, detail={self.detail!r})")


# -- pure helpers ------------------------------------------------------------------------


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup on any mapping (requests' or a plain dict)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, val in headers.items():
        if isinstance(key, str) and key.lower() == lower:
            return val
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as delay seconds or an HTTP-date, in seconds from now (≥ 0)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_CONFIG_401 = ("invalid developer key", "not linked to a tool",
               "unknown or inactive developer key")
_NOT_GRADABLE_422 = ("not a student", "user not found")
_CLOSED_422 = re.compile(r"concluded|max(?:imum)?(?: number of allowed)? attempts")


def classify(status: int, body: str, headers: Mapping[str, str], *,
             flavor_hint: str | None = None) -> str | None:
    """What an LMS answer means for the sender (security.md 4.4); None is success.

    flavor_hint ("canvas", "moodle" or None) only matters for 409: Moodle's
    "earlier timestamp" refusal is a duplicate (superseded), while Canvas never
    answers 409 to a score, so there it is treated as malformed."""
    if 200 <= status < 300:
        return None
    text = (body or "")[:65536].lower()
    if status == 400 and "incorrect score received" in text:
        # Moodle: a user who is not gradable (our payloads are well-formed).
        return "user_not_gradable"
    if status == 400 and "before last updated timestamp" in text:
        return "superseded"
    if status == 409:
        return "malformed" if flavor_hint == "canvas" else "superseded"
    if status == 429:
        return "rate_limit"
    if status == 503 and _header(headers, "Retry-After") is not None:
        return "rate_limit"
    if status == 403 and "rate limit exceeded" in text:
        return "rate_limit"
    if 500 <= status < 600 or status == 408:
        return "transient"
    if status == 401:
        return "config" if any(m in text for m in _CONFIG_401) else "token"
    if status in (404, 412):
        return "lineitem_dead"
    if status == 422:
        if any(m in text for m in _NOT_GRADABLE_422):
            return "user_not_gradable"
        if _CLOSED_422.search(text):
            return "closed"
        return "malformed"
    if 300 <= status < 500:
        return "malformed"
    return "unknown"


_LINK_QUOTES = "\"'\u201c\u201d\u2018\u2019 \t\r\n"


def _undo_latin1(value: str) -> str:
    """HTTP header values reach Python as latin-1; Moodle sends UTF-8 curly quotes."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def parse_link_header(value: str | None) -> dict[str, str]:
    """{rel: url} from a `Link` header, tolerant of what LMSs really send:
    commas inside URLs, `rel=next`, `rel="next"`, Moodle's `rel=“next”` (also
    as latin-1 mojibake), several rels in one value, odd whitespace. The first
    link of each rel wins; rels are lower-cased; URLs are returned as given."""
    links: dict[str, str] = {}
    if not value:
        return links
    value = _undo_latin1(value)
    for match in re.finditer(r"<([^>]*)>([^<]*)", value):
        url = match.group(1).strip()
        for param in match.group(2).split(";"):
            name, sep, raw = param.partition("=")
            if not sep or name.strip(" \t\r\n,").lower() != "rel":
                continue
            raw = raw.strip().rstrip(",").strip(_LINK_QUOTES)
            for rel in raw.split():
                rel = rel.strip(_LINK_QUOTES).lower()
                if rel and rel not in links:
                    links[rel] = url
    return links


def service_url(base: str, suffix: str) -> str:
    """`/scores` or `/results` appended to a line item URL's path, keeping its
    query: `…/lineitem?type_id=3` → `…/lineitem/scores?type_id=3`."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/" + suffix.strip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def add_query(url: str, params: Iterable[tuple[str, Any]]) -> str:
    """Add query parameters, keeping the ones already there (Moodle's type_id);
    a parameter given here replaces one of the same name."""
    new = [(k, str(v)) for k, v in params if v is not None]
    if not new:
        return url
    parts = urlsplit(url)
    names = {k for k, _ in new}
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept + new), ""))


_DEFAULT_PORTS = {"https": 443, "http": 80}


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; ValueError for anything odd
    (userinfo, backslashes, whitespace or control characters, no host)."""
    if not isinstance(url, str) or not url:
        raise ValueError("not a URL")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in url):
        raise ValueError("the address contains spaces, backslashes or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("only https addresses are allowed")
    if "@" in parts.netloc:
        raise ValueError("the address contains a user name")
    host = parts.hostname
    if not host:
        raise ValueError("the address has no host")
    port = parts.port  # ValueError when not a valid port
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def _show(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == _DEFAULT_PORTS[scheme] else f":{port}")


def check_host(url: str, allowed_origins: Iterable[str]) -> None:
    """Refuse (ServiceError "forbidden_host") unless `url` is on one of the
    allowed origins: same scheme, host and port. https only, except where an
    allowed origin is itself http (the sandbox and tests)."""
    if isinstance(allowed_origins, str):
        allowed_origins = [allowed_origins]
    try:
        origin = origin_of(url)
    except ValueError as exc:
        raise ServiceError("forbidden_host", f"refused an LMS address: {exc}") from None
    allowed = set()
    for item in allowed_origins or ():
        try:
            allowed.add(origin_of(item))
        except ValueError:
            continue
    if origin not in allowed:
        raise ServiceError(
            "forbidden_host",
            f"refused to contact {_show(origin)[:120]}: not an address this LMS uses")


def _scope_key(scopes: Sequence[str] | str) -> str:
    if isinstance(scopes, str):
        scopes = scopes.split()
    key = " ".join(sorted({s.strip() for s in scopes if s and s.strip()}))
    if not key:
        raise ValueError("at least one scope is required")
    return key


def _guess_flavor(token_url: str) -> str | None:
    path = urlsplit(token_url).path
    if path.endswith("/mod/lti/token.php"):
        return "moodle"
    if path.endswith("/login/oauth2/token"):
        return "canvas"
    return None


_JWT_LIKE = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_BEARER_LIKE = re.compile(r"(?i)bearer\s+\S+")


def _message_of(body: bytes) -> str:
    """The human message of an LMS error body (Canvas, Moodle or OAuth envelope)."""
    text = body[:65536].decode("utf-8", "replace")
    msg = ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, dict):
            msg = str(errors.get("message") or errors.get("type") or "")
        elif isinstance(errors, list) and errors and isinstance(errors[0], dict):
            msg = str(errors[0].get("message") or "")
        elif isinstance(data.get("reason"), str):
            msg = data["reason"]
            if msg.startswith("Incorrect score received"):
                msg = "Incorrect score received"  # Moodle appends our raw request body
        elif isinstance(data.get("error"), str):
            desc = data.get("error_description")
            msg = data["error"] + (f": {desc}" if isinstance(desc, str) and desc else "")
        elif isinstance(data.get("message"), str):
            msg = data["message"]
    elif data is None:
        stripped = text.strip()
        if stripped and not stripped.startswith("<"):
            msg = stripped.splitlines()[0]
    return msg


def _safe(text: str, secrets: Iterable[str] = (), limit: int = 200) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _BEARER_LIKE.sub("Bearer [redacted]", text)
    text = _JWT_LIKE.sub("[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _float_or_none(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


class _NoAuth(AuthBase):
    """No credentials: keeps requests from adding ~/.netrc ones."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _BearerAuth(AuthBase):
    """Sets the bearer header; also keeps requests from applying ~/.netrc."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "_BearerAuth([redacted])"


def _network_detail(exc: Exception, timeout: tuple[float, float]) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"could not connect to the LMS within {timeout[0]:g} s"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"the LMS did not answer within {timeout[1]:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "secure connection to the LMS failed (TLS error)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "could not reach the LMS (connection failed)"
    return f"the connection to the LMS broke ({exc.__class__.__name__})"


_NETWORK_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                   requests.exceptions.ChunkedEncodingError,
                   requests.exceptions.ContentDecodingError)


# -- the client ---------------------------------------------------------------------------


class PlatformClient:
    """HTTP access to one platform registration's services (see the module doc).

    `sign(claims) -> str` signs the client assertion (RS256 with the tool's
    current key and kid); the client builds the claims. Use `client_for` to
    share one client (pool, semaphore, token cache) by every thread."""

    def __init__(self, platform_id: int, issuer: str, client_id: str, token_url: str,
                 audience: str | None, sign: Callable[[dict], str], database_url: str,
                 concurrency: int = 4, timeout: tuple[float, float] = (5.0, 30.0),
                 user_agent: str = DEFAULT_USER_AGENT) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.platform_id = platform_id
        self.issuer = issuer
        self.client_id = client_id
        self.token_url = token_url
        self.audience = audience
        self.sign = sign
        self.database_url = database_url
        self.concurrency = concurrency
        self.timeout = (float(timeout[0]), float(timeout[1]))
        self.user_agent = user_agent
        self.flavor = _guess_flavor(token_url)

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=concurrency + 1, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = user_agent
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # stateless
        self._session = session
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._env_settings: dict[tuple[str, ...], dict[str, Any]] = {}

    # -- identity, lifecycle ----------------------------------------------------------

    @property
    def identity(self) -> tuple:
        return (self.issuer, self.client_id, self.token_url, self.audience, self.concurrency)

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return (f"PlatformClient(platform_id={self.platform_id}, issuer={self.issuer!r}, "
                f"client_id={self.client_id!r})")

    # -- access tokens -----------------------------------------------------------------

    def token(self, scopes: Sequence[str]) -> str:
        """A bearer token for exactly these scopes, from the process cache, the
        shared `service_token` table, or the LMS's token endpoint."""
        key = _scope_key(scopes)
        hit = self._cached(key)
        if hit:
            return hit
        with self._fetch_lock(key):
            hit = self._cached(key)
            if hit:
                return hit
            stored = self._load(key)
            if stored is None:
                stored = self._fetch(key)
                self._store(key, *stored)
            with self._lock:
                self._tokens[key] = stored
            return stored[0]

    def invalidate(self, scopes: Sequence[str], *, token: str | None = None) -> None:
        """Forget the cached token (after a 401). With `token`, only when the
        cache still holds that one: another process may have refreshed it."""
        key = _scope_key(scopes)
        with self._lock:
            current = self._tokens.get(key)
            if current and (token is None or current[0] == token):
                del self._tokens[key]
        try:
            with session_scope(self.database_url) as session:
                stmt = delete(ServiceToken).where(ServiceToken.platform_id == self.platform_id,
                                                  ServiceToken.scopes == key)
                if token is not None:
                    stmt = stmt.where(ServiceToken.access_token == token)
                session.execute(stmt)
        except SQLAlchemyError:
            log.warning("could not drop the cached LMS token of platform %s", self.platform_id,
                        exc_info=True)

    def _fetch_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def _cached(self, key: str) -> str | None:
        with self._lock:
            hit = self._tokens.get(key)
        if hit and hit[1] - TOKEN_MARGIN > time.time():
            return hit[0]
        return None

    def _load(self, key: str) -> tuple[str, float] | None:
        try:
            with session_factory(self.database_url, write=False)() as session:
                row = session.execute(
                    select(ServiceToken.access_token, ServiceToken.expires_at).where(
                        ServiceToken.platform_id == self.platform_id,
                        ServiceToken.scopes == key)).first()
        except SQLAlchemyError:
            log.warning("could not read the cached LMS token of platform %s", self.platform_id,
                        exc_info=True)
            return None
        if row is None:
            return None
        expires = aware(row.expires_at).timestamp()
        if expires - TOKEN_MARGIN <= time.time():
            return None
        return row.access_token, expires

    def _store(self, key: str, token: str, expires: float) -> None:
        try:
            with session_scope(self.database_url) as session:
                upsert(session, ServiceToken, ["platform_id", "scopes"],
                       {"platform_id": self.platform_id, "scopes": key, "access_token": token,
                        "expires_at": datetime.fromtimestamp(expires, timezone.utc)},
                       ["access_token", "expires_at"], returning_id=False)
        except SQLAlchemyError:
            log.warning("could not store the LMS token of platform %s", self.platform_id,
                        exc_info=True)

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id,
                  "aud": self.audience or self.token_url, "iat": now,
                  "exp": now + ASSERTION_LIFETIME, "jti": uuid.uuid4().hex}
        try:
            return self.sign(claims)
        except Exception:
            log.exception("could not sign the client assertion for platform %s",
                          self.platform_id)
            raise ServiceError("config", "the tool could not sign its token request "
                                         "(check the tool's signing key)") from None

    def _fetch(self, key: str) -> tuple[str, float]:
        check_host(self.token_url, [self.token_url])
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(), "scope": key}
        started = time.time()
        resp = self._send("POST", self.token_url, data=form,
                          headers={"Accept": "application/json"})
        log.info("LMS token request for platform %s: HTTP %s", self.platform_id,
                 resp.status_code)
        if resp.status_code != 200:
            kind = classify(resp.status_code, resp.content.decode("utf-8", "replace"),
                            resp.headers, flavor_hint=self.flavor)
            if kind not in ("transient", "rate_limit"):
                kind = "config"  # the registration, key or scopes need an admin
            msg = _safe(_message_of(resp.content))
            raise ServiceError(kind, "the LMS refused the access token request"
                                     + (f": {msg}" if msg else ""),
                               status=resp.status_code,
                               retry_after=parse_retry_after(_header(resp.headers, "Retry-After")))
        try:
            data = json.loads(resp.content)
        except ValueError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        token_type = data.get("token_type") if isinstance(data, dict) else None
        expires_in = data.get("expires_in", DEFAULT_EXPIRES_IN) if isinstance(data, dict) else 0
        if isinstance(expires_in, str) and expires_in.strip().isdigit():
            expires_in = int(expires_in)
        if isinstance(expires_in, float) and expires_in.is_integer():
            expires_in = int(expires_in)
        if (not isinstance(token, str) or not re.fullmatch(r"[\x21-\x7e]+", token)
                or not isinstance(token_type, str) or token_type.lower() != "bearer"
                or not isinstance(expires_in, int) or isinstance(expires_in, bool)
                or expires_in <= 0):
            raise ServiceError("token", "the LMS token endpoint did not return a usable "
                                        "bearer token", status=resp.status_code)
        return token, started + expires_in

    # -- HTTP ----------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, headers: dict[str, str],
              data: Any = None, token: str | None = None) -> requests.Response:
        """One HTTP exchange inside a concurrency slot, body read (capped) before
        the slot is released; network failures become ServiceError("transient")."""
        try:
            # Everything Python does before the bytes leave happens outside the
            # slot: the cap limits what the LMS is asked to do at once, and the
            # slots stay busy with the LMS's time rather than ours.
            prepared = self._session.prepare_request(requests.Request(
                method, url, data=data, headers=headers,
                auth=_BearerAuth(token) if token else _NoAuth()))
            settings = self._settings_for(prepared.url)
            with self._slots:
                resp = self._session.send(prepared, timeout=self.timeout,
                                          allow_redirects=False, **settings)
                try:
                    self._read_body(resp)
                finally:
                    resp.close()
        except _NETWORK_ERRORS as exc:
            log.warning("LMS %s %s failed: %s", method, _for_log(url), exc.__class__.__name__)
            raise ServiceError("transient", _network_detail(exc, self.timeout)) from exc
        except requests.RequestException as exc:
            raise ServiceError("unknown", f"could not call the LMS "
                                          f"({exc.__class__.__name__})") from exc
        return resp

    def _settings_for(self, url: str) -> dict[str, Any]:
        """requests' per-request environment settings (proxies, CA bundle),
        read once per origin: scanning the environment on every score cost
        more than the rest of preparing it."""
        key = urlsplit(url)[:2]
        settings = self._env_settings.get(key)
        if settings is None:
            settings = self._session.merge_environment_settings(url, {}, True, None, None)
            self._env_settings[key] = settings
        return settings

    def _read_body(self, resp: requests.Response) -> None:
        deadline = time.monotonic() + 2 * self.timeout[1]
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(65536):
            size += len(chunk)
            if size > MAX_BODY:
                raise ServiceError("unknown", "the LMS answer was too large",
                                   status=resp.status_code)
            if time.monotonic() > deadline:
                raise ServiceError("transient", "the LMS answer took too long to arrive",
                                   status=resp.status_code)
            chunks.append(chunk)
        resp._content = b"".join(chunks)
        resp._content_consumed = True

    def request(self, method: str, url: str, *, scopes: Sequence[str],
                allowed_origins: Iterable[str], json_body: Any = None,
                content_type: str | None = None, accept: str | None = None) -> requests.Response:
        """One authorised call to an LMS service; returns the 2xx response or
        raises ServiceError. A 401 refreshes the token once and retries once;
        redirects are never followed (a 3xx is "malformed")."""
        allowed_origins = list(allowed_origins) if not isinstance(allowed_origins, str) \
            else [allowed_origins]
        check_host(url, allowed_origins)
        headers: dict[str, str] = {}
        body = None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = content_type or "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        refreshed = False
        while True:
            token = self.token(scopes)
            resp = self._send(method, url, headers=headers, data=body, token=token)
            log.debug("LMS %s %s -> %s", method, _for_log(url), resp.status_code)
            if resp.status_code == 401 and not refreshed and classify(
                    401, resp.content.decode("utf-8", "replace"), resp.headers,
                    flavor_hint=self.flavor) == "token":
                log.info("LMS answered 401 for platform %s; refreshing the token once",
                         self.platform_id)
                self.invalidate(scopes, token=token)
                refreshed = True
                continue
            break
        status = resp.status_code
        if 200 <= status < 300:
            return resp
        retry_after = parse_retry_after(_header(resp.headers, "Retry-After"))
        remaining = _float_or_none(_header(resp.headers, "X-Rate-Limit-Remaining"))
        if 300 <= status < 400:
            target = _header(resp.headers, "Location") or ""
            try:
                where = f" to {_show(origin_of(urljoin(url, target)))}"
            except ValueError:
                where = ""
            raise ServiceError("malformed", f"the LMS answered with a redirect (HTTP {status})"
                                            f"{where[:120]}; redirects are not followed",
                               status=status)
        kind = classify(status, resp.content.decode("utf-8", "replace"), resp.headers,
                        flavor_hint=self.flavor) or "unknown"
        msg = _safe(_message_of(resp.content), [token])
        log.info("LMS %s %s for platform %s: HTTP %s (%s)", method, _for_log(url),
                 self.platform_id, status, kind)
        raise ServiceError(kind, f"HTTP {status}" + (f": {msg}" if msg else ""), status=status,
                           retry_after=retry_after, rate_limit_remaining=remaining)

    def _pages(self, url: str, *, scopes: Sequence[str], allowed_origins: list[str],
               accept: str) -> Iterator[requests.Response]:
        """GET `url` and every `Link: rel="next"` page after it. A next page must
        pass check_host and stay on the first request's origin."""
        check_host(url, allowed_origins)
        first = origin_of(url)
        seen: set[str] = set()
        while True:
            if url in seen or len(seen) >= MAX_PAGES:
                raise ServiceError("unknown", "the LMS's pagination did not end")
            seen.add(url)
            resp = self.request("GET", url, scopes=scopes, allowed_origins=allowed_origins,
                                accept=accept)
            yield resp
            nxt = parse_link_header(_header(resp.headers, "Link")).get("next")
            if not nxt:
                return
            nxt = urljoin(url, nxt)
            try:
                check_host(nxt, allowed_origins)
                if origin_of(nxt) != first:
                    raise ServiceError("forbidden_host", "the LMS pointed the next page to "
                                                         "another address; not followed")
            except ServiceError as err:
                log.error("refused an LMS next-page link for platform %s: %s",
                          self.platform_id, err.detail)
                raise
            url = nxt

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        try:
            return json.loads(resp.content)
        except ValueError:
            raise ServiceError("unknown", "the LMS answer is not JSON",
                               status=resp.status_code) from None

    # -- AGS and NRPS ----------------------------------------------------------------------

    def post_score(self, lineitem_url: str, score: dict, *,
                   allowed_origins: Iterable[str]) -> requests.Response:
        """POST one score to `<line item>/scores` (the query, e.g. type_id, kept)."""
        return self.request("POST", service_url(lineitem_url, "/scores"), scopes=[SCOPE_SCORE],
                            allowed_origins=allowed_origins, json_body=score,
                            content_type=MT_SCORE)

    def line_items(self, lineitems_url: str, *, allowed_origins: Iterable[str],
                   resource_id: str | None = None, tag: str | None = None,
                   resource_link_id: str | None = None, scopes: Sequence[str] | None = None,
                   limit: int | None = None) -> list[dict]:
        """Every line item (all pages) matching the filters. `scopes` are the AGS
        scopes the launch granted: lineitem is used when present, else
        lineitem.readonly; `limit` is the page size asked for."""
        if scopes is None or SCOPE_LINEITEM in scopes:
            scope = SCOPE_LINEITEM
        elif SCOPE_LINEITEM_READONLY in scopes:
            scope = SCOPE_LINEITEM_READONLY
        else:
            raise ServiceError("config", "the LMS did not grant access to line items")
        url = add_query(lineitems_url, [("resource_id", resource_id), ("tag", tag),
                                        ("resource_link_id", resource_link_id),
                                        ("limit", limit)])
        items: list[dict] = []
        for resp in self._pages(url, scopes=[scope], allowed_origins=list(allowed_origins),
                                accept=MT_LINEITEM_CONTAINER):
            page = self._json(resp)
            if not isinstance(page, list) or not all(isinstance(i, dict) for i in page):
                raise ServiceError("unknown", "the LMS answer is not a list of line items",
                                   status=resp.status_code)
            items.extend(page)
        return items

    def create_line_item(self, lineitems_url: str, item: dict, *,
                         allowed_origins: Iterable[str]) -> dict:
        """POST a line item; returns the LMS's JSON for it (with its `id` URL)."""
        resp = self.request("POST", lineitems_url, scopes=[SCOPE_LINEITEM],
                            allowed_origins=allowed_origins, json_body=item,
                            content_type=MT_LINEITEM, accept=MT_LINEITEM)
        created = self._json(resp)
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise ServiceError("unknown", "the LMS did not return the new line item's id",
                               status=resp.status_code)
        return created

    def members(self, nrps_url: str, *, allowed_origins: Iterable[str],
                limit: int | None = None) -> list[dict]:
        """Every member of the context (all pages) from NRPS."""
        url = add_query(nrps_url, [("limit", limit)])
        members: list[dict] = []
        for resp in self._pages(url, scopes=[SCOPE_NRPS], allowed_origins=list(allowed_origins),
                                accept=MT_MEMBERSHIPS):
            page = self._json(resp)
            found = page.get("members") if isinstance(page, dict) else None
            if not isinstance(found, list) or not all(isinstance(m, dict) for m in found):
                raise ServiceError("unknown", "the LMS answer is not a membership container",
                                   status=resp.status_code)
            members.extend(found)
        return members


def _for_log(url: str) -> str:
    """Scheme, host and path only: queries stay out of the logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


# -- one client per platform per process --------------------------------------------------

_clients: dict[tuple[str, int], PlatformClient] = {}
_clients_lock = threading.Lock()


def client_for(platform: Any, sign: Callable[[dict], str], database_url: str, *,
               concurrency: int = 4) -> PlatformClient:
    """The process's client for this platform registration (a `Platform` row or
    anything with id, issuer, client_id, auth_token_url, auth_audience), so every
    thread shares its connection pool, concurrency cap and token cache. A changed
    registration (token URL, audience) gets a new client; `sign` is refreshed on
    every call so a rotated key is used at once."""
    key = (normalise_url(database_url), int(platform.id))
    identity = (platform.issuer, platform.client_id, platform.auth_token_url,
                platform.auth_audience, concurrency)
    with _clients_lock:
        client = _clients.get(key)
        if client is None or client.identity != identity:
            client = PlatformClient(
                platform_id=int(platform.id), issuer=platform.issuer,
                client_id=platform.client_id, token_url=platform.auth_token_url,
                audience=platform.auth_audience, sign=sign, database_url=database_url,
                concurrency=concurrency)
            _clients[key] = client
        else:
            client.sign = sign
        return client


def reset_clients() -> None:
    """Drop every shared client (tests, or after forking a worker process)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
