"""The pages of grade passback and of installation, in Chromium with axe-core.

Inside the Canvas sandbox's iframe: a teacher adds a graded playlist through
deep linking (the picker, creating a playlist there), opens the new
assignment (its LMS grades page), turns sending on and sees the scores'
preview. Top-level: the administrator's install page, sign-in and list of
registrations. Inside the Moodle sandbox's registration frame: dynamic
registration from start to the LMS's list of tools, after which the administrator
disables the new registration again (the stack is shared by the session).
axe checks every page; the iframe pages are checked at a phone's width too.
Violations and sideways scrolling are collected and asserted at the end."""

from __future__ import annotations

import re
import subprocess
import sys

from playwright.sync_api import expect

from tests.browser.conftest import TEACHER, BrowserRun, Stack
from tests.browser.test_accessibility import check
from tests.browser.test_playlists import no_sideways_scroll

TITLE = "Decimals unit (LMS pages)"


def _phone(run: BrowserRun, name: str, problems: list[str]) -> None:
    sizes = no_sideways_scroll(run)
    if sizes["scrollWidth"] > sizes["clientWidth"] + 1:
        problems.append(f"{name} scrolls sideways on a phone: {sizes}")


def test_deep_linking_picker_and_lms_grades_page(axe_source: str, open_browser,
                                                 stack: Stack) -> None:
    run = open_browser(cookies="allowed", bypass_csp=True)
    sandbox = stack.sandboxes["canvas"]
    found: dict[str, str] = {}
    problems: list[str] = []
    run.sign_in(sandbox, TEACHER)

    run.page.get_by_role("region", name="Add content (Deep Linking)").get_by_role(
        "link", name="Add a graded assignment from Pathwise").click()
    frame = run.page.frame_locator("iframe#tool-frame")
    expect(frame.get_by_role("heading", level=1,
                             name="Add a Pathwise playlist to your course")).to_be_visible()
    run.shot("picker")
    check(run, axe_source, "deep-linking picker", found)
    _phone(run, "deep-linking picker", problems)

    new = frame.get_by_role("region", name="Create a new playlist")
    new.get_by_label("Title").fill(TITLE)
    new.get_by_role("button", name="Create").click()
    choice = frame.get_by_role("radio", name=re.compile(re.escape(TITLE)))
    expect(choice).to_be_checked()
    frame.get_by_label("Points possible").fill("20")
    frame.get_by_role("button", name="Add to course").click()
    # The LMS takes the signed answer and creates a graded assignment.
    expect(frame.get_by_role("heading", name="Content added")).to_be_visible()
    expect(frame.get_by_text(f"{TITLE} — graded, out of 20")).to_be_visible()
    run.shot("added")

    run.page.goto(sandbox.origin + "/courses/1107")
    run.page.get_by_role("link", name=TITLE, exact=True).click()
    expect(frame.get_by_role("heading", level=1, name=f"LMS grades: {TITLE}")).to_be_visible()
    # The teacher's launch asked for the class list; a worker (this stack has
    # no inline one) fetches it, so the whole class gets a score below.
    _worker_once(stack)
    run.shot("LMS grades page")
    check(run, axe_source, "LMS grades page", found)
    _phone(run, "LMS grades page", problems)

    frame.get_by_role("button", name="Preview scores").click()
    expect(frame.get_by_text("Preview only: nothing is sent until you save.")).to_be_visible()
    # The class the roster sync brought in, each with the score they would get.
    rows = frame.get_by_role("table", name=re.compile("What the LMS gradebook shows")) \
        .locator("tbody tr")
    expect(rows).not_to_have_count(0)
    expect(rows.first).to_contain_text("This playlist targets no standards yet.")
    run.shot("score preview")
    check(run, axe_source, "LMS grades page with the preview", found)
    frame.get_by_role("button", name="Save and send scores to the LMS").click()
    expect(frame.get_by_role("button", name="Stop sending")).to_be_visible()
    pending = frame.locator("#sync-pending")
    expect(pending).to_have_text(re.compile(r"^[1-9]\d* \(these figures update"))
    run.shot("sending on")
    check(run, axe_source, "LMS grades page, sending on", found)

    # A worker delivers (this stack has no inline one): the figures change in
    # place, without reloading the page (which would lose keyboard focus).
    run.tool_frame().evaluate("window.pathwiseMarker = 'same page'")
    _worker_once(stack)
    expect(pending).to_have_text("0", timeout=15_000)
    assert frame.locator("#sync-failed").inner_text() == "0"
    assert frame.locator("#sync-last").inner_text() != "Never"
    assert run.tool_frame().evaluate("window.pathwiseMarker") == "same page"
    run.shot("delivered")

    assert not found and not problems, "\n\n".join([*found.values(), *problems])


