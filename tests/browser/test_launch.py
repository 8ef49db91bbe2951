"""The launch in a cross-site iframe, as a person does it in the sandbox LMS:
pick a person, open the course, open Pathwise; the frame greets them by name and
the "Account" link (the session rides on the signed `t` token) shows them again.

Three browsers: cookies allowed; third-party cookies blocked (the tool's
partitioned cookies still work); every cookie of the tool blocked while it is
framed by the LMS. In the last one Canvas still succeeds through LTI platform
storage (the `post_message_forwarding` frame), and Moodle, which offers no
storage, gets the "Open Pathwise in a new window" offer, which works."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import STUDENTS, TEACHER, BrowserRun, Stack

# Records, inside the sandbox's platform-storage frame, every message it gets
# (added to every frame of the profile; only that frame keeps a record).
RECORD_STORAGE_MESSAGES = """
if (window.name === "post_message_forwarding") {
  window.__storageMessages = [];
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (typeof data === "string") { try { data = JSON.parse(data); } catch (e) { return; } }
    if (!data || typeof data.subject !== "string") { return; }
    window.__storageMessages.push({origin: event.origin, subject: data.subject,
                                   key: data.key || "", has_value: !!data.value});
  });
}
"""


def person_for(flavor: str, role: str) -> str:
    return TEACHER if role == "teacher" else STUDENTS[flavor]


def expect_home_and_account(run: BrowserRun, scope, person: str, role: str, where: str) -> None:
    """The greeting on the landing page, then the Account page through the nav.
    `scope` is the tool iframe (a FrameLocator) or a window of the tool (a Page)."""
    shown = scope if isinstance(scope, Page) else None  # screenshot the LMS page around a frame
    expect(scope.get_by_role("heading", level=1, name=f"Hello, {person}")).to_be_visible()
    home_link = "Course dashboard" if role == "teacher" else "My playlists"
    expect(scope.get_by_role("link", name=home_link)).to_have_attribute("aria-current", "page")
    run.shot(f"{where} {role} home", page=shown)

    scope.get_by_role("link", name="Account", exact=True).click()
    expect(scope.get_by_role("heading", level=1, name="Your account")).to_be_visible()
    expect(scope.locator("dt:text-is('Name') + dd")).to_have_text(person)
    expect(scope.locator("dt:text-is('Role in this course') + dd")).to_have_text(
        "Teacher" if role == "teacher" else "Student")
    run.shot(f"{where} {role} account", page=shown)
    account = run.requests_to("/account", "GET")
    assert account, "no request for the account page reached the tool"
    assert parse_qs(account[-1].url.split("?", 1)[-1]).get("t"), \
        "the Account link must carry the session token (t=…), not rely on a cookie"


def cookie_header(request) -> str:
    return request.all_headers().get("cookie", "")


def assert_platform_storage_used(run: BrowserRun, stack: Stack) -> None:
    """login_storage put the secret in the LMS's storage frame, launch_storage
    read it back and re-posted the launch with it, then removed it."""
    login = run.requests_to("/lti/login", "POST")
    assert len(login) == 1 and login[0].response().status == 200, \
        "the login should answer with the platform-storage page (login_storage.html)"
    launches = run.requests_to("/lti/launch", "POST")
    assert [r.response().status for r in launches] == [200, 303], \
        "expected the launch_storage page (200), then the launch re-posted with the secret (303)"
    reposted = parse_qs(launches[1].post_data or "")
    assert reposted.get("pathwise_storage_checked") == ["1"]
    assert reposted.get("pathwise_storage_secret", [""])[0], \
        "the re-posted launch carries no secret read from platform storage"

    storage = run.page.frame(name="post_message_forwarding")
    assert storage is not None, "the course page has no platform-storage frame"
    # The delete is posted just before the launch form is submitted: wait for it.
    storage.wait_for_function(
        "() => (window.__storageMessages || []).filter(m => m.subject === 'lti.put_data')"
        ".length >= 2")
    seen = storage.evaluate("window.__storageMessages")
    assert {m["origin"] for m in seen} == {stack.tool_url}
    assert [(m["subject"], m["has_value"]) for m in seen] == [
        ("lti.put_data", True), ("lti.get_data", False), ("lti.put_data", False)], seen
    assert len({m["key"] for m in seen}) == 1 and seen[0]["key"].startswith("pathwise_state_")
    # Single use: nothing of the tool's is left in the LMS's storage.
    run.page.wait_for_function(
        "() => Object.keys(localStorage).every(k => k.indexOf('pathwise_state_') < 0)")


@pytest.mark.parametrize("cookies", ["allowed", "third_party_blocked"])
@pytest.mark.parametrize("role", ["teacher", "student"])
@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_launch_in_iframe(open_browser, stack: Stack, flavor: str, role: str,
                          cookies: str) -> None:
    person = person_for(flavor, role)
    run = open_browser(cookies=cookies)
    run.context.add_init_script(RECORD_STORAGE_MESSAGES)
    sandbox = stack.sandboxes[flavor]
    run.sign_in(sandbox, person)
    frame = run.open_tool(sandbox)
    expect_home_and_account(run, frame, person, role, where=f"{flavor} iframe")

    if flavor == "canvas":
        # Canvas offers lti_storage_target: platform storage is preferred.
        assert_platform_storage_used(run, stack)
    else:
        # Moodle: the state cookie set at login came back on the next step.
        (step,) = run.requests_to("/lti/login/continue", "GET")
        assert step.response().status == 302
        assert "lti_state_" in cookie_header(step), "the state cookie did not come back"
    if cookies == "third_party_blocked":
        kept = run.tool_cookies()
        assert kept, "the tool's partitioned session cookie should still be stored"
        assert all(c.get("partitionKey") for c in kept), f"unpartitioned tool cookies: {kept}"


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_canvas_without_any_tool_cookie_uses_platform_storage(open_browser, stack: Stack,
                                                               role: str) -> None:
    person = person_for("canvas", role)
    run = open_browser(cookies="tool_blocked")
    run.context.add_init_script(RECORD_STORAGE_MESSAGES)
    sandbox = stack.sandboxes["canvas"]
    run.sign_in(sandbox, person)
    frame = run.open_tool(sandbox)
    expect_home_and_account(run, frame, person, role, where="canvas iframe")

    assert_platform_storage_used(run, stack)
    with_cookie = [f"{r.method} {r.url[:80]}" for r in run.tool_requests if cookie_header(r)]
    assert not with_cookie, f"requests to the tool carried a cookie: {with_cookie}"
    assert run.tool_cookies() == [], "the browser should have kept no cookie of the tool"


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_moodle_without_any_tool_cookie_offers_new_window(open_browser, stack: Stack,
                                                          role: str) -> None:
    person = person_for("moodle", role)
    run = open_browser(cookies="tool_blocked")
    sandbox = stack.sandboxes["moodle"]
    run.sign_in(sandbox, person)
    frame = run.open_tool(sandbox)

    expect(frame.get_by_role("heading", level=1, name="Open Pathwise in a new window")) \
        .to_be_visible()
    run.shot("moodle iframe new-window offer")
    (step,) = run.requests_to("/lti/login/continue", "GET")
    assert step.response().status == 200
    in_frame = [r for r in run.tool_requests if r.frame.page == run.page]
    assert not [r.url for r in in_frame if cookie_header(r)], "a tool cookie reached the frame"

    with run.context.expect_page() as opened:
        frame.get_by_role("link", name="Continue in a new window").click()
    popup = opened.value
    popup.wait_for_load_state()
    expect_home_and_account(run, popup, person, role, where="moodle new window")
    assert popup.url.startswith(stack.tool_url + "/account?"), popup.url
    # The frame keeps its offer; the LMS page itself is untouched.
    expect(frame.get_by_role("link", name="Continue in a new window")).to_be_visible()
