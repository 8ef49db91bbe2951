"""The teacher's class progress view for one playlist (pure).

No Flask, no database, no I/O: the caller computes each student's :class:`~path.Path`
(with :func:`path.compute_path`), gathers a little activity data, and gets back rows for a
table (:func:`summarise`, :func:`sort_rows`), per-item counts (:func:`item_summaries`) and
a picture of them (:func:`distribution_svg`).

Rows: who is where
------------------
* ``current`` is the title of the top-level entry the student is working on (the first
  one in progress: must-do first, then may-do, then challenge, each in playlist order),
  else the recommended one; ``None`` when the path is complete or nothing is open.
* ``ready`` lists checkpoints the student can take now: available or in progress (so
  unlocked and not done or tested out), any tag. A checkpoint that is a choice-board
  option counts only while its board is not finished.
* ``locked`` counts top-level must-do entries that are locked.

Stuck rules
-----------
A complete path is never stuck. Otherwise each rule that applies adds one plain-language
reason, in this order:

a. **Idle.** No activity for ``idle_days`` days or more: "No activity for 9 days" (whole
   days, rounded down). A student never active at all gets "Not started yet" – but only
   when there is something they could start (the path recommends an item); when
   everything left is locked, rule (c) says why and blaming the student would be wrong.
b. **Repeated attempts.** ``attempts`` or more pieces of quick-check/checkpoint evidence
   below mastery on one standard since last reaching mastery on it: "3 attempts below
   Mastery on R.2", one reason per standard, ordered by standard label. Standards the path
   shows as mastered (they made an item tested out) are skipped, in case the caller's
   counts include them.
c. **Blocked.** Every open must-do entry is locked: "Everything left is locked: waiting on
   mastery of R.2 and R.3". The standards are the unmet prerequisite standards behind the
   locks, followed through chains of locked prerequisite items (options through their
   boards); an unlocked but unfinished prerequisite item (say a may-do reading) is named
   too: "… and on finishing “Reading”". When nothing can be named, the sentence is generic.

Cost
----
One pass over each path's entries (a second, only for blocked students, to trace the
locks), so 500 students × 40 items is a few milliseconds.

The chart
---------
:func:`distribution_svg` follows the rules of :mod:`lti_tool.grades.charts`: escaped text,
well-formed XML, ``role="img"`` with ``<title>`` and ``<desc>``, every state shown by
colour *and* pattern *and* text (legend, tooltips, counts), all ids prefixed with
``id_prefix``, no ``style`` attributes (the Content-Security-Policy forbids inline styles).
It is wider than those charts (:data:`VIEW_WIDTH` units) to leave room for item titles left
of the bars; text stays at or above 12 CSS px when it is drawn at least
:data:`MIN_RENDER_WIDTH` px wide.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType

from lti_tool.grades.charts import (
    FONT_SIZE,
    ID_PATTERN,
    clean_text,
    coord,
    esc,
    fit,
    pattern_def,
    text_width,
)
from lti_tool.playlists.path import (
    ItemKind,
    PaceStatus,
    Path,
    StandardInfo,
    State,
    Tag,
)
from lti_tool.timeutil import aware

__all__ = [
    "MIN_RENDER_WIDTH",
    "SEGMENTS",
    "SORT_KEYS",
    "VIEW_WIDTH",
    "ItemSummary",
    "Segment",
    "StudentActivity",
    "StudentRow",
    "distribution_svg",
    "item_summaries",
    "sort_rows",
    "summarise",
]

_COMPLETE = frozenset({State.DONE, State.MASTERED_OPTIONAL})
_OPEN = frozenset({State.AVAILABLE, State.IN_PROGRESS})
# Module-level aliases: an enum class attribute lookup costs more than a global lookup,
# and the loop in _row runs 20 000 times for 500 students × 40 items.
_LOCKED, _IN_PROGRESS, _TESTED_OUT = State.LOCKED, State.IN_PROGRESS, State.MASTERED_OPTIONAL
_MUST = Tag.MUST_DO
_CHECKPOINT, _BOARD = ItemKind.CHECKPOINT, ItemKind.CHOICE_BOARD
_TAG_ORDER = (Tag.MUST_DO, Tag.MAY_DO, Tag.CHALLENGE)
# How path.compute_path words an unmet prerequisite standard ("… on R.2").
_REACH = "Unlocks when you reach "


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class StudentActivity:
    """What the caller knows about one student on this playlist."""

    student_id: int
    name: str
    path: Path
    last_activity: datetime | None  # latest progress change or evidence here (UTC)
    attempts_below: Mapping[int, int]  # standard id → evidence below mastery since mastery
    pace: PaceStatus | None = None


@dataclass(frozen=True)
class StudentRow:
    """One row of the class progress table."""

    student_id: int
    name: str
    percent: int
    must_done: int
    must_total: int
    complete: bool
    current: str | None
    stuck: tuple[str, ...]
    ready: tuple[str, ...]
    locked: int
    last_activity: datetime | None
    pace: PaceStatus | None

    @property
    def is_stuck(self) -> bool:
        return bool(self.stuck)


def summarise(
    students: Sequence[StudentActivity],
    *,
    now: datetime,
    standards: Mapping[int, StandardInfo],
    idle_days: int = 7,
    attempts: int = 2,
    mastery_label: str = "Mastery",
) -> list[StudentRow]:
    """One :class:`StudentRow` per student, in input order; see the module docstring.

    ``standards`` names the standards in reasons (pass the mapping the paths were computed
    with); ``mastery_label`` is the scale's name for mastery, as in the paths. Naive
    datetimes are taken as UTC.
    """
    for name, value in (("idle_days", idle_days), ("attempts", attempts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    now = aware(now)
    return [
        _row(student, now, standards, idle_days, attempts, mastery_label)
        for student in students
    ]


def _row(
    student: StudentActivity,
    now: datetime,
    standards: Mapping[int, StandardInfo],
    idle_days: int,
    attempts: int,
    mastery_label: str,
) -> StudentRow:
    path = student.path
    locked = 0
    must_open = False  # a must-do entry the student can work on now
    in_progress: dict[Tag, str] = {}
    recommended: str | None = None
    ready: list[str] = []
    mastered: set[int] = set()
    finished_boards: set[int] = set()
    for entry in path.entries:  # the one pass over the entries
        item, state, board_id = entry.item, entry.state, entry.board_id
        if board_id is None:
            if item.tag is _MUST:
                if state is _LOCKED:
                    locked += 1
                elif state in _OPEN:
                    must_open = True
            if state is _IN_PROGRESS:
                in_progress.setdefault(item.tag, item.title)
            if entry.recommended:
                recommended = item.title
        if state in _COMPLETE:
            if item.kind is _BOARD:
                finished_boards.add(item.id)
            if state is _TESTED_OUT:
                mastered.update(item.standards)
        elif item.kind is _CHECKPOINT and state in _OPEN and board_id not in finished_boards:
            ready.append(item.title)

    current: str | None = None
    stuck: list[str] = []
    if not path.complete:
        current = next((in_progress[t] for t in _TAG_ORDER if t in in_progress), recommended)
        last = student.last_activity
        if last is None:
            if path.next_item_id is not None:
                stuck.append("Not started yet")
        else:
            idle = (now - aware(last)).days
            if idle >= idle_days:
                stuck.append(f"No activity for {_plural(idle, 'day', 'days')}")
        repeated = [
            (_standard(standards, sid), count)
            for sid, count in student.attempts_below.items()
            if count >= attempts and sid not in mastered
        ]
        repeated.sort(key=lambda pair: (pair[0].label, pair[0].id))
        stuck += [
            f"{_plural(count, 'attempt', 'attempts')} below {mastery_label} on {info.label}"
            for info, count in repeated
        ]
        if locked and not must_open:
            stuck.append(_blocked_reason(path, standards))

    return StudentRow(
        student_id=student.student_id,
        name=student.name,
        percent=path.percent,
        must_done=path.must_done,
        must_total=path.must_total,
        complete=path.complete,
        current=current,
        stuck=tuple(stuck),
        ready=tuple(ready),
        locked=locked,
        last_activity=student.last_activity,
        pace=student.pace,
    )


def _standard(standards: Mapping[int, StandardInfo], standard_id: int) -> StandardInfo:
    return standards.get(standard_id) or StandardInfo(standard_id, "", "")


def _blocked_reason(path: Path, standards: Mapping[int, StandardInfo]) -> str:
    """Rule (c): follow the locked must-do entries back to what they wait on."""
    by_id = {e.item.id: e for e in path.entries}
    position = {e.item.id: i for i, e in enumerate(path.entries)}
    stack = [
        e for e in path.entries
        if e.board_id is None and e.item.tag is Tag.MUST_DO and e.state is State.LOCKED
    ]
    seen: set[int] = set()
    waiting_standards: dict[int, StandardInfo] = {}
    waiting_items: set[int] = set()
    while stack:
        entry = stack.pop()
        if entry.item.id in seen:
            continue
        seen.add(entry.item.id)
        for sid in entry.item.prereq_standards:
            info = _standard(standards, sid)
            suffix = f" on {info.label}"
            if any(r.startswith(_REACH) and r.endswith(suffix) for r in entry.reasons):
                waiting_standards[sid] = info
        others = list(entry.item.prereq_items)
        if entry.board_id is not None:
            others.append(entry.board_id)
        for other_id in others:
            other = by_id.get(other_id)
            if other is None or other.state in _COMPLETE:
                continue
            if other.state is State.LOCKED:
                stack.append(other)
            elif other_id != entry.board_id:
                waiting_items.add(other_id)
    parts = []
    if waiting_standards:
        infos = sorted(waiting_standards.values(), key=lambda s: (s.label, s.id))
        parts.append("mastery of " + _join([s.label for s in infos]))
    if waiting_items:
        titles = [f"“{by_id[i].item.title}”" for i in sorted(waiting_items, key=position.get)]
        parts.append("finishing " + _join(titles))
    if not parts:
        return "Everything left is locked: waiting on prerequisites."
    return "Everything left is locked: waiting on " + " and on ".join(parts)


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


# ---------------------------------------------------------------- sorting

SORT_KEYS = ("name", "progress", "stuck", "activity")
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def _name_key(row: StudentRow) -> tuple[str, str, int]:
    return (row.name.casefold(), row.name, row.student_id)


def _progress_key(row: StudentRow) -> tuple[int, int, tuple[str, str, int]]:
    return (row.percent, row.must_done, _name_key(row))


def sort_rows(rows: Iterable[StudentRow], key: str) -> list[StudentRow]:
    """Rows sorted for the table, ties broken by name (case-insensitive), then id.

    ``"name"``; ``"progress"`` (least first); ``"stuck"`` (stuck first, then by progress);
    ``"activity"`` (never active first, then oldest activity first). Anything else is a
    ``ValueError``.
    """
    if key == "name":
        return sorted(rows, key=_name_key)
    if key == "progress":
        return sorted(rows, key=_progress_key)
    if key == "stuck":
        return sorted(rows, key=lambda r: (not r.stuck, _progress_key(r)))
    if key == "activity":
        return sorted(rows, key=lambda r: (
            r.last_activity is not None,
            _EPOCH if r.last_activity is None else aware(r.last_activity),
            _name_key(r),
        ))
    raise ValueError(f"Unknown sort key {key!r}; use one of {', '.join(SORT_KEYS)}.")


# ---------------------------------------------------------------- per item


@dataclass(frozen=True)
class ItemSummary:
    """How many students are in each state on one top-level item.

    ``counts`` has every :class:`State` as a key (zeros included) and is read-only.
    """

    item_id: int
    title: str
    tag: Tag
    counts: Mapping[State, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def item_summaries(paths: Sequence[Path]) -> list[ItemSummary]:
    """Per-item state counts over ``paths``, in playlist order.

    Top-level entries only: a choice board's options are not listed (their board is).
    All paths must come from the same playlist (same top-level items in the same order),
    else ``ValueError``. No paths gives ``[]``.
    """
    if not paths:
        return []
    items = [e.item for e in paths[0].entries if e.board_id is None]
    ids = [item.id for item in items]
    counts: list[dict[State, int]] = [dict.fromkeys(State, 0) for _ in items]
    for number, path in enumerate(paths):
        top = [e for e in path.entries if e.board_id is None]
        if [e.item.id for e in top] != ids:
            raise ValueError(
                f"Path {number + 1} has different items from path 1; summarise the paths of "
                "one playlist at a time."
            )
        for tally, entry in zip(counts, top, strict=True):
            tally[entry.state] += 1
    return [
        ItemSummary(item.id, item.title, item.tag, MappingProxyType(tally))
        for item, tally in zip(items, counts, strict=True)
    ]


# ---------------------------------------------------------------- the chart


@dataclass(frozen=True)
class Segment:
    """How the chart draws one state."""

    state: State
    label: str
    colour: str  # white text on it is >= 4.5:1, so the fill itself is well above 3:1
    pattern: str


SEGMENTS: tuple[Segment, ...] = (
    Segment(State.DONE, "Done", "#127a3a", "solid"),
    Segment(State.MASTERED_OPTIONAL, "Tested out", "#1f5fae", "stripes"),
    Segment(State.IN_PROGRESS, "In progress", "#a66400", "dots"),
    Segment(State.AVAILABLE, "Available", "#6b3fa0", "grid"),
    Segment(State.LOCKED, "Locked", "#4a5468", "crosshatch"),
)
"""Left to right in each bar, and in the legend."""

VIEW_WIDTH = 640
"""Width of the chart's view box, in user units."""

