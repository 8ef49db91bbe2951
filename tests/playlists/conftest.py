"""Fixtures of the playlist tests: the grades tests' course (a teacher, three
students, another course with its own student), made in the database."""

from tests.grades.conftest import course  # noqa: F401
