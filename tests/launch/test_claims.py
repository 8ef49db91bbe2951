"""Token time and audience rules (pure)."""

import pytest

from lti_tool.launch.claims import check_token_claims
from lti_tool.launch.errors import LaunchError

BASE = {"iss": "https://lms", "aud": "c1", "iat": 1000, "exp": 1060}


def check(now=1010, **changes):
    check_token_claims({**BASE, **changes}, issuer="https://lms", client_id="c1", now=now,
                       leeway=60, max_age=300)


def test_valid():
    check()
    check(aud=["c1", "x"], azp="c1")


@pytest.mark.parametrize("changes,now,code", [
    ({"exp": 900}, 1010, "JWT_EXPIRED"),
    ({}, 1121, "JWT_EXPIRED"),
    ({"iat": 1100, "exp": 1200}, 1010, "JWT_IAT_IN_FUTURE"),
    ({"iat": 600, "exp": 5000}, 1010, "JWT_TOO_OLD"),
    ({"iat": "1000"}, 1010, "JWT_IAT_MISSING"),
    ({"exp": True}, 1010, "JWT_EXP_MISSING"),
    ({"aud": ["x", "y"], "azp": "x"}, 1010, "JWT_AUD_MISMATCH"),
    ({"aud": ["c1", 5], "azp": "c1"}, 1010, "JWT_AUD_MISMATCH"),
])
def test_refused(changes, now, code):
    with pytest.raises(LaunchError) as info:
        check(now=now, **changes)
    assert info.value.code == code and info.value.status == 401


def test_leeway_edges():
    check(now=1060 + 60)          # exactly at exp + leeway
    check(iat=1070, now=1010)     # iat 60 s ahead: within leeway
