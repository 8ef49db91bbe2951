"""A requests-based "browser" for the sandbox LMS and the tool, over real HTTP.

It signs into the sandbox as a seeded person, opens a course link (or a
deep-linking placement), and follows every auto-submitted step between the
two sites the way a browser with JavaScript would:

    sandbox course page → framed /lti/initiate (auto-POST) → tool /lti/login
    → [tool /lti/login/continue] → sandbox authorization (auto-POST)
    → tool /lti/launch → the tool's first page

and, for deep linking, the tool's return page (auto-POST of the signed `JWT`)
back to the sandbox. Canvas's platform storage (`lti.put_data` /
`lti.get_data` to the sandbox's storage frame) is emulated with a dict, as
the sandbox's frame would answer.

Cookies: the sandbox's own session cookie lives in the requests jar. The
tool's cookies are `Secure`, which requests (rightly) never sends over plain
http, so they are kept per browser and sent explicitly to the tool's origin,
as a browser would to the https deployment.
"""

from __future__ import annotations

import html
import secrets
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

MAX_STEPS = 20


class DriverError(AssertionError):
    """A step answered something a working launch never does."""


@dataclass
class Form:
    id: str | None
    action: str
    method: str
    fields: dict[str, str]


class _Page(HTMLParser):
    """The forms (hidden and named inputs, first submit button ignored), the
    tool frame's src and the platform-storage element of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.frame_src: str | None = None
        self.storage: dict[str, str] | None = None
        self._form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("id"), a.get("action", ""), a.get("method", "get").lower(),
                              {})
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button"):
                self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "iframe" and a.get("id") == "tool-frame":
            self.frame_src = a.get("src")
        elif tag == "div" and a.get("id") == "pw-storage":
            self.storage = {k[5:]: v for k, v in a.items() if k.startswith("data-")}

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def form(text: str, form_id: str | None = None) -> Form:
    """The page's form with this id (or its first form)."""
    forms = parse(text).forms
    for f in forms:
        if form_id is None or f.id == form_id:
            return f
    raise DriverError(f"no form {form_id!r} on the page: {text[:400]!r}")


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def token_of(url: str) -> str | None:
    return (parse_qs(urlsplit(url).query).get("t") or [None])[0]


@dataclass
class ToolPage:
    """Where a flow ended: the last response and, on a tool page, its session token."""

    response: requests.Response
    token: str | None

    @property
    def url(self) -> str:
        return self.response.url

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def status(self) -> int:
        return self.response.status_code


