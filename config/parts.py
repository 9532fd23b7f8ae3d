"""The parts Parley is made of, each built from its group of the settings.

The composition root (:mod:`config.wiring`) assembles them into a running Parley for each
entry point; they live here so that the root reads as the list of what each process holds.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from config.settings import Settings, options_for
from core.access import AccessPolicy, AccessRule, parse_admins
from core.conversation import ConversationOptions
from core.db import SqlStore, create_engine_for, upgrade
from core.db.registry import SqlRegistry
from core.errors import ConfigurationError, ModelLoadError
from core.generator import LocalGenerator, TokenCounter
from core.limits import Limiter, LimitOptions, Limits, MemoryLimiter, RedisLimiter
from core.media import MediaIntake, MediaLimits
from core.moderation import ProfanityModerator
from core.outbox import OutboxOptions
from core.privacy import (
    Forgetter,
    LimitsForgetter,
    RedisKeysForgetter,
    StoreForgetter,
)
from core.prompt_guard import PromptGuard
from core.responder import JobOptions
from core.safety import Safety
from core.sentiment import SentimentClassifier
from workers.lora import SwitchesVersions, VersionWatcher
from workers.queues import TaskQueue

__all__ = [
    "Queued",
    "access_policy",
    "build_generator",
    "build_limiter",
    "build_media",
    "build_safety",
    "conversation_options",
    "forgetters",
    "job_options",
    "lease_seconds",
    "load_sentiment",
    "open_registry",
    "open_store",
    "open_versions",
    "outbox_options",
    "watch_versions",
    "web_token_counter",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Queued:
    """The scaled web process's links to the workers: Redis, and the queue of tasks."""

    redis: Any
    """A ``redis.asyncio.Redis``: the answers' and the readings' streams."""
    tasks: TaskQueue


def lease_seconds(settings: Settings) -> float:
    """A job's lease outlasts the task time limit by half (at most 30 s more)."""
    return settings.scaling.task_time_limit_s + min(30.0, settings.scaling.task_time_limit_s / 2)


def conversation_options(settings: Settings) -> ConversationOptions:
    """The conversation service's options from the settings."""
    return options_for(
        ConversationOptions,
        settings.conversation,
        settings.generation,
        prompt_budget=settings.prompt_budget,
    )


def open_store(settings: Settings) -> SqlStore:
    """Connect to the configured database and bring its schema up to date."""
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(settings.storage.sqlalchemy_url)
    upgrade(engine)
    return SqlStore(engine)


def open_registry(store: SqlStore) -> SqlRegistry:
    """The registry of fine-tuned versions, in the store's database."""
    return SqlRegistry(store.engine)


def open_versions(settings: Settings, store: SqlStore) -> SqlRegistry:
    """The registry of fine-tuned versions, the packaged profile version registered in it
    at first start (:mod:`workers.packaged_version`; ``PARLEY_PROFILE_VERSION``)."""
    from workers.packaged_version import ensure_packaged_version

    registry = open_registry(store)
    ensure_packaged_version(registry, settings)
    return registry


def watch_versions(
    settings: Settings, store: SqlStore, generator: LocalGenerator
) -> VersionWatcher | None:
    """Follow the registry's promotions and rollbacks, for a generator that can switch."""
    if not isinstance(generator, SwitchesVersions):
        return None
    return VersionWatcher(
        open_registry(store), generator, interval_s=settings.fine_tuning.poll_s
    ).start()


def load_sentiment(settings: Settings) -> SentimentClassifier | None:
    """The sentiment classifier, unless turned off; without its model Parley still answers."""
    if not settings.conversation.sentiment:
        return None
    from workers.sentiment import TransformerSentimentClassifier

    try:
        return TransformerSentimentClassifier.load()
    except ModelLoadError as exc:
        log.warning("Answering without reading moods: %s (or set PARLEY_SENTIMENT=false)", exc)
        return None


def job_options(settings: Settings) -> JobOptions:
    """How answer jobs are leased and retried."""
    return options_for(JobOptions, settings.jobs, lease_seconds=lease_seconds(settings))


def outbox_options(settings: Settings) -> OutboxOptions:
    """How replies' deliveries are held and swept (:mod:`core.outbox`)."""
    return OutboxOptions(
        lease_seconds=settings.jobs.delivery_lease_s,
        sweep_seconds=settings.jobs.delivery_sweep_s,
    )


