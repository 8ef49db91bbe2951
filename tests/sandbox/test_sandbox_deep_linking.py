"""Deep linking return: signature and claim checks, and what a valid response creates."""

from __future__ import annotations

import re
import time
import uuid

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"


def _dl_launch(sb) -> dict:
    _header, claims, _fields = sb.id_token(sb.teacher_id, sb.dl_path())
    return claims


def _response(sb, request_claims: dict, items: list[dict] | None = None, **overrides) -> dict:
    now = int(time.time())
    payload = {
        "iss": sb.client_id,
        "aud": sb.issuer,
        "iat": now,
        "exp": now + 300,
        "nonce": uuid.uuid4().hex,
        LTI + "message_type": "LtiDeepLinkingResponse",
        LTI + "version": "1.3.0",
        LTI + "deployment_id": request_claims[LTI + "deployment_id"],
        DL + "content_items": items if items is not None else [_item()],
        DL + "msg": "Playlist added",
    }
    data = request_claims[DL + "deep_linking_settings"].get("data")
    if data is not None:
        payload[DL + "data"] = data
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def _item(**extra) -> dict:
    item = {
        "type": "ltiResourceLink",
        "title": "Fractions Playlist",
        "text": "Mastery-graded playlist",
        "url": "https://tool.example/lti/launch?playlist=pl_42",
        "custom": {"playlist_id": "pl_42"},
        "lineItem": {
            "scoreMaximum": 4,
            "label": "Fractions Playlist",
            "resourceId": "pl_42",
            "tag": "mastery",
        },
    }
    item.update(extra)
    return {k: v for k, v in item.items() if v is not None}


def _post(sb, request_claims: dict, token: str):
    url = request_claims[DL + "deep_linking_settings"]["deep_link_return_url"]
    return sb.app.test_client().post(sb.path(url), data={"JWT": token})


def test_valid_response_creates_a_graded_resource_link(sandbox):
    claims = _dl_launch(sandbox)
    resp = _post(sandbox, claims, sandbox.tool.sign(_response(sandbox, claims)))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    page = resp.get_data(as_text=True)
    assert "Fractions Playlist" in page and "Playlist added" in page
    gradebook = sandbox.client.get("/gradebook.json").get_json()
    (item,) = gradebook["line_items"]
    assert item["coupled"] == 1 and item["score_maximum"] == 4 and item["resource_id"] == "pl_42"
    # The new link launches with its custom parameters and its single line item.
    rl_id = item["resource_link_id"]
    _h, launch, _f = sandbox.id_token(
        sandbox.student_id, f"/courses/{sandbox.course_id}/launch/link/{rl_id}"
    )
    assert launch[LTI + "custom"]["playlist_id"] == "pl_42"
    assert launch[LTI + "target_link_uri"] == "https://tool.example/lti/launch?playlist=pl_42"
    assert launch[AGS]["lineitem"].startswith(launch[AGS]["lineitems"].split("?")[0] + "/")
    assert launch[LTI + "resource_link"]["title"] == "Fractions Playlist"
    if sandbox.flavor == "canvas":
        assert launch["https://www.instructure.com/placement"] is None
        uuid.UUID(launch[LTI + "resource_link"]["id"])
        assert launch[AGS]["lineitem"].endswith(f"/line_items/{item['id']}")
    else:
        assert launch[AGS]["lineitem"].endswith(f"/lineitems/{item['id']}/lineitem?type_id=3")
        assert "https://purl.imsglobal.org/spec/lti-bo/claim/basicoutcome" in launch


