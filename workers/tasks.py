"""Parley's Celery tasks: thin, taking ids, owning retries and time limits.

- ``parley.answer(message_id)``: answer one accepted message (queue ``generate``).
- ``parley.reconcile()``: queue again accepted messages that show no progress (beat).
- ``parley.fine_tune()``: the nightly fine-tuning run on the ``train`` queue (beat).
- ``parley.read_media(key, kind, mime)``: transcribe or OCR one file (queue ``media``).
- ``parley.purge()``: delete conversations older than ``PARLEY_RETENTION_DAYS`` (beat).
- ``parley.explain(answer_id, key)``: ``/explain``'s attributions of one stored answer, with
  the worker's model (queue ``explain``), left in Redis under ``key`` for the web process.

Each task runs on the parts handed to its worker process at start
(:func:`workers.runtime.handed`); the web process queues them by name
(:class:`workers.queues.TaskQueue`). Idempotency lives in the answer jobs
(:mod:`core.jobs`): running ``answer`` twice for one message publishes the same reply
twice and stores one answer.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from redis.exceptions import RedisError

from config.settings import options_for
from core.errors import StoreError
from core.media import MediaKind
from core.privacy import Retention
from workers.media import MediaOptions
from workers.media_queue import serve_reading
from workers.queues import TaskQueue
from workers.remote_explain import serve_explanation
from workers.runtime import Outcome, handed

__all__ = ["answer", "explain", "fine_tune", "purge", "read_media", "reconcile"]

RETRY_BACKOFF_MAX_S = 60
TRANSIENT = (StoreError, RedisError, ConnectionError)
"""Faults that pass: the database or Redis is down for a moment."""


@shared_task(
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
    runtime = handed().runtime()
    outcome = runtime.answer(message_id, TaskQueue(self.app).answer)
    if outcome is Outcome.BUSY:
        # Redelivered while a lease still holds the job (its worker may have died): look
        # again when the lease runs out, and answer then unless its holder finished.
        raise self.retry(countdown=runtime.lease_left(message_id) + 1, max_retries=None)
    return str(outcome)


@shared_task(
    name="parley.read_media",
    acks_late=True,
    autoretry_for=(RedisError, ConnectionError),
    retry_backoff=True,
    max_retries=3,
)
def read_media(key: str, kind: str, mime: str | None) -> str:
    """Transcribe or OCR the file waiting in Redis under ``key``; leave the text beside it."""
    parts = handed()
    return serve_reading(
        parts.redis,
        options_for(MediaOptions, parts.settings.attachments, parts.settings.llm),
        key,
        MediaKind(kind),
        mime,
        result_ttl=parts.settings.attachments.wait_s,
    )


# Acknowledged on receipt and never retried: the web process waits a bounded time for the
# result, then answers without it; a second run would only make a result nobody reads.
@shared_task(name="parley.explain", acks_late=False)
def explain(answer_id: int, key: str) -> str:
    """Explain one stored answer and leave the explanation in Redis under ``key``."""
    parts = handed()
    return serve_explanation(
        parts.redis,
        parts.explainer(),
        answer_id,
        key,
        result_ttl=parts.settings.scaling.explain_wait_s,
    )


@shared_task(name="parley.reconcile", bind=True, acks_late=True)
def reconcile(self: Task[Any, Any]) -> int:
    """Queue again the accepted messages that show no progress."""
    return handed().runtime().reconcile(TaskQueue(self.app).answer)


# Acknowledged on receipt: a run can outlast Redis's visibility timeout, and a redelivered
# copy would train twice. A run lost with its worker is simply made the next night.
@shared_task(name="parley.fine_tune", acks_late=False)
def fine_tune() -> str:
    """The nightly fine-tuning run (:func:`workers.nightly.run_nightly`); returns its summary."""
    from workers.nightly import run_nightly

    parts = handed()
    store = parts.open_store()
    try:
        return run_nightly(parts.settings, store, parts.open_registry(store)).summary()
    finally:
        store.dispose()


@shared_task(name="parley.purge", acks_late=True)
def purge() -> int:
    """Delete conversations older than the retention setting (a no-op when it is 0)."""
    parts = handed()
    if parts.settings.privacy.retention_days <= 0:
        return 0
    store = parts.open_store()
    try:
        return Retention(store, parts.settings.privacy.retention_days).run()
    finally:
        store.dispose()
