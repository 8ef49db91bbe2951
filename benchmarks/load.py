"""Load benchmark: simulated users against the production mode on PostgreSQL.

Pathwise runs as an operator runs it in production: `lti-tool init`,
`lti-tool platform add` and `lti-tool serve` (gunicorn, its default worker
count) on a fresh, throw-away PostgreSQL database, with LTI_TOOL_INLINE_WORKER=0
and one `lti-tool worker` process beside it. A teacher builds the course
through the real pages (a standards CSV, a published playlist of 10 items with
a quick check); then `--users` simulated students (200) loop for `--duration`
seconds (120), each in its own thread with its own connection-pooled session:

    launch (TestPlatform-signed, over real HTTP: OIDC login, id_token, launch
    POST, first page) → their path page → the quick check (evidence and its
    rollup) → their path page again

with `--think` seconds (±50 %) between steps, while `--teachers` teachers (4)
launch and open the class progress and the gradebook. Every HTTP request is
timed on the client and checked (status, and what the page must say). It
reports, per kind of request and overall: count, throughput, p50/p95/p99 and
errors, PASS/FAIL for zero errors and p95 <= 250 ms, the CPU each process
kept busy (the client's own share included), the server-side time of each
request (gunicorn's access log) and what PostgreSQL's backends waited on.
See benchmarks/README.md.

    .venv/bin/python benchmarks/load.py [--duration 120] [--users 200] [--think 5]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform as pyplatform
import random
import re
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from gradebook import code_version, fresh_database, load_average, say  # noqa: E402
from launch import (  # noqa: E402
    _clean_env,
    _run,
    _wait_or_stop,
    machine_busy_seconds,
    percentile,
    server_cpu_seconds,
)

from lti_tool.db import get_engine  # noqa: E402
from tests.support.http_launch import (  # noqa: E402
    HttpLauncher,
    LaunchFailed,
    ServerProcess,
    free_port,
    tool_env,
)
from tests.support.platform import LTI, JwksServer, TestPlatform, canvas_flavor  # noqa: E402

DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_P95_MS = 250.0
TIMEOUT = 30.0   # a request slower than this is an error
IDLE_CLOSE = 1.5   # seconds idle before a simulated browser connects afresh
# The access log names the worker, the request and its server time (microseconds).
GUNICORN_CMD_ARGS = ("--no-control-socket --access-logfile - --access-logformat "
                     + shlex.quote("pid=%(p)s %(m)s %(U)s %(s)s %(D)s"))
ACCESS_LINE = re.compile(r"^pid=<?(\d+)>? (\w+) (\S+) (\d{3}) (\d+)$")

CSV = ("code,title,description,group\n"
       "F.1,Equivalent fractions,Recognise equivalent fractions,Fractions\n"
       "F.2,Compare fractions,Compare fractions with unlike denominators,Fractions\n"
       "F.3,Add fractions,Add fractions with like denominators,Fractions\n"
       "F.4,Explain,Explain a fraction strategy in words,Communication\n")
STANDARD_CODES = ("F.1", "F.2", "F.3", "F.4")
QUESTIONS = ("Q: What is 3/4 of 12?\n= 9\nWhy: 12 ÷ 4 × 3\n"
             "Q: Which is larger?\n- 1/2\n* 3/4\n- 2/3\n")
# (answer to q-0, answer to q-1) right and wrong: a student's attempt mixes them.
RIGHT, WRONG = ("9", "1"), ("8", "0")
PLAYLIST_TITLE = "Fractions unit (load)"
# Service claims (NRPS, AGS) are left out of the launches: their URLs are the
# hosted Canvas's, and the worker would try to reach them (roster sync). The
# load here is the tool's pages; passback under load is tests/e2e's business.
SERVICE_CLAIMS = ("https://purl.imsglobal.org/spec/lti-ags/claim/endpoint",
                  "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice")
RESOURCE_LINK = {"id": "load-link-1", "title": "Fractions unit"}

# Which kind of request a (method, path) is; anything else is "other".
KINDS = (
    ("login", "POST", re.compile(r"^/lti/login$")),
    ("login_hop", "GET", re.compile(r"^/lti/login/")),
    ("launch", "POST", re.compile(r"^/lti/launch$")),
    ("home", "GET", re.compile(r"^/home$")),
    ("path", "GET", re.compile(r"^/my/playlists/\d+$")),
    ("quick_check", "POST", re.compile(r"^/my/playlists/\d+/items/\d+/check$")),
    ("class_progress", "GET", re.compile(r"^/course/playlists/\d+/progress$")),
    ("gradebook", "GET", re.compile(r"^/course/gradebook$")),
)
KIND_ORDER = [k for k, _, _ in KINDS] + ["other"]


def classify(method: str, path: str) -> str:
    for kind, verb, pattern in KINDS:
        if method == verb and pattern.match(path):
            return kind
    return "other"


# -- recording ---------------------------------------------------------------------------
class Counted(Exception):
    """A request failed and was already counted as an error (status, timeout)."""


@dataclass
class Window:
    """The measured interval (perf_counter seconds): requests that start in it
    count for latency and throughput; errors count whenever they happen."""

    start: float = float("inf")
    end: float = float("inf")

    def holds(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass
class Recorder:
    """One simulated user's samples: no lock on the hot path, merged at the end."""

    window: Window
    samples: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list))   # kind -> [(start, seconds)]
    errors: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, started: float, seconds: float) -> None:
        if self.window.holds(started):
            self.samples[kind].append((started, seconds))

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 3:
            self.examples.append(f"{kind}: {detail[:300]}")


