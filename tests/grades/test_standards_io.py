"""Standards import/export (pure): CSV and CASE in, CSV out, every error with its message."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lti_tool.grades.standards_io import (
    CODE_MAX,
    DESCRIPTION_MAX,
    GROUP_MAX,
    MAX_ERRORS,
    MAX_STANDARDS,
    TITLE_MAX,
    StandardRow,
    StandardsImportError,
    defuse,
    parse_case,
    parse_csv,
    to_csv,
)


def errors_of(parse, data) -> list[str]:
    with pytest.raises(StandardsImportError) as caught:
        parse(data)
    assert caught.value.errors, "an import error must say what is wrong"
    return caught.value.errors


def only_error(parse, data) -> str:
    errors = errors_of(parse, data)
    assert len(errors) == 1, errors
    return errors[0]


# ---------------------------------------------------------------------------
# CSV: good files
# ---------------------------------------------------------------------------


def test_csv_all_columns_in_file_order():
    rows = parse_csv(
        "code,title,description,group\n"
        "NF.1,Add fractions,Add and subtract fractions with unlike denominators.,Fractions\n"
        "NF.2,Multiply fractions,,Fractions\n"
        "G.1,Plot points,Graph points in the first quadrant.,\n"
    )
    assert rows == [
        StandardRow("NF.1", "Add fractions",
                    "Add and subtract fractions with unlike denominators.", "Fractions", 0),
        StandardRow("NF.2", "Multiply fractions", "", "Fractions", 1),
        StandardRow("G.1", "Plot points", "Graph points in the first quadrant.", None, 2),
    ]
    assert all(row.case_identifier is None for row in rows)


def test_csv_only_required_columns_any_order_and_case_insensitive_header():
    rows = parse_csv(" Title , CODE \nAdd fractions,NF.1\n")
    assert rows == [StandardRow("NF.1", "Add fractions", "", None, 0)]


def test_csv_utf8_bom_bytes_and_unicode():
    data = ("code,title,description,group\n"
            "FR.1,Écrire une phrase complète,Über 10 Wörter — 中文 ✓ 🙂,Français\n"
            ).encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    (row,) = parse_csv(data)
    assert row == StandardRow("FR.1", "Écrire une phrase complète",
                              "Über 10 Wörter — 中文 ✓ 🙂", "Français", 0)


def test_csv_bom_in_str_input_is_ignored():
    assert parse_csv("\ufeffcode,title\nA,B\n")[0].code == "A"


def test_csv_semicolons_sniffed_from_header():
    # Excel in a decimal-comma locale writes semicolons and leaves commas unquoted.
    rows = parse_csv(b"code;title;description;group\r\nNF.1;Add, subtract;1,5 + 2,25;Numbers\r\n")
    assert rows == [StandardRow("NF.1", "Add, subtract", "1,5 + 2,25", "Numbers", 0)]


def test_csv_excel_sep_hint_line():
    rows = parse_csv("sep=;\ncode;title\nA;b, c\n")
    assert rows == [StandardRow("A", "b, c", "", None, 0)]


def test_csv_quoted_fields_with_newlines_and_quotes():
    data = ('code,title,description\r\n'
            '"A.1","Read ""closely""","First line\r\nSecond line\rThird, with comma"\r\n'
            'A.2,"Title over\ntwo lines",plain\r\n')
    rows = parse_csv(data)
    assert rows[0] == StandardRow("A.1", 'Read "closely"',
                                  "First line\nSecond line\nThird, with comma", None, 0)
    # A title is one line: the break becomes a space.
    assert rows[1].title == "Title over two lines"


def test_csv_trims_values_and_collapses_title_whitespace():
    (row,) = parse_csv("code,title,description,group\n  A.1 ,  Add   two\tnumbers ,  d  ,   \n")
    assert row == StandardRow("A.1", "Add two numbers", "d", None, 0)


def test_csv_blank_lines_and_empty_spreadsheet_rows_are_skipped():
    data = "\n\ncode,title,group\n\nA,First,\n,,\n   \nB,Second,\n,,\n,,\n"
    rows = parse_csv(data)
    assert [(r.code, r.position) for r in rows] == [("A", 0), ("B", 1)]


def test_csv_trailing_unnamed_empty_column_is_tolerated():
    assert parse_csv("code,title,\nA,B,\nC,D\n")[1] == StandardRow("C", "D", "", None, 1)