class LmsBrowser:
    """One person's browser: a sandbox session and the tool's cookies."""

    def __init__(self, sandbox_url: str, tool_url: str, *, timeout: float = 20.0) -> None:
        self.sandbox_url = sandbox_url.rstrip("/")
        self.tool_url = tool_url.rstrip("/")
        self.tool_origin = origin(self.tool_url)
        self.sandbox_origin = origin(self.sandbox_url)
        self.timeout = timeout
        self.http = requests.Session()
        self.tool_cookies: dict[str, str] = {}
        self.platform_storage: dict[str, str] = {}  # the LMS storage frame (Canvas)
        self.history: list[str] = []

    def close(self) -> None:
        self.http.close()

    # -- HTTP with the right cookies ----------------------------------------------------
    def _request(self, method: str, url: str, data: dict | None = None) -> requests.Response:
        headers = {}
        to_tool = origin(url) == self.tool_origin
        if to_tool and self.tool_cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.tool_cookies.items())
        self.history.append(f"{method} {url}")
        if to_tool:
            # Keep the sandbox's jar out of the tool's requests (same host, other port).
            response = requests.request(method, url, data=data, headers=headers,
                                        timeout=self.timeout, allow_redirects=False)
            self.tool_cookies.update(response.cookies.items())
        else:
            response = self.http.request(method, url, data=data, timeout=self.timeout,
                                         allow_redirects=False)
        return response

    def get(self, url: str) -> requests.Response:
        return self._request("GET", urljoin(self.sandbox_url + "/", url))

    def post(self, url: str, data: dict) -> requests.Response:
        return self._request("POST", urljoin(self.sandbox_url + "/", url), data)

    # -- the sandbox ------------------------------------------------------------------
    def sign_in(self, course_id: int, user_id: int) -> None:
        response = self.http.post(f"{self.sandbox_url}/session",
                                  data={"course_id": course_id, "user_id": user_id},
                                  timeout=self.timeout, allow_redirects=False)
        if response.status_code != 303:
            raise DriverError(f"sandbox sign-in refused: {response.status_code} "
                              f"{response.text[:300]!r}")

    def open(self, path: str) -> ToolPage:
        """Open a sandbox launch page (a link, a deep-linking placement) and
        follow the framed launch to its end."""
        page = self.get(path)
        if page.status_code != 200:
            return ToolPage(page, None)
        src = parse(page.text).frame_src
        if not src:
            raise DriverError(f"no tool frame on {path}: {page.text[:400]!r}")
        return self.follow(self.get(html.unescape(src)))

    def open_link(self, course_id: int, link_id: int) -> ToolPage:
        return self.open(f"/courses/{course_id}/launch/link/{link_id}")

    def open_deep_linking(self, course_id: int, placement: str) -> ToolPage:
        return self.open(f"/courses/{course_id}/launch/deep_link/{placement}")

    def open_launch(self, launch_id: str) -> ToolPage:
        """Follow a launch row created directly in the sandbox (its framed initiation)."""
        return self.follow(self.get(f"/lti/initiate/{launch_id}"))

    # -- following what a browser follows -------------------------------------------------
    def submit(self, f: Form, base_url: str, **overrides: str) -> requests.Response:
        url = urljoin(base_url, f.action) if f.action else base_url
        data = {**f.fields, **overrides}
        if f.method == "post":
            return self._request("POST", url, data)
        parts = urlsplit(url)
        query = "&".join(f"{k}={requests.utils.quote(v)}" for k, v in data.items())
        return self._request("GET", parts._replace(query=query).geturl())

    def follow(self, response: requests.Response) -> ToolPage:
        """Follow redirects, auto-posted forms and platform-storage pages until
        a page that waits for a person (or an error)."""
        for _ in range(MAX_STEPS):
            if response.status_code in (301, 302, 303, 307, 308):
                response = self._request("GET", urljoin(response.url,
                                                        response.headers["Location"]))
                continue
            if response.status_code != 200 or "html" not in response.headers.get(
                    "Content-Type", ""):
                break
            page = parse(response.text)
            if page.storage is not None and page.storage.get("mode") == "put":
                self.platform_storage[page.storage["key"]] = page.storage.get("value", "")
                response = self._request("GET", urljoin(response.url, page.storage["next"]))
                continue
            if page.storage is not None and page.storage.get("mode") == "get":
                secret = self.platform_storage.pop(page.storage.get("key", ""), "")
                launch = next(f for f in page.forms if f.id == "pw-launch-form")
                response = self.submit(launch, response.url, pathwise_storage_secret=secret)
                continue
            auto = next((f for f in page.forms if f.id in ("autopost", "dl-return")), None)
            if auto is not None:
                response = self.submit(auto, response.url)
                continue
            break
        else:
            raise DriverError("too many steps: " + " → ".join(self.history[-MAX_STEPS:]))
        return ToolPage(response, token_of(response.url)
                        if origin(response.url) == self.tool_origin else None)


class Tool:
    """The tool's pages with a session token (what the tool's own links and
    forms carry), for the steps after a launch."""

    def __init__(self, tool_url: str, token: str, *, timeout: float = 20.0) -> None:
        self.url = tool_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.url + path, params={"t": self.token, **params},
                            timeout=self.timeout, allow_redirects=False)

    def post(self, path: str, data: dict | list | None = None, files: dict | None = None
             ) -> requests.Response:
        """POST a form with the token; `data` may be a list of pairs (repeated names)."""
        pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
        return requests.post(self.url + path, data=[("t", self.token), *pairs], files=files,
                             timeout=self.timeout, allow_redirects=False)


# -- the tool and a sandbox LMS served on loopback -------------------------------------------


def _serve(dispatch, port: int = 0):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, dispatch, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True, name=f"serve-{server.server_port}")
    thread.start()
    return server


def _registration(args: list[str]) -> dict:
    """`lti-tool platform add` arguments as add_platform's keywords."""
    names = {"--issuer": "issuer", "--client-id": "client_id",
             "--auth-login-url": "auth_login_url", "--auth-token-url": "auth_token_url",
             "--jwks-url": "jwks_url", "--deployment-id": "deployment_ids", "--name": "name"}
    out: dict = {"deployment_ids": []}
    pairs = args[2:]
    for flag, value in zip(pairs[::2], pairs[1::2], strict=True):
        key = names[flag]
        if key == "deployment_ids":
            out[key].append(value)
        else:
            out[key] = value
    return out


