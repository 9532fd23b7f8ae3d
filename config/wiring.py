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
  a generation worker's store, model, responder and Redis client;
  :func:`build_explain_worker`: an ``explain`` worker's store and the embedded explainer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from config.parts import (
    Queued,
    access_policy,
    build_generator,
    build_media,
    build_safety,
    conversation_options,
    forgetters,
    job_options,
    load_sentiment,
    open_registry,
    open_store,
    open_versions,
    outbox_options,
    watch_versions,
    web_token_counter,
)
from config.settings import Settings
from core.admin import AdminCommands
from core.chat_commands import chat_commands
from core.conversation import ConversationService, build_responder
from core.db import SqlStore
from core.explanation import Explainer
from core.generator import Generator, LocalGenerator, TokenCounter
from core.inbox import Inbox
from core.media import MediaIntake
from core.outbox import Outbox
from core.privacy import (
    Privacy,
    Retention,
)
from core.responder import Answerer, InProcessAnswerer, Responder
from core.safety import Safety
from core.sentiment import SentimentClassifier
from core.versions import ModelVersions, register_admin
from workers.explain import ModelExplainer, RunsLoadedModel
from workers.lora import VersionWatcher
from workers.model import LoadedModel
from workers.queues import TaskQueue, celery_app
from workers.remote_explain import ExplainWorker, QueuedExplainer
from workers.runtime import WorkerParts, WorkerRuntime

__all__ = [
    "Parley",
    "Queued",
    "access_policy",
    "build_embedded",
    "build_explain_worker",
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
    outbox: Outbox | None = None
    """Holds the deliveries of the replies this process owes; sweeps for orphaned ones."""
    inbox: Inbox = field(init=False)
    """Where the platform adapters hand incoming events (claims and deliveries in the store)."""

    def __post_init__(self) -> None:
        self.inbox = Inbox(
            self.service, events=self.store, conversations=self.store, outbox=self.outbox
        )

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
        if isinstance(self.explainer, QueuedExplainer):
            self.explainer.close()
        self.store.dispose()


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


def _outbox(
    settings: Settings, store: SqlStore, answerer: Answerer, responder: Responder
) -> Outbox:
    """The outbox of this process's replies: it holds the jobs opened here from now on."""
    return Outbox(
        store, answerer=answerer, reply_for=responder.reply_for, options=outbox_options(settings)
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
    register_admin(admin, ModelVersions(open_versions(settings, store), store))
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


def _explainer(
    settings: Settings, generator: Generator, sentiment: SentimentClassifier | None
) -> Explainer | None:
    """What /explain attributes with beside ``generator``: its model, or the explain model."""
    if settings.llm.engine == "openai":
        from workers.remote_explain import remote_explainer

        return remote_explainer(settings, sentiment)
    if isinstance(generator, RunsLoadedModel):
        return ModelExplainer(generator.loaded, sentiment)
    return None


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
    answerer = InProcessAnswerer(responder)
    outbox = _outbox(settings, store, answerer, responder)
    explainer = _explainer(settings, generator, sentiment)
    service = _service(
        settings,
        store,
        safety,
        outbox.answering(answerer),
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
        outbox=outbox,
        model=generator,
        watcher=watcher,
        retention=retention,
        explainer=explainer,
    )


def build_web(settings: Settings) -> Parley:
    """The web process's parts: embedded (model in-process) or scaled (Celery workers)."""
    if settings.scaling.deployment == "embedded":
        return build_embedded(settings)
    import redis
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
    # The attributions are made on an explain worker, which has the model.
    explainer = QueuedExplainer(
        redis=redis.Redis.from_url(settings.scaling.redis_url.get_secret_value()),
        enqueue=queued.tasks.explain,
        wait_seconds=settings.scaling.explain_wait_s,
    )
    answerer = CeleryAnswerer(
        responder=responder,
        store=store,
        redis=queued.redis,
        enqueue=queued.tasks.answer,
        wait_seconds=settings.scaling.answer_wait_s,
    )
    outbox = _outbox(settings, store, answerer, responder)
    service = _service(
        settings,
        store,
        safety,
        outbox.answering(answerer),
        explainer=explainer,
        sentiment=load_sentiment(settings),
        media=build_media(settings, queued),
    )
    return Parley(
        settings, store, generator, service, queued=queued, explainer=explainer, outbox=outbox
    )


def build_worker(settings: Settings) -> WorkerRuntime:
    """A generation worker's runtime: store, model (loaded once), responder and Redis."""
    import redis

    store = open_store(settings)
    generator = build_generator(settings)
    responder = _responder(settings, store, generator, generator.tokens, build_safety(settings))
    release = _following_versions(settings, store, generator)
    return WorkerRuntime(
        settings=settings,
        store=store,
        responder=responder,
        redis=redis.Redis.from_url(settings.scaling.redis_url.get_secret_value()),
        release=release,
    )


def build_explain_worker(settings: Settings) -> ExplainWorker:
    """An explain worker's store and explainer: the embedded deployment's, following the
    registry's versions as the generation workers do, so /explain looks into the same model."""
    store = open_store(settings)
    generator = build_generator(settings)
    explainer = _explainer(settings, generator, load_sentiment(settings))
    return ExplainWorker(
        store=store, explainer=explainer, release=_following_versions(settings, store, generator)
    )


def _following_versions(
    settings: Settings, store: SqlStore, generator: LocalGenerator
) -> Callable[[], None]:
    """Make a worker's ``generator`` follow the registry's versions; return what releases
    the worker's store, model and watcher."""
    open_versions(settings, store)  # a worker may start before any web process
    # It polls in a daemon thread, which goes with the worker process.
    watcher = watch_versions(settings, store, generator)

    def release() -> None:
        if watcher is not None:
            watcher.stop()
        generator.close()
        store.dispose()

    return release


def worker_parts(settings: Settings) -> WorkerParts:
    """What a Celery worker process's tasks run on (the model loads on first need)."""
    import redis

    return WorkerParts(
        settings=settings,
        redis=redis.Redis.from_url(settings.scaling.redis_url.get_secret_value()),
        open_store=lambda: open_store(settings),
        open_registry=open_registry,
        build_runtime=lambda: build_worker(settings),
        build_explainer=lambda: build_explain_worker(settings),
    )
