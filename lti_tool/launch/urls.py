"""URL checks shared by registrations and the launch (pure)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host in LOOPBACK_HOSTS or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_service_url(url: str, what: str) -> str:
    """An LMS endpoint must be an absolute https URL (http only on loopback,
    for local sandboxes). Returns the URL or raises ValueError saying why."""
    url = (url or "").strip()
    if not url:
        raise ValueError(f"{what} is required")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError(f"{what} must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https:// URL, got {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{what} must use https:// (http is only allowed on localhost): {url!r}")
    return url


def same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def on_tool(url: str | None, base_url: str, allowed_paths: tuple[str, ...]) -> bool:
    """True when `url` is one of this tool's own launch URLs: same scheme, host
    and port as the base URL and a known path. Never redirect elsewhere."""
    if not url or not isinstance(url, str):
        return False
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return False
    parts = urlsplit(url)
    if not same_origin(url, base_url):
        return False
    base_path = urlsplit(base_url).path.rstrip("/")
    return parts.path in {base_path + p for p in allowed_paths}


def origin_of(url: str) -> str | None:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}"