def _cli(stack: Stack, *args: str) -> str:
    """`lti-tool ARGS` as the stack's operator runs it; what it printed."""
    done = subprocess.run([sys.executable, "-m", "lti_tool.cli", *args],
                          env=stack.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _worker_once(stack: Stack) -> None:
    _cli(stack, "worker", "--once")


def test_install_and_registration_pages(axe_source: str, open_browser, stack: Stack) -> None:
    run = open_browser(cookies="allowed", bypass_csp=True)
    page = run.page
    found: dict[str, str] = {}
    problems: list[str] = []

    page.goto(stack.tool_url + "/lti/setup")
    expect(page.get_by_role("heading", level=1,
                            name="Install Pathwise in your LMS")).to_be_visible()
    run.shot("install page")
    check(run, axe_source, "install page", found, frame=page.main_frame)

    # Moodle registers Pathwise dynamically, in its iframe.
    moodle = stack.sandboxes["moodle"]
    page.goto(moodle.origin + "/sandbox/register")
    page.get_by_role("button", name="Start registration").click()
    frame = page.frame_locator("iframe#tool-frame")
    expect(frame.get_by_role("heading", level=1,
                             name=re.compile("^Register Pathwise"))).to_be_visible()
    run.shot("registration start")
    check(run, axe_source, "registration start page", found)
    _phone(run, "registration start page", problems)
    frame.get_by_role("button", name=re.compile("^Register Pathwise")).click()
    # The tool's last page tells the LMS it is finished (org.imsglobal.lti.close),
    # and the LMS lists the new tool.
    expect(page.get_by_role("region", name="Tools registered dynamically")
           .get_by_text("Pathwise")).to_be_visible()
    run.shot("registered")

    # The administrator signs in and sees it; disabling it leaves the
    # session's other tests the registrations they started with.
    page.goto(stack.tool_url + "/admin/registrations")
    expect(page.get_by_role("heading", level=1,
                            name="This page is for Pathwise administrators.")).to_be_visible()
    check(run, axe_source, "administrators only", found, frame=page.main_frame)
    page.get_by_role("link", name="Administrator sign-in").click()
    expect(page.get_by_role("heading", level=1, name="Administrator sign-in")).to_be_visible()
    run.shot("admin sign-in")
    check(run, axe_source, "administrator sign-in", found, frame=page.main_frame)
    page.get_by_label(re.compile("token", re.I)).fill(_cli(stack, "admin-token").strip())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name="LMS registrations")).to_be_visible()
    run.shot("registrations")
    check(run, axe_source, "registrations list", found, frame=page.main_frame)
    row = page.locator("tbody tr", has_text="Dynamic registration")
    expect(row).to_have_count(1)
    row.get_by_role("button", name=re.compile("^Disable")).click()
    expect(page.get_by_role("status")).to_have_text("Registration disabled.")
    expect(row.get_by_role("cell", name="Disabled", exact=True)).to_be_visible()

    assert not found and not problems, "\n\n".join([*found.values(), *problems])
