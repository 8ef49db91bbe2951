"""Latency, fault injection, request log, JSON gradebook and concurrent score storage."""

from __future__ import annotations

import http.client
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lti_tool.sandbox import add_students, create_sandbox_app
from lti_tool.sandbox.__main__ import main as sandbox_main
from lti_tool.sandbox.controls import RequestLog

from .conftest import NRPS_SCOPE, make_sandbox

SCORE_MT = "application/vnd.ims.lis.v1.score+json"
LINEITEM_MT = "application/vnd.ims.lis.v2.lineitem+json"
RATE_LIMIT_BODIES = {
    403: "403 Forbidden (Rate Limit Exceeded)\n",
    429: "429 Too Many Requests (Rate Limit Exceeded)\n",
}


@pytest.fixture(params=["canvas", "moodle"])
def controlled(request, tmp_path, fake_tool, platform_key_dir):
    """A sandbox (Flask test client) with test controls on."""
    return make_sandbox(request.param, tmp_path, fake_tool, platform_key_dir, test_controls=True)


class Client:
    """Just enough of a tool's AGS/NRPS client, over the test client or real HTTP."""

    def __init__(self, sb, *, http: bool = False) -> None:
        self.sb = sb
        self.http = http
        self.token = sb.token(f"{_all_ags()} {NRPS_SCOPE}")
        if sb.flavor == "canvas":
            self.lineitems = f"{sb.base_url}/api/lti/courses/{sb.course_id}/line_items"
            self.members = f"{sb.base_url}/api/lti/courses/{sb.course_id}/names_and_roles"
        else:
            self.lineitems = (
                f"{sb.base_url}/mod/lti/services.php/{sb.course_id}/lineitems?type_id=3"
            )
            self.members = (
                f"{sb.base_url}/mod/lti/services.php/CourseSection/{sb.course_id}"
                "/bindings/3/memberships"
            )

    def request(self, method: str, url: str, *, body=None, ctype=None, timeout=10, **headers):
        headers = {"Authorization": f"Bearer {self.token}", **headers}
        if ctype:
            headers["Content-Type"] = ctype
        data = None if body is None else json.dumps(body)
        if self.http:
            return requests.request(method, url, data=data, headers=headers, timeout=timeout)
        resp = self.sb.client.open(self.sb.path(url), method=method, data=data, headers=headers)
        resp.text = resp.get_data(as_text=True)
        return resp

    def create_item(self, label: str = "Fractions", maximum: float = 4, **extra) -> str:
        resp = self.request(
            "POST",
            self.lineitems,
            body={"label": label, "scoreMaximum": maximum, **extra},
            ctype=LINEITEM_MT,
        )
        assert resp.status_code == 201, resp.text
        return (resp.json() if self.http else resp.get_json())["id"]

    @staticmethod
    def scores_url(item: str) -> str:
        path, _, query = item.partition("?")
        return f"{path}/scores" + (f"?{query}" if query else "")

    def score(self, item: str, user: str, ts: str, given=3, maximum=4, timeout=10, **extra):
        body = {
            "userId": user,
            "scoreGiven": given,
            "scoreMaximum": maximum,
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            "timestamp": ts,
            **extra,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return self.request(
            "POST", self.scores_url(item), body=body, ctype=SCORE_MT, timeout=timeout
        )

    def sub(self, user_id: int) -> str:
        """The user id as the tool knows it (the launch `sub`)."""
        if self.sb.flavor == "moodle":
            return str(user_id)
        with self.sb.app.app_context():
            from lti_tool.sandbox import storage
            from lti_tool.sandbox.app import db

            return storage.get_user(db(), user_id)["uuid"]

    # -- test controls ---------------------------------------------------------------------
    def control(self, method: str, path: str, body=None):
        if self.http:
            resp = requests.request(method, f"{self.sb.base_url}{path}", json=body, timeout=10)
            return resp.status_code, resp.json()
        resp = self.sb.client.open(path, method=method, json=body)
        return resp.status_code, resp.get_json()

    def add_fault(self, **rule) -> dict:
        status, body = self.control("POST", "/sandbox/faults", rule)
        assert status == 201, body
        return body

    def log(self, query: str = "") -> list[dict]:
        status, body = self.control("GET", "/sandbox/requests" + query)
        assert status == 200
        return body["requests"]

    def gradebook(self, query: str = "") -> dict:
        status, body = self.control("GET", "/sandbox/gradebook.json" + query)
        assert status == 200, body
        return body


def _all_ags() -> str:
    return " ".join(
        f"https://purl.imsglobal.org/spec/lti-ags/scope/{s}"
        for s in ("lineitem", "lineitem.readonly", "result.readonly", "score")
    )


def _only_item(book: dict) -> dict:
    (item,) = book["line_items"]
    return item


# -- switches ----------------------------------------------------------------------------------


def test_controls_are_404_unless_enabled(sandbox):
    for method, path in (
        ("GET", "/sandbox/faults"),
        ("POST", "/sandbox/faults"),
        ("DELETE", "/sandbox/faults"),
        ("GET", "/sandbox/requests"),
        ("DELETE", "/sandbox/requests"),
        ("GET", "/sandbox/gradebook.json"),
    ):
        assert sandbox.client.open(path, method=method, json={}).status_code == 404, path
    assert sandbox.app.config["SANDBOX_LATENCY_MS"] == 0
    assert sandbox.app.config["SANDBOX_TEST_CONTROLS"] is False


def test_bad_latency_is_refused(tmp_path, fake_tool):
    with pytest.raises(ValueError):
        create_sandbox_app(
            flavor="canvas",
            base_url="http://x.test",
            tool_url=fake_tool.url,
            db_path=str(tmp_path / "x.db"),
            latency_ms=-1,
        )


def test_cli_flags_reach_the_app(monkeypatch, tmp_path):
    seen = {}

    def fake_create(**kwargs):
        seen.update(kwargs)
        raise SystemExit(0)  # stop before serving

    monkeypatch.setattr("lti_tool.sandbox.__main__.create_sandbox_app", fake_create)
    args = ["--port", "0", "--db", str(tmp_path / "s.db"), "--latency-ms", "25"]
    with pytest.raises(SystemExit):
        sandbox_main([*args, "--test-controls"])
    assert seen["latency_ms"] == 25 and seen["test_controls"] is True
    assert seen["base_url"].startswith("http://127.0.0.1:") and not seen["base_url"].endswith(
        ":0"
    )  # --port 0 binds first, then the sandbox knows its real port
    with pytest.raises(SystemExit):
        sandbox_main(args[:4])
    assert seen["latency_ms"] == 0 and seen["test_controls"] is False


# -- latency -----------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_latency_delays_services_in_parallel_but_not_pages(served_sandbox, flavor):
    latency = 0.3
    sb = served_sandbox(flavor, latency_ms=int(latency * 1000))
    client = Client(sb, http=True)  # the token came through the test client: no wait here

    started = time.perf_counter()
    assert client.request("GET", client.members).status_code == 200
    assert time.perf_counter() - started >= latency

    def timed_get(_: int) -> float:
        t0 = time.perf_counter()
        assert client.request("GET", client.members).status_code == 200
        return time.perf_counter() - t0

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        each = list(pool.map(timed_get, range(4)))
    total = time.perf_counter() - started
    assert min(each) >= latency
    # Serialised, the four would take >= 4 * latency; the margin is for a busy machine.
    assert total < 3 * latency, f"4 parallel requests took {total:.3f}s: serialised?"

    # The token endpoint is a service: delayed too (a failing request is enough to see it).
    t0 = time.perf_counter()
    assert requests.post(sb.token_url, data={"grant_type": "x"}, timeout=10).status_code == 400
    assert time.perf_counter() - t0 >= latency

    # Pages, OIDC and the JWKS are not delayed (the setting can change while running).
    sb.app.config["SANDBOX_LATENCY_MS"] = 3000
    jwks = sb.ctx.flavor.jwks_url(sb.base_url)
    for url in (f"{sb.base_url}/", jwks):
        t0 = time.perf_counter()
        assert requests.get(url, timeout=10).status_code == 200
        assert time.perf_counter() - t0 < 2, url


# -- faults ------------------------------------------------------------------------------------


def test_503_scores_are_not_stored_and_the_rule_runs_out(controlled):
    client = Client(controlled)
    item = client.create_item()
    user = client.sub(controlled.student_id)
    rule = client.add_fault(match="/scores", status=503, count=2, retry_after=2)
    assert rule["id"] == 1 and rule["remaining"] == 2 and rule["fired"] == 0

    for _ in range(2):
        resp = client.score(item, user, "2025-06-12T10:00:00Z")
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "2"
        if controlled.flavor == "canvas":
            assert resp.text == "Service Unavailable"
        else:
            assert resp.status == "503 Moodle under maintenance"
            assert resp.mimetype == "text/html" and "maintenance" in resp.text
        assert _only_item(client.gradebook())["results"] == []  # no effect on the data

    assert client.score(item, user, "2025-06-12T10:00:00Z").status_code == 200
    (result,) = _only_item(client.gradebook())["results"]
    assert result["accepted_scores"] == 1 and result["scoreGiven"] == 3

    status, body = client.control("GET", "/sandbox/faults")
    assert status == 200
    (listed,) = body["faults"]
    assert listed["fired"] == 2 and listed["remaining"] == 0 and listed["status"] == 503

    posts = client.log("?match=/scores&method=post")
    assert [e["status"] for e in posts] == [503, 503, 200]
    assert [e["fault"] for e in posts] == [1, 1, None]
    assert {json.dumps(e["score"], sort_keys=True) for e in posts} == {
        json.dumps(
            {
                "userId": user,
                "timestamp": "2025-06-12T10:00:00Z",
                "scoreGiven": 3,
                "scoreMaximum": 4,
                "activityProgress": "Completed",
                "gradingProgress": "FullyGraded",
                "comment": None,
            },
            sort_keys=True,
        )
    }


def test_canvas_rate_limit_wording(canvas_controlled):
    client = Client(canvas_controlled)
    item = client.create_item()
    user = client.sub(canvas_controlled.student_id)
    for status in (429, 403):
        client.add_fault(match="/scores", status=status, count=1)
        resp = client.score(item, user, "2025-06-12T10:00:00Z")
        assert resp.status_code == status
        assert resp.text == RATE_LIMIT_BODIES[status]
        assert resp.mimetype == "text/plain"
        assert resp.headers["X-Rate-Limit-Remaining"] == "0.0"
        assert "Retry-After" not in resp.headers
    # Other statuses: Canvas's JSON error envelope.
    client.add_fault(match="/line_items", method="GET", status=500, count=1)
    resp = client.request("GET", client.lineitems)
    assert resp.status_code == 500
    assert resp.get_json() == {
        "errors": {"type": "internal_server_error", "message": "Internal Server Error"}
    }
    # The GET-only rule did not catch the POST, and it is now used up.
    assert client.score(item, user, "2025-06-12T10:00:00Z").status_code == 200
    assert client.request("GET", client.lineitems).status_code == 200


@pytest.fixture
def canvas_controlled(tmp_path, fake_tool, platform_key_dir):
    return make_sandbox("canvas", tmp_path, fake_tool, platform_key_dir, test_controls=True)


def test_custom_bodies_headers_and_token_faults(controlled):
    client = Client(controlled)
    client.add_fault(
        match="/names_and_roles" if controlled.flavor == "canvas" else "/memberships",
        status=429,
        count=1,
        body={"oops": True},
        headers={"X-Extra": "1"},
        retry_after="Wed, 21 Oct 2015 07:28:00 GMT",
    )
    resp = client.request("GET", client.members)
    assert resp.status_code == 429 and resp.get_json() == {"oops": True}
    assert resp.headers["X-Extra"] == "1"
    assert resp.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert client.request("GET", client.members).status_code == 200

    # A faulted token request issues no token; the next one works.
    token_path = controlled.path(controlled.token_url)
    client.add_fault(match=token_path, status=502, count=1, body="Bad Gateway")
    refused = controlled.request_token()
    assert refused.status_code == 502 and refused.get_data(as_text=True) == "Bad Gateway"
    assert controlled.request_token().status_code == 200
    if controlled.flavor == "moodle":
        client.add_fault(match="/lineitems", status=404, count=1)
        resp = client.request("GET", client.lineitems)
        assert resp.get_json()["status"] == 404 and resp.get_json()["reason"] == "Not Found"
        assert resp.get_json()["request"]["method"] == "GET"
    tokens = client.log("?match=" + token_path)
    assert [e["status"] for e in tokens] == [200, 502, 200]  # the Client's own token first
    assert not any(e["authorization"] for e in tokens)
    assert all(e["authorization"] for e in client.log("?match=/mem"))


def test_rules_until_cleared_delete_and_validation(controlled):
    client = Client(controlled)
    item = client.create_item()
    user = client.sub(controlled.student_id)
    forever = client.add_fault(match="/scores", status=503)
    assert forever["count"] is None and forever["remaining"] is None
    for second in range(3):
        ts = f"2025-06-12T10:00:0{second}Z"
        assert client.score(item, user, ts).status_code == 503
    assert client.control("DELETE", f"/sandbox/faults/{forever['id']}")[0] == 200
    assert client.control("DELETE", f"/sandbox/faults/{forever['id']}")[0] == 400
    assert client.score(item, user, "2025-06-12T10:00:05Z").status_code == 200

    # Several at once; the first matching rule with uses left wins.
    status, added = client.control(
        "POST",
        "/sandbox/faults",
        [{"match": "/scores", "status": 500, "count": 1}, {"match": "", "status": 502}],
    )
    assert status == 201 and [r["id"] for r in added] == [2, 3]
    assert client.score(item, user, "2025-06-12T10:00:06Z").status_code == 500
    assert client.score(item, user, "2025-06-12T10:00:06Z").status_code == 502
    assert client.request("GET", client.lineitems).status_code == 502
    assert client.control("DELETE", "/sandbox/faults") == (200, {"cleared": 2})
    assert client.control("GET", "/sandbox/faults") == (200, {"faults": []})
    assert client.request("GET", client.lineitems).status_code == 200
    # The pages are never faulted.
    client.add_fault(match="", status=503)
    assert controlled.client.get("/").status_code == 200
    assert controlled.client.get("/gradebook.json").status_code == 200
    client.control("DELETE", "/sandbox/faults")

    for bad in (
        {"match": "/scores"},  # nothing to do
        {"match": "/scores", "status": 503, "drop": True},
        {"match": "/scores", "status": 99},
        {"match": "/scores", "status": 503, "count": -1},
        {"match": "/scores", "status": "503"},
        {"match": 5, "status": 503},
        {"match": "/scores", "status": 503, "colour": "red"},
        {"match": "/scores", "delay_ms": 10, "drop": "yes"},
        "not an object",
    ):
        status, body = client.control("POST", "/sandbox/faults", bad)
        assert status == 400 and body["error"], bad
    assert client.control("GET", "/sandbox/faults") == (200, {"faults": []})


@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_delay_causes_a_read_timeout_and_drop_closes_the_connection(served_sandbox, flavor):
    sb = served_sandbox(flavor, test_controls=True)
    client = Client(sb, http=True)
    item = client.create_item()
    user = client.sub(sb.student_id)

    # Delay only: the client gives up, the platform still stores the score (the ambiguous case).
    client.add_fault(match="/scores", delay_ms=700, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.score(item, user, "2025-06-12T10:00:00Z", timeout=0.2)
    deadline = time.monotonic() + 5
    while not _only_item(client.gradebook())["results"] and time.monotonic() < deadline:
        time.sleep(0.05)
    (result,) = _only_item(client.gradebook())["results"]
    assert result["timestamp"] == "2025-06-12T10:00:00Z"

    # Delay and a status: slow, refused, nothing stored.
    client.add_fault(match="/scores", delay_ms=300, status=503, count=1)
    t0 = time.perf_counter()
    assert client.score(item, user, "2025-06-12T10:00:01Z").status_code == 503
    assert time.perf_counter() - t0 >= 0.3

    # Drop: no answer at all, nothing stored.
    client.add_fault(match="/scores", drop=True, count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.score(item, user, "2025-06-12T10:00:02Z")
    (result,) = _only_item(client.gradebook())["results"]
    assert result["accepted_scores"] == 1 and result["timestamp"] == "2025-06-12T10:00:00Z"
    assert client.score(item, user, "2025-06-12T10:00:03Z").status_code == 200

    posts = client.log("?match=/scores")
    assert [(e["status"], e["dropped"], e["fault"]) for e in posts] == [
        (200, False, 1),
        (503, False, 2),
        (None, True, 3),
        (200, False, None),
    ]
    assert posts[0]["duration_ms"] >= 700
    assert all(e["authorization"] and e["method"] == "POST" for e in posts)
    if flavor == "moodle":
        assert {e["query"] for e in posts} == {"type_id=3"}
    _, faults = client.control("GET", "/sandbox/faults")
    assert [f["fired"] for f in faults["faults"]] == [1, 1, 1]


def test_drop_under_the_test_client_raises(controlled):
    client = Client(controlled)
    client.add_fault(match="", drop=True, count=1)
    with pytest.raises(ConnectionAbortedError):
        client.request("GET", client.lineitems)
    (entry,) = client.log()[-1:]
    assert entry["dropped"] and entry["status"] is None


# -- request log -------------------------------------------------------------------------------


def test_request_log_is_bounded_and_clearable(controlled):
    small = RequestLog(size=3)
    for n in range(5):
        small.add({"n": n})
    entries, total = small.listing()
    assert [e["n"] for e in entries] == [2, 3, 4] and [e["seq"] for e in entries] == [3, 4, 5]
    assert total == 5

    client = Client(controlled)  # one token request
    client.request("GET", client.lineitems, Authorization="")
    controlled.client.get("/")  # a page: not logged
    entries = client.log()
    assert [e["status"] for e in entries] == [200, 401]
    token, unauthorised = entries
    assert token["path"] == controlled.path(controlled.token_url) and token["method"] == "POST"
    assert token["authorization"] is False and "score" not in token
    assert unauthorised["authorization"] is False
    assert isinstance(unauthorised["time"], float) and unauthorised["duration_ms"] >= 0
    assert client.control("DELETE", "/sandbox/requests") == (200, {"cleared": True})
    assert client.log() == []


# -- gradebook ---------------------------------------------------------------------------------


def test_gradebook_json_shows_what_the_platform_keeps(controlled):
    sb = controlled
    client = Client(sb)
    item = client.create_item(label="Mastery", maximum=100, resourceId="skill_1", tag="mastery")
    first, second = sorted(sb.info["student_ids"])[:2]
    u1, u2 = client.sub(first), client.sub(second)
    assert client.score(item, u1, "2025-06-12T10:00:00Z", comment="3 of 4").status_code == 200
    assert client.score(item, u2, "2025-06-12T10:00:00Z", given=4).status_code == 200
    # PendingManual: Canvas keeps the grade, Moodle clears it (platforms.md C).
    pending = client.score(
        item, u2, "2025-06-12T11:00:00Z", given=2, gradingProgress="PendingManual"
    )
    assert pending.status_code == 200

    book = client.gradebook()
    assert book["flavor"] == sb.flavor and book["course"]["id"] == sb.course_id
    entry = _only_item(book)
    assert {k: entry[k] for k in ("id", "label", "resourceId", "tag", "scoreMaximum")} == {
        "id": item,
        "label": "Mastery",
        "resourceId": "skill_1",
        "tag": "mastery",
        "scoreMaximum": 100.0,
    }
    by_user = {r["userId"]: r for r in entry["results"]}
    assert set(by_user) == {u1, u2}
    one = by_user[u1]
    assert (one["scoreGiven"], one["scoreMaximum"], one["grade"]) == (3, 4, 75.0)
    assert one["comment"] == "3 of 4" and one["timestamp"] == "2025-06-12T10:00:00Z"
    assert (one["activityProgress"], one["gradingProgress"]) == ("Completed", "FullyGraded")
    two = by_user[u2]
    assert two["gradingProgress"] == "PendingManual" and two["accepted_scores"] == 2
    if sb.flavor == "canvas":
        assert (two["scoreGiven"], two["scoreMaximum"], two["grade"]) == (2, 4, 50.0)
        # Pending clears the score unless preserve_score; preserve_score keeps the last one.
        keep = {"https://canvas.instructure.com/lti/submission": {"preserve_score": True}}
        ok = client.score(
            item, u2, "2025-06-12T12:00:00Z", given=None, gradingProgress="Pending", **keep
        )
        assert ok.status_code == 200
        two = {r["userId"]: r for r in _only_item(client.gradebook())["results"]}[u2]
        assert (two["scoreGiven"], two["grade"]) == (2, 50.0)
        cleared = client.score(item, u2, "2025-06-12T13:00:00Z", gradingProgress="Pending")
        assert cleared.status_code == 200
        two = {r["userId"]: r for r in _only_item(client.gradebook())["results"]}[u2]
    assert (two["scoreGiven"], two["scoreMaximum"], two["grade"]) == (None, None, None)

    history = client.gradebook("?history=1")
    two = {r["userId"]: r for r in _only_item(history)["results"]}[u2]
    assert [h["scoreGiven"] for h in two["history"]][:2] == [4, 2]
    assert "history" not in _only_item(client.gradebook())["results"][0]
    assert client.control("GET", "/sandbox/gradebook.json?course=999")[0] == 404
    assert client.gradebook(f"?course={sb.course_id}") == client.gradebook()


# -- concurrency -------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_concurrent_scores_to_different_users_are_all_stored(served_sandbox, flavor):
    threads, per_thread = 8, 50
    sb = served_sandbox(flavor, test_controls=True)
    students = add_students(sb.app, threads * per_thread)
    client = Client(sb, http=True)
    item = client.create_item(maximum=50)
    subs = [client.sub(s) for s in students] if flavor == "moodle" else _canvas_subs(sb, students)

    path, _, query = Client.scores_url(item)[len(sb.base_url) :].partition("?")
    target = path + (f"?{query}" if query else "")
    headers = {"Authorization": f"Bearer {client.token}", "Content-Type": SCORE_MT}
    host, port = sb.base_url.removeprefix("http://").split(":")

    def worker(t: int) -> list[int]:
        # Plain http.client: the client's own cost stays small next to the server's.
        statuses = []
        for n in range(per_thread):
            body = {
                "userId": subs[t * per_thread + n],
                "scoreGiven": n,
                "scoreMaximum": 50,
                "activityProgress": "Completed",
                "gradingProgress": "FullyGraded",
                "timestamp": "2025-06-12T10:00:00Z",
            }
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                conn.request("POST", target, body=json.dumps(body), headers=headers)
                resp = conn.getresponse()
                resp.read()
                statuses.append(resp.status)
            finally:
                conn.close()
        return statuses

    with ThreadPoolExecutor(max_workers=threads) as pool:
        statuses = [s for chunk in pool.map(worker, range(threads)) for s in chunk]
    assert statuses == [200] * (threads * per_thread)
    results = _only_item(client.gradebook())["results"]
    assert len(results) == threads * per_thread
    expected = {subs[t * per_thread + n]: n for t in range(threads) for n in range(per_thread)}
    assert {r["userId"]: r["scoreGiven"] for r in results} == expected
    assert all(r["accepted_scores"] == 1 for r in results)
    assert len(client.log("?match=/scores")) == threads * per_thread


def _canvas_subs(sb, user_ids: list[int]) -> list[str]:
    with sb.app.app_context():
        from lti_tool.sandbox.app import db

        rows = db().execute("SELECT id, uuid FROM users").fetchall()
    uuids = {r["id"]: r["uuid"] for r in rows}
    return [uuids[u] for u in user_ids]


@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_concurrent_scores_for_one_user_keep_the_timestamp_rules(served_sandbox, flavor):
    sb = served_sandbox(flavor, test_controls=True)
    client = Client(sb, http=True)
    item = client.create_item(maximum=10)
    user = client.sub(sb.student_id)
    # Canvas orders by the exact instant, Moodle by whole seconds.
    stamps = [
        f"2025-06-12T10:00:{n // 4:02d}.{n % 4 * 250:03d}Z"
        if flavor == "canvas"
        else f"2025-06-12T10:00:{n:02d}Z"
        for n in range(32)
    ]
    random.Random(7).shuffle(stamps)
    refusal = 400 if flavor == "canvas" else 409

    def post(ts: str) -> tuple[str, int, str]:
        resp = client.score(item, user, ts, given=int(ts[17:19]) % 10, maximum=10)
        return ts, resp.status_code, resp.text

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, stamps))
    assert {status for _, status, _ in answers} <= {200, refusal}
    accepted = [ts for ts, status, _ in answers if status == 200]
    (result,) = _only_item(client.gradebook("?history=1"))["results"]
    stored = [h["timestamp"] for h in result["history"]]
    assert sorted(stored) == sorted(accepted) and result["accepted_scores"] == len(accepted)
    assert stored == sorted(stored) and len(set(stored)) == len(stored)  # increasing
    assert result["timestamp"] == max(stamps)  # the newest always wins in the end
    if flavor == "canvas":
        for ts, status, text in answers:
            if status == 400:
                assert f"Provided timestamp of {ts} before last updated timestamp of" in text

    # Identical retries at once: Canvas accepts equal timestamps, Moodle exactly one.
    again = "2025-06-12T11:00:00Z"
    with ThreadPoolExecutor(max_workers=6) as pool:
        same = [s for _, s, _ in pool.map(post, [again] * 6)]
    if flavor == "canvas":
        assert same == [200] * 6
    else:
        assert sorted(same) == [200] + [409] * 5
    successes = [
        e
        for e in client.log("?match=/scores")
        if e["status"] == 200 and e["score"]["timestamp"] == again
    ]
    assert len({json.dumps(e["score"], sort_keys=True) for e in successes}) == 1
