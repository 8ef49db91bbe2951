"""Mastery calculation methods: how a list of scores on one standard becomes one number.

Pure functions only: no Flask, no database, no I/O. The gradebook, the student view and
grade passback all call :func:`rollup`, so a value shown anywhere can be recomputed from
the evidence alone (evidence is append-only; rollups are derived).

Conventions every function here shares
--------------------------------------
* ``scores`` are oldest first. The caller orders evidence by its assessment time and
  breaks equal timestamps deterministically (e.g. by evidence id); Canvas leaves such ties
  to an unstable sort, so "latest" can change between page loads there, and we will not.
* A result of ``None`` means "no mastery value yet". That is every method with no scores,
  and ``n_mastery`` until enough scores reach mastery. Callers must show those two cases
  differently ("no evidence" versus "evidence, not yet mastered"); Canvas shows both as
  "unassessed", which is a known complaint.
* Results are rounded to 2 decimals, half away from zero, as Canvas does (see
  :func:`round2` for why not Python's ``round``).
* Mastery is reached when the rounded result is ``>= mastery_points`` (Canvas compares
  the stored, rounded rollup with the rating's points; 2.99 is not mastery at 3).

Valid parameter ranges (checked by :func:`validate_settings`)
-------------------------------------------------------------
* ``weight``: ``0 < weight <= 1`` for ``weighted_average``; ``0.5 <= weight <= 1`` for
  ``decaying_average``. Canvas stores these as whole percentages (1..99 and 50..99); we
  take the fraction (0.65, not 65) and also allow 1.0, where both formulas become
  "latest". Below 0.5 the exponential form would let old scores outweigh the newest one,
  which is why Canvas forbids it for its true decaying average.
* ``n`` (``n_mastery``): a whole number from 1 to 10, Canvas's current range.
* ``scale_min < scale_max``, both finite and ``>= 0``; ``scale_min <= mastery_points <=
  scale_max``. Defaults are Canvas's default scale: 0 (No Evidence) to 4 (Exceeds
  Mastery), mastery at 3.
* Every score must be a finite number ``>= 0``. Scores outside the scale are accepted
  (a teacher may shrink the scale after evidence exists, and old evidence must still
  roll up); only ``power_law`` clamps, because it is the only method that extrapolates.

All parameters are validated on every call, even ones the chosen method ignores, so a bad
course setting fails loudly at once instead of when a teacher later switches methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from numbers import Real

__all__ = [
    "DEFAULT_MASTERY_POINTS",
    "DEFAULT_N",
    "DEFAULT_SCALE_MAX",
    "DEFAULT_SCALE_MIN",
    "DEFAULT_WEIGHT",
    "DECAYING_WEIGHT_MIN",
    "METHODS",
    "N_MAX",
    "N_MIN",
    "ORDER_SENSITIVE_METHODS",
    "POWER_LAW_ZERO_SHIFT",
    "Method",
    "explain",
    "explain_with_numbers",
    "rollup",
    "round2",
    "to_reach_mastery",
    "validate_settings",
]


class Method(str, Enum):
    """The calculation methods. A ``str`` subclass so settings stored as text compare equal."""

    DECAYING_AVERAGE = "decaying_average"
    WEIGHTED_AVERAGE = "weighted_average"
    N_MASTERY = "n_mastery"
    LATEST = "latest"
    HIGHEST = "highest"
    AVERAGE = "average"
    MODE = "mode"
    POWER_LAW = "power_law"


METHODS: tuple[str, ...] = tuple(m.value for m in Method)

# Methods whose result can change when the same scores arrive in a different order.
# mode is here because its ties go to the most recent score.
ORDER_SENSITIVE_METHODS: frozenset[Method] = frozenset(
    {Method.DECAYING_AVERAGE, Method.WEIGHTED_AVERAGE, Method.LATEST, Method.MODE,
     Method.POWER_LAW}
)

# Methods whose result never goes down when any single score goes up. to_reach_mastery
# relies on this to say "each 3 or higher" about several future scores.
_MONOTONE_METHODS: frozenset[Method] = frozenset(
    {Method.DECAYING_AVERAGE, Method.WEIGHTED_AVERAGE, Method.N_MASTERY, Method.LATEST,
     Method.HIGHEST, Method.AVERAGE}
)

DEFAULT_MASTERY_POINTS = 3.0
DEFAULT_WEIGHT = 0.65  # Canvas's default calculation_int of 65 for both averaging methods
DEFAULT_N = 3
DEFAULT_SCALE_MIN = 0.0
DEFAULT_SCALE_MAX = 4.0
DECAYING_WEIGHT_MIN = 0.5
N_MIN = 1
N_MAX = 10

# A zero score has no logarithm; see _power_law_fit for why we shift rather than drop.
POWER_LAW_ZERO_SHIFT = 1.0

# Tolerance (in hundredths) for float noise when rounding. Binary floats cannot hold most
# decimals, so 0.35 * 1.5 + 0.65 * 4 may come out a hair under 3.125 although the decimal
# arithmetic a teacher does by hand gives exactly 3.125. Realistic scores are small, so the
# real error is ~1e-13 of a hundredth; 1e-9 is far above that and far below any genuine
# difference between two scores.
_ROUNDING_TOLERANCE = 1e-9

# Largest safe argument for math.exp (overflow starts near 709.78).
_LN_OF_HUGE = 709.0


# ---------------------------------------------------------------------------
# Rounding, validation, formatting helpers
# ---------------------------------------------------------------------------


def round2(value: float) -> float:
    """Round to 2 decimals, halves away from zero, as Canvas does.

    Canvas rounds every rollup with Ruby's ``Float#round(2)``, which sends halves away
    from zero, and a teacher checking by hand does the same. Python's ``round`` differs in
    two ways: it rounds halves to even (``round(0.125, 2) == 0.12``) and it rounds the
    binary value, which for "2.675" is slightly below the half (``round(2.675, 2) ==
    2.67``). Here both give the hand result: 0.13 and 2.68.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot round {value!r}: results must be finite numbers")
    sign = -1.0 if value < 0 else 1.0
    hundredths = abs(value) * 100.0
    whole = math.floor(hundredths)
    # hundredths - whole adds no rounding error of its own (both are close doubles).
    if hundredths - whole >= 0.5 - _ROUNDING_TOLERANCE:
        whole += 1
    return sign * whole / 100.0