MIN_RENDER_WIDTH = 480
"""Narrowest rendered width (CSS px) at which all text is still at least 12 px."""

_INK = "#1d2433"  # 15.5:1 on white
_MUTED = "#4a5468"  # 7.6:1 on white
_WHITE = "#ffffff"
_PAD = 8
_LABEL_W = 200  # item titles, left of the bars
_BAR_X = _PAD + _LABEL_W
_BAR_W = VIEW_WIDTH - _PAD - _BAR_X
_ROW = 30
_BAR_H = 24
_SWATCH = 16
_LEGEND_H = 26
_FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
_FALLBACK_TITLE = "Class progress by item"


def _pct(count: int, total: int) -> str:
    if count == 0 or total == 0:
        return "0%"
    percent = int(100 * count / total + 0.5)
    return "under 1%" if percent == 0 else f"{percent}%"


def _pattern_id(id_prefix: str, segment: Segment) -> str:
    return f"{id_prefix}-{segment.state.value.replace('_', '-')}"


def _pattern_def(id_prefix: str, segment: Segment) -> str:
    """An 8x8 tile: the state's colour with white marks, so colour and pattern both show."""
    return pattern_def(_pattern_id(id_prefix, segment), segment.colour, segment.pattern)


def _svg(height: float, title: str, desc: str, id_prefix: str, body: Iterable[str]) -> str:
    return "".join([
        '<svg xmlns="http://www.w3.org/2000/svg" class="pw-chart pw-chart-class-progress" '
        f'viewBox="0 0 {VIEW_WIDTH} {coord(height)}" width="100%" role="img" '
        f'aria-labelledby="{id_prefix}-title {id_prefix}-desc" '
        f'font-family="{html.escape(_FONT_FAMILY)}" font-size="{FONT_SIZE}">',
        f'<title id="{id_prefix}-title">{esc(clean_text(title) or _FALLBACK_TITLE)}</title>',
        f'<desc id="{id_prefix}-desc">{esc(desc)}</desc>',
        *body,
        "</svg>",
    ])


