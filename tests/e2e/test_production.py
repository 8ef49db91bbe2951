"""The production mode end to end: two `lti-tool serve` processes and two
`lti-tool worker` processes on one PostgreSQL database, two LMSs.

As an operator runs it: `lti-tool init` on an empty database, the two sandbox
LMSs (Canvas and Moodle flavours, test controls on, served on loopback)
registered with `lti-tool platform add` and their registration arguments, then
two `serve` processes (gunicorn, different ports, the same database, secret and
keys) and two `worker` processes, the inline worker off. The tool's public URL
is serve A's; a browser "behind the load balancer" of serve B sends its
requests for that URL to B's port with the public Host header.

Each LMS's teacher places a playlist by deep linking (one through A, one
through B), turns passback on, and then, all at once: every student of both
LMSs launches from the LMS through A or B (alternately), takes the quick check
(evidence), and the id_token of that launch is posted again to the *other*
serve process, which refuses it; the teachers launch through both processes
too and record evidence for a third of their class. Then the outbox must
drain (bounded) and each LMS's gradebook holds exactly the expected score for
every student, each (user, timestamp) stored once.

Needs PostgreSQL: LTI_TOOL_TEST_DATABASE_URL (skipped without it, failed
without it under CI=true, as tests/conftest.py does)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.databases import throwaway_postgres
from tests.support.http_launch import ServerProcess, error_code, free_port, tool_env
from tests.support.lms_driver import (
    DL_PLACEMENT,
    LmsBrowser,
    Stack,
    Tool,
    db_rows,
    deep_link,
    origin,
    wait_for,
)

EXTRA_STUDENTS = 8          # per LMS, besides the six seeded ones
CONCURRENCY = 8             # browsers at once
DRAIN_TIMEOUT = 60.0        # seconds for the workers to deliver every score
GUNICORN_CMD_ARGS = ("--no-control-socket --access-logfile - "
                     "--access-logformat 'pid=%(p)s \"%(r)s\" %(s)s'")
STANDARDS_CSV = ("code,title,description,group\n"
                 "F.1,Equivalent fractions,Recognise equivalent fractions,Fractions\n"
                 "F.2,Compare fractions,Compare fractions with unlike denominators,Fractions\n")
QUESTIONS = ("Q: What is 3/4 of 12?\n= 9\nWhy: 12 ÷ 4 × 3\n"
             "Q: Which is larger?\n- 1/2\n* 3/4\n- 2/3\n")
ALL_RIGHT, ONE_WRONG = {"q-0": "9", "q-1": "1"}, {"q-0": "8", "q-1": "1"}


# -- a browser behind the load balancer ----------------------------------------------------
class RoutedBrowser(LmsBrowser):
    """An LMS user's browser whose requests for the tool's public URL reach
    one chosen serve process (the public Host header kept, as a load balancer
    forwards it). Remembers the launch POST that the tool accepted, to replay it."""

    def __init__(self, sandbox_url: str, tool_url: str, backend: str) -> None:
        super().__init__(sandbox_url, tool_url)
        self.backend = backend.rstrip("/")
        self.accepted_launch: tuple[dict, dict[str, str]] | None = None

    def _request(self, method: str, url: str, data: dict | None = None) -> requests.Response:
        if origin(url) != self.tool_origin:
            return super()._request(method, url, data)
        headers = {"Host": urlsplit(self.tool_url).netloc}
        if self.tool_cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.tool_cookies.items())
        self.history.append(f"{method} {url} (via {self.backend})")
        response = requests.request(method, self.backend + url[len(self.tool_origin):],
                                    data=data, headers=headers, timeout=self.timeout,
                                    allow_redirects=False)
        self.tool_cookies.update(response.cookies.items())
        if (method == "POST" and urlsplit(url).path == "/lti/launch"
                and response.status_code == 303 and data and "id_token" in data):
            self.accepted_launch = (dict(data), dict(headers))
        response.url = url   # what the browser's address bar shows
        return response


class RoutedTool(Tool):
    """The tool's pages with a session token, through one serve process."""

    def __init__(self, public_url: str, backend: str, token: str) -> None:
        super().__init__(backend, token)
        self.host = urlsplit(public_url).netloc

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.url + path, params={"t": self.token, **params},
                            headers={"Host": self.host}, timeout=self.timeout,
                            allow_redirects=False)

    def post(self, path: str, data: dict | list | None = None, files: dict | None = None
             ) -> requests.Response:
        pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
        return requests.post(self.url + path, data=[("t", self.token), *pairs], files=files,
                             headers={"Host": self.host}, timeout=self.timeout,
                             allow_redirects=False)


