"""Parley's configuration: :class:`Settings`, read once at the entry point and passed down."""

from __future__ import annotations

from pydantic import ValidationError

from config.settings import PACKAGED_MODEL, Settings, env_name
from core.errors import ConfigurationError

__all__ = ["PACKAGED_MODEL", "Settings", "load_settings"]


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment (and ``.env``); bad values raise one clear error."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{env_name(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"Invalid configuration: {problems}") from None