@dataclass
class Stack:
    """The tool (Flask app on a threaded werkzeug server, optionally with the
    inline passback worker thread) and one sandbox LMS with test controls,
    registered with each other as `lti-tool sandbox` does."""

    flavor: str
    root: Path
    database_url: str
    keys_dir: Path
    tool_url: str
    sandbox_url: str
    sandbox_port: int
    app: Any
    sandbox_app: Any
    seeded: dict
    _tool_server: Any = None
    _sandbox_server: Any = None
    _worker_stop: Any = None
    _worker_threads: list = field(default_factory=list)

    # -- people and places in the sandbox ---------------------------------------------
    @property
    def course_id(self) -> int:
        return self.seeded["course_id"]

    @property
    def teacher_id(self) -> int:
        return self.seeded["teacher_ids"][0]

    @property
    def student_ids(self) -> list[int]:
        return self.seeded["student_ids"]

    def browser(self, user_id: int) -> LmsBrowser:
        b = LmsBrowser(self.sandbox_url, self.tool_url)
        b.sign_in(self.course_id, user_id)
        return b

    def sandbox_db(self):
        from lti_tool.sandbox import storage

        return storage.connect(self.sandbox_app.extensions["lti_sandbox"].db_path)

    def sub_of(self, user_id: int) -> str:
        """The launch `sub` of a sandbox user (Canvas: a UUID; Moodle: the id)."""
        if self.flavor == "moodle":
            return str(user_id)
        conn = self.sandbox_db()
        try:
            return conn.execute("SELECT uuid FROM users WHERE id = ?", (user_id,)).fetchone()[0]
        finally:
            conn.close()

    def user_id(self, username: str) -> int:
        """A seeded person's sandbox id by username ("kwatanabe")."""
        conn = self.sandbox_db()
        try:
            return conn.execute("SELECT id FROM users WHERE username = ?",
                                (username,)).fetchone()[0]
        finally:
            conn.close()

    def add_students(self, count: int) -> list[int]:
        from lti_tool.sandbox import add_students

        ids = add_students(self.sandbox_app, count)
        self.seeded["student_ids"] = [*self.student_ids, *ids]
        return ids

    # -- test controls ----------------------------------------------------------------
    def _controls(self, method: str, path: str, **kwargs) -> Any:
        response = requests.request(method, f"{self.sandbox_url}/sandbox/{path}", timeout=10,
                                    **kwargs)
        assert response.status_code in (200, 201), response.text[:300]
        return response.json()

    def gradebook(self) -> dict:
        return self._controls("GET", f"gradebook.json?course={self.course_id}&history=1")

    def service_requests(self, match: str | None = None) -> list[dict]:
        return self._controls("GET", "requests" + (f"?match={match}" if match else ""))[
            "requests"]

    def clear_requests(self) -> None:
        self._controls("DELETE", "requests")

    def fault(self, **rule: Any) -> dict:
        return self._controls("POST", "faults", json=rule)

    def clear_faults(self) -> None:
        self._controls("DELETE", "faults")

    # -- lifecycle --------------------------------------------------------------------
    def stop_sandbox(self) -> None:
        """Take the LMS off the network: connections to its port are refused."""
        self._sandbox_server.shutdown()
        self._sandbox_server.server_close()
        self._sandbox_server = None

    def start_sandbox(self) -> None:
        """Serve the same sandbox (data, faults, request log) on the same port again."""
        self._sandbox_server = _serve(self.sandbox_app, self.sandbox_port)

    def start_worker(self) -> None:
        """The embedded mode's inline passback thread (worker.start_inline)."""
        from lti_tool.passback.worker import start_inline

        if self._worker_stop is None:
            before = set(threading.enumerate())
            self._worker_stop = start_inline(self.database_url, self.keys_dir)
            self._worker_threads = [t for t in threading.enumerate()
                                    if t not in before and t.name == "pathwise-passback"]

    def stop_worker(self) -> None:
        from lti_tool.passback import worker

        if self._worker_stop is not None:
            self._worker_stop.set()
            worker.poke()
            for thread in self._worker_threads:
                thread.join(15)  # after the batch in hand, if any
                assert not thread.is_alive(), "the inline passback thread did not stop"
            self._worker_stop = None

    def close(self) -> None:
        self.stop_worker()
        if self._tool_server is not None:
            self._tool_server.shutdown()
            self._tool_server.server_close()
        if self._sandbox_server is not None:
            self.stop_sandbox()


