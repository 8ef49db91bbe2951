"""Mastery calculation methods (pure): the published worked examples, then properties.

Section numbers (§) refer to /work/shared/reference/mastery.md.
"""

from __future__ import annotations

import math
import re
import statistics

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lti_tool.grades.mastery import (
    METHODS,
    ORDER_SENSITIVE_METHODS,
    Method,
    explain,
    explain_with_numbers,
    rollup,
    round2,
    to_reach_mastery,
    validate_settings,
)

HALF_CENT = 0.005 + 1e-9  # a rounded result may sit this far from the unrounded value

# Scores as real evidence looks (levels, often repeated, so mode ties happen) and as
# arbitrary floats (including 0 and values above the 0-4 scale, which are allowed).
levels = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
any_score = st.floats(min_value=0, max_value=10, allow_nan=False, allow_infinity=False)
score_lists = st.one_of(st.lists(levels, min_size=1, max_size=15),
                        st.lists(any_score, min_size=1, max_size=15))
decay_weights = st.floats(min_value=0.5, max_value=1.0)
any_weights = st.floats(min_value=0.0, max_value=1.0, exclude_min=True)
mastery_levels = st.sampled_from([1.0, 2.0, 2.5, 3.0, 3.5, 4.0])
ns = st.integers(min_value=1, max_value=10)
methods = st.sampled_from(METHODS)


def is_two_decimals(value: float) -> bool:
    return abs(value * 100 - round(value * 100)) < 1e-6


def fmt(value: float) -> str:
    """How the explanations print a number: at most 2 decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------
# Published worked examples
# ---------------------------------------------------------------------------

CANVAS_UI_SCORES = [1, 4, 2, 3, 5, 3, 6, 1, 4, 2, 3, 5, 3, 6]


def test_s1_2_weighted_average_worked_examples():
    """§1.2 legacy formula: [1,2,3,4] at 65 -> 3.30; the 14-score UI example -> 5.03."""
    assert rollup([1, 2, 3, 4], "weighted_average", weight=0.65) == 3.3
    assert rollup(CANVAS_UI_SCORES, "weighted_average", weight=0.65, scale_max=6) == 5.03


def test_s1_2_decaying_average_worked_examples():
    """§1.2 exponential formula: [1,2,3,4] at 65 -> 3.48; UI example's first 7 -> 5.10."""
    assert rollup([1, 2, 3, 4], "decaying_average", weight=0.65) == 3.48
    assert rollup(CANVAS_UI_SCORES[:7], "decaying_average", weight=0.65, scale_max=6) == 5.1


def test_s1_2_n_mastery_worked_examples():
    """§1.2: [1,2,3,4], mastery 3: n=2 -> 3.5 (mean of 3 and 4); n=3 -> nil despite 4 results."""
    assert rollup([1, 2, 3, 4], "n_mastery", n=2, mastery_points=3) == 3.5
    assert rollup([1, 2, 3, 4], "n_mastery", n=3, mastery_points=3) is None


def test_s1_2_n_mastery_averages_all_kept_scores_not_just_n():
    """§1.2: the mean of *all* scores at or above mastery, not of n of them."""
    assert rollup([3, 4, 4, 4], "n_mastery", n=1) == 3.75


def test_s1_2_and_1_3_mastery_comparisons_are_not_rounded():
    """§1.2/§1.3: scores are compared raw, so 2.99 does not count toward mastery at 3."""
    assert rollup([2.99, 2.99, 3.0], "n_mastery", n=2) is None
    assert rollup([2.99, 3.0, 3.0], "n_mastery", n=2) == 3.0


def test_s1_2_single_score_is_the_result_for_both_averages():
    """§1.2: with n = 1 both the legacy and the exponential formula return s1."""
    for method in ("weighted_average", "decaying_average"):
        assert rollup([2.5], method) == 2.5


def test_s1_2_latest_is_the_last_in_time_order():
    """§1.2: latest = the newest result; the list is oldest first, so its last element."""
    assert rollup([4, 1, 2], "latest") == 2.0


