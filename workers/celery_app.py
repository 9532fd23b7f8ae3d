"""The entry point of the scaled deployment's Celery workers and beat.

Processes (see the ``Procfile``)::

    celery -A workers.celery_app worker -Q generate -P threads -c 16   # answers, batched
    celery -A workers.celery_app worker -Q train -c 1                  # fine-tuning
    celery -A workers.celery_app worker -Q media -P threads -c 2       # voice and images
    celery -A workers.celery_app worker -Q explain -P threads -c 1     # /explain's attributions
    celery -A workers.celery_app beat                                  # schedules

Only the ``celery`` command imports this module: it is the workers' composition, as the
``__main__`` modules are the other processes'. Importing it reads nothing; the settings are
read once, when the worker or beat first needs its configuration (:func:`_configure`), and
each worker process hands its tasks their parts when it starts (:func:`_hand_over`). The
web process queues tasks through an app of its own (:func:`workers.queues.celery_app`).

A generation worker is one process with one copy of the model and a pool of threads: each
task thread hands its request to the process's batching engine, so the concurrent
conversations of one worker are generated together. Scale out by starting more worker
processes, on more machines, against the same Redis and PostgreSQL.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from config import load_settings
from config.settings import Settings
from config.wiring import worker_parts
from core.privacy import install_log_redaction
from workers.queues import EXPLAIN_QUEUE, GENERATE_QUEUE, configure, redis_problems
from workers.runtime import hand_over, handed

__all__ = ["app"]

log = logging.getLogger(__name__)

app = Celery("parley", include=["workers.tasks"])
"""The workers' app: its tasks are :mod:`workers.tasks`."""


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    """Read the settings, once per process, when the app's configuration is first needed."""
    configure(sender, load_settings())


def _settings() -> Settings:
    settings: Settings = app.conf.parley_settings
    return settings


@signals.worker_init.connect
@signals.worker_process_init.connect
def _hand_over(**_: Any) -> None:
    """Hand this process's tasks their parts (a forked pool process gets its own)."""
    hand_over(worker_parts(_settings()))


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
        handed().runtime()
    if EXPLAIN_QUEUE in queues:
        handed().explainer()  # /explain's wait is short: load its model now
    if settings.scaling.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.scaling.worker_metrics_port)


@signals.worker_shutdown.connect
def _release(**_: Any) -> None:
    """Free the model (and GPU memory) when the worker stops."""
    parts = hand_over(None)
    if parts is not None:
        parts.close()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    """No personal data in a worker's log lines either."""
    install_log_redaction(*logger.handlers)