def test_csv_codes_are_case_sensitive():
    rows = parse_csv("code,title\nma.1,lower\nMA.1,upper\n")
    assert [r.code for r in rows] == ["ma.1", "MA.1"]


def test_csv_apostrophe_before_formula_character_is_removed_on_import():
    rows = parse_csv("code,title,description,group\n'=A,'+t,'-d,'@g\nB,'plain,''=x,\n")
    assert rows[0] == StandardRow("=A", "+t", "-d", "@g", 0)
    assert rows[1] == StandardRow("B", "'plain", "'=x", None, 1)


def test_csv_limits_are_inclusive():
    code, title, desc, group = ("C" * CODE_MAX, "t" * TITLE_MAX, "d" * DESCRIPTION_MAX,
                                "g" * GROUP_MAX)
    (row,) = parse_csv(f"code,title,description,group\n{code},{title},{desc},{group}\n")
    assert (row.code, row.title, row.description, row.group) == (code, title, desc, group)


def test_csv_exactly_the_maximum_number_of_rows():
    data = "code,title\n" + "".join(f"S{i},Standard {i}\n" for i in range(MAX_STANDARDS))
    rows = parse_csv(data)
    assert len(rows) == MAX_STANDARDS
    assert rows[-1].position == MAX_STANDARDS - 1


# ---------------------------------------------------------------------------
# CSV: errors, each with its message
# ---------------------------------------------------------------------------


def test_import_error_is_a_value_error_listing_messages():
    with pytest.raises(ValueError) as caught:
        parse_csv("code,title\n,x\n")
    assert isinstance(caught.value, StandardsImportError)
    assert "line 2" in str(caught.value)


def test_csv_not_utf8_says_save_as_utf8_and_names_the_line():
    data = "code,title\nA,Café\n".encode("cp1252")
    message = only_error(parse_csv, data)
    assert message.startswith("line 2: byte 0xE9 is not UTF-8")
    assert "save the file as UTF-8" in message


@pytest.mark.parametrize("data", [
    "code,title\nA,B\n".encode("utf-16"),  # with BOM
    "code,title\nA,B\n".encode("utf-16-le"),  # without BOM: NUL bytes
])
def test_csv_utf16_says_save_as_utf8(data):
    assert "save the file as UTF-8" in only_error(parse_csv, data)


def test_csv_excel_workbook_is_recognised():
    message = only_error(parse_csv, b"PK\x03\x04\x14\x00\x06\x00rest of a zip")
    assert "Excel workbook (.xlsx)" in message and "CSV UTF-8" in message


@pytest.mark.parametrize("data", ["", b"", "\n\n  \n", "\ufeff"])
def test_csv_empty_file(data):
    assert only_error(parse_csv, data).startswith("the file is empty; the first line must be "
                                                  "the header code,title,description,group")


def test_csv_header_without_rows():
    message = only_error(parse_csv, "code,title\n\n")
    assert message.startswith("the file has a header but no standards")


def test_csv_extra_columns_are_named():
    message = only_error(parse_csv, "code,title,Points,notes\nA,B,1,x\n")
    assert message == ('line 1: unknown columns "Points", "notes"; the allowed columns are '
                       'code, title, description and group, so remove the others')


def test_csv_missing_header_row():
    # The first row is data, so neither required column is found.
    errors = errors_of(parse_csv, "NF.1,Add fractions\n")
    assert errors[0].startswith('line 1: unknown columns "NF.1", "Add fractions"')
    assert errors[1] == ("line 1: the header has no code or title column; the first line must "
                         "be a header such as code,title,description,group")


def test_csv_missing_title_column_and_duplicate_column():
    errors = errors_of(parse_csv, "code,code,description\nA,B,C\n")
    assert errors == [
        'line 1: the column "code" appears twice; keep only one',
        "line 1: the header has no title column; the first line must be a header such as "
        "code,title,description,group",
    ]


def test_csv_header_line_number_counts_leading_blank_lines():
    errors = errors_of(parse_csv, "\n\ncode,name\n")
    assert errors[0].startswith('line 3: unknown column "name"; ')
    assert errors[1].startswith("line 3: the header has no title column")


def test_csv_empty_code_and_title():
    errors = errors_of(parse_csv, "code,title\n,Has no code\nHAS.TITLE.NOT,\n")
    assert errors == [
        "line 2: the code is empty; every standard needs a code such as MATH.1",
        "line 3: the title is empty; every standard needs a short title",
    ]


