"""Playlists as teachers and students use them, inside the LMS's iframe.

The Canvas-flavoured journey: the teacher imports three standards, builds a
playlist with one item of every kind through the item form (a choice board
with two options added by "Add an option"), moves an item with the keyboard
and publishes. She records Mastery on PL.1 for Mateo, who tests out of the
PL.1 items; Liam, with no evidence, sees the checkpoint locked and the first
item highlighted. Liam takes the quick check (all right: recorded as
evidence, the checkpoint unlocks), sets a target date, a goal on PL.2 and his
learner profile. The teacher reads the goal and profile, the class progress
chart, and assigns a reteach playlist from the PL.2 groups; Liam finds it
"From your teacher" at the top of his home page. axe-core checks each page on
the way and a phone-sized viewport checks the path page does not scroll
sideways. A shorter Moodle test: a student's path page works there too.

Each person has their own browser (Chromium profile) and launches once, which
keeps the file fast. axe needs the tool's CSP bypassed (see
test_accessibility.py): the teacher's and Liam's browsers do that, so the CSP
the tool sends for the video page (frame-src for the player) is checked on
the response header; Mateo's browser keeps the CSP in force.

Problems that do not stop the journey (an axe violation, focus not where the
page puts it) are collected and asserted at the end, so one run shows all.
The stack is shared by the session: these tests use their own standard codes
(PL.*, PM.*) and playlist titles, and work whatever the course's calculation
method is (each student's evidence on a standard here is a single score)."""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, STUDENTS, TEACHER, BrowserRun, Stack
from tests.browser.test_accessibility import check
from tests.browser.test_gradebook import (
    LIAM,
    MATEO,
    active,
    go,
    import_standards,
    launch,
    standard_row,
    write_csv,
)

TITLE = "Fractions playlist (browser)"
RETEACH = "PL.2 reteach (browser)"
STANDARDS = [("PL.1", "Compare fractions with unlike denominators", "Playlists"),
             ("PL.2", "Explain the main idea of a fraction story", "Playlists"),
             ("PL.3", "Show fraction work in a project", "Playlists")]
QUESTIONS = ("Q: What is 3/4 of 12?\n= 9\nWhy: 12 ÷ 4 × 3\n"
             "Q: Which is larger?\n- 1/2\n* 3/4\n- 2/3\n")
READING = "<p>Read <strong>slowly</strong>.</p><script>document.title = 'owned'</script>"
YOUTUBE_ID = "dQw4w9WgXcQ"

# The items, in the order they are added: (kind label in the editor's select,
# title, fields of the item form).
ITEMS = [
    ("Resource (link)", "Fraction strips",
     dict(url="https://example.org/strips", standards=["PL.1"])),
    ("Reading or instructions", "How fractions work", dict(body=READING, standards=["PL.1"])),
    ("Video", "Fractions video",
     dict(url=f"https://www.youtube.com/watch?v={YOUTUBE_ID}", tag="May do")),
    ("Practice", "Practice set", dict(standards=["PL.1"])),
    ("Quick check", "Quick check PL.1", dict(questions=QUESTIONS, standards=["PL.1"])),
    ("Checkpoint", "Checkpoint PL.2",
     dict(body="Explain the main idea to your teacher.", standards=["PL.2"],
          prereqs=["PL.1"])),
    ("Choice board", "Show what you know", dict(tag="Challenge", body="Pick one.")),
]
OPTIONS = ["Make a poster", "Record a podcast"]
PL1_ITEMS = ["Fraction strips", "How fractions work", "Practice set", "Quick check PL.1"]
MOVED = "Practice set"  # moved up above the video with the keyboard
BODY_LABELS = {"reading": "Text", "checkpoint": "What students do for this checkpoint",
               "choice_board": "Instructions for the choice"}
KINDS = {"Resource (link)": "resource", "Reading or instructions": "reading", "Video": "video",
         "Practice": "practice", "Quick check": "quick_check", "Checkpoint": "checkpoint",
         "Choice board": "choice_board"}


def today() -> datetime:
    """The tool's today (it works in UTC)."""
    return datetime.now(timezone.utc)


def day_label(when) -> str:
    return f"{when.day} {when:%b}"


