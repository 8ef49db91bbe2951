"""A student's personal path through a playlist, and their pace (pure).

No Flask, no database, no I/O: the caller passes the playlist, the student's current
mastery and progress, and gets back frozen dataclasses to render.

Rules of :func:`compute_path`
-----------------------------
Each item gets exactly one :class:`State`, decided in this order (first match wins):

1. **done** – a checkpoint or quick check the student has done (evidence they produced is
   never hidden behind "tested out").
2. **mastered_optional** – every aligned standard is mastered (rollup ≥ ``mastery_points``;
   ``None`` means no evidence, so not mastered). Items with no aligned standards are never
   tested out. Tested out beats locked: mastering the content makes the gate moot.
3. **done** – the student's progress says done (for a choice board: at least
   ``min_choices`` of its options are done). Finished work stays finished even if a
   prerequisite was added later, so done beats locked.
4. **locked** – a prerequisite is unmet. A prerequisite standard is met when mastered; a
   prerequisite item is met when that item is done or tested out (state 1–3). Every unmet
   prerequisite gives one plain-language reason: standards first (ordered by code), then
   items (in playlist order).
5. **in_progress** – progress says started (a board: any option started or done).
6. **available** – everything else.

Choice boards
-------------
A board's ``alternatives`` are item ids of its options. Options are ordinary items listed
in the playlist *after* their board; each belongs to exactly one board and cannot itself
be a board. In :attr:`Path.entries` an option keeps its playlist position and has
``board_id`` set, so a page shows it nested under its board. Options are never
recommended and never counted in progress: the board is (recommending the board means
"pick one of these"), and the board's own tag decides whether it is must-do. An option is
locked while its board is locked (the board's reasons are repeated on it), and an option
counts towards its board only when its progress is done. A board's own progress entry is
ignored; its state comes from its options and its own standards and prerequisites.

Recommendation and progress
---------------------------
The next item is the first must-do entry that is in progress, else the first available
must-do entry, else – while some must-do work is still open (not done, not tested out) –
the first in-progress or available may-do entry. Challenge items are never recommended:
while must-do work is open they would distract from it, and once it is all complete the
path is complete and everything left is offered, not pushed. So ``next_item_id is None``
with ``complete`` false means everything left is locked (usually waiting on mastery).

Progress counts must-do entries only (not board options): done and tested out are
complete, anything else (locked included) is not. ``percent`` is rounded down, so it is
100 exactly when ``complete``; a playlist with no must-do items is complete.

Pace
----
See :func:`pace`. Tolerance: being within :data:`PACE_TOLERANCE` (1 item) of the expected
count, either way, is "on pace".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum


class ItemKind(str, Enum):
    RESOURCE = "resource"
    READING = "reading"
    VIDEO = "video"
    PRACTICE = "practice"
    QUICK_CHECK = "quick_check"
    CHECKPOINT = "checkpoint"
    CHOICE_BOARD = "choice_board"


class Tag(str, Enum):
    MUST_DO = "must_do"
    MAY_DO = "may_do"
    CHALLENGE = "challenge"


class State(str, Enum):
    LOCKED = "locked"
    AVAILABLE = "available"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    MASTERED_OPTIONAL = "mastered_optional"


class PaceState(str, Enum):
    NO_TARGET = "no_target"
    AHEAD = "ahead"
    ON_PACE = "on_pace"
    BEHIND = "behind"
    OVERDUE = "overdue"
    COMPLETE = "complete"


PROGRESS_VALUES = frozenset({"not_started", "started", "done"})
_EVIDENCE_KINDS = frozenset({ItemKind.CHECKPOINT, ItemKind.QUICK_CHECK})
_COMPLETE = frozenset({State.DONE, State.MASTERED_OPTIONAL})
PACE_TOLERANCE = 1.0


@dataclass(frozen=True)
class Item:
    id: int
    title: str
    kind: ItemKind
    tag: Tag
    standards: frozenset[int]
    prereq_standards: frozenset[int] = frozenset()
    prereq_items: frozenset[int] = frozenset()
    alternatives: tuple[int, ...] = ()
    min_choices: int = 1


@dataclass(frozen=True)
class StandardInfo:
    id: int
    code: str
    title: str

    @property
    def label(self) -> str:
        return self.code.strip() or self.title.strip() or f"standard {self.id}"


@dataclass(slots=True)  # not frozen: a class of 500 builds 20,000 of these per page
class PathEntry:
    item: Item
    state: State
    reasons: tuple[str, ...] = ()
    recommended: bool = False
    board_id: int | None = None  # set for a choice-board option: show it under that board


@dataclass(frozen=True)
class Path:
    entries: tuple[PathEntry, ...]
    next_item_id: int | None
    must_done: int
    must_total: int
    percent: int
    complete: bool

    @property
    def message(self) -> str:
        if self.complete:
            return "You have finished all must-do work. Anything left is optional."
        if self.next_item_id is None:
            return "Everything left to do is locked for now."
        title = next(e.item.title for e in self.entries if e.item.id == self.next_item_id)
        return f"Next up: “{title}”"


@dataclass(frozen=True)
class PaceStatus:
    status: PaceState
    expected_done: float
    message: str


# ---------------------------------------------------------------- validation


def _describe(item: Item) -> str:
    return f"“{item.title}” (id {item.id})"


def _validate(
    items: Sequence[Item], progress: Mapping[int, str], standards: Mapping[int, StandardInfo]
) -> dict[int, int]:
    """Check the teacher's playlist; return option id → board id."""
    by_id: dict[int, Item] = {}
    for item in items:
        if item.id in by_id:
            raise ValueError(
                f"Item id {item.id} is used twice ({_describe(by_id[item.id])} and "
                f"“{item.title}”); give each item its own id."
            )
        by_id[item.id] = item
    position = {item.id: i for i, item in enumerate(items)}

    problems: list[str] = []
    for item in items:
        unknown = sorted(i for i in item.prereq_items if i not in by_id)
        if unknown:
            problems.append(
                f"{_describe(item)} needs item id(s) {', '.join(map(str, unknown))}, which "
                "are not in this playlist; remove those prerequisites or add the items."
            )
        if item.id in item.prereq_items:
            problems.append(f"{_describe(item)} lists itself as a prerequisite; remove it.")
        missing = sorted(s for s in item.prereq_standards if s not in standards)
        if missing:
            problems.append(
                f"{_describe(item)} needs standard id(s) {', '.join(map(str, missing))}, "
                "which are not in this course; remove those prerequisites."
            )
    if problems:
        raise ValueError("\n".join(problems))

    board_of: dict[int, int] = {}
    for item in items:
        if item.kind is not ItemKind.CHOICE_BOARD:
            if item.alternatives:
                raise ValueError(
                    f"{_describe(item)} has options but is not a choice board; "
                    "make it a choice board or remove the options."
                )
            continue
        if not item.alternatives:
            raise ValueError(f"Choice board {_describe(item)} has no options; add some.")
        if len(set(item.alternatives)) != len(item.alternatives):
            raise ValueError(f"Choice board {_describe(item)} lists an option twice.")
        if not 1 <= item.min_choices <= len(item.alternatives):
            raise ValueError(
                f"Choice board {_describe(item)} asks for {item.min_choices} choice(s) "
                f"but has {len(item.alternatives)} option(s); set it between 1 and "
                f"{len(item.alternatives)}."
            )
        for alt in item.alternatives:
            option = by_id.get(alt)
            if option is None:
                raise ValueError(
                    f"Choice board {_describe(item)} has option id {alt}, which is not in "
                    "this playlist; add it after the board or remove it."
                )
            if option.kind is ItemKind.CHOICE_BOARD:
                raise ValueError(
                    f"Choice board {_describe(item)} has another choice board "
                    f"{_describe(option)} as an option; boards cannot be nested."
                )
            if alt in board_of:
                raise ValueError(
                    f"{_describe(option)} is an option on two choice boards; keep it on one."
                )
            if position[alt] < position[item.id]:
                raise ValueError(
                    f"{_describe(option)} comes before its choice board {_describe(item)}; "
                    "move it after the board."
                )
            board_of[alt] = item.id

    # Cycles: an item depends on its prerequisite items, and an option on its board.
    deps = {
        i.id: set(i.prereq_items) | ({board_of[i.id]} if i.id in board_of else set()) for i in items
    }
    cycle = _find_cycle(deps, [i.id for i in items])
    if cycle:
        names = " → ".join(f"“{by_id[i].title}”" for i in cycle)
        raise ValueError(
            f"These items wait on each other, so none can ever unlock: {names}. "
            "Remove one of these prerequisites."
        )

    bad = sorted({repr(v) for v in progress.values() if v not in PROGRESS_VALUES})
    if bad:
        raise ValueError(
            f"Unknown progress value(s) {', '.join(bad)}; use 'not_started', 'started' or 'done'."
        )
    return board_of


