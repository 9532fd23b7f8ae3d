"""The one place that builds Parley's parts from the settings.

- :func:`build_embedded` (the default): the store on SQLite (or PostgreSQL by URL) and the
  model answering in this process.
- :func:`build_web`: what the web process needs; with ``PARLEY_DEPLOYMENT=scaled`` it loads
  no model and hands answers to the Celery workers (:class:`workers.scaled.CeleryAnswerer`).
- :func:`build_worker`: a generation worker's store, model and responder.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from core.access import AccessPolicy, AccessRule, parse_admins
from core.conversation import ConversationOptions, ConversationService
from core.db import SqlStore, create_engine_for, upgrade
from core.db.registry import SqlRegistry
from core.errors import ModelLoadError
from core.generator import Generator, TokenCounter
from core.limits import Limiter, LimitOptions, Limits, MemoryLimiter, RedisLimiter
from core.media import MediaIntake, MediaLimits
from core.moderation import ProfanityModerator
from core.privacy import (
    Forgetter,
    LimitsForgetter,
    Privacy,
    RedisKeysForgetter,
    Retention,
    StoreForgetter,
)
from core.prompt_guard import PromptGuard
from core.responder import JobOptions
from core.safety import Safety
from core.sentiment import SentimentClassifier
from core.store import Store
from core.versions import ModelVersions, register_admin
from workers.explain import ModelExplainer
from workers.packaged_version import ensure_packaged_version

if TYPE_CHECKING:
    from workers.adapters import AdapterWatcher
    from workers.runtime import WorkerRuntime

__all__ = [
    "Parley",
    "build_embedded",
    "build_generator",
    "build_media",
    "build_safety",
    "build_web",
    "build_worker",
    "conversation_options",
    "forgetters",
    "job_options",
    "load_sentiment",
    "open_registry",
    "open_store",
    "watch_adapters",
]


def lease_seconds(settings: Settings) -> float:
    """A job's lease outlasts the task time limit by half (at most 30 s more)."""
    return settings.task_time_limit_s + min(30.0, settings.task_time_limit_s / 2)


log = logging.getLogger(__name__)


@dataclass(slots=True)
class Parley:
    """Parley's running parts, built from the settings."""

    settings: Settings
    store: Store
    generator: Generator
    service: ConversationService
    redis: Any = None
    """The scaled deployment's ``redis.asyncio.Redis`` client (``None`` when embedded)."""
    watcher: AdapterWatcher | None = None
    """What follows the registry's promotions and rollbacks, if anything."""
    retention: Retention | None = None
    """The embedded deployment's in-process purge of old conversations."""

    def close(self) -> None:
        """Release the model and the database connections."""
        if self.watcher is not None:
            self.watcher.stop()
        if self.retention is not None:
            self.retention.stop()
        for part in (self.generator, self.store):
            release = getattr(part, "close", None) or getattr(part, "dispose", None)
            if release is not None:
                release()


def conversation_options(settings: Settings, **extra_commands: str) -> ConversationOptions:
    """The conversation service's options from the settings."""
    return ConversationOptions(
        system_prompt=settings.system_prompt,
        assistant_name=settings.assistant_name,
        prompt_budget=settings.prompt_budget,
        max_new_tokens=settings.max_new_tokens,
        history_turns=settings.history_turns,
        profile_tokens=settings.profile_tokens,
        max_message_chars=settings.max_message_chars,
        extra_commands=extra_commands,
    )


def open_store(settings: Settings) -> SqlStore:
    """Connect to the configured database and bring its schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(settings.sqlalchemy_url)
    upgrade(engine)
    return SqlStore(engine)


def open_registry(store: Store) -> SqlRegistry:
    """The adapter registry, in the store's database."""
    if not isinstance(store, SqlStore):
        raise TypeError("the adapter registry lives in a SQL store's database")
    return SqlRegistry(store.engine)


def watch_adapters(settings: Settings, store: Store, generator: Any) -> AdapterWatcher | None:
    """Follow the registry's promotions and rollbacks, for a generator that can switch."""
    if not hasattr(generator, "use_adapter") or not isinstance(store, SqlStore):
        return None
    from workers.adapters import AdapterWatcher

    return AdapterWatcher(
        open_registry(store), generator, interval_s=settings.adapter_poll_s
    ).start()