def distribution_svg(summaries: Sequence[ItemSummary], *, title: str, id_prefix: str) -> str:
    """Horizontal 100%-stacked bars, one per item: how the class stands on each.

    Segments left to right as in :data:`SEGMENTS` (done, tested out, in progress,
    available, locked), widths proportional to counts. Each bar is a ``<g
    class="item-bar">`` with the item's title at its left (cut with an ellipsis when
    long; the full title is its tooltip), a tooltip on every segment ("Done: 12 of 30
    students (40%)") and the count inside a segment when it fits. A legend with the same
    swatches is at the top. ``id_prefix`` must start with a letter and contain only
    letters, digits, ``-`` and ``_`` (``ValueError`` otherwise).
    """
    if not isinstance(id_prefix, str) or not ID_PATTERN.fullmatch(id_prefix):
        raise ValueError("id_prefix must start with a letter and contain only letters, "
                         f"digits, '-' and '_'; got {id_prefix!r}")
    if not summaries:
        return _svg(48, title, "No items yet.", id_prefix, [
            f'<rect x="1" y="1" width="{VIEW_WIDTH - 2}" height="46" rx="6" fill="#f5f7fb" '
            'stroke="#c9d1e0" stroke-dasharray="4 3"/>',
            f'<text class="message" x="{VIEW_WIDTH / 2:g}" y="29" fill="{_MUTED}" '
            'text-anchor="middle">No items yet</text>',
        ])
    for summary in summaries:
        for count in summary.counts.values():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"counts must be whole numbers >= 0, not {count!r}")

    body = ["<defs>", *(_pattern_def(id_prefix, s) for s in SEGMENTS), "</defs>"]
    body += _legend(id_prefix)
    top = _PAD + _LEGEND_H + 6
    for index, summary in enumerate(summaries):
        body.append(_bar(summary, top + index * _ROW, id_prefix))
    height = top + len(summaries) * _ROW + _PAD - (_ROW - _BAR_H)
    return _svg(height, title, _desc(summaries), id_prefix, body)


