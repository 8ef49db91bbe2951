"""Teacher-entered content: rich text, links, videos and whether a page can be framed (pure).

No Flask, no database, no HTTP: the caller fetches nothing here. :func:`frame_allowed`
gets response headers the caller already has (e.g. from a HEAD request it made).

* :func:`sanitize_html` – the allow-list every teacher-written body goes through before it
  is stored. Idempotent on its own output, so sanitizing stored text again changes nothing.
* :func:`check_url` – a link a teacher typed: absolute http(s) only.
* :func:`video_embed_url` / :func:`is_video_file` – YouTube and Vimeo links become privacy
  friendly player URLs; direct video files are played with ``<video>``.
* :func:`frame_allowed` / :func:`origin_of` – X-Frame-Options and CSP ``frame-ancestors``.
"""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import nh3

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "HTML_MAX",
    "URL_MAX",
    "URL_SCHEMES",
    "ContentError",
    "check_url",
    "frame_allowed",
    "is_video_file",
    "origin_of",
    "sanitize_html",
    "video_embed_url",
]

HTML_MAX = 100_000
URL_MAX = 2000

ALLOWED_TAGS = frozenset({
    "p", "br", "strong", "b", "em", "i", "u", "ul", "ol", "li", "a", "h2", "h3", "h4",
    "blockquote", "code", "pre", "table", "thead", "tbody", "tr", "th", "td", "img",
})
ALLOWED_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt"}),
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
VIDEO_FILE_EXTENSIONS = (".mp4", ".webm", ".ogg", ".ogv")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_PASSES = 5
# A complete tag (<p>, </p>, <br/>, <a href="…">), a comment or a doctype. Text without
# one is plain text, so "a<b" or "x < 3" stay as typed instead of being parsed as a tag.
_MARKUP = re.compile(r"<(?:/?[A-Za-z][^\s/>]*(?:[\s/][^<>]*)?>|!--|![A-Za-z])")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Whitespace and control characters: none belongs in a URL (a space is written %20).
_URL_BAD = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_SAFE_URL = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_SAFE_SRC = re.compile(r"https?:", re.IGNORECASE)
_HOST_LABEL = re.compile(r"[\w-]+")  # \w: letters of any script (IDN), digits, _
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")

_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com",
                            "music.youtube.com", "youtube-nocookie.com",
                            "www.youtube-nocookie.com"})
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_YOUTUBE_PATH = re.compile(r"/(?:shorts|embed|live|v)/([^/]+)/?")
_YOUTUBE_TIME = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?")
_VIMEO_HOSTS = frozenset({"vimeo.com", "www.vimeo.com", "player.vimeo.com"})
_VIMEO_PATH = re.compile(r"/(?:video/|channels/[\w-]+/)?(\d{1,12})(?:/([0-9a-f]{6,20}))?/?")
_VIMEO_HASH = re.compile(r"[0-9a-f]{6,20}")
_SCHEME_SOURCE = re.compile(r"[a-z][a-z0-9+.-]*:")
_HOST_SOURCE = re.compile(r"(?:([a-z][a-z0-9+.-]*)://)?([^/:]+)(?::(\d+|\*))?(/.*)?")


class ContentError(ValueError):
    """Teacher content that cannot be saved; the message says what to change."""


