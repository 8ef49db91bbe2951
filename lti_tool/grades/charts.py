"""Mastery charts as inline SVG: data in, an SVG string out.

Pure functions only: no Flask, no database, no I/O. The caller embeds the returned string
in a server-rendered page and marks it safe (``Markup(...)``), so this module escapes
every piece of text it writes. Labels come from teachers and may contain anything.

What every chart here guarantees
--------------------------------
* **Escaped text.** Every label, title and tooltip goes through :func:`html.escape`, after
  characters that XML 1.0 forbids (C0 controls, lone surrogates, U+FFFE/U+FFFF) are
  replaced with U+FFFD, and runs of whitespace are collapsed (SVG would collapse them
  anyway). Attribute values are either escaped or built from validated data (colours
  must be ``#rrggbb``, patterns one of :data:`PATTERNS`, ids match :data:`ID_PATTERN`).
* **Well-formed XML**, so it works inline in HTML and also as a standalone ``.svg``.
* **Accessible.** ``role="img"`` and ``aria-labelledby`` pointing at a ``<title>`` and a
  ``<desc>`` whose ids start with ``id_prefix``; the ``<desc>`` says in words what the
  chart shows. All ids in one chart (patterns included) start with ``id_prefix``, so give
  every chart on a page its own prefix.
* **Never colour alone** (WCAG 1.4.1). Each level is drawn with its colour, its pattern
  (an SVG ``<pattern>`` fill) and its text label.
* **Readable on a phone.** Width is ``100%`` of the container with a ``viewBox`` and no
  fixed pixel size. The view box is :data:`VIEW_WIDTH` units wide and no text is smaller
  than :data:`FONT_SIZE` units, so text stays at or above 12 CSS px whenever the chart is
  at least :data:`MIN_RENDER_WIDTH` px wide. On a wide screen it scales up accordingly;
  cap it with CSS on the ``pw-chart`` class (e.g. ``.pw-chart { max-width: 36rem; }``).
* **No inline styles.** Only SVG presentation attributes are used, never ``style=`` or
  ``<style>``, because the tool's Content-Security-Policy (``style-src 'self'``) blocks
  inline styles. Presentation attributes are not affected by that policy.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from lti_tool.grades.mastery import round2
from lti_tool.timeutil import aware

__all__ = [
    "DEFAULT_LEVELS",
    "FONT_SIZE",
    "ID_PATTERN",
    "MIN_RENDER_WIDTH",
    "NO_EVIDENCE_LABEL",
    "PATTERNS",
    "VIEW_WIDTH",
    "Level",
    "Point",
    "contrast_ratio",
    "distribution_svg",
    "level_for",
    "timeline_svg",
]

PATTERNS = ("solid", "stripes", "dots", "crosshatch", "grid")
"""The pattern names a :class:`Level` may use."""

ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
"""What ``id_prefix`` must look like: safe in an id, in ``url(#...)`` and in a CSS selector."""

VIEW_WIDTH = 360
"""Width of every chart's view box, in user units."""

MIN_RENDER_WIDTH = 270
"""Narrowest rendered width (CSS px) at which all text is still at least 12 px."""

FONT_SIZE = 16
"""The one text size used (user units): ``12 * VIEW_WIDTH / MIN_RENDER_WIDTH``."""

NO_EVIDENCE_LABEL = "No evidence"

_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'

# Palette (all on white): ink 15.5:1, muted 7.6:1, rollup line 7.9:1, superseded 4.8:1.
_INK = "#1d2433"
_MUTED = "#4a5468"
_GRID = "#c9d1e0"
_ROLLUP = "#4338ca"
_SUPERSEDED = "#6b7280"
_WHITE = "#ffffff"
_HALO = (f'stroke="{_WHITE}" stroke-width="4" stroke-linejoin="round" '
         'paint-order="stroke"')

_PAD = 8  # left/right margin of the drawing area
_SWATCH = 16  # legend swatch size
_ROW = 26  # legend row height


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _is_finite(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class Level:
    """One level of a proficiency scale as the charts draw it."""

    points: float
    label: str
    colour: str  # "#rrggbb"
    pattern: str  # one of PATTERNS

    def __post_init__(self) -> None:
        if not _is_finite(self.points):
            raise ValueError(f"level points must be a finite number, not {self.points!r}")
        if not isinstance(self.colour, str) or not _HEX_COLOUR.fullmatch(self.colour):
            raise ValueError(f"level colour must look like #rrggbb, not {self.colour!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"level pattern must be one of {PATTERNS}, not {self.pattern!r}")


@dataclass(frozen=True)
class Point:
    """One piece of evidence on one standard."""

    when: datetime
    score: float
    label: str  # e.g. source + item
    superseded: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.when, datetime):
            raise ValueError(f"evidence time must be a datetime, not {self.when!r}")
        if not _is_finite(self.score):
            raise ValueError(f"evidence score must be a finite number, not {self.score!r}")


DEFAULT_LEVELS: tuple[Level, ...] = (
    Level(4.0, "Exceeds Mastery", "#127a3a", "solid"),
    Level(3.0, "Mastery", "#2e7d9a", "stripes"),
    # #b36b00 (4.18:1 with white) fails WCAG AA for text; this is the same hue, darker.
    Level(2.0, "Near Mastery", "#a66400", "dots"),
    Level(1.0, "Below Mastery", "#b3261e", "crosshatch"),
)
"""Canvas's default ratings above 0, in darker colours: white text on each is >= 4.5:1."""


def level_for(value: float | None, levels: Sequence[Level]) -> Level | None:
    """The highest level whose points are <= ``value``; ``None`` for ``None``, NaN, or a
    value below every level. No rounding: 2.99 is not 3 (as Canvas's server does it)."""
    if value is None:
        return None
    best = None
    for level in levels:  # a handful of levels: one pass, no list
        if level.points <= value and (best is None or level.points > best.points):
            best = level
    return best


def contrast_ratio(hex1: str, hex2: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours, from 1.0 to 21.0."""
    lighter, darker = sorted((_luminance(hex1), _luminance(hex2)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of an sRGB ``#rrggbb`` colour."""
    if not _HEX_COLOUR.fullmatch(colour):
        raise ValueError(f"colour must look like #rrggbb, not {colour!r}")
    channels = []
    for i in (1, 3, 5):
        c = int(colour[i:i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def clean_text(text: object) -> str:
    """Text safe for XML 1.0, with whitespace collapsed (not yet escaped)."""
    return " ".join(_INVALID_XML.sub("\ufffd", str(text)).split())


def esc(text: object) -> str:
    return html.escape(clean_text(text), quote=True)


def _num(value: float) -> str:
    """A number as people read it: at most 2 decimals, no trailing zeros."""
    text = f"{round2(value):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def coord(value: float) -> str:
    """A coordinate: 2 decimals at most, to keep the markup small."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def char_width(char: str) -> float:
    if unicodedata.combining(char):
        return 0.0
    return 1.0 if unicodedata.east_asian_width(char) in ("W", "F") else 0.6


def text_width(text: str, size: float = FONT_SIZE, bold: bool = False) -> float:
    """A generous estimate of rendered width (no font metrics in a pure module);
    ASCII, every character 0.6 em, takes the short way."""
    ems = 0.6 * len(text) if text.isascii() else sum(char_width(ch) for ch in text)
    return ems * size * (1.08 if bold else 1.0)


def fit(text: str, width: float, bold: bool = False) -> str:
    """``text`` (already cleaned), cut with an ellipsis to fit ``width``."""
    if text_width(text, bold=bold) <= width:
        return text
    room = width - text_width("…", bold=bold)
    scale = FONT_SIZE * (1.08 if bold else 1.0)
    used = 0.0
    for end, char in enumerate(text):
        used += char_width(char) * scale
        if used > room:
            return text[:end].rstrip() + "…"
    return text  # not reached: the whole text did not fit


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = _INK,
          bold: bool = False, halo: bool = False, cls: str = "",
          full: str | None = None) -> str:
    """A ``<text>`` element; ``text`` is cleaned, not escaped. ``full`` becomes a tooltip."""
    attrs = [f'x="{coord(x)}" y="{coord(y)}"', f'fill="{fill}"']
    if cls:
        attrs.insert(0, f'class="{cls}"')
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    if bold:
        attrs.append('font-weight="700"')
    if halo:
        attrs.append(_HALO)
    tip = f"<title>{esc(full)}</title>" if full is not None and full != text else ""
    return f"<text {' '.join(attrs)}>{tip}{html.escape(text, quote=True)}</text>"


def _check_id_prefix(id_prefix: str) -> None:
    if not isinstance(id_prefix, str) or not ID_PATTERN.fullmatch(id_prefix):
        raise ValueError("id_prefix must start with a letter and contain only letters, "
                         f"digits, '-' and '_'; got {id_prefix!r}")


def _ink_on(colour: str) -> str:
    """White or ink, whichever contrasts more with ``colour``."""
    return _WHITE if contrast_ratio(_WHITE, colour) >= contrast_ratio(_INK, colour) else _INK


def pattern_def(pattern_id: str, colour: str, pattern: str) -> str:
    """An 8x8 tile: the level colour with white marks, so colour and pattern both show."""
    marks = {
        "solid": "",
        "stripes": '<path d="M-2,2 L2,-2 M0,8 L8,0 M6,10 L10,6" stroke="#ffffff" '
                   'stroke-opacity="0.6" stroke-width="2"/>',
        "dots": '<circle cx="2" cy="2" r="1.4" fill="#ffffff" fill-opacity="0.75"/>'
                '<circle cx="6" cy="6" r="1.4" fill="#ffffff" fill-opacity="0.75"/>',
        "crosshatch": '<path d="M-2,2 L2,-2 M0,8 L8,0 M6,10 L10,6 M-2,6 L2,10 M0,0 L8,8 '
                      'M6,-2 L10,2" stroke="#ffffff" stroke-opacity="0.6" stroke-width="1.4"/>',
        "grid": '<path d="M0,1 H8 M1,0 V8" stroke="#ffffff" stroke-opacity="0.6" '
                'stroke-width="1.5"/>',
    }[pattern]
    return (f'<pattern id="{pattern_id}" data-pattern="{pattern}" patternUnits="userSpaceOnUse" '
            f'width="8" height="8"><rect width="8" height="8" fill="{colour}"/>{marks}'
            "</pattern>")


def _no_evidence_pattern_def(pattern_id: str) -> str:
    """White with thin grey back-slashes: unlike any level pattern, and clearly 'empty'."""
    return (f'<pattern id="{pattern_id}" data-pattern="no-evidence" '
            'patternUnits="userSpaceOnUse" width="8" height="8">'
            '<rect width="8" height="8" fill="#ffffff"/>'
            f'<path d="M-2,6 L2,10 M0,0 L8,8 M6,-2 L10,2" stroke="{_SUPERSEDED}" '
            'stroke-opacity="0.7" stroke-width="1"/></pattern>')


_FALLBACK_TITLES = {"timeline": "Mastery over time", "distribution": "Distribution by level"}


def _svg(kind: str, height: float, title: str, desc: str, id_prefix: str,
         body: Iterable[str]) -> str:
    """The root element. A blank title would leave the image without a name, so it
    falls back to a generic one."""
    return "".join([
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'class="pw-chart pw-chart-{kind}" viewBox="0 0 {VIEW_WIDTH} {coord(height)}" '
        f'width="100%" role="img" aria-labelledby="{id_prefix}-title {id_prefix}-desc" '
        f'font-family="{html.escape(_FONT_FAMILY)}" font-size="{FONT_SIZE}">',
        f'<title id="{id_prefix}-title">{esc(clean_text(title) or _FALLBACK_TITLES[kind])}</title>',
        f'<desc id="{id_prefix}-desc">{esc(desc)}</desc>',
        *body,
        "</svg>",
    ])


def _message_svg(kind: str, message: str, title: str, desc: str, id_prefix: str) -> str:
    """The small chart shown when there is nothing to draw."""
    return _svg(kind, 48, title, desc, id_prefix, [
        f'<rect x="1" y="1" width="{VIEW_WIDTH - 2}" height="46" rx="6" fill="#f5f7fb" '
        f'stroke="{_GRID}" stroke-dasharray="4 3"/>',
        _text(VIEW_WIDTH / 2, 29, message, anchor="middle", fill=_MUTED, cls="message"),
    ])


def _fit_with(label: str, suffix: str, width: float) -> str:
    """``label`` cut to fit ``width`` together with ``suffix``, which is always kept."""
    return fit(label, width - text_width(suffix)) + suffix if label else suffix.lstrip()


def _legend(entries: Sequence[tuple[str, str, str]], top: float) -> tuple[list[str], float]:
    """Lay legend entries out in rows, wrapping at the chart's width.

    Each entry is ``(swatch_markup_at_origin, label, suffix)``: a long label is cut, the
    suffix (a count, say) always shown. The swatch is drawn in a 16x16 box translated
    into place. Returns the markup and the bottom y.
    """
    parts: list[str] = ['<g class="legend">']
    right = VIEW_WIDTH - _PAD
    max_text = right - _PAD - _SWATCH - 6
    x, y = float(_PAD), top
    for swatch, label, suffix in entries:
        text = _fit_with(label, suffix, max_text)
        width = _SWATCH + 6 + text_width(text)
        if x > _PAD and x + width > right:
            x, y = float(_PAD), y + _ROW
        parts.append(f'<g class="legend-entry" transform="translate({coord(x)},{coord(y)})">'
                     f'<g transform="translate(0,3)">{swatch}</g>'
                     f'{_text(_SWATCH + 6, 16, text, full=label + suffix)}</g>')
        x += width + 14
    parts.append("</g>")
    return parts, y + _ROW


def _date(when: datetime, tz: tzinfo | None, with_year: bool) -> str:
    local = _local(when, tz)
    text = f"{local.day} {_MONTHS[local.month - 1]}"
    return f"{text} {local.year}" if with_year else text


def _local(when: datetime, tz: tzinfo | None) -> datetime:
    """Naive times are UTC (as SQLite hands them back); shown in ``tz`` when given."""
    if tz is None:
        return when
    return aware(when).astimezone(tz)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _pct(count: int, total: int) -> str:
    if count == 0:
        return "0%"
    percent = int(100 * count / total + 0.5)
    return "under 1%" if percent == 0 else f"{percent}%"


# ---------------------------------------------------------------------------
# Timeline: one student, one standard, mastery over time
# ---------------------------------------------------------------------------

_TL_TOP = 28  # room above the top gridline for its label
_TL_PLOT_H = 190
_TL_X0 = _PAD
_TL_X1 = VIEW_WIDTH - _PAD
_TL_LEFT_INSET = 32  # first marker clears the level swatches
_TL_RIGHT_INSET = 12


def timeline_svg(
    points: Sequence[Point],
    rollup_values: Sequence[float | None],
    *,
    levels: Sequence[Level],
    mastery_points: float,
    scale_min: float = 0.0,
    scale_max: float = 4.0,
    title: str,
    id_prefix: str,
    tz: tzinfo | None = None,
) -> str:
    """Mastery over time for one student and one standard.

    ``points`` are oldest first (the order the rollup used) and are spaced evenly along
    x in that order; ``rollup_values[i]`` is the running rollup after ``points[i]``
    (``None``: no value yet, which breaks the line). Scores and values outside
    ``scale_min..scale_max`` are drawn at the edge (tooltips show the real number).
    ``tz``, if given, is the zone dates are shown in (naive times are taken as UTC).
    Raises ``ValueError`` on mismatched lengths, non-finite numbers, a bad scale or a bad
    ``id_prefix``.
    """
    _check_id_prefix(id_prefix)
    if len(rollup_values) != len(points):
        raise ValueError(f"rollup_values has {len(rollup_values)} entries for "
                         f"{len(points)} points; they must be aligned")
    for value in (mastery_points, scale_min, scale_max):
        if not _is_finite(value):
            raise ValueError(f"scale numbers must be finite, not {value!r}")
    if not scale_min < scale_max:
        raise ValueError(f"scale_min ({scale_min}) must be below scale_max ({scale_max})")
    for value in rollup_values:
        if value is not None and not _is_finite(value):
            raise ValueError(f"rollup values must be finite numbers or None, not {value!r}")
    if not points:
        return _message_svg("timeline", "No evidence yet", title, "No evidence yet.",
                            id_prefix)

    n = len(points)
    plot_bottom = _TL_TOP + _TL_PLOT_H

    def y_of(value: float) -> float:
        value = min(max(value, scale_min), scale_max)
        return plot_bottom - (value - scale_min) / (scale_max - scale_min) * _TL_PLOT_H

    inner = _TL_X1 - _TL_X0 - _TL_LEFT_INSET - _TL_RIGHT_INSET
    step = inner / (n - 1) if n > 1 else 0.0
    xs = [(_TL_X0 + _TL_X1) / 2] if n == 1 else [_TL_X0 + _TL_LEFT_INSET + i * step
                                                    for i in range(n)]
    radius = 5.0 if n == 1 else min(5.0, max(2.5, step * 0.42))

    years = {_local(p.when, tz).year for p in points}
    with_year = len(years) > 1
    shown = sorted((lv for lv in enumerate(levels) if scale_min <= lv[1].points <= scale_max),
                   key=lambda lv: -lv[1].points)
    mastery_y = y_of(mastery_points)
    mastery_on_level = any(lv.points == mastery_points for _, lv in shown)
    mastery_text = "Mastery" if mastery_on_level else f"Mastery ({_num(mastery_points)})"
    mastery_text_w = text_width(mastery_text, bold=True)

    body: list[str] = ["<defs>"]
    body += [pattern_def(f"{id_prefix}-lvl{i}", lv.colour, lv.pattern) for i, lv in shown]
    body.append("</defs>")

    # Gridlines: one per level, plus the scale's ends when no level sits there.
    ticks: list[tuple[float, str, int | None]] = [
        (lv.points, clean_text(lv.label), i) for i, lv in shown]
    for end in (scale_max, scale_min):
        if not any(lv.points == end for _, lv in shown):
            ticks.append((end, "", None))
    ticks.sort(key=lambda t: -t[0])
    body.append(f'<g class="gridlines" stroke="{_GRID}" stroke-width="1">')
    body += [f'<line x1="{_TL_X0}" x2="{_TL_X1}" y1="{coord(y_of(v))}" y2="{coord(y_of(v))}"/>'
             for v, _, _ in ticks]
    body.append("</g>")
    body.append(f'<line class="axis" x1="{_TL_X0}" x2="{_TL_X1}" y1="{plot_bottom}" '
                f'y2="{plot_bottom}" stroke="{_MUTED}" stroke-width="1"/>')

    # The mastery line's label, right-aligned above or below the line, whichever side
    # covers fewer data points; it is drawn beneath the data so it never hides any.
    data = [(x, y_of(p.score)) for x, p in zip(xs, points, strict=True)]
    data += [(x, y_of(v)) for x, v in zip(xs, rollup_values, strict=True) if v is not None]
    label_x0 = _TL_X1 - 2 - mastery_text_w
    tick_ys = [y_of(v) for v, _, _ in ticks]
    candidates = []
    if mastery_y - 6 - 13 >= 0:
        candidates.append(mastery_y - 6)
    if mastery_y + 22 <= plot_bottom and not any(
            mastery_y < ty < mastery_y + 2 * FONT_SIZE + 4 for ty in tick_ys):
        candidates.append(mastery_y + 18)
    candidates = candidates or [mastery_y - 6 if mastery_y >= 19 else mastery_y + 18]

    def covered(base: float) -> int:
        return sum(1 for x, y in data
                   if label_x0 - 6 <= x <= _TL_X1 and base - 19 <= y <= base + 5)

    mastery_base = min(candidates, key=covered)  # min keeps the first (above) on a tie

    # Level labels sit just above their gridline, with a pattern swatch; labels that
    # would overlap the one above are dropped (the gridline stays).
    body.append('<g class="level-labels">')
    last_y = -math.inf
    for value, label, index in ticks:
        base = y_of(value) - 5
        if base - last_y < FONT_SIZE + 2:
            continue
        last_y = base
        x = _TL_X0 + 2
        if index is not None:
            body.append(f'<rect x="{coord(x)}" y="{coord(base - 12)}" width="14" height="14" '
                        f'fill="url(#{id_prefix}-lvl{index})" stroke="{_MUTED}" '
                        'stroke-width="1"/>')
            x += 19
        room = _TL_X1 - x - 4
        if abs(base - mastery_base) < FONT_SIZE + 2:
            room = label_x0 - x - 10
        suffix = f" ({_num(value)})" if label else _num(value)
        body.append(_text(x, base, _fit_with(label, suffix, room), halo=True,
                          full=label + suffix))
    body.append("</g>")

    body.append(f'<line class="mastery-line" x1="{_TL_X0}" x2="{_TL_X1}" '
                f'y1="{coord(mastery_y)}" y2="{coord(mastery_y)}" stroke="{_INK}" '
                'stroke-width="2" stroke-dasharray="6 4"/>')
    body.append(_text(_TL_X1 - 2, mastery_base, mastery_text, anchor="end", bold=True,
                      halo=True, cls="mastery-label"))

    # Running rollup: a line through the values, broken where there is no value yet.
    runs: list[list[tuple[float, float]]] = []
    previous: float | None = None
    for x, value in zip(xs, rollup_values, strict=True):
        if value is None:
            previous = None
            continue
        if previous is None:
            runs.append([])
        runs[-1].append((x, y_of(value)))
        previous = value
    commands = []
    for run in runs:
        if len(run) == 1:  # a lone value: a short level stroke, so it is visible
            (x, y), = run
            commands.append(f"M{coord(x - 5)},{coord(y)} L{coord(x + 5)},{coord(y)}")
        else:
            commands.append("M" + " L".join(f"{coord(x)},{coord(y)}" for x, y in run))
    if commands:
        body.append(f'<path class="rollup" d="{" ".join(commands)}" fill="none" '
                    f'stroke="{_ROLLUP}" stroke-width="3" stroke-linejoin="round" '
                    'stroke-linecap="round"/>')

    # Evidence markers, each with a tooltip.
    body.append('<g class="markers">')
    for x, point in zip(xs, points, strict=True):
        tip = f"{_date(point.when, tz, True)} · score {_num(point.score)}"
        label = clean_text(point.label)
        if label:
            tip += f" · {label}"
        if point.superseded:
            tip += " · superseded"
            look = (f'class="evidence superseded" data-superseded="true" fill="{_WHITE}" '
                    f'stroke="{_SUPERSEDED}" stroke-width="1.5"')
        else:
            look = f'class="evidence" fill="{_INK}" stroke="{_WHITE}" stroke-width="1"'
        body.append(f'<circle {look} cx="{coord(x)}" cy="{coord(y_of(point.score))}" '
                    f'r="{coord(radius)}"><title>{html.escape(tip, quote=True)}</title></circle>')
    body.append("</g>")

    # Dates under the axis, thinned from the newest backwards so the latest is shown.
    dates = [_date(p.when, tz, with_year) for p in points]
    kept: list[tuple[float, str, str]] = []
    left_edge = math.inf
    for i in range(n - 1, -1, -1):
        width = text_width(dates[i])
        centre = min(max(xs[i], _TL_X0 + width / 2), _TL_X1 - width / 2)
        if kept and dates[i] == kept[-1][1]:
            continue
        if centre + width / 2 + 10 > left_edge:
            continue
        kept.append((xs[i], dates[i], f"{coord(centre)}"))
        left_edge = centre - width / 2
    body.append(f'<g class="dates" stroke="{_MUTED}">')
    for x, _, _ in kept:
        body.append(f'<line x1="{coord(x)}" x2="{coord(x)}" y1="{plot_bottom}" '
                    f'y2="{plot_bottom + 4}"/>')
    body.append("</g>")
    body += [_text(float(centre), plot_bottom + 22, text, anchor="middle", fill=_MUTED,
                   cls="date") for _, text, centre in kept]

    # Legend.
    current = rollup_values[-1]
    entries: list[tuple[str, str, str]] = [
        (f'<circle cx="8" cy="8" r="5" fill="{_INK}"/>', "Evidence", "")]
    superseded = sum(1 for p in points if p.superseded)
    if superseded:
        entries.append((f'<circle cx="8" cy="8" r="4.5" fill="{_WHITE}" '
                        f'stroke="{_SUPERSEDED}" stroke-width="1.5"/>', "Superseded", ""))
    now = "none yet" if current is None else f"now {_num(current)}"
    entries.append((f'<path d="M0,8 H16" stroke="{_ROLLUP}" stroke-width="3"/>',
                    "Running mastery", f" ({now})"))
    legend, bottom = _legend(entries, plot_bottom + 34)
    body += legend

    desc = _timeline_desc(points, current, levels, mastery_points, tz, superseded)
    return _svg("timeline", bottom + 4, title, desc, id_prefix, body)


def _timeline_desc(points: Sequence[Point], current: float | None, levels: Sequence[Level],
                   mastery_points: float, tz: tzinfo | None, superseded: int) -> str:
    times = sorted(aware(p.when) for p in points)
    with_year = len({_local(p.when, tz).year for p in points}) > 1
    first, last = _date(times[0], tz, with_year), _date(times[-1], tz, with_year)
    parts = [_plural(len(points), "piece", "pieces") + " of evidence "
             + (f"on {first}" if first == last else f"from {first} to {last}")]
    if superseded:
        parts[0] += f", {superseded} superseded"
    counted = [p for p in points if not p.superseded] or list(points)
    parts.append(f"latest score {_num(counted[-1].score)}")
    if current is None:
        parts.append("no mastery value yet")
    else:
        level = level_for(current, levels)
        name = clean_text(level.label) if level else "below every level"
        side = "at or above" if current >= mastery_points else "below"
        parts.append(f"current mastery {_num(current)} ({name}), {side} the mastery line "
                     f"of {_num(mastery_points)}")
    return "; ".join(parts) + "."


# ---------------------------------------------------------------------------
# Distribution: how many are at each level
# ---------------------------------------------------------------------------

_BAR_Y = 6
_BAR_H = 56
_BAR_W = VIEW_WIDTH - 2 * _PAD


def distribution_svg(
    counts: Sequence[tuple[Level, int]],
    no_evidence: int,
    *,
    title: str,
    id_prefix: str,
) -> str:
    """One horizontal stacked bar: each level's share, in the order given, then "No
    evidence" at the right end. Widths are exactly proportional to counts (zero counts
    draw nothing). A segment shows its count, and its label too, when they fit; every
    label not shown in the bar (zero counts included) is in a legend below, with its
    count and a pattern swatch. Raises ``ValueError`` on a negative or non-whole count.
    """
    _check_id_prefix(id_prefix)
    for count in [c for _, c in counts] + [no_evidence]:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"counts must be whole numbers >= 0, not {count!r}")

    # (label, count, fill reference, solid colour behind text, text colour)
    segments = [(clean_text(lv.label) or "Unnamed level", count, f"url(#{id_prefix}-seg{i})",
                 lv.colour, _ink_on(lv.colour)) for i, (lv, count) in enumerate(counts)]
    segments.append((NO_EVIDENCE_LABEL, no_evidence, f"url(#{id_prefix}-none)", _WHITE, _INK))
    swatches = {fill: f'<rect width="{_SWATCH}" height="{_SWATCH}" fill="{fill}" '
                f'stroke="{_MUTED}" stroke-width="1"/>' for _, _, fill, _, _ in segments}
    total = sum(count for _, count, _, _, _ in segments)
    desc = _distribution_desc(segments, total)
    if total == 0:
        return _message_svg("distribution", "No data yet", title, desc, id_prefix)

    body: list[str] = ["<defs>"]
    body += [pattern_def(f"{id_prefix}-seg{i}", lv.colour, lv.pattern)
             for i, (lv, _) in enumerate(counts)]
    body.append(_no_evidence_pattern_def(f"{id_prefix}-none"))
    body.append("</defs>")

    bars: list[str] = ['<g class="segments">']
    texts: list[str] = ['<g class="segment-labels">']
    legend: list[tuple[str, str, str]] = []
    boundaries: list[float] = []
    done = 0
    for label, count, fill, solid, ink in segments:
        start = _PAD + _BAR_W * done / total
        done += count
        end = _PAD + _BAR_W * done / total
        if count == 0:
            legend.append((swatches[fill], label, ": 0"))
            continue
        if done < total:
            boundaries.append(end)
        width = end - start
        bars.append(f'<rect class="segment" data-count="{count}" x="{coord(start)}" '
                    f'y="{_BAR_Y}" width="{coord(width)}" height="{_BAR_H}" fill="{fill}">'
                    f"<title>{html.escape(f'{label}: {count}', quote=True)}</title></rect>")
        count_text = str(count)
        count_w = text_width(count_text, bold=True)
        label_w = text_width(label)
        centre = start + width / 2
        if width >= max(count_w, label_w) + 12:
            chip_w, chip_h = max(count_w, label_w) + 8, 46
            lines = [(count_text, _BAR_Y + 24, True), (label, _BAR_Y + 44, False)]
        elif width >= count_w + 10:
            chip_w, chip_h = count_w + 6, 24
            lines = [(count_text, _BAR_Y + _BAR_H / 2 + 6, True)]
            legend.append((swatches[fill], label, f": {count}"))
        else:
            legend.append((swatches[fill], label, f": {count}"))
            continue
        texts.append(f'<rect class="chip" x="{coord(centre - chip_w / 2)}" '
                     f'y="{coord(_BAR_Y + (_BAR_H - chip_h) / 2)}" width="{coord(chip_w)}" '
                     f'height="{chip_h}" rx="3" fill="{solid}"/>')
        texts += [_text(centre, y, text, anchor="middle", fill=ink, bold=bold,
                        cls="in-bar-count" if bold else "in-bar-label")
                  for text, y, bold in lines]
    bars.append("</g>")
    texts.append("</g>")
    body += bars
    # White separators keep neighbouring segments apart even where colours are close.
    body += [f'<line class="separator" x1="{coord(x)}" x2="{coord(x)}" y1="{_BAR_Y}" '
             f'y2="{_BAR_Y + _BAR_H}" stroke="{_WHITE}" stroke-width="1.5"/>'
             for x in boundaries]
    body.append(f'<rect class="outline" x="{_PAD}" y="{_BAR_Y}" width="{_BAR_W}" '
                f'height="{_BAR_H}" fill="none" stroke="{_MUTED}" stroke-width="1"/>')
    body += texts
    bottom = _BAR_Y + _BAR_H + 6
    if legend:
        parts, bottom = _legend(legend, _BAR_Y + _BAR_H + 10)
        body += parts
    return _svg("distribution", bottom + 4, title, desc, id_prefix, body)


def _distribution_desc(segments: Sequence[tuple[str, int, str, str, str]], total: int) -> str:
    if total == 0:
        return "No data yet: every count is 0."
    listed = "; ".join(f"{label}: {count} ({_pct(count, total)})"
                       for label, count, _, _, _ in segments)
    return f"{total} in total. {listed}."
