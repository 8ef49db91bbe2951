"""Class progress view (pure): rows and stuck rules, sorting, item counts, the chart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lti_tool.grades.charts import contrast_ratio
from lti_tool.playlists.class_progress import (
    SEGMENTS,
    SORT_KEYS,
    ItemSummary,
    StudentActivity,
    StudentRow,
    distribution_svg,
    item_summaries,
    sort_rows,
    summarise,
)
from lti_tool.playlists.path import (
    Item,
    ItemKind,
    PaceState,
    PaceStatus,
    StandardInfo,
    State,
    Tag,
    compute_path,
)

MUST, MAY, CHALLENGE = Tag.MUST_DO, Tag.MAY_DO, Tag.CHALLENGE
VIDEO, CHECKPOINT, QUICK = ItemKind.VIDEO, ItemKind.CHECKPOINT, ItemKind.QUICK_CHECK
STANDARDS = {
    1: StandardInfo(1, "R.1", "Main idea"),
    2: StandardInfo(2, "R.2", "Inference"),
    3: StandardInfo(3, "R.3", "Theme"),
}
NOW = datetime(2024, 10, 1, 12, 0, tzinfo=timezone.utc)
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script> & "x"'


def item(id, tag=MUST, kind=VIDEO, stds=(1,), pre_s=(), pre_i=(), alts=(), k=1, title=None):
    return Item(
        id=id,
        title=title or f"Item {id}",
        kind=kind,
        tag=tag,
        standards=frozenset(stds),
        prereq_standards=frozenset(pre_s),
        prereq_items=frozenset(pre_i),
        alternatives=tuple(alts),
        min_choices=k,
    )


def board(id, alts, tag=MUST, k=1, **kw):
    return item(id, tag=tag, kind=ItemKind.CHOICE_BOARD, alts=alts, k=k, **kw)


def path(items, mastery=None, progress=None):
    return compute_path(items, mastery=mastery or {}, progress=progress or {},
                        standards=STANDARDS)


def student(p, *, id=1, name="Ada", last=NOW, below=None, pace=None):
    return StudentActivity(id, name, p, last, below or {}, pace)


def row(p, **kw) -> StudentRow:
    options = {k: kw.pop(k) for k in ("idle_days", "attempts", "mastery_label") if k in kw}
    (result,) = summarise([student(p, **kw)], now=NOW, standards=STANDARDS, **options)
    return result


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


# A small playlist: a video, then a checkpoint on R.1, then a reading gated on R.2.
PLAYLIST = [
    item(1, title="Watch"),
    item(2, kind=CHECKPOINT, title="Check R.1"),
    item(3, stds=(3,), pre_s=(2,), title="Theme reading"),
]


# ---------------------------------------------------------------- rows


def test_row_copies_progress_and_activity():
    pace = PaceStatus(PaceState.ON_PACE, 1.0, "On pace")
    p = path(PLAYLIST, progress={1: "done"})
    r = row(p, id=7, name="Bea", last=days_ago(1), pace=pace)
    assert (r.student_id, r.name, r.pace, r.last_activity) == (7, "Bea", pace, days_ago(1))
    assert (r.percent, r.must_done, r.must_total, r.complete) == (33, 1, 3, False)
    assert r.stuck == () and not r.is_stuck


def test_current_is_the_entry_in_progress_else_the_recommended_one():
    assert row(path(PLAYLIST)).current == "Watch"  # recommended
    assert row(path(PLAYLIST, progress={2: "started"})).current == "Check R.1"
    # A may-do in progress is what the student is on, even with a must-do recommended.
    items = [item(1), item(2, tag=MAY, title="Extra")]
    assert row(path(items, progress={2: "started"})).current == "Extra"
    # Must-do in progress beats may-do in progress, whatever the order.
    items = [item(1, tag=MAY, title="Extra"), item(2, title="Core")]
    assert row(path(items, progress={1: "started", 2: "started"})).current == "Core"


def test_current_is_none_when_complete_or_nothing_is_open():
    done = path(PLAYLIST, mastery={1: 3, 2: 3, 3: 3}, progress={2: "done"})
    assert done.complete and row(done).current is None
    all_locked = path([item(1, pre_s=(2,))])
    assert all_locked.next_item_id is None and row(all_locked).current is None


def test_current_is_a_board_not_its_option():
    items = [board(1, [2, 3], title="Pick one"), item(2), item(3)]
    assert row(path(items, progress={2: "started"})).current == "Pick one"


def test_locked_counts_must_do_entries_only():
    items = [
        item(1, pre_s=(2,)),
        item(2, pre_s=(2,)),
        item(3, tag=MAY, pre_s=(2,)),
        board(4, [5], pre_s=(3,)),
        item(5),  # option of a locked board: locked too, but not counted
        item(6),
    ]
    assert row(path(items)).locked == 3


def test_ready_lists_unlocked_unfinished_checkpoints():
    items = [
        item(1, kind=CHECKPOINT, title="Open CP"),
        item(2, kind=CHECKPOINT, title="Started CP"),
        item(3, kind=CHECKPOINT, pre_s=(2,), title="Locked CP"),
        item(4, kind=CHECKPOINT, title="Done CP"),
        item(5, kind=CHECKPOINT, stds=(3,), title="Tested-out CP"),
        item(6, kind=QUICK, title="Quick check"),
        item(7, kind=CHECKPOINT, tag=MAY, title="Optional CP"),
    ]
    p = path(items, mastery={3: 4}, progress={2: "started", 4: "done"})
    assert row(p).ready == ("Open CP", "Started CP", "Optional CP")


def test_ready_checkpoint_options_only_while_their_board_is_open():
    items = [
        board(1, [2, 3], title="Board"),
        item(2, kind=CHECKPOINT, title="CP A"),
        item(3, kind=CHECKPOINT, title="CP B"),
    ]
    assert row(path(items)).ready == ("CP A", "CP B")
    assert row(path(items, progress={2: "done"})).ready == ()


def test_input_order_is_kept():
    p = path(PLAYLIST)
    names = ["Cy", "Ada", "Bo"]
    rows = summarise([student(p, id=i, name=n) for i, n in enumerate(names)], now=NOW,
                     standards=STANDARDS)
    assert [r.name for r in rows] == names
    assert summarise([], now=NOW, standards=STANDARDS) == []


# ---------------------------------------------------------------- stuck: idle


@pytest.mark.parametrize(
    ("ago", "expected"),
    [
        (0, ()),
        (6, ()),
        (6.99, ()),
        (7, ("No activity for 7 days",)),
        (9.5, ("No activity for 9 days",)),
        (-1, ()),  # a clock ahead of ours is not idleness
    ],
)
def test_idle_boundary(ago, expected):
    assert row(path(PLAYLIST), last=days_ago(ago)).stuck == expected


def test_idle_days_is_configurable_and_singular_day():
    assert row(path(PLAYLIST), last=days_ago(1), idle_days=1).stuck == ("No activity for 1 day",)
    assert row(path(PLAYLIST), last=days_ago(9), idle_days=10).stuck == ()


def test_naive_times_are_utc():
    naive = days_ago(7).replace(tzinfo=None)
    assert row(path(PLAYLIST), last=naive).stuck == ("No activity for 7 days",)


def test_never_active_with_open_work_is_not_started():
    assert row(path(PLAYLIST), last=None).stuck == ("Not started yet",)


def test_never_active_with_everything_locked_is_only_blocked():
    r = row(path([item(1, pre_s=(2,))]), last=None)
    assert r.stuck == ("Everything left is locked: waiting on mastery of R.2",)


def test_never_active_with_only_may_do_open_is_not_started():
    # Must-do work is locked, a may-do is there to start: both reasons apply.
    p = path([item(1, pre_s=(2,)), item(2, tag=MAY, stds=(3,))])
    assert row(p, last=None).stuck == (
        "Not started yet",
        "Everything left is locked: waiting on mastery of R.2",
    )


# ---------------------------------------------------------------- stuck: attempts


def test_attempts_boundary():
    p = path(PLAYLIST)
    assert row(p, below={2: 1}).stuck == ()
    assert row(p, below={2: 2}).stuck == ("2 attempts below Mastery on R.2",)
    assert row(p, below={2: 2}, mastery_label="Proficient").stuck == (
        "2 attempts below Proficient on R.2",
    )


def test_attempts_threshold_is_configurable():
    p = path(PLAYLIST)
    (r,) = summarise([student(p, below={2: 1})], now=NOW, standards=STANDARDS, attempts=1)
    assert r.stuck == ("1 attempt below Mastery on R.2",)
    (r,) = summarise([student(p, below={2: 2})], now=NOW, standards=STANDARDS, attempts=3)
    assert r.stuck == ()


def test_one_reason_per_standard_ordered_by_label():
    standards = dict(STANDARDS)
    standards[9] = StandardInfo(9, "", "Alpha title")  # no code: named by title
    p = path(PLAYLIST)
    (r,) = summarise([student(p, below={3: 4, 1: 2, 9: 5, 2: 0})], now=NOW,
                     standards=standards)
    assert r.stuck == (
        "5 attempts below Mastery on Alpha title",
        "2 attempts below Mastery on R.1",
        "4 attempts below Mastery on R.3",
    )


def test_attempts_on_a_standard_the_path_shows_mastered_are_ignored():
    p = path(PLAYLIST, mastery={3: 4})  # item 3 is tested out, so R.3 is mastered
    assert row(p, below={3: 5, 1: 2}).stuck == ("2 attempts below Mastery on R.1",)


def test_all_reasons_in_rule_order():
    p = path([item(1, pre_s=(2, 3))])
    assert row(p, last=days_ago(8), below={1: 2}).stuck == (
        "No activity for 8 days",
        "2 attempts below Mastery on R.1",
        "Everything left is locked: waiting on mastery of R.2 and R.3",
    )


# ---------------------------------------------------------------- stuck: blocked


def test_not_blocked_while_some_must_do_is_open():
    p = path([item(1), item(2, pre_s=(2,))])
    assert row(p).locked == 1 and row(p).stuck == ()


def test_blocked_names_standards_through_chains_of_locked_items():
    items = [
        item(1, pre_s=(3,)),
        item(2, pre_i=(1,), pre_s=(2,)),
        item(3, pre_i=(2,)),
        item(4, kind=CHECKPOINT, title="Done CP"),
    ]
    p = path(items, progress={4: "done"})
    assert row(p).stuck == ("Everything left is locked: waiting on mastery of R.2 and R.3",)


def test_blocked_names_an_unfinished_optional_prerequisite():
    items = [
        item(1, tag=MAY, stds=(3,), title="Background reading"),
        item(2, pre_i=(1,)),
        item(3, pre_s=(2,)),
    ]
    assert row(path(items)).stuck == (
        "Everything left is locked: waiting on mastery of R.2 and on finishing "
        "“Background reading”",
    )


def test_blocked_follows_an_option_to_its_locked_board():
    items = [
        board(1, [2], tag=MAY, stds=(3,), pre_s=(2,)),
        item(2, stds=(3,), title="Option"),
        item(3, pre_i=(2,)),
    ]
    assert row(path(items)).stuck == ("Everything left is locked: waiting on mastery of R.2",)


def test_blocked_three_standards_are_listed_with_commas():
    standards = {**STANDARDS, 4: StandardInfo(4, "R.4", "Tone")}
    p = compute_path([item(1, pre_s=(2, 3, 4))], mastery={}, progress={}, standards=standards)
    (r,) = summarise([student(p)], now=NOW, standards=standards)
    assert r.stuck == ("Everything left is locked: waiting on mastery of R.2, R.3 and R.4",)


def test_blocked_is_generic_when_nothing_can_be_named():
    p = path([item(1, pre_s=(2,))])
    # Different labels from the ones the path was computed with: no reason matches.
    other = {2: StandardInfo(2, "X.9", "Elsewhere")}
    (r,) = summarise([student(p)], now=NOW, standards=other)
    assert r.stuck == ("Everything left is locked: waiting on prerequisites.",)


def test_complete_is_never_stuck():
    p = path(PLAYLIST + [item(4, tag=MAY, pre_s=(2,))], mastery={1: 3, 2: 3, 3: 3},
             progress={2: "done"})
    assert p.complete
    r = row(p, last=None, below={1: 9})
    assert r.stuck == () and r.current is None and r.locked == 0
    assert row(p, last=days_ago(100)).stuck == ()
    nothing = path([item(1, tag=MAY)])  # no must-do items: complete
    assert row(nothing, last=None).stuck == ()


@pytest.mark.parametrize("bad", [{"idle_days": 0}, {"attempts": 0}, {"attempts": True},
                                 {"idle_days": 1.5}])
def test_bad_thresholds_are_rejected(bad):
    with pytest.raises(ValueError):
        summarise([], now=NOW, standards=STANDARDS, **bad)


# ---------------------------------------------------------------- sorting


def _rows() -> list[StudentRow]:
    p0 = path(PLAYLIST)
    p1 = path(PLAYLIST, progress={1: "done"})
    p2 = path(PLAYLIST, mastery={2: 3}, progress={1: "done", 2: "done"})
    students = [
        student(p2, id=1, name="cy", last=days_ago(1)),
        student(p0, id=2, name="Ada", last=days_ago(3)),
        student(p1, id=3, name="Bo", last=None),
        student(p2, id=4, name="Al", last=days_ago(10)),
        student(p1, id=5, name="bea", last=days_ago(2), below={2: 2}),
    ]
    return summarise(students, now=NOW, standards=STANDARDS)


def ids(rows):
    return [r.student_id for r in rows]


def test_sort_by_name_ignores_case():
    assert ids(sort_rows(_rows(), "name")) == [2, 4, 5, 3, 1]


def test_sort_by_progress_least_first():
    assert ids(sort_rows(_rows(), "progress")) == [2, 5, 3, 4, 1]


def test_sort_stuck_first_then_progress():
    rows = _rows()
    assert {r.student_id for r in rows if r.stuck} == {3, 4, 5}
    assert ids(sort_rows(rows, "stuck")) == [5, 3, 4, 2, 1]


def test_sort_by_activity_never_then_oldest_first():
    assert ids(sort_rows(_rows(), "activity")) == [3, 4, 2, 5, 1]


def test_sort_does_not_change_its_input():
    rows = _rows()
    before = list(rows)
    sort_rows(rows, "name")
    assert rows == before


def test_sort_unknown_key():
    with pytest.raises(ValueError, match="Unknown sort key 'age'"):
        sort_rows(_rows(), "age")
    assert SORT_KEYS == ("name", "progress", "stuck", "activity")


# ---------------------------------------------------------------- item summaries


def test_item_summaries_count_states_in_playlist_order():
    items = [
        item(1, title="A"),
        board(2, [3, 4], tag=MAY, stds=(2,), title="Board"),
        item(3),
        item(4),
        item(5, kind=CHECKPOINT, stds=(2,), pre_s=(3,), tag=CHALLENGE, title="C"),
    ]
    paths = [
        path(items),
        path(items, progress={1: "done", 3: "started"}),
        path(items, mastery={1: 4, 3: 3}, progress={4: "done"}),
    ]
    summaries = item_summaries(paths)
    assert [(s.item_id, s.title, s.tag) for s in summaries] == [
        (1, "A", MUST), (2, "Board", MAY), (5, "C", CHALLENGE)]

    def counts(s):
        return {state: n for state, n in s.counts.items() if n}

    assert counts(summaries[0]) == {State.AVAILABLE: 1, State.DONE: 1,
                                    State.MASTERED_OPTIONAL: 1}
    assert counts(summaries[1]) == {State.AVAILABLE: 1, State.IN_PROGRESS: 1, State.DONE: 1}
    assert counts(summaries[2]) == {State.LOCKED: 2, State.AVAILABLE: 1}
    assert all(set(s.counts) == set(State) and s.total == 3 for s in summaries)


def test_item_summaries_are_read_only():
    (summary,) = item_summaries([path([item(1)])])
    with pytest.raises(TypeError):
        summary.counts[State.DONE] = 5  # type: ignore[index]


def test_item_summaries_empty_input():
    assert item_summaries([]) == []


def test_item_summaries_reject_paths_of_different_playlists():
    with pytest.raises(ValueError, match="Path 2 has different items"):
        item_summaries([path([item(1), item(2)]), path([item(2), item(1)])])
    with pytest.raises(ValueError, match="Path 2"):
        item_summaries([path([item(1)]), path([item(1), item(2)])])


PROPERTY_ITEMS = [
    item(1),
    item(2, kind=CHECKPOINT, pre_i=(1,)),
    board(3, [4, 5], tag=MAY, stds=(2,)),
    item(4, stds=(2,)),
    item(5, stds=(3,)),
    item(6, pre_s=(2,), stds=(3,)),
    item(7, tag=CHALLENGE, kind=CHECKPOINT, stds=(1, 3)),
]
mastery_values = st.sampled_from([None, 1.0, 2.0, 3.0, 4.0])
progress_values = st.sampled_from(["not_started", "started", "done"])
students_strategy = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from([1, 2, 3]), mastery_values),
        st.dictionaries(st.sampled_from([i.id for i in PROPERTY_ITEMS]), progress_values),
        st.one_of(st.none(), st.floats(min_value=-2, max_value=30)),
        st.dictionaries(st.sampled_from([1, 2, 3]), st.integers(0, 5)),
    ),
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(students_strategy)
def test_properties_of_rows_and_summaries(data):
    paths = [path(PROPERTY_ITEMS, mastery=m, progress=pr) for m, pr, _, _ in data]
    summaries = item_summaries(paths)
    if not paths:
        assert summaries == []
    else:
        assert [s.item_id for s in summaries] == [1, 2, 3, 6, 7]
    for s in summaries:
        assert sum(s.counts.values()) == len(paths)
    students = [
        student(p, id=i, last=None if ago is None else days_ago(ago), below=att)
        for i, (p, (_, _, ago, att)) in enumerate(zip(paths, data, strict=True))
    ]
    rows = summarise(students, now=NOW, standards=STANDARDS)
    for r, p in zip(rows, paths, strict=True):
        assert r.percent == p.percent and r.complete == p.complete
        if r.complete:
            assert r.stuck == () and r.current is None and r.locked == 0
        assert len(set(r.stuck)) == len(r.stuck)
        must_locked = [e for e in p.entries if e.board_id is None and e.item.tag is MUST
                       and e.state is State.LOCKED]
        assert r.locked == len(must_locked)
    for key in SORT_KEYS:
        assert sorted(ids(sort_rows(rows, key))) == ids(rows)
    svg = distribution_svg(summaries, title="T", id_prefix="p")
    ET.fromstring(svg)


def test_sanity_for_a_large_class():
    """500 students × 40 items goes through every function (no timing here)."""
    items = [
        item(i, kind=CHECKPOINT if i % 5 == 0 else VIDEO, tag=MUST if i % 3 else MAY,
             stds=(i % 3 + 1,), pre_s=((i + 1) % 3 + 1,) if i % 4 == 0 else (),
             pre_i=(i - 1,) if i % 7 == 0 else ())
        for i in range(1, 41)
    ]
    paths = [
        path(items, mastery={1: n % 5, 2: (n // 5) % 5, 3: None},
             progress={i: ("not_started", "started", "done")[(n + i) % 3] for i in range(1, 41)})
        for n in range(500)
    ]
    students = [student(p, id=n, last=days_ago(n % 12) if n % 9 else None,
                        below={n % 3 + 1: n % 4}) for n, p in enumerate(paths)]
    rows = summarise(students, now=NOW, standards=STANDARDS)
    assert len(rows) == 500 and any(r.stuck for r in rows) and any(r.ready for r in rows)
    summaries = item_summaries(paths)
    assert len(summaries) == 40 and all(s.total == 500 for s in summaries)
    root = ET.fromstring(distribution_svg(summaries, title="Class", id_prefix="big"))
    assert len(bars(root)) == 40
    assert len(sort_rows(rows, "stuck")) == 500


# ---------------------------------------------------------------- the chart


def summary(id, title, done=0, tested=0, started=0, available=0, locked=0, tag=MUST):
    return ItemSummary(id, title, tag, {
        State.DONE: done, State.MASTERED_OPTIONAL: tested, State.IN_PROGRESS: started,
        State.AVAILABLE: available, State.LOCKED: locked})


SUMMARIES = [
    summary(1, "Intro video", done=20, tested=3, started=4, available=2, locked=1),
    summary(2, HOSTILE, done=2, started=1, available=7, locked=20, tag=MAY),
    summary(3, "Checkpoint: drawing conclusions from what a text implies", locked=30),
]


def chart(summaries=SUMMARIES, **kw) -> str:
    kw.setdefault("title", "Class progress")
    kw.setdefault("id_prefix", "cp")
    return distribution_svg(summaries, **kw)


def bars(root):
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "item-bar"]


def shown(el) -> str:
    return (el.text or "") + "".join(child.tail or "" for child in el)


def test_chart_is_accessible_xml():
    root = ET.fromstring(chart())
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("aria-labelledby") == "cp-title cp-desc"
    assert root.find(f"{SVG}title").get("id") == "cp-title"
    assert root.find(f"{SVG}title").text == "Class progress"
    desc = root.find(f"{SVG}desc")
    assert desc.get("id") == "cp-desc"
    assert desc.text.startswith(
        "3 items, 30 students. Most finished: “Intro video” (23 of 30, 77%); most locked: "
        "“Checkpoint: drawing conclusions from what a text implies” (30 of 30, 100%).")
    assert "Over all items: done 24%, tested out 3%" in desc.text


def test_one_bar_group_per_item_with_segments_in_order():
    root = ET.fromstring(chart())
    groups = bars(root)
    assert [g.get("data-item-id") for g in groups] == ["1", "2", "3"]
    assert [g.get("data-tag") for g in groups] == ["must_do", "may_do", "must_do"]
    segments = [r for r in groups[0].iter(f"{SVG}rect") if r.get("class") == "segment"]
    assert [r.get("data-state") for r in segments] == [s.state.value for s in SEGMENTS]
    assert [r.get("data-count") for r in segments] == ["20", "3", "4", "2", "1"]
    widths = [float(r.get("width")) for r in segments]
    assert sum(widths) == pytest.approx(424, abs=0.05)
    assert widths[0] == pytest.approx(424 * 20 / 30, abs=0.01)
    assert segments[0].find(f"{SVG}title").text == "Done: 20 of 30 students (67%)"
    # Zero counts draw nothing.
    assert [r.get("data-state") for r in groups[2].iter(f"{SVG}rect")
            if r.get("class") == "segment"] == ["locked"]


def test_counts_are_shown_inside_wide_segments_only():
    root = ET.fromstring(chart())
    counts = [shown(t) for t in bars(root)[0].iter(f"{SVG}text")
              if t.get("class") == "in-bar-count"]
    assert counts == ["20", "3", "4", "2"]  # 1 of 30 (14 units) is too narrow for "1"


def test_long_titles_are_cut_with_the_full_title_as_tooltip():
    root = ET.fromstring(chart())
    label = next(t for t in bars(root)[2].iter(f"{SVG}text") if t.get("class") == "item-title")
    assert shown(label).endswith("…") and len(shown(label)) < len(SUMMARIES[2].title)
    assert label.find(f"{SVG}title").text == SUMMARIES[2].title
    short = next(t for t in bars(root)[0].iter(f"{SVG}text") if t.get("class") == "item-title")
    assert shown(short) == "Intro video"


def test_teacher_text_is_escaped():
    svg = chart(title=HOSTILE)
    assert "<script>" not in svg and "alert(1)</script>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;" in svg
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == HOSTILE
    label = next(t for t in bars(root)[1].iter(f"{SVG}text") if t.get("class") == "item-title")
    assert label.find(f"{SVG}title").text == HOSTILE
    assert not list(root.iter(f"{SVG}script"))


def test_control_characters_do_not_break_the_xml():
    ET.fromstring(chart([summary(1, "bad\x00\x1b title\ud800", done=1)], title="a\x07b"))


def test_ids_are_prefixed_and_two_charts_do_not_clash():
    first, second = chart(id_prefix="one"), chart(id_prefix="two")
    for svg, prefix in ((first, "one"), (second, "two")):
        root = ET.fromstring(svg)
        all_ids = [el.get("id") for el in root.iter() if el.get("id")]
        assert all_ids and all(i.startswith(f"{prefix}-") for i in all_ids)
        patterns = [p.get("id") for p in root.iter(f"{SVG}pattern")]
        assert len(patterns) == len(set(patterns)) == 5
        refs = set(re.findall(r'url\(#([^)]+)\)', svg))
        assert refs <= set(patterns) and refs
    assert not set(re.findall(r' id="([^"]+)"', first)) & set(re.findall(r' id="([^"]+)"', second))


def test_no_inline_styles():
    for svg in (chart(), chart([]), chart([summary(1, "x")])):
        assert "style=" not in svg and "<style" not in svg


def test_each_state_has_its_own_colour_pattern_and_legend_text():
    root = ET.fromstring(chart())
    patterns = {p.get("id"): p for p in root.iter(f"{SVG}pattern")}
    assert len({p.get("data-pattern") for p in patterns.values()}) == 5
    assert len({s.colour for s in SEGMENTS}) == 5
    legend = [g for g in root.iter(f"{SVG}g") if g.get("class") == "legend-entry"]
    assert [shown(g.find(f"{SVG}text")) for g in legend] == [
        "Done", "Tested out", "In progress", "Available", "Locked"]
    for g, segment in zip(legend, SEGMENTS, strict=True):
        fill = g.find(f"{SVG}rect").get("fill")
        pattern = patterns[fill[len("url(#"):-1]]
        assert pattern.get("data-pattern") == segment.pattern
        assert pattern.find(f"{SVG}rect").get("fill") == segment.colour


def test_colours_contrast_with_white():
    for segment in SEGMENTS:
        assert contrast_ratio(segment.colour, "#ffffff") >= 4.5  # white count text on it
    svg = chart()
    text_fills = set(re.findall(r'<text [^>]*fill="(#[0-9a-f]{6})"', svg))
    for fill in text_fills - {"#ffffff"}:
        assert contrast_ratio(fill, "#ffffff") >= 4.5


def test_empty_summaries_say_no_items_yet():
    root = ET.fromstring(chart([]))
    assert root.get("role") == "img" and root.get("aria-labelledby") == "cp-title cp-desc"
    assert root.find(f"{SVG}desc").text == "No items yet."
    assert [shown(t) for t in root.iter(f"{SVG}text")] == ["No items yet"]
    assert not bars(root)


def test_items_with_no_students():
    root = ET.fromstring(chart([summary(1, "Alone")]))
    assert root.find(f"{SVG}desc").text == "1 item, 0 students."
    assert "No students" in [shown(t) for t in bars(root)[0].iter(f"{SVG}text")]


def test_desc_when_nothing_finished_or_locked():
    root = ET.fromstring(chart([summary(1, "A", available=2), summary(2, "B", started=2)]))
    assert root.find(f"{SVG}desc").text.startswith(
        "2 items, 2 students. No item finished yet; nothing is locked.")


def test_blank_title_falls_back():
    root = ET.fromstring(chart(title="  "))
    assert root.find(f"{SVG}title").text == "Class progress by item"


@pytest.mark.parametrize("prefix", ["", "1a", "a b", 'x"y', None])
def test_bad_id_prefix(prefix):
    with pytest.raises(ValueError):
        chart(id_prefix=prefix)


def test_bad_counts_are_rejected():
    with pytest.raises(ValueError):
        chart([summary(1, "A", done=-1)])
