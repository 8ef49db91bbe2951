"""Role mapping (pure): course roles decide, exactly parsed, least privilege."""

from hypothesis import given
from hypothesis import strategies as st

from lti_tool.launch.roles import STUDENT, TEACHER, decide

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
NON_STAFF = [LIS + "membership#Learner", LIS + "membership#Mentor",
             LIS + "institution/person#Instructor", LIS + "institution/person#Administrator",
             LIS + "system/person#Administrator", LIS + "system/person#User",
             LIS + "membership/Learner#Instructor", "Learner", "", "Instructor#", "x#Instructor",
             "http://example.com/vocab#Instructor"]


def test_context_roles_decide():
    assert decide([LIS + "membership#Instructor"]).role == TEACHER
    assert decide(["Instructor"]).role == TEACHER
    assert decide([LIS + "membership/Instructor#TeachingAssistant"]).role == TEACHER
    assert decide([LIS + "membership#ContentDeveloper"]).role == TEACHER
    assert decide([LIS + "membership#Administrator"]).role == TEACHER
    assert decide([LIS + "membership#Learner"]).role == STUDENT
    assert decide([LIS + "membership/Learner#Instructor"]).role == STUDENT


def test_moodle_site_admin_is_staff_through_membership():
    roles = [LIS + "institution/person#Administrator", LIS + "membership#Instructor",
             LIS + "system/person#Administrator"]
    assert decide(roles).role == TEACHER


def test_no_or_unknown_roles_get_least_privilege():
    for roles in ([], [""], ["http://example.com/unknown#Thing"]):
        decision = decide(roles)
        assert decision.role == STUDENT and not decision.recognised


@given(st.lists(st.sampled_from(NON_STAFF) | st.text(max_size=40), max_size=6))
def test_nothing_but_a_staff_context_role_makes_a_teacher(roles):
    staff = {LIS + "membership#Instructor", LIS + "membership#ContentDeveloper",
             LIS + "membership#Administrator", "Instructor", "ContentDeveloper",
             "Administrator", "TeachingAssistant"}
    is_staff = any(r.strip() in staff or r.strip().startswith(LIS + "membership/Instructor#")
                   for r in roles)
    assert (decide(roles).role == TEACHER) == is_staff
