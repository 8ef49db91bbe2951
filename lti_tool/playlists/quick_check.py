"""Quick checks: short, automatically scored question sets aligned to one standard (pure).

No Flask, no database, no I/O. A teacher types the questions in a textarea in a small
plain-text format; the same questions are stored as JSON; a student's answers are graded
here and turned into a score on the course's proficiency scale.

The text format
---------------
::

    Q: What is 3 × 4?
    = 12
    Why: 3 groups of 4 make 12.

    Q: About how long is a pencil, in cm?
    = 18 ± 2

    Q: Which number is prime?
    - 4
    * 7
    - 9

* ``Q: prompt`` starts a question (``Q:`` and ``Why:`` are case-insensitive).
* ``- text`` is a wrong choice, ``* text`` the correct one (exactly one ``*``).
* ``= number`` is a numeric answer, optionally ``= 9 ± 0.5`` or ``= 9 +/- 0.5``. Numbers
  are written as ``12``, ``-2.5``, ``2,5`` (decimal comma), ``3/4`` or ``1e6``.
* ``Why: explanation`` (optional) is shown to the student after grading.
* Blank lines are ignored; a question's lines may come in any order.

Every problem is reported at once (up to :data:`MAX_ERRORS`), in line order, each with its
line number. :func:`questions_to_text` writes the canonical form, and for every valid list
of questions ``parse_questions_text(questions_to_text(qs)) == qs``; valid means what the
parser or :func:`questions_from_json` returns: text fields trimmed, on one line, within
the limits.

Students' numeric answers
-------------------------
Accepted forms: ``9``, `` 9.0 ``, ``+9``, ``−9`` (Unicode minus), ``9,5`` (decimal comma,
= 9.5), ``3/4``, ``1e3``, and thousands separators: ``1,000``, ``12,500.5``,
``1,000,000``. A comma followed by exactly three digits is a thousands separator unless
the part before it is 0 (``0,125`` is 0.125); any other single comma is a decimal comma.
Anything else (units, words, ``3/0``) is simply wrong, never an error. An answer is
correct when it is within ``tolerance`` of the expected number; a relative slack of
1e-9 absorbs floating-point noise (so 0.1 + 0.2 style answers still match).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHOICE_MAX",
    "CHOICES_MAX",
    "CHOICES_MIN",
    "EXPLANATION_MAX",
    "MAX_ERRORS",
    "ProblemList",
    "PROMPT_MAX",
    "QUESTIONS_MAX",
    "TEXT_MAX",
    "Question",
    "QuestionResult",
    "QuickCheckError",
    "QuickCheckResult",
    "describe",
    "grade",
    "parse_number",
    "parse_questions_text",
    "questions_from_json",
    "questions_to_json",
    "questions_to_text",
    "score_on_scale",
]

QUESTIONS_MAX = 30
CHOICES_MIN = 2
CHOICES_MAX = 10
PROMPT_MAX = 1000
CHOICE_MAX = 500
EXPLANATION_MAX = 2000
TEXT_MAX = 100_000  # the whole textarea; 30 questions of the maximum size fit easily
MAX_ERRORS = 50

KINDS = ("choice", "numeric")
_JSON_KEYS = frozenset({"prompt", "kind", "choices", "answer", "tolerance", "explanation"})

# Control characters other than tab (C0, DEL, C1), and lone surrogates, which no database
# or browser can keep.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_QUESTION_LINE = re.compile(r"q:", re.IGNORECASE)
_WHY_LINE = re.compile(r"why:", re.IGNORECASE)
_PLUS_MINUS = re.compile(r"\s*(?:±|\+/-)\s*")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")
_THOUSANDS = re.compile(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_FRACTION = re.compile(r"([+-]?\d+)\s*/\s*(\d+)")
_REL_SLACK = 1e-9


class ProblemList(ValueError):
    """Input that cannot be used; ``errors`` lists what to fix, one message each
    (at most MAX_ERRORS, then how many more)."""

    def __init__(self, errors: list[str]) -> None:
        shown = list(errors[:MAX_ERRORS])
        if len(errors) > MAX_ERRORS:
            shown.append(f"…and {len(errors) - MAX_ERRORS} more")
        self.errors: list[str] = shown
        super().__init__("\n".join(shown))


class QuickCheckError(ProblemList):
    """The questions cannot be saved."""


@dataclass(frozen=True)
class Question:
    """One question. For ``kind == "choice"`` ``answer`` is the index of the correct choice
    (a whole number stored as float); for ``"numeric"`` it is the number itself."""

    prompt: str
    kind: str
    choices: tuple[str, ...]
    answer: float
    tolerance: float = 0.0
    explanation: str = ""


@dataclass(frozen=True)
class QuestionResult:
    number: int  # 1-based
    correct: bool
    given: str | None  # the chosen choice's text, or the student's text; None if unanswered
    expected: str
    explanation: str


@dataclass(frozen=True)
class QuickCheckResult:
    results: tuple[QuestionResult, ...]
    correct: int
    total: int
    missing: tuple[int, ...]  # 1-based numbers of unanswered questions

    @property
    def fraction(self) -> float:
        return self.correct / self.total if self.total else 0.0


# ---------------------------------------------------------------- numbers


def parse_number(text: str) -> float | None:
    """A number as a person types it (see the module docstring), or None.

    Returns None for anything unparseable and for results that are not finite.
    """
    value = text.strip().replace("\u2212", "-")  # Unicode minus sign, common on phones
    if not value:
        return None
    try:
        if _DECIMAL.fullmatch(value):
            number = float(value)
        elif _THOUSANDS.fullmatch(value):
            number = float(value.replace(",", ""))
        elif _DECIMAL_COMMA.fullmatch(value):
            number = float(value.replace(",", "."))
        elif match := _FRACTION.fullmatch(value):
            denominator = int(match.group(2))
            if denominator == 0:
                return None
            number = int(match.group(1)) / denominator
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _format_number(value: float) -> str:
    """Exact text for the authoring format: parses back to the same float."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _display_number(value: float) -> str:
    """Short text for students: 12 significant digits, no trailing zeros."""
    shown = f"{value:.12g}"
    return "0" if shown == "-0" else shown