# ---------------------------------------------------------------- rich text


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Keep href only when it is an absolute http(s) or mailto URL, src only http(s).

    nh3 already drops other schemes; this also drops relative and protocol-relative URLs
    (which would point into Pathwise itself) and anything with leading junk."""
    if attribute == "href":
        return value if _SAFE_URL.match(value) else None
    if attribute == "src":
        return value if _SAFE_SRC.match(value) else None
    return value


def sanitize_html(text: str) -> str:
    """Clean teacher-written rich text with an allow-list; plain text becomes paragraphs.

    Text without any markup is escaped and split into ``<p>`` per blank-line-separated
    block, with ``<br>`` for single line breaks. Otherwise only :data:`ALLOWED_TAGS` and
    :data:`ALLOWED_ATTRIBUTES` survive; ``script`` and ``style`` are dropped with their
    content; ``href`` must be an absolute http, https or mailto URL, ``src`` http(s);
    every link gets ``target="_blank"`` and ``rel="noopener noreferrer"``. Text whose tags
    are all removed is wrapped in one ``<p>``. The text is cleaned again until it stops
    changing, so ``sanitize_html(sanitize_html(x)) == sanitize_html(x)`` (a stored body
    sanitized again on import or edit stays the same).

    Raises :class:`ContentError` when the text or the result is longer than
    :data:`HTML_MAX` characters (so a stored result always passes again), or for text
    containing lone surrogates (which cannot be stored).
    """
    if len(text) > HTML_MAX:
        raise ContentError(f"The text is {len(text):,} characters long; at most {HTML_MAX:,} "
                           "are allowed. Shorten it or split it into several items.")
    if _SURROGATE.search(text):
        raise ContentError("The text contains invalid characters (unpaired surrogates); "
                           "paste it again from the original document.")
    if not text.strip():
        return ""
    if not _MARKUP.search(text):
        text = _paragraphs(text)
    # Serialized HTML can parse differently the second time (an <li> inside an <li> is
    # closed early, say), so clean until nothing changes: the result is then stable, and
    # a stored body sanitized again (e.g. on import) stays byte-for-byte the same.
    cleaned = _clean_once(text)
    for _ in range(_MAX_PASSES):
        again = _clean_once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    if len(cleaned) > HTML_MAX:  # escaping can lengthen text; stored HTML must fit again
        raise ContentError(f"The text is {len(cleaned):,} characters long once formatted as "
                           f"HTML (a character such as & counts as several); at most "
                           f"{HTML_MAX:,} are allowed. Shorten it or split it into several "
                           "items.")
    return cleaned


def _clean_once(text: str) -> str:
    cleaned = nh3.clean(
        text,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    ).strip()
    if cleaned and not _MARKUP.search(cleaned):
        # Every tag was removed. Wrapping what is left keeps it HTML, so sanitizing the
        # result again does not mistake it for plain text (and escape its entities twice).
        cleaned = f"<p>{cleaned}</p>"
    return cleaned


def _paragraphs(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    blocks = _BLANK_LINES.split(text)
    return "\n".join(
        "<p>" + "<br>".join(html.escape(line.strip(), quote=False)
                            for line in block.split("\n")) + "</p>"
        for block in blocks
    )


# ---------------------------------------------------------------- links


def _preview(value: str, limit: int = 60) -> str:
    shown = _SURROGATE.sub("?", _URL_BAD.sub(" ", value))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _valid_host(host: str) -> bool:
    if _IPV6.fullmatch(host):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    labels = host.split(".")
    if labels and labels[-1] == "":  # a fully qualified name ends with a dot
        labels.pop()
    return bool(labels) and all(_HOST_LABEL.fullmatch(label) for label in labels)


def check_url(url: str) -> str:
    """Check a link a teacher typed and return it normalised.

    The URL is trimmed and must be absolute ``http://`` or ``https://`` with a host, at
    most :data:`URL_MAX` characters, with no whitespace, control characters, backslashes
    or ``user:password@``. Normalising lower-cases the scheme and the host (with its port);
    path, query and fragment are kept as typed. Raises :class:`ContentError`.
    """
    url = url.strip()
    if not url:
        raise ContentError("Enter a link: a web address starting with https://.")
    if len(url) > URL_MAX:
        raise ContentError(f"The link is {len(url):,} characters long; at most {URL_MAX:,} "
                           "are allowed.")
    if _URL_BAD.search(url) or _SURROGATE.search(url):
        raise ContentError(f"The link '{_preview(url)}' contains a space, line break or other "
                           "invisible character; remove it (write a space as %20).")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise ContentError(f"Links must start with http:// or https://; '{_preview(url)}' "
                           "does not.")
    if "\\" in url:
        raise ContentError(f"The link '{_preview(url)}' contains a backslash (\\); use / "
                           "instead.")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        raise ContentError("Links cannot contain a user name or password (the part before "
                           f"@ in '{_preview(url)}'); remove it.")
    host, port = netloc, ""
    if netloc.startswith("["):  # an IPv6 address: [::1] or [::1]:8080
        end = netloc.find("]") + 1  # 0 when there is no closing bracket
        if end == 0 or netloc[end:end + 1] not in ("", ":"):
            host = netloc  # not a valid host: reported below
        else:
            host, port = netloc[:end], netloc[end + 1:]
    elif ":" in netloc:
        host, _, port = netloc.rpartition(":")
    if not host:
        raise ContentError(f"The link '{_preview(url)}' has no website name after "
                           f"{scheme.lower()}://.")
    if not _valid_host(host):
        raise ContentError(f"'{_preview(host)}' in '{_preview(url)}' is not a valid website "
                           "name.")
    if port and (not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536):
        raise ContentError(f"The port ':{_preview(port)}' in '{_preview(url)}' is not valid; "
                           "it must be a number from 1 to 65535.")
    normalised = f"{scheme.lower()}://{netloc.lower()}{rest[len(netloc):]}"
    try:  # the same checks Python's own parser makes (e.g. NFKC look-alikes of / or @)
        _ = urlsplit(normalised).port
    except ValueError:
        raise ContentError(f"'{_preview(url)}' is not a valid web address.") from None
    return normalised


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased, default ports dropped.

    Raises :class:`ContentError` for anything :func:`check_url` rejects (an origin such
    as ``https://example.com`` is itself accepted)."""
    parts = urlsplit(check_url(url))
    scheme = parts.scheme
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