def _is_number(value: object) -> bool:
    # bool is an int subclass; True as a score or n is a bug in the caller, not a 1.
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_method(method: str | Method) -> Method:
    try:
        return Method(method)
    except ValueError:
        raise ValueError(
            f"unknown calculation method {method!r}; use one of: {', '.join(METHODS)}"
        ) from None


def validate_settings(
    method: str | Method,
    *,
    mastery_points: float = DEFAULT_MASTERY_POINTS,
    weight: float = DEFAULT_WEIGHT,
    n: int = DEFAULT_N,
    scale_min: float = DEFAULT_SCALE_MIN,
    scale_max: float = DEFAULT_SCALE_MAX,
) -> Method:
    """Check a course's or standard's calculation settings; return the method as an enum.

    Raises ValueError (TypeError for a value of the wrong kind) with a message that says
    what to fix. Public so a settings form can reject bad input before it is saved.
    """
    chosen = _check_method(method)
    for name, value in (("mastery_points", mastery_points), ("weight", weight),
                        ("scale_min", scale_min), ("scale_max", scale_max)):
        if not _is_number(value):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be a whole number such as 3, got {n!r}")

    if scale_min < 0:
        raise ValueError(f"scale_min must be 0 or more, got {scale_min!r}")
    if scale_min >= scale_max:
        raise ValueError(
            f"scale_min ({scale_min!r}) must be below scale_max ({scale_max!r}); "
            "pass the lowest and highest points of the proficiency scale"
        )
    if not scale_min <= mastery_points <= scale_max:
        raise ValueError(
            f"mastery_points ({mastery_points!r}) must lie on the scale "
            f"{scale_min!r}..{scale_max!r}; if the scale is not 0-4, pass its ends as "
            "scale_min and scale_max"
        )
    if 1 < weight <= 100 and float(weight).is_integer():
        # The commonest mistake: Canvas's calculation_int (65) instead of the fraction.
        raise ValueError(
            f"weight must be a fraction between 0 and 1, got {weight!r}; "
            f"for {weight:g}% pass {weight / 100:g}"
        )
    if not 0 < weight <= 1:
        raise ValueError(f"weight must be more than 0 and at most 1, got {weight!r}")
    if chosen is Method.DECAYING_AVERAGE and weight < DECAYING_WEIGHT_MIN:
        raise ValueError(
            f"decaying_average needs weight between {DECAYING_WEIGHT_MIN} and 1 so the "
            f"newest score counts at least half, got {weight!r}; raise the weight or use "
            "weighted_average"
        )
    if not N_MIN <= n <= N_MAX:
        raise ValueError(
            f"n (how many scores must reach mastery) must be between {N_MIN} and {N_MAX}, "
            f"got {n!r}"
        )
    return chosen