def _legend(id_prefix: str) -> list[str]:
    parts = ['<g class="legend">']
    x = float(_PAD)
    for segment in SEGMENTS:
        parts.append(
            f'<g class="legend-entry" data-state="{segment.state.value}" '
            f'transform="translate({coord(x)},{_PAD})">'
            f'<rect y="3" width="{_SWATCH}" height="{_SWATCH}" '
            f'fill="url(#{_pattern_id(id_prefix, segment)})" stroke="{_MUTED}" '
            f'stroke-width="1"/><text x="{_SWATCH + 6}" y="16" fill="{_INK}">'
            f"{segment.label}</text></g>")
        x += _SWATCH + 6 + text_width(segment.label) + 14
    parts.append("</g>")
    return parts


def _bar(summary: ItemSummary, y: float, id_prefix: str) -> str:
    full = clean_text(summary.title) or f"Item {summary.item_id}"
    total = summary.total
    baseline = y + _BAR_H / 2 + 6
    parts = [
        f'<g class="item-bar" data-item-id="{int(summary.item_id)}" '
        f'data-tag="{html.escape(Tag(summary.tag).value, quote=True)}">',
        f'<text class="item-title" x="{_PAD}" y="{coord(baseline)}" fill="{_INK}">'
        f"<title>{html.escape(full, quote=True)}</title>"
        f"{html.escape(fit(full, _LABEL_W - 10), quote=True)}</text>",
    ]
    if total == 0:
        parts.append(f'<text class="in-bar-label" x="{coord(_BAR_X + 6)}" y="{coord(baseline)}" '
                     f'fill="{_MUTED}">No students</text>')
    chips: list[str] = []
    separators: list[str] = []
    done = 0
    for segment in SEGMENTS if total else ():
        count = summary.counts.get(segment.state, 0)
        if count == 0:
            continue
        start = _BAR_X + _BAR_W * done / total
        done += count
        end = _BAR_X + _BAR_W * done / total
        width = end - start
        tip = (f"{segment.label}: {count} of {_plural(total, 'student', 'students')} "
               f"({_pct(count, total)})")
        parts.append(
            f'<rect class="segment" data-state="{segment.state.value}" data-count="{count}" '
            f'x="{coord(start)}" y="{coord(y)}" width="{coord(width)}" height="{_BAR_H}" '
            f'fill="url(#{_pattern_id(id_prefix, segment)})"><title>{tip}</title></rect>')
        if done < total:
            separators.append(f'<line class="separator" x1="{coord(end)}" x2="{coord(end)}" '
                              f'y1="{coord(y)}" y2="{coord(y + _BAR_H)}" stroke="{_WHITE}" '
                              'stroke-width="1.5"/>')
        text = str(count)
        text_w = text_width(text, bold=True)
        if width >= text_w + 10:
            centre = start + width / 2
            chips.append(
                f'<rect class="chip" x="{coord(centre - text_w / 2 - 3)}" y="{coord(y + 2)}" '
                f'width="{coord(text_w + 6)}" height="{_BAR_H - 4}" rx="3" '
                f'fill="{segment.colour}"/>'
                f'<text class="in-bar-count" x="{coord(centre)}" y="{coord(baseline)}" '
                f'fill="{_WHITE}" text-anchor="middle" font-weight="700">{text}</text>')
    parts += separators
    parts.append(f'<rect class="outline" x="{_BAR_X}" y="{coord(y)}" width="{_BAR_W}" '
                 f'height="{_BAR_H}" fill="none" stroke="{_MUTED}" stroke-width="1"/>')
    parts += chips
    parts.append("</g>")
    return "".join(parts)


