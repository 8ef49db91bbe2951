"""WSGI entry point for gunicorn: `lti_tool.wsgi:app`.

In the embedded mode (LTI_TOOL_INLINE_WORKER on, the default with SQLite) each
serving process also delivers grade passbacks from a background thread; with
separate `lti-tool worker` processes, turn it off."""

from lti_tool import create_app
from lti_tool.passback.worker import start_inline

app = create_app()
_settings = app.extensions["pathwise"].settings
if _settings.inline_worker:
    start_inline(_settings.database_url, _settings.keys_dir)
