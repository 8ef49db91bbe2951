"""Whatever a signed token claims, the launch answers 303 or a 4xx page:
never a 500 (property-based: random values for every claim the tool reads)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.flows import login, post_launch
from tests.support.platform import LTI

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**20, max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)

CLAIMS = ["iss", "aud", "azp", "sub", "exp", "iat", "nonce", "name", "given_name",
          "family_name", "email", LTI + "message_type", LTI + "version",
          LTI + "deployment_id", LTI + "roles", LTI + "resource_link", LTI + "context",
          LTI + "target_link_uri", LTI + "launch_presentation", LTI + "custom",
          "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint",
          "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice",
          "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(CLAIMS), JSON, min_size=1, max_size=3),
       keep_nonce=st.booleans())
def test_any_claim_values_never_cause_a_server_error(app, canvas, changes, keep_nonce):
    client = app.test_client()
    started = login(client, canvas)
    claims = canvas.claims(started.nonce)
    claims.update(changes)
    if keep_nonce:
        claims["nonce"] = started.nonce
    response = post_launch(client, canvas.sign(claims), started.state)
    assert response.status_code == 303 or 400 <= response.status_code < 500, \
        (response.status_code, changes)
    if response.status_code == 303:
        page = client.get(response.headers["Location"])
        assert page.status_code == 200
