"""Export and import a playlist, with the standards it uses, as a JSON document (pure).

No Flask, no database, no files: :class:`PlaylistData` in, bytes out, and back. Items
refer to each other by ``key`` (any unique text, e.g. ``"i1"``) and to standards by
``code``, so a document can move between courses; the caller maps keys and codes to ids.

Document (version 1)::

    {"format": "pathwise-playlist", "version": 1,
     "title": "Fractions", "description": "…",
     "standards": ["NF.1"],
     "standard_definitions": [{"code": "NF.1", "title": "…", "description": "",
                               "group": null}],
     "items": [{"key": "i1", "kind": "reading", "tag": "must_do", "title": "…",
                "body": "<p>…</p>", "url": null, "standards": ["NF.1"],
                "prereq_standards": [], "prereq_items": [], "board": null,
                "min_choices": 1, "questions": []}]}

:func:`parse_document` reports every problem at once (up to :data:`MAX_ERRORS`) as
``path: what to change`` (``items[3].kind: unknown kind 'quiz'; …``) and raises nothing
but :class:`TransferError`, whatever it is given. It normalises as the editors do: titles
on one line with single spaces, standard descriptions trimmed with ``\\n`` line endings,
item bodies and the playlist description (both rich text) through
:func:`content.sanitize_html`, links through :func:`content.check_url`, an empty ``url`` or
``group`` is None, ``min_choices`` of an item that is not a choice board is 1. Item fields
other than key, kind, tag and title may be left out (defaults as in :class:`ItemData`);
unknown fields are errors (a typo must not be dropped silently). For every valid ``x``
(anything :func:`parse_document` returns) ``parse_document(to_json_bytes(x)) == x``.

Beyond the field rules, a document must describe a playlist the path rules accept: item
keys unique; prerequisites and boards refer to existing keys; a board is a
``choice_board`` listed before its options, options are not boards, and a board has
options and ``min_choices`` between 1 and their number (other items have 1); no
prerequisite cycle (boards count as prerequisites of their options); a quick check has
questions and exactly one aligned standard, and only quick checks have questions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lti_tool.grades.standards_io import CODE_MAX, DESCRIPTION_MAX, GROUP_MAX
from lti_tool.grades.standards_io import TITLE_MAX as STANDARD_TITLE_MAX
from lti_tool.playlists import content, quick_check
from lti_tool.playlists.path import ItemKind, Tag
from lti_tool.playlists.quick_check import Question

__all__ = [
    "FORMAT",
    "KEY_MAX",
    "MAX_BYTES",
    "MAX_ERRORS",
    "MAX_ITEMS",
    "TITLE_MAX",
    "VERSION",
    "ItemData",
    "PlaylistData",
    "StandardData",
    "TransferError",
    "parse_document",
    "to_document",
    "to_json_bytes",
]

FORMAT = "pathwise-playlist"
VERSION = 1
MAX_BYTES = 2 * 1024 * 1024
MAX_ITEMS = 200
TITLE_MAX = 300  # playlist and item titles (PlaylistItem.title is String(300))
KEY_MAX = 100
MAX_ERRORS = quick_check.MAX_ERRORS

_TOP_KEYS = ("format", "version", "title", "description", "standards",
             "standard_definitions", "items")
_ITEM_KEYS = ("key", "kind", "tag", "title", "body", "url", "standards", "prereq_standards",
              "prereq_items", "board", "min_choices", "questions")
_STANDARD_KEYS = ("code", "title", "description", "group")
_KINDS = tuple(k.value for k in ItemKind)
_TAGS = tuple(t.value for t in Tag)
_NEEDS_URL = frozenset({ItemKind.RESOURCE.value, ItemKind.VIDEO.value})
_BOARD = ItemKind.CHOICE_BOARD.value
_QUICK_CHECK = ItemKind.QUICK_CHECK.value

# Control characters (C0 but tab and line feed, DEL, C1) and lone surrogates: invisible in
# the UI or impossible to store. One-line fields lose tabs and line feeds by normalising.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class StandardData:
    code: str
    title: str
    description: str = ""
    group: str | None = None


@dataclass(frozen=True)
class ItemData:
    key: str
    kind: str  # a path.ItemKind value
    tag: str  # a path.Tag value
    title: str
    body: str = ""  # sanitized HTML
    url: str | None = None
    standards: tuple[str, ...] = ()  # codes
    prereq_standards: tuple[str, ...] = ()  # codes
    prereq_items: tuple[str, ...] = ()  # keys
    board: str | None = None  # key of the choice board this item is an option on
    min_choices: int = 1
    questions: tuple[Question, ...] = ()


@dataclass(frozen=True)
class PlaylistData:
    title: str
    description: str  # sanitized HTML, as an item's body
    standards: tuple[str, ...]  # codes of the standards the playlist targets
    items: tuple[ItemData, ...]
    standard_defs: tuple[StandardData, ...]


class TransferError(quick_check.ProblemList):
    """The document cannot be imported; ``errors`` lists what to fix."""


# ---------------------------------------------------------------- export


def to_document(data: PlaylistData) -> dict:
    """The JSON-ready document for ``data`` (keys in the documented order)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": data.title,
        "description": data.description,
        "standards": list(data.standards),
        "standard_definitions": [
            {"code": s.code, "title": s.title, "description": s.description, "group": s.group}
            for s in data.standard_defs
        ],
        "items": [_item_document(item) for item in data.items],
    }


