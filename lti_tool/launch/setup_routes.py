"""Install pages for LMS administrators: the Canvas developer-key JSON and the
exact values to enter by hand in Canvas or Moodle. Nothing secret here."""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template

from lti_tool.launch import setup
from lti_tool.services import services

bp = Blueprint("setup", __name__)


@bp.route("/lti/config/canvas.json")
def canvas_json():
    config = setup.canvas_config(services().settings.base_url)
    return Response(json.dumps(config, indent=2) + "\n", mimetype="application/json",
                    headers={"Cache-Control": "public, max-age=300"})


@bp.route("/lti/setup")
def setup_page():
    base = services().settings.base_url
    return render_template("setup.html", urls=setup.urls(base),
                           canvas=setup.canvas_values(base), moodle=setup.moodle_values(base),
                           scopes=setup.SCOPES)