def _find_cycle(deps: Mapping[int, set[int]], order: Sequence[int]) -> list[int] | None:
    """Return one dependency cycle (first node repeated at the end), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(order, white)
    for root in order:
        if colour[root] != white:
            continue
        stack: list[tuple[int, list[int]]] = [(root, sorted(deps[root]))]
        trail = [root]
        colour[root] = grey
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = black
                stack.pop()
                trail.pop()
                continue
            nxt = todo.pop(0)
            if colour[nxt] == grey:
                return trail[trail.index(nxt) :] + [nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                trail.append(nxt)
                stack.append((nxt, sorted(deps[nxt])))
    return None


# ---------------------------------------------------------------- the path


@dataclass(frozen=True)
class PreparedPlaylist:
    """A checked playlist, ready to compute many students' paths: validation
    and lookups done once (a class of 500 costs one check, not 500)."""

    items: tuple[Item, ...]
    standards: Mapping[int, StandardInfo]
    board_of: Mapping[int, int]
    position: Mapping[int, int]
    titles: Mapping[int, str]
    prereq_order: Mapping[int, tuple[int, ...]]  # prerequisite items in playlist order

    def path(self, *, mastery: Mapping[int, float | None], progress: Mapping[int, str],
             mastery_points: float = 3.0, mastery_label: str = "Mastery") -> Path:
        bad = {v for v in progress.values() if v not in PROGRESS_VALUES}
        if bad:
            raise ValueError(
                f"Unknown progress value(s) {', '.join(sorted(map(repr, bad)))}; use "
                "'not_started', 'started' or 'done'."
            )
        return _compute(self, mastery, progress, mastery_points, mastery_label)


def prepare(items: Sequence[Item], standards: Mapping[int, StandardInfo]) -> PreparedPlaylist:
    """Check the playlist (raises ValueError saying what to fix) once."""
    board_of = _validate(items, {}, standards)
    position = {item.id: i for i, item in enumerate(items)}
    return PreparedPlaylist(
        items=tuple(items), standards=standards, board_of=board_of, position=position,
        titles={item.id: item.title for item in items},
        prereq_order={item.id: tuple(sorted(item.prereq_items, key=position.__getitem__))
                      for item in items})


def compute_path(
    items: Sequence[Item],
    *,
    mastery: Mapping[int, float | None],
    progress: Mapping[int, str],
    standards: Mapping[int, StandardInfo],
    mastery_points: float = 3.0,
    mastery_label: str = "Mastery",
) -> Path:
    """One student's path through ``items``; see the module docstring for the rules."""
    _validate(items, progress, standards)
    return prepare(items, standards).path(mastery=mastery, progress=progress,
                                          mastery_points=mastery_points,
                                          mastery_label=mastery_label)


