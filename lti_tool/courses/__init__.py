"""People, courses, enrolments and resource links, as the LMS told us."""
