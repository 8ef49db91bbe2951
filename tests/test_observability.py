"""Request ids, JSON logs without secrets, /metrics (Prometheus text format)
summed across processes, /healthz detail."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from lti_tool import create_app, observability
from lti_tool.courses.models import Course, ResourceLink, User
from lti_tool.db import session_scope
from lti_tool.launch.models import Platform
from lti_tool.passback.models import LineItem, Placement, ScoreOutbox
from lti_tool.playlists.models import Playlist
from lti_tool.timeutil import utcnow
from tests.conftest import TOOL_URL
from tests.support.flows import error_code, launch, login, post_launch


@pytest.fixture
def json_lines():
    """What the JSON handler would write, parsed line by line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonFormatter())
    logger = logging.getLogger("lti_tool")
    logger.addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    lines.text = stream.getvalue  # type: ignore[attr-defined]
    yield lines
    logger.removeHandler(handler)


# ------------------------------------------------------------ request id

def test_request_id_is_kept_when_sane_or_made(client):
    assert client.get("/healthz", headers={"X-Request-Id": "lb-7f.3_A"}) \
        .headers["X-Request-Id"] == "lb-7f.3_A"
    for bad in ("x" * 65, "has space", "semi;colon", "é", "a\tb"):
        made = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{16}", made), bad
    assert len({client.get("/healthz").headers["X-Request-Id"] for _ in range(3)}) == 3


def test_request_id_in_every_log_line_and_on_the_error_page(client, canvas, json_lines):
    started = login(client, canvas)
    claims = canvas.claims(started.nonce)
    claims["aud"] = "someone-else"
    response = client.post("/lti/launch", headers={"X-Request-Id": "req-42"},
                           data={"id_token": canvas.sign(claims), "state": started.state})
    assert 400 <= response.status_code < 500
    assert "<code>req-42</code>" in response.get_data(as_text=True)  # the reference
    lines = [line for line in json_lines() if line.get("request_id") == "req-42"]
    events = {line.get("event") for line in lines}
    assert {"launch_rejected", "request"} <= events, lines
    rejected = next(line for line in lines if line.get("event") == "launch_rejected")
    assert rejected["reference"] == "req-42" and rejected["code"] == error_code(response)
    access = next(line for line in lines if line.get("event") == "request")
    assert access["method"] == "POST" and access["path"] == "/lti/launch"
    assert access["status"] == response.status_code and access["duration_ms"] >= 0
    assert {"time", "level", "logger"} <= access.keys()
    # Every line the tool wrote is JSON with a request id (all were in requests).
    assert all(line.get("request_id") for line in json_lines())


def test_unhandled_error_page_shows_the_request_id(database_url, tool_keys_dir, tmp_path,
                                                  json_lines):
    app = create_app({"instance_path": tmp_path, "database_url": database_url,
                      "keys_dir": tool_keys_dir, "base_url": TOOL_URL})

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/boom", headers={"X-Request-Id": "req-500"})
    assert response.status_code == 500
    assert "reference req-500" in response.get_data(as_text=True)
    assert response.headers["X-Request-Id"] == "req-500"
    error = next(line for line in json_lines() if line["level"] == "ERROR")
    assert error["request_id"] == "req-500" and "RuntimeError" in error["exc"]


# ------------------------------------------------------- secrets in logs

def test_no_tokens_keys_or_id_tokens_in_logs(app, canvas, caplog, json_lines):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    started = login(client, canvas)
    id_token = canvas.sign(canvas.claims(started.nonce))
    landed = post_launch(client, id_token, started.state)
    assert landed.status_code == 303
    token = parse_qs(urlsplit(landed.headers["Location"]).query)["t"][0]
    cookie = client.get_cookie("pathwise_session").value
    page = client.get(landed.headers["Location"])
    assert page.status_code == 200
    fresh = re.search(r'name="t" value="([^"]+)"', page.get_data(as_text=True)) \
        or re.search(r"[?&]t=([A-Za-z0-9._-]+)", page.get_data(as_text=True))
    bearer = fresh.group(1)
    assert client.get("/account", headers={"Authorization": f"Bearer {bearer}"}
                      ).status_code == 200
    jwt_field, assertion = "JWT-" + uuid.uuid4().hex, "ASSERT-" + uuid.uuid4().hex
    changed = client.post("/my/goals", data={"t": bearer, "text": "Read more",
                                             "JWT": jwt_field, "client_assertion": assertion})
    assert changed.status_code == 303
    # A refused launch with the same id_token (a replay) logs its failure too.
    assert post_launch(client, id_token, started.state).status_code >= 400

    secrets = {"id_token": id_token, "t": token, "cookie": cookie, "bearer": bearer,
               "state": started.state, "JWT": jwt_field, "client_assertion": assertion}
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records) + json_lines.text()
    assert "launch_accepted" in logged and '"path": "/home"' in logged
    for name, value in secrets.items():
        assert value not in logged, f"{name} leaked into the logs"
    # A JWT signature never appears, nor any of its parts.
    for part in id_token.split("."):
        assert part not in logged


