"""The mastery gradebook as teachers and students use it, inside the LMS's iframe.

Students launch first (a launch enrols them in the tool, so the gradebook has
rows), then the teacher imports standards from a CSV file, records two rounds
of evidence for the class with the keyboard, reads the gradebook (levels,
values, distribution chart), moves around it with the arrow keys, opens a
student's evidence and switches the calculation to "Highest". The student then
sees only their own mastery and asks for a reassessment, which the teacher
accepts. axe-core checks every gradebook page, and a phone-sized viewport
checks that the wide table scrolls inside its region, not the page. A last
test checks markup axe does not flag (plain titles, unique ids, labelled
fields): it caught the standards page's 'Import evidence' section copied into
its title and header, now fixed.

The stack is shared by the whole session, so each test imports standards with
its own codes and only looks at those; the main flow leaves the course's
calculation method at "Highest", which no other test depends on."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lti_tool.grades import mastery
from lti_tool.sandbox.seed import PEOPLE
from tests.browser.conftest import TEACHER, BrowserRun, Sandbox, Stack
from tests.browser.test_accessibility import check

# Two students whose names need care: an accent and an apostrophe.
MATEO = "Mateo Fern\u00e1ndez"
LIAM = "Liam O'Connor"
STUDENT_NAMES = [f"{given} {family}" for given, family, _, role in PEOPLE if role == "student"]

# The default scale (Canvas's ratings above 0), written out here rather than
# taken from the tool, so a wrong level label in the tool is caught.
LEVELS = ((4.0, "Exceeds Mastery"), (3.0, "Mastery"), (2.0, "Near Mastery"),
          (1.0, "Below Mastery"))

# Two rounds of evidence on the first standard: (assessed on, item, scores).
ROUNDS = (("2024-09-02", "Quiz 1", {MATEO: 4, LIAM: 1}),
          ("2024-09-16", "Quiz 2", {MATEO: 3, LIAM: 3}))


def level_label(value: float | None) -> str:
    if value is None:
        return "No evidence"
    return next((label for points, label in LEVELS if value >= points), "Not yet at a level")


def badge_text(value: float | None) -> str:
    return "No evidence" if value is None else f"{level_label(value)} {value:g}"


def scores_of(student: str) -> list[float]:
    return [scores[student] for _, _, scores in ROUNDS if student in scores]


def expected(student: str, method: str) -> float | None:
    return mastery.rollup(scores_of(student), method)


# -- small steps ----------------------------------------------------------------
def launch(run: BrowserRun, sandbox: Sandbox, person: str):
    """Sign in to the LMS as `person` and open the tool; the tool frame's locator."""
    run.sign_in(sandbox, person)
    frame = run.open_tool(sandbox)
    expect(frame.get_by_role("heading", level=1, name=f"Hello, {person}")).to_be_visible()
    return frame


def go(frame, link: str, heading: str) -> None:
    """Follow a link of the tool's nav and wait for the page's heading."""
    frame.get_by_role("navigation", name="Pathwise").get_by_role(
        "link", name=link, exact=True).click()
    expect(frame.get_by_role("heading", level=1, name=heading)).to_be_visible()


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["code", "title", "group"])
        writer.writerows(rows)
    return path


def import_standards(run: BrowserRun, frame, path: Path, count: int) -> None:
    go(frame, "Standards", "Standards")
    frame.get_by_label("CSV or CASE file").set_input_files(str(path))
    frame.get_by_role("button", name="Import", exact=True).click()
    expect(frame.get_by_role("status")).to_have_text(f"{count} standard(s) added, 0 updated.")


def standard_row(frame, code: str):
    return frame.get_by_role("row").filter(has=frame.get_by_role("cell", name=code, exact=True))


def active(run: BrowserRun) -> dict:
    """The focused element inside the tool frame."""
    return run.tool_frame().evaluate("""() => {
        const e = document.activeElement;
        return {tag: e.tagName, name: e.getAttribute('name') || '',
                label: e.getAttribute('aria-label') || e.textContent.trim()};
    }""")