def _compute(prepared: PreparedPlaylist, mastery: Mapping[int, float | None],
             progress: Mapping[int, str], mastery_points: float, mastery_label: str) -> Path:
    items, board_of, standards = prepared.items, prepared.board_of, prepared.standards
    position = prepared.position
    mastered = {s for s, v in mastery.items() if v is not None and v >= mastery_points}

    def finished(item: Item) -> State | None:
        """States 1–3 of the rules: these never depend on other items."""
        if item.kind is ItemKind.CHOICE_BOARD:
            is_done = sum(progress.get(a) == "done" for a in item.alternatives) \
                >= item.min_choices
        else:
            is_done = progress.get(item.id) == "done"
        if is_done and item.kind in _EVIDENCE_KINDS:
            return State.DONE
        if item.standards and item.standards <= mastered:
            return State.MASTERED_OPTIONAL
        return State.DONE if is_done else None

    finished_state = {item.id: finished(item) for item in items}
    titles = prepared.titles

    def own_reasons(item: Item) -> list[str]:
        reasons = []
        if item.prereq_standards and not item.prereq_standards <= mastered:
            unmet = sorted((standards[s] for s in item.prereq_standards if s not in mastered),
                           key=lambda s: (s.label, s.id))
            reasons = [f"Unlocks when you reach {mastery_label} on {s.label}" for s in unmet]
        if item.prereq_items:
            reasons += [
                f"Unlocks when you finish “{titles[other]}”"
                for other in prepared.prereq_order[item.id]
                if finished_state[other] is None
            ]
        return reasons

    entries: list[PathEntry] = []
    reasons_of: dict[int, tuple[str, ...]] = {}
    for item in items:  # boards come before their options, so their reasons are ready
        board_id = board_of.get(item.id)
        state = finished_state[item.id]
        reasons: tuple[str, ...] = ()
        if state is None:
            found = own_reasons(item)
            if board_id is not None and reasons_of[board_id]:
                found = list(reasons_of[board_id]) + [
                    r for r in found if r not in reasons_of[board_id]
                ]
            reasons = tuple(found)
            if reasons:
                state = State.LOCKED
            elif _started(item, progress):
                state = State.IN_PROGRESS
            else:
                state = State.AVAILABLE
        reasons_of[item.id] = reasons
        entries.append(PathEntry(item, state, reasons, False, board_id))

    top = [e for e in entries if e.board_id is None]
    must = [e for e in top if e.item.tag is Tag.MUST_DO]
    must_done = sum(e.state in _COMPLETE for e in must)
    must_total = len(must)
    complete = must_done == must_total
    next_id = None if complete else _pick_next(top)
    if next_id is not None:
        entries[position[next_id]].recommended = True
    percent = 100 if must_total == 0 else (100 * must_done) // must_total
    return Path(
        entries=tuple(entries),
        next_item_id=next_id,
        must_done=must_done,
        must_total=must_total,
        percent=percent,
        complete=complete,
    )