def load_sentiment(settings: Settings) -> SentimentClassifier | None:
    """The sentiment classifier, unless turned off; without its model Parley still answers."""
    if not settings.sentiment:
        return None
    from workers.sentiment import TransformerSentimentClassifier

    try:
        return TransformerSentimentClassifier.load()
    except ModelLoadError as exc:
        log.warning("Answering without reading moods: %s (or set PARLEY_SENTIMENT=false)", exc)
        return None


def job_options(settings: Settings) -> JobOptions:
    """How answer jobs are leased and retried."""
    return JobOptions(
        lease_seconds=lease_seconds(settings),
        max_attempts=settings.max_attempts,
    )


def build_media(settings: Settings, redis: Any = None) -> MediaIntake | None:
    """Reading voice messages and images: in this process, or on the Celery ``media`` workers.

    ``redis`` (the web process's ``redis.asyncio.Redis``) selects the workers. ``None`` when
    ``PARLEY_MEDIA=false``. A named model that cannot exist stops the start-up here.
    """
    if not settings.media:
        return None
    from workers.media import LocalMediaReader, MediaOptions, resolve_whisper
    from workers.vision import check_vision_model

    resolve_whisper(settings.whisper_model)
    if settings.vision_model is not None:
        check_vision_model(settings.vision_model)
    limits = MediaLimits(
        max_bytes=settings.max_media_bytes, max_audio_seconds=settings.max_audio_seconds
    )
    if redis is None:
        return MediaIntake(LocalMediaReader(MediaOptions.from_settings(settings)), limits)
    from workers.media_queue import CeleryMediaReader
    from workers.tasks import enqueue_reading

    reader = CeleryMediaReader(
        redis=redis, enqueue=enqueue_reading, wait_seconds=settings.media_wait_s
    )
    return MediaIntake(reader, limits)


def build_generator(settings: Settings) -> Any:
    """The configured model behind the batching engine, or ``PARLEY_GENERATOR``'s factory.

    ``PARLEY_GENERATOR`` (``module:callable``, called with the settings) swaps in another
    generator, for tests and custom back ends; it must offer ``tokens`` and ``close()``.
    """
    if settings.generator:
        module, _, name = settings.generator.partition(":")
        factory = getattr(importlib.import_module(module), name)
        return factory(settings)
    from workers.batching import BatchedGenerator

    return BatchedGenerator.from_settings(settings)


def access_policy(settings: Settings) -> AccessPolicy:
    """Who may talk to Parley, from the settings."""
    return AccessPolicy(
        rules={
            "telegram": AccessRule(
                public=settings.telegram_access == "public",
                users=frozenset(settings.telegram_allowed_users),
                chats=frozenset(settings.telegram_allowed_chats),
            ),
            "slack": AccessRule(
                public=settings.slack_access == "public",
                workspaces=frozenset(settings.slack_allowed_workspaces),
                users=frozenset(settings.slack_allowed_users),
                chats=frozenset(settings.slack_allowed_channels),
            ),
        },
        admins=parse_admins(settings.admins),
    )


def build_limiter(settings: Settings) -> Limiter:
    """Counters in this process (embedded) or shared through Redis (scaled)."""
    if settings.deployment == "embedded":
        return MemoryLimiter()
    import redis

    return RedisLimiter(redis.Redis.from_url(settings.redis_url.get_secret_value()))


def build_safety(settings: Settings, limiter: Limiter | None = None) -> Safety:
    """Access, limits, moderation, the canary and redaction, as the settings ask."""
    busy_ttl = (
        settings.answer_wait_s if settings.deployment == "scaled" else settings.answer_time_limit_s
    ) + 30.0
    limits = Limits(
        limiter if limiter is not None else build_limiter(settings),
        LimitOptions(
            person_per_minute=settings.rate_messages_per_minute,
            chat_per_minute=settings.rate_chat_messages_per_minute,
            person_tokens_per_day=settings.quota_tokens_per_day,
            chat_tokens_per_day=settings.quota_chat_tokens_per_day,
            one_at_a_time=settings.one_answer_at_a_time,
            busy_ttl_s=busy_ttl,
        ),
    )
    return Safety(
        access=access_policy(settings),
        limits=limits,
        moderator=ProfanityModerator().load() if settings.moderation else None,
        input_threshold=settings.moderation_input_threshold,
        output_threshold=settings.moderation_output_threshold,
        guard=PromptGuard() if settings.canary else None,
        redact_stored=settings.redact_stored_text,
    )