class TimedSession(requests.Session):
    """A requests session that times every request (body included) by kind and
    counts an error for a failed one (then raises Counted)."""

    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder
        self.last_used = 0.0

    def request(self, method, url, *args, **kwargs):  # noqa: D401 — requests' signature
        kind = classify(method.upper(), urlsplit(url).path)
        kwargs.setdefault("timeout", TIMEOUT)
        if time.perf_counter() - self.last_used > IDLE_CLOSE:
            # A connection idle this long is dropped, as a proxy closing idle
            # connections would: every step after a think pause connects anew,
            # the server's costlier case (serve itself keeps them for 75 s).
            self.close()
        started = time.perf_counter()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            self.recorder.add(kind, started, time.perf_counter() - started)
            self.recorder.fail(kind, f"{type(exc).__name__}: {exc}")
            raise Counted(kind) from exc
        finally:
            self.last_used = time.perf_counter()
        self.recorder.add(kind, started, time.perf_counter() - started)
        if response.status_code >= 400:
            self.recorder.fail(kind, f"HTTP {response.status_code} {method} "
                                     f"{urlsplit(url).path}: {response.text[:200]!r}")
            raise Counted(kind)
        return response


# -- the LMS -----------------------------------------------------------------------------
class LoadPlatform(TestPlatform):
    """The Canvas-shaped test LMS, with one fixed resource link (every launch
    opens the same activity, as in a real class) and no service claims."""

    __test__ = False

    def claims(self, nonce: str, role: str = "student", **overrides) -> dict:
        body = super().claims(nonce, role=role, **overrides)
        for claim in SERVICE_CLAIMS:
            body.pop(claim, None)
        body[LTI + "resource_link"] = dict(RESOURCE_LINK)
        return body


@dataclass(frozen=True)
class Person:
    sub: str
    name: str
    role: str

    def claims(self) -> dict:
        given, family = self.name.split(" ", 1)
        return {"sub": self.sub, "name": self.name, "given_name": given,
                "family_name": family, "email": f"{self.sub}@school.example"}


def token_of(url: str) -> str | None:
    return (parse_qs(urlsplit(url).query).get("t") or [None])[0]


def launch(launcher: HttpLauncher, person: Person) -> str:
    """One launch, each request timed by the session; returns the tool
    session token of the first page. Raises Counted or LaunchFailed."""
    step = launcher.login()
    claims = launcher.platform.claims(step.nonce, role=person.role, **{
        LTI + "target_link_uri": launcher.launch_url, **person.claims()})
    id_token = launcher.platform.sign(claims)
    response = launcher.post_launch(id_token, step.state, step.cookies)
    if response.status_code != 303 or "Location" not in response.headers:
        raise LaunchFailed(f"launch: HTTP {response.status_code}, not a redirect to the "
                           f"first page: {response.text[:200]!r}")
    page = launcher.http.get(urljoin(response.url, response.headers["Location"]),
                             allow_redirects=False)
    greeting = f"Hello, {html.escape(person.name)}"
    if page.status_code != 200 or greeting not in page.text:
        raise LaunchFailed(f"home: HTTP {page.status_code}, does not say {greeting!r}")
    token = token_of(page.url)
    if not token:
        raise LaunchFailed(f"home: no session token in {page.url}")
    return token


# -- the server ---------------------------------------------------------------------------
@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    platform: TestPlatform
    server: ServerProcess
    worker: ServerProcess
    database_url: str


