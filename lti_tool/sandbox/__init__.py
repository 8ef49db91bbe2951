"""Sandbox LMS: a small, independent LTI 1.3 *platform* (Canvas or Moodle flavour).

Used for the demo and for end-to-end tests over real HTTP. It shares no code with the
tool (`lti_tool.launch` and friends) and imports nothing from `lti_tool` outside this
package: it is a second, independent implementation of the platform side.

    app = create_sandbox_app(flavor="canvas", base_url="http://127.0.0.1:5100",
                             tool_url="http://localhost:5000", db_path="sandbox.db")
    seed(app)
    registration_args(app)  # -> ["platform", "add", "--issuer", ...] for `lti-tool`
"""

from .app import create_sandbox_app
from .seed import add_students, registration_args, seed

__all__ = ["add_students", "create_sandbox_app", "registration_args", "seed"]
