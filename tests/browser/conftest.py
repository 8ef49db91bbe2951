"""Browser tests: the tool served on http://localhost:<port> (gunicorn, as an
operator runs it), the Canvas- and Moodle-flavoured sandbox LMSs on
http://127.0.0.1:<port> (another site, so the tool really is a cross-site
iframe), and Debian's Chromium driven by Playwright.

Each test gets its own Chromium profile, whose Preferences file decides what
happens to cookies: all allowed, third-party cookies blocked (partitioned
cookies still work), or every cookie of the tool blocked when it is framed by
the sandbox. Screenshots of each step go to the test's tmp_path; on failure
their paths, the tool frame's HTML and the requests to the tool are printed
with the failure.

Chromium or axe-core missing: the tests are skipped, or fail under CI=true.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_launch import ServerProcess, free_port, tool_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
IN_CI = os.environ.get("CI", "").lower() == "true"
TIMEOUT_MS = 15_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Seeded by lti_tool.sandbox.seed: one teacher, a student with a non-ASCII
# name and one with an apostrophe (both must come through the launch intact).
TEACHER = "Dolores Ram\u00edrez"
STUDENTS = {"canvas": "Mateo Fern\u00e1ndez", "moodle": "Liam O'Connor"}
COOKIE_MODES = ("allowed", "third_party_blocked", "tool_blocked")

ARTIFACTS = pytest.StashKey["BrowserRun"]()
SCRIPT_BODY = re.compile(r"(<script[^>]*>)[\s\S]*?(</script>)")


def require(ok: bool, reason: str) -> None:
    """Skip when a browser-test prerequisite is missing; under CI=true fail."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Sandbox:
    flavor: str
    url: str                 # the sandbox's home page ("pick a person")
    tool_link: str           # href of the link on the course page that opens the tool

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")