def test_csv_duplicate_codes_name_both_lines():
    errors = errors_of(parse_csv, "code,title\nA,one\nB,two\nA,three\nA,\n")
    assert errors == [
        'line 4: the code "A" is already used on line 2; each code must be unique (codes '
        "are case-sensitive)",
        # A line with another problem is still checked for a duplicate code.
        "line 5: the title is empty; every standard needs a short title",
        'line 5: the code "A" is already used on line 2; each code must be unique (codes '
        "are case-sensitive)",
    ]


def test_csv_line_numbers_are_physical_lines_after_multiline_values():
    errors = errors_of(parse_csv, 'code,title,description\nA,t,"two\nlines"\n,missing code\n')
    assert errors == ["line 4: the code is empty; every standard needs a code such as MATH.1"]


def test_csv_too_long_values():
    data = ("code,title,description,group\n"
            f"{'C' * (CODE_MAX + 1)},t,,\n"
            f"B,{'t' * (TITLE_MAX + 1)},,\n"
            f"D,t,{'d' * (DESCRIPTION_MAX + 1)},\n"
            f"E,t,,{'g' * (GROUP_MAX + 1)}\n")
    errors = errors_of(parse_csv, data)
    assert len(errors) == 4
    assert errors[0].startswith('line 2: code "CCCC')
    assert errors[0].endswith("is 61 characters long; codes can be at most 60 characters")
    assert errors[1] == ("line 3: the title is 301 characters long; titles can be at most 300 "
                         "characters, so move the rest to the description")
    assert errors[2] == ("line 4: the description is 5,001 characters long; descriptions can "
                         "be at most 5,000 characters")
    assert errors[3] == ("line 5: the group is 201 characters long; group names can be at "
                         "most 200 characters")


def test_csv_control_characters():
    data = ('code,title,description,group\n'
            '"A\tB",t,,\n'
            '"C\nD",t,,\n'
            'E,ti\x00tle,,\n'
            'F,t,bell\x07,\n'
            'G,t,,gr\x1boup\n'
            'H,t,"tab\tand\nnewline are fine here",\n')
    errors = errors_of(parse_csv, data)
    assert errors == [
        'line 2: code "A B" contains a tab; a code must be plain text on one line, so '
        "remove it",
        'line 3: code "C D" contains a line break; a code must be plain text on one line, '
        "so remove it",
        "line 5: the title contains a NUL byte; remove it",
        "line 6: the description contains the control character U+0007; remove it",
        "line 7: the group contains the control character U+001B; remove it",
    ]


def test_csv_value_without_a_header_column():
    message = only_error(parse_csv, "code,title\nA,Add, subtract\n")
    assert message == ('line 2: the value "subtract" in column 3 has no column name in the '
                       'header; remove it, or if a title or description contains ",", wrap '
                       "that value in double quotes")


def test_csv_semicolon_hint_in_extra_value_message():
    message = only_error(parse_csv, "code;title\nA;b;c\n")
    assert 'contains ";"' in message


def test_csv_unclosed_quote_names_the_line_it_starts_on():
    errors = errors_of(parse_csv, 'code,title\nA,ok\nB,"never closed\nC,x\nD,y\n')
    assert errors == ['line 3: a quoted value that starts on this line is never closed; add '
                      'the missing closing quote (")']


def test_csv_enormous_value_points_at_a_missing_quote():
    message = only_error(parse_csv, 'code,title\nA,"' + "x" * 200_000 + '"\n')
    assert message.startswith("line 2: a value is far too long (over ")
    assert "missing closing quote" in message


def test_csv_malformed_quotes():
    message = only_error(parse_csv, 'code,title\nA,ok\nB,"quoted" then text\n')
    assert message.startswith("line 3: the quotes are malformed (")
    assert 'write each quote inside it twice ("")' in message


def test_csv_too_many_rows():
    data = "code,title\n" + "".join(f"S{i},T\n" for i in range(MAX_STANDARDS + 5))
    assert only_error(parse_csv, data) == ("the file has 2,005 standards; at most 2,000 can "
                                           "be imported at once, so split it into smaller "
                                           "files")


def test_csv_collects_all_problems_up_to_the_cap():
    data = "code,title\n" + "".join(f"S{i},\n" for i in range(MAX_ERRORS + 7))
    errors = errors_of(parse_csv, data)
    assert len(errors) == MAX_ERRORS + 1
    assert errors[0] == "line 2: the title is empty; every standard needs a short title"
    assert errors[MAX_ERRORS - 1].startswith(f"line {MAX_ERRORS + 1}: ")
    assert errors[-1] == "…and 7 more"