def build_media(settings: Settings, queued: Queued | None = None) -> MediaIntake | None:
    """Reading voice messages and images: in this process, or on the Celery ``media`` workers.

    ``queued`` (the scaled web process's links) selects the workers. ``None`` when
    ``PARLEY_MEDIA=false``. A named model that cannot exist stops the start-up here.
    """
    if not settings.attachments.enabled:
        return None
    from workers.media import LocalMediaReader, MediaOptions, resolve_whisper
    from workers.vision import check_vision_model

    resolve_whisper(settings.attachments.whisper_model)
    if settings.attachments.vision_model is not None:
        check_vision_model(settings.attachments.vision_model)
    limits = options_for(MediaLimits, settings.attachments)
    if queued is None:
        options = options_for(MediaOptions, settings.attachments, settings.llm)
        return MediaIntake(
            LocalMediaReader(options), limits, lease_seconds=settings.attachments.intake_lease_s
        )
    from workers.media_queue import CeleryMediaReader

    reader = CeleryMediaReader(
        redis=queued.redis,
        enqueue=queued.tasks.read_media,
        wait_seconds=settings.attachments.wait_s,
    )
    return MediaIntake(reader, limits, lease_seconds=settings.attachments.intake_lease_s)


def build_generator(settings: Settings) -> LocalGenerator:
    """The configured model behind the batching engine, or ``PARLEY_GENERATOR``'s factory.

    ``PARLEY_GENERATOR`` (``module:callable``, called with the settings) swaps in another
    generator, for tests and custom back ends; it must offer ``tokens`` and ``close()``.
    """
    if settings.llm.generator:
        module, _, name = settings.llm.generator.partition(":")
        factory = getattr(importlib.import_module(module), name)
        generator = factory(settings)
        if not isinstance(generator, LocalGenerator):
            raise ConfigurationError(
                f"PARLEY_GENERATOR {settings.llm.generator} must build a generator "
                "with tokens and close()"
            )
        return generator
    if settings.llm.engine == "openai":
        from workers.openai_engine import OpenAIGenerator

        return OpenAIGenerator.from_settings(settings)
    from workers.batching import BatchedGenerator

    return BatchedGenerator.from_settings(settings)


def web_token_counter(settings: Settings) -> TokenCounter:
    """How the scaled web process prices prompts without the model: its tokenizer, or the
    estimate for a model server (:mod:`workers.token_estimate`)."""
    if settings.llm.engine == "openai":
        from workers.token_estimate import engine_token_counter

        return engine_token_counter(settings)
    from workers.model import load_tokenizer

    return load_tokenizer(settings)


def access_policy(settings: Settings) -> AccessPolicy:
    """Who may talk to Parley, from the settings."""
    return AccessPolicy(
        rules={
            "telegram": AccessRule(
                public=settings.telegram.access == "public",
                users=frozenset(settings.telegram.allowed_users),
                chats=frozenset(settings.telegram.allowed_chats),
            ),
            "slack": AccessRule(
                public=settings.slack.access == "public",
                workspaces=frozenset(settings.slack.allowed_workspaces),
                users=frozenset(settings.slack.allowed_users),
                chats=frozenset(settings.slack.allowed_channels),
            ),
        },
        admins=parse_admins(settings.safety.admins),
    )


def build_limiter(settings: Settings) -> Limiter:
    """Counters in this process (embedded) or shared through Redis (scaled)."""
    if settings.scaling.deployment == "embedded":
        return MemoryLimiter()
    import redis

    return RedisLimiter(redis.Redis.from_url(settings.scaling.redis_url.get_secret_value()))


def build_safety(settings: Settings, limiter: Limiter | None = None) -> Safety:
    """Access, limits, moderation, the canary and redaction, as the settings ask."""
    busy_ttl = (
        settings.scaling.answer_wait_s
        if settings.scaling.deployment == "scaled"
        else settings.generation.answer_time_limit_s
    ) + 30.0
    limits = Limits(
        limiter if limiter is not None else build_limiter(settings),
        options_for(LimitOptions, settings.limits, busy_ttl_s=busy_ttl),
    )
    return Safety(
        access=access_policy(settings),
        limits=limits,
        moderator=ProfanityModerator().load() if settings.safety.moderation else None,
        input_threshold=settings.safety.input_threshold,
        output_threshold=settings.safety.output_threshold,
        guard=PromptGuard() if settings.safety.canary else None,
        redact_stored=settings.privacy.redact_stored,
    )


def forgetters(settings: Settings, store: SqlStore, safety: Safety) -> list[Forgetter]:
    """Everything /forget clears: limits, answer streams, training files, and the store last."""
    found: list[Forgetter] = []
    if safety.limits is not None:
        found.append(LimitsForgetter(safety.limits))
    if settings.scaling.deployment == "scaled":
        import redis

        from workers.streams import stream_key

        client = redis.Redis.from_url(settings.scaling.redis_url.get_secret_value())
        found.append(
            RedisKeysForgetter(client, lambda person: [stream_key(i) for i in person.message_ids])
        )
    from workers.nightly import TrainingFilesForgetter

    # Before the store: the person's key for their training rows comes from it.
    found.append(TrainingFilesForgetter(store, settings.versions_path))
    found.append(StoreForgetter(store))
    return found
