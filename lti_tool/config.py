"""Settings from `LTI_TOOL_*` environment variables, with embedded-mode defaults."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    base_url: str
    keys_dir: Path
    secret_key: str
    inline_worker: bool
    # Launch policy (seconds). Leeway covers clock skew between LMS and tool.
    clock_leeway: int = 60
    max_token_age: int = 300
    state_ttl: int = 600
    session_ttl: int = 3600
    jwks_default_ttl: int = 300
    jwks_refetch_interval: int = 30
    http_timeout: float = 5.0
    extra: dict = field(default_factory=dict)

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")


def _secret_from_instance(instance_path: Path) -> str:
    """Generate the secret once and keep it in the instance folder, so every
    process of one install (and every restart) signs with the same key."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # O_EXCL: when two processes start at once, the first writer wins.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def load_settings(instance_path: str | Path, overrides: dict | None = None) -> Settings:
    """Read settings from the environment; `overrides` (tests, CLI) win."""
    overrides = dict(overrides or {})
    env = os.environ
    instance = Path(overrides.pop("instance_path", instance_path)).resolve()
    database_url = overrides.pop("database_url", None) or env.get("LTI_TOOL_DATABASE_URL") or (
        f"sqlite:///{instance / 'pathwise.sqlite3'}"
    )
    base_url = (overrides.pop("base_url", None) or env.get("LTI_TOOL_BASE_URL")
                or "http://localhost:5000").rstrip("/")
    keys_dir = Path(overrides.pop("keys_dir", None) or env.get("LTI_TOOL_KEYS_DIR")
                    or "config/keys").resolve()
    secret_key = (overrides.pop("secret_key", None) or env.get("LTI_TOOL_SECRET_KEY")
                  or _secret_from_instance(instance))
    embedded = database_url.startswith("sqlite")
    inline_worker = overrides.pop("inline_worker", None)
    if inline_worker is None:
        inline_worker = _flag(env.get("LTI_TOOL_INLINE_WORKER"), embedded)
    return Settings(
        instance_path=instance,
        database_url=database_url,
        base_url=base_url,
        keys_dir=keys_dir,
        secret_key=secret_key,
        inline_worker=bool(inline_worker),
        **overrides,
    )
