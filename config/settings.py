"""Parley's settings: one object, read once from the environment at the entry point.

Every setting has the ``PARLEY_`` prefix (``PARLEY_MODEL``, ``PARLEY_DATABASE_URL``, ...)
and may also come from a ``.env`` file in the working folder. The defaults give the
embedded deployment: SQLite under ``data/``, the packaged model, generation in-process.
Nothing else in Parley reads the environment; the object is passed down, and each part
takes the group it needs::

    settings = load_settings()
    settings.telegram.token              # PARLEY_TELEGRAM_TOKEN
    settings.generation.temperature      # PARLEY_TEMPERATURE
    settings.llm.name                    # PARLEY_MODEL
    Settings(data_dir=tmp, temperature=0)                      # flat names, as in the env
    Settings(telegram=TelegramSettings(token=SecretStr("1:a")))  # or whole groups

The environment keeps flat names (one per setting, listed in ``docs/configuration.md``,
which ``python -m config.reference`` writes); :class:`Settings` sorts them into groups.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from config.groups import (
    DEFAULT_SYSTEM_PROMPT,
    PACKAGED_MODEL,
    PACKAGED_WHISPER,
    AttachmentSettings,
    ConversationSettings,
    FineTuningSettings,
    GenerationSettings,
    Group,
    JobSettings,
    LimitSettings,
    LlmSettings,
    OpenAISettings,
    PrivacySettings,
    SafetySettings,
    ScalingSettings,
    SlackSettings,
    StorageSettings,
    TelegramSettings,
    WebSettings,
    flat_names,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "ENV_PREFIX",
    "PACKAGED_MODEL",
    "PACKAGED_WHISPER",
    "FlatSetting",
    "Settings",
    "env_name",
    "flat_settings",
    "options_for",
]

ENV_PREFIX = "PARLEY_"


class Settings(BaseSettings):
    """All of Parley's configuration, by concern, with defaults that need no outside service."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    storage: StorageSettings = Field(default_factory=StorageSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    fine_tuning: FineTuningSettings = Field(default_factory=FineTuningSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments first, then ``PARLEY_<FLAT_NAME>`` variables, then ``.env``."""
        sources: list[PydanticBaseSettingsSource] = [init_settings]
        for source in (env_settings, dotenv_settings):
            if isinstance(source, (EnvSettingsSource, DotEnvSettingsSource)):
                sources.append(_FlatEnvSource(settings_cls, source.env_vars))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _group_flat_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return _grouped(data)

    @model_validator(mode="after")
    def _check_budget(self) -> Self:
        if self.generation.max_new_tokens >= self.engine_context_tokens:
            which = "CONTEXT_TOKENS"
            if self.engine_context_tokens != self.conversation.context_tokens:
                which = "OPENAI_CONTEXT_TOKENS"
            raise ValueError(
                f"PARLEY_MAX_NEW_TOKENS ({self.generation.max_new_tokens}) must be smaller than "
                f"PARLEY_{which} ({self.engine_context_tokens}): the prompt needs room too"
            )
        return self

    @model_validator(mode="after")
    def _check_engine(self) -> Self:
        if self.llm.engine == "openai" and not self.openai.base_url:
            raise ValueError(
                "PARLEY_ENGINE=openai needs PARLEY_OPENAI_BASE_URL, the server's API root "
                "(e.g. http://127.0.0.1:8080/v1)"
            )
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied: flat names or groups, validated like the input.

        Paths that default from ``data_dir`` follow a new ``data_dir``; every other value is
        this object's, not the environment's of now.
        """
        if not update:
            return super().model_copy(deep=deep)
        changes = _grouped(update)
        merged = {
            name: {**getattr(self, name).model_dump(), **changes.get(name, {})} for name in _GROUPS
        }
        return self.model_validate(merged)

    def environment(self) -> dict[str, str]:
        """These settings as ``PARLEY_*`` variables, secrets included: for child processes."""
        env: dict[str, str] = {}
        for setting in flat_settings():
            value = getattr(getattr(self, setting.group), setting.field)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[setting.env] = json.dumps(value) if isinstance(value, list) else str(value)
        return env

    @property
    def models_dir(self) -> Path:
        """Where converted models are cached."""
        return self.llm.cache_dir or self.storage.data_dir / "models"

    @property
    def versions_path(self) -> Path:
        """Where fine-tuned versions are kept."""
        return self.fine_tuning.versions_dir or self.storage.data_dir / "adapters"

    @property
    def engine_context_tokens(self) -> int:
        """The answering model's context: the server's with the openai engine."""
        if self.llm.engine == "openai" and self.openai.context_tokens is not None:
            return self.openai.context_tokens
        return self.conversation.context_tokens

    @property
    def prompt_budget(self) -> int:
        """Tokens the prompt may use, leaving room for the longest answer."""
        return self.engine_context_tokens - self.generation.max_new_tokens


_GROUPS: dict[str, type[Group]] = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Group)
}


@dataclasses.dataclass(frozen=True, slots=True)
class FlatSetting:
    """One setting as the environment names it, and where it lives in :class:`Settings`."""

    name: str
    """The flat name: ``telegram_token``."""
    group: str
    """The group attribute of :class:`Settings`: ``telegram``."""
    field: str
    """The field of the group: ``token``."""
    info: FieldInfo
    """The group field's pydantic description: type, default, bounds, description."""
    aliases: tuple[str, ...] = ()
    """Older flat names that still work (``adapters_dir`` for ``versions_dir``)."""

    @property
    def env(self) -> str:
        """The environment variable: ``PARLEY_TELEGRAM_TOKEN``."""
        return ENV_PREFIX + self.name.upper()

    @property
    def path(self) -> str:
        """The attribute path: ``telegram.token``."""
        return f"{self.group}.{self.field}"