@pytest.mark.parametrize(
    ("scores", "expected"),
    [([1, 2, 3, 4], 4.0), ([1, 3, 2, 4], 3.66), ([2, 4, 1, 3], 2.16), ([4, 3, 2, 1], 1.28)],
)
def test_s3_1_power_law_reproduces_jumprope_table(scores, expected):
    """§3.1: JumpRope's published power-law table, all four rows."""
    assert rollup(scores, "power_law") == expected


# §3.2 comparison table (mastery 3, scale 1-4, weight 65, n_mastery n=2).
S3_2_COLUMNS = ["latest", "highest", "average", "weighted_average", "decaying_average",
                "n_mastery", "power_law", "mode"]
S3_2_ROWS = {
    "growth": ([1, 2, 3, 4], [4, 4, 2.5, 3.3, 3.48, 3.5, 4.0, 4]),
    "decline": ([4, 3, 2, 1], [1, 4, 2.5, 1.7, 1.52, 3.5, 1.28, 1]),
    "noisy": ([3, 1, 3, 4], [4, 4, 2.75, 3.42, 3.49, 3.33, 2.86, 3]),
    "late slip": ([4, 4, 4, 2], [2, 4, 3.5, 2.7, 2.7, 4.0, 2.69, 4]),
    "single": ([3], [3, 3, 3, 3, 3, None, 3, 3]),
    "two": ([2, 4], [4, 4, 3, 3.3, 3.3, None, 4.0, 4]),
}


@pytest.mark.parametrize(
    ("scores", "method", "expected"),
    [
        pytest.param(scores, method, value, id=f"{row}-{method}")
        for row, (scores, values) in S3_2_ROWS.items()
        for method, value in zip(S3_2_COLUMNS, values, strict=True)
    ],
)
def test_s3_2_methods_compared_on_the_same_evidence(scores, method, expected):
    """§3.2 table: every method on the six sequences (n_mastery with n = 2)."""
    assert rollup(scores, method, mastery_points=3, weight=0.65, n=2,
                  scale_min=1, scale_max=4) == expected


def test_s3_2_mode_ties_go_to_the_most_recent():
    """§3.2 (Educate): ties in frequency go to the most recently scored level."""
    assert rollup([3, 4, 4, 3], "mode") == 3.0
    assert rollup([4, 3, 3, 4], "mode") == 4.0
    assert rollup([1, 2, 3, 4], "mode") == 4.0


def test_s3_2_observation_the_two_decaying_formulas_agree_up_to_two_scores():
    """§3.2: "Canvas's two decaying formulas agree whenever n <= 2"."""
    for scores in ([3], [2, 4], [4, 0], [1.5, 3.5]):
        assert rollup(scores, "weighted_average") == rollup(scores, "decaying_average")


def test_s1_2_rounding_is_canvas_half_away_from_zero_not_python_round():
    """§1.2: every result is rounded to 2 decimals with Canvas's PRECISION = 2.

    Canvas uses Ruby's Float#round, which sends halves away from zero, as a hand
    calculation does. No published example lands on a half, so this one is ours:
    0.65*4 + 0.35*mean(1, 2) = 3.125 by hand; Canvas shows 3.13, Python's round 3.12.
    """
    assert round(0.65 * 4 + 0.35 * 1.5, 2) == 3.12  # the behaviour we do not want
    assert rollup([1, 2, 4], "weighted_average", weight=0.65) == 3.13
    assert rollup([0, 0.25], "average") == 0.13  # 0.125 exactly; round() gives 0.12
    assert rollup([2.675], "latest") == 2.68  # binary 2.675 is just under; round() gives 2.67
    assert round2(0.125) == 0.13
    assert round2(1.005) == 1.01
    assert round2(3.48462) == 3.48
    assert round2(5.099233) == 5.1


# ---------------------------------------------------------------------------
# Every method
# ---------------------------------------------------------------------------