def test_csv_exactly_the_cap_has_no_more_line():
    data = "code,title\n" + "".join(f"S{i},\n" for i in range(MAX_ERRORS))
    errors = errors_of(parse_csv, data)
    assert len(errors) == MAX_ERRORS
    assert not errors[-1].startswith("…")


# ---------------------------------------------------------------------------
# CSV export
# ---------------------------------------------------------------------------


def test_to_csv_header_quoting_and_crlf():
    text = to_csv([
        StandardRow("A.1", 'Say "hi", twice', "line one\nline two", "Group; one", 0),
        StandardRow("B", "Plain", "", None, 1),
    ])
    assert text == ('code,title,description,group\r\n'
                    'A.1,"Say ""hi"", twice","line one\nline two",Group; one\r\n'
                    'B,Plain,,\r\n')


def test_to_csv_of_nothing_is_just_the_header():
    assert to_csv([]) == "code,title,description,group\r\n"


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_to_csv_defuses_formula_injection_in_every_field(trigger):
    value = f"{trigger}HYPERLINK(\"https://evil.example\")"
    text = to_csv([StandardRow(value, value, value, value, 0)])
    body = text.split("\r\n", 1)[1]
    # Every field starts with the apostrophe (quoted ones right after the quote).
    fields = body.count("'" + trigger)
    assert fields == 4, body


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("'=x", "''=x"), ("''-x", "'''-x"),
    ("'plain", "'plain"), ("a=b", "a=b"), (" =x", " =x"), ("", ""), ("'", "'"),
])
def test_defuse(value, expected):
    assert defuse(value) == expected


def test_to_csv_adds_one_more_apostrophe_to_already_defused_looking_values():
    text = to_csv([StandardRow("'=A", "''+B", "'plain", None, 0)])
    assert text.splitlines()[1] == "''=A,'''+B,'plain,"


def test_export_then_import_keeps_formula_like_values():
    rows = [StandardRow("-1", "=SUM(A1:A2)", "+ and - signs", "@mentions", 0),
            StandardRow("'=A", "''@B", "'-x", None, 1)]
    assert parse_csv(to_csv(rows)) == rows


_TRICKY = st.sampled_from([",", ";", '"', "'", "=", "+", "-", "@", " ", "é", "中", "🙂",
                           "\u00a0", "\u2028", "\ufeff", "…", "\\"])
_PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc"))
_ONE_LINE_TEXT = st.text(st.one_of(_PRINTABLE, _TRICKY, st.sampled_from(["\t", "\n"])))


def _one_line(limit: int, min_size: int):
    return (_ONE_LINE_TEXT.map(lambda s: " ".join(s.split())[:limit].strip())
            .filter(lambda s: len(s) >= min_size))


_codes = (st.text(st.one_of(_PRINTABLE, _TRICKY), min_size=1, max_size=CODE_MAX)
          .map(str.strip).filter(bool))
_descriptions = st.text(st.one_of(_PRINTABLE, _TRICKY, st.sampled_from(["\t", "\n"])),
                        max_size=200).map(str.strip)
_groups = _one_line(GROUP_MAX, 0).map(lambda s: s or None)


@st.composite
def _standard_lists(draw) -> list[StandardRow]:
    fields = draw(st.lists(st.tuples(_codes, _one_line(TITLE_MAX, 1), _descriptions, _groups),
                           max_size=8, unique_by=lambda f: f[0]))
    return [StandardRow(code, title, description, group, position)
            for position, (code, title, description, group) in enumerate(fields)]


@settings(max_examples=200, deadline=None)
@given(_standard_lists())
def test_round_trip_property(rows):
    text = to_csv(rows)
    if rows:
        assert parse_csv(text) == rows
        assert parse_csv(text.encode("utf-8-sig")) == rows
    else:
        with pytest.raises(StandardsImportError):
            parse_csv(text)  # a header alone is "no standards"
    # And nothing a spreadsheet would run survives export.
    for line in text.split("\r\n")[1:]:
        for start in ("=", "+", "-", "@", '"=', '"+', '"-', '"@'):
            assert not line.startswith(start)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(st.one_of(_PRINTABLE, _TRICKY,
                                   st.sampled_from(["\n", "\r", "\x00", ","]))),
                 st.binary()),
       st.sampled_from(["", "code,title,description,group\n", "code;title\n"]))