def flat_settings() -> Iterator[FlatSetting]:
    """Every setting, group by group, in the order they are declared."""
    for group, model in _GROUPS.items():
        for field, info in model.model_fields.items():
            name, *aliases = flat_names(info, field)
            yield FlatSetting(name, group, field, info, tuple(aliases))


_BY_FLAT: dict[str, FlatSetting] = {
    name: setting for setting in flat_settings() for name in (setting.name, *setting.aliases)
}
assert not _BY_FLAT.keys() & _GROUPS.keys(), "a group may not share a name with a setting"


def _grouped(data: Mapping[str, Any]) -> dict[str, Any]:
    """Sort flat names into their groups; a group given whole wins over flat names."""
    grouped: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    flat: dict[str, dict[str, Any]] = {}
    # Current names after older aliases, so that the current one wins.
    for key in sorted(data, key=lambda k: k in _BY_FLAT and k != _BY_FLAT[k].name):
        value = data[key]
        if key in _GROUPS:
            grouped[key] = (
                value.model_dump(exclude_unset=True) if isinstance(value, Group) else value
            )
        elif key in _BY_FLAT:
            setting = _BY_FLAT[key]
            flat.setdefault(setting.group, {}).setdefault(setting.field, value)
        else:
            rest[key] = value
    for group, values in flat.items():
        given = grouped.get(group, {})
        grouped[group] = {**values, **given} if isinstance(given, Mapping) else given
    return {**rest, **grouped}


class _FlatEnvSource(PydanticBaseSettingsSource):
    """``PARLEY_<FLAT_NAME>`` variables (of the environment or ``.env``), by flat name."""

    def __init__(self, settings_cls: type[BaseSettings], env_vars: Mapping[str, str | None]):
        super().__init__(settings_cls)
        self._env_vars = env_vars

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` reads the flat names."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in _BY_FLAT:
            value = self._env_vars.get((ENV_PREFIX + name).lower())
            if value is not None:
                found[name] = value
        return found


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a validation error's location points at."""
    if len(loc) == 1 and loc[0] in _GROUPS:
        return ENV_PREFIX + "SETTINGS"  # a check across one group's settings
    if len(loc) >= 2 and loc[0] in _GROUPS:
        group, key = str(loc[0]), str(loc[1])
        if key in _BY_FLAT:
            return _BY_FLAT[key].env
        for setting in flat_settings():
            if (setting.group, setting.field) == (group, key):
                return setting.env
    if loc and str(loc[0]) in _BY_FLAT:
        return _BY_FLAT[str(loc[0])].env
    return ENV_PREFIX + ("_".join(str(p) for p in loc).upper() or "SETTINGS")


T = TypeVar("T")


def options_for(cls: type[T], *groups: BaseModel, **given: Any) -> T:
    """Build a part's options (a dataclass) from the groups that share its field names.

    Each of ``cls``'s fields comes from ``given``, else from the first group with a field of
    that name, else keeps its default: the group *is* the options, no field copied by hand.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for group in reversed(groups):
        values.update({k: getattr(group, k) for k in type(group).model_fields if k in names})
    return cls(**{**values, **given})