def test_methods_are_exactly_the_issues_list():
    assert set(METHODS) == {"decaying_average", "weighted_average", "n_mastery", "latest",
                            "highest", "average", "mode", "power_law"}
    assert all(Method(name).value == name for name in METHODS)
    assert rollup([1, 2, 3, 4], Method.DECAYING_AVERAGE) == 3.48


@pytest.mark.parametrize("method", METHODS)
def test_no_scores_means_no_value_for_every_method(method):
    assert rollup([], method) is None


@settings(max_examples=200, deadline=None)
@given(scores=score_lists, method=methods, mastery=mastery_levels, weight=decay_weights,
       n=ns)
def test_every_result_is_none_or_rounded_to_two_decimals(scores, method, mastery, weight, n):
    result = rollup(scores, method, mastery_points=mastery, weight=weight, n=n)
    if result is None:
        assert method == "n_mastery"
    else:
        assert is_two_decimals(result)
        assert round2(result) == result


@settings(max_examples=200, deadline=None)
@given(scores=score_lists, method=st.sampled_from(
    ["decaying_average", "weighted_average", "latest", "highest", "average", "mode",
     "n_mastery"]), weight=decay_weights, n=ns)
def test_result_lies_within_the_scores_for_non_extrapolating_methods(scores, method, weight,
                                                                      n):
    result = rollup(scores, method, weight=weight, n=n, mastery_points=1.0)
    assume(result is not None)
    assert min(scores) - HALF_CENT <= result <= max(scores) + HALF_CENT


@settings(max_examples=200, deadline=None)
@given(scores=score_lists,
       scale=st.sampled_from([(0.0, 4.0), (1.0, 4.0), (0.0, 5.0), (0.0, 100.0)]))
def test_power_law_is_clamped_to_the_scale_not_the_scores(scores, scale):
    low, high = scale
    result = rollup(scores, "power_law", mastery_points=low, scale_min=low, scale_max=high)
    assert result is not None
    assert low <= result <= high


@given(scores=score_lists)
def test_latest_highest_average_are_exactly_defined(scores):
    assert rollup(scores, "latest") == round2(scores[-1])
    assert rollup(scores, "highest") == round2(max(scores))
    assert rollup(scores, "average") == round2(statistics.fmean(scores))


@given(scores=score_lists)
def test_mode_is_most_frequent_with_ties_to_the_most_recent(scores):
    def last_index(value: float) -> int:
        return max(i for i, s in enumerate(scores) if s == value)

    expected = max(set(scores), key=lambda v: (scores.count(v), last_index(v)))
    assert rollup(scores, "mode") == round2(expected)


@given(scores=score_lists, weight=decay_weights)
def test_decaying_average_matches_its_closed_form(scores, weight):
    # d_k = (1-w) d_{k-1} + w s_k unrolls to geometric weights on each score.
    k = len(scores)
    closed = (1 - weight) ** (k - 1) * scores[0] + sum(
        weight * (1 - weight) ** (k - j) * scores[j - 1] for j in range(2, k + 1))
    assert abs(rollup(scores, "decaying_average", weight=weight) - closed) <= HALF_CENT


@given(scores=score_lists, weight=any_weights)
def test_weighted_average_is_latest_against_mean_of_the_rest(scores, weight):
    result = rollup(scores, "weighted_average", weight=weight)
    if len(scores) == 1:
        assert result == round2(scores[0])
    else:
        expected = weight * scores[-1] + (1 - weight) * statistics.fmean(scores[:-1])
        assert abs(result - expected) <= HALF_CENT


@settings(max_examples=200)
@given(scores=st.lists(levels, max_size=15), mastery=mastery_levels, n=ns)
def test_n_mastery_is_none_until_n_scores_reach_mastery(scores, mastery, n):
    kept = [s for s in scores if s >= mastery]
    result = rollup(scores, "n_mastery", mastery_points=mastery, n=n)
    if len(kept) < n:
        assert result is None
    else:
        assert abs(result - statistics.fmean(kept)) <= HALF_CENT
        assert result >= mastery


