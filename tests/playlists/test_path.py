"""Personal paths through a playlist and pace (pure): each rule, then properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lti_tool.playlists.path import (
    PACE_TOLERANCE,
    Item,
    ItemKind,
    PaceState,
    StandardInfo,
    State,
    Tag,
    compute_path,
    pace,
)

MUST, MAY, CHALLENGE = Tag.MUST_DO, Tag.MAY_DO, Tag.CHALLENGE
STANDARDS = {
    1: StandardInfo(1, "R.1", "Main idea"),
    2: StandardInfo(2, "R.2", "Inference"),
    3: StandardInfo(3, "R.3", "Theme"),
}


def item(id, tag=MUST, kind=ItemKind.VIDEO, stds=(1,), pre_s=(), pre_i=(), alts=(), k=1,
         title=None):
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


def path(items, mastery=None, progress=None, **kw):
    return compute_path(
        items, mastery=mastery or {}, progress=progress or {}, standards=STANDARDS, **kw
    )


def states(p):
    return {e.item.id: e.state for e in p.entries}


def entry(p, item_id):
    return next(e for e in p.entries if e.item.id == item_id)


# ---------------------------------------------------------------- tested out


def test_all_aligned_standards_mastered_is_tested_out():
    p = path([item(1, stds=(1, 2))], mastery={1: 3.0, 2: 4.0})
    assert states(p) == {1: State.MASTERED_OPTIONAL}


def test_some_standards_mastered_is_not_tested_out():
    p = path([item(1, stds=(1, 2))], mastery={1: 4.0, 2: 2.9})
    assert states(p) == {1: State.AVAILABLE}


def test_no_evidence_is_not_mastered():
    assert states(path([item(1)], mastery={1: None})) == {1: State.AVAILABLE}


def test_mastery_points_threshold_is_configurable():
    assert states(path([item(1)], mastery={1: 3.0}, mastery_points=3.5))[1] is State.AVAILABLE
    assert states(path([item(1)], mastery={1: 2.5}, mastery_points=2.5))[1] is (
        State.MASTERED_OPTIONAL
    )


def test_item_without_standards_is_never_tested_out():
    assert states(path([item(1, stds=())], mastery={1: 4, 2: 4, 3: 4}))[1] is State.AVAILABLE


@pytest.mark.parametrize("kind", [ItemKind.CHECKPOINT, ItemKind.QUICK_CHECK])
def test_done_checkpoint_or_quick_check_stays_done_when_mastered(kind):
    p = path([item(1, kind=kind)], mastery={1: 4.0}, progress={1: "done"})
    assert states(p)[1] is State.DONE


def test_undone_checkpoint_is_tested_out_and_done_video_is_tested_out():
    items = [item(1, kind=ItemKind.CHECKPOINT), item(2, kind=ItemKind.VIDEO)]
    p = path(items, mastery={1: 4.0}, progress={2: "done"})
    assert states(p) == {1: State.MASTERED_OPTIONAL, 2: State.MASTERED_OPTIONAL}


def test_tested_out_beats_locked():
    p = path([item(1, stds=(1,), pre_s=(2,))], mastery={1: 3.0})
    assert entry(p, 1).state is State.MASTERED_OPTIONAL
    assert entry(p, 1).reasons == ()


# ---------------------------------------------------------------- locked


def test_locked_by_standard_names_its_code_and_level():
    p = path([item(1, pre_s=(2,))], mastery={2: 2.0})
    assert entry(p, 1).state is State.LOCKED
    assert entry(p, 1).reasons == ("Unlocks when you reach Mastery on R.2",)


def test_mastery_label_is_used():
    p = path([item(1, pre_s=(2,))], mastery_label="Proficient")
    assert entry(p, 1).reasons == ("Unlocks when you reach Proficient on R.2",)


def test_standard_without_code_is_named_by_title():
    standards = {**STANDARDS, 2: StandardInfo(2, " ", "Inference")}
    p = compute_path([item(1, pre_s=(2,))], mastery={}, progress={}, standards=standards)
    assert entry(p, 1).reasons == ("Unlocks when you reach Mastery on Inference",)


def test_locked_by_item_names_its_title():
    items = [item(1, title="Intro video"), item(2, pre_i=(1,))]
    p = path(items, progress={1: "started"})
    assert entry(p, 2).state is State.LOCKED
    assert entry(p, 2).reasons == ("Unlocks when you finish “Intro video”",)


def test_all_reasons_are_listed_standards_first():
    items = [item(1, title="Intro video"), item(2, title="Notes"),
             item(3, pre_s=(3, 2), pre_i=(2, 1))]
    p = path(items)
    assert entry(p, 3).reasons == (
        "Unlocks when you reach Mastery on R.2",
        "Unlocks when you reach Mastery on R.3",
        "Unlocks when you finish “Intro video”",
        "Unlocks when you finish “Notes”",
    )


def test_met_prerequisites_unlock():
    items = [item(1, stds=(3,)), item(2, stds=(3,), pre_s=(2,), pre_i=(1,))]
    assert states(path(items, mastery={2: 3.0}, progress={1: "done"}))[2] is State.AVAILABLE


def test_tested_out_prerequisite_item_counts_as_finished():
    items = [item(1, stds=(1,)), item(2, stds=(3,), pre_i=(1,))]
    assert states(path(items, mastery={1: 4.0}))[2] is State.AVAILABLE


def test_started_but_locked_is_locked_and_done_but_locked_stays_done():
    items = [item(1, stds=(3,), pre_s=(2,)), item(2, stds=(3,), pre_s=(2,))]
    p = path(items, progress={1: "started", 2: "done"})
    assert states(p) == {1: State.LOCKED, 2: State.DONE}


# ---------------------------------------------------------------- plain states


def test_progress_states():
    items = [item(1), item(2), item(3), item(4)]
    p = path(items, progress={1: "done", 2: "started", 3: "not_started"})
    assert states(p) == {1: State.DONE, 2: State.IN_PROGRESS, 3: State.AVAILABLE,
                         4: State.AVAILABLE}


# ---------------------------------------------------------------- recommendation


def test_first_available_must_do_is_recommended():
    p = path([item(1, tag=MAY), item(2), item(3)])
    assert p.next_item_id == 2
    assert [e.recommended for e in p.entries] == [False, True, False]
    assert p.message == "Next up: “Item 2”"


def test_in_progress_must_do_comes_first():
    p = path([item(1), item(2), item(3)], progress={3: "started"})
    assert p.next_item_id == 3


def test_locked_and_finished_must_dos_are_skipped():
    items = [item(1), item(2, pre_s=(3,)), item(3, stds=(2,)), item(4)]
    p = path(items, mastery={2: 3.0}, progress={1: "done"})
    assert p.next_item_id == 4


def test_challenge_never_recommended_while_must_do_open():
    items = [item(1, tag=CHALLENGE), item(2, pre_s=(2,)), item(3, tag=MAY, pre_s=(2,))]
    p = path(items)
    assert p.next_item_id is None
    assert not p.complete
    assert p.message == "Everything left to do is locked for now."
    p = path([item(1, tag=CHALLENGE), item(2)])
    assert p.next_item_id == 2


def test_may_do_recommended_when_every_open_must_do_is_locked():
    items = [item(1, tag=CHALLENGE), item(2, pre_s=(2,)), item(3, tag=MAY), item(4, tag=MAY)]
    assert path(items).next_item_id == 3
    assert path(items, progress={4: "started"}).next_item_id == 4


def test_nothing_recommended_when_must_do_complete():
    items = [item(1, stds=(1,)), item(2, stds=(2,)), item(3, tag=MAY), item(4, tag=CHALLENGE)]
    p = path(items, mastery={1: 3.0}, progress={2: "done"})
    assert p.next_item_id is None
    assert p.complete
    assert not any(e.recommended for e in p.entries)
    assert p.message == "You have finished all must-do work. Anything left is optional."


# ---------------------------------------------------------------- choice boards


def board_playlist(k=1, board_pre=()):
    return [
        board(1, alts=(2, 3, 4), k=k, stds=(1,), pre_s=board_pre, title="Pick a project"),
        item(2, tag=MAY, stds=(2,)),
        item(3, tag=MAY, stds=(2,)),
        item(4, tag=MAY, stds=(2,)),
        item(5, stds=(3,)),
    ]


def test_board_options_are_nested_and_only_the_board_is_recommended():
    p = path(board_playlist())
    assert [e.board_id for e in p.entries] == [None, 1, 1, 1, None]
    assert p.next_item_id == 1
    assert p.must_total == 2


def test_board_in_progress_then_done_with_min_choices():
    items = board_playlist(k=2)
    p = path(items, progress={2: "started"})
    assert states(p)[1] is State.IN_PROGRESS
    p = path(items, progress={2: "done", 3: "started"})
    assert states(p)[1] is State.IN_PROGRESS
    assert p.next_item_id == 1
    p = path(items, progress={2: "done", 3: "done", 1: "not_started"})
    assert states(p)[1] is State.DONE
    assert p.next_item_id == 5
    assert (p.must_done, p.percent) == (1, 50)


def test_board_own_progress_is_ignored():
    p = path(board_playlist(), progress={1: "done"})
    assert states(p)[1] is State.AVAILABLE


def test_options_of_a_locked_board_are_locked_with_its_reasons():
    items = board_playlist(board_pre=(2,))
    items[2] = item(3, tag=MAY, stds=(2,), pre_s=(3,))
    p = path(items)
    assert entry(p, 1).reasons == ("Unlocks when you reach Mastery on R.2",)
    assert entry(p, 2).state is State.LOCKED
    assert entry(p, 2).reasons == entry(p, 1).reasons
    assert entry(p, 3).reasons == (
        "Unlocks when you reach Mastery on R.2",
        "Unlocks when you reach Mastery on R.3",
    )


def test_board_tested_out_by_its_own_standards():
    p = path(board_playlist(), mastery={1: 3.0})
    assert states(p)[1] is State.MASTERED_OPTIONAL
    assert p.next_item_id == 5


# ---------------------------------------------------------------- progress


def test_percent_counts_must_do_only_and_rounds_down():
    items = [item(1), item(2, stds=(2,)), item(3, pre_s=(3,)), item(4, tag=MAY),
             item(5, tag=CHALLENGE)]
    p = path(items, mastery={2: 3.0}, progress={1: "done", 4: "done", 5: "done"})
    assert (p.must_done, p.must_total, p.percent, p.complete) == (2, 3, 66, False)


def test_no_must_do_items_is_complete():
    p = path([item(1, tag=MAY)])
    assert (p.must_done, p.must_total, p.percent, p.complete) == (0, 0, 100, True)
    assert p.next_item_id is None


def test_empty_playlist():
    p = path([])
    assert p.entries == () and p.complete and p.percent == 100


# ---------------------------------------------------------------- validation


def test_unknown_prerequisite_item_is_named():
    with pytest.raises(ValueError, match=r"“Item 2” \(id 2\) needs item id\(s\) 9"):
        path([item(1), item(2, pre_i=(9,))])


def test_cycle_is_named():
    items = [item(1, title="A", pre_i=(3,)), item(2, title="B", pre_i=(1,)),
             item(3, title="C", pre_i=(2,))]
    with pytest.raises(ValueError, match="wait on each other.*“A” → “C” → “B” → “A”"):
        path(items)


def test_board_waiting_on_its_own_option_is_a_cycle():
    items = [board(1, alts=(2,), pre_i=(2,), title="Board"), item(2, title="Opt")]
    with pytest.raises(ValueError, match="“Board” → “Opt” → “Board”"):
        path(items)


@pytest.mark.parametrize(
    ("items", "progress", "message"),
    [
        ([item(1, pre_i=(1,))], {}, "lists itself"),
        ([item(1), item(1)], {}, "used twice"),
        ([item(1, pre_s=(7,))], {}, "standard id\\(s\\) 7"),
        ([board(1, alts=(9,))], {}, "option id 9"),
        ([item(2), board(1, alts=(2,))], {}, "move it after the board"),
        ([board(1, alts=(2,), k=2), item(2)], {}, "asks for 2 choice"),
        ([board(1, alts=())], {}, "has no options"),
        ([board(1, alts=(2,)), board(2, alts=(3,)), item(3)], {}, "cannot be nested"),
        ([board(1, alts=(3,)), board(2, alts=(3,)), item(3)], {}, "two choice boards"),
        ([item(1, alts=(2,)), item(2)], {}, "not a choice board"),
        ([item(1)], {1: "finished"}, "Unknown progress value"),
    ],
)
def test_bad_playlists_are_rejected(items, progress, message):
    with pytest.raises(ValueError, match=message):
        path(items, progress=progress)


# ---------------------------------------------------------------- pace

START, TARGET = date(2024, 10, 1), date(2024, 10, 31)  # 30 days
MID = date(2024, 10, 16)  # 15 days in: 15 of 30 expected


@pytest.mark.parametrize(
    ("today", "done", "status", "expected", "message"),
    [
        (MID, 15, PaceState.ON_PACE, 15.0,
         "You are on pace for 31 Oct: about 1 item a day gets you there."),
        (MID, 14, PaceState.ON_PACE, 15.0,
         "You are on pace for 31 Oct: about 1 item a day gets you there."),
        (MID, 16, PaceState.ON_PACE, 15.0,
         "You are on pace for 31 Oct: about 7 items a week gets you there."),
        (MID, 13, PaceState.BEHIND, 15.0,
         "You are 2 items behind: about 1 item a day keeps you on pace for 31 Oct"),
        (MID, 0, PaceState.BEHIND, 15.0,
         "You are 15 items behind: about 2 items a day keeps you on pace for 31 Oct"),
        (MID, 18, PaceState.AHEAD, 15.0, "You are 3 items ahead of pace for 31 Oct."),
        (TARGET, 27, PaceState.BEHIND, 30.0,
         "You are 3 items behind: finishing 3 items today keeps you on pace for 31 Oct"),
        (TARGET, 29, PaceState.ON_PACE, 30.0,
         "You are on pace for 31 Oct: finishing 1 item today gets you there."),
        (date(2024, 11, 1), 26, PaceState.OVERDUE, 30.0,
         "The target date, 31 Oct, has passed with 4 items left."),
        (date(2024, 11, 1), 30, PaceState.COMPLETE, 30.0, "All 30 items done."),
        (date(2024, 9, 20), 0, PaceState.ON_PACE, 0.0,  # before the start
         "You are on pace for 31 Oct: about 5 items a week gets you there."),
    ],
)
def test_pace(today, done, status, expected, message):
    result = pace(START, TARGET, today, done, 30)
    assert (result.status, result.expected_done, result.message) == (status, expected, message)


def test_pace_slow_rates():
    start = date(2024, 1, 1)
    assert pace(start, start + timedelta(days=70), start, 0, 10).message == (
        "You are on pace for 11 Mar: about 1 item a week gets you there."
    )
    assert pace(start, start + timedelta(days=60), start, 0, 2).message == (
        "You are on pace for 1 Mar: about 1 item every 30 days gets you there."
    )


def test_pace_without_target_or_work():
    result = pace(START, None, MID, 3, 10)
    assert (result.status, result.expected_done, result.message) == (
        PaceState.NO_TARGET, 3.0, "3 of 10 items done. No target date is set.")
    assert pace(START, None, MID, 10, 10).status is PaceState.COMPLETE
    assert pace(START, TARGET, MID, 0, 0).message == "There is nothing to do yet."


@pytest.mark.parametrize(
    ("target", "done", "total"),
    [(TARGET, -1, 5), (TARGET, 6, 5), (TARGET, 0, -1), (date(2024, 9, 1), 0, 5)],
)
def test_pace_rejects_bad_input(target, done, total):
    with pytest.raises(ValueError):
        pace(START, target, MID, done, total)


@given(
    offset=st.integers(-10, 60), length=st.integers(0, 60),
    total=st.integers(0, 40), data=st.data(),
)
def test_pace_properties(offset, length, total, data):
    done = data.draw(st.integers(0, total))
    target = START + timedelta(days=length)
    today = START + timedelta(days=offset)
    result = pace(START, target, today, done, total)
    assert 0.0 <= result.expected_done <= total
    if done == total:
        assert result.status is PaceState.COMPLETE
    elif today > target:
        assert result.status is PaceState.OVERDUE
    else:
        on = abs(done - result.expected_done) <= PACE_TOLERANCE
        assert (result.status is PaceState.ON_PACE) == on


# ---------------------------------------------------------------- properties

PROGRESS = st.sampled_from(["not_started", "started", "done"])
LEVEL = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0]))
STD_SET = st.frozensets(st.sampled_from(sorted(STANDARDS)), max_size=3)
PLAIN_KINDS = [k for k in ItemKind if k is not ItemKind.CHOICE_BOARD]


@st.composite
def playlists(draw):
    n = draw(st.integers(0, 8))
    ids = list(range(1, n + 1))
    specs = []
    for i in ids:
        specs.append(dict(
            id=i,
            title=f"Item {i}",
            kind=draw(st.sampled_from(PLAIN_KINDS)),
            tag=draw(st.sampled_from(list(Tag))),
            standards=draw(STD_SET),
            prereq_standards=draw(STD_SET),
            # Only earlier items as prerequisites, so there are never cycles.
            prereq_items=draw(st.frozensets(st.sampled_from(ids[: i - 1]), max_size=2))
            if i > 1 else frozenset(),
        ))
    taken: set[int] = set()
    for b in range(n - 1):
        if b + 1 in taken or not draw(st.booleans()):
            continue
        later = [i for i in ids[b + 1:] if i not in taken]
        if not later:
            continue
        alts = draw(st.lists(st.sampled_from(later), min_size=1, max_size=3, unique=True))
        alts = sorted(alts)
        taken.update(alts)
        specs[b].update(kind=ItemKind.CHOICE_BOARD, alternatives=tuple(alts),
                        min_choices=draw(st.integers(1, len(alts))))
    # A board can't be an option: options were taken after it and skipped as boards.
    items = [Item(**s) for s in specs]
    for it in items:
        assert not (it.kind is ItemKind.CHOICE_BOARD and it.id in taken)
    return items


@st.composite
def students(draw):
    items = draw(playlists())
    mastery = {s: draw(LEVEL) for s in STANDARDS}
    progress = {i.id: draw(PROGRESS) for i in items}
    return items, mastery, progress


def run(items, mastery, progress):
    return compute_path(items, mastery=mastery, progress=progress, standards=STANDARDS)


@settings(max_examples=150, deadline=None)
@given(students())
def test_path_invariants(case):
    p = run(*case)
    recommended = [e for e in p.entries if e.recommended]
    assert len(recommended) <= 1
    assert p.next_item_id == (recommended[0].item.id if recommended else None)
    for e in recommended:
        assert e.state in (State.AVAILABLE, State.IN_PROGRESS)
        assert e.board_id is None
        assert e.item.tag is not Tag.CHALLENGE
    assert 0 <= p.percent <= 100
    assert (p.percent == 100) == p.complete
    assert p.complete or p.must_done < p.must_total
    for e in p.entries:
        assert (e.state is State.LOCKED) == bool(e.reasons)


@st.composite
def raised(draw):
    items, mastery, progress = draw(students())
    higher = {}
    for s, value in mastery.items():
        up = draw(LEVEL)
        if value is None:
            higher[s] = up
        else:
            higher[s] = value if up is None else max(value, up)
    return items, mastery, higher, progress


@settings(max_examples=150, deadline=None)
@given(raised())
def test_raising_mastery_never_locks_or_lowers_percent(case):
    items, before, after, progress = case
    p1, p2 = run(items, before, progress), run(items, after, progress)
    for e1, e2 in zip(p1.entries, p2.entries, strict=True):
        if e1.state is not State.LOCKED:
            assert e2.state is not State.LOCKED
    assert p2.percent >= p1.percent


@settings(max_examples=150, deadline=None)
@given(students(), st.data())
def test_more_done_progress_never_lowers_percent(case, data):
    items, mastery, progress = case
    extra = data.draw(st.frozensets(st.sampled_from([i.id for i in items]))) if items else ()
    more = {**progress, **dict.fromkeys(extra, "done")}
    assert run(items, mastery, more).percent >= run(items, mastery, progress).percent