# -- small steps ----------------------------------------------------------------
def add_item(frame, kind_label: str, title: str, *, url: str = "", body: str = "",
             tag: str = "Must do", standards=(), prereqs=(), questions: str = "",
             before_save=None) -> None:
    """From the playlist editor: choose the kind, fill in the item form, save."""
    frame.get_by_label("Add an item of kind").select_option(label=kind_label)
    frame.get_by_role("button", name="Add item", exact=True).click()
    fill_item_form(frame, KINDS[kind_label], title, url=url, body=body, tag=tag,
                   standards=standards, prereqs=prereqs, questions=questions,
                   before_save=before_save)


def fill_item_form(frame, kind: str, title: str, *, url: str = "", body: str = "",
                   tag: str = "Must do", standards=(), prereqs=(), questions: str = "",
                   before_save=None) -> None:
    label = next(k for k, v in KINDS.items() if v == kind)
    expect(frame.get_by_role("heading", level=1, name=f"New {label.lower()}")).to_be_visible()
    frame.get_by_label("Title", exact=True).fill(title)
    frame.get_by_role("radio", name=tag, exact=True).check()
    if url:
        frame.get_by_label("Link", exact=True).fill(url)
    if body:
        frame.get_by_label(BODY_LABELS.get(kind, "Instructions (optional)"),
                           exact=True).fill(body)
    if questions:
        frame.get_by_label("Questions", exact=True).fill(questions)
    aligned = ("The standard this quick check scores (choose one)" if kind == "quick_check"
               else "Aligned standards")
    for code in standards:
        frame.get_by_role("group", name=aligned).get_by_role(
            "checkbox", name=code, exact=True).check()
    for code in prereqs:
        frame.get_by_role("group", name="Locked until mastery of (optional)").get_by_role(
            "checkbox", name=code, exact=True).check()
    if before_save:
        before_save()
    frame.get_by_role("button", name="Save item").click()
    expect(frame.get_by_role("heading", level=2, name="Items")).to_be_visible()
    expect(frame.locator("ol.item-list li > strong", has_text=re.compile(
        "^" + re.escape(title) + "$"))).to_have_count(1)


def editor_items(run: BrowserRun) -> list[tuple[str, str]]:
    """(title, li id) of the editor's top-level items, in order."""
    return [tuple(pair) for pair in run.tool_frame().evaluate("""() =>
        [...document.querySelectorAll('ol.item-list > li')]
            .map(li => [li.querySelector(':scope > strong').textContent.trim(), li.id])""")]


def entry(frame, ids: dict[str, str], title: str):
    """A path entry (an <li class="entry">) by its item's title."""
    return frame.locator(f"li.entry#{ids[title]}")


def expect_entry(frame, ids, title: str, badge: str, *, next_up: bool = False) -> None:
    card = entry(frame, ids, title)
    badge_row = card.locator(":scope > p.row")
    expect(badge_row.locator(".state")).to_have_text(re.compile(re.escape(badge) + "$"))
    if next_up:
        expect(badge_row).to_contain_text("Next up")
        expect(card).to_have_attribute("aria-current", "step")
        expect(card).to_have_class(re.compile(r"\brecommended\b"))
    else:
        expect(badge_row).not_to_contain_text("Next up")
        expect(card).not_to_have_attribute("aria-current", "step")


def open_playlist_from_home(frame, title: str) -> None:
    go(frame, "My playlists", re.compile("^Hello, "))
    frame.get_by_role("region", name="My playlists").get_by_role(
        "link", name=title, exact=True).click()
    expect(frame.get_by_role("heading", level=1, name=title, exact=True)).to_be_visible()


def no_sideways_scroll(run: BrowserRun, width: int = 375, height: int = 740) -> dict:
    """The tool page's sizes at a phone-sized viewport (the LMS page around it
    included); the viewport is put back afterwards."""
    before = run.page.viewport_size
    run.page.set_viewport_size({"width": width, "height": height})
    try:
        run.page.wait_for_timeout(100)  # the frame re-lays out
        return run.tool_frame().evaluate("""() => {
            const s = document.scrollingElement;
            const wide = [...document.querySelectorAll('main *')]
                .filter(e => e.getBoundingClientRect().right > s.clientWidth + 1)
                .slice(0, 5).map(e => e.outerHTML.slice(0, 100));
            return {scrollWidth: s.scrollWidth, clientWidth: s.clientWidth,
                    inner: window.innerWidth, wide: wide};
        }""")
    finally:
        run.shot(f"phone {width}")
        run.page.set_viewport_size(before)


