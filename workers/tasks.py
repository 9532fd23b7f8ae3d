"""Parley's Celery tasks: thin, taking ids, owning retries and time limits.

- ``parley.answer(message_id)``: answer one accepted message (queue ``generate``).
- ``parley.reconcile()``: queue again accepted messages that show no progress (beat).
- ``parley.fine_tune()``: the nightly fine-tuning run on the ``train`` queue (beat).
- ``parley.read_media(key, kind, mime)``: transcribe or OCR one file (queue ``media``).
- ``parley.purge()``: delete conversations older than ``PARLEY_RETENTION_DAYS`` (beat).

Idempotency lives in the answer jobs (:mod:`core.jobs`): running ``answer`` twice for one
message publishes the same reply twice and stores one answer.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, signals
from redis.exceptions import RedisError

from config.settings import Settings, options_for
from core.errors import StoreError
from core.media import MediaKind
from workers.celery_app import GENERATE_QUEUE, MEDIA_QUEUE, app, redis_problems
from workers.media import MediaOptions
from workers.media_queue import serve_reading
from workers.runtime import Outcome, close_worker_runtime, worker_runtime

__all__ = [
    "answer",
    "enqueue_answer",
    "enqueue_reading",
    "fine_tune",
    "purge",
    "read_media",
    "reconcile",
]

log = logging.getLogger(__name__)

RETRY_BACKOFF_MAX_S = 60
TRANSIENT = (StoreError, RedisError, ConnectionError)
"""Faults that pass: the database or Redis is down for a moment."""


def _settings() -> Settings:
    settings: Settings = app.conf.parley_settings
    return settings


def enqueue_answer(message_id: int) -> None:
    """Queue the answer task for one accepted message."""
    answer.apply_async(args=[message_id], queue=GENERATE_QUEUE)


@app.task(
    name="parley.answer",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=RETRY_BACKOFF_MAX_S,
    retry_jitter=True,
    max_retries=8,
)
def answer(self: Task[Any, Any], message_id: int) -> str:
    """Answer one accepted message (at most once, however often this runs)."""
    runtime = worker_runtime(_settings())
    outcome = runtime.answer(message_id, enqueue_answer)
    if outcome is Outcome.BUSY:
        # Redelivered while a lease still holds the job (its worker may have died): look
        # again when the lease runs out, and answer then unless its holder finished.
        raise self.retry(countdown=runtime.lease_left(message_id) + 1, max_retries=None)
    return str(outcome)


def enqueue_reading(key: str, kind: MediaKind, mime: str | None) -> None:
    """Queue the reading of one file whose bytes wait in Redis under ``key``."""
    read_media.apply_async(args=[key, str(kind), mime], queue=MEDIA_QUEUE)


@app.task(
    name="parley.read_media",
    acks_late=True,
    autoretry_for=(RedisError, ConnectionError),
    retry_backoff=True,
    max_retries=3,
)
def read_media(key: str, kind: str, mime: str | None) -> str:
    """Transcribe or OCR the file waiting in Redis under ``key``; leave the text beside it."""
    settings = _settings()
    return serve_reading(
        _redis(settings),
        options_for(MediaOptions, settings.attachments, settings.llm),
        key,
        MediaKind(kind),
        mime,
        result_ttl=settings.attachments.wait_s,
    )


_clients: dict[str, Any] = {}


def _redis(settings: Settings) -> Any:
    """One synchronous Redis client per worker process."""
    url = settings.scaling.redis_url.get_secret_value()
    if url not in _clients:
        import redis

        _clients[url] = redis.Redis.from_url(url)
    return _clients[url]


@app.task(name="parley.reconcile", acks_late=True)
def reconcile() -> int:
    """Queue again the accepted messages that show no progress."""
    return worker_runtime(_settings()).reconcile(enqueue_answer)


# Acknowledged on receipt: a run can outlast Redis's visibility timeout, and a redelivered
# copy would train twice. A run lost with its worker is simply made the next night.
@app.task(name="parley.fine_tune", acks_late=False)
def fine_tune() -> str:
    """The nightly fine-tuning run (:func:`workers.nightly.run_nightly`); returns its summary."""
    from config.wiring import open_registry, open_store
    from workers.nightly import run_nightly

    settings = _settings()
    store = open_store(settings)
    try:
        return run_nightly(settings, store, open_registry(store)).summary()
    finally:
        store.dispose()


@app.task(name="parley.purge", acks_late=True)
def purge() -> int:
    """Delete conversations older than the retention setting (a no-op when it is 0)."""
    from config.wiring import open_store
    from core.privacy import Retention

    settings = _settings()
    if settings.privacy.retention_days <= 0:
        return 0
    store = open_store(settings)
    try:
        return Retention(store, settings.privacy.retention_days).run()
    finally:
        store.dispose()


@signals.worker_ready.connect
def _warm_up(sender: Any = None, **_: Any) -> None:
    """Check Redis's persistence and load the model before the first task arrives."""
    settings = _settings()
    import redis

    client = redis.Redis.from_url(
        settings.scaling.redis_url.get_secret_value(), decode_responses=True
    )
    for problem in redis_problems(client):
        log.warning("Redis: %s", problem)
    try:
        queues = {queue.name for queue in sender.task_consumer.queues}
    except AttributeError:
        queues = {GENERATE_QUEUE}
    if GENERATE_QUEUE in queues:
        worker_runtime(settings)
    if settings.scaling.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.scaling.worker_metrics_port)


@signals.worker_shutdown.connect
def _release(**_: Any) -> None:
    """Free the model (and GPU memory) when the worker stops."""
    close_worker_runtime()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    """No personal data in a worker's log lines either."""
    from core.privacy import install_log_redaction

    install_log_redaction(*logger.handlers)