# ---------------------------------------------------------------- videos


def _seconds(value: str) -> int | None:
    """``90``, ``90s``, ``1m30s``, ``1h2m3s`` → seconds; None if unreadable."""
    match = _YOUTUBE_TIME.fullmatch(value.strip().lower())
    if not match or not value.strip():
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _youtube(host: str, path: str, query: str, fragment: str) -> str | None:
    params = parse_qs(query)
    video: str | None = None
    if host == "youtu.be":
        video = path.strip("/")
    elif path in ("/watch", "/watch/"):
        video = (params.get("v") or [""])[0]
    elif match := _YOUTUBE_PATH.fullmatch(path):
        video = match.group(1)
    if not video or not _YOUTUBE_ID.fullmatch(video):
        return None
    start = None
    for raw in (params.get("t") or []) + (params.get("start") or []) + (
        parse_qs(fragment).get("t") or []
    ):
        start = _seconds(raw)
        if start is not None:
            break
    embed = f"https://www.youtube-nocookie.com/embed/{video}"
    return f"{embed}?start={start}" if start else embed


def _vimeo(host: str, path: str, query: str) -> str | None:
    match = _VIMEO_PATH.fullmatch(path)
    if not match:
        return None
    if host == "player.vimeo.com" and not path.startswith("/video/"):
        return None
    if host != "player.vimeo.com" and path.startswith("/video/"):
        return None
    video, secret = match.group(1), match.group(2)
    if secret is None:
        secret = (parse_qs(query).get("h") or [None])[0]
    embed = f"https://player.vimeo.com/video/{video}"
    if secret and _VIMEO_HASH.fullmatch(secret):
        return f"{embed}?h={secret}"  # unlisted videos need their hash to play
    return embed


def video_embed_url(url: str) -> str | None:
    """The player URL for a YouTube or Vimeo link, or None for anything else.

    YouTube (``watch?v=``, ``youtu.be/``, ``shorts/``, ``embed/``, ``live/``; www, m and
    music hosts) → ``https://www.youtube-nocookie.com/embed/ID``, with ``?start=N`` when
    the link has a ``t=`` or ``start=`` offset (``90``, ``90s``, ``1m30s``). Vimeo
    (``vimeo.com/ID``, ``vimeo.com/ID/HASH``, ``player.vimeo.com/video/ID``) →
    ``https://player.vimeo.com/video/ID`` (plus ``?h=HASH`` for unlisted videos). Direct
    video files are not embeds: see :func:`is_video_file`.
    """
    try:
        parts = urlsplit(check_url(url))
    except (ContentError, ValueError):
        return None
    host = (parts.hostname or "").rstrip(".")
    if host in _YOUTUBE_HOSTS or host == "youtu.be":
        return _youtube(host, parts.path, parts.query, parts.fragment)
    if host in _VIMEO_HOSTS:
        return _vimeo(host, parts.path, parts.query)
    return None


def is_video_file(url: str) -> bool:
    """Whether ``url`` is a valid http(s) link to a .mp4, .webm, .ogg or .ogv file."""
    try:
        path = urlsplit(check_url(url)).path
    except (ContentError, ValueError):
        return False
    return path.lower().endswith(VIDEO_FILE_EXTENSIONS)


