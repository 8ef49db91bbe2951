"""Playlist export and import (pure): the document, every check with its message, round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lti_tool.playlists.content import sanitize_html
from lti_tool.playlists.path import ItemKind, Tag
from lti_tool.playlists.quick_check import Question
from lti_tool.playlists.transfer import (
    MAX_BYTES,
    MAX_ERRORS,
    MAX_ITEMS,
    ItemData,
    PlaylistData,
    StandardData,
    TransferError,
    parse_document,
    to_document,
    to_json_bytes,
)

QUESTION = Question("What is 1/2 + 1/4?", "numeric", (), 0.75, 0.0, "Quarters.")
CHOICE = Question("Which is bigger?", "choice", ("1/2", "1/3"), 0.0)

PLAYLIST = PlaylistData(
    title="Adding fractions",
    description="<p>Work through these in order.<br>Ask for help any time.</p>",
    standards=("NF.1",),
    items=(
        ItemData("intro", "reading", "must_do", "What is a fraction?",
                 body="<p>A fraction is <strong>part</strong> of a whole.</p>",
                 standards=("NF.1",)),
        ItemData("pick", "choice_board", "must_do", "Learn it your way", min_choices=2,
                 prereq_items=("intro",)),
        ItemData("vid", "video", "may_do", "Watch", url="https://youtu.be/dQw4w9WgXcQ",
                 board="pick"),
        ItemData("web", "resource", "may_do", "Play", url="https://example.com/game",
                 board="pick"),
        ItemData("sheet", "practice", "may_do", "Worksheet", board="pick"),
        ItemData("check", "quick_check", "must_do", "Quick check", standards=("NF.1",),
                 prereq_standards=("NF.0",), prereq_items=("pick",),
                 questions=(QUESTION, CHOICE)),
        ItemData("extra", "checkpoint", "challenge", "Show what you know",
                 standards=("NF.1", "NF.2")),
    ),
    standard_defs=(
        StandardData("NF.0", "Understand fractions"),
        StandardData("NF.1", "Add fractions", "With unlike denominators.", "Fractions"),
        StandardData("NF.2", "Subtract fractions", "", "Fractions"),
    ),
)


def document() -> dict:
    return to_document(PLAYLIST)


def errors_of(doc) -> list[str]:
    raw = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
    with pytest.raises(TransferError) as caught:
        parse_document(raw)
    assert caught.value.errors
    return caught.value.errors


def with_item(index: int, **changes) -> dict:
    doc = document()
    for key, value in changes.items():
        if value is _DROP:
            del doc["items"][index][key]
        else:
            doc["items"][index][key] = value
    return doc


_DROP = object()


# ---------------------------------------------------------------- export


def test_document_shape():
    doc = document()
    assert list(doc) == ["format", "version", "title", "description", "standards",
                         "standard_definitions", "items"]
    assert doc["format"] == "pathwise-playlist" and doc["version"] == 1
    assert doc["standard_definitions"][1] == {
        "code": "NF.1", "title": "Add fractions", "description": "With unlike denominators.",
        "group": "Fractions"}
    assert doc["items"][5] == {
        "key": "check", "kind": "quick_check", "tag": "must_do", "title": "Quick check",
        "body": "", "url": None, "standards": ["NF.1"], "prereq_standards": ["NF.0"],
        "prereq_items": ["pick"], "board": None, "min_choices": 1,
        "questions": [
            {"prompt": "What is 1/2 + 1/4?", "kind": "numeric", "answer": 0.75,
             "tolerance": 0.0, "explanation": "Quarters."},
            {"prompt": "Which is bigger?", "kind": "choice", "choices": ["1/2", "1/3"],
             "answer": 0, "explanation": ""},
        ],
    }


def test_json_bytes():
    raw = to_json_bytes(PLAYLIST)
    assert raw.endswith(b"}\n") and raw.startswith(b'{\n  "format": "pathwise-playlist",\n')
    assert json.loads(raw) == document()
    titled = PlaylistData("Brüche ½", "", (), (), ())
    assert "Brüche ½".encode() in to_json_bytes(titled)


def test_round_trip():
    assert parse_document(to_json_bytes(PLAYLIST)) == PLAYLIST
    assert parse_document(to_json_bytes(PLAYLIST).decode()) == PLAYLIST


# ---------------------------------------------------------------- import: good documents


def test_optional_fields_have_defaults_and_text_is_normalised():
    doc = {
        "format": "pathwise-playlist", "version": 1, "title": "  Two\n  words ",
        "standard_definitions": [{"code": " A.1 ", "title": "T", "group": ""}],
        "items": [{"key": " k ", "kind": "reading", "tag": "may_do", "title": "R",
                   "body": "Plain\ntext", "url": " HTTPS://Example.com/X ",
                   "standards": [" A.1 "]}],
    }
    raw = b"\xef\xbb\xbf" + json.dumps(doc).encode()
    assert parse_document(raw) == PlaylistData(
        title="Two words", description="", standards=(),
        items=(ItemData("k", "reading", "may_do", "R", body="<p>Plain<br>text</p>",
                        url="https://example.com/X", standards=("A.1",)),),
        standard_defs=(StandardData("A.1", "T", "", None),),
    )


def test_body_and_description_are_sanitized_on_import():
    doc = with_item(0, body='<p onclick="x">Hi<script>alert(1)</script></p>')
    doc["description"] = "Plain\n\n<img src=x onerror=alert(1)>"
    data = parse_document(json.dumps(doc))
    assert data.items[0].body == "<p>Hi</p>"
    assert data.description == "Plain\n\n<img>"
    doc["description"] = "&" * 30_000
    assert errors_of(doc) == [
        "description: The text is 150,007 characters long once formatted as HTML (a character "
        "such as & counts as several); at most 100,000 are allowed. Shorten it or split it "
        "into several items."]


def test_every_kind_and_tag_is_accepted():
    doc = document()
    doc["items"] = [
        {"key": f"{kind.value}-{tag.value}", "kind": kind.value, "tag": tag.value,
         "title": "x", "url": "https://example.com", "standards": ["NF.1"],
         "questions": [{"prompt": "1+1", "kind": "numeric", "answer": 2}]
         if kind is ItemKind.QUICK_CHECK else []}
        for kind in ItemKind if kind is not ItemKind.CHOICE_BOARD for tag in Tag
    ]
    assert len(parse_document(json.dumps(doc)).items) == (len(ItemKind) - 1) * len(Tag)


# ---------------------------------------------------------------- import: the file


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "the file is empty; choose a playlist file exported from Pathwise"),
    (b'{"title": "x",}', "the file is not valid JSON: Expecting property name enclosed in "
                        "double quotes (line 1, column 15)"),
    (b'{\n  "a": 1\n  "b": 2\n}', "the file is not valid JSON: Expecting ',' delimiter "
                                "(line 3, column 3)"),
    (b'{"x": NaN}', "the file contains NaN, which is not allowed in JSON"),
    (b'{"x": -Infinity}', "the file contains -Infinity, which is not allowed in JSON"),
    (b"[" * 50_000 + b"]" * 50_000, "the file is nested too deeply to be a playlist"),
    (b"\xff\xfe{}", "the file is not UTF-8 text (byte 0xFF at position 0); export the playlist "
                    "from Pathwise again"),
    (b"[]", "the file must contain a JSON object ({…}), not a list; is it a Pathwise playlist "
            "export?"),
    (b'"text"', "the file must contain a JSON object ({…}), not text; is it a Pathwise "
                "playlist export?"),
    (b'{"title": "x"}', "format: this is not a Pathwise playlist file (format is None; "
                        "expected 'pathwise-playlist')"),
    (b'{"format": "pathwise-playlist", "version": 2, "title": 5}',
     "version: this file was made by a newer Pathwise (version 2; this one reads version 1); "
     "update Pathwise or export the playlist again from the same version"),
    (b'{"format": "pathwise-playlist", "version": "1"}', "version: must be 1, not '1'"),
    (b'{"format": "pathwise-playlist", "version": true}', "version: must be 1, not True"),
    (b'{"format": "pathwise-playlist", "version": 0}', "version: must be 1, not 0"),
    (b'{"format": "pathwise-playlist", "format": "x"}',
     "the field 'format' appears twice in one object; keep one"),
    (b'{"x": 1' + b"0" * 5000 + b"}", "the file cannot be read as JSON: it contains a number "
                                      "with thousands of digits"),
])
def test_file_level_errors(raw, message):
    assert errors_of(raw) == [message]


def test_size_limit():
    raw = to_json_bytes(PLAYLIST)
    raw += b" " * (MAX_BYTES - len(raw))  # whitespace after the object is valid JSON
    assert parse_document(raw) == PLAYLIST
    assert errors_of(raw + b" ") == ["the file is 2,097,153 bytes; a playlist file can be at most "
                              "2 MB (2,097,152 bytes)"]


def test_bytes_or_text_only():
    with pytest.raises(TransferError, match="must be bytes or text, not dict"):
        parse_document({"format": "pathwise-playlist"})  # type: ignore[arg-type]


# ---------------------------------------------------------------- import: fields


def test_top_level_fields():
    doc = document()
    doc.update(title="", description=5, standards="NF.1", extra=1, more=2)
    assert errors_of(doc) == [
        "unknown fields 'extra', 'more'; the fields are format, version, title, description, "
        "standards, standard_definitions, items",
        "title: is empty; fill it in",
        "description: must be text (HTML), not a number",
        "standards: must be a list of standard codes, not text",
    ]


def test_title_limits():
    doc = document()
    doc["title"] = "x" * 301
    assert errors_of(doc) == ["title: is 301 characters long; at most 300 are allowed"]
    doc["title"] = "a\x00b"
    assert errors_of(doc) == ["title: contains a control character or an invalid character; "
                              "remove it"]
    del doc["title"]
    assert errors_of(doc) == ["title: missing; it must be text"]


def test_standard_definitions():
    doc = document()
    doc["standards"] = ["NF.1", "NF.1", "ZZ"]
    doc["standard_definitions"] = [
        {"code": "NF.1", "title": "Add"},
        {"code": "NF.1", "title": "Again"},
        {"code": "", "title": "No code"},
        {"code": "x" * 61, "title": "Long"},
        {"code": "a\tb", "title": "Tab"},
        {"code": "NF.2", "title": "", "group": "g" * 201, "colour": "red"},
        "NF.0",
        {"code": 7, "title": "Number", "description": ["list"]},
    ]
    errors = errors_of(doc)
    assert errors[:11] == [
        "standard_definitions[1].code: 'NF.1' is already defined by standard_definitions[0]; "
        "define each code once",
        "standard_definitions[2].code: is empty; every standard needs one",
        "standard_definitions[3].code: is 61 characters long; at most 60 are allowed",
        "standard_definitions[4].code: contains a line break, tab or control character; "
        "remove it",
        "standard_definitions[5]: unknown field 'colour'; the fields are code, title, "
        "description, group",
        "standard_definitions[5].title: is empty; fill it in",
        "standard_definitions[5].group: is 201 characters long; at most 200 are allowed",
        "standard_definitions[6]: must be an object with code and title, not text",
        "standard_definitions[7].code: must be text, not a number",
        "standard_definitions[7].description: must be text, not a list",
        "standards[1]: 'NF.1' is listed twice; keep it once",
    ]
    # Items using NF.0 and NF.2 (no longer defined) are reported too.
    assert ("items[5].prereq_standards[0]: the standard 'NF.0' is not in standard_definitions; "
            "add its definition there or remove it here") in errors
    assert ("items[6].standards[1]: the standard 'NF.2' is not in standard_definitions; add "
            "its definition there or remove it here") in errors


def test_undefined_targeted_standard():
    doc = document()
    doc["standards"] = ["NF.1", "NF.9"]
    assert errors_of(doc) == [
        "standards[1]: the standard 'NF.9' is not in standard_definitions; add its definition "
        "there or remove it here"]


def test_item_kind_tag_and_type_errors():
    doc = document()
    doc["items"][0].update(kind="quiz", tag=None, title=["x"], standards=[1], board=3,
                           min_choices="2", unknown=True)
    del doc["items"][0]["key"]
    doc["items"][6] = "not an item"
    assert errors_of(doc) == [
        "items[0]: unknown field 'unknown'; the fields are key, kind, tag, title, body, url, "
        "standards, prereq_standards, prereq_items, board, min_choices, questions",
        "items[0].key: missing; every item needs one",
        "items[0].kind: unknown kind 'quiz'; use one of resource, reading, video, practice, "
        "quick_check, checkpoint, choice_board",
        "items[0].tag: missing; use one of must_do, may_do, challenge",
        "items[0].title: must be text, not a list",
        "items[0].standards[0]: must be text (a standard code), not a number",
        "items[0].board: must be an item key (text) or null, not a number",
        "items[0].min_choices: must be a whole number, not text",
        "items[6]: must be an object, not text",
        "items[1].prereq_items[0]: no item has the key 'intro'",
    ]


def test_items_must_be_a_list_of_at_most_200():
    doc = document()
    doc["items"] = {"key": "x"}
    assert errors_of(doc) == ["items: must be a list, not an object"]
    doc["items"] = [{"key": f"k{i}", "kind": "reading", "tag": "must_do", "title": "t"}
                    for i in range(MAX_ITEMS)]
    assert len(parse_document(json.dumps(doc)).items) == MAX_ITEMS
    doc["items"].append(doc["items"][0])
    assert errors_of(doc) == ["items: the playlist has 201 items; at most 200 can be imported, "
                              "so split it into several playlists"]


def test_urls():
    assert errors_of(with_item(2, url=None)) == [
        "items[2].url: a video needs a link; add its web address"]
    assert errors_of(with_item(3, url="  ")) == [
        "items[3].url: a resource needs a link; add its web address"]
    assert errors_of(with_item(3, url="javascript:alert(1)")) == [
        "items[3].url: Links must start with http:// or https://; 'javascript:alert(1)' does "
        "not."]
    assert errors_of(with_item(0, url=["https://x.example"])) == [
        "items[0].url: must be text (a link) or null, not a list"]
    assert parse_document(json.dumps(with_item(0, url=""))).items[0].url is None


def test_bodies():
    assert errors_of(with_item(0, body=42)) == ["items[0].body: must be text (HTML), not a number"]
    assert errors_of(with_item(0, body="x" * 100_001)) == [
        "items[0].body: The text is 100,001 characters long; at most 100,000 are allowed. "
        "Shorten it or split it into several items."]


def test_duplicate_keys_and_bad_references():
    doc = document()
    doc["items"][3]["key"] = "vid"
    doc["items"][5]["prereq_items"] = ["check", "nope", "pick", "pick"]
    assert errors_of(doc) == [
        "items[5].prereq_items[3]: 'pick' is listed twice; keep it once",
        "items[3].key: 'vid' is already the key of items[2]; give each item its own key",
    ]
    doc["items"][5]["prereq_items"] = ["check", "nope"]
    assert errors_of(doc)[1:] == [
        "items[5].prereq_items[0]: an item cannot be its own prerequisite; remove it",
        "items[5].prereq_items[1]: no item has the key 'nope'",
    ]


def test_board_rules():
    doc = document()
    doc["items"][2]["board"] = "missing"
    doc["items"][3]["board"] = "intro"
    doc["items"][4]["board"] = "check"
    doc["items"][6]["board"] = "pick"
    doc["items"][6]["kind"] = "choice_board"
    assert errors_of(doc) == [
        "items[2].board: no item has the key 'missing'",
        "items[3].board: 'intro' (items[0]) is a reading, not a choice_board",
        "items[4].board: 'check' (items[5]) is a quick_check, not a choice_board",
        "items[6].board: a choice board cannot be an option on another board; remove board or "
        "change the kind",
        'items[1]: the choice board has no options; add items after it with "board": "pick"',
        'items[6]: the choice board has no options; add items after it with "board": "extra"',
    ]


def test_board_must_come_before_its_options():
    doc = document()
    doc["items"].insert(0, doc["items"].pop(2))  # the video moves above its board
    assert errors_of(doc) == [
        "items[0].board: the choice board 'pick' (items[2]) must come before its options; "
        "move this item after it"]


def test_min_choices():
    assert errors_of(with_item(1, min_choices=4)) == [
        "items[1].min_choices: the board asks for 4 choice(s) but has 3 option(s); set it "
        "between 1 and 3"]
    assert errors_of(with_item(1, min_choices=0)) == [
        "items[1].min_choices: the board asks for 0 choice(s) but has 3 option(s); set it "
        "between 1 and 3"]
    assert errors_of(with_item(1, min_choices=True)) == [
        "items[1].min_choices: must be a whole number, not true/false"]
    # Left over on an item that is no longer a board: meaningless, so it becomes 1.
    assert parse_document(json.dumps(with_item(0, min_choices=2))).items[0].min_choices == 1
    doc = with_item(1, min_choices=_DROP)
    assert parse_document(json.dumps(doc)).items[1].min_choices == 1


def test_quick_checks():
    assert errors_of(with_item(5, questions=[])) == [
        "items[5].questions: There are no questions; add at least one"]
    assert errors_of(with_item(5, questions=_DROP)) == [
        "items[5].questions: There are no questions; add at least one"]
    assert errors_of(with_item(5, standards=["NF.1", "NF.2"])) == [
        "items[5].standards: a quick check must be aligned to exactly one standard; it has 2"]
    assert errors_of(with_item(5, standards=[])) == [
        "items[5].standards: a quick check must be aligned to exactly one standard; it has 0"]
    assert errors_of(with_item(5, questions=[{"prompt": "", "kind": "numeric", "answer": "x"},
                                             {"prompt": "ok", "kind": "choice",
                                              "choices": ["a"], "answer": 0}])) == [
        "items[5].questions: Question 1: the question is empty",
        "items[5].questions: Question 1: answer must be a finite number, not 'x'",
        "items[5].questions: Question 2: the question has 1 choice; add at least 2",
    ]
    assert errors_of(with_item(5, questions="Q: 1+1?\n= 2")) == [
        "items[5].questions: The questions must be a list, not text"]
    assert errors_of(with_item(0, questions=[{"prompt": "x"}])) == [
        "items[0].questions: only a quick check has questions; remove them or make the item a "
        "quick_check"]


def test_cycles_are_reported():
    doc = document()
    doc["items"][0]["prereq_items"] = ["check"]
    assert errors_of(doc) == [
        "items: these items wait on each other, so none can ever unlock: 'intro' → 'check' → "
        "'pick' → 'intro'; remove one of these prerequisites"]
    doc = document()
    doc["items"][1]["prereq_items"] = ["vid"]  # the board waits on its own option
    assert errors_of(doc) == [
        "items: these items wait on each other, so none can ever unlock: 'pick' → 'vid' → "
        "'pick'; remove one of these prerequisites"]


def test_errors_are_capped():
    doc = document()
    doc["items"] = [{"key": "", "kind": "x", "tag": "y", "title": ""} for _ in range(40)]
    errors = errors_of(doc)
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1] == f"…and {4 * 40 - MAX_ERRORS} more"


# ---------------------------------------------------------------- properties

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def _maybe(strategy):
    return st.one_of(strategy, strategy, _json_values)


_keys = st.sampled_from(["a", "b", "c", " a", ""])
_codes = st.sampled_from(["NF.1", "NF.2", "X"])
_items_json = st.fixed_dictionaries(
    {"key": _maybe(_keys), "kind": _maybe(st.sampled_from([k.value for k in ItemKind])),
     "tag": _maybe(st.sampled_from([t.value for t in Tag])), "title": _maybe(st.just("T"))},
    optional={
        "body": _maybe(st.sampled_from(["<p>x</p>", "plain", "<script>x</script>"])),
        "url": _maybe(st.sampled_from(["https://example.com", "javascript:x", None])),
        "standards": _maybe(st.lists(_codes, max_size=3)),
        "prereq_standards": _maybe(st.lists(_codes, max_size=2)),
        "prereq_items": _maybe(st.lists(_keys, max_size=2)),
        "board": _maybe(_keys),
        "min_choices": _maybe(st.integers(-1, 3)),
        "questions": _maybe(st.lists(st.fixed_dictionaries(
            {"prompt": _maybe(st.just("p")), "kind": _maybe(st.sampled_from(["choice",
                                                                            "numeric"])),
             "answer": _maybe(st.integers(0, 2)),
             "choices": _maybe(st.lists(st.sampled_from(["x", "y", "z"]), max_size=3))}),
            max_size=2)),
    },
)
_documents = st.fixed_dictionaries(
    {"format": _maybe(st.just("pathwise-playlist")), "version": _maybe(st.just(1))},
    optional={
        "title": _maybe(st.just("Playlist")),
        "description": _maybe(st.just("d")),
        "standards": _maybe(st.lists(_codes, max_size=2)),
        "standard_definitions": _maybe(st.lists(st.fixed_dictionaries(
            {"code": _maybe(_codes), "title": _maybe(st.just("t"))},
            optional={"group": _maybe(st.just("g")), "description": _maybe(st.just(""))}),
            max_size=3)),
        "items": _maybe(st.lists(_items_json, max_size=5)),
    },
)


@settings(max_examples=120, deadline=None)
@given(st.one_of(_documents, _json_values))
def test_any_json_gives_data_or_transfer_error(doc):
    try:
        data = parse_document(json.dumps(doc))
    except TransferError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        "\n".join(exc.errors).encode("utf-8")  # messages are printable, even for odd input
    else:
        assert parse_document(to_json_bytes(data)) == data


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40))
def test_any_bytes_give_data_or_transfer_error(raw):
    try:
        parse_document(raw)
    except TransferError:
        pass


_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
_titles = _line.map(lambda s: " ".join(s.split())).filter(bool)
_multi = st.text(st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\n\t"),
                 max_size=20).map(lambda s: s.strip())
_question = st.one_of(
    st.builds(lambda p, a: Question(p, "numeric", (), float(a), 0.5), _titles,
              st.integers(-100, 100)),
    st.builds(lambda p, n: Question(p, "choice", ("yes", "no", "maybe"), float(n)), _titles,
              st.integers(0, 2)),
)
_urls = st.sampled_from(["https://example.com/a", "http://localhost:8080/x?y=1#z",
                         "https://youtu.be/dQw4w9WgXcQ"])
_bodies = st.sampled_from(["", "Line one\nline two\n\nNext & last", "<b>bold</b> <i>x</i>",
                           '<a href="https://example.com">x</a><script>y</script>',
                           "<li><table><li>"])


@st.composite
def playlists(draw) -> PlaylistData:
    codes = draw(st.lists(st.sampled_from(["NF.1", "NF.2", "G.1", "Ünï ✓"]), min_size=1,
                          unique=True))
    defs = tuple(StandardData(code, draw(_titles), draw(_multi), draw(st.none() | _titles))
                 for code in codes)
    items: list[ItemData] = []
    kinds = [k.value for k in ItemKind if k is not ItemKind.CHOICE_BOARD]
    for index in range(draw(st.integers(0, 6))):
        earlier = [i.key for i in items]
        common = {
            "tag": draw(st.sampled_from([t.value for t in Tag])),
            "title": draw(_titles),
            "body": sanitize_html(draw(_bodies)),
            "prereq_standards": tuple(draw(st.lists(st.sampled_from(codes), unique=True))),
            "prereq_items": tuple(draw(st.lists(st.sampled_from(earlier), unique=True)))
            if earlier else (),
        }
        if draw(st.booleans()) and index < 5:
            options = draw(st.integers(1, 3))
            items.append(ItemData(f"b{index}", "choice_board", min_choices=draw(
                st.integers(1, options)), **common))
            for n in range(options):
                items.append(ItemData(f"b{index}o{n}", "practice", "may_do", draw(_titles),
                                      board=f"b{index}", url=draw(st.none() | _urls)))
            continue
        kind = draw(st.sampled_from(kinds))
        if kind == "quick_check":
            items.append(ItemData(f"i{index}", kind, **common,
                                  standards=(draw(st.sampled_from(codes)),),
                                  questions=tuple(draw(st.lists(_question, min_size=1,
                                                                max_size=3)))))
        else:
            url = draw(_urls) if kind in ("resource", "video") else draw(st.none() | _urls)
            items.append(ItemData(f"i{index}", kind, **common, url=url, standards=tuple(
                draw(st.lists(st.sampled_from(codes), unique=True)))))
    return PlaylistData(
        title=draw(_titles),
        description=sanitize_html(draw(_bodies)),
        standards=tuple(draw(st.lists(st.sampled_from(codes), unique=True))),
        items=tuple(items),
        standard_defs=defs,
    )


@settings(max_examples=50, deadline=None)
@given(playlists())
def test_round_trip_property(data):
    assert parse_document(to_json_bytes(data)) == data