def start_stack(root: Path, jwks: JwksServer, database_url: str,
                workers: int | None) -> Stack:
    """As an operator would: init, platform add, serve, and one worker."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _clean_env()
    env.update((k, v) for k, v in tool_env(root, base_url, database_url).items()
               if k.startswith("LTI_TOOL_"))
    # Every simulated user comes from one loopback address: the per-IP limits
    # protect a real deployment, not this measurement.
    env.update(LTI_TOOL_RATE_LIMIT_LOGIN="off", LTI_TOOL_RATE_LIMIT_LAUNCH="off",
               LTI_TOOL_INLINE_WORKER="0", GUNICORN_CMD_ARGS=GUNICORN_CMD_ARGS)
    cli = [sys.executable, "-m", "lti_tool.cli"]
    _run([*cli, "init"], env)
    platform = LoadPlatform(canvas_flavor(), jwks, base_url)
    reg = platform.registration()
    _run([*cli, "platform", "add", "--issuer", reg["issuer"], "--client-id", reg["client_id"],
          "--auth-login-url", reg["auth_login_url"], "--auth-token-url", reg["auth_token_url"],
          "--jwks-url", reg["jwks_url"], "--deployment-id", reg["deployment_ids"][0],
          "--name", reg["name"]], env)
    serve = [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        serve += ["--workers", str(workers)]
    server = ServerProcess(serve, env=env, log_path=root / "serve.log")
    _wait_or_stop(server, base_url + "/healthz")
    worker = ServerProcess([*cli, "worker"], env=env, log_path=root / "worker.log")
    time.sleep(0.5)
    if worker.process.poll() is not None:
        server.stop()
        worker.stop()
        raise RuntimeError("lti-tool worker exited:\n" + worker.log_tail())
    return Stack(base_url, env, platform, server, worker, database_url)


def gunicorn_workers(server: ServerProcess) -> int:
    from launch import _children

    return len(_children(server.process.pid))


def process_cpu_seconds(pid: int) -> float | None:
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL server process on this machine (all databases:
    other work on the same server counts too)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, rest = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        if head.split("(", 1)[-1] == "postgres":
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


# -- seeding through the pages ----------------------------------------------------------------
@dataclass
class Course:
    playlist_id: int
    quick_check_id: int
    item_ids: list[int]
    standard_ids: dict[str, int]


def _post(http: requests.Session, base_url: str, path: str, token: str, data=None,
          files=None, expect: int = 303) -> requests.Response:
    pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
    response = http.post(base_url + path, data=[("t", token), *pairs], files=files,
                         allow_redirects=False)
    if response.status_code != expect:
        raise RuntimeError(f"seeding: POST {path} answered {response.status_code}, "
                           f"expected {expect}: {response.text[:500]!r}")
    return response


def seed_course(stack: Stack, teacher: Person, asset_url: str) -> Course:
    """A teacher's launch, the standards CSV, a playlist of 10 items with a
    quick check, published: the pages a teacher uses, over HTTP."""
    recorder = Recorder(Window())   # nothing measured: a failure stops the run
    http = TimedSession(recorder)
    launcher = HttpLauncher(stack.base_url, stack.platform, session=http)
    try:
        token = launch(launcher, teacher)
        base = stack.base_url
        _post(http, base, "/course/standards", token,
              files={"file": ("standards.csv", CSV.encode(), "text/csv")}, expect=200)
        page = http.get(base + "/course/playlists", params={"t": token})
        std = {code: int(pk) for pk, code in re.findall(
            r'name="standards" value="(\d+)"> ([\w.]+)</label>', page.text)}
        if set(std) != set(STANDARD_CODES):
            raise RuntimeError(f"seeding: the playlist form offers standards {sorted(std)}")
        r = _post(http, base, "/course/playlists", token,
                  [("title", PLAYLIST_TITLE), ("description", "Unit 3: fractions"),
                   *(("standards", str(std[c])) for c in ("F.1", "F.2", "F.3"))])
        pid = int(re.search(r"/course/playlists/(\d+)", r.headers["Location"]).group(1))

        def add(**fields) -> int:
            fields.setdefault("tag", "must_do")
            pairs = [(k, v) for k, v in fields.items() if not isinstance(v, list)]
            pairs += [(k, x) for k, v in fields.items() if isinstance(v, list) for x in v]
            r = _post(http, base, f"/course/playlists/{pid}/items/new", token, pairs)
            return int(re.search(r"#item-(\d+)", r.headers["Location"]).group(1))

        ids = [
            add(kind="reading", title="How fractions work", standards=[str(std["F.1"])],
                body="<p>A fraction names equal parts of a whole.</p>"),
            # A loopback address: the embed check fetches it, and nothing else is reached.
            add(kind="resource", title="Fraction strips", url=asset_url,
                standards=[str(std["F.1"])]),
            add(kind="video", title="Fractions video", tag="may_do",
                url="https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
            add(kind="practice", title="Practice: equivalent fractions",
                standards=[str(std["F.1"])]),
        ]
        quick = add(kind="quick_check", title="Quick check F.1", standards=[str(std["F.1"])],
                    questions=QUESTIONS)
        ids.append(quick)
        ids.append(add(kind="practice", title="Practice: compare", standards=[str(std["F.2"])]))
        ids.append(add(kind="checkpoint", title="Checkpoint F.2", standards=[str(std["F.2"])],
                       prereq_standards=[str(std["F.1"])],
                       body="Explain to your teacher how you compared."))
        board = add(kind="choice_board", title="Show what you know", tag="challenge",
                    min_choices="1")
        ids.append(board)
        ids.append(add(kind="practice", title="Make a poster", board_id=str(board),
                       standards=[str(std["F.3"])]))
        ids.append(add(kind="practice", title="Record a podcast", board_id=str(board),
                       standards=[str(std["F.3"])]))
        _post(http, base, f"/course/playlists/{pid}/publish", token, {"published": "1"})
    finally:
        launcher.close()
    return Course(pid, quick, ids, std)


# -- simulated people ----------------------------------------------------------------------------
@dataclass
class Shared:
    stack: Stack
    course: Course
    stop: threading.Event
    think: float
    launched: set = field(default_factory=set)   # students whose launch completed

    def pause(self, rng: random.Random) -> bool:
        """Think for a while; False when the run is over."""
        if self.think > 0:
            self.stop.wait(rng.uniform(0.5, 1.5) * self.think)
        return not self.stop.is_set()


def student_loop(shared: Shared, person: Person, recorder: Recorder, start_in: float,
                 seed: int) -> None:
    rng = random.Random(seed)
    http = TimedSession(recorder)
    launcher = HttpLauncher(shared.stack.base_url, shared.stack.platform, session=http,
                            timeout=TIMEOUT)
    course, base = shared.course, shared.stack.base_url
    path_url = f"{base}/my/playlists/{course.playlist_id}"
    check_url = f"{path_url}/items/{course.quick_check_id}/check"
    if shared.stop.wait(start_in):
        return
    try:
        while not shared.stop.is_set():
            kind = "launch"
            try:
                token = launch(launcher, person)
                shared.launched.add(person.sub)
                if not shared.pause(rng):
                    break
                kind = "path"
                check_path_page(http.get(path_url, params={"t": token}), course)
                if not shared.pause(rng):
                    break
                kind = "quick_check"
                right = [rng.random() < 0.6 for _ in RIGHT]
                answers = {f"q-{i}": (RIGHT if ok else WRONG)[i] for i, ok in enumerate(right)}
                response = http.post(check_url, data={"t": token, **answers})
                said = f"You answered {sum(right)} of {len(right)} correctly"
                if response.status_code != 200 or said not in response.text:
                    raise LaunchFailed(f"quick check: HTTP {response.status_code}, "
                                       f"does not say {said!r}")
                if not shared.pause(rng):
                    break
                kind = "path"
                check_path_page(http.get(path_url, params={"t": token}), course,
                                done=course.quick_check_id if all(right) else None)
            except Counted:
                pass
            except LaunchFailed as exc:
                recorder.fail(kind_of_failure(exc, kind), str(exc))
            if not shared.pause(rng):
                break
    finally:
        launcher.close()


def kind_of_failure(exc: Exception, kind: str) -> str:
    """A content failure's kind: the launch's own messages name their step."""
    text = str(exc)
    if kind == "launch":
        if text.startswith("home"):
            return "home"
        if text.startswith("launch"):
            return "launch"
        return "login"
    return kind


def check_path_page(response: requests.Response, course: Course, done: int | None = None
                    ) -> None:
    if response.status_code != 200:
        raise LaunchFailed(f"path: HTTP {response.status_code}")
    text = response.text
    entries = text.count('class="entry state-')
    if entries != len(course.item_ids):
        raise LaunchFailed(f"path: {entries} items shown, expected {len(course.item_ids)}")
    if done is not None and f'id="item-{done}" class="entry state-done' not in text:
        raise LaunchFailed("path: the quick check just passed is not shown as done")


def teacher_loop(shared: Shared, person: Person, recorder: Recorder, start_in: float,
                 seed: int) -> None:
    rng = random.Random(seed)
    http = TimedSession(recorder)
    launcher = HttpLauncher(shared.stack.base_url, shared.stack.platform, session=http,
                            timeout=TIMEOUT)
    course, base = shared.course, shared.stack.base_url
    if shared.stop.wait(start_in):
        return
    try:
        while not shared.stop.is_set():
            kind = "launch"
            try:
                token = launch(launcher, person)
                if not shared.pause(rng):
                    break
                kind = "class_progress"
                known = len(shared.launched)
                r = http.get(f"{base}/course/playlists/{course.playlist_id}/progress",
                             params={"t": token})
                rows = r.text.count('<tr><th scope="row">')
                if r.status_code != 200 or rows < known:
                    raise LaunchFailed(f"class progress: HTTP {r.status_code}, {rows} students "
                                       f"shown, at least {known} launched")
                if not shared.pause(rng):
                    break
                kind = "gradebook"
                known = len(shared.launched)
                r = http.get(f"{base}/course/gradebook", params={"t": token})
                rows = r.text.count('<th scope="row" class="sticky-col">')
                cells = r.text.count('<td><a class="cell"')
                if r.status_code != 200 or rows < known or cells != rows * len(STANDARD_CODES):
                    raise LaunchFailed(f"gradebook: HTTP {r.status_code}, {rows} rows and "
                                       f"{cells} cells, at least {known} students launched")
            except Counted:
                pass
            except LaunchFailed as exc:
                recorder.fail(kind_of_failure(exc, kind), str(exc))
            if not shared.pause(rng):
                break
    finally:
        launcher.close()


# -- watching the database and the machine ---------------------------------------------------------
class Watcher:
    """Once a second: what the database's backends are doing (pg_stat_activity)
    and the machine's load."""

    def __init__(self, database_url: str, window: Window, interval: float = 1.0):
        self.engine = sa.create_engine(
            get_engine(database_url).url, pool_size=1, max_overflow=0)
        self.name = get_engine(database_url).url.database
        self.window = window
        self.interval = interval
        self.samples = 0
        self.backends: list[int] = []
        self.active: list[int] = []
        self.idle_in_tx: list[int] = []
        self.waits: Counter = Counter()   # wait_event of active backends, summed over samples
        self.blocked: Counter = Counter()  # statements seen waiting for a lock
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pg-watcher")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def _run(self) -> None:
        query = sa.text(
            "SELECT state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity "
            "WHERE datname = :db AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        try:
            with self.engine.connect() as conn:
                while not self._stop.wait(self.interval):
                    if not self.window.holds(time.perf_counter()):
                        continue
                    rows = conn.execute(query, {"db": self.name}).all()
                    conn.commit()
                    self.samples += 1
                    self.backends.append(len(rows))
                    active = [r for r in rows if r[0] == "active"]
                    self.active.append(len(active))
                    self.idle_in_tx.append(sum(1 for r in rows
                                               if (r[0] or "").startswith("idle in transaction")))
                    for _, kind, event, sql in active:
                        self.waits[f"{kind}:{event}" if kind else "on CPU"] += 1
                        if kind == "Lock":
                            self.blocked[" ".join(sql.split())] += 1
        except Exception as exc:  # noqa: BLE001 — diagnostics never stop the run
            self.error = f"{type(exc).__name__}: {exc}"

    def summary(self) -> dict:
        if not self.samples:
            return {"samples": 0, "error": self.error}
        n = self.samples
        return {
            "samples": n,
            "connections_mean": round(statistics.fmean(self.backends), 1),
            "connections_max": max(self.backends),
            "active_mean": round(statistics.fmean(self.active), 2),
            "active_max": max(self.active),
            "idle_in_transaction_mean": round(statistics.fmean(self.idle_in_tx), 2),
            # Average number of active backends in each state: "on CPU" is work,
            # Lock:* waits for another transaction, IO/LWLock the storage.
            "active_by_wait": {k: round(v / n, 2) for k, v in self.waits.most_common()},
            "statements_waiting_for_locks": dict(self.blocked.most_common(5)),
            "error": self.error,
        }


def table_scans(database_url: str) -> list[dict]:
    """Tables read by sequential scans during the run (a missing index shows here)."""
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT relname, seq_scan, seq_tup_read, idx_scan, n_live_tup "
            "FROM pg_stat_user_tables ORDER BY seq_tup_read DESC LIMIT 8")).all()
    return [{"table": r[0], "seq_scan": r[1], "seq_tup_read": r[2], "idx_scan": r[3],
             "rows": r[4]} for r in rows if r[1]]


