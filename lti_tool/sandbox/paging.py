"""Pagination as each platform does it.

Canvas (lib/api.rb, A9): page-based `page`/`per_page` (`limit` maps to per_page), rels in the
order current, next, prev, first, last, comma-joined without spaces.
Moodle (lineitems.php / results.php, B8): offset-based `limit`/`from`; without `limit`
everything comes back with no Link header; rels first, prev, canonical, next, last with the
Unicode curly quotes real Moodle emits (sent as raw UTF-8 bytes, as PHP does). NRPS in
Moodle only has `rel="next"` with ASCII quotes (B9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import request

T = TypeVar("T")

_CANVAS_STRIP = ("page", "per_page", "access_token", "limit")


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default


def canvas_page(
    items: Sequence[T], endpoint: str, *, default: int, maximum: int
) -> tuple[list[T], str]:
    """Slice `items` for the requested page; return it and the Link header value."""
    per_page = _int_arg("per_page", _int_arg("limit", default))
    per_page = max(1, min(per_page, maximum))
    page = max(1, _int_arg("page", 1))
    last = max(1, math.ceil(len(items) / per_page))
    chunk = list(items[(page - 1) * per_page : page * per_page])
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in _CANVAS_STRIP]

    def url(n: int) -> str:
        return f"{endpoint}?{urlencode([*kept, ('page', n), ('per_page', per_page)])}"

    rels: list[tuple[str, int]] = [("current", page)]
    if page < last:
        rels.append(("next", page + 1))
    if page > 1:
        rels.append(("prev", page - 1))
    rels += [("first", 1), ("last", last)]
    return chunk, ",".join(f'<{url(n)}>; rel="{rel}"' for rel, n in rels)


def _as_wsgi_header(value: str) -> str:
    # WSGI header values are latin-1 strings; encode the UTF-8 bytes PHP would send.
    return value.encode("utf-8").decode("latin-1")


def moodle_offset(
    items: Sequence[T], endpoint: str, base_params: list[tuple[str, Any]]
) -> tuple[list[T], str | None]:
    """Slice by `limit`/`from` and build Moodle's curly-quoted Link header (or None)."""
    limit = _int_arg("limit", 0)
    start = _int_arg("from", 0)
    if limit <= 0:
        return list(items[max(start, 0) :]), None
    total = len(items)
    chunk = list(items[max(start, 0) : max(start, 0) + limit])
    out_of_range = start >= total or start < 0
    prev_from = max(start - limit, 0)
    # Moodle computes the last offset as total - limit + 1 (sic); reproduced as is.
    last_from = max(total - limit + 1, 0)
    next_from = start + limit
    params = [*base_params, ("limit", limit)]

    def url(offset: int) -> str:
        return f"{endpoint}?{urlencode([*params, ('from', offset)])}"

    parts = [f"<{url(0)}>; rel=\u201cfirst\u201d"]
    if start > 0 and not out_of_range:
        parts.append(f"<{url(prev_from)}>; rel=\u201cprev\u201d")
    parts.append(f"<{url(start)}>; rel=\u201ccanonical\u201d")
    if next_from <= total - 1 and not out_of_range:
        parts.append(f"<{url(next_from)}>; rel=\u201cnext\u201d")
    parts.append(f"<{url(last_from)}>; rel=\u201clast\u201d")
    return chunk, _as_wsgi_header(", ".join(parts))


def moodle_nrps_offset(
    items: Sequence[T], endpoint: str, keep: list[tuple[str, Any]]
) -> tuple[list[T], str | None]:
    """Moodle NRPS: only `rel="next"` (ASCII quotes) and only when `limit` > 0."""
    limit = _int_arg("limit", 0)
    start = max(_int_arg("from", 0), 0)
    if limit <= 0:
        return list(items[start:]), None
    chunk = list(items[start : start + limit])
    if start + limit < len(items):
        query = urlencode([("limit", limit), ("from", start + limit), *keep])
        return chunk, f'<{endpoint}?{query}>; rel="next"'
    return chunk, None