def test_server_request_lines_lose_query_strings_and_credentials():
    redact = observability.RedactRequestLines()
    werkzeug = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '"%s" %s %s',
                                 ("GET /home?t=SECRET HTTP/1.1", "200", "-"), None)
    redact.filter(werkzeug)
    assert werkzeug.getMessage() == '"GET /home HTTP/1.1" 200 -'
    atoms = {"r": "POST /my/goals?t=SECRET HTTP/1.1", "q": "t=SECRET", "U": "/my/goals",
             "f": "https://tool.test/home?t=SECRET", "{authorization}i": "Bearer SECRET",
             "{cookie}i": "pathwise_session=SECRET", "{set-cookie}o": "x=SECRET",
             "{location}o": "/home?t=SECRET", "s": "303"}
    gunicorn = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1,
                                 "%(r)s %(q)s %(f)s %({authorization}i)s %({cookie}i)s "
                                 "%({set-cookie}o)s %({location}o)s %(s)s", None, None)
    gunicorn.args = atoms
    redact.filter(gunicorn)
    message = gunicorn.getMessage()
    assert "SECRET" not in message and "/my/goals" in message and "303" in message


# --------------------------------------------------------------- metrics

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_metrics(text: str) -> tuple[dict, dict]:
    """A small parser for the Prometheus text format 0.0.4: samples keyed by
    (name, frozenset(labels)) and the TYPE of each family."""
    samples, types = {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            types[name] = kind
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP "), line
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = LABEL.findall(labels or "")
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), line
        key = (name, frozenset(pairs))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples, types


def _value(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _scrape(client, **headers):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_metrics(response.get_data(as_text=True))


def _check_histograms(samples) -> int:
    base = "pathwise_http_request_duration_seconds"
    series = {}
    for (name, labels), value in samples.items():
        if name == base + "_bucket":
            le = dict(labels)["le"]
            rest = frozenset(p for p in labels if p[0] != "le")
            series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), value))
    for labels, buckets in series.items():
        counts = [v for _, v in sorted(buckets)]
        assert counts == sorted(counts), "buckets are cumulative"
        assert sorted(buckets)[-1][0] == math.inf
        assert counts[-1] == samples[(base + "_count", labels)]
        assert samples[(base + "_sum", labels)] >= 0
        assert dict(labels)["status"] in ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
    return sum(samples[(base + "_count", labels)] for labels in series)


def test_metrics_count_launches_by_result_and_reason(client, canvas):
    accepted, _ = launch(client, canvas)
    assert accepted.status_code == 303
    started = login(client, canvas)
    claims = canvas.claims(started.nonce)
    claims["aud"] = "someone-else"
    refused = post_launch(client, canvas.sign(claims), started.state)
    garbage = client.post("/lti/launch", data={"id_token": "x", "state": "y"})
    samples, types = _scrape(client)
    assert types["pathwise_launches_total"] == "counter"
    assert types["pathwise_http_request_duration_seconds"] == "histogram"
    assert types["pathwise_passback_scores"] == "gauge"
    launches = "pathwise_launches_total"
    assert _value(samples, launches, result="accepted", reason="ok") == 1
    assert _value(samples, launches, result="refused", reason=error_code(refused)) == 1
    assert _value(samples, launches, result="refused", reason=error_code(garbage)) >= 1
    assert sum(v for (n, _), v in samples.items() if n == launches) == 3
    assert _value(samples, "pathwise_logins_total", result="accepted", reason="ok") == 2
    # Every request before the scrape is in the histogram.
    assert _check_histograms(samples) >= 7
    assert _value(samples, "pathwise_http_request_duration_seconds_count",
                  method="POST", status="3xx") >= 3