def _desc(summaries: Sequence[ItemSummary]) -> str:
    students = max(s.total for s in summaries)
    same = all(s.total == students for s in summaries)
    head = (f"{_plural(len(summaries), 'item', 'items')}, "
            f"{'' if same else 'up to '}{_plural(students, 'student', 'students')}.")
    if students == 0:
        return head
    finished = [s.counts.get(State.DONE, 0) + s.counts.get(State.MASTERED_OPTIONAL, 0)
                for s in summaries]
    locked = [s.counts.get(State.LOCKED, 0) for s in summaries]
    parts = [
        _most("Most finished", finished, summaries) or "No item finished yet",
        _most("most locked", locked, summaries) or "nothing is locked",
    ]
    overall = sum(s.total for s in summaries)
    shares = ", ".join(
        f"{seg.label.lower()} "
        f"{_pct(sum(s.counts.get(seg.state, 0) for s in summaries), overall)}"
        for seg in SEGMENTS
    )
    return f"{head} {parts[0]}; {parts[1]}. Over all items: {shares}."


def _most(label: str, values: Sequence[int], summaries: Sequence[ItemSummary]) -> str:
    """The item with the highest value (the first on a tie), or "" when all are 0."""
    best = max(range(len(values)), key=values.__getitem__)
    if values[best] == 0:
        return ""
    summary = summaries[best]
    name = clean_text(summary.title) or f"Item {summary.item_id}"
    return (f"{label}: “{name}” ({values[best]} of {summary.total}, "
            f"{_pct(values[best], summary.total)})")