def test_parse_csv_only_ever_raises_import_errors(body, header):
    data = header.encode() + body if isinstance(body, bytes) else header + body
    try:
        rows = parse_csv(data)
    except StandardsImportError as exc:
        assert 1 <= len(exc.errors) <= MAX_ERRORS + 1
    else:
        assert [row.position for row in rows] == list(range(len(rows)))


# ---------------------------------------------------------------------------
# CASE packages
# ---------------------------------------------------------------------------

DOC = "c6fe1ba0-0000-4000-8000-000000000000"


def cf_item(identifier: str, code: str | None = None, full: str | None = None,
            abbreviated: str | None = None, item_type: str = "Standard",
            **extra: object) -> dict[str, object]:
    item: dict[str, object] = {
        "identifier": identifier,
        "uri": f"https://case.example/uri/{identifier}",
        "CFDocumentURI": {"identifier": DOC, "uri": f"https://case.example/uri/{DOC}",
                          "title": "Grade 5 Mathematics"},
        "CFItemType": item_type,
        "lastChangeDateTime": "2024-05-01T00:00:00+00:00",
        **extra,
    }
    if code is not None:
        item["humanCodingScheme"] = code
    if full is not None:
        item["fullStatement"] = full
    if abbreviated is not None:
        item["abbreviatedStatement"] = abbreviated
    return item


def is_child_of(child: str, parent: str, sequence: int | None = None,
                kind: str = "isChildOf") -> dict[str, object]:
    association: dict[str, object] = {
        "identifier": f"assoc-{child}-{parent}",
        "uri": f"https://case.example/uri/assoc-{child}-{parent}",
        "associationType": kind,
        "originNodeURI": {"identifier": child, "uri": f"https://case.example/uri/{child}",
                          "title": child},
        "destinationNodeURI": {"identifier": parent,
                               "uri": f"https://case.example/uri/{parent}", "title": parent},
        "lastChangeDateTime": "2024-05-01T00:00:00+00:00",
    }
    if sequence is not None:
        association["sequenceNumber"] = sequence
    return association


def package(items: list[dict[str, object]], associations: list[dict[str, object]]
            ) -> dict[str, object]:
    return {
        "CFDocument": {"identifier": DOC, "uri": f"https://case.example/uri/{DOC}",
                       "title": "Grade 5 Mathematics", "creator": "State DOE",
                       "adoptionStatus": "Adopted",
                       "CFPackageURI": {"identifier": DOC, "title": "Grade 5 Mathematics",
                                        "uri": f"https://case.example/pkg/{DOC}"}},
        "CFItems": items,
        "CFAssociations": associations,
    }


LONG_STATEMENT = ("Fluently multiply multi-digit whole numbers using the standard algorithm "
                  "and explain the reasoning ") * 5


def grade5_package() -> dict[str, object]:
    """A document with two strands (code-less items) and four standards.

    Items are listed out of order, as exports often are: the order must come from the
    associations' sequenceNumbers and from the codes.
    """
    items = [
        cf_item("std-nbt-6", "5.NBT.6", LONG_STATEMENT),
        cf_item("std-nf-1", "5.NF.1",
                "Add and subtract fractions with unlike denominators (including mixed "
                "numbers) by replacing given fractions with equivalent fractions.",
                abbreviated="Add and subtract unlike fractions"),
        cf_item("strand-nf", full="Number and Operations—Fractions", abbreviated="NF",
                item_type="Domain"),
        cf_item("strand-nbt", full="Number and Operations in Base Ten", item_type="Domain"),
        cf_item("std-nf-2", "5.NF.2", "Solve word problems involving addition and "
                                      "subtraction of fractions."),
        cf_item("std-nbt-5", "5.NBT.5", "Fluently multiply multi-digit whole numbers."),
        # A clarification without a code or children: not a standard, not a group.
        cf_item("note-1", full="Students are not expected to use the term 'algorithm'.",
                item_type="Clarification"),
    ]
    associations = [
        is_child_of("strand-nf", DOC, 2),
        is_child_of("strand-nbt", DOC, 1),
        is_child_of("std-nf-2", "strand-nf", 2),
        is_child_of("std-nf-1", "strand-nf", 1),
        is_child_of("std-nbt-6", "strand-nbt"),  # no sequenceNumbers here: codes decide
        is_child_of("std-nbt-5", "strand-nbt"),
        is_child_of("note-1", "std-nbt-6"),
        is_child_of("std-nf-1", "std-nbt-5", kind="isRelatedTo"),  # not hierarchy
    ]
    return package(items, associations)