@given(score=any_score, method=methods)
def test_single_score(score, method):
    result = rollup([score], method, n=1, mastery_points=3.0)
    if method == "n_mastery":
        assert result == (round2(score) if score >= 3.0 else None)
        assert rollup([score], method, n=2) is None
    elif method == "power_law":
        assert result == round2(min(score, 4.0))
    else:
        assert result == round2(score)


# ---------------------------------------------------------------------------
# Order sensitivity, both directions
# ---------------------------------------------------------------------------


@settings(max_examples=150)
@given(data=st.data(), scores=score_lists, mastery=mastery_levels, n=ns,
       method=st.sampled_from(["average", "highest", "n_mastery"]))
def test_order_insensitive_methods_ignore_order(data, scores, mastery, n, method):
    shuffled = data.draw(st.permutations(scores))
    kwargs = {"mastery_points": mastery, "n": n}
    assert rollup(shuffled, method, **kwargs) == rollup(scores, method, **kwargs)


@pytest.mark.parametrize(
    ("method", "first", "second"),
    [
        ("decaying_average", [1, 2, 3, 4], [4, 3, 2, 1]),
        ("weighted_average", [1, 2, 3, 4], [4, 3, 2, 1]),
        ("latest", [1, 2, 3, 4], [4, 3, 2, 1]),
        ("power_law", [1, 2, 3, 4], [4, 3, 2, 1]),
        ("mode", [3, 4], [4, 3]),  # only through the tie rule
    ],
)
def test_order_sensitive_methods_change_with_order(method, first, second):
    assert sorted(first) == sorted(second)
    assert rollup(first, method) != rollup(second, method)
    assert Method(method) in ORDER_SENSITIVE_METHODS


def test_order_sensitivity_set_is_exactly_the_methods_that_use_order():
    assert {m.value for m in ORDER_SENSITIVE_METHODS} == {
        "decaying_average", "weighted_average", "latest", "power_law", "mode"}


@given(scores=score_lists, weight=decay_weights,
       method=st.sampled_from(["decaying_average", "power_law", "latest"]))
def test_growth_order_never_scores_below_decline_order(scores, weight, method):
    # These methods give later scores at least as much say as earlier ones, so the same
    # scores in rising order can never roll up lower than in falling order.
    rising = rollup(sorted(scores), method, weight=weight)
    falling = rollup(sorted(scores, reverse=True), method, weight=weight)
    assert rising >= falling


# ---------------------------------------------------------------------------
# Power law details (§3.1 edge cases)
# ---------------------------------------------------------------------------


@given(first=any_score, second=any_score)
def test_power_law_with_two_scores_passes_through_both_so_reports_the_latest(first, second):
    assert rollup([first, second], "power_law") == round2(min(second, 4.0))


@given(value=any_score, count=st.integers(min_value=1, max_value=12))
def test_power_law_of_a_flat_record_is_that_score(value, count):
    assert rollup([value] * count, "power_law") == round2(min(value, 4.0))


@given(scores=st.lists(levels.filter(bool), min_size=1, max_size=10),
       lower=levels.filter(bool), higher=levels.filter(bool))
def test_power_law_rises_with_the_newest_score(scores, lower, higher):
    assume(lower <= higher)
    assert rollup([*scores, lower], "power_law") <= rollup([*scores, higher], "power_law")


def test_power_law_handles_zero_scores():
    """§3.1: zeros have no logarithm; we fit to score + 1 and subtract 1 again."""
    assert rollup([0], "power_law") == 0.0
    assert rollup([0, 0, 0], "power_law") == 0.0
    assert rollup([3, 0], "power_law") == 0.0  # two points: still the latest
    assert rollup([0, 3], "power_law") == 3.0
    assert rollup([4, 4, 4, 0], "power_law") < rollup([4, 4, 4, 1], "power_law")
    rising = rollup([0, 1, 2, 3], "power_law")
    assert 3.0 <= rising <= 4.0


