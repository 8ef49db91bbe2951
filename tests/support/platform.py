"""A test LMS that signs real RS256 id_tokens and serves its JWKS over real
HTTP. It shares no code with the tool's launch package on purpose."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/"

_KEY_CACHE: list[rsa.RSAPrivateKey] = []


def rsa_key() -> rsa.RSAPrivateKey:
    """A fresh-enough RSA key; generation is slow, so tests share a few."""
    if len(_KEY_CACHE) < 3:
        _KEY_CACHE.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _KEY_CACHE[-1]
    return _KEY_CACHE[secrets.randbelow(len(_KEY_CACHE))]


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": jwk["n"], "e": jwk["e"]}


class JwksServer:
    """Serves the platform's JWKS; tests can break it or count requests."""

    def __init__(self):
        self.jwks: dict = {"keys": []}
        self.mode = "ok"          # ok | error | html | huge | slow
        self.cache_control = "max-age=300"
        self.latency = 0.0        # seconds: models an LMS across the internet
        self.requests = 0
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @Request.application
    def _app(self, request: Request) -> Response:
        self.requests += 1
        if self.latency:
            time.sleep(self.latency)
        if self.mode == "error":
            return Response("boom", status=500)
        if self.mode == "html":
            return Response("<html>maintenance</html>", mimetype="text/html")
        if self.mode == "huge":
            return Response(json.dumps({"keys": [], "pad": "x" * 100_000}),
                            mimetype="application/json")
        if self.mode == "slow":
            time.sleep(3)
        return Response(json.dumps(self.jwks), mimetype="application/json",
                        headers={"Cache-Control": self.cache_control})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Flavor:
    name: str
    issuer: str
    client_id: str
    deployment_id: str
    auth_login_url: str
    auth_token_url: str
    lifetime: int
    extra_login: dict = field(default_factory=dict)


def canvas_flavor() -> Flavor:
    return Flavor("canvas", "https://canvas.instructure.com", "10000000000042",
                  "87:4dde05e8ca1973bcca9bffc13e1548820eee93a3",
                  "https://sso.canvaslms.com/api/lti/authorize_redirect",
                  "https://sso.canvaslms.com/login/oauth2/token", 3600,
                  {"canvas_environment": "prod", "canvas_region": "us-east-1"})


def moodle_flavor() -> Flavor:
    return Flavor("moodle", "https://moodle.example.edu", "aB3dE5fG7hI9jK1", "3",
                  "https://moodle.example.edu/mod/lti/auth.php",
                  "https://moodle.example.edu/mod/lti/token.php", 60)


class TestPlatform:
    """One registered LMS: builds logins and signed launches."""

    __test__ = False  # not a pytest class

    def __init__(self, flavor: Flavor, jwks: JwksServer, tool_base_url: str):
        self.flavor = flavor
        self.jwks_server = jwks
        self.tool = tool_base_url
        self.kid = f"{flavor.name}-{secrets.token_hex(4)}"
        self.key = rsa_key()
        jwks.jwks["keys"].append(public_jwk(self.key, self.kid))

    # -- registration ----------------------------------------------------
    def registration(self) -> dict:
        f = self.flavor
        return dict(issuer=f.issuer, client_id=f.client_id, auth_login_url=f.auth_login_url,
                    auth_token_url=f.auth_token_url, jwks_url=self.jwks_server.url,
                    deployment_ids=[f.deployment_id], name=f"Test {f.name}")

    # -- login -----------------------------------------------------------
    def login_params(self, **overrides) -> dict:
        f = self.flavor
        params = {"iss": f.issuer, "login_hint": secrets.token_hex(20),
                  "target_link_uri": self.tool + "/lti/launch", "client_id": f.client_id,
                  "lti_deployment_id": f.deployment_id,
                  "lti_message_hint": json.dumps({"cmid": 12, "launchid": "ltilaunch5_1"})}
        params.update(f.extra_login)
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    @staticmethod
    def auth_request(location: str) -> dict:
        """The parameters of the tool's authentication request."""
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    # -- id tokens -------------------------------------------------------
    def claims(self, nonce: str, role: str = "student", **overrides) -> dict:
        f = self.flavor
        now = int(time.time())
        canvas = f.name == "canvas"
        if role == "teacher":
            roles = ([LIS + "institution/person#Instructor", LIS + "membership#Instructor",
                      LIS + "system/person#User"] if canvas else [LIS + "membership#Instructor"])
            person = {"name": "Grace Hopper", "given_name": "Grace", "family_name": "Hopper",
                      "email": "ghopper@school.example"}
            sub = str(uuid.uuid4()) if canvas else "3"
        else:
            roles = ([LIS + "institution/person#Student", LIS + "membership#Learner",
                      LIS + "system/person#User"] if canvas else [LIS + "membership#Learner"])
            person = {"name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
                      "email": "ada@school.example"}
            sub = str(uuid.uuid4()) if canvas else "7"
        body = {
            "iss": f.issuer, "aud": f.client_id, "sub": sub, "nonce": nonce,
            "iat": now, "exp": now + f.lifetime,
            LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0",
            LTI + "deployment_id": f.deployment_id,
            LTI + "target_link_uri": self.tool + "/lti/launch",
            LTI + "resource_link": {"id": str(uuid.uuid4()) if canvas else "5",
                                    "title": "Fractions Playlist"},
            LTI + "roles": roles,
            LTI + "context": {
                "id": "4dde05e8ca1973bcca9bffc13e1548820eee93a3" if canvas else "2",
                "label": "MATH-5", "title": "Math 5",
                "type": [LIS + "course#CourseOffering"] if canvas else ["CourseSection"]},
            LTI + "launch_presentation": {
                "document_target": "iframe", "locale": "en",
                "return_url": ("https://school.instructure.com/courses/1234" if canvas
                               else f.issuer + "/mod/lti/return.php?course=2")},
            **person,
        }
        ags_scopes = ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                      "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                      "https://purl.imsglobal.org/spec/lti-ags/scope/score"]
        if canvas:
            school = "https://school.instructure.com/api/lti/courses/1234"
            body["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] = {
                "scope": ags_scopes, "lineitems": school + "/line_items"}
            body["https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"] = {
                "context_memberships_url": school + "/names_and_roles",
                "service_versions": ["2.0"]}
        else:
            services = f.issuer + "/mod/lti/services.php"
            body["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] = {
                "scope": ags_scopes, "lineitems": services + "/2/lineitems?type_id=3"}
        if canvas:
            body["azp"] = f.client_id
            body["https://www.instructure.com/placement"] = None
            body[LTI + "lti11_legacy_user_id"] = secrets.token_hex(20)
        else:
            body[LTI + "ext"] = {"lms": "moodle-2"}
            body[LTI + "lis"] = {"person_sourcedid": "", "course_section_sourcedid": ""}
        body.update(overrides)
        return body

    def sign(self, claims: dict, *, key=None, kid: str | None = "default",
             alg: str = "RS256", headers: dict | None = None) -> str:
        """A compact JWS built by hand, so a test can sign any claim values
        (PyJWT refuses some malformed ones) and any header."""
        header = {"typ": "JWT", "alg": alg, **(headers or {})}
        if kid == "default":
            header["kid"] = self.kid
        elif kid is not None:
            header["kid"] = kid
        b64 = jwt.utils.base64url_encode
        signing_input = (b64(json.dumps(header).encode()) + b"." +
                         b64(json.dumps(claims).encode()))
        algorithm = jwt.algorithms.get_default_algorithms()[alg]
        signature = algorithm.sign(signing_input, key or self.key)
        return (signing_input + b"." + b64(signature)).decode()
