"""Map LIS role URIs to Pathwise roles (pure).

Only context (membership) roles decide: Canvas adds institution roles such as
`institution/person#Instructor` to people who are learners in this course.
Roles are parsed exactly, so `membership/Learner#Instructor` (a learner
sub-role) never makes someone staff."""

from __future__ import annotations

from dataclasses import dataclass

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
STAFF_PRINCIPALS = {"Instructor", "ContentDeveloper", "Administrator"}
# Sub-roles that make someone staff in the course; other sub-roles follow
# their principal role (e.g. Learner#Instructor stays a learner).
STAFF_SUBROLES = {("Instructor", "TeachingAssistant"), ("Instructor", "PrimaryInstructor"),
                  ("Instructor", "SecondaryInstructor"), ("Instructor", "Lecturer"),
                  ("Instructor", "Grader"), ("ContentDeveloper", "ContentDeveloper"),
                  ("Administrator", "Administrator")}
# Deprecated simple names that LTI 1.3 allows (and Moodle uses in places).
SHORT_NAMES = {"Instructor", "Learner", "ContentDeveloper", "Administrator", "Mentor",
               "TeachingAssistant", "Member", "Manager", "Officer"}

TEACHER = "teacher"
STUDENT = "student"


@dataclass(frozen=True)
class RoleDecision:
    role: str            # TEACHER or STUDENT
    recognised: bool     # False: no known context role, least privilege applied
    context_roles: tuple[str, ...]


def context_role(uri: str) -> tuple[str, str | None] | None:
    """(principal, sub-role) for a membership role URI or short name, else None."""
    if not isinstance(uri, str):
        return None
    uri = uri.strip()
    if uri in SHORT_NAMES:
        if uri == "TeachingAssistant":
            return ("Instructor", "TeachingAssistant")
        return (uri, None)
    if uri.startswith(MEMBERSHIP + "#"):
        name = uri[len(MEMBERSHIP) + 1:]
        return (name, None) if name else None
    if uri.startswith(MEMBERSHIP + "/"):
        rest = uri[len(MEMBERSHIP) + 1:]
        principal, sep, sub = rest.partition("#")
        if sep and principal and sub and "/" not in principal:
            return (principal, sub)
    return None


def decide(roles: list[str]) -> RoleDecision:
    parsed = [r for r in (context_role(x) for x in roles) if r is not None]
    names = tuple(p if s is None else f"{p}#{s}" for p, s in parsed)
    staff = any(
        (sub is None and principal in STAFF_PRINCIPALS) or (principal, sub) in STAFF_SUBROLES
        for principal, sub in parsed
    )
    if staff:
        return RoleDecision(TEACHER, True, names)
    learner = any(principal == "Learner" for principal, _ in parsed)
    return RoleDecision(STUDENT, learner, names)
