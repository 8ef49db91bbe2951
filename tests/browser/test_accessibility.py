"""axe-core (npm package, node_modules/axe-core/axe.min.js) on the tool's
landing pages as people see them: inside the LMS's iframe. Any violation of
impact "serious" or "critical" fails the test, listed with its elements.

The tool's CSP is `script-src 'self' 'nonce-…'`, which would refuse the
injected axe script: these contexts are opened with Playwright's
`bypass_csp=True`. Only here: the launch tests keep the CSP (frame-ancestors
included) in force."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import STUDENTS, TEACHER, BrowserRun, Stack

FAILING_IMPACTS = ("serious", "critical")


def axe_violations(run: BrowserRun, axe_source: str, frame=None) -> list[dict]:
    """Run axe on the document in the tool frame (or `frame`: a tool page
    opened top-level); its serious and critical violations."""
    frame = frame or run.tool_frame()
    assert frame is not None and frame.url.startswith(run.stack.tool_url), frame
    if not frame.evaluate("typeof window.axe === 'object'"):
        frame.add_script_tag(content=axe_source)
    results = frame.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return {url: r.url, passes: r.passes.length, violations: r.violations};
    }""")
    # axe really looked at the tool's page, not an empty or foreign document.
    assert results["url"].startswith(run.stack.tool_url) and results["passes"] > 0, results
    return [v for v in results["violations"] if v.get("impact") in FAILING_IMPACTS]


def describe(page_name: str, violations: list[dict]) -> str:
    lines = [f"{page_name}: {len(violations)} serious/critical accessibility violation(s)"]
    for v in violations:
        lines.append(f"- [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"    {' '.join(node['target'])}: {node.get('failureSummary', '')}"
                         .replace("\n", " "))
    return "\n".join(lines)


def check(run: BrowserRun, axe_source: str, page_name: str, found: dict[str, str],
          frame=None) -> None:
    violations = axe_violations(run, axe_source, frame)
    if violations:
        found[page_name] = describe(page_name, violations)


@pytest.mark.parametrize("flavor,role", [("canvas", "teacher"), ("moodle", "student")])
def test_landing_and_account_pages_are_accessible(axe_source: str, open_browser, stack: Stack,
                                                  flavor: str, role: str) -> None:
    person = TEACHER if role == "teacher" else STUDENTS[flavor]
    run = open_browser(cookies="allowed", bypass_csp=True)
    sandbox = stack.sandboxes[flavor]
    run.sign_in(sandbox, person)
    frame = run.open_tool(sandbox)
    found: dict[str, str] = {}

    expect(frame.get_by_role("heading", level=1, name=f"Hello, {person}")).to_be_visible()
    run.shot(f"{role} home")
    check(run, axe_source, f"{role} home", found)

    frame.get_by_role("link", name="Account", exact=True).click()
    expect(frame.get_by_role("heading", level=1, name="Your account")).to_be_visible()
    run.shot(f"{role} account")
    check(run, axe_source, f"{role} account page", found)

    assert not found, "\n\n".join(found.values())


def test_new_window_page_is_accessible(axe_source: str, open_browser, stack: Stack) -> None:
    run = open_browser(cookies="tool_blocked", bypass_csp=True)
    sandbox = stack.sandboxes["moodle"]
    run.sign_in(sandbox, STUDENTS["moodle"])
    frame = run.open_tool(sandbox)
    expect(frame.get_by_role("link", name="Continue in a new window")).to_be_visible()
    run.shot("new-window offer")
    found: dict[str, str] = {}
    check(run, axe_source, "new-window page", found)
    assert not found, "\n\n".join(found.values())