# -- the installation ----------------------------------------------------------------------
@dataclass
class Production:
    public_url: str
    backends: dict[str, str]          # "A"/"B" -> base URL of that serve process
    servers: dict[str, ServerProcess]
    workers: list[ServerProcess]
    stacks: dict[str, Stack]          # flavour -> the sandbox LMS (lms_driver's Stack)
    database_url: str
    env: dict[str, str]

    def other(self, name: str) -> str:
        return "B" if name == "A" else "A"

    def browser(self, stack: Stack, user_id: int, via: str) -> RoutedBrowser:
        browser = RoutedBrowser(stack.sandbox_url, self.public_url, self.backends[via])
        browser.sign_in(stack.course_id, user_id)
        return browser

    def tool(self, via: str, token: str) -> RoutedTool:
        return RoutedTool(self.public_url, self.backends[via], token)

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{proc.log_tail(4000)}" for name, proc in
                         [*self.servers.items(), *(("worker", w) for w in self.workers)])


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "lti_tool.cli", *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"lti-tool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _serve_sandbox(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True, name=f"sandbox-{server.server_port}").start()
    return server


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """An empty, throw-away PostgreSQL database (the operator's `init` migrates
    it); the production mode runs on PostgreSQL only."""
    with throwaway_postgres("pathwise_prod") as url:
        yield url


