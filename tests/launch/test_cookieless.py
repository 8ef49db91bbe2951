"""Launches when the browser drops the tool's cookies inside the LMS frame:
LTI platform storage when the LMS offers it, else a new window, offered
before the platform's one-time login hint is spent."""

from __future__ import annotations

import html
import re

from tests.support.flows import error_code, post_launch, record_counts


def _attr(body: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', body)
    assert match, name
    return html.unescape(match.group(1))


def test_blocked_cookie_is_found_before_the_platform_is_asked(app, moodle, database_url):
    browser = app.test_client()
    params = moodle.login_params()
    response = browser.post("/lti/login", data=params)
    assert response.status_code == 302
    browser.delete_cookie(response.headers["Set-Cookie"].split("=")[0])  # blocked cookie
    page = browser.get(response.headers["Location"])
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and error_code(page) == "COOKIES_BLOCKED"
    assert "Location" not in page.headers
    new_window = re.search(r'href="(https://tool\.test/lti/login\?[^"]+)"', body).group(1)
    new_window = html.unescape(new_window)
    assert "pathwise_new_window=1" in new_window and 'target="_blank"' in body
    assert "iss=https%3A%2F%2Fmoodle.example.edu" in new_window
    assert "lti_deployment_id=3" in new_window and "login_hint=" in new_window
    assert record_counts(database_url)["tool_session"] == 0


def test_new_window_login_then_launch_succeeds(app, moodle):
    """The new window is first-party: the plain cookie path works there."""
    window = app.test_client()
    started = window.post("/lti/login", data={**moodle.login_params(),
                                              "pathwise_new_window": "1"})
    onward = window.get(started.headers["Location"])
    auth = moodle.auth_request(onward.headers["Location"])
    result = post_launch(window, moodle.sign(moodle.claims(auth["nonce"])), auth["state"])
    assert result.status_code == 303


def _storage_login(client, canvas):
    response = client.post("/lti/login", data=canvas.login_params(
        lti_storage_target="post_message_forwarding"))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'data-mode="put"' in body and "platform_storage.js" in body
    assert _attr(body, "data-target") == "post_message_forwarding"
    assert _attr(body, "data-origin") == "https://sso.canvaslms.com"
    auth = canvas.auth_request(_attr(body, "data-next"))
    assert "lti_state_" in response.headers["Set-Cookie"]  # second chance
    return auth, _attr(body, "data-value"), _attr(body, "data-key")


def test_platform_storage_binds_the_launch_without_cookies(app, canvas, database_url):
    login_frame = app.test_client()
    auth, secret, key = _storage_login(login_frame, canvas)
    assert len(secret) >= 32 and key.startswith("pathwise_state_")
    token = canvas.sign(canvas.claims(auth["nonce"]))
    launch_frame = app.test_client()  # third-party cookies blocked: none come back
    first = post_launch(launch_frame, token, auth["state"],
                        lti_storage_target="post_message_forwarding")
    body = first.get_data(as_text=True)
    assert first.status_code == 200 and 'data-mode="get"' in body
    assert _attr(body, "data-key") == key
    assert record_counts(database_url)["tool_session"] == 0  # nothing consumed yet
    done = post_launch(launch_frame, token, auth["state"], pathwise_storage_secret=secret,
                       pathwise_storage_checked="1")
    assert done.status_code == 303, done.get_data(as_text=True)[:500]
    page = launch_frame.get(done.headers["Location"])
    assert "Hello, Ada Lovelace" in page.get_data(as_text=True)


def test_wrong_storage_secret_is_refused(app, canvas, database_url):
    auth, _, _ = _storage_login(app.test_client(), canvas)
    token = canvas.sign(canvas.claims(auth["nonce"]))
    before = record_counts(database_url)
    response = post_launch(app.test_client(), token, auth["state"],
                           pathwise_storage_secret="guess", pathwise_storage_checked="1")
    assert response.status_code == 401 and error_code(response) == "STATE_NOT_BOUND"
    assert "Continue in a new window" in response.get_data(as_text=True)
    assert record_counts(database_url) == before


def test_storage_unavailable_falls_back_to_new_window(app, canvas, database_url):
    auth, _, _ = _storage_login(app.test_client(), canvas)
    token = canvas.sign(canvas.claims(auth["nonce"]))
    response = post_launch(app.test_client(), token, auth["state"],
                           pathwise_storage_secret="", pathwise_storage_checked="1")
    assert response.status_code == 401 and error_code(response) == "STATE_NOT_BOUND"


def test_new_window_login_ignores_the_storage_target(client, canvas):
    response = client.post("/lti/login", data=canvas.login_params(
        lti_storage_target="post_message_forwarding", pathwise_new_window="1"))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/lti/login/continue")


def test_unsafe_storage_target_is_not_echoed(client, canvas):
    response = client.post("/lti/login", data=canvas.login_params(
        lti_storage_target='x" onload="alert(1)'))
    assert response.status_code == 302


def test_platform_storage_is_preferred_and_the_cookie_is_the_fallback(app, canvas):
    browser = app.test_client()  # keeps its cookies: storage offered, cookie works too
    auth, _, _ = _storage_login(browser, canvas)
    token = canvas.sign(canvas.claims(auth["nonce"]))
    first = post_launch(browser, token, auth["state"],
                        lti_storage_target="post_message_forwarding")
    assert first.status_code == 200 and 'data-mode="get"' in first.get_data(as_text=True)
    # The LMS frame did not answer: the page posts again without a secret.
    done = post_launch(browser, token, auth["state"], pathwise_storage_secret="",
                       pathwise_storage_checked="1")
    assert done.status_code == 303
