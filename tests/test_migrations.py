"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import lti_tool.models as models
from lti_tool.db import get_engine


def test_migrations_match_the_models(database_url):
    # database_url is migrated to the newest revision by the fixture.
    with get_engine(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, models.Base.metadata)
    assert diff == [], diff