def forgetters(settings: Settings, store: Store, safety: Safety) -> list[Forgetter]:
    """Everything /forget clears: limits, answer streams, training files, and the store last."""
    found: list[Forgetter] = []
    if safety.limits is not None:
        found.append(LimitsForgetter(safety.limits))
    if settings.deployment == "scaled":
        import redis

        from workers.streams import stream_key

        client = redis.Redis.from_url(settings.redis_url.get_secret_value())
        found.append(
            RedisKeysForgetter(client, lambda person: [stream_key(i) for i in person.message_ids])
        )
    from workers.nightly import TrainingFilesForgetter

    # Before the store: the person's key for their training rows comes from it.
    found.append(TrainingFilesForgetter(store, settings.adapters_path))
    found.append(StoreForgetter(store))
    return found


def _service(
    settings: Settings,
    store: Store,
    generator: Generator,
    tokens: TokenCounter,
    **parts: Any,
) -> ConversationService:
    safety = build_safety(settings)
    service = ConversationService(
        store=store,
        generator=generator,
        tokens=tokens,
        options=conversation_options(settings, **parts.pop("extra_commands", {})),
        jobs=job_options(settings),
        safety=safety,
        privacy=Privacy(store, forgetters(settings, store, safety)),
        **parts,
    )
    registry = open_registry(store)
    ensure_packaged_version(registry, settings)
    register_admin(service.admin, ModelVersions(registry, store))
    return service


def build_embedded(settings: Settings, **extra_commands: str) -> Parley:
    """Store, in-process model and conversation service for the embedded deployment."""
    store = open_store(settings)
    generator = build_generator(settings)
    sentiment = load_sentiment(settings)
    explainer = (
        ModelExplainer(generator.loaded, sentiment) if hasattr(generator, "loaded") else None
    )
    service = _service(
        settings,
        store,
        generator,
        generator.tokens,
        explainer=explainer,
        sentiment=sentiment,
        extra_commands=extra_commands,
        media=build_media(settings),
    )
    watcher = watch_adapters(settings, store, generator)
    retention = Retention(store, settings.retention_days)
    retention.start()
    return Parley(settings, store, generator, service, watcher=watcher, retention=retention)


def build_web(settings: Settings) -> Parley:
    """The web process's parts: embedded (model in-process) or scaled (Celery workers)."""
    if settings.deployment == "embedded":
        return build_embedded(settings)
    import redis.asyncio

    from workers.model import load_tokenizer
    from workers.scaled import CeleryAnswerer, RemoteGenerator
    from workers.tasks import enqueue_answer

    store = open_store(settings)
    tokens = load_tokenizer(settings)
    generator = RemoteGenerator(settings)
    client = redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value())
    service = _service(
        settings,
        store,
        generator,
        tokens,
        sentiment=load_sentiment(settings),
        media=build_media(settings, client),
    )
    service.answerer = CeleryAnswerer(
        responder=service.responder,
        store=store,
        redis=client,
        enqueue=enqueue_answer,
        wait_seconds=settings.answer_wait_s,
    )
    return Parley(settings, store, generator, service, client)


def build_worker(settings: Settings) -> WorkerRuntime:
    """A generation worker's runtime: store, model (loaded once) and responder."""
    import redis

    from workers.runtime import WorkerRuntime

    store = open_store(settings)
    generator = build_generator(settings)
    service = _service(settings, store, generator, generator.tokens)
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    # A daemon thread: it goes with the worker process.
    watch_adapters(settings, store, generator)
    return WorkerRuntime(settings, service, client)