def build_stack(root: Path, flavor: str, *, database_url: str | None = None,
                inline_worker: bool = True, latency_ms: int = 0) -> Stack:
    """Migrate a tool database, make its key, serve the tool and a seeded
    sandbox (test controls on) on free loopback ports, register the sandbox."""
    from lti_tool import create_app
    from lti_tool.db import migrate, session_scope
    from lti_tool.launch import keys
    from lti_tool.launch.registrations import add_platform
    from lti_tool.sandbox import create_sandbox_app, registration_args, seed

    root.mkdir(parents=True, exist_ok=True)
    keys_dir = root / "keys"
    keys.ensure_key(keys_dir)
    (root / "instance").mkdir(exist_ok=True)
    database_url = database_url or f"sqlite:///{root / 'instance' / 'pathwise.sqlite3'}"
    migrate(database_url)

    holder: dict[str, Any] = {}
    tool_server = _serve(lambda environ, start: holder["tool"](environ, start))
    tool_url = f"http://127.0.0.1:{tool_server.server_port}"
    sandbox_server = _serve(lambda environ, start: holder["sandbox"](environ, start))
    sandbox_url = f"http://127.0.0.1:{sandbox_server.server_port}"

    sandbox_app = create_sandbox_app(flavor=flavor, base_url=sandbox_url, tool_url=tool_url,
                                     db_path=str(root / f"sandbox-{flavor}.db"),
                                     latency_ms=latency_ms, test_controls=True)
    seeded = seed(sandbox_app)
    with session_scope(database_url) as session:
        add_platform(session, **_registration(registration_args(sandbox_app)))
    app = create_app({"instance_path": root / "instance", "database_url": database_url,
                      "keys_dir": keys_dir, "base_url": tool_url,
                      "secret_key": "e2e-" + secrets.token_hex(8), "inline_worker": False})
    holder.update(tool=app, sandbox=sandbox_app)
    stack = Stack(flavor=flavor, root=root, database_url=database_url, keys_dir=keys_dir,
                  tool_url=tool_url, sandbox_url=sandbox_url,
                  sandbox_port=sandbox_server.server_port, app=app, sandbox_app=sandbox_app,
                  seeded=seeded, _tool_server=tool_server, _sandbox_server=sandbox_server)
    if inline_worker:
        stack.start_worker()
    return stack


# -- Pathwise flows the passback tests share ------------------------------------------------

STANDARDS_CSV = ("code,title,description,group\n"
                 "F.1,Equivalent fractions,Recognise equivalent fractions,Fractions\n"
                 "F.2,Compare fractions,Compare fractions with unlike denominators,Fractions\n")
DL_PLACEMENT = {"canvas": "assignment_selection", "moodle": "ContentArea"}
PLAYLIST_TITLE = "Fractions unit"


def db_rows(stack: Stack, sql: str, **params) -> list:
    """Rows from the tool's database (ids the pages' forms use, outbox states)."""
    import sqlalchemy as sa

    from lti_tool.db import get_engine

    with get_engine(stack.database_url).connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def wait_for(check, timeout: float = 10.0, interval: float = 0.1):
    """Poll `check()` until it returns something truthy; fail with its last value."""
    import time

    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s; last: {value!r}")


def teacher_picker(stack: Stack) -> tuple[LmsBrowser, Tool]:
    """The teacher opens the deep-linking placement: the picker, with its session."""
    browser = stack.browser(stack.teacher_id)
    page = browser.open_deep_linking(stack.course_id, DL_PLACEMENT[stack.flavor])
    assert page.status == 200 and page.token, page.text[:500]
    assert "Add a Pathwise playlist" in page.text
    return browser, Tool(stack.tool_url, page.token)


def build_playlist(stack: Stack, tool: Tool) -> tuple[int, dict[str, int]]:
    """Standards by CSV, a playlist targeting both, an item aligned to both."""
    r = tool.post("/course/standards",
                  files={"file": ("s.csv", STANDARDS_CSV.encode(), "text/csv")})
    assert r.status_code == 200, r.text[:500]
    std = dict(db_rows(stack, "SELECT code, id FROM standard"))
    r = tool.post("/course/playlists", [("title", PLAYLIST_TITLE), ("description", "Unit 3"),
                                        ("standards", str(std["F.1"])),
                                        ("standards", str(std["F.2"]))])
    assert r.status_code == 303, r.text[:500]
    pid = max(row[0] for row in db_rows(stack, "SELECT id FROM playlist"))
    r = tool.post(f"/course/playlists/{pid}/items/new",
                  [("kind", "practice"), ("title", "Practice set"), ("tag", "must_do"),
                   ("standards", str(std["F.1"])), ("standards", str(std["F.2"]))])
    assert r.status_code == 303, r.text[:500]
    return pid, std