def test_metrics_are_summed_across_processes(database_url, tool_keys_dir, tmp_path, canvas):
    """Two app instances on one database stand for two gunicorn workers."""
    def make():
        return create_app({"instance_path": tmp_path / uuid.uuid4().hex[:6],
                           "database_url": database_url, "keys_dir": tool_keys_dir,
                           "base_url": TOOL_URL, "secret_key": "shared-secret"})
    one, two = make(), make()
    a, b = one.test_client(), two.test_client()
    assert launch(a, canvas)[0].status_code == 303
    assert b.post("/lti/launch", data={"id_token": "x", "state": "y"}).status_code >= 400
    # The periodic flush, after a response has gone out (FLUSH_EVERY elapsed).
    one.extensions["pathwise_metrics"].FLUSH_EVERY = 0
    a.get("/healthz").close()
    assert not one.extensions["pathwise_metrics"].pending()
    samples, _ = _scrape(b)
    launches = "pathwise_launches_total"
    assert _value(samples, launches, result="accepted", reason="ok") == 1  # from `one`
    assert sum(v for (n, lab), v in samples.items()
               if n == launches and ("result", "refused") in lab) == 1  # `two`, live
    # Scraping either process gives the same cluster-wide totals.
    again, _ = _scrape(a)
    assert _value(again, launches, result="accepted", reason="ok") == 1
    assert _value(again, "pathwise_logins_total", result="accepted", reason="ok") == 1


def _seed_outbox(database_url: str, statuses: list[str]) -> None:
    with session_scope(database_url) as db:
        course = db.scalars(select(Course)).first()
        link = db.scalars(select(ResourceLink)).first()
        user = db.scalars(select(User)).first()
        platform = db.scalars(select(Platform)).first()
        playlist = Playlist(course_id=course.id, title="Fractions")
        db.add(playlist)
        db.flush()
        placement = Placement(course_id=course.id, resource_link_pk=link.id,
                              playlist_id=playlist.id)
        db.add(placement)
        db.flush()
        item = LineItem(placement_id=placement.id, url="https://lms.example/lineitems/1")
        db.add(item)
        db.flush()
        now = utcnow()
        for n, status in enumerate(statuses):
            db.add(ScoreOutbox(
                course_id=course.id, platform_id=platform.id, placement_id=placement.id,
                line_item_id=item.id, student_id=user.id, user_sub=user.sub, payload={},
                score_ts=f"2026-01-01T00:00:{n:02d}Z", ts_value=now + timedelta(seconds=n),
                status=status, next_attempt_at=now))


def test_passback_gauges_and_healthz_detail(client, canvas, database_url):
    assert launch(client, canvas)[0].status_code == 303
    _seed_outbox(database_url, ["pending", "pending", "sending", "sent", "sent", "sent",
                                "dead", "superseded"])
    samples, _ = _scrape(client)
    gauge = "pathwise_passback_scores"
    assert _value(samples, gauge, status="pending") == 3
    assert _value(samples, gauge, status="sent") == 3
    assert _value(samples, gauge, status="failed") == 1
    assert _value(samples, gauge, status="superseded") == 1
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}
    assert client.get("/healthz?detail=1").get_json() == {
        "status": "ok", "database": "ok", "outbox_pending": 3}


def test_metrics_token(database_url, tool_keys_dir, tmp_path):
    app = create_app({"instance_path": tmp_path, "database_url": database_url,
                      "keys_dir": tool_keys_dir, "base_url": TOOL_URL,
                      "extra": {"metrics_token": "scrape-me"}})
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    samples, _ = _scrape(client, Authorization="Bearer scrape-me")
    assert _value(samples, "pathwise_passback_scores", status="pending") == 0


def test_label_values_are_escaped():
    text = observability.render({
        ("pathwise_launches_total", observability._labels_key(
            {"result": "refused", "reason": 'a"b\\c\nd'})): 2.0})
    samples, _ = parse_metrics(text)
    assert _value(samples, "pathwise_launches_total", result="refused",
                  reason='a\\"b\\\\c\\nd') == 2