def test_case_realistic_package_groups_order_and_titles():
    rows = parse_case(json.dumps(grade5_package()))
    assert [(r.code, r.group, r.position) for r in rows] == [
        ("5.NBT.5", "Number and Operations in Base Ten", 0),
        ("5.NBT.6", "Number and Operations in Base Ten", 1),
        ("5.NF.1", "Number and Operations—Fractions", 2),
        ("5.NF.2", "Number and Operations—Fractions", 3),
    ]
    by_code = {r.code: r for r in rows}
    # Abbreviated statement → title; the full statement becomes the description.
    nf1 = by_code["5.NF.1"]
    assert nf1.title == "Add and subtract unlike fractions"
    assert nf1.description.startswith("Add and subtract fractions with unlike denominators")
    assert nf1.case_identifier == "std-nf-1"
    # A short full statement is the title, and is not repeated as the description.
    nbt5 = by_code["5.NBT.5"]
    assert (nbt5.title, nbt5.description) == ("Fluently multiply multi-digit whole numbers.", "")
    # A long one is cut at a word boundary with an ellipsis and kept whole as description.
    nbt6 = by_code["5.NBT.6"]
    assert len(nbt6.title) <= TITLE_MAX
    assert nbt6.title.endswith("…")
    assert LONG_STATEMENT.startswith(nbt6.title[:-1])
    assert LONG_STATEMENT[len(nbt6.title) - 1] == " "  # the cut fell between words
    assert nbt6.description == LONG_STATEMENT.strip()


def test_case_accepts_bytes_with_bom_and_a_cfpackage_wrapper():
    data = json.dumps({"CFPackage": grade5_package()}, ensure_ascii=False).encode("utf-8-sig")
    assert [r.code for r in parse_case(data)] == ["5.NBT.5", "5.NBT.6", "5.NF.1", "5.NF.2"]


def test_case_natural_order_of_list_enumeration_then_codes():
    items = [cf_item("a", "X.10", "ten"), cf_item("b", "X.9", "nine"),
             cf_item("c", "X.2", "two", listEnumeration="2"),
             cf_item("d", "X.1", "one", listEnumeration="10")]
    rows = parse_case(json.dumps(package(items, [])))  # no associations: all top level
    # listEnumeration first (2 before 10), then items without one by code (9 before 10).
    assert [r.code for r in rows] == ["X.2", "X.1", "X.9", "X.10"]
    assert all(r.group is None for r in rows)


def test_case_sequence_number_beats_codes_and_may_sit_on_the_item():
    items = [cf_item("a", "A", "a"), cf_item("b", "B", "b", sequenceNumber="1"),
             cf_item("c", "C", "c")]
    associations = [is_child_of("a", DOC, 2), is_child_of("b", DOC), is_child_of("c", DOC)]
    assert [r.code for r in parse_case(json.dumps(package(items, associations)))] == [
        "B", "A", "C"]


def test_case_nearest_group_and_standards_under_standards():
    items = [
        cf_item("outer", full="Outer strand"),
        cf_item("inner", full="  Inner\nstrand  "),
        cf_item("parent", "P.1", "Parent standard"),
        cf_item("child", "P.1.a", "Child standard"),
        cf_item("top", "T.1", "Top-level standard"),
    ]
    associations = [is_child_of("outer", DOC, 1), is_child_of("inner", "outer", 1),
                    is_child_of("parent", "inner", 1), is_child_of("child", "parent", 1),
                    is_child_of("top", DOC, 2)]
    rows = parse_case(json.dumps(package(items, associations)))
    assert [(r.code, r.group) for r in rows] == [
        ("P.1", "Inner strand"), ("P.1.a", "Inner strand"), ("T.1", None)]


def test_case_group_name_is_shortened_to_the_limit():
    long_name = "Strand " * 60
    items = [cf_item("g", full=long_name), cf_item("s", "S.1", "s")]
    (row,) = parse_case(json.dumps(package(items, [is_child_of("s", "g")])))
    assert row.group is not None and len(row.group) <= GROUP_MAX
    assert row.group.endswith("Strand…")


def test_case_group_falls_back_to_abbreviated_statement():
    items = [cf_item("g", abbreviated="Geometry"), cf_item("s", "G.1", "s")]
    (row,) = parse_case(json.dumps(package(items, [is_child_of("s", "g")])))
    assert row.group == "Geometry"


