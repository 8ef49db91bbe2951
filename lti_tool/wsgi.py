"""WSGI entry point for gunicorn: `lti_tool.wsgi:app`."""

from lti_tool import create_app

app = create_app()