def _expected_number(question: Question) -> str:
    shown = _display_number(question.answer)
    if question.tolerance > 0:
        shown += f" ± {_display_number(question.tolerance)}"
    return shown


# ---------------------------------------------------------------- shared checks


def _preview(value: str, limit: int = 40) -> str:
    shown = _BAD_CHARS.sub("?", " ".join(value.split()))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _text_problem(value: str, what: str, limit: int, *, required: bool) -> str | None:
    """What is wrong with an already trimmed text field, or None."""
    if not value:
        return f"the {what} is empty" if required else None
    if len(value) > limit:
        return f"the {what} is {len(value):,} characters long; shorten it to at most {limit:,}"
    if _BAD_CHARS.search(value):
        return f"the {what} contains a line break or control character; keep it on one line"
    return None


def _count_problems(subject: str, count: int) -> list[str]:
    if count < CHOICES_MIN:
        return [f"{subject} has {count} choice{'s' if count != 1 else ''}; add at least "
                f"{CHOICES_MIN}"]
    if count > CHOICES_MAX:
        return [f"{subject} has {count} choices; remove some to keep at most {CHOICES_MAX}"]
    return []


# ---------------------------------------------------------------- text format


@dataclass
class _Draft:
    line: int
    number: int
    prompt: str
    choices: list[tuple[int, str, bool]]  # (line, text, correct)
    answer_line: int | None = None
    answer: float | None = None
    tolerance: float = 0.0
    explanation: str = ""
    explanation_line: int | None = None
    broken: bool = False  # one of its lines is already reported: skip follow-ups


