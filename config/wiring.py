"""Parley's composition root: the one place that builds its parts from the settings.

Only entry points import it: the ``__main__`` modules of :mod:`bots.telegram` and
:mod:`bots.slack`, :mod:`bots.web`, :mod:`bots.console`, the operator's commands
(:mod:`workers.fine_tune`) and the Celery workers' bootstrap (:mod:`workers.celery_app`).
Every part is built once, here, and handed to what uses it.

- :func:`build_embedded` (the default): the store on SQLite (or PostgreSQL by URL) and the
  model answering in this process.
- :func:`build_web`: what the web process needs; with ``PARLEY_DEPLOYMENT=scaled`` it loads
  no model and hands answers to the Celery workers (:class:`workers.scaled.CeleryAnswerer`).
- :func:`worker_parts`: what a Celery worker process's tasks run on; :func:`build_worker`:
  a generation worker's store, model, responder and Redis client.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from config.settings import Settings, options_for
from core.access import AccessPolicy, AccessRule, parse_admins
from core.admin import AdminCommands
from core.chat_commands import chat_commands
from core.conversation import ConversationOptions, ConversationService, build_responder
from core.db import SqlStore, create_engine_for, upgrade
from core.db.registry import SqlRegistry
from core.errors import ConfigurationError, ModelLoadError
from core.explanation import Explainer
from core.generator import Generator, LocalGenerator, TokenCounter
from core.inbox import Inbox
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
from core.responder import Answerer, InProcessAnswerer, JobOptions, Responder
from core.safety import Safety
from core.sentiment import SentimentClassifier
from core.versions import ModelVersions, register_admin
from workers.explain import ModelExplainer, RunsLoadedModel
from workers.lora import SwitchesVersions, VersionWatcher
from workers.model import LoadedModel
from workers.queues import TaskQueue, celery_app
from workers.runtime import WorkerParts, WorkerRuntime

__all__ = [
    "Parley",
    "Queued",
    "access_policy",
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
    "watch_versions",
    "worker_parts",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Parley:
    """Parley's running parts, built from the settings."""

    settings: Settings
    store: SqlStore
    generator: Generator
    service: ConversationService
    model: LocalGenerator | None = None
    """The model loaded in this process (``None`` in the scaled web process), closed here."""
    queued: Queued | None = None
    """The scaled deployment's Redis client and task queue (``None`` when embedded)."""
    watcher: VersionWatcher | None = None
    """What follows the registry's promotions and rollbacks, if anything."""
    retention: Retention | None = None
    """The embedded deployment's in-process purge of old conversations."""
    explainer: Explainer | None = None
    """What /explain attributes answers with, where this process has model weights for it."""
    inbox: Inbox = field(init=False)
    """Where the platform adapters hand incoming events (claims and deliveries in the store)."""

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.service, events=self.store, conversations=self.store)

    @property
    def loaded(self) -> LoadedModel | None:
        """The model and tokenizer loaded in this process, if it holds them."""
        return self.model.loaded if isinstance(self.model, RunsLoadedModel) else None

    def close(self) -> None:
        """Release the model, the queue's connections and the database connections."""
        if self.watcher is not None:
            self.watcher.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.model is not None:
            self.model.close()
        if self.queued is not None:
            self.queued.tasks.close()
        self.store.dispose()


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
        return MediaIntake(LocalMediaReader(options), limits)
    from workers.media_queue import CeleryMediaReader

    reader = CeleryMediaReader(
        redis=queued.redis,
        enqueue=queued.tasks.read_media,
        wait_seconds=settings.attachments.wait_s,
    )
    return MediaIntake(reader, limits)


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


def _responder(
    settings: Settings,
    store: SqlStore,
    generator: Generator,
    tokens: TokenCounter,
    safety: Safety,
) -> Responder:
    return build_responder(
        store=store,
        generator=generator,
        tokens=tokens,
        options=conversation_options(settings),
        safety=safety,
        jobs=job_options(settings),
    )


