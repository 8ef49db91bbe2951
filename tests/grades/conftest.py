"""A course with a teacher and students, made directly in the database."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lti_tool.courses.models import Course, Enrollment, User
from lti_tool.db import session_scope
from lti_tool.launch.models import Deployment, Platform


@dataclass
class CourseFixture:
    database_url: str
    course_id: int
    teacher_id: int
    student_ids: list[int]
    other_course_id: int
    outsider_id: int


@pytest.fixture
def course(database_url) -> CourseFixture:
    with session_scope(database_url) as s:
        platform = Platform(name="LMS", issuer="https://lms.example", client_id="c",
                            auth_login_url="https://lms.example/auth",
                            auth_token_url="https://lms.example/token",
                            jwks_url="https://lms.example/jwks")
        s.add(platform)
        s.flush()
        deployment = Deployment(platform_id=platform.id, deployment_id="1")
        s.add(deployment)
        s.flush()
        courses = [Course(deployment_pk=deployment.id, context_id=cid, title=title)
                   for cid, title in (("c1", "Math 5"), ("c2", "Science 5"))]
        s.add_all(courses)
        s.flush()
        people = [User(platform_id=platform.id, sub=f"u{i}", name=name,
                       given_name=name.split()[0], family_name=name.split()[1])
                  for i, name in enumerate(["Grace Hopper", "Ada Lovelace", "Alan Turing",
                                            "Mary Jackson", "Katherine Johnson"])]
        s.add_all(people)
        s.flush()
        s.add(Enrollment(user_id=people[0].id, course_id=courses[0].id, role="teacher"))
        for person in people[1:4]:
            s.add(Enrollment(user_id=person.id, course_id=courses[0].id, role="student"))
        s.add(Enrollment(user_id=people[4].id, course_id=courses[1].id, role="student"))
        return CourseFixture(database_url, courses[0].id, people[0].id,
                             [p.id for p in people[1:4]], courses[1].id, people[4].id)