def _too_many(count: int) -> str:
    return (f"There are {count} questions; a quick check can have at most {QUESTIONS_MAX}, "
            "so split it into two quick checks")


def parse_questions_text(text: str) -> list[Question]:
    """Parse the teacher's text (format in the module docstring) into questions.

    Raises :class:`QuickCheckError` listing every problem, each with its line number.
    """
    if len(text) > TEXT_MAX:
        raise QuickCheckError([f"The text is {len(text):,} characters long; at most "
                               f"{TEXT_MAX:,} are allowed"])
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    errors: list[tuple[int, str]] = []  # (line, message): reported in line order
    drafts: list[_Draft] = []
    reported_preamble = False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"Line {number}"
        if _QUESTION_LINE.match(line):
            prompt = line[2:].strip()
            drafts.append(_Draft(number, len(drafts) + 1, prompt, []))
            problem = _text_problem(prompt, "question", PROMPT_MAX, required=True)
            if problem == "the question is empty":
                problem += "; write the question after Q:"
            if problem:
                errors.append((number, f"{where}: {problem}"))
            continue
        if not drafts:
            if not reported_preamble:
                errors.append((number, f'{where}: "{_preview(line)}" comes before the first '
                               "question; start each question with a line such as "
                               "Q: What is 3 × 4?"))
                reported_preamble = True
            continue
        draft = drafts[-1]
        if line[0] in "-*":
            _choice_line(draft, line, where, number, errors)
        elif line[0] == "=":
            _number_line(draft, line, where, number, errors)
        elif _WHY_LINE.match(line):
            explanation = line[4:].strip()
            if draft.explanation_line is not None:
                errors.append((number, f"{where}: question {draft.number} already has an "
                               f"explanation (line {draft.explanation_line}); keep one Why: "
                               "line"))
                continue
            draft.explanation_line = number
            draft.explanation = explanation
            problem = _text_problem(explanation, "explanation", EXPLANATION_MAX,
                                    required=False)
            if problem:
                errors.append((number, f"{where}: {problem}"))
        else:
            errors.append((number, f'{where}: "{_preview(line)}" is not part of a question; '
                           "start the line with Q: (a question), - or * (a choice), = (a "
                           "number answer) or Why: (an explanation)"))

    if not drafts and not errors:
        errors.append((0, "There are no questions; start each question with a line such as "
                          "Q: What is 3 × 4?"))
    if len(drafts) > QUESTIONS_MAX:
        errors.append((0, _too_many(len(drafts))))
    questions = [_finish(draft, errors) for draft in drafts]
    if errors:
        errors.sort(key=lambda e: e[0])  # stable: a line's messages keep their order
        raise QuickCheckError([message for _, message in errors])
    return [q for q in questions if q is not None]


def _choice_line(draft: _Draft, line: str, where: str, number: int,
                 errors: list[tuple[int, str]]) -> None:
    choice = line[1:].strip()
    correct = line[0] == "*"
    if draft.answer_line is not None:
        errors.append((number, f"{where}: question {draft.number} mixes choices with a number "
                       f"answer (= on line {draft.answer_line}); use either choices (- / *) "
                       "or one number (= 12), not both"))
        draft.broken = True
        return
    problem = _text_problem(choice, "choice", CHOICE_MAX, required=True)
    if problem:
        if not choice:
            problem += f"; write its text after the {line[0]}"
        errors.append((number, f"{where}: {problem}"))
        draft.broken = True
    else:
        for other_line, other, _ in draft.choices:
            if other == choice:
                errors.append((number, f'{where}: the choice "{_preview(choice)}" is already '
                               f"on line {other_line}; make each choice different"))
                draft.broken = True
                break
    draft.choices.append((number, choice, correct))  # kept, so the * count stays right


