"""The gradebook grid as HTML, built in one pass (pure).

A full class is 500 students × 60 standards = 30,000 cells; rendering each
through template macros and url_for costs seconds, so the cell markup for
each level is prepared once and the rows are joined as strings. Every piece
of text that came from a person goes through `escape`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from lti_tool.grades.charts import Level, level_for


@dataclass(frozen=True)
class Cell:
    value: float | None
    overridden: bool


def _fmt(value: float) -> str:
    return f"{value:g}"


def level_class(level: Level) -> str:
    return "lvl-" + _fmt(level.points).replace(".", "_")


def badge_html(level: Level | None, value: float | None) -> str:
    """The same badge as the `badge` template macro (grades/_level.html)."""
    number = f' <span class="value">{_fmt(value)}</span>' if value is not None else ""
    if level is not None:
        return (f'<span class="level level-{escape(level.pattern)} {level_class(level)}">'
                f"{escape(level.label)}{number}</span>")
    if value is not None:
        return f'<span class="level level-none">Not yet at a level{number}</span>'
    return '<span class="level level-none">No evidence</span>'


@dataclass
class Grid:
    rows: Markup
    # Per standard: how many students are at each level label (None = no level).
    counts: dict[int, Counter]


def grid(students: Sequence[tuple[int, str]], standards: Sequence[tuple[int, str]],
         cells: dict[tuple[int, int], Cell], levels: Sequence[Level], *,
         detail_url: str, token: str) -> Grid:
    """`<tr>` rows (a header cell with the student's name, then one linked cell
    per standard) and the level counts per standard, in one pass. A class has
    only a few hundred distinct values, so each value's markup is made once.
    `detail_url` has `{student}` and `{standard}` placeholders."""
    out: list[str] = []
    codes = [(sid, str(escape(code))) for sid, code in standards]
    counts: dict[int, Counter] = {sid: Counter() for sid, _ in standards}
    made: dict[Cell | None, tuple[str, str, str | None]] = {}

    def markup(cell: Cell | None) -> tuple[str, str, str | None]:
        if cell is None:
            return "no evidence", badge_html(None, None), None
        level = level_for(cell.value, levels)
        label = (level.label if level else "not yet at a level") + (
            f" {_fmt(cell.value)}" if cell.value is not None else "")
        inner = badge_html(level, cell.value) + (
            ' <span class="flag" title="Set by a teacher">✎</span>' if cell.overridden else "")
        return str(escape(label)), inner, level.label if level else None

    for student_id, name in students:
        who = str(escape(name))
        prefix = detail_url.format(student=student_id, standard="{standard}")
        parts = [f'<tr><th scope="row" class="sticky-col">{who}</th>']
        for standard_id, code in codes:
            cell = cells.get((student_id, standard_id))
            found = made.get(cell)
            if found is None:
                found = made[cell] = markup(cell)
            label, inner, level_label = found
            counts[standard_id][level_label] += 1
            href = prefix.replace("{standard}", str(standard_id), 1)
            parts.append(f'<td><a class="cell" href="{href}?t={token}" aria-label="{who}, '
                         f'{code}: {label}">{inner}</a></td>')
        parts.append("</tr>")
        out.append("".join(parts))
    return Grid(rows=Markup("\n".join(out)), counts=counts)