@pytest.fixture(scope="module")
def production(database_url: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Production]:
    from lti_tool.sandbox import add_students, create_sandbox_app, registration_args, seed

    root = tmp_path_factory.mktemp("production")
    ports = {"A": free_port(), "B": free_port()}
    backends = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    public_url = backends["A"]
    env = tool_env(root, public_url, database_url)
    # One install: the same database, signing keys and secret for every process.
    env.update(LTI_TOOL_SECRET_KEY=secrets.token_urlsafe(32), LTI_TOOL_INLINE_WORKER="0",
               GUNICORN_CMD_ARGS=GUNICORN_CMD_ARGS)
    _cli(env, "init")

    stacks: dict[str, Stack] = {}
    servers: dict[str, ServerProcess] = {}
    workers: list[ServerProcess] = []
    try:
        for flavor in ("canvas", "moodle"):
            holder: dict = {}
            server = _serve_sandbox(lambda environ, start, h=holder: h["app"](environ, start))
            sandbox_url = f"http://127.0.0.1:{server.server_port}"
            app = create_sandbox_app(flavor=flavor, base_url=sandbox_url, tool_url=public_url,
                                     db_path=str(root / f"sandbox-{flavor}.db"),
                                     test_controls=True)
            holder["app"] = app
            seeded = seed(app)
            seeded["student_ids"] = [*seeded["student_ids"],
                                     *add_students(app, EXTRA_STUDENTS)]
            stacks[flavor] = Stack(flavor=flavor, root=root, database_url=database_url,
                                   keys_dir=Path(env["LTI_TOOL_KEYS_DIR"]), tool_url=public_url,
                                   sandbox_url=sandbox_url, sandbox_port=server.server_port,
                                   app=None, sandbox_app=app, seeded=seeded,
                                   _sandbox_server=server)
            # What `lti-tool sandbox` does in-process, as the administrator's command.
            _cli(env, *registration_args(app))
        for name, port in ports.items():
            servers[name] = ServerProcess(
                [sys.executable, "-m", "lti_tool.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "2"],
                env=env, log_path=root / f"serve-{name}.log")
        for index in range(2):
            workers.append(ServerProcess([sys.executable, "-m", "lti_tool.cli", "worker"],
                                         env=env, log_path=root / f"worker-{index}.log"))
        for name, server in servers.items():
            server.wait_ready(backends[name] + "/healthz")
        for worker in workers:
            assert worker.process.poll() is None, worker.log_tail()
        yield Production(public_url, backends, servers, workers, stacks, database_url, env)
    finally:
        for proc in [*workers, *servers.values()]:
            proc.stop()
        for stack in stacks.values():
            stack.close()


# -- the teacher's part --------------------------------------------------------------------
@dataclass
class Placed:
    stack: Stack
    playlist_id: int
    quick_check_id: int
    placement_id: int
    link_id: int
    standards: dict[str, int]
    own_item: str                 # the placement's gradebook column (line item URL)


def place_playlist(prod: Production, stack: Stack, via: str) -> Placed:
    """The teacher builds a playlist in the picker, places it by deep linking,
    opens the new link, syncs the roster and turns passback on (share of the
    two standards at mastery, out of 100)."""
    browser = prod.browser(stack, stack.teacher_id, via)
    page = browser.open_deep_linking(stack.course_id, DL_PLACEMENT[stack.flavor])
    assert page.status == 200 and page.token, page.text[:500]
    picker = prod.tool(via, page.token)
    r = picker.post("/course/standards",
                    files={"file": ("s.csv", STANDARDS_CSV.encode(), "text/csv")})
    assert r.status_code == 200, r.text[:500]
    r = picker.get("/course/playlists")
    assert r.status_code == 200, r.text[:500]
    std = {code: int(pk) for pk, code in re.findall(
        r'name="standards" value="(\d+)"> ([\w.]+)</label>', r.text)}
    assert set(std) == {"F.1", "F.2"}, std
    r = picker.post("/course/settings", {"method": "latest"})
    assert r.status_code == 200, r.text[:500]
    r = picker.post("/course/playlists", [("title", "Fractions unit"), ("description", "Unit 3"),
                                          ("standards", str(std["F.1"])),
                                          ("standards", str(std["F.2"]))])
    assert r.status_code == 303, r.text[:500]
    playlist_id = int(re.search(r"/course/playlists/(\d+)", r.headers["Location"]).group(1))
    r = picker.post(f"/course/playlists/{playlist_id}/items/new",
                    [("kind", "quick_check"), ("title", "Quick check F.1"), ("tag", "must_do"),
                     ("standards", str(std["F.1"])), ("questions", QUESTIONS)])
    assert r.status_code == 303, r.text[:500]
    quick_check_id = int(re.search(r"#item-(\d+)", r.headers["Location"]).group(1))

    link_id = deep_link(stack, browser, picker, playlist_id)
    page = browser.open_link(stack.course_id, link_id)
    assert page.status == 200 and "/course/placements/" in page.url, page.url
    placement_id = int(re.search(r"/course/placements/(\d+)", page.url).group(1))
    teacher = prod.tool(via, page.token)
    r = teacher.post("/course/roster/sync")
    assert r.status_code == 303, r.text[:500]
    r = teacher.post(f"/course/placements/{placement_id}",
                     {"action": "enable", "rule": "share", "score_maximum": "100"})
    assert r.status_code == 303, r.text[:800]
    book = stack.gradebook()
    own = next(i["id"] for i in book["line_items"]
               if i["resourceId"] == f"pathwise-playlist-{playlist_id}")
    return Placed(stack, playlist_id, quick_check_id, placement_id, link_id, std, own)


# -- the concurrent part -------------------------------------------------------------------
@dataclass
class Outcome:
    who: str
    via: str
    replay_via: str
    replay_status: int
    replay_code: str | None


def student_visit(prod: Production, placed: Placed, user_id: int, via: str,
                  answers: dict[str, str]) -> Outcome:
    stack = placed.stack
    browser = prod.browser(stack, user_id, via)
    try:
        page = browser.open_link(stack.course_id, placed.link_id)
        assert page.status == 200 and f"/my/playlists/{placed.playlist_id}" in page.url, (
            f"{stack.flavor} student {user_id} via {via}: {page.status} {page.url} "
            f"{page.text[:300]!r}")
        right = sum(1 for k, v in answers.items() if v == ALL_RIGHT[k])
        r = prod.tool(via, page.token).post(
            f"/my/playlists/{placed.playlist_id}/items/{placed.quick_check_id}/check", answers)
        assert r.status_code == 200 and f"You answered {right} of 2 correctly" in r.text, (
            f"{stack.flavor} student {user_id} quick check via {via}: {r.status_code} "
            f"{r.text[:300]!r}")
        return replay(prod, browser, f"{stack.flavor} student {user_id}", via)
    finally:
        browser.close()


def teacher_visit(prod: Production, placed: Placed, via: str, scores: dict[int, str]) -> Outcome:
    """The teacher opens the placed link (its LMS grades page) and records
    evidence on F.2 for some students."""
    stack = placed.stack
    browser = prod.browser(stack, stack.teacher_id, via)
    try:
        page = browser.open_link(stack.course_id, placed.link_id)
        assert page.status == 200 and f"/course/placements/{placed.placement_id}" in page.url, (
            f"{stack.flavor} teacher via {via}: {page.status} {page.url}")
        if scores:
            r = prod.tool(via, page.token).post(
                f"/course/standards/{placed.standards['F.2']}/evidence",
                {**{f"score-{pk}": v for pk, v in scores.items()}, "source": "checkpoint"})
            assert r.status_code == 200, r.text[:500]
        return replay(prod, browser, f"{stack.flavor} teacher", via)
    finally:
        browser.close()


def replay(prod: Production, browser: RoutedBrowser, who: str, via: str) -> Outcome:
    """Post the accepted launch's id_token and state again, with the same
    cookies, to the other serve process."""
    assert browser.accepted_launch is not None, f"{who}: no launch was accepted"
    data, headers = browser.accepted_launch
    other = prod.other(via)
    r = requests.post(prod.backends[other] + "/lti/launch", data=data, headers=headers,
                      timeout=20, allow_redirects=False)
    return Outcome(who, via, other, r.status_code, error_code(r))


def student_pks(prod: Production, stack: Stack, user_ids: list[int]) -> dict[int, int]:
    """{sandbox user id: Pathwise user id} (the roster sync made them)."""
    subs = {stack.sub_of(u): u for u in user_ids}
    rows = db_rows(stack, "SELECT sub, id FROM lti_user")
    return {subs[sub]: pk for sub, pk in rows if sub in subs}


def outbox_states(stack: Stack) -> Counter:
    return Counter(dict(db_rows(stack, "SELECT status, COUNT(*) FROM score_outbox "
                                       "GROUP BY status")))


def test_two_servers_two_workers_two_lms(production: Production) -> None:
    prod = production
    started = time.monotonic()
    # Each LMS's teacher through a different serve process.
    placed = {"canvas": place_playlist(prod, prod.stacks["canvas"], "A"),
              "moodle": place_playlist(prod, prod.stacks["moodle"], "B")}

    # Who does what: alternate processes; odd students get one answer wrong;
    # the teacher gives every third student Mastery (3) on F.2.
    jobs = []
    expected: dict[str, dict[str, float]] = {}
    teacher_scores: dict[str, dict[int, str]] = {}
    turn = 0
    for flavor, p in placed.items():
        stack = p.stack
        students = stack.student_ids
        pks = student_pks(prod, stack, students)
        assert len(pks) == len(students), f"{flavor}: roster sync missed some: {pks}"
        on_f2 = students[::3]
        teacher_scores[flavor] = {pks[u]: "3" for u in on_f2}
        expected[flavor] = {}
        for index, user in enumerate(students):
            right = index % 2 == 0
            expected[flavor][stack.sub_of(user)] = 50.0 * right + 50.0 * (user in on_f2)
            via = "AB"[turn % 2]
            turn += 1
            jobs.append((student_visit, (prod, p, user, via,
                                         ALL_RIGHT if right else ONE_WRONG)))
        # The teacher launches through both; the evidence goes through A for
        # Canvas, through B for Moodle.
        evidence_via = "A" if flavor == "canvas" else "B"
        for via in "AB":
            jobs.append((teacher_visit, (prod, p, via,
                                         teacher_scores[flavor] if via == evidence_via else {})))
    order = list(range(len(jobs)))
    # Interleave: students of both LMSs and both teachers at once.
    order.sort(key=lambda i: (i * 7919) % len(jobs))
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        futures = [pool.submit(jobs[i][0], *jobs[i][1]) for i in order]
        outcomes: list[Outcome] = []
        failures: list[str] = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=60))
            except Exception as exc:  # noqa: BLE001 — every failure is listed below
                failures.append(f"{type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} of {len(jobs)} visits failed:\n" + "\n".join(
        failures[:10]) + "\n" + prod.logs()
    concurrent_done = time.monotonic()

    # Every replay was refused by the other process, which never saw that launch.
    not_refused = [o for o in outcomes if (o.replay_status, o.replay_code)
                   != (401, "STATE_ALREADY_USED")]
    assert not not_refused, not_refused
    assert {o.replay_via for o in outcomes} == {"A", "B"}
    # Both processes accepted launches and refused replays (their access logs).
    for name, server in prod.servers.items():
        log = server.log_tail(10**7)
        assert re.search(r'"POST /lti/launch HTTP/1.1" 303', log), f"serve {name}: no launch"
        assert re.search(r'"POST /lti/launch HTTP/1.1" 401', log), f"serve {name}: no replay"

    # The workers drain the outbox, and each LMS shows exactly the expected scores.
    def results() -> dict[str, dict[str, float | None]]:
        out = {}
        for flavor, p in placed.items():
            item = next(i for i in p.stack.gradebook()["line_items"] if i["id"] == p.own_item)
            out[flavor] = {r["userId"]: r["scoreGiven"] for r in item["results"]}
        return out

    def settled():
        states = outbox_states(placed["canvas"].stack)
        got = results()
        done = not (states["pending"] or states["sending"]) and got == expected
        return (states, got) if done else None

    try:
        states, got = wait_for(settled, DRAIN_TIMEOUT, interval=0.5)
    except AssertionError:
        states, got = outbox_states(placed["canvas"].stack), results()
        wrong = {f: {sub: (got[f].get(sub), want) for sub, want in expected[f].items()
                     if got[f].get(sub) != want} for f in expected}
        pytest.fail(f"not drained within {DRAIN_TIMEOUT:.0f} s: outbox {dict(states)}, "
                    f"wrong or missing scores (got, expected): {wrong}\n{prod.logs()}")
    assert states["dead"] == 0, states
    drained = time.monotonic()
    for proc in [*prod.servers.values(), *prod.workers]:
        assert proc.process.poll() is None, f"{proc.args[3:5]} exited:\n{proc.log_tail()}"

    for flavor, p in placed.items():
        check_each_score_stored_once(prod, p, flavor)
    print(f"\nsetup {concurrent_done - started:.1f} s incl. {len(jobs)} concurrent visits; "
          f"drained in {drained - concurrent_done:.1f} s; outbox {dict(states)}")


def check_each_score_stored_once(prod: Production, placed: Placed, flavor: str) -> None:
    """Every score the LMS accepted was one outbox row, accepted with one payload
    (an identical resend is allowed); every row the workers sent as new arrived."""
    stack = placed.stack
    accepted: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for entry in stack.service_requests("/scores"):
        score = entry.get("score")
        if entry["method"] == "POST" and score and entry["status"] and \
                200 <= entry["status"] < 300:
            accepted[(score["userId"], score["timestamp"])].append(score)
    twice = {k: v for k, v in accepted.items() if any(s != v[0] for s in v)}
    assert not twice, f"{flavor}: (user, timestamp) stored with different payloads: {twice}"
    course_subs = {stack.sub_of(u) for u in [stack.teacher_id, *stack.student_ids]}
    rows = [r for r in db_rows(stack, "SELECT user_sub, score_ts, status, last_error "
                                      "FROM score_outbox WHERE placement_id = :p",
                               p=placed.placement_id) if r[0] in course_subs]
    sent = {(r[0], r[1]) for r in rows if r[2] == "sent" and not r[3]}
    assert set(accepted) <= {(r[0], r[1]) for r in rows}, (
        f"{flavor}: the LMS stored scores no outbox row holds: "
        f"{set(accepted) - {(r[0], r[1]) for r in rows}}")
    assert {user for user, _ in accepted} >= {stack.sub_of(u) for u in stack.student_ids}, (
        f"{flavor}: some students have no score stored")
    missing = sent - set(accepted)
    assert not missing, f"{flavor}: sent but never stored: {missing}"
    # The final result of each student is the newest score the LMS accepted.
    newest: dict[str, str] = {}
    for user, stamp in accepted:
        newest[user] = max(newest.get(user, stamp), stamp)
    book = {r["userId"]: r for i in stack.gradebook()["line_items"] if i["id"] == placed.own_item
            for r in i["results"]}
    for user, stamp in newest.items():
        assert book[user]["timestamp"][:19] == stamp[:19], (flavor, user, book[user], stamp)