def deep_link(stack: Stack, browser: LmsBrowser, tool: Tool, playlist_id: int,
              points: str = "100") -> int:
    """Choose the playlist in the picker (graded) and follow the signed answer
    back to the sandbox; returns the sandbox's new link id."""
    import json

    picker = tool.get("/dl/pick")
    assert picker.status_code == 200 and f'value="{playlist_id}"' in picker.text
    answer = tool.post("/dl/return", [("playlist", str(playlist_id)), ("graded", "1"),
                                      ("score_maximum", points)])
    assert answer.status_code == 200, answer.text[:500]
    landed = browser.follow(answer)
    assert landed.status == 200, landed.text[:500]
    assert landed.url.startswith(stack.sandbox_url), landed.url
    assert "Content added" in landed.text and PLAYLIST_TITLE in landed.text
    conn = stack.sandbox_db()
    try:
        found = [r["id"] for r in conn.execute("SELECT id, custom FROM resource_links")
                 if json.loads(r["custom"] or "{}").get("pathwise_playlist")
                 == str(playlist_id)]
    finally:
        conn.close()
    assert len(found) == 1, found
    return found[0]


@dataclass
class Course:
    """A playlist placed by deep linking with passback on (share of standards
    at mastery, out of 100), every sandbox student enrolled by roster sync,
    and the course calculating mastery as the latest score."""

    stack: Stack
    teacher: Tool
    playlist_id: int
    placement_id: int
    link_id: int
    std: dict[str, int]
    own_item: str  # the placement's own column (its line item URL)

    def students(self) -> dict[str, int]:
        """{launch sub: Pathwise user id} of every active student."""
        return dict(db_rows(self.stack, "SELECT u.sub, u.id FROM lti_user u JOIN enrollment e "
                            "ON e.user_id = u.id WHERE e.role = 'student' AND e.active"))

    def record(self, levels: dict[int, tuple[int, ...]]) -> None:
        """The teacher records evidence for the class: {user id: (F.1, F.2)},
        or {user id: (F.1,)} for F.1 alone."""
        width = min(len(v) for v in levels.values())
        for index, code in enumerate(("F.1", "F.2")[:width]):
            form = {f"score-{pk}": str(v[index]) for pk, v in levels.items()}
            r = self.teacher.post(f"/course/standards/{self.std[code]}/evidence",
                                  {**form, "source": "checkpoint"})
            assert r.status_code == 200, r.text[:500]

    def results(self) -> dict[str, dict]:
        """{sub: result} of the own column in the sandbox's gradebook."""
        book = self.stack.gradebook()
        item = next(i for i in book["line_items"] if i["id"] == self.own_item)
        return {r["userId"]: r for r in item["results"]}


def expected_share(levels: tuple[int, ...], maximum: float = 100.0) -> float:
    """The share rule, computed here: standards at mastery (3 on the 0-4 scale)
    of the playlist's 2 (one with no evidence is not at mastery)."""
    return maximum * sum(1 for v in levels if v >= 3) / 2


def setup_course(stack: Stack, *, enable: bool = True) -> Course:
    import re

    browser, picker = teacher_picker(stack)
    playlist_id, std = build_playlist(stack, picker)
    r = picker.post("/course/settings", {"method": "latest"})
    assert r.status_code == 200, r.text[:500]
    link_id = deep_link(stack, browser, picker, playlist_id)
    page = browser.open_link(stack.course_id, link_id)
    assert page.status == 200 and "/course/placements/" in page.url, page.url
    placement_id = int(re.search(r"/course/placements/(\d+)", page.url).group(1))
    teacher = Tool(stack.tool_url, page.token)
    r = teacher.post("/course/roster/sync")
    assert r.status_code == 303, r.text[:500]
    book = stack.gradebook()
    own = next(i["id"] for i in book["line_items"]
               if i["resourceId"] == f"pathwise-playlist-{playlist_id}")
    course = Course(stack, teacher, playlist_id, placement_id, link_id, std, own)
    if enable:
        enable_passback(course)
    return course


def enable_passback(course: Course, rule: str = "share", points: str = "100") -> None:
    r = course.teacher.post(f"/course/placements/{course.placement_id}",
                            {"action": "enable", "rule": rule, "score_maximum": points})
    assert r.status_code == 303, r.text[:800]
