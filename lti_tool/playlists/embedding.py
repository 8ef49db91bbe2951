"""Whether a teacher's link may be shown inside Pathwise (an adapter: HTTP).

Asked once, when the teacher saves a resource; students then see it embedded,
always with an "open in a new tab" link beside it. The answer comes from the
site's own X-Frame-Options / CSP frame-ancestors headers (content.frame_allowed).
The tool fetches the URL from its own network, so addresses inside it
(loopback, private ranges) are never fetched unless the tool itself runs on
loopback (the demo and the tests), which keeps this from being a way to probe
a school's internal network."""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import requests

from lti_tool.playlists import content

log = logging.getLogger("lti_tool.playlists")
TIMEOUT = (2.0, 3.0)


def _is_internal(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return True  # cannot resolve: do not fetch
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            return True
    return False


def _tool_on_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allows_framing(url: str, base_url: str) -> bool:
    """True when the site answers and its headers let this tool frame it; any
    doubt (redirect, error, timeout, internal address) means a new tab."""
    host = urlsplit(url).hostname or ""
    if _is_internal(host) and not _tool_on_loopback(base_url):
        return False
    try:
        with requests.get(url, timeout=TIMEOUT, allow_redirects=False, stream=True,
                          headers={"User-Agent": "Pathwise-LTI (embed check)"}) as response:
            if response.status_code >= 300:
                return False
            return content.frame_allowed(dict(response.headers), content.origin_of(base_url),
                                         page_url=url)
    except requests.RequestException as exc:
        log.info('{"event": "embed_check_failed", "reason": "%s"}', type(exc).__name__)
        return False
