"""Parley's Celery queues: the app's configuration from the settings, and sending tasks.

The web process and the workers share this module. The web process builds its own app
(:func:`celery_app`) and sends tasks by name through a :class:`TaskQueue`; the workers'
app is the one that ``celery -A workers.celery_app`` starts, configured by :func:`configure`.

Delivery: tasks are acknowledged after they ran (``acks_late``) and put back when their
worker dies, and Redis hands an unacknowledged task to another worker after the visibility
timeout, which the settings keep above the task time limit. The answer jobs in the
database (:mod:`core.jobs`) make a task that runs twice answer once, and the reconciler
queues again what Redis lost.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab
from kombu import Queue  # type: ignore[attr-defined]

from config.settings import Settings
from core.media import MediaKind

__all__ = [
    "EXPLAIN_QUEUE",
    "GENERATE_QUEUE",
    "MEDIA_QUEUE",
    "TRAIN_QUEUE",
    "TaskQueue",
    "celery_app",
    "configure",
    "redis_problems",
]

GENERATE_QUEUE = "generate"
TRAIN_QUEUE = "train"
MEDIA_QUEUE = "media"
EXPLAIN_QUEUE = "explain"


def configure(app: Celery, settings: Settings) -> Celery:
    """Point ``app`` at the configured Redis and set Parley's delivery rules."""
    url = settings.scaling.redis_url.get_secret_value()
    app.config_from_object(
        {
            "broker_url": url,
            "result_backend": url,
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": {
                "visibility_timeout": settings.scaling.visibility_timeout_s
            },
            "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}},
            "task_default_queue": GENERATE_QUEUE,
            "task_queues": tuple(
                Queue(name)  # type: ignore[no-untyped-call]
                for name in (GENERATE_QUEUE, TRAIN_QUEUE, MEDIA_QUEUE, EXPLAIN_QUEUE)
            ),
            "task_routes": {
                "parley.answer": {"queue": GENERATE_QUEUE},
                "parley.reconcile": {"queue": GENERATE_QUEUE},
                "parley.fine_tune": {"queue": TRAIN_QUEUE},
                "parley.read_media": {"queue": MEDIA_QUEUE},
                "parley.explain": {"queue": EXPLAIN_QUEUE},
                "parley.purge": {"queue": GENERATE_QUEUE},
            },
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "task_ignore_result": True,
            "task_serializer": "json",
            "accept_content": ["json"],
            # One task waiting per free slot: a worker that dies takes few with it.
            "worker_prefetch_multiplier": 1,
            "beat_schedule": {
                "reconcile": {
                    "task": "parley.reconcile",
                    "schedule": timedelta(seconds=settings.jobs.reconcile_interval_s),
                    # Runs that piled up while Redis or the workers were away are dropped.
                    "options": {"expires": settings.jobs.reconcile_interval_s},
                },
                "retention-purge": {
                    "task": "parley.purge",
                    "schedule": crontab(hour=2, minute=30),
                },
                "nightly-fine-tune": {
                    "task": "parley.fine_tune",
                    "schedule": crontab(hour=settings.fine_tuning.hour, minute=0),
                    # A run missed by a whole day is not worth running late.
                    "options": {"expires": 23 * 3600},
                },
            },
            "timezone": "UTC",
            "parley_settings": settings,
        }
    )
    return app


def celery_app(settings: Settings) -> Celery:
    """A Celery app of this process's own, configured from ``settings`` (for sending tasks)."""
    return configure(Celery("parley", set_as_current=False), settings)


class TaskQueue:
    """Queues Parley's tasks by name through one configured Celery app."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def answer(self, message_id: int) -> None:
        """Queue ``parley.answer`` for one accepted message."""
        self.app.send_task("parley.answer", args=[message_id], queue=GENERATE_QUEUE)

    def read_media(self, key: str, kind: MediaKind, mime: str | None) -> None:
        """Queue the reading of one file whose bytes wait in Redis under ``key``."""
        self.app.send_task("parley.read_media", args=[key, str(kind), mime], queue=MEDIA_QUEUE)

    def explain(self, answer_id: int, key: str, expires: float) -> None:
        """Queue ``/explain``'s attributions of one stored answer, to be left under ``key``.

        The task expires unrun after ``expires`` seconds: nobody waits for it any more.
        """
        self.app.send_task(
            "parley.explain", args=[answer_id, key], queue=EXPLAIN_QUEUE, expires=expires
        )

    def close(self) -> None:
        """Release the app's connections to the broker."""
        self.app.close()


def redis_problems(client: Any) -> list[str]:
    """What in the Redis server's configuration can lose accepted work; empty when sound."""
    problems = []
    try:
        config = client.config_get("appendonly") | client.config_get("maxmemory-policy")
    except Exception as exc:  # managed Redis may refuse CONFIG
        return [f"could not read the Redis configuration ({exc}); check it by hand"]
    if config.get("appendonly") != "yes":
        problems.append(
            "appendonly is off: queued tasks are lost when Redis restarts (the reconciler "
            "queues them again after PARLEY_RECONCILE_AFTER_S); set `appendonly yes`"
        )
    policy = config.get("maxmemory-policy")
    if policy not in (None, "noeviction"):
        problems.append(
            f"maxmemory-policy is {policy}: Redis may evict queued tasks; set `noeviction`"
        )
    return problems