# -- the student's path in the Moodle flavour ------------------------------------------
# First in the file, so that `-x` still runs it when the long journey below fails.
def test_student_path_in_moodle(open_browser, stack: Stack) -> None:
    sandbox = stack.sandboxes["moodle"]
    student = STUDENTS["moodle"]
    title = "Moodle path (browser)"
    run = open_browser()
    frame = launch(run, sandbox, TEACHER)
    go(frame, "Playlists", "Playlists")
    frame.get_by_role("region", name="New playlist").get_by_label(
        "Title", exact=True).fill(title)
    frame.get_by_role("button", name="Create playlist").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text(f"{title} ✎ Draft")
    add_item(frame, "Reading or instructions", "Number lines", body="<p>Mark 1/2.</p>")
    first = dict(editor_items(run))["Number lines"]
    frame.get_by_label("Add an item of kind").select_option(label="Practice")
    frame.get_by_role("button", name="Add item", exact=True).click()
    frame.get_by_role("group", name=re.compile("^Locked until these items are done")
                      ).get_by_role("checkbox", name="Number lines", exact=True).check()
    fill_item_form(frame, "practice", "Order five fractions")
    ids = dict(editor_items(run))
    assert ids["Number lines"] == first
    frame.get_by_role("button", name="Publish to students").click()
    expect(frame.get_by_role("heading", level=1)).to_have_text(f"{title} ✓ Published")

    frame = launch(run, sandbox, student)
    open_playlist_from_home(frame, title)
    expect_entry(frame, ids, "Number lines", "Ready to start", next_up=True)
    expect_entry(frame, ids, "Order five fractions", "Locked")
    expect(entry(frame, ids, "Order five fractions").locator(".reasons li")).to_have_text(
        ["Unlocks when you finish “Number lines”"])
    # (".sr-only" is absolutely positioned, so the name gets a space before the colon)
    entry(frame, ids, "Number lines").get_by_role(
        "button", name=re.compile(r"^Mark done\s*: Number lines$")).click()
    expect_entry(frame, ids, "Number lines", "Done")
    expect_entry(frame, ids, "Order five fractions", "Ready to start", next_up=True)
    expect(frame.get_by_role("region", name="Progress", exact=True)).to_contain_text(
        "Your progress: 1 of 2 must-do items complete (50%)")
    run.shot("moodle path")
    info = no_sideways_scroll(run)
    assert info["scrollWidth"] <= info["clientWidth"] + 1, info