def _number_line(draft: _Draft, line: str, where: str, number: int,
                 errors: list[tuple[int, str]]) -> None:
    if draft.choices:
        errors.append((number, f"{where}: question {draft.number} mixes choices with a number "
                       "answer; use either choices (- / *) or one number (= 12), not both"))
        draft.broken = True
        return
    if draft.answer_line is not None:
        errors.append((number, f"{where}: question {draft.number} already has an answer "
                       f"(line {draft.answer_line}); keep one = line"))
        return
    draft.answer_line = number
    parts = _PLUS_MINUS.split(line[1:].strip(), maxsplit=1)
    value = parse_number(parts[0])
    tolerance = parse_number(parts[1]) if len(parts) == 2 else 0.0
    if value is None:
        errors.append((number, f'{where}: "{_preview(parts[0])}" is not a number; write the '
                       "answer like = 12, = 2.5 or = 9 ± 0.5"))
        draft.broken = True
        return
    if tolerance is None or tolerance < 0:
        errors.append((number, f'{where}: the tolerance "{_preview(parts[1])}" must be a '
                       "number of 0 or more, as in = 9 ± 0.5"))
        draft.broken = True
        return
    draft.answer, draft.tolerance = value, tolerance


def _finish(draft: _Draft, errors: list[tuple[int, str]]) -> Question | None:
    where = f"Line {draft.line}"
    if draft.answer is not None and not draft.choices:
        return Question(draft.prompt, "numeric", (), draft.answer, draft.tolerance,
                        draft.explanation)
    if draft.choices:
        before = len(errors)
        marked = [line for line, _, correct in draft.choices if correct]
        if len(marked) != 1:
            detail = "" if not marked else (
                f" (lines {', '.join(map(str, marked[:-1]))} and {marked[-1]} are marked)")
            errors.append((draft.line, f"{where}: a choice question needs exactly one correct "
                                       f"choice marked with *{detail}"))
        errors.extend((draft.line, f"{where}: {p}")
                      for p in _count_problems(f"question {draft.number}", len(draft.choices)))
        if len(errors) > before or draft.broken:
            return None
        texts = tuple(text for _, text, _ in draft.choices)
        answer = next(i for i, (_, _, correct) in enumerate(draft.choices) if correct)
        return Question(draft.prompt, "choice", texts, float(answer), 0.0, draft.explanation)
    if not draft.broken:
        errors.append((draft.line, f"Question {draft.number} (line {draft.line}) has no "
                                   "answer: add choices (- / *) or a number (= 12)"))
    return None