def test_case_first_parent_decides_when_an_item_has_two():
    items = [cf_item("g1", full="First"), cf_item("g2", full="Second"),
             cf_item("s", "S", "s"), cf_item("t", "T", "t")]
    associations = [is_child_of("s", "g2"), is_child_of("s", "g1"), is_child_of("t", "g1"),
                    is_child_of("g1", DOC, 1), is_child_of("g2", DOC, 2)]
    rows = parse_case(json.dumps(package(items, associations)))
    assert [(r.code, r.group) for r in rows] == [("T", "First"), ("S", "Second")]


def test_case_deep_hierarchy_needs_no_recursion():
    depth = 3000
    items = [cf_item(f"g{i}", full=f"Level {i}") for i in range(depth)]
    items.append(cf_item("s", "DEEP.1", "At the bottom"))
    associations = [is_child_of(f"g{i + 1}", f"g{i}") for i in range(depth - 1)]
    associations.append(is_child_of("s", f"g{depth - 1}"))
    (row,) = parse_case(json.dumps(package(items, associations)))
    assert row.group == f"Level {depth - 1}"


def test_case_statement_whitespace_and_control_characters_are_cleaned():
    items = [cf_item("s", " S.1 ", "Line one\r\n\tLine\x07 two  "),
             cf_item("t", "T.1", "Line one\r\nLine two", abbreviated=" Short\n title ")]
    rows = parse_case(json.dumps(package(items, [])))
    assert (rows[0].code, rows[0].title) == ("S.1", "Line one Line two")
    assert rows[0].description == ""  # it would only repeat the title
    assert (rows[1].title, rows[1].description) == ("Short title", "Line one\nLine two")


def test_case_errors_invalid_json():
    message = only_error(parse_case, '{"CFItems": [}')
    assert message.startswith("the file is not valid JSON (line 1, column 14: ")


@pytest.mark.parametrize("data", ["[]", '"CFItems"', "null"])
def test_case_errors_not_a_package(data):
    assert only_error(parse_case, data).startswith("the file is JSON but not a CASE package")


@pytest.mark.parametrize("doc", [{"CFDocument": {"identifier": DOC}},
                                 {"CFDocument": {"identifier": DOC}, "CFItems": []},
                                 {"CFItems": {"not": "a list"}}])
def test_case_errors_no_items(doc):
    assert only_error(parse_case, json.dumps(doc)).startswith("the package has no CFItems")


def test_case_errors_not_utf8():
    data = json.dumps(grade5_package()).replace("Fractions", "Fractións").encode("latin-1")
    assert "save the file as UTF-8" in only_error(parse_case, data)


def test_case_errors_zip():
    assert "unzip it" in only_error(parse_case, b"PK\x03\x04....")


def test_case_errors_cycle():
    items = [cf_item("a", "A", "a"), cf_item("b", "B", "b"), cf_item("c", "C", "c"),
             cf_item("self", "SELF", "self")]
    associations = [is_child_of("b", "a"), is_child_of("c", "b"), is_child_of("a", "c"),
                    is_child_of("self", "self")]
    errors = errors_of(parse_case, json.dumps(package(items, associations)))
    assert errors == [
        'CFItem "a": the isChildOf associations form a cycle ("a" → "c" → "b" → "a", each '
        "the child of the next); remove one of them",
        'CFItem "self": the isChildOf associations form a cycle ("self" → "self", each the '
        "child of the next); remove one of them",
    ]


def test_case_errors_cycle_through_a_second_parent():
    items = [cf_item("g", full="Group"), cf_item("s", "S", "s")]
    associations = [is_child_of("s", "g"), is_child_of("g", DOC), is_child_of("g", "s")]
    (message,) = errors_of(parse_case, json.dumps(package(items, associations)))
    assert message.startswith('CFItem "g": the isChildOf associations form a cycle')


def test_case_errors_unknown_references():
    items = [cf_item("a", "A", "a")]
    associations = [is_child_of("a", "missing-parent"), is_child_of("ghost", "a"),
                    is_child_of(DOC, "a"),
                    {"associationType": "isChildOf", "originNodeURI": {"identifier": "a"}}]
    errors = errors_of(parse_case, json.dumps(package(items, associations)))
    assert errors == [
        'CFItem "a": its isChildOf parent "missing-parent" (CFAssociation '
        '"assoc-a-missing-parent") is neither a CFItem nor the CFDocument of this package; '
        "include the parent or remove the association",
        'CFAssociation "assoc-ghost-a": its child (originNodeURI) "ghost" is not a CFItem in '
        "this package; include that CFItem in the package or remove the association",
        f'CFAssociation "assoc-{DOC}-a": its child (originNodeURI) "{DOC}" is the CFDocument, '
        "which cannot be a child; include that CFItem in the package or remove the "
        "association",
        "CFAssociations[3]: this isChildOf association has no destinationNodeURI.identifier; "
        "export the framework again",
    ]