def _started(item: Item, progress: Mapping[int, str]) -> bool:
    if item.kind is ItemKind.CHOICE_BOARD:
        return any(progress.get(a) in ("started", "done") for a in item.alternatives)
    return progress.get(item.id) == "started"


def _pick_next(top: Sequence[PathEntry]) -> int | None:
    for tag in (Tag.MUST_DO, Tag.MAY_DO):
        for state in (State.IN_PROGRESS, State.AVAILABLE):
            for entry in top:
                if entry.item.tag is tag and entry.state is state:
                    return entry.item.id
    return None


# ---------------------------------------------------------------- pace


def _day(d: date) -> str:
    return f"{d.day} {d:%b}"


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _rate(remaining: int, days_left: int) -> str:
    """How much to do to finish ``remaining`` items in ``days_left`` days (> 0)."""
    per_day = remaining / days_left
    if per_day >= 1:
        return f"about {_items(int(per_day + 0.5))} a day"
    per_week = per_day * 7
    if per_week >= 1:
        return f"about {_items(int(per_week + 0.5))} a week"
    every = days_left // remaining
    return f"about 1 item every {every} days"


def pace(start: date, target: date | None, today: date, done: int, total: int) -> PaceStatus:
    """Where a student stands against a linear plan from ``start`` to ``target``.

    ``expected_done`` grows linearly from 0 on ``start`` to ``total`` on ``target`` (clamped
    to that range; ``done`` itself when there is no target). Within ``PACE_TOLERANCE`` (1
    item) of it either way is on pace; more than that is ahead or behind. Finishing wins
    over everything; a target date in the past with work left is overdue. The advice is the
    rate that finishes the remaining items by the target, rounded to the nearest whole item
    a day (or a week, or "1 item every N days" when slower than that).
    """
    if done < 0 or total < 0 or done > total:
        raise ValueError(f"done ({done}) must be between 0 and total ({total}).")
    if target is not None and target < start:
        raise ValueError(f"The target date {target} is before the start date {start}.")

    if target is None:
        expected = float(done)
    elif today >= target:
        expected = float(total)
    elif today <= start:
        expected = 0.0
    else:
        expected = total * (today - start).days / (target - start).days

    remaining = total - done
    if remaining == 0:
        message = f"All {_items(total)} done." if total else "There is nothing to do yet."
        return PaceStatus(PaceState.COMPLETE, expected, message)
    if target is None:
        return PaceStatus(
            PaceState.NO_TARGET,
            expected,
            f"{done} of {_items(total)} done. No target date is set.",
        )
    if today > target:
        return PaceStatus(
            PaceState.OVERDUE,
            expected,
            f"The target date, {_day(target)}, has passed with {_items(remaining)} left.",
        )
    days_left = (target - today).days
    advice = (
        f"finishing {_items(remaining)} today" if days_left == 0 else _rate(remaining, days_left)
    )
    gap = done - expected
    if gap > PACE_TOLERANCE:
        ahead = int(gap + 0.5)
        return PaceStatus(
            PaceState.AHEAD,
            expected,
            f"You are {_items(ahead)} ahead of pace for {_day(target)}.",
        )
    if gap < -PACE_TOLERANCE:
        behind = int(-gap + 0.5)
        return PaceStatus(
            PaceState.BEHIND,
            expected,
            f"You are {_items(behind)} behind: {advice} keeps you on pace for {_day(target)}",
        )
    return PaceStatus(
        PaceState.ON_PACE,
        expected,
        f"You are on pace for {_day(target)}: {advice} gets you there.",
    )