@dataclass(frozen=True)
class Stack:
    tool_url: str
    tool_port: int
    sandboxes: dict[str, Sandbox]
    server: ServerProcess
    env: dict[str, str]      # the tool's environment (for its CLI)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`lti-tool init`, both sandboxes registered through the same code path as
    `lti-tool demo` (cli._start_sandbox), then `lti-tool serve` on localhost."""
    import subprocess

    from lti_tool.cli import _start_sandbox
    from lti_tool.db import dispose_engines

    root = tmp_path_factory.mktemp("browser-stack")
    port = free_port()
    tool_url = f"http://localhost:{port}"
    env = tool_env(root, tool_url)
    done = subprocess.run([sys.executable, "-m", "lti_tool.cli", "init"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"lti-tool init:\n{done.stdout}{done.stderr}"

    started = []
    # _start_sandbox registers the sandbox with `lti-tool platform add`, which
    # reads the tool's settings from the environment: set it only meanwhile.
    # What that command prints goes to a file rather than the first test's output.
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        for name, value in env.items():
            if name.startswith("LTI_TOOL_"):
                mp.setenv(name, value)
        for flavor in ("canvas", "moodle"):
            _, server, url = _start_sandbox(flavor, "127.0.0.1", free_port(), tool_url,
                                            root / "instance")
            threading.Thread(target=server.serve_forever, daemon=True,
                             name=f"sandbox-{flavor}").start()
            started.append((flavor, server, url))
    dispose_engines()
    (root / "platform-add.json").write_text(printed.getvalue(), encoding="utf-8")
    links = {"canvas": "/courses/1107/launch/nav", "moodle": "/courses/2/launch/link/5"}
    sandboxes = {flavor: Sandbox(flavor, url, links[flavor]) for flavor, _, url in started}

    server = ServerProcess(
        [sys.executable, "-m", "lti_tool.cli", "serve", "--host", "localhost",
         "--port", str(port), "--workers", "2"],
        env={**env, "GUNICORN_CMD_ARGS": "--no-control-socket"}, log_path=root / "serve.log")
    try:
        server.wait_ready(tool_url + "/healthz")
        yield Stack(tool_url=tool_url, tool_port=port, sandboxes=sandboxes, server=server,
                    env=env)
    finally:
        server.stop()
        for _, sandbox_server, _ in started:
            sandbox_server.shutdown()
            sandbox_server.server_close()


@pytest.fixture(scope="session")
def playwright_api() -> Iterator[Any]:
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing (Debian's chromium package: "
                               "`make browser-deps` installs it)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:  # pragma: no cover - it is a test dependency
        require(False, "the playwright Python package is not installed (pip install -e '.[test]')")

    # Assertions wait as long as actions (a cold first launch can take a few seconds).
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as api:
        yield api


@pytest.fixture(scope="session")
def axe_source() -> str:
    require(AXE_JS.exists(), f"{AXE_JS.relative_to(ROOT)} is missing (npm package axe-core: "
                             "`make browser-deps` or `npm ci`)")
    return AXE_JS.read_text(encoding="utf-8")


def _preferences(mode: str, stack: Stack) -> dict[str, Any]:
    if mode == "allowed":
        return {"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}}
    profile: dict[str, Any] = {"cookie_controls_mode": 1, "block_third_party_cookies": True}
    if mode == "tool_blocked":
        # A content-setting exception: no cookie at all for the tool while it
        # is framed by a sandbox (partitioned ones included); the tool opened
        # top-level (the new window) still has its cookies.
        profile["content_settings"] = {"exceptions": {"cookies": {
            f"{stack.tool_url},{sandbox.origin}": {"setting": 2}
            for sandbox in stack.sandboxes.values()}}}
    return {"profile": profile}


@dataclass
class BrowserRun:
    """One Chromium profile and its first page, plus what the test saw."""

    stack: Stack
    context: Any
    page: Any
    out: Path
    shots: list[Path] = field(default_factory=list)
    tool_requests: list[Any] = field(default_factory=list)

    # -- evidence ---------------------------------------------------------------
    def shot(self, name: str, page: Any = None) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.out / f"{len(self.shots) + 1:02d}-{slug}.png"
        (page or self.page).screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def tool_cookies(self) -> list[dict[str, Any]]:
        """Every cookie the browser keeps for the tool, partitioned or not."""
        return [c for c in self.context.cookies() if c["domain"] == "localhost"]

    def requests_to(self, path: str, method: str | None = None) -> list[Any]:
        return [r for r in self.tool_requests
                if r.url.split("?")[0] == self.stack.tool_url + path
                and (method is None or r.method == method)]

    # -- the sandbox LMS ----------------------------------------------------------
    def sign_in(self, sandbox: Sandbox, person: str) -> None:
        from playwright.sync_api import expect

        page = self.page
        page.goto(sandbox.url)
        page.get_by_role("radio", name=re.compile(re.escape(person))).check()
        page.get_by_role("button", name="Open the course").click()
        expect(page.get_by_text(f"Signed in as {person}")).to_be_visible()
        self.shot(f"{sandbox.flavor} course page")

    def open_tool(self, sandbox: Sandbox) -> Any:
        """Click the course's link to the tool; returns the tool frame's locator."""
        from playwright.sync_api import expect

        self.page.locator(f'a[href="{sandbox.tool_link}"]').click()
        frame = self.page.frame_locator("iframe#tool-frame")
        expect(self.page.locator("iframe#tool-frame")).to_be_visible()
        return frame

    def tool_frame(self) -> Any:
        """The tool iframe as a Frame (for evaluate, HTML and axe)."""
        return self.page.locator("iframe#tool-frame").element_handle().content_frame()

    def describe(self) -> str:
        lines = [f"screenshots ({len(self.shots)}):"] + [f"  {p}" for p in self.shots]
        lines.append("requests to the tool:")
        lines += [f"  {r.method} {r.url[:160]}" for r in self.tool_requests]
        return "\n".join(lines)


@pytest.fixture
def open_browser(playwright_api, stack: Stack, tmp_path: Path,
                 request: pytest.FixtureRequest) -> Iterator[Callable[..., BrowserRun]]:
    """`open_browser(cookies=MODE, bypass_csp=False)` -> a fresh Chromium profile."""
    contexts = []

    def _open(cookies: str = "allowed", bypass_csp: bool = False) -> BrowserRun:
        assert cookies in COOKIE_MODES, cookies
        profile = tmp_path / f"profile-{len(contexts)}"
        (profile / "Default").mkdir(parents=True)
        (profile / "Default" / "Preferences").write_text(
            json.dumps(_preferences(cookies, stack)))
        context = playwright_api.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            bypass_csp=bypass_csp, viewport={"width": 1100, "height": 900})
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        run = BrowserRun(stack=stack, context=context, page=page, out=tmp_path)
        context.on("request", lambda r: run.tool_requests.append(r)
                   if r.url.startswith(stack.tool_url + "/") else None)
        request.node.stash[ARTIFACTS] = run
        return run

    yield _open
    for context in contexts:
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On failure, add the screenshots' paths, the requests to the tool and the
    tool frame's HTML to the report (the browser is still open here: fixtures
    are torn down after the call phase is reported)."""
    outcome = yield
    report = outcome.get_result()
    run = item.stash.get(ARTIFACTS, None)
    if run is None or not report.failed or report.when != "call":
        return
    text = run.describe()
    try:
        for page in run.context.pages:  # the LMS page, and any window the tool opened
            run.shot("at failure", page=page)
            text += f"\n  {run.shots[-1]} (at failure: {page.url[:100]})"
        frames = [f for p in run.context.pages for f in p.frames
                  if f.url.startswith(run.stack.tool_url)]
        for number, frame in enumerate(frames, 1):
            path = run.out / f"tool-page-{number}-{frame.name or 'window'}.html"
            html = frame.content()
            path.write_text(html, encoding="utf-8")
            # Injected scripts (axe) would drown the markup: elide their bodies.
            body = SCRIPT_BODY.sub(r"\1…\2", html[html.find("<body"):])
            text += f"\ntool page {frame.url[:120]} (HTML in {path}):\n{body[:3000]}"
    except Exception as exc:  # the browser may be what failed
        text += f"\n(could not capture the page: {exc})"
    report.sections.append(("browser artifacts", text))