def test_case_errors_items():
    items: list[object] = [
        "not an object",
        {"humanCodingScheme": "X", "fullStatement": "no identifier"},
        cf_item("dup", "D.1", "d"),
        cf_item("dup", "D.2", "d again"),
        cf_item("nostatement", "N.1"),
        cf_item("same-code", "D.1", "same code as dup"),
        cf_item("long", "L" * (CODE_MAX + 1), "long code"),
        cf_item("tab", "T\t1", "tab in code"),
        cf_item("x" * 101, "ID.1", "identifier too long"),
        cf_item("nameless-group"),
        cf_item("member", "M.1", "member of a nameless group"),
    ]
    associations = [is_child_of("member", "nameless-group")]
    errors = errors_of(parse_case, json.dumps(package(items, associations)))  # type: ignore
    assert errors == [
        "CFItems[0]: is not an object; export the framework again",
        "CFItems[1]: has no identifier; every CFItem needs one",
        'CFItem "dup": appears more than once in CFItems; identifiers must be unique',
        'CFItem "nostatement": has the code "N.1" but no fullStatement; a standard needs its '
        "statement, so add it in the framework",
        'CFItem "same-code": the code "D.1" is also used by CFItem "dup"; codes must be '
        "unique in a course (codes are case-sensitive)",
        f'CFItem "long": code "{"L" * 39}…" is 61 characters long; codes can be at most 60 '
        "characters",
        'CFItem "tab": code "T 1" contains a tab; a code must be plain text on one line, so '
        "remove it",
        f'CFItem "{"x" * 79}…": the identifier is 101 characters long; at most 100 are '
        "supported (CASE uses UUIDs)",
        'CFItem "nameless-group": it groups other items but has no fullStatement or '
        "abbreviatedStatement to name the group; add one",
    ]


def test_case_errors_too_many_standards():
    items = [cf_item(f"s{i}", f"S.{i}", "statement") for i in range(MAX_STANDARDS + 1)]
    assert only_error(parse_case, json.dumps(package(items, []))) == (
        "the package has 2,001 standards; at most 2,000 can be imported at once, so import a "
        "smaller framework or part of this one")


def test_case_errors_are_capped():
    items = [cf_item(f"s{i}", f"S.{i}") for i in range(MAX_ERRORS + 3)]
    errors = errors_of(parse_case, json.dumps(package(items, [])))
    assert len(errors) == MAX_ERRORS + 1 and errors[-1] == "…and 3 more"


_ids = st.sampled_from(["a", "b", "c", "d", DOC, "zz"])
_case_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(max_size=5), _ids)
_case_items = st.lists(st.one_of(
    _case_values,
    st.fixed_dictionaries({"identifier": _ids}, optional={
        "humanCodingScheme": _case_values, "fullStatement": _case_values,
        "abbreviatedStatement": _case_values, "listEnumeration": _case_values,
        "sequenceNumber": _case_values})), max_size=6)
_case_associations = st.lists(st.one_of(
    _case_values,
    st.fixed_dictionaries({"associationType": st.sampled_from(["isChildOf", "precedes"])},
                          optional={"originNodeURI": st.one_of(_case_values,
                                                               st.builds(dict, identifier=_ids)),
                                    "destinationNodeURI": st.builds(dict, identifier=_ids),
                                    "sequenceNumber": _case_values})), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "CFDocument": st.one_of(_case_values, st.builds(dict, identifier=st.just(DOC))),
    "CFItems": st.one_of(_case_values, _case_items),
    "CFAssociations": st.one_of(_case_values, _case_associations)}))
def test_parse_case_only_ever_raises_import_errors(document):
    try:
        rows = parse_case(json.dumps(document))
    except StandardsImportError as exc:
        assert 1 <= len(exc.errors) <= MAX_ERRORS + 1
    else:
        assert [row.position for row in rows] == list(range(len(rows)))
        assert len({row.code for row in rows}) == len(rows)
        assert all(row.case_identifier for row in rows)