def test_power_law_survives_wild_fits_without_overflow():
    assert rollup([1e-300, 4, 4], "power_law") == 4.0
    assert rollup([4, 4, 1e-300], "power_law") == 0.0
    assert rollup([1, 2, 3, 5], "power_law") == 4.0  # would be ~5.3: clamped to the top


def test_power_law_clamps_to_a_scale_that_does_not_start_at_zero():
    assert rollup([4, 3, 2, 1], "power_law", scale_min=1.5, mastery_points=3) == 1.5


# ---------------------------------------------------------------------------
# Errors say what to fix
# ---------------------------------------------------------------------------


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="use one of: decaying_average"):
        rollup([1], "median")


@pytest.mark.parametrize("n", [-1, 0, 11])
def test_n_outside_1_to_10_is_rejected(n):
    with pytest.raises(ValueError, match="between 1 and 10"):
        rollup([3], "n_mastery", n=n)


@pytest.mark.parametrize("n", [2.5, 3.0, True, "3"])
def test_n_must_be_a_whole_number(n):
    with pytest.raises(TypeError, match="whole number"):
        rollup([3], "n_mastery", n=n)


@pytest.mark.parametrize("weight", [0, -0.1, 1.01, math.nan, math.inf])
def test_weight_outside_0_to_1_is_rejected(weight):
    with pytest.raises(ValueError, match="weight"):
        rollup([3], "weighted_average", weight=weight)


def test_weight_given_as_a_percentage_suggests_the_fraction():
    with pytest.raises(ValueError, match="pass 0.65"):
        rollup([3], "decaying_average", weight=65)


def test_decaying_average_needs_the_newest_score_to_count_at_least_half():
    with pytest.raises(ValueError, match="between 0.5 and 1"):
        rollup([3], "decaying_average", weight=0.4)
    assert rollup([1, 3], "weighted_average", weight=0.4) == 1.8  # allowed there
    assert rollup([1, 3], "decaying_average", weight=1.0) == 3.0  # 1 is allowed: = latest


def test_settings_are_checked_even_when_the_method_ignores_them():
    with pytest.raises(ValueError, match="weight"):
        rollup([3], "highest", weight=0)
    with pytest.raises(ValueError):
        rollup([3], "latest", n=0)


@pytest.mark.parametrize("bad", [-1, -0.01, math.nan, math.inf])
def test_scores_must_be_finite_and_not_negative(bad):
    with pytest.raises(ValueError, match="score 2 must be a finite number of 0 or more"):
        rollup([1, bad], "average")


@pytest.mark.parametrize("bad", ["3", None, True])
def test_scores_must_be_numbers(bad):
    with pytest.raises(TypeError, match="score 1 must be a number"):
        rollup([bad], "average")


def test_scores_must_be_a_sequence():
    with pytest.raises(TypeError, match="list of numbers"):
        rollup("1234", "average")


def test_scale_and_mastery_points_must_fit_together():
    with pytest.raises(ValueError, match="below scale_max"):
        rollup([3], "power_law", scale_min=4, scale_max=4)
    with pytest.raises(ValueError, match="scale_min must be 0 or more"):
        rollup([3], "power_law", scale_min=-1)
    with pytest.raises(ValueError, match="pass its ends as scale_min and scale_max"):
        rollup([80], "average", mastery_points=80)
    assert rollup([80], "average", mastery_points=80, scale_max=100) == 80.0


def test_scores_above_the_scale_are_kept_for_old_evidence():
    assert rollup([5, 5], "average") == 5.0
    assert rollup([5, 5], "power_law") == 4.0


def test_validate_settings_returns_the_method():
    assert validate_settings("mode") is Method.MODE