def record_round_with_keyboard(run: BrowserRun, frame, when: str, item: str,
                               scores: dict[str, float]) -> None:
    """On the class evidence page: the date and item, then Tab through the grid,
    typing a score into each wanted student's input, and Enter on Save."""
    frame.get_by_label("Assessed on").fill(when)
    frame.get_by_label("From (optional)").fill(item)  # leaves the focus there
    keyboard = run.page.keyboard
    typed, seen = [], []
    for _ in range(4 * len(STUDENT_NAMES) + 4):
        keyboard.press("Tab")
        now = active(run)
        seen.append(now["label"])
        if now["label"].startswith("Score for "):
            student = now["label"].removeprefix("Score for ")
            if student in scores:
                keyboard.type(f"{scores[student]:g}")
                typed.append(student)
        elif now["tag"] == "BUTTON":
            assert now["label"] == "Save evidence", seen
            break
        else:  # between two score inputs: the previous student's note
            assert now["label"].startswith("Note for "), seen
    assert sorted(typed) == sorted(scores), f"typed {typed}; Tab went through {seen}"
    keyboard.press("Enter")
    expect(frame.get_by_role("status")).to_have_text(
        f"Saved {len(scores)} piece(s) of evidence.")


def gradebook_cell(frame, student: str, code: str):
    return frame.locator("#gradebook").get_by_role(
        "link", name=re.compile("^" + re.escape(f"{student}, {code}:")))


def expect_gradebook_values(frame, code: str, method: str) -> None:
    for student in (MATEO, LIAM):
        value = expected(student, method)
        cell = gradebook_cell(frame, student, code)
        expect(cell).to_have_text(badge_text(value))
        expect(cell).to_have_attribute("aria-label", f"{student}, {code}: {badge_text(value)}")


def distribution_counts(desc: str) -> tuple[int, dict[str, int]]:
    """'3 in total. Exceeds Mastery: 0 (0%); Mastery: 1 (33%); ...' -> (3, {...})."""
    match = re.fullmatch(r"(\d+) in total\. (.*)\.", desc)
    assert match, desc
    counts = {}
    for part in match.group(2).split("; "):
        label, count = re.fullmatch(r"(.+): (\d+) \(\d+%\)", part).groups()
        counts[label] = int(count)
    return int(match.group(1)), counts


