"""Drive a full LTI 1.3 launch against a tool served over real HTTP.

The test LMS (tests.support.platform.TestPlatform) plays the platform: it
builds the login request, reads state and nonce from the tool's redirect to the
platform's authorization endpoint, signs an RS256 id_token, and posts it back.
The same driver serves the end-to-end tests and the launch benchmark, so a
benchmark number always means "a launch the tests accept as correct".

Cookies: every launch is a fresh visitor, so the session's cookie jar is
disabled and the cookies the tool sets during the login are sent back
explicitly, on its own redirects within the login and on the launch. This is
also what makes the flow work over plain http: the tool's state cookie is
`Secure`, which `requests` (rightly) never sends over http, whereas a browser
talking to the https deployment would.
"""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from tests.support.platform import LTI, TestPlatform

ERROR_CODE = re.compile(r'data-error-code="([A-Z_]+)"')
MAX_TOOL_REDIRECTS = 5


class LaunchFailed(AssertionError):
    """A step of the launch answered something else than a correct launch does.

    An AssertionError, so pytest shows it as a failed check; the benchmark
    catches it to count failed launches."""


@dataclass(frozen=True)
class LoginStep:
    response: requests.Response
    state: str
    nonce: str
    cookies: dict[str, str]
    seconds: float
    requests: int


@dataclass
class LaunchResult:
    """What one launch did and how long each step took (seconds)."""

    id_token: str
    state: str
    cookies: dict[str, str]
    launch_response: requests.Response
    page: requests.Response
    timings: dict[str, float] = field(default_factory=dict)
    requests: int = 0   # HTTP requests to the tool (login hops, launch, first page)

    @property
    def total(self) -> float:
        return sum(self.timings.values())


def error_code(response: requests.Response) -> str | None:
    """The tool's machine-readable launch error code, when the page has one."""
    match = ERROR_CODE.search(response.text)
    return match.group(1) if match else None


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def _excerpt(response: requests.Response) -> str:
    return f"HTTP {response.status_code} {response.url}: {response.text[:300]!r}"