# ---------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_explain_is_one_plain_paragraph_with_the_mastery_level(method):
    text = explain(method, mastery_points=2.5, weight=0.65, n=3)
    assert "\n" not in text
    assert "2.5 or higher" in text
    assert len(text) < 700
    for jargon in ("exponential", "regression", "logarithm", "least squares", "mean"):
        assert not re.search(rf"\b{jargon}\b", text.lower())


def test_explain_uses_the_actual_weight():
    assert "most recent score counts 65%" in explain("weighted_average", weight=0.65)
    assert "counts the other 35%" in explain("weighted_average", weight=0.65)
    text = explain("decaying_average", weight=0.8)
    assert "counts 80%" in text and "counts 20%" in text
    assert "67.5%" in explain("weighted_average", weight=0.675)
    assert "simply your most recent score" in explain("decaying_average", weight=1.0)


def test_explain_uses_the_actual_n_and_scale():
    assert "at least 4 scores of 3 or higher" in explain("n_mastery", n=4)
    assert "at least 1 score of 3 or higher" in explain("n_mastery", n=1)
    assert "below 1 or above 5" in explain("power_law", scale_min=1, scale_max=5)
    assert "most recently wins" in explain("mode")


def test_explain_rejects_bad_settings_like_rollup():
    with pytest.raises(ValueError):
        explain("decaying_average", weight=0.3)


def test_explain_with_numbers_decaying_average_worked_example():
    """§1.2 example [1,2,3,4] at 65, shown step by step with the student's numbers."""
    text = explain_with_numbers([1, 2, 3, 4], "decaying_average")
    assert text.startswith("Your scores, oldest first: 1, 2, 3, 4.")
    assert "35% × 1 + 65% × 2 = 1.65" in text
    assert "Result: 3.48." in text
    assert "rounded to 2 decimals" in text  # 2.5275 is shown as 2.53


def test_explain_with_numbers_weighted_average_worked_example():
    """§1.2 example [1,2,3,4] at 65 -> 3.3."""
    text = explain_with_numbers([1, 2, 3, 4], "weighted_average")
    assert "65% × 4 + 35% × 2 = 3.3." in text
    assert "rounded" not in text


def test_explain_with_numbers_n_mastery_both_states():
    """§1.2 examples: n=2 -> 3.5, n=3 -> no value yet (and says why)."""
    assert "(3 + 4) ÷ 2 = 3.5" in explain_with_numbers([1, 2, 3, 4], "n_mastery", n=2)
    text = explain_with_numbers([1, 2, 3, 4], "n_mastery", n=3)
    assert "2 scores of 3 or higher (3, 4)" in text and "needs 3" in text
    assert "no result yet" in text


def test_explain_with_numbers_other_methods():
    assert "(1 + 2 + 3 + 4) ÷ 4 = 2.5" in explain_with_numbers([1, 2, 3, 4], "average")
    assert "highest score is 4" in explain_with_numbers([4, 1], "highest")
    assert "most recent score is 1" in explain_with_numbers([4, 1], "latest")
    assert "3 and 4 were each earned twice" in explain_with_numbers([3, 4, 4, 3], "mode")
    power = explain_with_numbers([1, 2, 3, 5], "power_law")
    assert "above the top of the scale, 4, so your result is 4" in power
    assert "was added to every score" in explain_with_numbers([0, 2, 3], "power_law")
    assert "no scores" in explain_with_numbers([], "average")


@settings(max_examples=150, deadline=None)
@given(scores=score_lists, method=methods, n=ns)
def test_explain_with_numbers_ends_on_the_same_value_as_rollup(scores, method, n):
    text = explain_with_numbers(scores, method, n=n)
    result = rollup(scores, method, n=n)
    assert "\n" not in text
    assert text.startswith("Your scores, oldest first: ")
    if result is None:
        assert "no result yet" in text
    else:
        assert re.search(rf"(= |is |: ){re.escape(fmt(result))}[.,]", text), text


# ---------------------------------------------------------------------------
# What it takes to reach mastery
# ---------------------------------------------------------------------------


