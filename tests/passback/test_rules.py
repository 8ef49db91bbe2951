"""Passback rules (pure): worked examples per rule and option, comment wording, truncation,
rounding, activity progress, errors, timestamps, payloads, then properties."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lti_tool.passback.rules import (
    COMMENT_LIMIT,
    NO_STANDARDS_COMMENT,
    RULE_LABELS,
    RULES,
    Progress,
    ScoreOut,
    Standing,
    activity_progress,
    explain_power_incomplete,
    explain_rule,
    format_timestamp,
    next_timestamp,
    parse_timestamp,
    same_score,
    score_payload,
    scores,
)

UTC = timezone.utc
T0 = datetime(2026, 11, 22, 21, 40, 57, 123456, tzinfo=UTC)
STARTED = Progress(done=2, total=5, started=True)

# The example: R.1, R.2, W.1 at or above mastery, W.2 with no evidence yet.
FOUR = [
    Standing(1, "R.1", 3.0),
    Standing(2, "R.2", 4.0),
    Standing(3, "W.1", 4.0),
    Standing(4, "W.2", None),
]


def run(rule, standings, *, mastery_points=3.0, scale_max=4.0, score_maximum=100.0,
        power_incomplete=False, progress=STARTED, mastery_label="Mastery"):
    return scores(rule, standings, mastery_points=mastery_points, scale_max=scale_max,
                  score_maximum=score_maximum, power_incomplete=power_incomplete,
                  progress=progress, mastery_label=mastery_label)


def one(rule, standings, **kwargs) -> ScoreOut:
    out = run(rule, standings, **kwargs)
    assert len(out) == 1 and out[0].standard_id is None
    return out[0]


# ---------------------------------------------------------------------------
# share
# ---------------------------------------------------------------------------


def test_share_worked_example():
    out = one("share", FOUR)
    assert out == ScoreOut(
        standard_id=None, score_given=75.0, score_maximum=100.0,
        comment="Mastered 3 of 4 standards: R.1, R.2 and W.1. Not yet: W.2 (no evidence).",
        activity_progress="InProgress", grading_progress="FullyGraded",
    )


def test_share_lists_not_yet_standards_with_their_levels_in_the_given_order():
    standings = [Standing(1, "W.2", 2.5), Standing(2, "R.1", 3), Standing(3, "R.2", None),
                 Standing(4, "W.1", 1)]
    out = one("share", standings, score_maximum=10)
    assert out.score_given == 2.5
    assert out.score_maximum == 10
    assert out.comment == ("Mastered 1 of 4 standards: R.1. "
                           "Not yet: W.2 (2.5), R.2 (no evidence) and W.1 (1).")


def test_share_none_and_all_mastered_and_singular_wording():
    none = one("share", [Standing(1, "R.1", 2), Standing(2, "R.2", None)])
    assert none.score_given == 0
    assert none.grading_progress == "FullyGraded"
    assert none.comment == "Mastered 0 of 2 standards. Not yet: R.1 (2) and R.2 (no evidence)."
    every = one("share", [Standing(1, "R.1", 3), Standing(2, "R.2", 3.5)])
    assert every.score_given == 100
    assert every.comment == "Mastered 2 of 2 standards: R.1 and R.2."
    single = one("share", [Standing(7, "R.1", 4)])
    assert single.comment == "Mastered 1 of 1 standard: R.1."


def test_share_mastery_is_reached_at_mastery_points_not_just_below():
    assert one("share", [Standing(1, "R.1", 2.99)]).score_given == 0
    assert one("share", [Standing(1, "R.1", 3.0)]).score_given == 100
    # Compared as shown, rounded to 2 decimals like every rollup.
    assert one("share", [Standing(1, "R.1", 2.999)]).score_given == 100
    assert run("per_standard", [Standing(1, "R.1", 2.999)])[0].comment == (
        "R.1: 3 of 4, at Mastery.")
    # A scale and mastery level other than Canvas's default.
    assert one("share", [Standing(1, "A", 2), Standing(2, "B", 1)], mastery_points=2,
               scale_max=3).score_given == 50


@pytest.mark.parametrize(("mastered", "total", "maximum", "expected"), [
    (1, 3, 100, 33.33),
    (2, 3, 100, 66.67),
    (1, 8, 10, 1.25),
    (1, 8, 1, 0.13),  # 0.125: halves go away from zero, as in the gradebook
    (5, 7, 20, 14.29),
])
def test_share_rounds_to_two_decimals(mastered, total, maximum, expected):
    standings = [Standing(i, f"S.{i}", 4.0 if i < mastered else 1.0) for i in range(total)]
    assert one("share", standings, score_maximum=maximum).score_given == expected


# ---------------------------------------------------------------------------
# average
# ---------------------------------------------------------------------------


def test_average_worked_example_counts_no_evidence_as_zero_and_says_so():
    out = one("average", FOUR)
    assert out.score_given == 68.75  # (3 + 4 + 4 + 0) / 4 = 2.75 of 4
    assert out.grading_progress == "FullyGraded"
    assert out.comment == (
        "Average level 2.75 of 4 across 4 standards: R.1 at 3, R.2 at 4 and W.1 at 4 "
        "(W.2 has no evidence yet and counts as 0)."
    )


def test_average_wording_with_full_evidence_and_with_several_missing():
    full = one("average", [Standing(1, "R.1", 3.5), Standing(2, "R.2", 2)])
    assert full.comment == "Average level 2.75 of 4 across 2 standards: R.1 at 3.5 and R.2 at 2."
    missing = one("average", [Standing(1, "R.1", None), Standing(2, "R.2", None)])
    assert missing.score_given == 0
    assert missing.comment == ("Average level 0 of 4 across 2 standards (R.1 and R.2 have no "
                               "evidence yet and count as 0).")


def test_average_rounds_the_score_and_the_level_shown():
    out = one("average", [Standing(1, "A", 1), Standing(2, "B", 2), Standing(3, "C", 2)])
    assert out.score_given == 41.67  # 5/3 = 1.666… of 4
    assert out.comment.startswith("Average level 1.67 of 4 across 3 standards")


def test_average_on_another_scale_and_maximum():
    out = one("average", [Standing(1, "A", 5), Standing(2, "B", 2)], mastery_points=4,
              scale_max=5, score_maximum=20)
    assert out.score_given == 14.0  # 3.5 of 5 = 70 % of 20
    assert out.score_maximum == 20


def test_values_above_the_top_of_the_scale_count_as_the_top():
    out = one("average", [Standing(1, "A", 6), Standing(2, "B", 4)])
    assert out.score_given == 100
    assert out.comment == "Average level 4 of 4 across 2 standards: A at 4 and B at 4."
    [column] = run("per_standard", [Standing(1, "A", 6)])
    assert column.score_given == 4


# ---------------------------------------------------------------------------
# per_standard
# ---------------------------------------------------------------------------


def test_per_standard_one_column_per_standard_with_evidence():
    out = run("per_standard", FOUR + [Standing(5, "W.3", 2.5)])
    assert [o.standard_id for o in out] == [1, 2, 3, 5]  # W.2 has nothing to send yet
    assert [o.score_given for o in out] == [3, 4, 4, 2.5]
    assert all(o.score_maximum == 4 for o in out)
    assert all(o.grading_progress == "FullyGraded" for o in out)
    assert all(o.activity_progress == "InProgress" for o in out)
    assert [o.comment for o in out] == [
        "R.1: 3 of 4, at Mastery.",
        "R.2: 4 of 4, above Mastery.",
        "W.1: 4 of 4, above Mastery.",
        "W.3: 2.5 of 4, not yet at Mastery (3).",
    ]


def test_per_standard_uses_the_mastery_label_and_rounds():
    [out] = run("per_standard", [Standing(1, "R.1", 2.456)], mastery_label="Proficient")
    assert out.score_given == 2.46
    assert out.comment == "R.1: 2.46 of 4, not yet at Proficient (3)."


def test_per_standard_is_not_affected_by_power_incomplete():
    standings = [Standing(1, "R.1", 1, power=True), Standing(2, "R.2", 4)]
    on = run("per_standard", standings, power_incomplete=True)
    off = run("per_standard", standings, power_incomplete=False)
    assert on == off
    assert [o.grading_progress for o in on] == ["FullyGraded", "FullyGraded"]


def test_per_standard_with_no_standards_or_no_evidence_sends_nothing():
    assert run("per_standard", []) == []
    assert run("per_standard", [Standing(1, "R.1", None)]) == []


# ---------------------------------------------------------------------------
# power_incomplete
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["share", "average"])
def test_power_standard_below_mastery_makes_the_score_incomplete(rule):
    standings = [Standing(1, "R.1", 4), Standing(2, "R.2", 2.5, power=True)]
    out = one(rule, standings, power_incomplete=True)
    assert out.score_given is None
    assert out.grading_progress == "Pending"
    assert out.score_maximum == 100
    assert out.comment.startswith("Incomplete: power standard R.2 is not yet at Mastery. ")
    # ...followed by what the score is made of once it is complete.
    plain = one(rule, standings, power_incomplete=False)
    assert out.comment.endswith(plain.comment)
    assert plain.score_given is not None and plain.grading_progress == "FullyGraded"


def test_power_incomplete_exact_wording_plural_and_no_evidence():
    standings = [Standing(1, "R.1", 4, power=True), Standing(2, "R.2", 2, power=True),
                 Standing(3, "W.1", None, power=True), Standing(4, "W.2", 1)]
    out = one("share", standings, power_incomplete=True, mastery_label="Proficient")
    assert out.comment == (
        "Incomplete: power standards R.2 and W.1 are not yet at Proficient. "
        "Mastered 1 of 4 standards: R.1. Not yet: R.2 (2), W.1 (no evidence) and W.2 (1)."
    )


def test_power_standards_at_mastery_leave_the_score_complete():
    standings = [Standing(1, "R.1", 3, power=True), Standing(2, "R.2", 1)]
    out = one("share", standings, power_incomplete=True)
    assert out.score_given == 50
    assert out.grading_progress == "FullyGraded"
    assert not out.comment.startswith("Incomplete")


def test_no_power_standards_means_never_incomplete():
    out = one("average", [Standing(1, "R.1", 0)], power_incomplete=True)
    assert out.score_given == 0 and out.grading_progress == "FullyGraded"


# ---------------------------------------------------------------------------
# No standards, activity progress
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["share", "average"])
@pytest.mark.parametrize("power_incomplete", [False, True])
def test_a_playlist_with_no_standards_is_pending(rule, power_incomplete):
    out = one(rule, [], power_incomplete=power_incomplete)
    assert out.score_given is None
    assert out.grading_progress == "Pending"
    assert out.comment == NO_STANDARDS_COMMENT == "This playlist targets no standards yet."


@pytest.mark.parametrize(("progress", "expected"), [
    (Progress(0, 0, False), "Initialized"),
    (Progress(0, 3, False), "Initialized"),
    (Progress(0, 3, True), "InProgress"),
    (Progress(0, 0, True), "InProgress"),  # may-do work only
    (Progress(1, 3, False), "InProgress"),
    (Progress(2, 3, True), "InProgress"),
    (Progress(3, 3, True), "Completed"),
    (Progress(3, 3, False), "Completed"),
])
def test_activity_progress(progress, expected):
    assert activity_progress(progress) == expected
    for rule in ("share", "average"):
        assert one(rule, FOUR, progress=progress).activity_progress == expected
    assert {o.activity_progress for o in run("per_standard", FOUR, progress=progress)} == {
        expected}


# ---------------------------------------------------------------------------
# Comment length
# ---------------------------------------------------------------------------


def test_long_lists_are_truncated_with_and_n_more():
    standings = [Standing(i, f"CCSS.ELA-LITERACY.RL.{i}", 4.0 if i % 2 else 1.0)
                 for i in range(300)]
    share = one("share", standings)
    assert share.score_given == 50
    assert len(share.comment) <= COMMENT_LIMIT
    assert share.comment.startswith("Mastered 150 of 300 standards: CCSS.ELA-LITERACY.RL.1, ")
    assert share.comment.count(" more") == 2
    assert "Not yet: CCSS.ELA-LITERACY.RL.0 (1), " in share.comment
    assert share.comment.endswith(" more.")
    # What is shown plus "N more" accounts for every standard in each list.
    mastered_part, not_yet_part = share.comment.split(" Not yet: ")
    shown = mastered_part.count("CCSS")
    assert f" and {150 - shown} more." in mastered_part
    shown = not_yet_part.count("CCSS")
    assert f" and {150 - shown} more." in not_yet_part

    average = one("average", standings, power_incomplete=False)
    assert len(average.comment) <= COMMENT_LIMIT and average.comment.endswith(" more.")

    powered = [Standing(s.standard_id, s.code, s.value, power=True) for s in standings]
    incomplete = one("average", powered, power_incomplete=True)
    assert len(incomplete.comment) <= COMMENT_LIMIT
    assert incomplete.comment.startswith("Incomplete: power standards CCSS.ELA-LITERACY.RL.0, ")
    assert " more are not yet at Mastery. Average level " in incomplete.comment


def test_a_comment_just_within_the_limit_is_not_truncated():
    codes = [f"S{i:03d}" for i in range(160)]
    full = "Mastered 160 of 160 standards: " + ", ".join(codes[:-1]) + f" and {codes[-1]}."
    assert 950 < len(full) <= COMMENT_LIMIT
    assert one("share", [Standing(i, c, 4) for i, c in enumerate(codes)]).comment == full


def test_absurdly_long_codes_are_clipped():
    out = one("share", [Standing(1, "X" * 5000, 4)])
    assert len(out.comment) == COMMENT_LIMIT and out.comment.endswith("X…")
    assert out.comment.startswith("Mastered 1 of 1 standard: XXX")
    many = one("share", [Standing(i, "X" * 5000, i % 4) for i in range(10)],
               power_incomplete=True)
    assert len(many.comment) == COMMENT_LIMIT and many.comment.endswith("…")
    [column] = run("per_standard", [Standing(1, "X" * 5000, 4)])
    assert len(column.comment) == COMMENT_LIMIT


def test_a_blank_code_is_shown_by_id():
    assert one("share", [Standing(42, "  ", 4)]).comment == "Mastered 1 of 1 standard: #42."


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rule": "median"}, "unknown passback rule 'median'; use one of: share, average"),
    ({"score_maximum": 0}, "score_maximum must be a finite number above 0"),
    ({"score_maximum": -10}, "score_maximum must be a finite number above 0"),
    ({"score_maximum": math.nan}, "score_maximum must be a finite number above 0"),
    ({"score_maximum": math.inf}, "score_maximum must be a finite number above 0"),
    ({"scale_max": 0}, "scale_max must be a finite number above 0"),
    ({"scale_max": -4}, "scale_max must be a finite number above 0"),
    ({"mastery_points": 5}, "mastery_points (5) must lie on the scale 0..4.0"),
    ({"mastery_points": -1}, "must lie on the scale"),
    ({"mastery_points": math.nan}, "must lie on the scale"),
    ({"standings": [Standing(1, "R.1", math.nan)]}, "standard 'R.1' has value nan"),
    ({"standings": [Standing(1, "R.1", math.inf)]}, "a finite number of 0 or more"),
    ({"standings": [Standing(1, "R.1", -1)]}, "a finite number of 0 or more"),
    ({"standings": [Standing(1, "R.1", 3), Standing(1, "R.1", 2)]}, "is listed twice"),
    ({"progress": Progress(4, 3, True)}, "progress.done (4) is more than progress.total (3)"),
    ({"progress": Progress(-1, 3, True)}, "progress.done must be a whole number"),
    ({"mastery_label": " "}, "mastery_label must be the name of the mastery level"),
])
def test_bad_input_raises_value_error_saying_what_to_fix(kwargs, message):
    arguments = {"rule": "share", "standings": FOUR, "mastery_points": 3.0, "scale_max": 4.0,
                 "score_maximum": 100.0, "power_incomplete": False, "progress": STARTED}
    arguments.update(kwargs)
    rule = arguments.pop("rule")
    standings = arguments.pop("standings")
    for each in ({rule} if rule not in RULES else set(RULES)):
        with pytest.raises(ValueError) as info:
            scores(each, standings, **arguments)
        assert message in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"score_maximum": True}, "score_maximum must be a number"),
    ({"standings": "R.1"}, "standings must be a list of Standing"),
    ({"standings": [("R.1", 3)]}, "standing 1 must be a Standing"),
    ({"standings": [Standing(1, "R.1", "3")]}, "a mastery value must be a number"),
    ({"progress": (1, 2, True)}, "progress must be a Progress"),
    ({"mastery_points": "3"}, "mastery_points must be a number"),
])
def test_wrong_kinds_raise_type_error(kwargs, message):
    arguments = {"standings": FOUR, "mastery_points": 3.0, "scale_max": 4.0,
                 "score_maximum": 100.0, "power_incomplete": False, "progress": STARTED}
    arguments.update(kwargs)
    with pytest.raises(TypeError, match=message):
        scores("share", arguments.pop("standings"), **arguments)


# ---------------------------------------------------------------------------
# Labels and explanations
# ---------------------------------------------------------------------------


def test_every_rule_has_a_label_and_an_explanation():
    assert RULES == ("share", "average", "per_standard")
    assert set(RULE_LABELS) == set(RULES)
    for rule in RULES:
        text = explain_rule(rule, 100, "Mastery")
        assert text.endswith(".") and text.count(". ") == 0, text  # one sentence
        assert "\n" not in text


def test_explanations_use_the_maximum_and_the_mastery_label():
    assert explain_rule("share", 50, "Proficient") == (
        "The LMS score is the share of this playlist's standards the student has at "
        "Proficient or above, out of 50: for example, 3 of 4 standards at Proficient gives "
        "37.5."
    )
    assert "no evidence yet counting as 0" in explain_rule("average", 10)
    assert "gives 10." in explain_rule("average", 10)
    assert "own LMS column" in explain_rule("per_standard", 100)
    assert "below Proficient" in explain_power_incomplete("Proficient")


def test_explain_rule_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown passback rule"):
        explain_rule("best", 100, "Mastery")
    with pytest.raises(ValueError, match="above 0"):
        explain_rule("share", 0, "Mastery")


# ---------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------


def test_next_timestamp_first_score_is_now_truncated_to_milliseconds():
    assert next_timestamp(T0, None) == T0.replace(microsecond=123000)


def test_next_timestamp_is_now_when_the_last_score_is_long_past():
    last = T0 - timedelta(minutes=5)
    assert next_timestamp(T0, last) == T0.replace(microsecond=123000)


def test_next_timestamp_is_one_second_after_the_last_when_now_is_too_close():
    last = T0.replace(microsecond=900000)
    assert next_timestamp(T0, last) == last + timedelta(seconds=1)


def test_next_timestamp_when_the_clock_went_backwards():
    last = T0.replace(microsecond=123000) + timedelta(hours=1)
    assert next_timestamp(T0, last) == last + timedelta(seconds=1)


def test_next_timestamp_rounds_a_sub_millisecond_last_up_to_stay_a_second_apart():
    last = T0.replace(microsecond=999)  # not made by us
    result = next_timestamp(T0 - timedelta(seconds=5), last)
    assert result == T0.replace(microsecond=1000) + timedelta(seconds=1)
    assert result - last >= timedelta(seconds=1)


def test_next_timestamp_converts_other_offsets_to_utc():
    berlin = timezone(timedelta(hours=1))
    now = datetime(2026, 11, 22, 22, 40, 57, 123000, tzinfo=berlin)
    result = next_timestamp(now, None)
    assert result.tzinfo == UTC and result == T0.replace(microsecond=123000)


def test_naive_datetimes_are_refused():
    naive = datetime(2026, 11, 22, 21, 40, 57)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        next_timestamp(naive, None)
    with pytest.raises(ValueError, match="last must be timezone-aware"):
        next_timestamp(T0, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(naive)
    with pytest.raises(TypeError):
        next_timestamp("2026-11-22", None)


def test_format_timestamp_always_has_milliseconds_and_an_explicit_offset():
    assert format_timestamp(T0) == "2026-11-22T21:40:57.123+00:00"
    assert format_timestamp(T0.replace(microsecond=0)) == "2026-11-22T21:40:57.000+00:00"
    assert format_timestamp(T0.replace(microsecond=999)) == "2026-11-22T21:40:57.000+00:00"
    assert format_timestamp(datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00.000+00:00"
    minus5 = timezone(timedelta(hours=-5))
    assert format_timestamp(datetime(2026, 11, 22, 16, 40, 57, 123000, tzinfo=minus5)) == (
        "2026-11-22T21:40:57.123+00:00")


@pytest.mark.parametrize("text", [
    "2026-11-22T21:40:57.123+00:00",
    "2026-11-22T21:40:57.123Z",
    "2026-11-22T22:40:57.123+01:00",
    "2026-11-22T16:40:57.123-05:00",
    "2026-11-22T16:40:57.123-0500",
    "2026-11-22T21:40:57.123456789+00:00",
    "2026-11-22T21:40:57.1234+00:00",
])
def test_parse_timestamp_reads_iso_8601_with_a_zone_as_utc(text):
    value = parse_timestamp(text)
    assert value.tzinfo == UTC
    assert value.replace(microsecond=value.microsecond // 1000 * 1000) == T0.replace(
        microsecond=123000)
    assert format_timestamp(value) == "2026-11-22T21:40:57.123+00:00"


def test_parse_timestamp_without_fraction():
    assert parse_timestamp("2026-11-22T21:40:57+00:00") == T0.replace(microsecond=0)


@pytest.mark.parametrize("text", [
    "2026-11-22T21:40:57.123",  # no zone
    "2026-11-22 21:40:57.123+00:00x",
    "2026-13-22T21:40:57.123+00:00",
    "2026-11-22T21:40:57.123+25:00",
    "yesterday",
    "",
])
def test_parse_timestamp_refuses_what_is_not_a_zoned_iso_timestamp(text):
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(text)


# ---------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------

TS = "2026-11-22T21:40:57.123+00:00"


def test_score_payload_with_a_score():
    out = one("share", FOUR)
    assert score_payload(out, user_id="sub-1", timestamp=TS) == {
        "userId": "sub-1",
        "timestamp": TS,
        "scoreGiven": 75.0,
        "scoreMaximum": 100.0,
        "comment": "Mastered 3 of 4 standards: R.1, R.2 and W.1. Not yet: W.2 (no evidence).",
        "activityProgress": "InProgress",
        "gradingProgress": "FullyGraded",
    }


def test_score_payload_without_a_score_leaves_out_score_given_and_maximum():
    out = one("share", [], progress=Progress(0, 4, False))
    assert score_payload(out, user_id="sub-1", timestamp=TS) == {
        "userId": "sub-1",
        "timestamp": TS,
        "comment": NO_STANDARDS_COMMENT,
        "activityProgress": "Initialized",
        "gradingProgress": "Pending",
    }


def test_score_payload_is_json_serialisable_and_per_standard_uses_the_scale():
    [column, *_] = run("per_standard", FOUR)
    payload = score_payload(column, user_id="sub-1", timestamp=TS)
    assert json.loads(json.dumps(payload)) == payload
    assert payload["scoreGiven"] == 3 and payload["scoreMaximum"] == 4


@pytest.mark.parametrize("timestamp", [
    "2026-11-22T21:40:57Z", "2026-11-22T21:40:57.123Z", "2026-11-22T22:40:57.123+01:00",
    "not a time",
])
def test_score_payload_refuses_timestamps_not_made_by_format_timestamp(timestamp):
    with pytest.raises(ValueError, match="timestamp .* 2026-11-22T21:40:57.123\\+00:00"):
        score_payload(one("share", FOUR), user_id="sub-1", timestamp=timestamp)


def test_score_payload_refuses_bad_fields():
    good = one("share", FOUR)
    with pytest.raises(ValueError, match="user_id"):
        score_payload(good, user_id="", timestamp=TS)
    bad_progress = ScoreOut(None, 1.0, 4.0, "", "Done", "FullyGraded")
    with pytest.raises(ValueError, match="activity_progress 'Done'"):
        score_payload(bad_progress, user_id="u", timestamp=TS)
    negative = ScoreOut(None, -1.0, 4.0, "", "Completed", "FullyGraded")
    with pytest.raises(ValueError, match="score_given"):
        score_payload(negative, user_id="u", timestamp=TS)
    no_maximum = ScoreOut(None, 1.0, 0.0, "", "Completed", "FullyGraded")
    with pytest.raises(ValueError, match="score_maximum"):
        score_payload(no_maximum, user_id="u", timestamp=TS)


def test_same_score_ignores_user_and_timestamp_only():
    out = one("share", FOUR)
    first = score_payload(out, user_id="sub-1", timestamp=TS)
    later = score_payload(out, user_id="sub-1", timestamp="2026-11-23T08:00:00.000+00:00")
    assert same_score(first, later)
    assert same_score(json.loads(json.dumps(first)), later)  # as stored in a JSON column
    assert not same_score(None, later)

    changed = dict(first, comment="Mastered 4 of 4 standards.")
    assert not same_score(changed, later)
    assert not same_score(dict(first, scoreGiven=100.0), later)
    assert not same_score(dict(first, activityProgress="Completed"), later)
    assert same_score(dict(first, scoreGiven=75), later)  # 75 and 75.0 show the same


def test_same_score_between_a_score_and_no_score():
    scored = score_payload(one("share", FOUR), user_id="u", timestamp=TS)
    pending = score_payload(one("share", [Standing(1, "R.1", 1, power=True)],
                                power_incomplete=True),
                            user_id="u", timestamp=TS)
    assert not same_score(scored, pending)
    # An explicit null is the same as a missing score; a maximum alone shows nothing.
    assert same_score(dict(pending, scoreGiven=None, scoreMaximum=100.0), pending)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

codes = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ.-0123456789", min_size=1, max_size=40)
values = st.none() | st.floats(min_value=0, max_value=4, allow_nan=False)
maxima = st.floats(min_value=0.01, max_value=1000, allow_nan=False)
scales = st.sampled_from([(3.0, 4.0), (2.0, 3.0), (4.0, 5.0), (1.0, 1.0), (0.5, 10.0)])


@st.composite
def standings_lists(draw, min_size=0, max_size=40):
    entries = draw(st.lists(st.tuples(codes, values, st.booleans()), min_size=min_size,
                            max_size=max_size))
    return [Standing(i, code, value, power) for i, (code, value, power) in enumerate(entries)]


@settings(max_examples=300, deadline=None)
@given(standings=standings_lists(), rule=st.sampled_from(["share", "average"]),
       maximum=maxima, scale=scales, power_incomplete=st.booleans())
def test_share_and_average_stay_within_zero_and_the_maximum(standings, rule, maximum, scale,
                                                            power_incomplete):
    mastery_points, scale_max = scale
    [out] = run(rule, standings, mastery_points=mastery_points, scale_max=scale_max,
                score_maximum=maximum, power_incomplete=power_incomplete)
    assert len(out.comment) <= COMMENT_LIMIT
    assert out.score_maximum == maximum
    if out.score_given is None:
        assert out.grading_progress == "Pending"
        assert not standings or power_incomplete
    else:
        assert out.grading_progress == "FullyGraded"
        assert 0 <= out.score_given <= maximum
        assert abs(out.score_given * 100 - round(out.score_given * 100)) < 1e-6 or (
            out.score_given == maximum)


@settings(max_examples=300, deadline=None)
@given(standings=standings_lists(min_size=1), data=st.data(), maximum=maxima,
       rule=st.sampled_from(["share", "average"]))
def test_raising_one_standards_value_never_lowers_the_score(standings, data, maximum, rule):
    index = data.draw(st.integers(0, len(standings) - 1))
    before = standings[index].value
    higher = data.draw(st.floats(min_value=0 if before is None else before, max_value=4,
                                 allow_nan=False))
    raised = list(standings)
    raised[index] = Standing(raised[index].standard_id, raised[index].code, higher)
    lower = one(rule, standings, score_maximum=maximum).score_given
    upper = one(rule, raised, score_maximum=maximum).score_given
    assert lower is not None and upper is not None
    assert upper >= lower


@settings(max_examples=200, deadline=None)
@given(standings=standings_lists(), scale=scales)
def test_per_standard_sends_exactly_the_standards_with_evidence(standings, scale):
    mastery_points, scale_max = scale
    out = run("per_standard", standings, mastery_points=mastery_points, scale_max=scale_max,
              power_incomplete=True)
    assert [o.standard_id for o in out] == [s.standard_id for s in standings
                                            if s.value is not None]
    for o in out:
        assert 0 <= o.score_given <= scale_max == o.score_maximum
        assert o.grading_progress == "FullyGraded"
        assert len(o.comment) <= COMMENT_LIMIT


aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                               timezone(timedelta(hours=-8))]),
)


@settings(max_examples=200, deadline=None)
@given(start=aware_datetimes,
       steps=st.lists(st.integers(min_value=-3_600_000_000, max_value=3_600_000_000)
                      | st.integers(min_value=-2_000_000, max_value=2_000_000),
                      min_size=1, max_size=50),
       first_last=st.none() | aware_datetimes)
def test_next_timestamp_is_strictly_increasing_and_a_second_apart(start, steps, first_last):
    """``now`` wanders randomly, backwards included (microsecond steps up to an hour)."""
    now, last = start, first_last
    for step in steps:
        now = now + timedelta(microseconds=step)
        ts = next_timestamp(now, last)
        assert ts.tzinfo == UTC
        assert ts.microsecond % 1000 == 0
        assert ts >= now - timedelta(milliseconds=1)
        if last is not None:
            assert ts - last >= timedelta(seconds=1)
            # Moodle compares whole seconds: the new one must be a later second.
            assert int(ts.timestamp()) > int(last.timestamp())
        assert parse_timestamp(format_timestamp(ts)) == ts
        last = ts


@settings(max_examples=300, deadline=None)
@given(value=st.datetimes(timezones=st.just(UTC)))
def test_format_and_parse_round_trip(value):
    text = format_timestamp(value)
    assert len(text) == len("2026-11-22T21:40:57.123+00:00")
    parsed = parse_timestamp(text)
    assert parsed == value.replace(microsecond=value.microsecond // 1000 * 1000)
    assert format_timestamp(parsed) == text