# -- 1 and 2: the teacher's flow, then the student's ----------------------------
@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_gradebook_teacher_and_student(open_browser, stack: Stack, tmp_path: Path,
                                       flavor: str) -> None:
    sandbox = stack.sandboxes[flavor]
    codes = ["NF.1", "NF.2", "G.1"]
    standards = [(codes[0], "Compare fractions with unlike denominators", "Fractions"),
                 (codes[1], "Add and subtract mixed numbers", "Fractions"),
                 (codes[2], "Measure angles with a protractor", "Geometry")]
    code = codes[0]
    run = open_browser()

    for student in (MATEO, LIAM):
        launch(run, sandbox, student)
    frame = launch(run, sandbox, TEACHER)

    # Standards: import the CSV file; each standard is listed with its strand.
    import_standards(run, frame, write_csv(tmp_path / "standards.csv", standards), 3)
    for st_code, title, group in standards:
        cells = standard_row(frame, st_code).get_by_role("cell")
        expect(cells.nth(1)).to_have_text(title)
        expect(cells.nth(2)).to_contain_text(group)
        expect(cells.nth(3).get_by_role("link", name="Record for the class")).to_be_visible()
    run.shot("standards imported")

    # Record for the class, twice, with the keyboard.
    standard_row(frame, code).get_by_role("link", name="Record for the class").click()
    expect(frame.get_by_role("heading", level=1, name=f"Record evidence: {code}")).to_be_visible()
    for when, item, scores in ROUNDS:
        record_round_with_keyboard(run, frame, when, item, scores)
    grid = frame.locator("#evidence-grid")
    for student in (MATEO, LIAM):
        current = expected(student, "decaying_average")
        expect(grid.get_by_role("row").filter(
            has=frame.get_by_role("rowheader", name=student, exact=True))
            .get_by_role("cell").first).to_have_text(f"{current:g}")
    run.shot("evidence recorded")

    # The gradebook: level and value of each student; the distribution chart.
    go(frame, "Gradebook", "Mastery gradebook")
    expect_gradebook_values(frame, code, "decaying_average")
    for other in codes[1:]:
        expect(gradebook_cell(frame, MATEO, other)).to_have_text("No evidence")
    figure = frame.locator("figure.distribution").filter(
        has=frame.locator("figcaption strong", has_text=re.compile(f"^{re.escape(code)}$")))
    chart = figure.locator("svg[role=img]")
    expect(chart).to_have_count(1)
    expect(chart.locator("desc")).to_have_count(1)
    rows = frame.locator("#gradebook tbody tr").count()
    total, counts = distribution_counts(chart.locator("desc").text_content())
    wanted = {label: 0 for _, label in LEVELS}
    for student in (MATEO, LIAM):
        wanted[level_label(expected(student, "decaying_average"))] += 1
    wanted["No evidence"] = rows - 2
    assert (total, counts) == (rows, wanted), chart.locator("desc").text_content()
    run.shot("gradebook decaying average")

    # Arrow keys move between cells; Enter opens the evidence.
    frame_obj = run.tool_frame()
    names = frame.locator("#gradebook tbody th").all_text_contents()
    below = names[names.index(MATEO) + 1]
    gradebook_cell(frame, MATEO, code).focus()
    run.page.keyboard.press("ArrowRight")
    assert active(run)["label"].startswith(f"{MATEO}, {codes[1]}:"), active(run)
    run.page.keyboard.press("ArrowDown")
    assert active(run)["label"].startswith(f"{below}, {codes[1]}:"), active(run)
    run.page.keyboard.press("ArrowLeft")
    assert active(run)["label"].startswith(f"{below}, {code}:"), active(run)
    run.page.keyboard.press("ArrowUp")
    assert active(run)["label"].startswith(f"{MATEO}, {code}:"), active(run)
    assert frame_obj.evaluate("() => document.activeElement.closest('#gradebook') !== null")
    run.page.keyboard.press("Enter")
    expect(frame.get_by_role("heading", level=1, name=f"{MATEO}: {code}")).to_be_visible()
    value = expected(MATEO, "decaying_average")
    timeline = frame.get_by_role("region", name="Mastery over time").locator("svg[role=img]")
    expect(timeline).to_have_count(1)
    expect(timeline.locator("desc")).to_contain_text(
        f"2 pieces of evidence from 2 Sep to 16 Sep; latest score 3; current mastery "
        f"{value:g} ({level_label(value)})")
    calc = frame.get_by_role("region", name="How this is calculated")
    expect(calc).to_contain_text(mastery.explain("decaying_average"))
    expect(calc).to_contain_text(mastery.explain_with_numbers(scores_of(MATEO),
                                                              "decaying_average"))
    run.shot("student evidence")

    # Settings: "Highest" recalculates every value.
    go(frame, "Settings", "How mastery is calculated")
    frame.get_by_role("radio", name="Highest", exact=True).check()
    frame.get_by_role("button", name="Save and recalculate").click()
    expect(frame.get_by_role("status")).to_contain_text("mastery value(s) recalculated")
    expect(frame.get_by_role("radio", name="Highest", exact=True)).to_be_checked()
    go(frame, "Gradebook", "Mastery gradebook")
    expect_gradebook_values(frame, code, "highest")
    assert expected(MATEO, "highest") != expected(MATEO, "decaying_average")
    run.shot("gradebook highest")

    # The student: only their own mastery, the chart, their numbers; a request.
    frame = launch(run, sandbox, MATEO)
    go(frame, "My mastery", "My mastery")
    nav = frame.get_by_role("navigation", name="Pathwise")
    expect(nav.get_by_role("link", name="Gradebook")).to_have_count(0)
    mine = frame.get_by_role("row").filter(has=frame.get_by_role("link", name=code, exact=True))
    expect(mine.get_by_role("cell")).to_have_text(badge_text(expected(MATEO, "highest")))
    expect(frame.get_by_role("row").filter(
        has=frame.get_by_role("link", name=codes[1], exact=True)).get_by_role("cell")
    ).to_have_text("No evidence")
    others = [name for name in STUDENT_NAMES if name != MATEO]

    def assert_no_other_student() -> None:
        text = frame.locator("body").inner_text()
        html = run.tool_frame().content()
        leaked = [n for n in others if n in text or n.split()[-1] in html]
        assert not leaked, f"another student's name on the student's page: {leaked}"

    assert_no_other_student()
    run.shot("my mastery")
    mine.get_by_role("link", name=code, exact=True).click()
    expect(frame.get_by_role("heading", level=1, name=code, exact=True)).to_be_visible()
    expect(frame.get_by_role("region", name="Mastery over time")
           .locator("svg[role=img] desc")).to_contain_text(
        f"current mastery {expected(MATEO, 'highest'):g}")
    calc = frame.get_by_role("region", name="How this is calculated")
    expect(calc).to_contain_text(mastery.explain("highest"))
    expect(calc).to_contain_text(mastery.explain_with_numbers(scores_of(MATEO), "highest"))
    assert_no_other_student()
    reflection = "I redid the fraction strips practice and checked my answers with a partner."
    frame.get_by_label("What have you practised since your last assessment?").fill(reflection)
    frame.get_by_role("button", name="Send to my teacher").click()
    expect(frame.get_by_role("status")).to_have_text("Your request was sent to your teacher.")
    run.shot("reassessment requested")

    # The teacher sees the request and accepts it.
    frame = launch(run, sandbox, TEACHER)
    go(frame, "Reassessments", "Reassessment requests")
    card = frame.locator("li").filter(
        has=frame.get_by_role("heading", level=2, name=f"{MATEO} · {code}"))
    expect(card).to_contain_text(f"\u201c{reflection}\u201d")
    expect(card).to_contain_text("Pending")
    card.get_by_label("Note to the student").fill("Yes: Friday at lunch.")
    card.get_by_role("button", name="Accept").click()
    expect(card).to_contain_text("Accepted")
    expect(card.get_by_role("button", name="Accept")).to_have_count(0)
    expect(card.get_by_role("link", name="Record new evidence")).to_be_visible()
    run.shot("reassessment accepted")