def questions_to_text(questions: Iterable[Question]) -> str:
    """The canonical text of ``questions`` (blank line between questions, no final newline).

    ``questions`` must be valid (as :func:`parse_questions_text` returns them)."""
    blocks = []
    for q in questions:
        lines = [f"Q: {q.prompt}"]
        if q.kind == "choice":
            lines += [f"{'*' if i == q.answer else '-'} {c}" for i, c in enumerate(q.choices)]
        else:
            answer = f"= {_format_number(q.answer)}"
            if q.tolerance > 0:
                answer += f" ± {_format_number(q.tolerance)}"
            lines.append(answer)
        if q.explanation:
            lines.append(f"Why: {q.explanation}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------- JSON storage


def questions_to_json(questions: Iterable[Question]) -> list[dict]:
    """JSON-ready dicts: choice ``{prompt, kind, choices, answer (int), explanation}``,
    numeric ``{prompt, kind, answer, tolerance, explanation}``."""
    out: list[dict] = []
    for q in questions:
        if q.kind == "choice":
            out.append({"prompt": q.prompt, "kind": "choice", "choices": list(q.choices),
                        "answer": int(q.answer), "explanation": q.explanation})
        else:
            out.append({"prompt": q.prompt, "kind": "numeric", "answer": float(q.answer),
                        "tolerance": float(q.tolerance), "explanation": q.explanation})
    return out


def _json_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _json_text(item: Mapping[str, Any], key: str, what: str, limit: int, where: str,
               errors: list[str], *, required: bool) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        errors.append(f"{where}: the {what} is missing" if value is None
                      else f"{where}: {key} must be text, not {_json_type(value)}")
        return ""
    value = value.strip()
    problem = _text_problem(value, what, limit, required=required)
    if problem:
        errors.append(f"{where}: {problem}")
    return value


def questions_from_json(data: Any) -> list[Question]:
    """Questions from stored or imported JSON, checked by the same rules as the text.

    Text fields are trimmed. Raises :class:`QuickCheckError` (messages start with
    ``Question N:``) for anything malformed; never anything else.
    """
    if not isinstance(data, list):
        raise QuickCheckError([f"The questions must be a list, not {_json_type(data)}"])
    if not data:
        raise QuickCheckError(["There are no questions; add at least one"])
    errors: list[str] = []
    if len(data) > QUESTIONS_MAX:
        raise QuickCheckError([_too_many(len(data))])
    questions = []
    for index, item in enumerate(data):
        where = f"Question {index + 1}"
        before = len(errors)
        question = _question_from_json(item, index + 1, where, errors)
        if question is not None and len(errors) == before:
            questions.append(question)
    if errors:
        raise QuickCheckError(errors)
    return questions


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _question_from_json(item: Any, number: int, where: str,
                        errors: list[str]) -> Question | None:
    if not isinstance(item, dict):
        errors.append(f"{where}: must be an object, not {_json_type(item)}")
        return None
    unknown = sorted(_short(k) for k in item if k not in _JSON_KEYS)
    if unknown:
        errors.append(f"{where}: unknown field{'s' if len(unknown) > 1 else ''} "
                      f"{', '.join(unknown)}; allowed are {', '.join(sorted(_JSON_KEYS))}")
    prompt = _json_text(item, "prompt", "question", PROMPT_MAX, where, errors, required=True)
    explanation = _json_text(item, "explanation", "explanation", EXPLANATION_MAX, where,
                             errors, required=False)
    kind = item.get("kind")
    if kind not in KINDS:
        errors.append(f"{where}: kind must be 'choice' or 'numeric', not {_short(kind)}")
        return None
    answer = _json_number(item.get("answer"))
    if kind == "numeric":
        if item.get("choices") not in (None, []):
            errors.append(f"{where}: a numeric question cannot have choices; remove them")
        if answer is None:
            errors.append(f"{where}: answer must be a finite number, not "
                          f"{_short(item.get('answer'))}")
        tolerance = _json_number(item.get("tolerance", 0.0))
        if tolerance is None or tolerance < 0:
            errors.append(f"{where}: tolerance must be a number of 0 or more, not "
                          f"{_short(item.get('tolerance'))}")
        if answer is None or tolerance is None:
            return None
        return Question(prompt, "numeric", (), answer, tolerance, explanation)

    raw_choices = item.get("choices")
    if not isinstance(raw_choices, list):
        errors.append(f"{where}: choices must be a list of texts, not {_json_type(raw_choices)}")
        return None
    choices: list[str] = []
    for i, raw in enumerate(raw_choices):
        if not isinstance(raw, str):
            errors.append(f"{where}: choice {i + 1} must be text, not {_json_type(raw)}")
            continue
        choice = raw.strip()
        problem = _text_problem(choice, "choice", CHOICE_MAX, required=True)
        if problem:
            errors.append(f"{where}: choice {i + 1}: {problem}")
        elif choice in choices:
            errors.append(f'{where}: the choice "{_preview(choice)}" appears twice; make each '
                          "choice different")
        choices.append(choice)
    errors.extend(f"{where}: {p}" for p in _count_problems("the question", len(raw_choices)))
    if answer is None or not answer.is_integer() or not 0 <= answer < len(raw_choices):
        errors.append(f"{where}: answer must be the index (0, 1, …) of the correct choice, "
                      f"not {_short(item.get('answer'))}")
        return None
    if item.get("tolerance", 0) not in (0, 0.0) or isinstance(item.get("tolerance"), bool):
        errors.append(f"{where}: a choice question has no tolerance; remove it")
    return Question(prompt, "choice", tuple(choices), answer, 0.0, explanation)


def _short(value: Any) -> str:
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


# ---------------------------------------------------------------- grading


def grade(questions: Sequence[Question], answers: Mapping[int, str]) -> QuickCheckResult:
    """Grade a student's answers, keyed by 0-based question index.

    A choice answer is the chosen choice's index as text ("0", "1", …); a numeric answer is
    what the student typed. Missing, None or blank answers are listed in ``missing`` and
    count as wrong; unreadable ones are just wrong.
    """
    if not questions:
        raise ValueError("a quick check needs at least one question")
    results = []
    missing = []
    for index, q in enumerate(questions):
        raw = answers.get(index)
        text = "" if raw is None else str(raw).strip()
        if q.kind == "choice":
            expected = q.choices[int(q.answer)]
        else:
            expected = _expected_number(q)
        if not text:
            missing.append(index + 1)
            results.append(QuestionResult(index + 1, False, None, expected, q.explanation))
            continue
        if q.kind == "choice":
            chosen = int(text) if text.isascii() and text.isdigit() else -1
            correct = chosen == q.answer
            given = q.choices[chosen] if 0 <= chosen < len(q.choices) else text
        else:
            value = parse_number(text)
            slack = _REL_SLACK * max(1.0, abs(q.answer))
            correct = value is not None and abs(value - q.answer) <= q.tolerance + slack
            given = text
        results.append(QuestionResult(index + 1, correct, given, expected, q.explanation))
    return QuickCheckResult(
        results=tuple(results),
        correct=sum(r.correct for r in results),
        total=len(results),
        missing=tuple(missing),
    )


def score_on_scale(correct: int, total: int, level_points: Sequence[float]) -> float:
    """The fraction correct times the scale's top points, rounded down to a scale level.

    Returns the highest level at or below ``correct / total * max(level_points)`` (a
    relative slack of 1e-9 absorbs floating-point error, so 3/3 × 4 is 4), or 0.0 when
    that is below every level. Raises ValueError for ``total <= 0``, ``correct`` outside
    ``0..total``, no levels, non-finite levels or a top level of 0 or less.
    """
    if total <= 0:
        raise ValueError(f"total must be at least 1, not {total}")
    if not 0 <= correct <= total:
        raise ValueError(f"correct ({correct}) must be between 0 and total ({total})")
    levels = sorted({float(p) for p in level_points})
    if not levels:
        raise ValueError("the scale has no levels")
    if not all(math.isfinite(p) for p in levels):
        raise ValueError("the scale's levels must be finite numbers")
    top = levels[-1]
    if top <= 0:
        raise ValueError("the scale's top level must be above 0")
    raw = correct * top / total
    slack = _REL_SLACK * top
    reached = [p for p in levels if p <= raw + slack]
    return reached[-1] if reached else 0.0


def _points(score: float) -> str:
    shown = _display_number(score)
    return f"{shown} point" if score == 1 else f"{shown} points"


def describe(result: QuickCheckResult, score: float, level_label: str | None) -> str:
    """One sentence for the student, e.g.
    "You answered 3 of 4 correctly (75%): Mastery (3 points)."

    The percentage is rounded down (100% only when all are right). Without a label, a
    score of 0 reads "below the lowest level (0 points)" and any other score just its
    points.
    """
    if result.total == 0:
        return "This quick check has no questions."
    percent = 100 * result.correct // result.total
    head = f"You answered {result.correct} of {result.total} correctly ({percent}%)"
    if level_label and level_label.strip():
        return f"{head}: {level_label.strip()} ({_points(score)})."
    if score == 0:
        return f"{head}: below the lowest level ({_points(score)})."
    return f"{head}: {_points(score)}."
