"""Evidence CSV import (pure): `student, standard, score, date` rows checked
against the course's roster and standards before anything is written."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date, datetime, timezone

MAX_ROWS = 20_000
COLUMNS = ("student", "standard", "score", "date")


class EvidenceImportError(ValueError):
    def __init__(self, errors: list[str]):
        shown = errors[:50] + ([f"…and {len(errors) - 50} more"] if len(errors) > 50 else [])
        super().__init__("\n".join(shown))
        self.errors = shown


@dataclass(frozen=True)
class EvidenceRow:
    line: int
    student_id: int
    standard_id: int
    score: float
    assessed_at: datetime


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EvidenceImportError(["The file is not UTF-8 text: save it as CSV (UTF-8) "
                                   "and try again."]) from None


def parse_evidence_csv(data: bytes | str, *, students: dict[str, int],
                       standards: dict[str, int], scale_max: float) -> list[EvidenceRow]:
    """`students` maps every accepted identifier (LMS id, email, full name,
    folded to lower case) to a student id; `standards` maps codes to ids.
    Every problem is reported with its line; nothing is returned partially."""
    text = _decode(data)
    sample = text.split("\n", 1)[0]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise EvidenceImportError([
            "line 1: the header needs the columns student, standard, score, date "
            f"(missing: {', '.join(missing)})."])
    index = {c: header.index(c) for c in COLUMNS}
    rows: list[EvidenceRow] = []
    errors: list[str] = []
    for line, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(f"More than {MAX_ROWS} rows: split the file.")
            break
        cells = {c: (record[i].strip() if i < len(record) else "") for c, i in index.items()}
        problems = []
        student = students.get(cells["student"].casefold())
        if student is None:
            problems.append(f"no student {cells['student'][:60]!r} in this course")
        standard = standards.get(cells["standard"])
        if standard is None:
            problems.append(f"no standard with code {cells['standard'][:60]!r}")
        try:
            score = float(cells["score"].replace(",", "."))
            if not math.isfinite(score) or not 0 <= score <= scale_max:
                raise ValueError
        except ValueError:
            score = 0.0
            problems.append(f"score {cells['score'][:20]!r} must be a number from 0 to "
                            f"{scale_max:g}")
        try:
            day = date.fromisoformat(cells["date"])
        except ValueError:
            day = None
            problems.append(f"date {cells['date'][:20]!r} must look like 2026-09-30")
        if problems:
            errors.append(f"line {line}: " + "; ".join(problems) + ".")
            continue
        rows.append(EvidenceRow(line, student, standard, score,
                                datetime(day.year, day.month, day.day, 12,
                                         tzinfo=timezone.utc)))
    if errors:
        raise EvidenceImportError(errors)
    if not rows:
        raise EvidenceImportError(["The file has no evidence rows under its header."])
    return rows