def _check_scores(scores: Sequence[float]) -> list[float]:
    if isinstance(scores, (str, bytes)) or not isinstance(scores, Sequence):
        raise TypeError(f"scores must be a list of numbers, oldest first, got {scores!r}")
    checked: list[float] = []
    for position, score in enumerate(scores, start=1):
        if not _is_number(score):
            raise TypeError(f"score {position} must be a number, got {score!r}")
        if not math.isfinite(score) or score < 0:
            raise ValueError(
                f"score {position} must be a finite number of 0 or more, got {score!r}"
            )
        checked.append(float(score))
    return checked


def _num(value: float) -> str:
    """A score for people: at most 2 decimals, no trailing zeros (3, 3.5, 3.48)."""
    text = f"{round2(value):.2f}".rstrip("0").rstrip(".")
    return text if text else "0"


def _pct(fraction: float) -> str:
    return f"{_num(fraction * 100)}%"


def _listing(values: Sequence[float]) -> str:
    return ", ".join(_num(v) for v in values)


def _joined(values: Sequence[float], conjunction: str = "or") -> str:
    words = [_num(v) for v in values]
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _shown_rounded(*values: float) -> bool:
    return any(abs(round2(v) - v) > 1e-9 for v in values)


# ---------------------------------------------------------------------------
# The methods. Each takes validated, non-empty scores and returns an unrounded value.
# ---------------------------------------------------------------------------


def _decaying_steps(scores: Sequence[float], weight: float) -> list[float]:
    # Exponential moving average seeded with the first score (Canvas's
    # standard_decaying_average): each new score gets `weight`, the running value the rest.
    running = scores[0]
    steps = [running]
    for score in scores[1:]:
        running = (1 - weight) * running + weight * score
        steps.append(running)
    return steps


def _weighted_average(scores: Sequence[float], weight: float) -> float:
    # Canvas's legacy "decaying average": the newest score against the plain mean of the
    # rest. With one score there is no "rest", so the score stands alone.
    if len(scores) == 1:
        return scores[0]
    earlier = scores[:-1]
    return weight * scores[-1] + (1 - weight) * (math.fsum(earlier) / len(earlier))


def _n_mastery(scores: Sequence[float], mastery_points: float, n: int) -> float | None:
    # Canvas: mean of *all* scores at or above mastery (not just n of them), and no
    # value until there are n such scores. The comparison is on raw scores: 2.99 < 3.
    kept = [s for s in scores if s >= mastery_points]
    if len(kept) < n:
        return None
    return math.fsum(kept) / len(kept)


