"""pylti1p3 adapters: registrations from the database, launch data in the
database, and the tool's own keys and kids. pylti1p3 then serves the parts it
gets right (restoring a launch, AGS/NRPS/deep-linking service objects)."""

from __future__ import annotations

from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskRequest
from pylti1p3.deployment import Deployment as LtiDeployment
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy.orm import Session

from lti_tool.launch.keys import KeySet
from lti_tool.launch.models import Platform
from lti_tool.launch.registrations import find_deployment, find_platforms


class ToolRegistration(Registration):
    """A registration that signs with the tool's current key and names its kid."""

    def __init__(self, platform: Platform, keyset: KeySet):
        super().__init__()
        self._keyset = keyset
        self.set_issuer(platform.issuer).set_client_id(platform.client_id) \
            .set_auth_login_url(platform.auth_login_url) \
            .set_auth_token_url(platform.auth_token_url) \
            .set_key_set_url(platform.jwks_url) \
            .set_tool_private_key(keyset.signing.private_pem)
        if platform.auth_audience:
            self.set_auth_audience(platform.auth_audience)

    def get_kid(self) -> str:
        return self._keyset.signing.kid

    def get_jwks(self):
        return self._keyset.jwks()["keys"]


class DbToolConf(ToolConfAbstract):
    """Every issuer may have several client ids (Canvas shares one issuer)."""

    def __init__(self, session: Session, keyset: KeySet):
        super().__init__()
        self.session = session
        self.keyset = keyset

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def _platform(self, iss: str, client_id: str | None) -> Platform | None:
        found = find_platforms(self.session, iss, client_id)
        return found[0] if len(found) == 1 else None

    def find_registration_by_issuer(self, iss, *args, **kwargs):
        platform = self._platform(iss, None)
        return ToolRegistration(platform, self.keyset) if platform else None

    def find_registration_by_params(self, iss, client_id, *args, **kwargs):
        platform = self._platform(iss, client_id)
        return ToolRegistration(platform, self.keyset) if platform else None

    def find_deployment(self, iss, deployment_id):
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(self, iss, deployment_id, client_id, *args, **kwargs):
        platform = self._platform(iss, client_id)
        if platform is None:
            return None
        row = find_deployment(self.session, platform.id, deployment_id)
        if row is None or not row.active:
            return None
        return LtiDeployment().set_deployment_id(row.deployment_id)


def restore_launch(session: Session, keyset: KeySet, claims: dict) -> FlaskMessageLaunch:
    """The pylti1p3 message launch for claims verified earlier (for services).
    Validation already happened in Pathwise's own pipeline; this only binds
    the claims to the database-backed registration and the tool's keys."""
    request = FlaskRequest(cookies={}, session={}, request_data={"state": ""},
                           request_is_secure=True)
    launch = FlaskMessageLaunch(request, DbToolConf(session, keyset),
                                session_service=_NoSessionService(),
                                cookie_service=_NoCookies())
    return launch.set_auto_validation(enable=False).set_jwt({"body": claims}) \
        .set_restored().validate_registration()


class _NoSessionService:
    """pylti1p3 keeps nothing in a session: Pathwise owns state and launches."""

    def __getattr__(self, name):
        raise RuntimeError(f"pylti1p3 session service used ({name}) after a Pathwise launch")


class _NoCookies:
    """The tool keeps nothing in cookies for pylti1p3."""

    def get_cookie(self, name):
        return None

    def set_cookie(self, *args, **kwargs):
        return None