def test_coupled_line_item_cannot_be_deleted(sandbox):
    claims = _dl_launch(sandbox)
    assert _post(sandbox, claims, sandbox.tool.sign(_response(sandbox, claims))).status_code == 200
    item_id = sandbox.client.get("/gradebook.json").get_json()["line_items"][0]["id"]
    token = sandbox.token()
    if sandbox.flavor == "canvas":
        path = f"/api/lti/courses/{sandbox.course_id}/line_items/{item_id}"
    else:
        path = f"/mod/lti/services.php/{sandbox.course_id}/lineitems/{item_id}/lineitem?type_id=3"
    resp = sandbox.client.delete(path, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == (401 if sandbox.flavor == "canvas" else 403)


def test_wrong_signature_is_refused(sandbox, other_key):
    claims = _dl_launch(sandbox)
    resp = _post(sandbox, claims, sandbox.tool.sign(_response(sandbox, claims), key=other_key))
    assert resp.status_code == 400
    assert "signature" in resp.get_data(as_text=True)
    assert sandbox.client.get("/gradebook.json").get_json()["line_items"] == []


def test_wrong_audience_is_refused(sandbox):
    claims = _dl_launch(sandbox)
    resp = _post(
        sandbox,
        claims,
        sandbox.tool.sign(_response(sandbox, claims, aud="https://someone-else.example")),
    )
    assert resp.status_code == 400
    assert "aud" in resp.get_data(as_text=True)


def test_claim_checks(sandbox):
    claims = _dl_launch(sandbox)
    now = int(time.time())
    bad = [
        {"nonce": None},
        {"iss": "not-the-client"},
        {"iat": now - 3600, "exp": now + 60},
        {"exp": now - 10, "iat": now - 100},
        {LTI + "message_type": "LtiResourceLinkRequest"},
        {LTI + "version": "1.1"},
        {LTI + "deployment_id": "other"},
    ]
    for override in bad:
        resp = _post(sandbox, claims, sandbox.tool.sign(_response(sandbox, claims, **override)))
        assert resp.status_code == 400, override
    assert _post(sandbox, claims, "").status_code == 400  # no JWT field


def test_nonce_cannot_be_replayed(sandbox):
    claims = _dl_launch(sandbox)
    token = sandbox.tool.sign(_response(sandbox, claims, **{DL + "content_items": []}))
    assert _post(sandbox, claims, token).status_code == 200
    replay = _post(sandbox, claims, token)
    assert replay.status_code == 400 and "already" in replay.get_data(as_text=True)


def test_data_must_be_echoed_when_sent(sandbox):
    sandbox.app.config["SANDBOX_SEND_DL_DATA"] = True
    claims = _dl_launch(sandbox)
    data = claims[DL + "deep_linking_settings"]["data"]
    assert data
    missing = _post(
        sandbox, claims, sandbox.tool.sign(_response(sandbox, claims, **{DL + "data": None}))
    )
    assert missing.status_code == 400
    echoed = _post(sandbox, claims, sandbox.tool.sign(_response(sandbox, claims)))
    assert echoed.status_code == 200


def test_return_url_must_be_the_issued_one(sandbox):
    claims = _dl_launch(sandbox)
    url = claims[DL + "deep_linking_settings"]["deep_link_return_url"]
    tampered = re.sub(r"(data|sesskey)=[^&]+", r"\1=forged", url)
    resp = sandbox.app.test_client().post(
        sandbox.path(tampered), data={"JWT": sandbox.tool.sign(_response(sandbox, claims))}
    )
    assert resp.status_code == 400


def test_canvas_assignment_selection_accepts_a_single_item(canvas):
    claims = _dl_launch(canvas)
    two = [_item(), _item(title="Second")]
    resp = _post(canvas, claims, canvas.tool.sign(_response(canvas, claims, items=two)))
    assert resp.status_code == 400
    assert "accept_multiple" in resp.get_data(as_text=True)


def test_moodle_accepts_several_items_and_ignores_other_types(moodle):
    claims = _dl_launch(moodle)
    items = [
        _item(lineItem=None),
        _item(title="Second", lineItem=None),
        {"type": "html", "html": "<p>x</p>"},
    ]
    resp = _post(moodle, claims, moodle.tool.sign(_response(moodle, claims, items=items)))
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Second" in page and "Ignored an item of type" in page
    course = moodle.app.test_client()
    moodle.sign_in(course, moodle.teacher_id)
    listing = course.get(f"/courses/{moodle.course_id}").get_data(as_text=True)
    assert listing.count("Fractions Playlist") == 1 and "Second" in listing