def _item_document(item: ItemData) -> dict:
    return {
        "key": item.key,
        "kind": item.kind,
        "tag": item.tag,
        "title": item.title,
        "body": item.body,
        "url": item.url,
        "standards": list(item.standards),
        "prereq_standards": list(item.prereq_standards),
        "prereq_items": list(item.prereq_items),
        "board": item.board,
        "min_choices": item.min_choices,
        "questions": quick_check.questions_to_json(item.questions),
    }


def to_json_bytes(data: PlaylistData) -> bytes:
    """The document as UTF-8 JSON, indented by 2, keys in document order, final newline."""
    return (json.dumps(to_document(data), indent=2, ensure_ascii=False) + "\n").encode()


# ---------------------------------------------------------------- import helpers


def _show(value: Any, limit: int = 40) -> str:
    """A value for a message: repr (so surrogates and control characters are escaped)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _multi_line(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


class _Checker:
    """Collects messages; each helper returns a usable value (or None) and never raises."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}" if path else message)

    def unknown_fields(self, obj: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
        allowed = tuple(allowed)
        unknown = [k for k in obj if k not in allowed]
        if unknown:
            names = ", ".join(_show(k) for k in unknown[:5])
            self.add(path, f"unknown field{'s' if len(unknown) > 1 else ''} {names}; the "
                           f"fields are {', '.join(allowed)}")

    def text(self, value: Any, path: str, limit: int, *, required: bool,
             multi_line: bool = False) -> str | None:
        """Normalised text, "" for an absent optional field, None after an error."""
        if value is None:
            if required:
                self.add(path, "missing; it must be text")
                return None
            return ""
        if not isinstance(value, str):
            self.add(path, f"must be text, not {_type_name(value)}")
            return None
        text = _multi_line(value) if multi_line else _one_line(value)
        if required and not text:
            self.add(path, "is empty; fill it in")
            return None
        if len(text) > limit:
            self.add(path, f"is {len(text):,} characters long; at most {limit:,} are allowed")
            return None
        if _BAD_CHARS.search(text):
            self.add(path, "contains a control character or an invalid character; remove it")
            return None
        return text

    def code(self, value: Any, path: str, limit: int, what: str) -> str | None:
        """A code or key: trimmed but otherwise exact, one line, no control characters."""
        if not isinstance(value, str):
            self.add(path, f"missing; every {what} needs one" if value is None
                     else f"must be text, not {_type_name(value)}")
            return None
        code = value.strip()
        if not code:
            self.add(path, f"is empty; every {what} needs one")
        elif len(code) > limit:
            self.add(path, f"is {len(code):,} characters long; at most {limit:,} are allowed")
        elif _BAD_CHARS.search(code) or "\n" in code or "\t" in code:
            self.add(path, "contains a line break, tab or control character; remove it")
        else:
            return code
        return None

    def text_list(self, value: Any, path: str, what: str) -> list[str] | None:
        """A list of texts (each trimmed), or None after an error; absent means empty."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(path, f"must be a list of {what}, not {_type_name(value)}")
            return None
        out: list[str] = []
        ok = True
        for index, entry in enumerate(value):
            where = f"{path}[{index}]"
            if not isinstance(entry, str):
                self.add(where, f"must be text (a {what[:-1]}), not {_type_name(entry)}")
                ok = False
                continue
            entry = entry.strip()
            if entry in out:
                self.add(where, f"{_show(entry)} is listed twice; keep it once")
                ok = False
                continue
            out.append(entry)
        return out if ok else None


def _decode(raw: bytes | str) -> str:
    if isinstance(raw, str):
        size = len(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, (bytes, bytearray)):
        size = len(raw)
    else:
        raise TransferError([f"the file must be bytes or text, not {type(raw).__name__}"])
    if size > MAX_BYTES:
        raise TransferError([f"the file is {size:,} bytes; a playlist file can be at most "
                             f"{MAX_BYTES // 1024 // 1024} MB ({MAX_BYTES:,} bytes)"])
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff")
    try:
        return bytes(raw).decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise TransferError([f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02X} at "
                             f"position {exc.start}); export the playlist from Pathwise "
                             "again"]) from None


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"the file contains {name}, which is not allowed in JSON")


def _load(text: str) -> Any:
    if not text.strip():
        raise TransferError(["the file is empty; choose a playlist file exported from "
                             "Pathwise"])
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj and key not in duplicates:
                duplicates.append(key)
            obj[key] = value
        return obj

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TransferError([f"the file is not valid JSON: {exc.msg} (line {exc.lineno}, "
                             f"column {exc.colno})"]) from None
    except _NotJson as exc:
        raise TransferError([str(exc)]) from None
    except RecursionError:
        raise TransferError(["the file is nested too deeply to be a playlist"]) from None
    except ValueError:  # the only other failure: an integer with thousands of digits
        raise TransferError(["the file cannot be read as JSON: it contains a number with "
                             "thousands of digits"]) from None
    if duplicates:
        raise TransferError([f"the field {_show(k)} appears twice in one object; keep one"
                             for k in duplicates])
    return doc


# ---------------------------------------------------------------- import


def parse_document(raw: bytes | str) -> PlaylistData:
    """Read an exported playlist; raise :class:`TransferError` listing every problem."""
    doc = _load(_decode(raw))
    if not isinstance(doc, dict):
        raise TransferError([f"the file must contain a JSON object ({{…}}), not "
                             f"{_type_name(doc)}; is it a Pathwise playlist export?"])
    if doc.get("format") != FORMAT:
        raise TransferError([f"format: this is not a Pathwise playlist file (format is "
                             f"{_show(doc.get('format'))}; expected {FORMAT!r})"])
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TransferError([f"version: must be {VERSION}, not {_show(version)}"])
    if version > VERSION:
        raise TransferError([f"version: this file was made by a newer Pathwise (version "
                             f"{version}; this one reads version {VERSION}); update Pathwise "
                             "or export the playlist again from the same version"])

    check = _Checker()
    check.unknown_fields(doc, _TOP_KEYS, "")
    title = check.text(doc.get("title"), "title", TITLE_MAX, required=True)
    description = _rich_text(doc.get("description"), "description", check)
    defs = _standard_definitions(doc.get("standard_definitions"), check)
    codes = {d.code for d in defs}
    targeted = check.text_list(doc.get("standards"), "standards", "standard codes")
    for index, code in enumerate(targeted or []):
        if code not in codes:
            check.add(f"standards[{index}]", _undefined(code))
    items = _items(doc.get("items"), codes, check)

    if check.errors:
        raise TransferError(check.errors)
    assert title is not None and targeted is not None
    return PlaylistData(title=title, description=description, standards=tuple(targeted),
                        items=tuple(items), standard_defs=tuple(defs))


def _undefined(code: str) -> str:
    return (f"the standard {_show(code)} is not in standard_definitions; add its definition "
            "there or remove it here")


def _standard_definitions(value: Any, check: _Checker) -> list[StandardData]:
    if value is None:
        return []
    if not isinstance(value, list):
        check.add("standard_definitions", f"must be a list, not {_type_name(value)}")
        return []
    defs: list[StandardData] = []
    first: dict[str, int] = {}
    for index, entry in enumerate(value):
        path = f"standard_definitions[{index}]"
        if not isinstance(entry, dict):
            check.add(path, f"must be an object with code and title, not {_type_name(entry)}")
            continue
        check.unknown_fields(entry, _STANDARD_KEYS, path)
        code = check.code(entry.get("code"), f"{path}.code", CODE_MAX, "standard")
        if code is not None:
            if code in first:
                check.add(f"{path}.code", f"{_show(code)} is already defined by "
                                          f"standard_definitions[{first[code]}]; define each "
                                          "code once")
                continue
            first[code] = index
        title = check.text(entry.get("title"), f"{path}.title", STANDARD_TITLE_MAX,
                           required=True)
        description = check.text(entry.get("description"), f"{path}.description",
                                 DESCRIPTION_MAX, required=False, multi_line=True)
        group = check.text(entry.get("group"), f"{path}.group", GROUP_MAX, required=False)
        if code is None or title is None or description is None or group is None:
            continue
        defs.append(StandardData(code, title, description, group or None))
    return defs


@dataclass
class _Raw:
    """One item as far as it could be read, for the checks across items."""

    index: int
    data: ItemData | None
    key: str | None
    kind: str | None
    board: str | None
    prereq_items: list[str]
    min_choices: int | None


def _items(value: Any, codes: set[str], check: _Checker) -> list[ItemData]:
    if value is None:
        return []
    if not isinstance(value, list):
        check.add("items", f"must be a list, not {_type_name(value)}")
        return []
    if len(value) > MAX_ITEMS:
        check.add("items", f"the playlist has {len(value)} items; at most {MAX_ITEMS} can be "
                           "imported, so split it into several playlists")
        return []
    raws = [_item(index, entry, codes, check) for index, entry in enumerate(value)]
    _check_links(raws, check)
    return [raw.data for raw in raws if raw.data is not None]


def _choice(value: Any, allowed: tuple[str, ...], what: str, path: str,
            check: _Checker) -> str | None:
    if value is None:
        check.add(path, f"missing; use one of {', '.join(allowed)}")
        return None
    if value not in allowed:
        check.add(path, f"unknown {what} {_show(value)}; use one of {', '.join(allowed)}")
        return None
    return value


def _item(index: int, entry: Any, codes: set[str], check: _Checker) -> _Raw:
    path = f"items[{index}]"
    if not isinstance(entry, dict):
        check.add(path, f"must be an object, not {_type_name(entry)}")
        return _Raw(index, None, None, None, None, [], None)
    before = len(check.errors)
    check.unknown_fields(entry, _ITEM_KEYS, path)
    key = check.code(entry.get("key"), f"{path}.key", KEY_MAX, "item")
    kind = _choice(entry.get("kind"), _KINDS, "kind", f"{path}.kind", check)
    tag = _choice(entry.get("tag"), _TAGS, "tag", f"{path}.tag", check)
    title = check.text(entry.get("title"), f"{path}.title", TITLE_MAX, required=True)

    body = _rich_text(entry.get("body"), f"{path}.body", check)

    url: str | None = None
    raw_url = entry.get("url")
    if raw_url is not None and not isinstance(raw_url, str):
        check.add(f"{path}.url", f"must be text (a link) or null, not {_type_name(raw_url)}")
    elif raw_url and raw_url.strip():
        try:
            url = content.check_url(raw_url)
        except content.ContentError as exc:
            check.add(f"{path}.url", str(exc))
    elif kind in _NEEDS_URL:
        check.add(f"{path}.url", f"a {kind} needs a link; add its web address")

    standards = check.text_list(entry.get("standards"), f"{path}.standards",
                                "standard codes")
    prereq_standards = check.text_list(entry.get("prereq_standards"),
                                       f"{path}.prereq_standards", "standard codes")
    for field, found in (("standards", standards), ("prereq_standards", prereq_standards)):
        for position, code in enumerate(found or []):
            if code not in codes:
                check.add(f"{path}.{field}[{position}]", _undefined(code))
    prereq_items = check.text_list(entry.get("prereq_items"), f"{path}.prereq_items",
                                   "item keys")

    board = entry.get("board")
    if board is not None and not isinstance(board, str):
        check.add(f"{path}.board", f"must be an item key (text) or null, not "
                                   f"{_type_name(board)}")
        board = None
    board = (board.strip() or None) if board is not None else None

    min_choices = entry.get("min_choices", 1)
    if isinstance(min_choices, bool) or not isinstance(min_choices, int):
        check.add(f"{path}.min_choices", f"must be a whole number, not "
                                         f"{_type_name(min_choices)}")
        min_choices = None
    elif kind is not None and kind != _BOARD:
        min_choices = 1  # meaningless on other kinds (left over when a board changed kind)

    questions = _questions(entry.get("questions"), kind, standards, path, check)

    data = None
    if len(check.errors) == before:
        assert key is not None and kind is not None and tag is not None
        assert title is not None and min_choices is not None
        data = ItemData(
            key=key, kind=kind, tag=tag, title=title, body=body, url=url,
            standards=tuple(standards or ()), prereq_standards=tuple(prereq_standards or ()),
            prereq_items=tuple(prereq_items or ()), board=board, min_choices=min_choices,
            questions=questions,
        )
    return _Raw(index, data, key, kind, board, prereq_items or [], min_choices)


def _rich_text(value: Any, path: str, check: _Checker) -> str:
    """Sanitized HTML ("" when absent); "" after adding a message when it is unusable."""
    if value is None:
        return ""
    if not isinstance(value, str):
        check.add(path, f"must be text (HTML), not {_type_name(value)}")
        return ""
    try:
        return content.sanitize_html(value)
    except content.ContentError as exc:
        check.add(path, str(exc))
        return ""


def _questions(value: Any, kind: str | None, standards: list[str] | None, path: str,
               check: _Checker) -> tuple[Question, ...]:
    if kind != _QUICK_CHECK:
        if value not in (None, []):
            if kind is not None:
                check.add(f"{path}.questions", "only a quick check has questions; remove them "
                                               "or make the item a quick_check")
        return ()
    if standards is not None and len(standards) != 1:
        check.add(f"{path}.standards", f"a quick check must be aligned to exactly one "
                                       f"standard; it has {len(standards)}")
    try:
        return tuple(quick_check.questions_from_json([] if value is None else value))
    except quick_check.QuickCheckError as exc:
        for message in exc.errors:
            check.add(f"{path}.questions", message)
        return ()


def _check_links(raws: list[_Raw], check: _Checker) -> None:
    """Keys unique; prerequisites and boards point at the right items; no cycles."""
    by_key: dict[str, _Raw] = {}
    for raw in raws:
        if raw.key is None:
            continue
        if raw.key in by_key:
            check.add(f"items[{raw.index}].key", f"{_show(raw.key)} is already the key of "
                                                 f"items[{by_key[raw.key].index}]; give each "
                                                 "item its own key")
            raw.data = None
            continue
        by_key[raw.key] = raw

    options: dict[str, int] = {}
    ok = True
    for raw in raws:
        path = f"items[{raw.index}]"
        for position, key in enumerate(raw.prereq_items):
            if key == raw.key:
                check.add(f"{path}.prereq_items[{position}]", "an item cannot be its own "
                                                              "prerequisite; remove it")
                ok = False
            elif key not in by_key:
                check.add(f"{path}.prereq_items[{position}]", f"no item has the key "
                                                              f"{_show(key)}")
                ok = False
        if raw.board is None:
            continue
        board = by_key.get(raw.board)
        if board is None:
            check.add(f"{path}.board", f"no item has the key {_show(raw.board)}")
            ok = False
        elif raw.kind == _BOARD:
            check.add(f"{path}.board", "a choice board cannot be an option on another board; "
                                       "remove board or change the kind")
            ok = False
        elif board.kind is not None and board.kind != _BOARD:
            check.add(f"{path}.board", f"{_show(raw.board)} (items[{board.index}]) is a "
                                       f"{board.kind}, not a choice_board")
            ok = False
        elif board.index > raw.index:
            check.add(f"{path}.board", f"the choice board {_show(raw.board)} "
                                       f"(items[{board.index}]) must come before its options; "
                                       "move this item after it")
            ok = False
        else:
            options[raw.board] = options.get(raw.board, 0) + 1

    for raw in raws:
        if raw.kind != _BOARD or raw.key is None or by_key.get(raw.key) is not raw:
            continue
        path = f"items[{raw.index}]"
        count = options.get(raw.key, 0)
        if count == 0:
            check.add(path, f"the choice board has no options; add items after it with "
                            f'"board": {json.dumps(raw.key, ensure_ascii=True)}')
            ok = False
        elif raw.min_choices is not None and not 1 <= raw.min_choices <= count:
            check.add(f"{path}.min_choices", f"the board asks for {raw.min_choices} "
                                             f"choice(s) but has {count} option(s); set it "
                                             f"between 1 and {count}")
            ok = False

    if ok:
        cycle = _find_cycle(raws, by_key)
        if cycle:
            names = " → ".join(_show(key) for key in cycle)
            check.add("items", f"these items wait on each other, so none can ever unlock: "
                               f"{names}; remove one of these prerequisites")


def _find_cycle(raws: list[_Raw], by_key: Mapping[str, _Raw]) -> list[str] | None:
    """One cycle of keys (first key repeated at the end), or None; iterative DFS."""
    deps = {key: list(raw.prereq_items) + ([raw.board] if raw.board else [])
            for key, raw in by_key.items()}
    colour: dict[str, int] = dict.fromkeys(deps, 0)  # 0 new, 1 on the trail, 2 finished
    for root in deps:
        if colour[root]:
            continue
        colour[root] = 1
        trail = [root]
        stack = [iter(deps[root])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[trail.pop()] = 2
                stack.pop()
                continue
            if nxt not in colour:
                continue
            if colour[nxt] == 1:
                return trail[trail.index(nxt):] + [nxt]
            if colour[nxt] == 0:
                colour[nxt] = 1
                trail.append(nxt)
                stack.append(iter(deps[nxt]))
    return None