# -- 1 to 6: the whole journey, Canvas ----------------------------------------------
def test_playlist_journey_in_canvas(axe_source: str, open_browser, stack: Stack,
                                    tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """One browser per person (each a separate Chromium profile, so a separate
    LMS sign-in and tool session): each launches once and keeps their page."""
    sandbox = stack.sandboxes["canvas"]
    found: dict[str, str] = {}     # axe: page -> violations
    problems: list[str] = []       # anything else that should not stop the journey
    people: dict[str, tuple[BrowserRun, object]] = {}

    def as_(person: str) -> tuple[BrowserRun, object]:
        """The person's browser and tool frame; a failure from here on reports
        that browser's screenshots and page."""
        run, frame = people[person]
        request.node.stash[ARTIFACTS] = run
        return run, frame

    def axe(run: BrowserRun, name: str) -> None:
        run.shot(name)
        check(run, axe_source, name, found)

    # Students launch first: a launch enrols them in the tool. Mateo's browser
    # keeps the tool's CSP in force; axe runs in the teacher's and Liam's.
    for person, bypass in ((MATEO, False), (LIAM, True), (TEACHER, True)):
        run = open_browser(cookies="allowed", bypass_csp=bypass)
        run.out = tmp_path / person.split()[0].lower()  # each person's screenshots
        run.out.mkdir()
        people[person] = (run, launch(run, sandbox, person))

    run, frame = as_(TEACHER)
    console: list[str] = []
    run.page.on("console", lambda m: console.append(m.text))
    import_standards(run, frame, write_csv(tmp_path / "playlist-standards.csv", STANDARDS), 3)

    # 1. A playlist with an item of every kind.
    go(frame, "Playlists", "Playlists")
    new = frame.get_by_role("region", name="New playlist")
    new.get_by_label("Title", exact=True).fill(TITLE)
    new.get_by_label("Description (optional)").fill("Unit 3: comparing fractions.")
    for code in ("PL.1", "PL.2"):
        new.get_by_role("checkbox", name=code, exact=True).check()
    new.get_by_role("button", name="Create playlist").click()
    heading = frame.get_by_role("heading", level=1)
    expect(heading).to_have_text(f"{TITLE} ✎ Draft")
    expect(frame.get_by_text("No items yet. Add the first one below.")).to_be_visible()

    for kind_label, title, fields in ITEMS:
        extra = {}
        if KINDS[kind_label] == "quick_check":
            extra["before_save"] = lambda: axe(run, "item form (quick check)")
        add_item(frame, kind_label, title, **fields, **extra)
    for option in OPTIONS:
        frame.get_by_role("link", name="Add an option to Show what you know").click()
        expect(frame.get_by_label("Option on a choice board?")).to_have_value(
            re.compile(r"^\d+$"))
        fill_item_form(frame, "practice", option, standards=["PL.3"])
    ids = dict(editor_items(run))
    options = frame.get_by_role("list", name="Options of Show what you know")
    expect(options.locator(":scope > li > strong")).to_have_text(OPTIONS)
    expect(frame.locator("#" + ids["Show what you know"])).to_contain_text(
        "Students pick 1 of 2 option(s).")
    expect(frame.locator("#" + ids["Checkpoint PL.2"])).to_contain_text("Unlocks after: PL.1")
    titles = [title for _, title, _ in ITEMS]
    assert list(ids) == titles
    run.shot("every kind of item")

    # Keyboard only: focus "Move up" on the practice set, Enter.
    move_up = frame.get_by_role("button", name=f"Move up {MOVED}", exact=True)
    move_up.focus()
    assert active(run)["label"] == f"Move up {MOVED}", active(run)
    console.clear()
    run.page.keyboard.press("Enter")
    expect(frame.locator("ol.item-list > li > strong")).to_have_text(
        titles[:2] + [MOVED, titles[2]] + titles[4:])
    expect(frame.locator(f"#{ids[MOVED]} button[autofocus]")).to_have_text(
        f"Move up {MOVED}")
    editor = run.tool_frame()
    editor.wait_for_load_state("load")
    with contextlib.suppress(PlaywrightTimeoutError):  # a script may move the focus late
        editor.wait_for_function("() => document.activeElement.matches('button[autofocus]')",
                                 timeout=1000)
    focused = editor.evaluate("""() => {
        const e = document.activeElement;
        return {tag: e.tagName, text: e.textContent.trim().slice(0, 60),
                item: e.closest('li') ? e.closest('li').id : null};
    }""")
    wanted = {"tag": "BUTTON", "text": f"Move up {MOVED}", "item": ids[MOVED]}
    if focused != wanted:
        # Seen: Chromium ignores `autofocus` in a cross-origin iframe, and
        # scrolling to the redirect's #item-N (an <li>, not focusable) clears
        # any focus a script sets at load; without the fragment, a script's
        # focus() on the button sticks.
        said = [m for m in console if "autofocus" in m.lower()]
        problems.append(
            "playlist editor (lti_tool/templates/playlists/edit.html, routes.move_item): "
            "after 'Move up' with the keyboard, focus should be back on the moved item's "
            f"button (the page sets `autofocus` on it) {wanted}, but the focused element is "
            f"{focused}. Chromium's console: {said or 'nothing about autofocus'}. Suggested "
            "fix: focus [autofocus] from a small static script (script-src 'self') and drop "
            "the #item-N fragment from move_item's redirect (it clears the focus).")
    run.shot("moved up with the keyboard")
    axe(run, "playlist editor")

    frame.get_by_role("button", name="Publish to students").click()
    expect(heading).to_have_text(f"{TITLE} ✓ Published")
    expect(frame.get_by_role("button", name="Unpublish")).to_be_visible()

    # 2. Mastery (4) on PL.1 for Mateo: he tests out of the PL.1 items.
    go(frame, "Standards", "Standards")
    standard_row(frame, "PL.1").get_by_role("link", name="Record for the class").click()
    expect(frame.get_by_role("heading", level=1, name="Record evidence: PL.1")).to_be_visible()
    frame.get_by_label("Assessed on").fill(today().date().isoformat())
    frame.get_by_label(f"Score for {MATEO}").fill("4")
    frame.get_by_role("button", name="Save evidence").click()
    expect(frame.get_by_role("status")).to_have_text("Saved 1 piece(s) of evidence.")

    # 3. Two students, two paths.
    run, frame = as_(MATEO)
    open_playlist_from_home(frame, TITLE)
    for title in PL1_ITEMS:
        expect_entry(frame, ids, title, "Mastered — optional")
        expect(entry(frame, ids, title)).to_contain_text(
            "You have already mastered PL.1: this is optional for you.")
    expect_entry(frame, ids, "Checkpoint PL.2", "Ready to start", next_up=True)
    expect(entry(frame, ids, "Checkpoint PL.2").locator(".reasons")).to_have_count(0)
    expect_entry(frame, ids, "Fractions video", "Ready to start")
    expect(frame.get_by_role("region", name="Progress", exact=True)).to_contain_text(
        "Your progress: 4 of 5 must-do items complete (80%)")
    expect(frame.locator("p.next-up")).to_contain_text("Next up: “Checkpoint PL.2”")
    run.shot("path of a student who tested out")

    run, frame = as_(LIAM)
    open_playlist_from_home(frame, TITLE)
    expect_entry(frame, ids, "Fraction strips", "Ready to start", next_up=True)
    for title in PL1_ITEMS[1:]:
        expect_entry(frame, ids, title, "Ready to start")
    expect_entry(frame, ids, "Checkpoint PL.2", "Locked")
    expect(entry(frame, ids, "Checkpoint PL.2").locator(".reasons li")).to_have_text(
        ["Unlocks when you reach Mastery on PL.1"])
    # A locked item is not a link; the choice board's options sit under it.
    expect(entry(frame, ids, "Checkpoint PL.2").get_by_role("link")).to_have_count(0)
    board = entry(frame, ids, "Show what you know")
    expect(board.locator("ol.options > li.entry h3")).to_have_text(OPTIONS)
    expect(frame.get_by_role("region", name="Progress", exact=True)).to_contain_text(
        "Your progress: 0 of 5 must-do items complete (0%)")
    expect(frame.locator("p.next-up")).to_contain_text("Next up: “Fraction strips”")
    axe(run, "student path")

    # The reading keeps its HTML, not its script; the video plays from YouTube.
    frame.get_by_role("link", name="How fractions work", exact=True).click()
    expect(frame.get_by_role("heading", level=1, name="How fractions work")).to_be_visible()
    reading = frame.locator(".reading")
    expect(reading.locator("strong")).to_have_text("slowly")
    expect(reading.locator("script")).to_have_count(0)
    frame.get_by_role("link", name=f"Back to “{TITLE}”").click()
    frame.get_by_role("link", name="Fractions video", exact=True).click()
    expect(frame.get_by_role("heading", level=1, name="Fractions video")).to_be_visible()
    player = frame.locator("iframe.embed")
    expect(player).to_have_attribute("src", re.compile(
        r"^https://www\.youtube-nocookie\.com/embed/" + YOUTUBE_ID))
    expect(player).to_have_attribute("title", "Fractions video")
    video_id = ids["Fractions video"].removeprefix("item-")
    video_page = [r for r in run.tool_requests if r.method == "GET" and
                  re.search(rf"/my/playlists/\d+/items/{video_id}\?", r.url)]
    assert video_page and video_page[-1].response(), "no response for the video page"
    csp = video_page[-1].response().header_value("content-security-policy") or ""
    assert "frame-src 'self' https://www.youtube-nocookie.com" in csp, csp
    frame.get_by_role("link", name=f"Back to “{TITLE}”").click()

    # 4. The quick check: all right, recorded as evidence; the checkpoint opens.
    frame.get_by_role("link", name="Quick check PL.1", exact=True).click()
    expect(frame.get_by_role("heading", level=1, name="Quick check PL.1")).to_be_visible()
    frame.get_by_role("group", name="Question 1: What is 3/4 of 12?").get_by_label(
        "Your answer (a number)").fill("9")
    frame.get_by_role("group", name="Question 2: Which is larger?").get_by_role(
        "radio", name="3/4", exact=True).check()
    frame.get_by_role("button", name="Check my answers").click()
    outcome = frame.locator("#qc-outcome")
    expect(outcome).to_have_attribute("role", "status")
    expect(outcome.locator("strong").first).to_have_text(
        "You answered 2 of 2 correctly (100%): Exceeds Mastery (4 points).")
    expect(outcome.locator("li")).to_have_text([re.compile("^✓ Right"),
                                                re.compile("^✓ Right")])
    expect(outcome).to_contain_text("This was recorded as evidence.")
    expect(frame.get_by_role("heading", level=2, name="Try the quick check again")
           ).to_be_visible()
    expect(frame.get_by_role("heading", level=3, name="Your attempts").locator(
        "xpath=following-sibling::ul[1]/li")).to_have_text(
        [re.compile(r"2 of 2 correct \(4 points\)$")])
    axe(run, "quick check with its result")
    go(frame, "My mastery", "My mastery")
    expect(frame.get_by_role("row").filter(has=frame.get_by_role(
        "link", name="PL.1", exact=True)).get_by_role("cell")).to_have_text("Exceeds Mastery 4")

    open_playlist_from_home(frame, TITLE)
    expect_entry(frame, ids, "Quick check PL.1", "Done")
    expect_entry(frame, ids, "Checkpoint PL.2", "Ready to start", next_up=True)
    for title in PL1_ITEMS[:3]:
        expect_entry(frame, ids, title, "Mastered — optional")
    expect(frame.get_by_role("region", name="Progress", exact=True)).to_contain_text(
        "Your progress: 4 of 5 must-do items complete (80%)")

    # A target date: the pace follows (4 of 5 done on the first day: ahead).
    target = today() + timedelta(days=14)
    pace = frame.locator("#pace")
    expect(pace).to_contain_text("4 of 5 items done. No target date is set.")
    frame.get_by_label("My target date for this playlist").fill(target.date().isoformat())
    frame.get_by_role("button", name="Save target").click()
    expect(pace).to_contain_text(f"You are 4 items ahead of pace for {day_label(target)}.")
    expect(frame.get_by_label("My target date for this playlist")).to_have_value(
        target.date().isoformat())

    # A goal on PL.2, then seen on the playlist page.
    goal = "Explain the main idea of two fraction stories to a partner."
    due = (today() + timedelta(days=10)).date().isoformat()
    go(frame, "My goals", "My goals")
    frame.get_by_label("What do you want to achieve?").fill(goal)
    frame.get_by_label("Standard it helps with (optional)").select_option(
        label=f"PL.2: {STANDARDS[1][1]}")
    frame.get_by_label("By when? (optional)").fill(due)
    frame.get_by_role("button", name="Add goal").click()
    expect(frame.get_by_role("status")).to_have_text("Your goal was added.")
    mine = frame.get_by_role("region", name="Your goals").locator("li").filter(has_text=goal)
    expect(mine).to_contain_text(f"Standard PL.2 · Due {due}")
    axe(run, "my goals (student)")
    open_playlist_from_home(frame, TITLE)
    expect(frame.get_by_role("region", name="My goals").locator("li")).to_have_text(
        f"{goal} (PL.2) · due {due}")
    info = no_sideways_scroll(run)
    if info["scrollWidth"] > info["clientWidth"] + 1:
        problems.append(f"student path page scrolls sideways at 375×740: {info}")

    # The learner profile.
    profile = {"My strengths": "I can draw fraction strips quickly.",
               "What I need to learn well": "Worked examples before practice.",
               "My interests": "Football and cooking.",
               "My aspirations": "To be an engineer.",
               "How I prefer to show my learning": "Explaining at the board."}
    go(frame, "My profile", "My learner profile")
    for label, text in profile.items():
        frame.get_by_label(label, exact=True).fill(text)
    frame.get_by_role("button", name="Save my profile").click()
    expect(frame.get_by_role("status")).to_have_text(
        "Your learner profile was saved. Your teachers can read it.")
    expect(frame.get_by_label("My strengths", exact=True)).to_have_value(
        profile["My strengths"])
    axe(run, "my profile (student)")

    # 5. The teacher: goals and profile, class progress, regrouping.
    run, frame = as_(TEACHER)
    go(frame, "Goals", "Students' goals")
    liam = frame.get_by_role("region", name=LIAM, exact=True)
    expect(liam.locator("li").filter(has_text=goal)).to_contain_text("Standard PL.2")
    axe(run, "students' goals (teacher)")
    liam.get_by_role("link", name=f"Profile, goals and reflections of {LIAM}").click()
    expect(frame.get_by_role("heading", level=1, name=LIAM, exact=True)).to_be_visible()
    written = frame.get_by_role("region", name="Learner profile")
    for label, text in profile.items():
        expect(written.locator("dt", has_text=re.compile("^" + re.escape(label) + "$"))
               .locator("xpath=following-sibling::dd[1]")).to_have_text(text)
    expect(frame.get_by_role("region", name="Goals")).to_contain_text(goal)
    axe(run, "student profile (teacher)")

    go(frame, "Playlists", "Playlists")
    frame.get_by_role("link", name=f"Class progress for {TITLE}").click()
    expect(frame.get_by_role("heading", level=1, name=f"Class progress: {TITLE}")
           ).to_be_visible()
    chart = frame.locator("figure svg[role=img]")
    expect(chart).to_have_count(1)
    expect(chart).to_have_accessible_name(re.compile(
        "^" + re.escape(f"{TITLE}: where the class is on each item") + r"\s*\S"))
    rows = frame.get_by_role("table", name="Where each student is on this playlist")
    for student in (MATEO, LIAM):
        row = rows.get_by_role("row").filter(has=frame.get_by_role(
            "rowheader", name=re.compile("^" + re.escape(student) + r"\b")))
        expect(row).to_contain_text("4/5")
        expect(row).to_contain_text("Checkpoint PL.2")  # ready for the checkpoint
    axe(run, "class progress")

    # A reteach playlist (a draft), assigned from the PL.2 groups.
    go(frame, "Playlists", "Playlists")
    new = frame.get_by_role("region", name="New playlist")
    new.get_by_label("Title", exact=True).fill(RETEACH)
    new.get_by_role("checkbox", name="PL.2", exact=True).check()
    new.get_by_role("button", name="Create playlist").click()
    expect(heading).to_have_text(f"{RETEACH} ✎ Draft")
    go(frame, "Playlists", "Playlists")
    listed = frame.get_by_role("table", name=re.compile("^Playlists, their status"))
    expect(listed.get_by_role("row").filter(has=frame.get_by_role(
        "link", name=TITLE, exact=True))).to_contain_text("✓ Published")
    axe(run, "playlists list")

    go(frame, "Standards", "Standards")
    standard_row(frame, "PL.2").get_by_role("link", name="Groups by level").click()
    expect(frame.get_by_role("heading", level=1, name="Groups by mastery: PL.2")
           ).to_be_visible()
    for student in (MATEO, LIAM):  # no evidence on PL.2: both ticked
        expect(frame.get_by_role("checkbox", name=f"Choose {student}")).to_be_checked()
    ticked = frame.locator("input[name=students]:checked").count()
    frame.get_by_role("radio", name="A reteach playlist:").check()
    frame.get_by_label("Reteach playlist", exact=True).select_option(
        label=f"{RETEACH} (draft: only these students will see it)")
    frame.get_by_label("Note for the students (optional)").fill("Let's try again together.")
    frame.get_by_role("button", name="Assign", exact=True).click()
    expect(frame.get_by_role("status")).to_have_text(
        f"Assigned to {ticked} student(s). They see it at the top of their playlists.")
    expect(frame.get_by_role("region", name="Open assignments on PL.2")).to_contain_text(
        f"{LIAM}: reteach playlist “{RETEACH}”")
    axe(run, "regroup PL.2")

    # Liam's home page: "From your teacher" first, with the playlist.
    run, frame = as_(LIAM)
    go(frame, "My playlists", re.compile("^Hello, "))
    assigned = frame.get_by_role("region", name="From your teacher")
    expect(assigned).to_contain_text(
        f"Work through {RETEACH} to reach mastery on PL.2 — “Let's try again together.”")
    order = run.tool_frame().evaluate("""() => [...document.querySelectorAll('main h2')]
        .map(h => h.textContent.trim())""")
    assert order[0] == "From your teacher" and "My playlists" in order, order
    run.shot("from your teacher")
    assigned.get_by_role("link", name=RETEACH, exact=True).click()
    expect(frame.get_by_role("heading", level=1, name=RETEACH, exact=True)).to_be_visible()

    assert not found and not problems, "\n\n".join([*found.values(), *problems])
