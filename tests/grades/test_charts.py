"""SVG charts (pure): structure, accessibility, escaping, geometry, then properties."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lti_tool.grades.charts import (
    DEFAULT_LEVELS,
    FONT_SIZE,
    MIN_RENDER_WIDTH,
    NO_EVIDENCE_LABEL,
    PATTERNS,
    VIEW_WIDTH,
    Level,
    Point,
    contrast_ratio,
    distribution_svg,
    level_for,
    timeline_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & ]]> \' "quoted"'
EXCEEDS, MASTERY, NEAR, BELOW = DEFAULT_LEVELS
SEP3 = datetime(2024, 9, 3, 14, 0, tzinfo=timezone.utc)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def find_all(root: ET.Element, tag: str, cls: str | None = None) -> list[ET.Element]:
    found = root.iter(f"{SVG}{tag}")
    return [el for el in found if cls is None or cls in el.get("class", "").split()]


def shown(text_el: ET.Element) -> str:
    """The visible text of a <text> element (a <title> child is a tooltip, not shown)."""
    return (text_el.text or "") + "".join(child.tail or "" for child in text_el)


def all_shown(root: ET.Element) -> list[str]:
    return [shown(el) for el in find_all(root, "text")]


def tooltip(el: ET.Element) -> str:
    title = el.find(f"{SVG}title")
    assert title is not None, "every marker and segment has a tooltip"
    return title.text or ""


def five_points() -> tuple[list[Point], list[float | None]]:
    days = [0, 8, 15, 30, 39]  # 3 Sep .. 12 Oct
    scores = [2.0, 1.0, 3.0, 2.5, 3.0]
    points = [Point(SEP3 + timedelta(days=d), s, f"Quiz {i} item {i + 1}", superseded=(i == 1))
              for i, (d, s) in enumerate(zip(days, scores, strict=True))]
    return points, [2.0, 2.0, 2.6, 2.56, 3.2]


def timeline(points=None, values=None, **kw) -> str:
    if points is None:
        points, values = five_points()
    kw.setdefault("levels", DEFAULT_LEVELS)
    kw.setdefault("mastery_points", 3.0)
    kw.setdefault("title", "Ada: Solves linear equations")
    kw.setdefault("id_prefix", "tl-7")
    return timeline_svg(points, values, **kw)


CLASS_COUNTS = [(EXCEEDS, 3), (MASTERY, 12), (NEAR, 6), (BELOW, 1)]


def distribution(counts=None, no_evidence=5, **kw) -> str:
    kw.setdefault("title", "Solves linear equations")
    kw.setdefault("id_prefix", "dist-3")
    return distribution_svg(CLASS_COUNTS if counts is None else counts, no_evidence, **kw)


def assert_accessible_shell(svg: str, prefix: str) -> ET.Element:
    """Well-formed, scalable, labelled; every id unique and prefixed; no inline CSS."""
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("width") == "100%"
    assert root.get("height") is None  # no fixed size: the view box sets the aspect ratio
    assert re.fullmatch(r"0 0 \d+(\.\d+)? \d+(\.\d+)?", root.get("viewBox", ""))
    assert root.get("aria-labelledby") == f"{prefix}-title {prefix}-desc"
    title, desc = root[0], root[1]
    assert (title.tag, title.get("id")) == (f"{SVG}title", f"{prefix}-title")
    assert (desc.tag, desc.get("id")) == (f"{SVG}desc", f"{prefix}-desc")
    assert title.text and desc.text
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(f"{prefix}-") for i in ids)
    for el in root.iter():  # every url(#...) points at a pattern defined in this chart
        for ref in re.findall(r"url\(#([^)]+)\)", el.get("fill", "")):
            assert ref in ids
    # The tool's CSP (style-src 'self') would block inline styles: only attributes are used.
    assert "style=" not in svg and "<style" not in svg
    return root


def assert_text_large_enough(root: ET.Element) -> None:
    """Every text renders at >= 12 CSS px once the chart is MIN_RENDER_WIDTH px wide."""
    view_width = float(root.get("viewBox").split()[2])
    assert view_width == VIEW_WIDTH
    assert float(root.get("font-size")) == FONT_SIZE
    for el in root.iter():
        size = float(el.get("font-size", FONT_SIZE))
        assert size * MIN_RENDER_WIDTH / view_width >= 12


# ---------------------------------------------------------------------------
# Levels and contrast
# ---------------------------------------------------------------------------


def test_default_levels_are_canvas_ratings_with_distinct_patterns():
    assert [(lv.points, lv.label) for lv in DEFAULT_LEVELS] == [
        (4, "Exceeds Mastery"), (3, "Mastery"), (2, "Near Mastery"), (1, "Below Mastery")]
    assert [lv.pattern for lv in DEFAULT_LEVELS] == ["solid", "stripes", "dots", "crosshatch"]
    assert len({lv.colour for lv in DEFAULT_LEVELS}) == 4


@pytest.mark.parametrize("level", DEFAULT_LEVELS, ids=lambda lv: lv.label)
def test_white_text_on_every_default_level_meets_wcag_aa(level):
    assert contrast_ratio("#ffffff", level.colour) >= 4.5


def _wcag_luminance(colour: str) -> float:
    """Written out again from the WCAG 2 definition, independently of the module."""
    def linear(c8: int) -> float:
        c = c8 / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


@pytest.mark.parametrize("colour", [lv.colour for lv in DEFAULT_LEVELS] + ["#777777", "#b36b00"])
def test_contrast_ratio_is_the_wcag_formula(colour):
    expected = 1.05 / (_wcag_luminance(colour) + 0.05)
    assert contrast_ratio("#ffffff", colour) == pytest.approx(expected)
    assert contrast_ratio(colour, "#FFFFFF") == pytest.approx(expected)  # symmetric


def test_contrast_ratio_known_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#2e7d9a", "#2e7d9a") == pytest.approx(1.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # just fails
    assert contrast_ratio("#b36b00", "#ffffff") < 4.5  # the brief's first orange: too light
    with pytest.raises(ValueError):
        contrast_ratio("white", "#000000")


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    (0.0, None),              # below every level
    (0.99, None),
    (1.0, BELOW),             # exactly on a boundary belongs to that level
    (2.99, NEAR),             # no rounding up
    (3.0, MASTERY),
    (3.5, MASTERY),
    (4.0, EXCEEDS),
    (17.0, EXCEEDS),          # above the scale: still the top level
    (float("nan"), None),
])
def test_level_for(value, expected):
    assert level_for(value, DEFAULT_LEVELS) is expected


def test_level_for_ignores_order_and_handles_no_levels():
    shuffled = [NEAR, EXCEEDS, BELOW, MASTERY]
    assert level_for(3.2, shuffled) is MASTERY
    assert level_for(3.2, []) is None


@pytest.mark.parametrize("kwargs", [
    {"colour": "red"}, {"colour": "#fff"}, {"colour": "url(#x)"},
    {"colour": '#123456" onload="x'}, {"pattern": "zigzag"}, {"points": float("nan")},
])
def test_level_rejects_unsafe_or_unknown_values(kwargs):
    fields = {"points": 3.0, "label": "Mastery", "colour": "#2e7d9a", "pattern": "stripes"}
    with pytest.raises(ValueError):
        Level(**(fields | kwargs))


def test_point_rejects_non_finite_scores():
    with pytest.raises(ValueError):
        Point(SEP3, float("inf"), "x")


# ---------------------------------------------------------------------------
# Timeline
# ---------------------------------------------------------------------------


def test_timeline_shell_is_accessible_and_scalable():
    root = assert_accessible_shell(timeline(), "tl-7")
    assert_text_large_enough(root)
    assert root[0].text == "Ada: Solves linear equations"


def test_timeline_desc_summarises_in_words():
    desc = parse(timeline())[1].text
    assert desc == ("5 pieces of evidence from 3 Sep to 12 Oct, 1 superseded; latest score 3; "
                    "current mastery 3.2 (Mastery), at or above the mastery line of 3.")


def test_timeline_desc_for_one_piece_and_no_value_yet():
    desc = parse(timeline([Point(SEP3, 2.5, "Quiz")], [None]))[1].text
    assert desc == "1 piece of evidence on 3 Sep; latest score 2.5; no mastery value yet."


def test_timeline_desc_below_mastery_and_below_every_level():
    points = [Point(SEP3, 0.5, "a"), Point(SEP3 + timedelta(days=1), 2, "b")]
    desc = parse(timeline(points, [0.5, 2.0]))[1].text
    assert "current mastery 2 (Near Mastery), below the mastery line of 3" in desc
    desc = parse(timeline(points[:1], [0.5]))[1].text
    assert "current mastery 0.5 (below every level)" in desc


def test_timeline_dates_show_the_year_when_evidence_spans_years():
    points = [Point(datetime(2024, 12, 20), 2, "a"), Point(datetime(2025, 1, 9), 3, "b")]
    root = parse(timeline(points, [2.0, 2.65]))
    assert "from 20 Dec 2024 to 9 Jan 2025" in root[1].text
    assert {"20 Dec 2024", "9 Jan 2025"} <= set(all_shown(root))


def test_one_marker_per_point_with_date_score_and_label_tooltips():
    points, values = five_points()
    markers = find_all(parse(timeline(points, values)), "circle", "evidence")
    assert len(markers) == len(points)
    assert tooltip(markers[0]) == "3 Sep 2024 · score 2 · Quiz 0 item 1"
    assert tooltip(markers[3]) == "3 Oct 2024 · score 2.5 · Quiz 3 item 4"


def test_superseded_markers_are_hollow_grey_and_say_so():
    points, values = five_points()
    markers = find_all(parse(timeline(points, values)), "circle", "evidence")
    for point, marker in zip(points, markers, strict=True):
        superseded = "superseded" in marker.get("class").split()
        assert superseded == point.superseded
        assert tooltip(marker).endswith("· superseded") == point.superseded
        if point.superseded:
            assert marker.get("fill") == "#ffffff"
            assert marker.get("stroke") != markers[0].get("fill")
    assert "Superseded" in all_shown(parse(timeline(points, values)))


def test_markers_sit_at_their_scores_in_time_order():
    points, values = five_points()
    root = parse(timeline(points, values))
    markers = find_all(root, "circle", "evidence")
    xs = [float(m.get("cx")) for m in markers]
    ys = [float(m.get("cy")) for m in markers]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    assert max(gaps) - min(gaps) < 0.05  # evenly spaced by evidence order
    # Higher score, higher on the page (smaller y); equal scores, equal heights.
    assert ys[2] == ys[4] < ys[3] < ys[0] < ys[1]


def test_mastery_line_is_dashed_labelled_and_at_mastery_points():
    root = parse(timeline(mastery_points=3.0))
    (line,) = find_all(root, "line", "mastery-line")
    assert line.get("stroke-dasharray")
    assert line.get("y1") == line.get("y2")
    (label,) = find_all(root, "text", "mastery-label")
    assert shown(label) == "Mastery"
    marker_at_3 = find_all(root, "circle", "evidence")[2]
    assert float(line.get("y1")) == pytest.approx(float(marker_at_3.get("cy")))


def test_mastery_line_off_a_level_shows_its_points():
    root = parse(timeline(mastery_points=2.5))
    (label,) = find_all(root, "text", "mastery-label")
    assert shown(label) == "Mastery (2.5)"


@pytest.mark.parametrize("mastery", [0.0, 0.5, 3.0, 3.9, 4.0])
def test_mastery_label_stays_inside_the_plot(mastery):
    root = parse(timeline(mastery_points=mastery))
    (label,) = find_all(root, "text", "mastery-label")
    (axis,) = find_all(root, "line", "axis")
    assert float(label.get("y")) - FONT_SIZE * 0.75 >= 0  # its capitals are not cut off
    assert float(label.get("y")) <= float(axis.get("y1"))  # not among the dates


def test_gridlines_are_labelled_with_level_label_and_points_and_a_pattern_swatch():
    root = parse(timeline())
    texts = all_shown(root)
    for level in DEFAULT_LEVELS:
        assert f"{level.label} ({level.points:g})" in texts
    patterns = {p.get("data-pattern") for p in find_all(root, "pattern")}
    assert patterns == {lv.pattern for lv in DEFAULT_LEVELS}


def test_rollup_line_breaks_where_there_is_no_value():
    points = [Point(SEP3 + timedelta(days=i), 2, f"e{i}") for i in range(6)]
    root = parse(timeline(points, [None, 2.0, 2.5, None, None, 3.0]))
    (path,) = find_all(root, "path", "rollup")
    assert path.get("d").count("M") == 2  # two runs: [2.0, 2.5] and the lone 3.0
    assert path.get("fill") == "none"


def test_no_rollup_line_when_there_is_no_value_yet():
    points = [Point(SEP3, 1.0, "a"), Point(SEP3 + timedelta(days=1), 2.0, "b")]
    root = parse(timeline(points, [None, None]))
    assert find_all(root, "path", "rollup") == []
    assert "Running mastery (none yet)" in all_shown(root)


def test_empty_timeline_says_no_evidence_yet():
    svg = timeline([], [], id_prefix="empty-1")
    root = assert_accessible_shell(svg, "empty-1")
    assert "No evidence yet" in all_shown(root)
    assert find_all(root, "circle", "evidence") == []
    assert float(root.get("viewBox").split()[3]) < 100  # small


def test_crowded_dates_are_thinned_but_the_latest_is_kept():
    points = [Point(SEP3 + timedelta(days=i), 3, "x") for i in range(60)]
    root = parse(timeline(points, [3.0] * 60))
    dates = find_all(root, "text", "date")
    assert 2 <= len(dates) < 15
    assert shown(dates[0]) == "1 Nov"  # the newest piece of evidence (3 Sep + 59 days)
    xs = sorted(float(d.get("x")) for d in dates)
    widest = max(len(shown(d)) for d in dates) * 0.6 * FONT_SIZE
    assert all(b - a >= widest for a, b in zip(xs, xs[1:], strict=False))  # no overlaps


def test_dates_are_shown_in_the_given_time_zone():
    late = datetime(2024, 9, 3, 23, 30, tzinfo=timezone.utc)
    points = [Point(late, 3, "x")]
    marker = find_all(parse(timeline(points, [3.0])), "circle", "evidence")[0]
    assert tooltip(marker).startswith("3 Sep 2024")  # UTC by default
    plus2 = timezone(timedelta(hours=2))
    marker = find_all(parse(timeline(points, [3.0], tz=plus2)), "circle", "evidence")[0]
    assert tooltip(marker).startswith("4 Sep 2024")


def test_scores_outside_the_scale_are_drawn_at_the_edge_but_reported_exactly():
    points = [Point(SEP3, 6.0, "old scale"), Point(SEP3 + timedelta(days=1), 3.0, "b")]
    root = parse(timeline(points, [6.0, 4.5]))
    top = find_all(root, "circle", "evidence")[0]
    assert "score 6" in tooltip(top)
    assert 0 <= float(top.get("cy")) <= float(root.get("viewBox").split()[3])


@pytest.mark.parametrize("kwargs", [
    {"values": [1.0]},                          # not aligned with points
    {"values": [1.0, float("nan")]},
    {"scale_min": 4.0, "scale_max": 4.0},
    {"mastery_points": float("inf")},
    {"id_prefix": "1abc"},
    {"id_prefix": "a b"},
    {"id_prefix": 'x"><script>'},
    {"id_prefix": ""},
])
def test_timeline_rejects_bad_input(kwargs):
    points = [Point(SEP3, 1, "a"), Point(SEP3 + timedelta(days=1), 2, "b")]
    values = kwargs.pop("values", [1.0, 1.5])
    with pytest.raises(ValueError):
        timeline(points, values, **kwargs)


def test_timeline_escapes_hostile_text_everywhere():
    levels = [Level(lv.points, HOSTILE + lv.label, lv.colour, lv.pattern)
              for lv in DEFAULT_LEVELS]
    points = [Point(SEP3, 3, HOSTILE), Point(SEP3 + timedelta(days=1), 2, "\x00\x1b<script>")]
    svg = timeline(points, [3.0, 2.5], levels=levels, title=HOSTILE + "\ud800")
    assert "<script" not in svg.lower()
    svg.encode("utf-8")  # no lone surrogates left to break the response
    root = parse(svg)
    assert root[0].text == HOSTILE + "\ufffd"
    assert tooltip(find_all(root, "circle", "evidence")[0]).endswith(HOSTILE)
    assert "\ufffd\ufffd<script>" in tooltip(find_all(root, "circle", "evidence")[1])
    assert any(t.startswith(HOSTILE[:20]) for t in all_shown(root))


def test_long_level_labels_are_cut_but_keep_their_points():
    long = Level(4, "Extends well beyond the standard with independent transfer", "#127a3a",
                 "solid")
    root = parse(timeline(levels=[long, MASTERY]))
    (cut,) = [el for el in find_all(root, "text") if shown(el).endswith("(4)")]
    assert "…" in shown(cut) and len(shown(cut)) < len(long.label)
    assert tooltip(cut) == f"{long.label} (4)"


def test_a_blank_title_falls_back_to_a_generic_name():
    assert parse(timeline(title=" \n "))[0].text == "Mastery over time"
    assert parse(distribution(title=""))[0].text == "Distribution by level"


# ---------------------------------------------------------------------------
# Distribution
# ---------------------------------------------------------------------------


def segments(root: ET.Element) -> list[ET.Element]:
    return find_all(root, "rect", "segment")


def legend_texts(root: ET.Element) -> list[str]:
    legend = [g for g in find_all(root, "g", "legend")]
    return [shown(t) for g in legend for t in find_all(g, "text")]


def in_bar_texts(root: ET.Element) -> list[str]:
    return [shown(t) for t in find_all(root, "text")
            if {"in-bar-count", "in-bar-label"} & set(t.get("class", "").split())]


def test_distribution_shell_is_accessible_and_scalable():
    root = assert_accessible_shell(distribution(), "dist-3")
    assert_text_large_enough(root)


def test_distribution_segment_widths_are_proportional_to_counts():
    root = parse(distribution())
    rects = segments(root)
    counts = [c for _, c in CLASS_COUNTS] + [5]
    assert [int(r.get("data-count")) for r in rects] == counts
    (outline,) = find_all(root, "rect", "outline")
    bar = float(outline.get("width"))
    total = sum(counts)
    x = float(outline.get("x"))
    for rect, count in zip(rects, counts, strict=True):
        assert float(rect.get("width")) == pytest.approx(bar * count / total, abs=0.02)
        assert float(rect.get("x")) == pytest.approx(x, abs=0.02)  # contiguous, no gaps
        x += float(rect.get("width"))
    assert x == pytest.approx(float(outline.get("x")) + bar, abs=0.05)


def test_each_segment_has_its_level_colour_and_pattern():
    root = parse(distribution())
    patterns = {p.get("id"): p for p in find_all(root, "pattern")}
    for rect, (level, _) in zip(segments(root), CLASS_COUNTS, strict=False):
        pattern = patterns[re.fullmatch(r"url\(#(.+)\)", rect.get("fill")).group(1)]
        assert pattern.get("data-pattern") == level.pattern
        assert pattern.find(f"{SVG}rect").get("fill") == level.colour
    last = segments(root)[-1]
    assert tooltip(last) == f"{NO_EVIDENCE_LABEL}: 5"
    none = patterns[re.fullmatch(r"url\(#(.+)\)", last.get("fill")).group(1)]
    assert none.get("data-pattern") == "no-evidence"


def test_distribution_desc_lists_every_count_in_words():
    desc = parse(distribution())[1].text
    assert desc == ("27 in total. Exceeds Mastery: 3 (11%); Mastery: 12 (44%); "
                    "Near Mastery: 6 (22%); Below Mastery: 1 (4%); No evidence: 5 (19%).")


def test_wide_segments_carry_count_and_label_and_narrow_ones_fall_back_to_the_legend():
    root = parse(distribution([(EXCEEDS, 1), (MASTERY, 500)], 0))
    assert in_bar_texts(root) == ["500", "Mastery"]
    legend = legend_texts(root)
    assert "Exceeds Mastery: 1" in legend
    assert not any(t.startswith("Mastery") for t in legend)


def test_every_level_and_count_is_shown_somewhere_as_text():
    root = parse(distribution())
    text = " ".join(in_bar_texts(root) + legend_texts(root))
    for label, count in [(lv.label, c) for lv, c in CLASS_COUNTS] + [(NO_EVIDENCE_LABEL, 5)]:
        assert label in text
        assert str(count) in text


def test_zero_counts_draw_no_segment_but_are_listed():
    root = parse(distribution([(EXCEEDS, 0), (MASTERY, 4)], 0))
    assert [int(r.get("data-count")) for r in segments(root)] == [4]
    assert "Exceeds Mastery: 0" in legend_texts(root)
    assert "No evidence: 0" in legend_texts(root)


def test_all_no_evidence_fills_the_bar():
    root = parse(distribution([(lv, 0) for lv in DEFAULT_LEVELS], 31))
    (rect,) = segments(root)
    (outline,) = find_all(root, "rect", "outline")
    assert rect.get("width") == outline.get("width")
    assert in_bar_texts(root) == ["31", NO_EVIDENCE_LABEL]


def test_empty_distribution_is_a_small_message():
    svg = distribution([(lv, 0) for lv in DEFAULT_LEVELS], 0, id_prefix="none-1")
    root = assert_accessible_shell(svg, "none-1")
    assert "No data yet" in all_shown(root)
    assert segments(root) == []


def test_text_inside_the_bar_has_enough_contrast_even_on_light_levels():
    yellow = Level(2.5, "Approaching", "#fab901", "grid")  # Canvas's yellow: needs dark text
    root = parse(distribution([(EXCEEDS, 10), (yellow, 10), (BELOW, 10)], 10))
    chips = find_all(root, "rect", "chip")
    labels = find_all(root, "g", "segment-labels")[0]
    assert chips
    for chip in chips:
        mine = [t for t in find_all(labels, "text") if t.get("x") == _centre(chip)]
        assert mine
        for text in mine:
            assert contrast_ratio(text.get("fill"), chip.get("fill")) >= 4.5


def _centre(chip: ET.Element) -> str:
    centre = float(chip.get("x")) + float(chip.get("width")) / 2
    return f"{centre:.2f}".rstrip("0").rstrip(".")


def test_distribution_escapes_hostile_labels():
    hostile = [(Level(lv.points, HOSTILE, lv.colour, lv.pattern), c) for lv, c in CLASS_COUNTS]
    svg = distribution(hostile, 2, title=HOSTILE)
    assert "<script" not in svg.lower()
    root = parse(svg)
    assert root[0].text == HOSTILE
    assert HOSTILE in root[1].text


def test_blank_level_labels_get_a_name():
    blank = Level(3, "  ", "#2e7d9a", "stripes")
    root = parse(distribution([(blank, 1), (EXCEEDS, 99)], 0))
    assert "Unnamed level: 1" in legend_texts(root)
    assert "Unnamed level: 1 (1%)" in root[1].text


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_distribution_rejects_bad_counts(bad):
    with pytest.raises(ValueError):
        distribution([(EXCEEDS, bad)], 0)
    with pytest.raises(ValueError):
        distribution([(EXCEEDS, 1)], bad)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

labels = st.text(max_size=80)  # any characters, controls included
scales = st.sampled_from([(0.0, 4.0), (0.0, 5.0), (1.0, 4.0), (0.0, 100.0)])
naive_or_aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                              timezones=st.sampled_from([None, timezone.utc]))


@st.composite
def timelines(draw):
    low, high = draw(scales)
    score = st.floats(min_value=low, max_value=high, allow_nan=False)
    n = draw(st.integers(min_value=1, max_value=60))
    whens = sorted(draw(st.lists(naive_or_aware, min_size=n, max_size=n)),
                   key=lambda d: d.replace(tzinfo=None))
    points = [Point(when, draw(score), draw(labels), draw(st.booleans())) for when in whens]
    values = [draw(st.none() | score) for _ in range(n)]
    levels = [Level(p, draw(labels), lv.colour, lv.pattern)
              for p, lv in zip(sorted({low, (low + high) / 2, high}, reverse=True),
                               DEFAULT_LEVELS, strict=False)]
    mastery = draw(score)
    return points, values, levels, mastery, low, high


@settings(max_examples=60, deadline=None)
@given(timelines(), labels)
def test_any_timeline_is_well_formed_xml(case, title):
    points, values, levels, mastery, low, high = case
    svg = timeline_svg(points, values, levels=levels, mastery_points=mastery, scale_min=low,
                       scale_max=high, title=title, id_prefix="p")
    svg.encode("utf-8")
    root = assert_accessible_shell(svg, "p")
    markers = find_all(root, "circle", "evidence")
    assert len(markers) == len(points)
    assert sum("superseded" in m.get("class") for m in markers) == sum(
        p.superseded for p in points)
    height = float(root.get("viewBox").split()[3])
    for marker in markers:
        assert 0 <= float(marker.get("cx")) <= VIEW_WIDTH
        assert 0 <= float(marker.get("cy")) <= height


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(labels, st.integers(min_value=0, max_value=10_000),
                          st.sampled_from(PATTERNS)), max_size=8),
       st.integers(min_value=0, max_value=10_000), labels)
def test_any_distribution_is_well_formed_xml(rows, no_evidence, title):
    counts = [(Level(float(i), label, "#2e7d9a", pattern), count)
              for i, (label, count, pattern) in enumerate(rows)]
    svg = distribution_svg(counts, no_evidence, title=title, id_prefix="d")
    svg.encode("utf-8")
    root = assert_accessible_shell(svg, "d")
    total = sum(c for _, c in counts) + no_evidence
    widths = [float(r.get("width")) for r in segments(root)]
    assert len(widths) == sum(1 for _, c in counts if c) + (1 if no_evidence else 0)
    if total:
        assert sum(widths) == pytest.approx(VIEW_WIDTH - 16, abs=0.05)