class HttpLauncher:
    """Login → sign → launch → first page against one tool, over one
    connection-pooled requests.Session (one launcher per client thread)."""

    def __init__(self, base_url: str, platform: TestPlatform, *,
                 login_path: str = "/lti/login", launch_path: str = "/lti/launch",
                 login_method: str = "POST", timeout: float = 15.0,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.platform = platform
        self.login_url = self.base_url + login_path
        self.launch_url = self.base_url + launch_path
        self.login_method = login_method
        self.timeout = timeout
        self.http = session or requests.Session()
        # Cookies travel explicitly (see the module docstring), never via the jar.
        self.http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))

    def close(self) -> None:
        self.http.close()

    # -- steps -----------------------------------------------------------------
    def login(self, **overrides: str) -> LoginStep:
        """OIDC login initiation, up to the redirect to the platform's
        authorization endpoint; returns the state, nonce and the cookies the
        tool set on the way. Redirects within the tool (e.g. a step that checks
        the state cookie came back) are followed with the cookies, like a
        browser; the redirect to the platform is not."""
        params = self.platform.login_params(target_link_uri=self.launch_url, **overrides)
        started = time.perf_counter()
        if self.login_method == "GET":
            response = self.http.get(self.login_url, params=params, timeout=self.timeout,
                                     allow_redirects=False)
        else:
            response = self.http.post(self.login_url, data=params, timeout=self.timeout,
                                      allow_redirects=False)
        cookies = dict(response.cookies.items())
        requests_made = 1
        while self._redirects_within_tool(response):
            if requests_made > MAX_TOOL_REDIRECTS:
                raise LaunchFailed("login redirects in a loop: " + _excerpt(response))
            response = self.http.get(urljoin(response.url, response.headers["Location"]),
                                     headers={"Cookie": cookie_header(cookies)},
                                     timeout=self.timeout, allow_redirects=False)
            cookies.update(response.cookies.items())
            requests_made += 1
        seconds = time.perf_counter() - started
        if response.status_code not in (302, 303) or "Location" not in response.headers:
            raise LaunchFailed("login did not redirect to the platform: " + _excerpt(response))
        auth = self.platform.auth_request(response.headers["Location"])
        if not auth.get("state") or not auth.get("nonce"):
            raise LaunchFailed(f"the authentication request lacks state or nonce: {auth}")
        if auth.get("redirect_uri") != self.launch_url:
            raise LaunchFailed(f"redirect_uri {auth.get('redirect_uri')!r} is not "
                               f"{self.launch_url!r}")
        return LoginStep(response=response, state=auth["state"], nonce=auth["nonce"],
                         cookies=cookies, seconds=seconds, requests=requests_made)

    def _redirects_within_tool(self, response: requests.Response) -> bool:
        if response.status_code not in (301, 302, 303, 307, 308):
            return False
        target = urlsplit(urljoin(response.url, response.headers.get("Location", "")))
        return f"{target.scheme}://{target.netloc}" == self.origin

    def post_launch(self, id_token: str, state: str,
                    cookies: dict[str, str] | None = None) -> requests.Response:
        """POST the id_token like the platform's auto-submitted form does."""
        headers = {"Cookie": cookie_header(cookies)} if cookies else {}
        return self.http.post(self.launch_url, data={"id_token": id_token, "state": state},
                              headers=headers, timeout=self.timeout, allow_redirects=False)

    def launch(self, role: str = "student", **claim_overrides: object) -> LaunchResult:
        """One complete launch; raises LaunchFailed unless the first page
        answers 200 and greets the person by the name in the id_token."""
        step = self.login()
        started = time.perf_counter()
        claims = self.platform.claims(step.nonce, role=role, **{
            LTI + "target_link_uri": self.launch_url, **claim_overrides})
        id_token = self.platform.sign(claims)
        signed = time.perf_counter()
        response = self.post_launch(id_token, step.state, step.cookies)
        launched = time.perf_counter()
        if response.status_code in (302, 303):
            # The tool answers with a redirect to its first page (POST/redirect/GET).
            page = self.http.get(urljoin(response.url, response.headers["Location"]),
                                 timeout=self.timeout, allow_redirects=False)
        elif response.status_code == 200:
            page = response   # a tool that renders the first page in the launch response
        else:
            raise LaunchFailed(f"launch refused ({error_code(response)}): "
                               + _excerpt(response))
        finished = time.perf_counter()
        if page.status_code != 200:
            raise LaunchFailed("first page failed: " + _excerpt(page))
        greeting = f"Hello, {html.escape(str(claims.get('name')))}"
        if greeting not in page.text:
            raise LaunchFailed(f"first page does not say {greeting!r}: " + _excerpt(page))
        return LaunchResult(
            id_token=id_token, state=step.state, cookies=step.cookies,
            launch_response=response, page=page,
            requests=step.requests + (1 if page is response else 2),
            timings={"login": step.seconds, "sign": signed - started,
                     "launch": launched - signed, "page": finished - launched})


# -- serving a process on loopback (the tool under test, the baseline) ----------
def free_port() -> int:
    """A port that was free a moment ago (the OS picks it; a tiny race is fine
    on loopback in a test run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server started as a subprocess, its output in a log file (a pipe
    nobody reads would block it), stopped by its own pid."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path,
                 cwd: str | Path | None = None):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, url: str, timeout: float = 30.0) -> None:
        """Poll `url` until it answers 200; fail early when the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[:4]} exited with {self.process.returncode}:\n"
                                   + self.log_tail())
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n" + self.log_tail())

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (gunicorn shuts its workers down gracefully), then SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()


def tool_env(root: Path, base_url: str, database_url: str | None = None) -> dict[str, str]:
    """An operator's environment for a tool installed in `root`: a clean
    slate, nothing inherited from the test run's own LTI_TOOL_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTI_TOOL_")}
    env.update(LTI_TOOL_INSTANCE_PATH=str(root / "instance"),
               LTI_TOOL_KEYS_DIR=str(root / "keys"),
               LTI_TOOL_DATABASE_URL=database_url
               or f"sqlite:///{root / 'instance' / 'pathwise.sqlite3'}",
               LTI_TOOL_BASE_URL=base_url,
               # These tools are launched by test platforms whose service URLs
               # (rosters, gradebooks) name real LMS hosts: no background worker
               # may ever try to reach them. Tests that deliver grades start
               # their worker against a loopback LMS themselves.
               LTI_TOOL_INLINE_WORKER="0")
    return env