def _mode(scores: Sequence[float]) -> float:
    # Most frequent score; among equally frequent ones the most recently earned wins
    # (Educate's rule), so a student who has just shown a level again is credited with it.
    counts: dict[float, int] = {}
    last_seen: dict[float, int] = {}
    for index, score in enumerate(scores):
        counts[score] = counts.get(score, 0) + 1
        last_seen[score] = index
    return max(counts, key=lambda s: (counts[s], last_seen[s]))


def _power_law_fit(scores: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares fit of ln(s + shift) = ln a + b ln x for x = 1..len(scores).

    Returns (ln a, b, shift). ``shift`` is 0 unless a score is 0.

    Zeros: ln 0 does not exist, and nudging a 0 up to a tiny positive number is worse than
    useless: an early near-zero score has negative leverage on the value at the newest
    point, so [0.001, 3, 3, 3] would fit to about 13 on a 0-4 scale. Dropping
    zeros would hide real evidence (0 is "No Evidence" on the default scale, and every
    other method counts it). So when any score is 0 we fit the curve to score + 1 and
    subtract 1 from its value: all-zero scores give 0, two scores still give the latest,
    and a rise from 0 reads as growth ([0, 3, 3, 3] fits to about 4.16, clamped to 4, much
    as [1, 3, 3, 3] fits to 3.67). Sequences without a 0 use the published formula
    unchanged, so the vendors' worked examples still hold; the price is a jump between a
    score of 0 and a score just above it, which real scales (whole or half points) avoid.
    """
    shift = POWER_LAW_ZERO_SHIFT if min(scores) == 0 else 0.0
    count = len(scores)
    xs = [math.log(x) for x in range(1, count + 1)]
    ys = [math.log(s + shift) for s in scores]
    mean_x = math.fsum(xs) / count
    mean_y = math.fsum(ys) / count
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    return mean_y - slope * mean_x, slope, shift


def _power_law_value(ln_a: float, slope: float, shift: float, x: int) -> float:
    """The fitted curve at assessment x; +inf instead of OverflowError on wild fits."""
    ln_value = ln_a + slope * math.log(x)
    # Mixing tiny and large scores can give absurd slopes; exp() above ~709.78 overflows.
    # The caller clamps to the scale anyway, so "infinitely high" is the right answer.
    if ln_value > _LN_OF_HUGE:
        return math.inf
    return math.exp(ln_value) - shift


def _power_law_raw(scores: Sequence[float]) -> float:
    if len(scores) == 1:
        # One point fixes no slope; every vendor reports the score itself.
        return scores[0]
    ln_a, slope, shift = _power_law_fit(scores)
    return _power_law_value(ln_a, slope, shift, len(scores))


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _raw_rollup(scores: Sequence[float], method: Method, mastery_points: float,
                weight: float, n: int, scale_min: float, scale_max: float) -> float | None:
    if not scores:
        return None
    if method is Method.DECAYING_AVERAGE:
        return _decaying_steps(scores, weight)[-1]
    if method is Method.WEIGHTED_AVERAGE:
        return _weighted_average(scores, weight)
    if method is Method.N_MASTERY:
        return _n_mastery(scores, mastery_points, n)
    if method is Method.LATEST:
        return scores[-1]
    if method is Method.HIGHEST:
        return max(scores)
    if method is Method.AVERAGE:
        return math.fsum(scores) / len(scores)
    if method is Method.MODE:
        return _mode(scores)
    # Power law is the only method that extrapolates past the evidence, so it is the only
    # one that needs the scale: a·n^b can exceed every score and the scale itself.
    return _clamp(_power_law_raw(scores), scale_min, scale_max)


def rollup(
    scores: Sequence[float],
    method: str | Method,
    *,
    mastery_points: float = DEFAULT_MASTERY_POINTS,
    weight: float = DEFAULT_WEIGHT,
    n: int = DEFAULT_N,
    scale_min: float = DEFAULT_SCALE_MIN,
    scale_max: float = DEFAULT_SCALE_MAX,
) -> float | None:
    """One standard's mastery value from its scores (oldest first), rounded to 2 decimals.

    Returns None when there is no value yet: no scores, or ``n_mastery`` with fewer than
    ``n`` scores at or above ``mastery_points``.

    ``weight`` is used by ``decaying_average`` and ``weighted_average``; ``n`` and
    ``mastery_points`` by ``n_mastery``. ``scale_min`` and ``scale_max`` are the ends of
    the course's proficiency scale. Only ``power_law`` uses them, because it reports a
    fitted trend rather than an observed score and can land past every score and off the
    scale ([1, 2, 3, 5] fits to about 4.55 on a 0-4 scale); this function cannot see the
    course's scale, so the caller passes its ends and the result is clamped into them.
    Raises ValueError/TypeError for bad settings or scores (see :func:`validate_settings`).
    """
    chosen = validate_settings(method, mastery_points=mastery_points, weight=weight, n=n,
                               scale_min=scale_min, scale_max=scale_max)
    checked = _check_scores(scores)
    raw = _raw_rollup(checked, chosen, mastery_points, weight, n, scale_min, scale_max)
    return None if raw is None else round2(raw)


# ---------------------------------------------------------------------------
# Plain-language explanations
# ---------------------------------------------------------------------------


def explain(
    method: str | Method,
    *,
    mastery_points: float = DEFAULT_MASTERY_POINTS,
    weight: float = DEFAULT_WEIGHT,
    n: int = DEFAULT_N,
    scale_min: float = DEFAULT_SCALE_MIN,
    scale_max: float = DEFAULT_SCALE_MAX,
) -> str:
    """One paragraph, in plain words, on how the method turns scores into a result.

    Shown to teachers and students alike, with the course's actual settings in it.
    """
    chosen = validate_settings(method, mastery_points=mastery_points, weight=weight, n=n,
                               scale_min=scale_min, scale_max=scale_max)
    m, w, rest = _num(mastery_points), _pct(weight), _pct(1 - weight)
    low, high = _num(scale_min), _num(scale_max)
    mastery = f"A result of {m} or higher means mastery."
    texts: dict[Method, str] = {
        Method.DECAYING_AVERAGE: (
            f"Your scores are combined one at a time, oldest first. Each new score counts "
            f"{w} and the result so far counts {rest}, so older scores fade a little more "
            "with every new one. Your most recent score always counts at least as much as "
            "any earlier one, but one unusual day does not wipe out everything before it. "
            "With one score, that score is the result."
        ),
        Method.WEIGHTED_AVERAGE: (
            f"Your most recent score counts {w}. The average of all your earlier scores "
            f"counts the other {rest}, and each earlier score counts the same however old "
            "it is. With one score, that score is the result."
        ),
        Method.N_MASTERY: (
            f"You need at least {n} {'score' if n == 1 else 'scores'} of {m} or higher "
            "before a result is shown. Until then the standard shows as not yet "
            "calculated, even if you have scores. After that, your result is the average "
            f"of all your scores of {m} or higher; lower scores are left out."
        ),
        Method.LATEST: (
            "Your result is your most recent score. Earlier scores stay in your history "
            "but no longer change the result, so a new score always replaces the last one."
        ),
        Method.HIGHEST: (
            "Your result is the highest score you have earned so far. A lower score later "
            "never brings it down."
        ),
        Method.AVERAGE: (
            "Your result is the plain average of all your scores: add them up and divide "
            "by how many there are. Every score counts the same, however old it is, so "
            "early scores from when you were still learning count as much as recent ones."
        ),
        Method.MODE: (
            "Your result is the score you earned most often. If two or more scores are "
            "tied for most often, the one you earned most recently wins."
        ),
        Method.POWER_LAW: (
            "Your result follows the trend of your scores over time. We fit the smooth "
            "learning curve that best matches your scores in the order you earned them "
            "and read where it is at your most recent score. Steady improvement can give "
            "a result above every score you have earned; a downward trend pulls it lower. "
            f"It never goes below {low} or above {high}, the ends of the scale. With one "
            "score, that score is the result; it works best with 3 or more."
        ),
    }
    if weight == 1 and chosen in (Method.DECAYING_AVERAGE, Method.WEIGHTED_AVERAGE):
        # At 100% nothing else counts; the general wording would promise otherwise.
        texts[chosen] = (
            "Your most recent score counts 100%, so your result is simply your most recent "
            "score; earlier scores stay in your history but no longer change it."
        )
    return f"{texts[chosen]} {mastery}"


def _elide(steps: list[str], keep_head: int = 2, keep_tail: int = 3) -> list[str]:
    # A student with 30 scores does not need 30 lines of arithmetic to trust the result.
    if len(steps) <= keep_head + keep_tail + 1:
        return steps
    hidden = len(steps) - keep_head - keep_tail
    return [*steps[:keep_head], f"… ({hidden} more steps) …", *steps[-keep_tail:]]


def explain_with_numbers(
    scores: Sequence[float],
    method: str | Method,
    *,
    mastery_points: float = DEFAULT_MASTERY_POINTS,
    weight: float = DEFAULT_WEIGHT,
    n: int = DEFAULT_N,
    scale_min: float = DEFAULT_SCALE_MIN,
    scale_max: float = DEFAULT_SCALE_MAX,
) -> str:
    """How this student's own value was calculated, with their numbers (student view).

    The final number always equals :func:`rollup` for the same arguments.
    """
    chosen = validate_settings(method, mastery_points=mastery_points, weight=weight, n=n,
                               scale_min=scale_min, scale_max=scale_max)
    checked = _check_scores(scores)
    if not checked:
        return "You have no scores on this standard yet, so there is no result yet."
    result = rollup(checked, chosen, mastery_points=mastery_points, weight=weight, n=n,
                    scale_min=scale_min, scale_max=scale_max)
    m = _num(mastery_points)
    intro = f"Your scores, oldest first: {_listing(checked)}."
    rounding_note = " (Steps are shown rounded to 2 decimals; the calculation keeps every decimal.)"

    if chosen is Method.N_MASTERY:
        kept = [s for s in checked if s >= mastery_points]
        if result is None:
            body = (
                f"You have {len(kept)} {'score' if len(kept) == 1 else 'scores'} of {m} or "
                f"higher{' (' + _listing(kept) + ')' if kept else ''}; this method needs "
                f"{n} before it shows a result, so there is no result yet."
            )
            return f"{intro} {body}"
        total = math.fsum(kept)
        body = (
            f"Scores of {m} or higher: {_listing(kept)} ({len(kept)} of them; {n} needed). "
            f"Their average: ({' + '.join(_num(s) for s in kept)}) ÷ {len(kept)} = "
            f"{_num(result)}."
        )
        return f"{intro} {body}" + (rounding_note if _shown_rounded(*kept, total) else "")

    assert result is not None  # only n_mastery returns None for non-empty scores
    r = _num(result)
    w, rest = _pct(weight), _pct(1 - weight)

    if chosen is Method.DECAYING_AVERAGE:
        values = _decaying_steps(checked, weight)
        if len(checked) == 1:
            return f"{intro} With one score, the decaying average is that score: {r}."
        steps = [f"start at {_num(values[0])}"]
        for previous, score, current in zip(values, checked[1:], values[1:], strict=False):
            steps.append(f"{rest} × {_num(previous)} + {w} × {_num(score)} = {_num(current)}")
        body = (
            f"Decaying average, each new score counting {w}: {'; '.join(_elide(steps))}. "
            f"Result: {r}."
        )
        shown = (*checked, *values[:-1])
        return f"{intro} {body}" + (rounding_note if _shown_rounded(*shown) else "")

    if chosen is Method.WEIGHTED_AVERAGE:
        if len(checked) == 1:
            return f"{intro} With one score, the weighted average is that score: {r}."
        earlier = checked[:-1]
        mean = math.fsum(earlier) / len(earlier)
        body = (
            f"Weighted average: your most recent score, {_num(checked[-1])}, counts {w}; "
            f"the average of your earlier scores ({_listing(earlier)}) is {_num(mean)} and "
            f"counts {rest}. {w} × {_num(checked[-1])} + {rest} × {_num(mean)} = {r}."
        )
        return f"{intro} {body}" + (rounding_note if _shown_rounded(mean) else "")

    if chosen is Method.LATEST:
        return f"{intro} Your most recent score is {_num(checked[-1])}, so your result is {r}."

    if chosen is Method.HIGHEST:
        return f"{intro} Your highest score is {_num(max(checked))}, so your result is {r}."

    if chosen is Method.AVERAGE:
        body = (
            f"Average: ({' + '.join(_num(s) for s in checked)}) ÷ {len(checked)} = {r}."
        )
        return f"{intro} {body}"

    if chosen is Method.MODE:
        counts: dict[float, int] = {}
        for score in checked:
            counts[score] = counts.get(score, 0) + 1
        top = max(counts.values())
        tied = [s for s in counts if counts[s] == top]
        times = "once" if top == 1 else "twice" if top == 2 else f"{top} times"
        if len(tied) == 1:
            body = f"Your most frequent score is {r}, earned {times}, so your result is {r}."
        else:
            body = (
                f"{_joined(sorted(tied), 'and')} were each earned {times}; "
                f"{r} is the one you earned most recently, so your result is {r}."
            )
        return f"{intro} {body}"

    # power_law
    if len(checked) == 1:
        raw = checked[0]
        body = "With one score, the trend is just that score"
    else:
        ln_a, slope, shift = _power_law_fit(checked)
        fitted = [_power_law_value(ln_a, slope, shift, x) for x in range(1, len(checked) + 1)]
        raw = fitted[-1]
        earlier = _short_listing([_curve_point(v, scale_max) for v in fitted[:-1]])
        body = (
            f"The learning curve that best fits your {len(checked)} scores, in the order you "
            f"earned them, is at {earlier} for your earlier scores and at "
            f"{_curve_point(raw, scale_max)} for your most recent one"
        )
        if shift:
            body += (
                f" (because one of your scores is 0, {_num(shift)} was added to every score "
                "before fitting the curve and taken away again after)"
            )
    if raw > scale_max:
        body += f". That is above the top of the scale, {_num(scale_max)}"
        body += f", so your result is {r}."
    elif raw < scale_min:
        body += f". That is below the bottom of the scale, {_num(scale_min)}"
        body += f", so your result is {r}."
    else:
        body += f", so your result is {r}."
    return f"{intro} {body}"


def _curve_point(value: float, scale_max: float) -> str:
    # A wild fit can put the curve astronomically high; a 300-digit number helps nobody.
    if not math.isfinite(value) or value > 100 * max(scale_max, 1.0):
        return "far above the scale"
    return _num(value)


def _short_listing(words: list[str], keep: int = 2) -> str:
    if len(words) > 2 * keep + 1:
        words = [*words[:keep], "…", *words[-keep:]]
    return ", ".join(words)


# ---------------------------------------------------------------------------
# What it would take to reach mastery
# ---------------------------------------------------------------------------


def _candidate_scores(scale_min: float, scale_max: float, step: float) -> list[float]:
    # Scores a student could plausibly get next: whole points (by default) up the scale,
    # always ending at the top even when the steps do not land on it.
    candidates: list[float] = []
    k = 0
    while True:
        value = round(scale_min + k * step, 9)  # round() only strips float drift like .3000…4
        if value > scale_max + 1e-9:
            break
        candidates.append(min(value, scale_max))
        k += 1
    if candidates[-1] < scale_max:
        candidates.append(scale_max)
    return candidates


def to_reach_mastery(
    scores: Sequence[float],
    method: str | Method,
    *,
    mastery_points: float = DEFAULT_MASTERY_POINTS,
    weight: float = DEFAULT_WEIGHT,
    n: int = DEFAULT_N,
    scale_min: float = DEFAULT_SCALE_MIN,
    scale_max: float = DEFAULT_SCALE_MAX,
    step: float = 1.0,
    max_extra: int = 5,
) -> str | None:
    """What the student would need next to reach mastery, or None if already there.

    Found by simulation, not algebra, so it is right for every method and setting: try
    each possible next score (``scale_min``, ``scale_min + step``, … up to ``scale_max``)
    and report the smallest that reaches mastery. If no single score is enough, try 2, 3,
    … up to ``max_extra`` further scores (at least ``n`` for ``n_mastery``, so its answer
    is always definite) and report the smallest score that, repeated, gets there.
    "or higher" is said only where it holds for every higher score: for ``mode`` a
    higher score can break a tie the wrong way, so there the message names the exact
    scores that work instead.
    """
    chosen = validate_settings(method, mastery_points=mastery_points, weight=weight, n=n,
                               scale_min=scale_min, scale_max=scale_max)
    checked = _check_scores(scores)
    if not _is_number(step) or not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number such as 1 or 0.5, got {step!r}")
    if not isinstance(max_extra, int) or isinstance(max_extra, bool) or max_extra < 1:
        raise ValueError(f"max_extra must be a whole number of 1 or more, got {max_extra!r}")

    def value_after(extra: list[float]) -> float | None:
        return rollup([*checked, *extra], chosen, mastery_points=mastery_points,
                      weight=weight, n=n, scale_min=scale_min, scale_max=scale_max)

    def reaches(extra: list[float]) -> bool:
        after = value_after(extra)
        return after is not None and after >= mastery_points

    current = value_after([])
    if current is not None and current >= mastery_points:
        return None

    candidates = _candidate_scores(scale_min, scale_max, step)
    m = _num(mastery_points)
    goal = f"mastery ({m} or above)"
    bound = max(max_extra, n) if chosen is Method.N_MASTERY else max_extra

    def describe(score: float, working: list[float]) -> str:
        # "or higher" is a promise about every score above, including ones between the
        # steps we tried, so it is made only where the maths guarantees it: methods that
        # never drop when a score rises, and power_law for positive scores (the newest
        # point always pulls the curve its way; a 0 switches to the shifted fit). For mode
        # a higher score can break a tie the wrong way, so only the tried values are named.
        above = [c for c in candidates if c >= score]
        provable = chosen in _MONOTONE_METHODS or (chosen is Method.POWER_LAW and score > 0)
        if provable and all(c in working for c in above):
            top = " (the top of the scale)" if score == scale_max else " or higher"
            return f"{_num(score)}{top}"
        return _joined(working)

    for count in range(1, bound + 1):
        working = [c for c in candidates if reaches([c] * count)]
        if not working:
            continue
        smallest = working[0]
        what = describe(smallest, working)
        after = value_after([smallest] * count)
        assert after is not None
        if count == 1:
            return (
                f"One more score of {what} would bring you to {goal}; with a "
                f"{_num(smallest)}, your result would be {_num(after)}."
            )
        if chosen in _MONOTONE_METHODS and what.endswith("or higher"):
            # Raising any one score never lowers these methods' results, so a mix of
            # scores at or above `smallest` works as well as repeats of it.
            what = f"each {what}"
        else:
            # mode and power_law can react to a mix differently than to repeats (ties;
            # early points pulling the curve the other way), so promise only what we tried.
            top = " (the top of the scale)" if smallest == scale_max else ""
            what = f"{'both' if count == 2 else 'all'} {_num(smallest)}{top}"
        return (
            f"One more score is not enough. If your next {count} scores are {what}, you "
            f"would reach {goal}; your result would then be {_num(after)}."
        )
    return (
        f"Even {bound} more scores of {_num(scale_max)} (the top of the scale) would not "
        f"bring you to {goal} with this calculation method. Talk with your teacher about "
        "showing what you know again."
    )