# -- 3: accessibility ---------------------------------------------------------------
def test_gradebook_pages_are_accessible(axe_source: str, open_browser, stack: Stack) -> None:
    sandbox = stack.sandboxes["canvas"]
    code = "AX.1"
    run = open_browser(cookies="allowed", bypass_csp=True)
    found: dict[str, str] = {}

    def axe(name: str) -> None:
        run.shot(name)
        check(run, axe_source, name, found)

    launch(run, sandbox, MATEO)
    frame = launch(run, sandbox, TEACHER)
    go(frame, "Standards", "Standards")
    frame.get_by_label("Code").fill(code)
    frame.get_by_label("Short title").fill("Explain why fractions are equivalent")
    frame.get_by_label("Strand (optional)").fill("Accessibility")
    frame.get_by_role("button", name="Add standard").click()
    expect(frame.get_by_role("status")).to_have_text("1 standard(s) added, 0 updated.")
    axe("standards page")

    standard_row(frame, code).get_by_role("link", name="Record for the class").click()
    expect(frame.get_by_role("heading", level=1, name=f"Record evidence: {code}")).to_be_visible()
    axe("class evidence grid")
    frame.get_by_label(f"Score for {MATEO}").fill("3")
    frame.get_by_role("button", name="Save evidence").click()
    expect(frame.get_by_role("status")).to_have_text("Saved 1 piece(s) of evidence.")

    go(frame, "Gradebook", "Mastery gradebook")
    cell = gradebook_cell(frame, MATEO, code)
    expect(cell).to_have_text("Mastery 3")
    axe("gradebook")
    cell.click()
    expect(frame.get_by_role("heading", level=1, name=f"{MATEO}: {code}")).to_be_visible()
    axe("student-standard detail (teacher)")
    go(frame, "Settings", "How mastery is calculated")
    axe("settings page")
    go(frame, "Reassessments", "Reassessment requests")
    axe("reassessments page")

    frame = launch(run, sandbox, MATEO)
    go(frame, "My mastery", "My mastery")
    axe("my mastery (student)")
    frame.get_by_role("link", name=code, exact=True).click()
    expect(frame.get_by_role("heading", level=1, name=code, exact=True)).to_be_visible()
    axe("student-standard detail (student)")

    assert not found, "\n\n".join(found.values())


