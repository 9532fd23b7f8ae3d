"""The base of every settings group: frozen, read by field name or flat name.

A field's *flat name* is its ``validation_alias`` where it has one (``telegram_token`` for
``TelegramSettings.token``), else its own name; ``PARLEY_`` and the flat name in capitals is
its environment variable (see :mod:`config.groups`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, model_validator

__all__ = ["Group", "IdList", "flat_names"]


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        if value.strip().startswith("["):  # a JSON list works too
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


IdList = Annotated[list[str], BeforeValidator(_comma_list)]
"""A list setting: comma-separated ids (``123,-100456``) or a JSON list (``["123"]``)."""


class Group(BaseModel):
    """A group of settings: frozen, by field name or by flat name, empty text is "not set"."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_is_none(cls, data: Any) -> Any:
        # PARLEY_X= (empty) leaves an optional setting unset, as it always has.
        if not isinstance(data, dict):
            return data
        optional = {
            key
            for name, field in cls.model_fields.items()
            if not field.is_required() and field.default is None
            for key in (name, *flat_names(field, name))
        }
        return {k: None if v == "" and k in optional else v for k, v in data.items()}


def flat_names(field: Any, name: str) -> tuple[str, ...]:
    """A group field's flat names, the current one first (then older aliases)."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (name,)
