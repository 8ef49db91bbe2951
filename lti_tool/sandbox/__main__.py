"""`python -m lti_tool.sandbox --flavor canvas|moodle --port P --tool-url URL [--host H]`
[--db PATH] [--latency-ms N] [--test-controls] [--issuer self|URL]

Thin on purpose: `lti-tool sandbox` (the tool's CLI) wires the real command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from werkzeug.serving import make_server

from . import create_sandbox_app, registration_args, seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lti_tool.sandbox", description="Run the sandbox LMS."
    )
    parser.add_argument("--flavor", choices=["canvas", "moodle"], default="canvas")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    parser.add_argument("--tool-url", default="http://localhost:5000", help="the tool's base URL")
    parser.add_argument(
        "--base-url", default=None, help="the sandbox's public URL (default http://HOST:PORT)"
    )
    parser.add_argument(
        "--db", default=None, help="SQLite file (default instance/sandbox-FLAVOR.db)"
    )
    parser.add_argument(
        "--key", default=None, help="PEM signing key (default next to the database)"
    )
    parser.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=0,
        help="delay every token/AGS/NRPS request by N ms (requests still run in parallel)",
    )
    parser.add_argument(
        "--test-controls",
        action="store_true",
        help="enable /sandbox/faults, /sandbox/requests and /sandbox/gradebook.json (tests only)",
    )
    parser.add_argument(
        "--issuer",
        default=None,
        help="canvas only: 'self' (a self-hosted Canvas whose issuer is its own URL, needed "
        "for dynamic registration) or an issuer URL (default https://canvas.instructure.com)",
    )
    args = parser.parse_args(argv)

    # Bind first, so `--port 0` (any free port) works: the sandbox needs its own URL.
    holder: dict[str, Any] = {}

    def dispatch(environ: Any, start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    server = make_server(args.host, args.port, dispatch, threaded=True)
    try:
        host_for_url = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
        base_url = args.base_url or f"http://{host_for_url}:{server.server_port}"
        db_path = args.db or f"instance/sandbox-{args.flavor}.db"
        app = create_sandbox_app(
            flavor=args.flavor,
            base_url=base_url,
            tool_url=args.tool_url,
            db_path=db_path,
            key_path=args.key,
            latency_ms=args.latency_ms,
            test_controls=args.test_controls,
            issuer=args.issuer,
        )
        seed(app)
        holder["app"] = app
        print(f"Sandbox LMS ({args.flavor}) at {base_url}/", file=sys.stderr)
        if args.latency_ms:
            print(f"Service latency: {args.latency_ms} ms", file=sys.stderr)
        if args.test_controls:
            print(f"Test controls on: {base_url}/sandbox/faults", file=sys.stderr)
        print("Register it with the tool:", file=sys.stderr)
        print("  lti-tool " + shlex.join(registration_args(app)), file=sys.stderr)
        print(f"or dynamically: {base_url}/sandbox/register", file=sys.stderr)
        sys.stderr.flush()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
