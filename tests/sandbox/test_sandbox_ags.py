"""Assignment and Grade Services: line items, pagination, scores, results."""

from __future__ import annotations

import json

import pytest

LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULTS = "application/vnd.ims.lis.v2.resultcontainer+json"
READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"


class Ags:
    """A tiny AGS client over the Flask test client, the way a tool would call it."""

    def __init__(self, sb, scope: str | None = None) -> None:
        self.sb = sb
        self.token = sb.token(scope) if scope else sb.token()
        if sb.flavor == "canvas":
            self.lineitems_url = f"{sb.base_url}/api/lti/courses/{sb.course_id}/line_items"
        else:
            self.lineitems_url = (
                f"{sb.base_url}/mod/lti/services.php/{sb.course_id}/lineitems?type_id=3"
            )

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    @staticmethod
    def sub_url(lineitem: str, sub: str) -> str:
        # Insert the path segment before any query string (Moodle's ?type_id=).
        path, _, query = lineitem.partition("?")
        return f"{path}/{sub}" + (f"?{query}" if query else "")

    def create(self, label: str = "Fractions mastery", maximum: float = 4, **extra) -> dict:
        resp = self.sb.client.post(
            self.sb.path(self.lineitems_url),
            data=json.dumps({"label": label, "scoreMaximum": maximum, **extra}),
            headers=self.headers(**{"Content-Type": LINEITEM}),
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
        assert resp.mimetype == LINEITEM
        return resp.get_json()

    def list(self, query: str = "", **headers: str):
        url = self.lineitems_url + (
            ("&" if "?" in self.lineitems_url else "?") + query if query else ""
        )
        return self.sb.client.get(
            self.sb.path(url), headers=self.headers(**{"Accept": CONTAINER, **headers})
        )

    def score(self, lineitem: str, body: dict, content_type: str = SCORE):
        return self.sb.client.post(
            self.sb.path(self.sub_url(lineitem, "scores")),
            data=json.dumps(body),
            headers=self.headers(**{"Content-Type": content_type}),
        )

    def user_id(self, user_id: int) -> str:
        if self.sb.flavor == "moodle":
            return str(user_id)
        with self.sb.app.app_context():
            from lti_tool.sandbox import storage
            from lti_tool.sandbox.app import db

            return storage.get_user(db(), user_id)["uuid"]


def score_body(user: str, ts: str, **extra) -> dict:
    body = {
        "userId": user,
        "scoreGiven": 3,
        "scoreMaximum": 4,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": ts,
        "comment": "Mastered 3 of 4 skills",
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


# -- auth -------------------------------------------------------------------------------------


def test_every_call_needs_a_bearer_token_with_scope(sandbox):
    ags = Ags(sandbox)
    item = ags.create()
    no_token = sandbox.client.get(sandbox.path(ags.lineitems_url), headers={"Accept": CONTAINER})
    assert no_token.status_code == 401
    bad_token = sandbox.client.get(
        sandbox.path(ags.lineitems_url),
        headers={"Authorization": "Bearer nope", "Accept": CONTAINER},
    )
    assert bad_token.status_code == 401
    readonly = Ags(sandbox, READONLY)
    assert readonly.list().status_code == 200
    denied = readonly.score(
        item["id"], score_body(readonly.user_id(sandbox.student_id), "2025-06-12T18:54:36Z")
    )
    assert denied.status_code == 401
    if sandbox.flavor == "canvas":
        assert denied.get_json()["errors"]["message"] == "Insufficient permissions"
    else:
        assert denied.get_json()["status"] == 401


# -- line items -------------------------------------------------------------------------------


def test_canvas_line_item_crud(canvas):
    ags = Ags(canvas)
    item = ags.create(resourceId="skill_fractions", tag="mastery")
    assert item["id"].startswith(ags.lineitems_url + "/")
    assert item == {
        "id": item["id"],
        "scoreMaximum": 4.0,
        "label": "Fractions mastery",
        "resourceId": "skill_fractions",
        "tag": "mastery",
    }
    path = canvas.path(item["id"])
    got = canvas.client.get(path, headers=ags.headers())
    assert got.status_code == 200 and got.mimetype == LINEITEM and got.get_json() == item
    put = canvas.client.put(
        path, json={"label": "Renamed", "scoreMaximum": 10}, headers=ags.headers()
    )
    assert (
        put.status_code == 200
        and put.get_json()["label"] == "Renamed"
        and put.get_json()["scoreMaximum"] == 10.0
    )
    assert canvas.client.delete(path, headers=ags.headers()).status_code == 204
    assert canvas.client.get(path, headers=ags.headers()).status_code == 404


def test_canvas_line_item_validation(canvas):
    ags = Ags(canvas)
    no_label = canvas.client.post(
        canvas.path(ags.lineitems_url), json={"scoreMaximum": 4}, headers=ags.headers()
    )
    assert no_label.status_code == 400
    assert "errors" in no_label.get_json()
    unknown_link = canvas.client.post(
        canvas.path(ags.lineitems_url),
        json={"label": "x", "scoreMaximum": 1, "resourceLinkId": "no-such-link"},
        headers=ags.headers(),
    )
    assert unknown_link.status_code == 404


def test_moodle_line_item_create_echoes_body_and_demands_media_types(moodle):
    ags = Ags(moodle)
    item = ags.create(resourceId="skill_fractions", startDateTime="2025-01-01T00:00:00Z")
    assert item["id"].endswith("/lineitem?type_id=3")
    assert item["startDateTime"] == "2025-01-01T00:00:00Z"  # echoed, not stored
    got = moodle.client.get(moodle.path(item["id"]), headers=ags.headers(Accept=LINEITEM))
    assert got.get_json() == {
        "id": item["id"],
        "label": "Fractions mastery",
        "scoreMaximum": 4.0,
        "resourceId": "skill_fractions",
        "tag": "",
    }
    wrong_type = moodle.client.post(
        moodle.path(ags.lineitems_url),
        data=json.dumps({"label": "x", "scoreMaximum": 1}),
        headers=ags.headers(**{"Content-Type": "application/json"}),
    )
    assert wrong_type.status_code == 400
    assert wrong_type.get_json()["reason"].startswith("No handler found")
    assert ags.list(Accept="application/json").status_code == 400
    # lineitems.php compares the whole Accept header with the container type.
    assert ags.list(Accept="*/*").status_code == 400
    no_accept = moodle.client.get(
        moodle.path(ags.lineitems_url), headers={"Authorization": f"Bearer {ags.token}"}
    )
    assert no_accept.status_code == 200
    missing = moodle.client.post(
        moodle.path(ags.lineitems_url),
        data=json.dumps({"label": "x"}),
        headers=ags.headers(**{"Content-Type": LINEITEM}),
    )
    assert missing.status_code == 400


def test_canvas_line_items_pagination(canvas):
    ags = Ags(canvas)
    for n in range(12):
        ags.create(label=f"Item {n:02d}")
    first = ags.list()
    assert first.status_code == 200 and first.mimetype == CONTAINER
    assert len(first.get_json()) == 10
    links = first.headers["Link"].split(",<")
    rels = [part.rsplit('rel="', 1)[1].rstrip('"') for part in links]
    assert rels == ["current", "next", "first", "last"]
    base = f"{canvas.base_url}/api/lti/courses/{canvas.course_id}/line_items"
    assert f'<{base}?page=2&per_page=10>; rel="next"' in first.headers["Link"]
    second = ags.list("page=2")
    assert [i["label"] for i in second.get_json()] == ["Item 10", "Item 11"]
    rels2 = [p.rsplit('rel="', 1)[1].rstrip('"') for p in second.headers["Link"].split(",<")]
    assert rels2 == ["current", "prev", "first", "last"]
    clamped = ags.list("per_page=500")
    assert len(clamped.get_json()) == 12 and "per_page=50>" in clamped.headers["Link"]
    limited = ags.list("limit=5&tag=none")
    assert limited.get_json() == []
    assert "tag=none&page=1&per_page=5" in limited.headers["Link"]


def test_moodle_line_items_pagination_uses_offsets_and_curly_quotes(moodle):
    ags = Ags(moodle)
    for n in range(5):
        ags.create(label=f"Item {n}")
    everything = ags.list()
    assert len(everything.get_json()) == 5 and "Link" not in everything.headers
    page = ags.list("limit=2&from=2")
    assert [i["label"] for i in page.get_json()] == ["Item 2", "Item 3"]
    # Moodle sends UTF-8 curly quotes; WSGI carries them as latin-1 code points.
    link = page.headers["Link"].encode("latin-1").decode("utf-8")
    base = f"{moodle.base_url}/mod/lti/services.php/{moodle.course_id}/lineitems?type_id=3&limit=2"
    assert link == (
        f"<{base}&from=0>; rel=\u201cfirst\u201d, <{base}&from=0>; rel=\u201cprev\u201d, "
        f"<{base}&from=2>; rel=\u201ccanonical\u201d, <{base}&from=4>; rel=\u201cnext\u201d, "
        f"<{base}&from=4>; rel=\u201clast\u201d"
    )


# -- scores -----------------------------------------------------------------------------------


def test_score_without_timestamp_is_refused(sandbox):
    ags = Ags(sandbox)
    item = ags.create()
    resp = ags.score(item["id"], score_body(ags.user_id(sandbox.student_id), ts=None))
    assert resp.status_code == 400


def test_canvas_score_rules(canvas):
    ags = Ags(canvas)
    item = ags.create(maximum=100)
    user = ags.user_id(canvas.student_id)
    ok = ags.score(item["id"], score_body(user, "2025-06-12T18:54:36.500+00:00"))
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert ok.mimetype == SCORE
    assert ok.get_json()["resultUrl"].startswith(item["id"] + "/results/")
    # Equal timestamp is accepted (A9) ...
    assert ags.score(item["id"], score_body(user, "2025-06-12T18:54:36.500Z")).status_code == 200
    # ... an older one is refused with 400.
    older = ags.score(item["id"], score_body(user, "2025-06-12T18:54:36.499Z"))
    assert older.status_code == 400
    assert "before last updated timestamp" in older.get_json()["errors"]["message"]
    no_max = ags.score(item["id"], score_body(user, "2025-06-12T19:00:00Z", scoreMaximum=None))
    assert no_max.status_code == 422
    # Canvas also accepts the numeric Canvas user id and plain application/json.
    numeric = ags.score(
        item["id"], score_body(str(canvas.student_id), "2025-06-12T19:01:00Z"), "application/json"
    )
    assert numeric.status_code == 200
    teacher = ags.score(
        item["id"], score_body(ags.user_id(canvas.teacher_id), "2025-06-12T19:02:00Z")
    )
    assert teacher.status_code == 422
    bad_ts = ags.score(item["id"], score_body(user, "yesterday"))
    assert bad_ts.status_code == 400


def test_canvas_grading_semantics(canvas):
    ags = Ags(canvas)
    item = ags.create(maximum=100)
    user = ags.user_id(canvas.student_id)
    results_url = Ags.sub_url(item["id"], "results")

    def result() -> dict:
        resp = canvas.client.get(canvas.path(results_url), headers=ags.headers())
        assert resp.status_code == 200 and resp.mimetype == RESULTS
        (only,) = resp.get_json()
        return only

    assert ags.score(item["id"], score_body(user, "2025-06-12T10:00:00Z")).status_code == 200
    assert result()["resultScore"] == 3 and result()["userId"] == user
    gradebook = canvas.client.get("/gradebook.json").get_json()
    (entry,) = gradebook["line_items"]
    assert entry["results"][0]["grade"] == 75.0  # scaled to the line item maximum
    pending = ags.score(
        item["id"], score_body(user, "2025-06-12T11:00:00Z", gradingProgress="PendingManual")
    )
    assert pending.status_code == 200
    assert (
        canvas.client.get("/gradebook.json").get_json()["line_items"][0]["results"][0]["grade"]
        == 75.0
    )
    cleared = ags.score(
        item["id"], score_body(user, "2025-06-12T12:00:00Z", gradingProgress="Pending")
    )
    assert cleared.status_code == 200
    assert (
        canvas.client.get("/gradebook.json").get_json()["line_items"][0]["results"][0]["grade"]
        is None
    )
    assert len(canvas.client.get("/gradebook.json").get_json()["line_items"][0]["scores"]) == 3


def test_moodle_score_rules(moodle):
    ags = Ags(moodle)
    item = ags.create(maximum=100)
    user = ags.user_id(moodle.student_id)
    ok = ags.score(item["id"], score_body(user, "2025-06-12T18:54:36.200+00:00"))
    assert ok.status_code == 200 and ok.get_data() == b""
    assert ok.headers["Content-Type"] == f"{SCORE}; charset=utf-8"
    # Equal, older, or newer only by a fraction of a second: 409 (whole seconds, <=).
    for ts in ("2025-06-12T18:54:36.200Z", "2025-06-12T18:54:30Z", "2025-06-12T18:54:36.900Z"):
        assert ags.score(item["id"], score_body(user, ts)).status_code == 409, ts
    assert ags.score(item["id"], score_body(user, "2025-06-12T18:54:37Z")).status_code == 200
    wrong_type = ags.score(item["id"], score_body(user, "2025-06-12T19:00:00Z"), "application/json")
    assert wrong_type.status_code == 400
    no_max = ags.score(item["id"], score_body(user, "2025-06-12T19:00:00Z", scoreMaximum=None))
    assert no_max.status_code == 400
    assert no_max.get_json()["reason"].startswith("Incorrect score received")
    get = moodle.client.get(moodle.path(Ags.sub_url(item["id"], "scores")), headers=ags.headers())
    assert get.status_code == 405


def test_moodle_only_fully_graded_keeps_the_grade(moodle):
    ags = Ags(moodle)
    item = ags.create(maximum=100)
    user = ags.user_id(moodle.student_id)
    assert ags.score(item["id"], score_body(user, "2025-06-12T10:00:00Z")).status_code == 200
    results_url = Ags.sub_url(item["id"], "results")
    (res,) = moodle.client.get(moodle.path(results_url), headers=ags.headers()).get_json()
    assert res["resultScore"] == 75.0 and res["resultMaximum"] == 4
    assert res["id"] == results_url + f"&user_id={moodle.student_id}"
    pending = score_body(user, "2025-06-12T11:00:00Z", gradingProgress="PendingManual")
    assert ags.score(item["id"], pending).status_code == 200
    (res,) = moodle.client.get(moodle.path(results_url), headers=ags.headers()).get_json()
    assert res == {
        "id": results_url + f"&user_id={moodle.student_id}",
        "userId": str(moodle.student_id),
    }


@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_gradebook_page_lists_every_score(flavor, request):
    sb = request.getfixturevalue(flavor)
    ags = Ags(sb)
    item = ags.create(label="Fractions <mastery>")
    user = ags.user_id(sb.student_id)
    assert ags.score(item["id"], score_body(user, "2025-06-12T10:00:00Z")).status_code == 200
    assert (
        ags.score(item["id"], score_body(user, "2025-06-12T10:05:00Z", scoreGiven=4)).status_code
        == 200
    )
    page = sb.client.get("/gradebook").get_data(as_text=True)
    assert "Fractions &lt;mastery&gt;" in page  # autoescaped
    assert page.count("2025-06-12T10:0") >= 3  # both scores in the history + the current one
    assert "<caption" in page and 'scope="col"' in page and 'scope="row"' in page
