"""The Celery app of the scaled deployment: Redis as broker and result store.

Processes (see the ``Procfile``)::

    celery -A workers.celery_app worker -Q generate -P threads -c 16   # answers, batched
    celery -A workers.celery_app worker -Q train -c 1                  # fine-tuning
    celery -A workers.celery_app worker -Q media -P threads -c 2       # voice and images
    celery -A workers.celery_app beat                                  # schedules

A generation worker is one process with one copy of the model and a pool of threads: each
task thread hands its request to the process's batching engine, so the concurrent
conversations of one worker are generated together. Scale out by starting more worker
processes, on more machines, against the same Redis and PostgreSQL.

Delivery: tasks are acknowledged after they ran (``acks_late``) and put back when their
worker dies, and Redis hands an unacknowledged task to another worker after the visibility
timeout, which the settings keep above the task time limit. The answer jobs in the
database (:mod:`core.jobs`) make a task that runs twice answer once, and the reconciler
queues again what Redis lost.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab
from kombu import Queue  # type: ignore[attr-defined]

from config.settings import Settings

__all__ = ["GENERATE_QUEUE", "MEDIA_QUEUE", "TRAIN_QUEUE", "app", "configure", "redis_problems"]

log = logging.getLogger(__name__)

GENERATE_QUEUE = "generate"
TRAIN_QUEUE = "train"
MEDIA_QUEUE = "media"


def configure(app: Celery, settings: Settings) -> Celery:
    """Point ``app`` at the configured Redis and set Parley's delivery rules."""
    url = settings.scaling.redis_url.get_secret_value()
    app.conf.update(
        broker_url=url,
        result_backend=url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.scaling.visibility_timeout_s},
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        task_default_queue=GENERATE_QUEUE,
        task_queues=(Queue(GENERATE_QUEUE), Queue(TRAIN_QUEUE), Queue(MEDIA_QUEUE)),  # type: ignore[no-untyped-call]
        task_routes={
            "parley.answer": {"queue": GENERATE_QUEUE},
            "parley.reconcile": {"queue": GENERATE_QUEUE},
            "parley.fine_tune": {"queue": TRAIN_QUEUE},
            "parley.read_media": {"queue": MEDIA_QUEUE},
            "parley.purge": {"queue": GENERATE_QUEUE},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # One task waiting per free slot: a worker that dies takes few with it.
        worker_prefetch_multiplier=1,
        beat_schedule={
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
        timezone="UTC",
    )
    app.conf.parley_settings = settings
    return app


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


def _create() -> Celery:
    from config import load_settings

    return configure(Celery("parley", include=["workers.tasks"]), load_settings())


app = _create()
