"""How a student's mastery becomes an LMS score (LTI AGS), and the timestamps scores carry.

Pure functions and frozen dataclasses only: no Flask, no database, no HTTP, no I/O. The
placement settings page (its explanations and its preview of every student's score), the
code that writes the score outbox and the sender all call these, so the preview a teacher
sees before enabling passback is exactly what is sent.

A *placement* is a playlist placed in the LMS as a graded activity. Its teacher picks one
rule (:data:`RULES`) for how the playlist's standards become the LMS score:

* ``share``: the share of the playlist's standards at mastery, times ``score_maximum``.
  3 of 4 standards at mastery, out of 100, is 75.
* ``average``: the average level of the playlist's standards, a standard with no evidence
  counting as 0, scaled so the top of the mastery scale gives ``score_maximum``. Levels
  3, 4, 4 and no evidence on a 0-4 scale average 2.75, which is 68.75 out of 100.
* ``per_standard``: one LMS column per standard, each scored with that standard's level on
  the mastery scale (its maximum is the top of the scale). A standard with no evidence
  sends nothing until it has some.

Option ``power_incomplete``: while any power standard is below mastery or has no evidence,
the placement's own score (``share``/``average``) is sent as incomplete: no ``scoreGiven``
and ``gradingProgress`` ``Pending``. Moodle clears the grade it shows for anything that is
not ``FullyGraded``, and Canvas ignores ``scoreGiven`` for ``Pending``, so the LMS shows
no number rather than a number that hides a missing power standard. Per-standard columns
are not affected.

Every score carries a comment, in plain words, saying what it is made of (at most
:data:`COMMENT_LIMIT` characters; long lists end in "and N more"), an ``activityProgress``
from the student's must-do progress (:func:`activity_progress`), and ``gradingProgress``
``FullyGraded`` unless incomplete.

Conventions
-----------
* A standard's ``value`` is its rollup from :func:`lti_tool.grades.mastery.rollup`
  (``None`` = no evidence yet). It is at mastery when ``value >= mastery_points``, the
  same comparison as the gradebook, on the value rounded to 2 decimals (2.99 is not
  mastery at 3; 2.999, shown as 3, is).
* Values above the top of the scale (possible when a teacher shrinks the scale after
  evidence exists) count as the top of the scale, so no score exceeds its maximum.
* Scores are rounded to 2 decimals, halves away from zero (:func:`round2`, as Canvas and
  the gradebook do).
* Bad settings or inputs raise ValueError (TypeError for a value of the wrong kind) with a
  message that says what to fix.

Timestamps (AGS: "strictly increasing"; Moodle refuses a score whose timestamp, to the
second, is not later than the grade it has): :func:`next_timestamp` gives
``max(now, last + 1 s)`` in UTC truncated to milliseconds, :func:`format_timestamp` writes it
as ``2026-11-22T21:40:57.123+00:00`` and :func:`parse_timestamp` reads it back exactly. The
timestamp is fixed when the outbox row is written and never regenerated on retry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from numbers import Real

from lti_tool.grades.mastery import round2

__all__ = [
    "ACTIVITY_PROGRESS",
    "COMMENT_LIMIT",
    "FULLY_GRADED",
    "GRADING_PROGRESS",
    "NO_STANDARDS_COMMENT",
    "PENDING",
    "RULES",
    "RULE_LABELS",
    "Progress",
    "ScoreOut",
    "Standing",
    "activity_progress",
    "explain_power_incomplete",
    "explain_rule",
    "format_timestamp",
    "next_timestamp",
    "parse_timestamp",
    "same_score",
    "score_payload",
    "scores",
]


@dataclass(frozen=True)
class Standing:
    """A student's current mastery of one standard: its rollup ``value`` (None = no
    evidence yet); ``power`` marks a power standard of the playlist."""

    standard_id: int
    code: str
    value: float | None
    power: bool = False


@dataclass(frozen=True)
class Progress:
    """A student's progress through the playlist: must-do items ``done`` of ``total``,
    and whether they ``started`` anything at all (must-do or not)."""

    done: int
    total: int
    started: bool


@dataclass(frozen=True)
class ScoreOut:
    """One score for one LMS column. ``standard_id`` is None for the placement's own
    column and the standard's id for a per-standard column; ``score_given`` None means
    "no score" (incomplete, or nothing to grade yet)."""

    standard_id: int | None
    score_given: float | None
    score_maximum: float
    comment: str
    activity_progress: str
    grading_progress: str


RULES: tuple[str, ...] = ("share", "average", "per_standard")

RULE_LABELS: Mapping[str, str] = {
    "share": "Share of standards at mastery",
    "average": "Average mastery level",
    "per_standard": "One LMS column per standard",
}

COMMENT_LIMIT = 1000

FULLY_GRADED = "FullyGraded"
PENDING = "Pending"
# The AGS values; we send only FullyGraded and Pending, but accept any valid one.
GRADING_PROGRESS: tuple[str, ...] = (FULLY_GRADED, PENDING, "PendingManual", "Failed",
                                     "NotReady")
ACTIVITY_PROGRESS: tuple[str, ...] = ("Initialized", "Started", "InProgress", "Submitted",
                                      "Completed")

NO_STANDARDS_COMMENT = "This playlist targets no standards yet."

_ONE_SECOND = timedelta(seconds=1)
_ONE_MILLISECOND = timedelta(milliseconds=1)


# ---------------------------------------------------------------------------
# Validation and wording helpers
# ---------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    # bool is an int subclass; True as a score is a bug in the caller, not a 1.
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_positive(name: str, value: object, hint: str) -> float:
    if not _is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number above 0, got {value!r}; {hint}")
    return float(value)


def _check_rule(rule: object) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown passback rule {rule!r}; use one of: {', '.join(RULES)}")
    return str(rule)


def _check_label(mastery_label: object) -> str:
    if not isinstance(mastery_label, str) or not mastery_label.strip():
        raise ValueError(
            f"mastery_label must be the name of the mastery level, such as 'Mastery', "
            f"got {mastery_label!r}"
        )
    return mastery_label.strip()


def _check_standings(standings: object) -> list[Standing]:
    if isinstance(standings, (str, bytes)) or not isinstance(standings, Sequence):
        raise TypeError(f"standings must be a list of Standing, got {standings!r}")
    checked: list[Standing] = []
    seen: set[int] = set()
    for position, standing in enumerate(standings, start=1):
        if not isinstance(standing, Standing):
            raise TypeError(f"standing {position} must be a Standing, got {standing!r}")
        value = standing.value
        if value is not None:
            if not _is_number(value):
                raise TypeError(
                    f"standard {standing.code!r} has value {value!r}; a mastery value must "
                    "be a number, or None for no evidence"
                )
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"standard {standing.code!r} has value {value!r}; a mastery value must "
                    "be a finite number of 0 or more, or None for no evidence"
                )
        if standing.standard_id in seen:
            raise ValueError(
                f"standard {standing.standard_id} ({standing.code!r}) is listed twice; "
                "pass each of the playlist's standards once"
            )
        seen.add(standing.standard_id)
        checked.append(standing)
    return checked


def _check_progress(progress: object) -> Progress:
    if not isinstance(progress, Progress):
        raise TypeError(f"progress must be a Progress, got {progress!r}")
    for name in ("done", "total"):
        value = getattr(progress, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"progress.{name} must be a whole number of 0 or more, "
                             f"got {value!r}")
    if progress.done > progress.total:
        raise ValueError(
            f"progress.done ({progress.done}) is more than progress.total "
            f"({progress.total}); count only the must-do items that are done"
        )
    return progress


def _num(value: float) -> str:
    """A number for people: at most 2 decimals, no trailing zeros (3, 3.5, 68.75)."""
    text = f"{round2(value):.2f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _code(standing: Standing) -> str:
    code = standing.code.strip() if isinstance(standing.code, str) else ""
    return code or f"#{standing.standard_id}"


def _standards(count: int) -> str:
    return "standard" if count == 1 else "standards"


def _listed(words: Sequence[str], keep: int) -> str:
    """'A', 'A and B', 'A, B and C'; beyond ``keep`` words, 'A, B and 3 more'."""
    shown = list(words[:keep])
    hidden = len(words) - len(shown)
    if hidden:
        if not shown:
            return f"{hidden} {_standards(hidden)}"
        return f"{', '.join(shown)} and {hidden} more"
    if len(shown) <= 1:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _fit(render: Callable[[int], str], longest: int, limit: int = COMMENT_LIMIT) -> str:
    """The text ``render(keep)`` for the largest ``keep`` (words shown per list) that fits
    in ``limit`` characters, found by bisection. Each list keeps at least its first word
    (a clipped code says more than "1 standard"), so with absurdly long standard codes the
    text is clipped instead."""
    text = render(longest)
    if len(text) <= limit:
        return text
    low, high = 1, longest - 1  # render(high + 1) is known to be too long
    best: str | None = None
    while low <= high:
        middle = (low + high) // 2
        candidate = render(middle)
        if len(candidate) <= limit:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best if best is not None else _clip(render(min(1, longest)), limit)


def _mastered(standing: Standing, mastery_points: float) -> bool:
    # On the rounded value, as the gradebook does, so a level shown as 3 is at mastery 3.
    return standing.value is not None and round2(standing.value) >= mastery_points


def activity_progress(progress: Progress) -> str:
    """The AGS ``activityProgress`` for a student's playlist progress: ``Completed`` when
    every must-do item is done (and there is at least one), ``InProgress`` once they have
    started anything, otherwise ``Initialized``."""
    _check_progress(progress)
    if progress.total > 0 and progress.done == progress.total:
        return "Completed"
    if progress.started or progress.done > 0:
        return "InProgress"
    return "Initialized"


# ---------------------------------------------------------------------------
# Explanations for the teacher's settings page
# ---------------------------------------------------------------------------


def explain_rule(rule: str, score_maximum: float, mastery_label: str = "Mastery") -> str:
    """One plain sentence saying what the LMS score is under ``rule``."""
    chosen = _check_rule(rule)
    top = _check_positive("score_maximum", score_maximum,
                          "use the points the LMS column is out of, such as 100")
    label = _check_label(mastery_label)
    if chosen == "share":
        return (
            f"The LMS score is the share of this playlist's standards the student has at "
            f"{label} or above, out of {_num(top)}: for example, 3 of 4 standards at "
            f"{label} gives {_num(0.75 * top)}."
        )
    if chosen == "average":
        return (
            f"The LMS score is the student's average level across this playlist's "
            f"standards, a standard with no evidence yet counting as 0, scaled so that the "
            f"top of the mastery scale gives {_num(top)}."
        )
    return (
        "Each of this playlist's standards gets its own LMS column, scored with the "
        "student's level on the mastery scale; a standard with no evidence yet is sent "
        "once it has some."
    )


def explain_power_incomplete(mastery_label: str = "Mastery") -> str:
    """One plain sentence for the "incomplete while a power standard is below mastery"
    option."""
    label = _check_label(mastery_label)
    return (
        f"While any of this playlist's power standards is below {label} or has no evidence "
        f"yet, the student's LMS score is sent as incomplete (no number) instead; columns "
        f"for single standards are not affected."
    )


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------


def _share(checked: list[Standing], mastery_points: float, score_maximum: float
           ) -> tuple[float, Callable[[int], str], int]:
    mastered = [_code(s) for s in checked if _mastered(s, mastery_points)]
    not_yet = [
        f"{_code(s)} ({'no evidence' if s.value is None else _num(s.value)})"
        for s in checked if not _mastered(s, mastery_points)
    ]
    total = len(checked)
    score = min(round2(len(mastered) / total * score_maximum), score_maximum)

    def render(keep: int) -> str:
        text = f"Mastered {len(mastered)} of {total} {_standards(total)}"
        if mastered:
            text += f": {_listed(mastered, keep)}"
        text += "."
        if not_yet:
            text += f" Not yet: {_listed(not_yet, keep)}."
        return text

    return score, render, max(len(mastered), len(not_yet))


def _average(checked: list[Standing], scale_max: float, score_maximum: float
             ) -> tuple[float, Callable[[int], str], int]:
    levels = [min(s.value, scale_max) if s.value is not None else 0.0 for s in checked]
    mean = math.fsum(levels) / len(levels)
    score = min(round2(mean / scale_max * score_maximum), score_maximum)
    with_evidence = [f"{_code(s)} at {_num(level)}"
                     for s, level in zip(checked, levels, strict=True) if s.value is not None]
    missing = [_code(s) for s in checked if s.value is None]
    total = len(checked)

    def render(keep: int) -> str:
        text = (f"Average level {_num(mean)} of {_num(scale_max)} across {total} "
                f"{_standards(total)}")
        if with_evidence:
            text += f": {_listed(with_evidence, keep)}"
        if missing:
            one = len(missing) == 1
            text += (f" ({_listed(missing, keep)} {'has' if one else 'have'} no evidence "
                     f"yet and {'counts' if one else 'count'} as 0)")
        return text + "."

    return score, render, max(len(with_evidence), len(missing))


def _per_standard(checked: list[Standing], *, mastery_points: float, scale_max: float,
                  label: str, activity: str) -> list[ScoreOut]:
    out: list[ScoreOut] = []
    for s in checked:
        if s.value is None:
            continue  # nothing to send until there is evidence
        level = min(round2(min(s.value, scale_max)), scale_max)
        if not _mastered(s, mastery_points):
            where = f"not yet at {label} ({_num(mastery_points)})"
        elif level > mastery_points:
            where = f"above {label}"
        else:
            where = f"at {label}"
        comment = _clip(f"{_code(s)}: {_num(level)} of {_num(scale_max)}, {where}.",
                        COMMENT_LIMIT)
        out.append(ScoreOut(standard_id=s.standard_id, score_given=level,
                            score_maximum=scale_max, comment=comment,
                            activity_progress=activity, grading_progress=FULLY_GRADED))
    return out


def scores(
    rule: str,
    standings: Sequence[Standing],
    *,
    mastery_points: float,
    scale_max: float,
    score_maximum: float,
    power_incomplete: bool,
    progress: Progress,
    mastery_label: str = "Mastery",
) -> list[ScoreOut]:
    """The LMS score(s) for one student on one placement.

    ``standings`` are the playlist's standards in the order the comment should list them.
    ``share`` and ``average`` return one ScoreOut (``standard_id`` None); ``per_standard``
    returns one per standard that has evidence (possibly none). ``scale_max`` is the top
    of the mastery scale; ``score_maximum`` is what the placement's own column is out of.
    """
    chosen = _check_rule(rule)
    checked = _check_standings(standings)
    scale_top = _check_positive("scale_max", scale_max,
                                "pass the top of the proficiency scale, such as 4")
    top = _check_positive("score_maximum", score_maximum,
                          "use the points the LMS column is out of, such as 100")
    if not _is_number(mastery_points):
        raise TypeError(f"mastery_points must be a number, got {mastery_points!r}")
    if not math.isfinite(mastery_points) or not 0 <= mastery_points <= scale_top:
        raise ValueError(
            f"mastery_points ({mastery_points!r}) must lie on the scale 0..{scale_top!r}; "
            "pass the points of the mastery level and the top of the scale as scale_max"
        )
    label = _check_label(mastery_label)
    activity = activity_progress(progress)

    if chosen == "per_standard":
        return _per_standard(checked, mastery_points=mastery_points, scale_max=scale_top,
                             label=label, activity=activity)

    if not checked:
        return [ScoreOut(standard_id=None, score_given=None, score_maximum=top,
                         comment=NO_STANDARDS_COMMENT, activity_progress=activity,
                         grading_progress=PENDING)]

    if chosen == "share":
        score, render, longest = _share(checked, mastery_points, top)
    else:
        score, render, longest = _average(checked, scale_top, top)

    blocking = [_code(s) for s in checked
                if s.power and not _mastered(s, mastery_points)] if power_incomplete else []
    if blocking:
        one = len(blocking) == 1
        base = render

        def incomplete(keep: int) -> str:
            # The reason first, then what the score would be made of once complete.
            return (f"Incomplete: power {'standard' if one else 'standards'} "
                    f"{_listed(blocking, keep)} {'is' if one else 'are'} not yet at "
                    f"{label}. {base(keep)}")

        comment = _fit(incomplete, max(longest, len(blocking)))
        return [ScoreOut(standard_id=None, score_given=None, score_maximum=top,
                         comment=comment, activity_progress=activity,
                         grading_progress=PENDING)]

    return [ScoreOut(standard_id=None, score_given=score, score_maximum=top,
                     comment=_fit(render, longest), activity_progress=activity,
                     grading_progress=FULLY_GRADED)]


# ---------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------


def _utc(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, got the naive {value!r}; use "
            "lti_tool.timeutil.utcnow(), or timeutil.aware() for values read from SQLite"
        )
    return value.astimezone(timezone.utc)


def _floor_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _ceil_ms(value: datetime) -> datetime:
    floored = _floor_ms(value)
    return floored if floored == value else floored + _ONE_MILLISECOND


def next_timestamp(now: datetime, last: datetime | None) -> datetime:
    """The timestamp for the next score of one (line item, user): ``max(now, last + 1 s)``
    in UTC, truncated to whole milliseconds so that :func:`format_timestamp` writes it
    exactly. Always at least 1 s after ``last``, even when the clock went backwards
    (another worker's clock, or a clock correction), so Moodle's second-precision check
    never sees two scores in the same second."""
    current = _floor_ms(_utc("now", now))
    if last is None:
        return current
    # Rounded up, not down: a `last` with microseconds must still be >= 1 s behind.
    return max(current, _ceil_ms(_utc("last", last) + _ONE_SECOND))


def format_timestamp(ts: datetime) -> str:
    """``ts`` as AGS wants it: ISO 8601 in UTC with milliseconds and an explicit offset,
    e.g. ``2026-11-22T21:40:57.123+00:00`` (microseconds are truncated)."""
    t = _floor_ms(_utc("ts", ts))
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
            f"{t.second:02d}.{t.microsecond // 1000:03d}+00:00")


_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))"
)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with a time zone, as an aware UTC datetime; the inverse of
    :func:`format_timestamp` (also accepts ``Z``, other offsets and 1-9 fraction digits,
    kept to the microsecond)."""
    if not isinstance(text, str):
        raise TypeError(f"timestamp must be a string, got {text!r}")
    match = _TIMESTAMP.fullmatch(text.strip())
    if not match:
        raise ValueError(
            f"timestamp {text!r} is not ISO 8601 with a time zone; expected something like "
            "2026-11-22T21:40:57.123+00:00"
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = (
        match.groups())
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
        zone = timezone(offset)
        value = datetime(int(year), int(month), int(day), int(hour), int(minute),
                         int(second), micro, tzinfo=zone)
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"timestamp {text!r} is not a valid date and time: {error}") from None


# ---------------------------------------------------------------------------
# AGS payloads
# ---------------------------------------------------------------------------


def score_payload(out: ScoreOut, *, user_id: str, timestamp: str) -> dict:
    """The AGS score JSON for ``out``, for the LMS user ``user_id`` (the LTI ``sub``).

    ``timestamp`` must be exactly as :func:`format_timestamp` writes it (fixed when the
    outbox row is written). ``scoreGiven`` and ``scoreMaximum`` are present together, or,
    when there is no score, both left out (AGS requires ``scoreMaximum`` with
    ``scoreGiven``).
    """
    if not isinstance(out, ScoreOut):
        raise TypeError(f"out must be a ScoreOut, got {out!r}")
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValueError(f"user_id must be the student's LTI user id (sub), got {user_id!r}")
    if not isinstance(timestamp, str) or format_timestamp(parse_timestamp(timestamp)) \
            != timestamp:
        raise ValueError(
            f"timestamp {timestamp!r} must be made by format_timestamp (UTC, milliseconds, "
            "+00:00), e.g. 2026-11-22T21:40:57.123+00:00"
        )
    if out.activity_progress not in ACTIVITY_PROGRESS:
        raise ValueError(f"activity_progress {out.activity_progress!r} is not an AGS value; "
                         f"use one of: {', '.join(ACTIVITY_PROGRESS)}")
    if out.grading_progress not in GRADING_PROGRESS:
        raise ValueError(f"grading_progress {out.grading_progress!r} is not an AGS value; "
                         f"use one of: {', '.join(GRADING_PROGRESS)}")
    if not isinstance(out.comment, str):
        raise TypeError(f"comment must be a string, got {out.comment!r}")
    payload: dict = {"userId": user_id, "timestamp": timestamp}
    if out.score_given is not None:
        if not _is_number(out.score_given) or not math.isfinite(out.score_given) \
                or out.score_given < 0:
            raise ValueError(f"score_given must be a finite number of 0 or more (AGS), "
                             f"got {out.score_given!r}")
        payload["scoreGiven"] = float(out.score_given)
        payload["scoreMaximum"] = _check_positive(
            "score_maximum", out.score_maximum,
            "use the points the LMS column is out of, such as 100")
    payload["comment"] = out.comment
    payload["activityProgress"] = out.activity_progress
    payload["gradingProgress"] = out.grading_progress
    return payload


def _visible(payload: Mapping) -> dict:
    shown = {key: value for key, value in payload.items()
             if key not in ("userId", "timestamp") and value is not None}
    if "scoreGiven" not in shown:
        shown.pop("scoreMaximum", None)  # a maximum without a score shows nothing
    return shown


def same_score(a: dict | None, b: dict) -> bool:
    """Whether the payloads ``a`` (the last one written, or None) and ``b`` would show
    the same thing in the LMS: equal apart from ``userId`` and ``timestamp``. Used to skip
    writing an outbox row when nothing changed."""
    if a is None:
        return False
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        raise TypeError("same_score compares two score payloads (dicts)")
    return _visible(a) == _visible(b)
