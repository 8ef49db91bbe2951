"""Pathwise: an LTI 1.3 tool for personalized, mastery-based learning."""

from __future__ import annotations

import logging
import os
import secrets

from flask import Flask, render_template

from lti_tool.config import load_settings

__version__ = "0.1.0"


def create_app(config: dict | None = None) -> Flask:
    """Application factory. `config` overrides settings (tests, CLI)."""
    config = dict(config or {})
    instance = config.pop("instance_path", None) or os.environ.get("LTI_TOOL_INSTANCE_PATH")
    app = Flask(__name__, instance_path=instance, instance_relative_config=True)
    settings = load_settings(app.instance_path, config)
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=1024 * 1024,
        MAX_FORM_MEMORY_SIZE=256 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    logging.getLogger("lti_tool").setLevel(logging.INFO)

    from lti_tool import observability, ratelimit, web
    from lti_tool.courses.routes import bp as pages_bp
    from lti_tool.grades.routes import bp as grades_bp
    from lti_tool.launch.deep_linking_routes import bp as deep_linking_bp
    from lti_tool.launch.registration_routes import bp as registration_bp
    from lti_tool.launch.routes import bp as launch_bp
    from lti_tool.launch.setup_routes import bp as setup_bp
    from lti_tool.passback.routes import bp as passback_bp
    from lti_tool.playlists.agency_routes import bp as agency_bp
    from lti_tool.playlists.routes import bp as playlists_bp
    from lti_tool.services import build_services

    app.extensions["pathwise"] = build_services(settings)
    # Observability first: its after_request runs last, so the access log and
    # the latency histogram see the final response.
    observability.init_app(app)
    ratelimit.init_app(app)
    web.init_app(app)
    app.register_blueprint(launch_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(grades_bp)
    app.register_blueprint(playlists_bp)
    app.register_blueprint(agency_bp)
    app.register_blueprint(passback_bp)
    app.register_blueprint(deep_linking_bp)
    app.register_blueprint(registration_bp)
    app.register_blueprint(setup_bp)
    _register_error_pages(app)
    return app


def _register_error_pages(app: Flask) -> None:
    messages = {
        400: ("Bad request", "The request could not be understood."),
        403: ("Not allowed", "You do not have access to this page."),
        404: ("Not found", "There is nothing at this address."),
        405: ("Method not allowed", "This address does not accept that kind of request."),
        413: ("Too large", "The request is too large."),
        429: ("Too many requests", "Please wait a moment, then try again."),
    }

    def handler(exc):
        code = getattr(exc, "code", 500) or 500
        title, text = messages.get(code, ("Something went wrong", "Please try again."))
        return render_template("error.html", title=title, text=text, status=code), code

    for code in messages:
        app.register_error_handler(code, handler)

    @app.errorhandler(500)
    def server_error(exc):
        from lti_tool.observability import request_id

        reference = request_id() or secrets.token_hex(6)
        app.logger.error("unhandled_error reference=%s", reference, exc_info=exc)
        return render_template("error.html", title="Something went wrong",
                               text=f"Pathwise hit an unexpected problem (reference {reference}).",
                               status=500), 500