def server_times(log_path: Path, start: int, end: int) -> dict[str, dict]:
    """Server-side time per kind from gunicorn's access log between two offsets."""
    with open(log_path, "rb") as fh:
        fh.seek(start)
        chunk = fh.read(max(0, end - start)).decode(errors="replace")
    times: dict[str, list[float]] = defaultdict(list)
    pids: Counter = Counter()
    for line in chunk.splitlines():
        match = ACCESS_LINE.match(line.strip())
        if not match:
            continue
        pid, method, path, _status, micros = match.groups()
        times[classify(method, path)].append(int(micros) / 1000)
        pids[pid] += 1
    out = {kind: {"count": len(v), "p50_ms": round(percentile(v, 50), 1),
                  "p95_ms": round(percentile(v, 95), 1), "p99_ms": round(percentile(v, 99), 1)}
           for kind, v in times.items()}
    every = [t for v in times.values() for t in v]
    if every:
        out["overall"] = {"count": len(every), "p50_ms": round(percentile(every, 50), 1),
                          "p95_ms": round(percentile(every, 95), 1),
                          "p99_ms": round(percentile(every, 99), 1)}
    out["requests_per_worker_pid"] = dict(pids)
    out["total_ms"] = round(sum(every), 1)
    return out


# -- running -------------------------------------------------------------------------------------
def summarise(recorders: list[Recorder], seconds: float) -> dict:
    samples: dict[str, list[float]] = defaultdict(list)
    starts: list[tuple[float, float]] = []
    errors: Counter = Counter()
    examples: list[str] = []
    for rec in recorders:
        for kind, values in rec.samples.items():
            samples[kind] += [s for _, s in values]
            starts += values
        errors.update(rec.errors)
        examples += rec.examples

    def figures(values: list[float], errs: int) -> dict:
        out = {"count": len(values), "per_s": round(len(values) / seconds, 2), "errors": errs}
        if values:
            out.update(p50_ms=round(1000 * percentile(values, 50), 1),
                       p95_ms=round(1000 * percentile(values, 95), 1),
                       p99_ms=round(1000 * percentile(values, 99), 1),
                       max_ms=round(1000 * max(values), 1))
        return out

    kinds = {k: figures(samples[k], errors[k]) for k in KIND_ORDER if samples[k] or errors[k]}
    overall = figures([s for v in samples.values() for s in v], sum(errors.values()))
    # Throughput and p95 by 10 s slice: is the run steady, or does it drift?
    timeline = []
    if starts:
        first = min(t for t, _ in starts)
        slices: dict[int, list[float]] = defaultdict(list)
        for t, s in starts:
            slices[int((t - first) // 10)].append(s)
        for index in sorted(slices):
            values = slices[index]
            timeline.append({"from_s": index * 10, "requests": len(values),
                             "p95_ms": round(1000 * percentile(values, 95), 1)})
    return {"kinds": kinds, "overall": overall, "timeline": timeline,
            "error_examples": examples[:10]}


def run(args: argparse.Namespace, say) -> dict:
    jwks = JwksServer()
    version = code_version()
    with tempfile.TemporaryDirectory(prefix="pathwise-load-") as tmp, \
            fresh_database("postgresql", args.pg_admin_url, Path(tmp)) as database_url:
        root = Path(tmp)
        stack = start_stack(root, jwks, database_url, args.workers)
        try:
            say(f"serving on {stack.base_url}: {gunicorn_workers(stack.server)} gunicorn "
                f"workers, one lti-tool worker, database {urlsplit(database_url).path[1:]}")
            teacher0 = Person("load-teacher-0", "Grace Hopper", "teacher")
            course = seed_course(stack, teacher0, jwks.url.rsplit("/", 1)[0] + "/strips")
            say(f"seeded: playlist {course.playlist_id}, {len(course.item_ids)} items "
                f"(quick check {course.quick_check_id})")
            return measure(args, stack, course, say) | {"code": version}
        finally:
            stack.worker.stop()
            stack.server.stop()
            jwks.close()


def measure(args: argparse.Namespace, stack: Stack, course: Course, say) -> dict:
    window = Window()
    stop = threading.Event()
    shared = Shared(stack, course, stop, args.think)
    people = [(Person(f"load-student-{i}", f"Student Number{i}", "student"), student_loop)
              for i in range(args.users)]
    people += [(Person(f"load-teacher-{i}", f"Teacher Number{i}", "teacher"), teacher_loop)
               for i in range(1, args.teachers + 1)]
    recorders = [Recorder(window) for _ in people]
    threads = []
    for index, ((person, loop), rec) in enumerate(zip(people, recorders, strict=True)):
        # Arrivals spread over the ramp, in a shuffled order of people.
        start_in = args.ramp * ((index * 7919) % len(people)) / len(people)
        threads.append(threading.Thread(target=loop, args=(shared, person, rec, start_in,
                                                            args.seed * 100_003 + index),
                                        daemon=True, name=f"user-{index}"))
    watcher = Watcher(stack.database_url, window)
    say(f"{args.users} students and {args.teachers} teachers: ramp {args.ramp:g} s, then "
        f"measuring {args.duration:g} s (think {args.think:g} s ±50 % between steps)")
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    watcher.start()
    stop.wait(args.ramp)
    log_start = stack.server.log_path.stat().st_size
    cpu = {"client": time.process_time(), "server": server_cpu_seconds(stack.server),
           "worker": process_cpu_seconds(stack.worker.process.pid),
           "postgresql": postgres_cpu_seconds(), "machine": machine_busy_seconds()}
    window.start = time.perf_counter()
    window.end = window.start + args.duration
    loadavg_before = load_average()
    while (left := window.end - time.perf_counter()) > 0:
        stop.wait(min(left, 10))
        if args.progress:
            done = sum(len(v) for r in recorders for v in r.samples.values())
            say(f"  {time.perf_counter() - window.start:5.0f} s: {done} requests, "
                f"{sum(sum(r.errors.values()) for r in recorders)} errors")
    elapsed = time.perf_counter() - window.start
    used = {"client": time.process_time() - cpu["client"],
            "server": (server_cpu_seconds(stack.server) or 0) - (cpu["server"] or 0),
            "worker": (process_cpu_seconds(stack.worker.process.pid) or 0)
            - (cpu["worker"] or 0),
            "postgresql": postgres_cpu_seconds() - cpu["postgresql"],
            "machine": (machine_busy_seconds() or 0) - (cpu["machine"] or 0)}
    loadavg = load_average()
    stop.set()
    for thread in threads:
        thread.join(TIMEOUT + 5)
    watcher.stop()
    time.sleep(0.3)   # the last access-log lines
    log_end = stack.server.log_path.stat().st_size
    result = summarise(recorders, elapsed)
    cores = os.cpu_count() or 1
    busy = {k: round(v / elapsed, 2) for k, v in used.items()}
    # Anything else the machine did meanwhile (another test run, a browser):
    # figures taken while it is well above zero are not this tool's alone.
    busy["other"] = round(max(0.0, busy["machine"] - busy["client"] - busy["server"]
                              - busy["worker"] - busy["postgresql"]), 2)
    result["cpu_cores_busy"] = busy
    result["client_cpu_share_of_machine"] = round(used["client"] / (elapsed * cores), 3)
    result["client_cpu_ms_per_request"] = round(
        1000 * used["client"] / max(1, result["overall"]["count"]), 2)
    count = max(1, result["overall"]["count"])
    result["server_cpu_ms_per_request"] = round(1000 * used["server"] / count, 2)
    result["postgresql_cpu_ms_per_request"] = round(1000 * used["postgresql"] / count, 2)
    result["server_side"] = server_times(stack.server.log_path, log_start, log_end)
    # Little's law: requests being served at once, on average, against the
    # thread slots gunicorn has (workers x 4); near the slots = saturated.
    slots = 4 * len(result["server_side"]["requests_per_worker_pid"])
    result["server_side"]["in_service_mean"] = round(
        result["server_side"]["total_ms"] / 1000 / elapsed, 2)
    result["server_side"]["thread_slots"] = slots
    client_total = sum(s for r in recorders for v in r.samples.values() for _, s in v)
    result["client_in_flight_mean"] = round(client_total / elapsed, 2)
    result["postgresql"] = watcher.summary()
    result["table_scans"] = table_scans(stack.database_url)
    result["loadavg"] = {"start": loadavg_before, "end": loadavg}
    result["elapsed_s"] = round(elapsed, 2)
    result["wall_s"] = round(time.perf_counter() - began, 2)
    result["gunicorn_workers"] = len(result["server_side"]["requests_per_worker_pid"])
    if stack.worker.process.poll() is not None:
        result["worker_exited"] = stack.worker.process.returncode
    errors = result["overall"]["errors"]
    p95 = result["overall"].get("p95_ms")
    result["targets"] = {
        "zero_errors": {"target": 0, "value": errors, "pass": errors == 0},
        "p95_ms": {"target": TARGET_P95_MS, "value": p95,
                   "pass": p95 is not None and p95 <= TARGET_P95_MS},
    }
    return result


def report(result: dict, config: dict) -> str:
    lines = [
        f"Load: {config['users']} students + {config['teachers']} teachers, think "
        f"{config['think']:g} s, {result['elapsed_s']:.0f} s measured after a "
        f"{config['ramp']:g} s ramp; gunicorn workers: {result['gunicorn_workers']} "
        f"(x4 threads), one lti-tool worker; PostgreSQL; {config['cpus']} CPUs",
        "",
        f"{'request':16}{'count':>8}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'errors':>8}{'server p95':>12}",
    ]
    server = result["server_side"]
    rows = [*result["kinds"].items(), ("overall", result["overall"])]
    for kind, f in rows:
        lines.append(f"{kind:16}{f['count']:>8}{f['per_s']:>8.1f}{f.get('p50_ms', 0):>9.1f}"
                     f"{f.get('p95_ms', 0):>9.1f}{f.get('p99_ms', 0):>9.1f}"
                     f"{f.get('max_ms', 0):>9.1f}{f['errors']:>8}"
                     f"{server.get(kind, {}).get('p95_ms', float('nan')):>12.1f}")
    busy = result["cpu_cores_busy"]
    lines += ["", "CPU cores busy: " + ", ".join(f"{k} {v:.2f}" for k, v in busy.items())
              + f" (of {config['cpus']})",
              f"client (load generator) share of the machine: "
              f"{100 * result['client_cpu_share_of_machine']:.1f} % "
              f"({result['client_cpu_ms_per_request']:.2f} ms CPU per request); server "
              f"{result['server_cpu_ms_per_request']:.2f} ms, PostgreSQL "
              f"{result['postgresql_cpu_ms_per_request']:.2f} ms CPU per request"]
    if busy["other"] > 0.25:
        lines.append(f"WARNING: other work kept {busy['other']:.2f} cores busy during the run: "
                     "the latencies are not this tool's alone; run again on a quiet machine")
    side = result["server_side"]
    lines.append(f"requests in flight on average: {result['client_in_flight_mean']} seen by the "
                 f"clients, {side['in_service_mean']} inside gunicorn (of "
                 f"{side['thread_slots']} threads); the difference waits in queues "
                 "(accept backlog, CPU) or in the client")
    pg = result["postgresql"]
    if pg.get("samples"):
        waits = ", ".join(f"{k} {v}" for k, v in list(pg["active_by_wait"].items())[:5])
        lines.append(f"PostgreSQL: {pg['connections_mean']} connections, "
                     f"{pg['active_mean']} active on average (max {pg['active_max']}); "
                     f"active by wait: {waits or '-'}")
        locked = sum(v for k, v in pg["active_by_wait"].items() if k.startswith("Lock:"))
        launches = result["kinds"].get("launch", {}).get("per_s")
        if locked and launches:
            # Little's law again: backends waiting for a lock / launches per second.
            lines.append(f"  lock waits: {locked:.2f} backends on average, ~"
                         f"{1000 * locked / launches:.0f} ms per launch if the launches wait "
                         "(see the statements)")
        for sql, seen in pg["statements_waiting_for_locks"].items():
            lines.append(f"  waiting for a lock ({seen}x): {sql[:100]}")
    timeline = result["timeline"]
    if timeline:
        lines.append("per 10 s: " + "  ".join(f"{t['requests']}/{t['p95_ms']:.0f}ms"
                                              for t in timeline))
    lines.append("")
    for name, t in result["targets"].items():
        lines.append(f"target {name}: {t['value']} (target {t['target']}) -> "
                     f"{'PASS' if t['pass'] else 'FAIL'}")
    for example in result["error_examples"]:
        lines.append(f"  error: {example}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0,
                        help="seconds measured, after the ramp (default 120)")
    parser.add_argument("--users", type=int, default=200,
                        help="simulated students (default 200)")
    parser.add_argument("--teachers", type=int, default=4,
                        help="simulated teachers opening class progress and the gradebook "
                             "(default 4)")
    parser.add_argument("--think", type=float, default=5.0,
                        help="mean seconds between one person's steps, ±50 %% (default 5: "
                             "a brisk class; 0 = as fast as the server answers)")
    parser.add_argument("--ramp", type=float, default=10.0,
                        help="seconds over which people arrive, not measured (default 10)")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers (default: what `lti-tool serve` picks)")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "LTI_TOOL_TEST_DATABASE_URL", DEFAULT_PG_ADMIN),
        help="a PostgreSQL database to create the throw-away one from")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--progress", action="store_true", help="print progress every 10 s")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "load.json")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.users < 1 or args.teachers < 0 or args.think < 0:
        parser.error("--duration and --users must be positive, --teachers and --think >= 0")
    # Bounded, always: a run never goes on past ramp + duration + one request timeout.
    config = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "cpus": os.cpu_count(), "python": pyplatform.python_version(),
              "machine": pyplatform.machine()}
    config.pop("pg_admin_url")

    result = run(args, say)
    print(report(result, config))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.parent.resolve() == RESULTS_DIR:
        (RESULTS_DIR / ".gitignore").write_text("*\n")
    args.out.write_text(json.dumps({"config": config, "targets": result["targets"],
                                    "results": result}, indent=2) + "\n")
    print(f"\nresults written to {args.out}")
    if result["overall"]["errors"]:
        print(f"{result['overall']['errors']} request(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