# ---------------------------------------------------------------- framing


def _header(headers: Mapping[str, str], name: str) -> str | None:
    values = [v for k, v in headers.items()
              if isinstance(k, str) and k.lower() == name and isinstance(v, str)]
    return ", ".join(values) if values else None


def _split_origin(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin_of(origin))
        return parts.scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS[parts.scheme]
    except (ContentError, ValueError):
        return None


def _frame_ancestors(csp: str) -> list[list[str]]:
    """The source lists of every policy (comma-separated) that has frame-ancestors."""
    lists = []
    for policy in csp.split(","):
        for directive in policy.split(";"):
            tokens = directive.split()
            if tokens and tokens[0].lower() == "frame-ancestors":
                lists.append(tokens[1:])
                break  # a repeated directive is ignored, as browsers do
    return lists


def _scheme_matches(expression: str, scheme: str) -> bool:
    """CSP3 "scheme-part match": http: also allows https (a secure upgrade)."""
    return expression == scheme or (expression == "http" and scheme == "https")


def _source_matches(source: str, embedder: tuple[str, str, int],
                    page: tuple[str, str, int] | None, page_scheme: str) -> bool:
    scheme, host, port = embedder
    source = source.lower()
    if source == "*":
        return scheme in ("http", "https")
    if source == "'self'":
        if page is None:
            return False
        if page == embedder:
            return True
        # A secure upgrade of the page's own origin also counts as 'self'.
        return (page[0] == "http" and scheme == "https" and page[1] == host
                and page[2] in (80, port) and port in (443, page[2]))
    if source.startswith("'"):
        return False  # 'none' among other sources, nonces, hashes: they match nothing
    if _SCHEME_SOURCE.fullmatch(source):
        return _scheme_matches(source[:-1], scheme)
    match = _HOST_SOURCE.fullmatch(source)
    if not match:
        return False
    src_scheme, src_host, src_port, _path = match.groups()  # paths are ignored
    if not _scheme_matches(src_scheme or page_scheme, scheme):
        return False
    if src_host.startswith("*."):
        if not host.endswith(src_host[1:]):
            return False
    elif src_host != "*" and src_host != host:
        return False
    if src_port == "*":
        return True
    if src_port is None:
        return port == _DEFAULT_PORTS[scheme]
    wanted = int(src_port)
    return wanted == port or (wanted == 80 and scheme == "https" and port == 443)


def frame_allowed(headers: Mapping[str, str], embedding_origin: str, *,
                  page_url: str | None = None) -> bool:
    """Whether a page with these response ``headers`` may be framed on ``embedding_origin``.

    Header names are case-insensitive. A ``Content-Security-Policy`` with
    ``frame-ancestors`` (in any of its comma-separated policies; every such policy must
    allow) decides and ``X-Frame-Options`` is then ignored, as browsers do. Otherwise
    ``X-Frame-Options``: ``DENY`` → False, ``SAMEORIGIN`` → only when ``page_url`` has the
    embedding origin, conflicting values → False, unknown values (``ALLOW-FROM``) → True.
    Without both headers → True. ``'self'`` and schemeless host sources need ``page_url``
    (without it ``'self'`` matches nothing and the page's scheme is taken to be https).
    Only the embedding origin is checked; the LMS page framing Pathwise is not known here.
    """
    embedder = _split_origin(embedding_origin)
    if embedder is None:
        raise ContentError(f"'{_preview(embedding_origin)}' is not an http(s) origin.")
    page = _split_origin(page_url) if page_url else None
    page_scheme = page[0] if page else "https"

    csp = _header(headers, "content-security-policy")
    if csp is not None:
        source_lists = _frame_ancestors(csp)
        if source_lists:
            return all(
                any(_source_matches(s, embedder, page, page_scheme) for s in sources)
                for sources in source_lists
            )

    xfo = _header(headers, "x-frame-options")
    if xfo is None:
        return True
    values = {v.strip().lower() for v in xfo.split(",") if v.strip()}
    if len(values) > 1:
        return not values & {"deny", "allowall", "sameorigin"}
    if "deny" in values:
        return False
    if "sameorigin" in values:
        return page is not None and page == embedder
    return True
