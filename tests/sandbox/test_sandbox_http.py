"""The sandbox over real HTTP (threaded werkzeug server): a whole launch, services, concurrency."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
SCORE_MT = "application/vnd.ims.lis.v1.score+json"
LINEITEM_MT = "application/vnd.ims.lis.v2.lineitem+json"
ALL_SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem "
    "https://purl.imsglobal.org/spec/lti-ags/scope/score "
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
)


def _login_form(sb, user_id: int, launch_path: str) -> dict[str, str]:
    browser = requests.Session()
    home = browser.get(f"{sb.base_url}/", timeout=10)
    assert home.status_code == 200 and '<html lang="en">' in home.text
    signed = browser.post(
        f"{sb.base_url}/session", data={"course_id": sb.course_id, "user_id": user_id}, timeout=10
    )
    assert (
        signed.status_code == 200 and "<h1>Math 5" in signed.text
    )  # followed the 303 to the course
    page = browser.get(f"{sb.base_url}{launch_path}", timeout=10)
    src = html.unescape(re.search(r'id="tool-frame"[^>]*src="([^"]+)"', page.text).group(1))
    init = browser.get(f"{sb.base_url}{src}", timeout=10)
    action, fields = sb.parse_form(init.text)
    assert action == f"{sb.tool.url}/lti/login"
    return fields


def _token(sb) -> str:
    now = int(time.time())
    assertion = sb.tool.sign(
        {
            "iss": sb.client_id,
            "sub": sb.client_id,
            "aud": sb.token_url,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
    )
    resp = requests.post(
        sb.token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": ALL_SCOPES,
        },
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


@pytest.mark.parametrize("flavor", ["canvas", "moodle"])
def test_whole_launch_and_grade_passback_over_http(served_sandbox, flavor):
    sb = served_sandbox(flavor)
    login = _login_form(sb, sb.student_id, sb.nav_path())
    # The tool's authentication request, from the tool's iframe: no sandbox cookie at all.
    auth_url = (
        f"{sb.base_url}/api/lti/authorize_redirect"
        if flavor == "canvas"
        else f"{sb.base_url}/mod/lti/auth.php"
    )
    nonce = uuid.uuid4().hex
    resp = requests.post(auth_url, data=sb.auth_params(login, nonce=nonce, state="s1"), timeout=10)
    assert resp.status_code == 200
    action, fields = sb.parse_form(resp.text)
    assert action == f"{sb.tool.url}/lti/launch" and fields["state"] == "s1"
    jwks_url = sb.ctx.flavor.jwks_url(sb.base_url)
    signing_key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(fields["id_token"]).key
    claims = jwt.decode(
        fields["id_token"],
        signing_key,
        algorithms=["RS256"],
        audience=sb.client_id,
        issuer=sb.issuer,
    )
    assert claims["nonce"] == nonce

    token = _token(sb)
    headers = {"Authorization": f"Bearer {token}"}
    lineitems = claims[AGS]["lineitems"]
    created = requests.post(
        lineitems,
        data=json.dumps({"label": "Fractions", "scoreMaximum": 4}),
        headers={**headers, "Content-Type": LINEITEM_MT},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    lineitem = created.json()["id"]
    path, _, query = lineitem.partition("?")
    scores_url = f"{path}/scores" + (f"?{query}" if query else "")
    score = {
        "userId": claims["sub"],
        "scoreGiven": 3,
        "scoreMaximum": 4,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": "2025-06-12T18:54:36.736+00:00",
    }
    posted = requests.post(
        scores_url,
        data=json.dumps(score),
        headers={**headers, "Content-Type": SCORE_MT},
        timeout=10,
    )
    assert posted.status_code == 200, posted.text
    gradebook = requests.get(f"{sb.base_url}/gradebook", timeout=10)
    assert "2025-06-12T18:54:36.736+00:00" in gradebook.text


def test_moodle_link_header_bytes_over_http(served_sandbox):
    sb = served_sandbox("moodle")
    token = _token(sb)
    base = f"{sb.base_url}/mod/lti/services.php/{sb.course_id}/lineitems?type_id=3"
    for n in range(3):
        resp = requests.post(
            base,
            data=json.dumps({"label": f"Item {n}", "scoreMaximum": 1}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": LINEITEM_MT},
            timeout=10,
        )
        assert resp.status_code == 201
    page = requests.get(
        base + "&limit=1",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.ims.lis.v2.lineitemcontainer+json",
        },
        timeout=10,
    )
    raw = page.headers["Link"].encode("latin-1")  # http.client decodes header bytes as latin-1
    assert "rel=\u201cnext\u201d".encode() in raw
    assert b'rel="next"' not in raw


def test_parallel_scores_are_serialised(served_sandbox):
    """Moodle ordering under concurrency: every score is either stored or refused with 409."""
    sb = served_sandbox("moodle")
    token = _token(sb)
    headers = {"Authorization": f"Bearer {token}"}
    created = requests.post(
        f"{sb.base_url}/mod/lti/services.php/{sb.course_id}/lineitems?type_id=3",
        data=json.dumps({"label": "Race", "scoreMaximum": 10}),
        headers={**headers, "Content-Type": LINEITEM_MT},
        timeout=10,
    ).json()
    path, _, query = created["id"].partition("?")
    url = f"{path}/scores?{query}"

    def post(second: int) -> int:
        body = {
            "userId": str(sb.student_id),
            "scoreGiven": second % 10,
            "scoreMaximum": 10,
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            "timestamp": f"2025-06-12T10:00:{second:02d}Z",
        }
        return requests.post(
            url, data=json.dumps(body), headers={**headers, "Content-Type": SCORE_MT}, timeout=20
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(24)))
    assert set(statuses) <= {200, 409}, statuses
    accepted = statuses.count(200)
    assert accepted >= 1
    book = requests.get(f"{sb.base_url}/gradebook.json", timeout=10).json()
    (item,) = book["line_items"]
    assert len(item["scores"]) == accepted
    seconds = [int(s["timestamp"][17:19]) for s in item["scores"]]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(
        seconds
    )  # stored in increasing order
    assert item["results"][0]["timestamp"] == item["scores"][-1]["timestamp"]


def test_platform_storage_frame_only_in_canvas(canvas, moodle):
    for sb, expected in ((canvas, True), (moodle, False)):
        client = sb.app.test_client()
        sb.sign_in(client, sb.student_id)
        page = client.get(sb.nav_path()).get_data(as_text=True)
        assert ('name="post_message_forwarding"' in page) is expected
        assert ("platform_storage.js" in page) is expected
    frame = canvas.client.get("/lti/post_message_forwarding")
    assert frame.status_code == 200 and "platform_storage.js" in frame.get_data(as_text=True)
    assert moodle.client.get("/lti/post_message_forwarding").status_code == 404
    script = canvas.client.get("/sandbox-static/sandbox/platform_storage.js").get_data(as_text=True)
    for needle in (
        "lti.put_data",
        "lti.get_data",
        "lti.capabilities",
        "storage_exhaustion",
        "500",
        "4096",
    ):
        assert needle in script