def _service(
    settings: Settings,
    store: SqlStore,
    safety: Safety,
    answerer: Answerer,
    *,
    explainer: Explainer | None = None,
    sentiment: SentimentClassifier | None = None,
    media: MediaIntake | None = None,
    listed_commands: dict[str, str] | None = None,
) -> ConversationService:
    """The conversation service, its commands (``/admin``'s included) registered first."""
    options = conversation_options(settings)
    admin = AdminCommands(safety.access, store)
    register_admin(admin, ModelVersions(open_registry(store), store))
    commands = chat_commands(
        store=store,
        safety=safety,
        privacy=Privacy(store, forgetters(settings, store, safety)),
        admin=admin,
        options=options,
        explainer=explainer,
        listed=listed_commands,
    )
    return ConversationService(
        store=store,
        options=options,
        answerer=answerer,
        commands=commands,
        safety=safety,
        sentiment=sentiment,
        media=media,
    )


def build_embedded(settings: Settings, **listed_commands: str) -> Parley:
    """Store, in-process model and conversation service for the embedded deployment.

    ``listed_commands`` (name -> help line) are the entry point's own commands, which /help
    lists (the console's /quit).
    """
    store = open_store(settings)
    generator = build_generator(settings)
    sentiment = load_sentiment(settings)
    safety = build_safety(settings)
    responder = _responder(settings, store, generator, generator.tokens, safety)
    explainer: Explainer | None = (
        ModelExplainer(generator.loaded, sentiment)
        if isinstance(generator, RunsLoadedModel)
        else None
    )
    if settings.llm.engine == "openai":
        from workers.remote_explain import remote_explainer

        explainer = remote_explainer(settings, sentiment)
    service = _service(
        settings,
        store,
        safety,
        InProcessAnswerer(responder),
        explainer=explainer,
        sentiment=sentiment,
        media=build_media(settings),
        listed_commands=listed_commands,
    )
    watcher = watch_versions(settings, store, generator)
    retention = Retention(store, settings.privacy.retention_days)
    retention.start()
    return Parley(
        settings,
        store,
        generator,
        service,
        model=generator,
        watcher=watcher,
        retention=retention,
        explainer=explainer,
    )


def build_web(settings: Settings) -> Parley:
    """The web process's parts: embedded (model in-process) or scaled (Celery workers)."""
    if settings.scaling.deployment == "embedded":
        return build_embedded(settings)
    import redis.asyncio

    from workers.scaled import CeleryAnswerer, RemoteGenerator

    store = open_store(settings)
    generator = RemoteGenerator(settings)
    queued = Queued(
        redis=redis.asyncio.Redis.from_url(settings.scaling.redis_url.get_secret_value()),
        tasks=TaskQueue(celery_app(settings)),
    )
    safety = build_safety(settings)
    responder = _responder(settings, store, generator, web_token_counter(settings), safety)
    answerer = CeleryAnswerer(
        responder=responder,
        store=store,
        redis=queued.redis,
        enqueue=queued.tasks.answer,
        wait_seconds=settings.scaling.answer_wait_s,
    )
    service = _service(
        settings,
        store,
        safety,
        answerer,
        sentiment=load_sentiment(settings),
        media=build_media(settings, queued),
    )
    return Parley(settings, store, generator, service, queued=queued)


def build_worker(settings: Settings) -> WorkerRuntime:
    """A generation worker's runtime: store, model (loaded once), responder and Redis."""
    import redis

    store = open_store(settings)
    generator = build_generator(settings)
    responder = _responder(settings, store, generator, generator.tokens, build_safety(settings))
    # It polls in a daemon thread, which goes with the worker process.
    watcher = watch_versions(settings, store, generator)

    def release() -> None:
        if watcher is not None:
            watcher.stop()
        generator.close()
        store.dispose()

    return WorkerRuntime(
        settings=settings,
        store=store,
        responder=responder,
        redis=redis.Redis.from_url(settings.scaling.redis_url.get_secret_value()),
        release=release,
    )


def worker_parts(settings: Settings) -> WorkerParts:
    """What a Celery worker process's tasks run on (the model loads on first need)."""
    import redis

    return WorkerParts(
        settings=settings,
        redis=redis.Redis.from_url(settings.scaling.redis_url.get_secret_value()),
        open_store=lambda: open_store(settings),
        open_registry=open_registry,
        build_runtime=lambda: build_worker(settings),
    )
