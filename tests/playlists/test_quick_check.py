"""Quick checks (pure): the text format, JSON storage, grading and scores on the scale."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lti_tool.playlists.quick_check import (
    CHOICES_MAX,
    PROMPT_MAX,
    QUESTIONS_MAX,
    Question,
    QuestionResult,
    QuickCheckError,
    QuickCheckResult,
    describe,
    grade,
    parse_number,
    parse_questions_text,
    questions_from_json,
    questions_to_json,
    questions_to_text,
    score_on_scale,
)

SAMPLE = """\
Q: What is 3 × 4?
= 12
Why: 3 groups of 4 make 12.

Q: About how long is a pencil, in cm?
= 18 ± 2

Q: Which number is prime?
- 4
* 7
- 9
"""

TIMES = Question("What is 3 × 4?", "numeric", (), 12.0, 0.0, "3 groups of 4 make 12.")
PENCIL = Question("About how long is a pencil, in cm?", "numeric", (), 18.0, 2.0)
PRIME = Question("Which number is prime?", "choice", ("4", "7", "9"), 1.0)


def errors_of(text: str) -> list[str]:
    with pytest.raises(QuickCheckError) as caught:
        parse_questions_text(text)
    assert caught.value.errors
    return caught.value.errors


def json_errors(data) -> list[str]:
    with pytest.raises(QuickCheckError) as caught:
        questions_from_json(data)
    assert caught.value.errors
    return caught.value.errors


# ---------------------------------------------------------------- the text format


def test_parse_sample():
    assert parse_questions_text(SAMPLE) == [TIMES, PENCIL, PRIME]


def test_to_text_is_canonical_and_round_trips():
    text = questions_to_text([TIMES, PENCIL, PRIME])
    assert text == SAMPLE.rstrip("\n")
    assert parse_questions_text(text) == [TIMES, PENCIL, PRIME]


def test_lenient_spellings():
    text = ("\r\n  q:   Half of 19?  \r\n=9,5 +/- 0.25\r\nwhy: 19 / 2\r\n"
            "Q: Pick\n*yes\n-no\n")
    assert parse_questions_text(text) == [
        Question("Half of 19?", "numeric", (), 9.5, 0.25, "19 / 2"),
        Question("Pick", "choice", ("yes", "no"), 0.0),
    ]


def test_lines_of_a_question_may_come_in_any_order():
    text = "Q: Pick\nWhy: because\n- a\n* b"
    assert parse_questions_text(text) == [Question("Pick", "choice", ("a", "b"), 1.0, 0.0,
                                                   "because")]


def test_choice_text_may_start_with_a_marker():
    question = Question("Which is negative?", "choice", ("-5", "*5"), 0.0)
    text = questions_to_text([question])
    assert text == "Q: Which is negative?\n* -5\n- *5"
    assert parse_questions_text(text) == [question]


def test_fraction_and_exponent_answers():
    assert parse_questions_text("Q: a\n= 3/4\nQ: b\n= -1e3 ± 1/2") == [
        Question("a", "numeric", (), 0.75), Question("b", "numeric", (), -1000.0, 0.5)]


def test_text_before_the_first_question_is_reported_once():
    assert errors_of("Intro\nmore intro\nQ: a\n= 1") == [
        'Line 1: "Intro" comes before the first question; start each question with a line '
        "such as Q: What is 3 × 4?"]


def test_empty_text():
    assert errors_of("  \n\n") == [
        "There are no questions; start each question with a line such as Q: What is 3 × 4?"]


def test_no_correct_choice_reports_the_question_line():
    assert errors_of("Q: a\n= 1\n\nQ: b\n- x\n- y") == [
        "Line 4: a choice question needs exactly one correct choice marked with *"]


def test_two_correct_choices():
    assert errors_of("Q: b\n* x\n- y\n* z") == [
        "Line 1: a choice question needs exactly one correct choice marked with * "
        "(lines 2 and 4 are marked)"]


def test_question_without_answer():
    assert errors_of("Q: a\n= 1\nQ: b\nWhy: no answer here") == [
        "Question 2 (line 3) has no answer: add choices (- / *) or a number (= 12)"]


def test_choice_count_limits():
    too_many = "Q: many\n* c0\n" + "".join(f"- c{i}\n" for i in range(1, CHOICES_MAX + 1))
    assert errors_of("Q: one\n* only") == ["Line 1: question 1 has 1 choice; add at least 2"]
    assert errors_of(too_many) == [
        f"Line 1: question 1 has {CHOICES_MAX + 1} choices; remove some to keep at most "
        f"{CHOICES_MAX}"]


def test_too_many_questions():
    text = "\n".join(f"Q: q{i}\n= {i}" for i in range(QUESTIONS_MAX + 1))
    assert errors_of(text) == [
        f"There are {QUESTIONS_MAX + 1} questions; a quick check can have at most "
        f"{QUESTIONS_MAX}, so split it into two quick checks"]
    assert len(parse_questions_text("\n".join(f"Q: q{i}\n= {i}"
                                              for i in range(QUESTIONS_MAX)))) == QUESTIONS_MAX


def test_prompt_length():
    assert errors_of("Q:\n= 1") == ["Line 1: the question is empty; write the question after Q:"]
    assert errors_of(f"Q: {'x' * (PROMPT_MAX + 1)}\n= 1") == [
        f"Line 1: the question is {PROMPT_MAX + 1:,} characters long; shorten it to at most "
        f"{PROMPT_MAX:,}"]
    assert parse_questions_text(f"Q: {'x' * PROMPT_MAX}\n= 1")[0].prompt == "x" * PROMPT_MAX


def test_bad_numbers_and_tolerances():
    assert errors_of("Q: a\n= nine") == [
        'Line 2: "nine" is not a number; write the answer like = 12, = 2.5 or = 9 ± 0.5']
    assert errors_of("Q: a\n= 1e999") == [
        'Line 2: "1e999" is not a number; write the answer like = 12, = 2.5 or = 9 ± 0.5']
    assert errors_of("Q: a\n= 9 ± -1") == [
        'Line 2: the tolerance "-1" must be a number of 0 or more, as in = 9 ± 0.5']
    assert errors_of("Q: a\n= 9 +/- lots") == [
        'Line 2: the tolerance "lots" must be a number of 0 or more, as in = 9 ± 0.5']


def test_mixing_choices_and_a_number():
    assert errors_of("Q: a\n- x\n* y\n= 3") == [
        "Line 4: question 1 mixes choices with a number answer; use either choices (- / *) "
        "or one number (= 12), not both"]
    assert errors_of("Q: a\n= 3\n* y") == [
        "Line 3: question 1 mixes choices with a number answer (= on line 2); use either "
        "choices (- / *) or one number (= 12), not both"]


def test_repeated_lines():
    assert errors_of("Q: a\n= 3\n= 4") == [
        "Line 3: question 1 already has an answer (line 2); keep one = line"]
    assert errors_of("Q: a\n= 3\nWhy: x\nWhy: y") == [
        "Line 4: question 1 already has an explanation (line 3); keep one Why: line"]
    assert errors_of("Q: a\n- x\n* x") == [
        'Line 3: the choice "x" is already on line 2; make each choice different']


def test_empty_choice_and_unknown_line():
    assert errors_of("Q: a\n-\n* b\n- c") == [
        "Line 2: the choice is empty; write its text after the -"]
    assert errors_of("Q: a\n* b\n- c\n1. what") == [
        'Line 4: "1. what" is not part of a question; start the line with Q: (a question), '
        "- or * (a choice), = (a number answer) or Why: (an explanation)"]


def test_control_characters_are_rejected():
    assert errors_of("Q: a\x0bb\n= 1") == [
        "Line 1: the question contains a line break or control character; keep it on one "
        "line"]


def test_errors_are_collected_across_questions():
    errors = errors_of("Q: a\n= x\nQ: b\n- 1\n- 2\nQ:\n= 3")
    assert errors == [  # in line order
        'Line 2: "x" is not a number; write the answer like = 12, = 2.5 or = 9 ± 0.5',
        "Line 3: a choice question needs exactly one correct choice marked with *",
        "Line 6: the question is empty; write the question after Q:",
    ]


# ---------------------------------------------------------------- JSON


def test_json_round_trip_and_shape():
    data = questions_to_json([TIMES, PENCIL, PRIME])
    assert data == [
        {"prompt": "What is 3 × 4?", "kind": "numeric", "answer": 12.0, "tolerance": 0.0,
         "explanation": "3 groups of 4 make 12."},
        {"prompt": "About how long is a pencil, in cm?", "kind": "numeric", "answer": 18.0,
         "tolerance": 2.0, "explanation": ""},
        {"prompt": "Which number is prime?", "kind": "choice", "choices": ["4", "7", "9"],
         "answer": 1, "explanation": ""},
    ]
    assert questions_from_json(data) == [TIMES, PENCIL, PRIME]


def test_json_trims_and_defaults():
    assert questions_from_json([{"prompt": " a ", "kind": "numeric", "answer": 2}]) == [
        Question("a", "numeric", (), 2.0)]
    assert questions_from_json([{"prompt": "a", "kind": "numeric", "answer": 2,
                                 "explanation": None, "choices": []}]) == [
        Question("a", "numeric", (), 2.0)]
    assert json_errors([{"kind": "numeric", "answer": 1, "explanation": 3}]) == [
        "Question 1: the question is missing",
        "Question 1: explanation must be text, not a number",
    ]


def test_json_errors():
    assert json_errors("nope") == ["The questions must be a list, not text"]
    assert json_errors([]) == ["There are no questions; add at least one"]
    assert json_errors([{"prompt": "a", "kind": "numeric"} for _ in range(31)]) == [
        "There are 31 questions; a quick check can have at most 30, so split it into two "
        "quick checks"]
    assert json_errors([
        3,
        {"prompt": "a", "kind": "essay", "answer": 1},
        {"prompt": "a", "kind": "numeric", "answer": float("inf"), "tolerance": -1},
        {"prompt": "", "kind": "choice", "choices": ["x", "x", 5], "answer": 7, "why": 1},
        {"prompt": "a\nb", "kind": "choice", "choices": "x,y", "answer": 0},
        {"prompt": "a", "kind": "numeric", "answer": True, "choices": ["x"]},
        {"prompt": "a", "kind": "choice", "choices": ["x", "y"], "answer": 0, "tolerance": 1},
    ]) == [
        "Question 1: must be an object, not a number",
        "Question 2: kind must be 'choice' or 'numeric', not 'essay'",
        "Question 3: answer must be a finite number, not inf",
        "Question 3: tolerance must be a number of 0 or more, not -1",
        "Question 4: unknown field 'why'; allowed are answer, choices, explanation, kind, "
        "prompt, tolerance",
        "Question 4: the question is empty",
        'Question 4: the choice "x" appears twice; make each choice different',
        "Question 4: choice 3 must be text, not a number",
        "Question 4: answer must be the index (0, 1, …) of the correct choice, not 7",
        "Question 5: the question contains a line break or control character; keep it on one "
        "line",
        "Question 5: choices must be a list of texts, not text",
        "Question 6: a numeric question cannot have choices; remove them",
        "Question 6: answer must be a finite number, not True",
        "Question 7: a choice question has no tolerance; remove it",
    ]


def test_json_huge_integer_is_an_error_not_a_crash():
    assert json_errors([{"prompt": "a", "kind": "numeric", "answer": 10 ** 400}]) == [
        f"Question 1: answer must be a finite number, not {str(10 ** 400)[:39]}…"]


# ---------------------------------------------------------------- numbers and grading


@pytest.mark.parametrize(("text", "value"), [
    ("9", 9.0), (" 9.0 ", 9.0), ("+9", 9.0), ("\u22129", -9.0), ("9,5", 9.5),
    ("0,125", 0.125), (",5", 0.5), ("3/4", 0.75), ("-3 / 4", -0.75), ("1e3", 1000.0),
    (".5", 0.5), ("5.", 5.0), ("1,000", 1000.0), ("12,500.5", 12500.5),
    ("1,000,000", 1e6), ("\u0663", 3.0),  # any script's digits, as float() reads them
])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", [
    "", "  ", "nine", "9 cm", "3/0", "1_000", "nan", "inf", "1e999", "1,2,3", "1.000,5",
    "--3", "1 1/2", "0x10",
])
def test_parse_number_rejects(text):
    assert parse_number(text) is None


def test_grade_worked_example():
    result = grade([TIMES, PENCIL, PRIME], {0: " 12.0 ", 1: "15,5", 2: "2"})
    assert result == QuickCheckResult(
        results=(
            QuestionResult(1, True, "12.0", "12", "3 groups of 4 make 12."),
            QuestionResult(2, False, "15,5", "18 ± 2", ""),
            QuestionResult(3, False, "9", "7", ""),
        ),
        correct=1, total=3, missing=(),
    )
    assert result.fraction == pytest.approx(1 / 3)


def test_grade_missing_and_unreadable_answers():
    result = grade([TIMES, PENCIL, PRIME], {0: "twelve", 2: "  "})
    assert [r.correct for r in result.results] == [False, False, False]
    assert result.missing == (2, 3)
    assert result.results[0].given == "twelve"
    assert result.results[1].given is None
    assert result.correct == 0 and result.fraction == 0.0


def test_grade_choice_values():
    assert grade([PRIME], {0: "1"}).correct == 1
    assert grade([PRIME], {0: " 1 "}).correct == 1
    for bad in ("7", "-1", "1.0", "x", "١"):
        result = grade([PRIME], {0: bad})
        assert result.correct == 0 and result.results[0].given == bad
    assert grade([PRIME], {0: "0"}).results[0].given == "4"


def test_grade_tolerance_edges_and_float_noise():
    within = Question("p", "numeric", (), 18.0, 2.0)
    assert grade([within], {0: "16"}).correct == 1
    assert grade([within], {0: "20"}).correct == 1
    assert grade([within], {0: "20.001"}).correct == 0
    noisy = Question("p", "numeric", (), 0.3)
    assert grade([noisy], {0: repr(0.1 + 0.2)}).correct == 1
    third = Question("p", "numeric", (), 1 / 3)
    assert grade([third], {0: "1/3"}).correct == 1
    assert grade([third], {0: "0.333"}).correct == 0
    assert grade([third], {0: ""}).results[0].expected == "0.333333333333"


def test_grade_needs_questions():
    with pytest.raises(ValueError):
        grade([], {})


# ---------------------------------------------------------------- scale and sentence


@pytest.mark.parametrize(("correct", "total", "expected"), [
    (4, 4, 4.0), (3, 4, 3.0), (2, 3, 2.0), (1, 5, 0.0), (3, 3, 4.0), (0, 4, 0.0),
    (1, 4, 1.0), (7, 10, 2.0),
])
def test_score_on_scale_examples(correct, total, expected):
    assert score_on_scale(correct, total, [1, 2, 3, 4]) == expected


def test_score_on_scale_uneven_levels_and_float_guard():
    assert score_on_scale(5, 6, [0.5, 1.5, 2.5, 3]) == 2.5
    assert score_on_scale(2, 3, [0.1, 0.2, 0.3]) == 0.2  # 2/3 × 0.3 is 0.19999… in floats
    assert score_on_scale(1, 1, [0, 1, 2]) == 2.0
    assert score_on_scale(1, 3, [4, 1, 3, 2]) == 1.0  # levels in any order


@pytest.mark.parametrize(("args", "message"), [
    ((0, 0, [1, 2]), "total must be at least 1"),
    ((5, 4, [1, 2]), "correct (5) must be between 0 and total (4)"),
    ((-1, 4, [1, 2]), "correct (-1) must be between 0 and total (4)"),
    ((1, 4, []), "the scale has no levels"),
    ((1, 4, [1, math.inf]), "must be finite"),
    ((1, 4, [0]), "top level must be above 0"),
])
def test_score_on_scale_rejects(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score_on_scale(*args)


def test_describe():
    result = grade([TIMES, PENCIL, PRIME, PRIME], {0: "12", 1: "18", 3: "1"})
    assert describe(result, 3.0, "Mastery") == (
        "You answered 3 of 4 correctly (75%): Mastery (3 points).")
    two_thirds = grade([TIMES, PENCIL, PRIME], {0: "12", 1: "18"})
    assert describe(two_thirds, 2.0, "Developing") == (
        "You answered 2 of 3 correctly (66%): Developing (2 points).")
    none = grade([TIMES], {})
    assert describe(none, 0.0, None) == (
        "You answered 0 of 1 correctly (0%): below the lowest level (0 points).")
    one = grade([TIMES], {0: "12"})
    assert describe(one, 1.0, "Beginning") == (
        "You answered 1 of 1 correctly (100%): Beginning (1 point).")
    assert describe(one, 2.5, None) == "You answered 1 of 1 correctly (100%): 2.5 points."


# ---------------------------------------------------------------- properties

_line_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
).map(str.strip).filter(bool)
_numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def questions(draw) -> Question:
    prompt = draw(_line_text)
    explanation = draw(st.one_of(st.just(""), _line_text))
    if draw(st.booleans()):
        choices = draw(st.lists(_line_text, min_size=2, max_size=CHOICES_MAX, unique=True))
        answer = draw(st.integers(0, len(choices) - 1))
        return Question(prompt, "choice", tuple(choices), float(answer), 0.0, explanation)
    tolerance = draw(st.one_of(st.just(0.0), _numbers.map(abs)))
    return Question(prompt, "numeric", (), draw(_numbers), tolerance, explanation)


@settings(max_examples=60, deadline=None)
@given(st.lists(questions(), min_size=1, max_size=5))
def test_text_and_json_round_trips(qs):
    assert parse_questions_text(questions_to_text(qs)) == qs
    assert questions_from_json(questions_to_json(qs)) == qs


@settings(max_examples=50, deadline=None)
@given(st.lists(questions(), min_size=1, max_size=5))
def test_expected_answers_grade_as_correct(qs):
    answers = {}
    for index, q in enumerate(qs):
        answers[index] = str(int(q.answer)) if q.kind == "choice" else repr(q.answer)
    result = grade(qs, answers)
    assert result.correct == result.total == len(qs) and result.missing == ()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_parser_raises_only_its_own_error(text):
    try:
        parse_questions_text(text)
    except QuickCheckError as exc:
        assert all(isinstance(e, str) and e for e in exc.errors)


_levels = st.lists(st.floats(0.1, 10, allow_nan=False).map(lambda x: round(x, 2)),
                   min_size=1, max_size=6, unique=True)


@settings(max_examples=80, deadline=None)
@given(_levels, st.integers(1, 40), st.data())
def test_score_is_monotone_and_a_level(levels, total, data):
    scores = [score_on_scale(c, total, levels) for c in range(total + 1)]
    assert scores == sorted(scores)
    assert all(s == 0.0 or s in levels for s in scores)
    assert scores[-1] == max(levels)  # all correct always reaches the top level
    correct = data.draw(st.integers(0, total))
    assume(scores[correct] > 0)
    assert scores[correct] <= correct / total * max(levels) + 1e-9