# -- 4: a phone-sized screen ----------------------------------------------------------
def test_gradebook_on_a_phone_scrolls_inside_its_region(open_browser, stack: Stack,
                                                        tmp_path: Path) -> None:
    sandbox = stack.sandboxes["canvas"]
    run = open_browser()
    launch(run, sandbox, MATEO)
    frame = launch(run, sandbox, TEACHER)
    standards = [(f"PH.{i}", f"Phone standard {i}", "Phone") for i in range(1, 9)]
    import_standards(run, frame, write_csv(tmp_path / "phone.csv", standards), 8)

    run.page.set_viewport_size({"width": 390, "height": 844})
    go(frame, "Gradebook", "Mastery gradebook")
    region = frame.get_by_role("region", name=re.compile("^Each cell shows"))
    expect(region).to_be_visible()
    last = gradebook_cell(frame, MATEO, "PH.8")
    expect(last).to_have_text("No evidence")
    run.shot("phone gradebook")

    sizes = run.tool_frame().evaluate("""() => {
        const wrap = document.querySelector('.table-wrap');
        return {page: document.documentElement.scrollWidth, inner: window.innerWidth,
                wrap: wrap.scrollWidth, wrapVisible: wrap.clientWidth,
                overflowX: getComputedStyle(wrap).overflowX};
    }""")
    assert sizes["inner"] <= 390, sizes
    assert sizes["page"] <= sizes["inner"], f"the page scrolls sideways: {sizes}"
    assert sizes["wrap"] > sizes["wrapVisible"], f"the table should overflow its region: {sizes}"
    assert sizes["overflowX"] in ("auto", "scroll"), sizes

    # Focusing the last column scrolls the region, not the page; the names stay put.
    last.focus()
    after = run.tool_frame().evaluate("""() => {
        const wrap = document.querySelector('.table-wrap');
        const name = document.querySelector('#gradebook tbody th.sticky-col');
        return {scrollLeft: wrap.scrollLeft, pageX: window.scrollX,
                nameLeft: name.getBoundingClientRect().left - wrap.getBoundingClientRect().left};
    }""")
    assert after["scrollLeft"] > 0 and after["pageX"] == 0, after
    assert abs(after["nameLeft"]) <= 2, f"the student names should stick to the left: {after}"
    run.shot("phone gradebook scrolled")



# -- markup that axe does not flag ------------------------------------------------------
PAGE_STRUCTURE = """() => {
    const ids = {};
    for (const e of document.querySelectorAll('[id]')) { ids[e.id] = (ids[e.id] || 0) + 1; }
    const unlabelled = [...document.querySelectorAll(
            'input:not([type=hidden]), select, textarea')]
        .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
        .map(e => e.outerHTML.slice(0, 120));
    return {title: document.title,
            duplicateIds: Object.keys(ids).filter(id => ids[id] > 1),
            unlabelled: unlabelled,
            inHeader: [...document.querySelectorAll('header form, header section')]
                .map(e => e.outerHTML.slice(0, 80))};
}"""


def test_teacher_pages_have_plain_titles_unique_ids_and_labelled_fields(
        open_browser, stack: Stack) -> None:
    run = open_browser()
    frame = launch(run, stack.sandboxes["canvas"], TEACHER)
    problems = {}
    for link, heading, title in (("Gradebook", "Mastery gradebook", "Gradebook"),
                                 ("Standards", "Standards", "Standards"),
                                 ("Reassessments", "Reassessment requests", "Reassessments"),
                                 ("Settings", "How mastery is calculated", "Settings")):
        go(frame, link, heading)
        found = run.tool_frame().evaluate(PAGE_STRUCTURE)
        if (found["title"] != f"{title} \u00b7 Pathwise" or found["duplicateIds"]
                or found["unlabelled"] or found["inHeader"]):
            problems[link] = found
    assert not problems, "\n".join(f"{page}: {what} = {value!r}" for page, found in
                                    problems.items() for what, value in found.items())