def test_to_reach_mastery_is_none_at_or_above_mastery():
    assert to_reach_mastery([3], "latest") is None
    assert to_reach_mastery([4, 1], "highest") is None
    assert to_reach_mastery([3, 3, 3], "n_mastery", n=3) is None


def test_to_reach_mastery_one_more_score():
    assert to_reach_mastery([1, 2], "latest").startswith("One more score of 3 or higher")
    assert to_reach_mastery([2, 2], "n_mastery", n=1).startswith(
        "One more score of 3 or higher")
    text = to_reach_mastery([1, 2], "decaying_average")
    assert text.startswith("One more score of 4 (the top of the scale)")
    assert "your result would be 3.18" in text  # 0.35 × 1.65 + 0.65 × 4 = 3.1775
    assert to_reach_mastery([], "average").startswith("One more score of 3 or higher")


def test_to_reach_mastery_several_scores():
    text = to_reach_mastery([1, 2], "average")
    assert "If your next 3 scores are all 4 (the top of the scale)" in text
    text = to_reach_mastery([1], "n_mastery", n=3)
    assert "If your next 3 scores are each 3 or higher" in text


def test_to_reach_mastery_when_it_is_out_of_reach():
    text = to_reach_mastery([0] * 10, "average")
    assert text.startswith("Even 5 more scores of 4 (the top of the scale) would not")
    # n_mastery always looks far enough ahead to give a definite answer
    assert "next 10 scores" in to_reach_mastery([0], "n_mastery", n=10)


def test_to_reach_mastery_never_promises_or_higher_for_mode_ties():
    # [3,3,2,2] + 4 leaves 3 and 2 tied, and 2 is the more recent: only a 3 works.
    text = to_reach_mastery([3, 3, 2, 2], "mode")
    assert text.startswith("One more score of 3 would")
    assert rollup([3, 3, 2, 2, 4], "mode") == 2.0
    assert to_reach_mastery([3, 4, 2, 2], "mode").startswith("One more score of 3 or 4 would")


def test_to_reach_mastery_on_a_half_point_scale():
    # 0.65 × 4 + 0.35 × 3 = 3.65, but 0.65 × 3.5 + 0.35 × 3 = 3.325: only the top will do.
    text = to_reach_mastery([3, 3], "weighted_average", step=0.5, mastery_points=3.5)
    assert text.startswith("One more score of 4 (the top")
    text = to_reach_mastery([2], "latest", step=0.5, mastery_points=2.5)
    assert text.startswith("One more score of 2.5 or higher")


def test_to_reach_mastery_rejects_bad_search_settings():
    with pytest.raises(ValueError, match="step"):
        to_reach_mastery([1], "latest", step=0)
    with pytest.raises(ValueError, match="max_extra"):
        to_reach_mastery([1], "latest", max_extra=0)


ONE_MORE = re.compile(r"^One more score of ([\d.]+)")


@settings(max_examples=150, deadline=None)
@given(scores=st.lists(levels, max_size=10), method=methods, mastery=mastery_levels,
       weight=decay_weights, n=st.integers(min_value=1, max_value=4))
def test_to_reach_mastery_claims_are_true_and_minimal(scores, method, mastery, weight, n):
    kwargs = {"mastery_points": mastery, "weight": weight, "n": n}
    current = rollup(scores, method, **kwargs)
    text = to_reach_mastery(scores, method, **kwargs)
    at_mastery = current is not None and current >= mastery
    assert (text is None) == at_mastery
    if text is None:
        return
    match = ONE_MORE.match(text)
    if match:
        needed = float(match.group(1))
        assert rollup([*scores, needed], method, **kwargs) >= mastery
        if needed >= 1:
            below = rollup([*scores, needed - 1], method, **kwargs)
            assert below is None or below < mastery
        if "or higher" in text:
            for higher in (needed + 0.5, 4.0):
                assert rollup([*scores, min(higher, 4.0)], method, **kwargs) >= mastery
