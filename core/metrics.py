"""Prometheus metrics that every deployment exports (served at ``/metrics`` by ``bots.web``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ANSWER_SECONDS",
    "FIRST_TOKEN_SECONDS",
    "GENERATION_SECONDS",
    "MESSAGES",
    "QUEUE_DEPTH",
    "REPLIES",
]

MESSAGES = Counter("parley_messages_total", "Messages handed to the core", ["platform"])
REPLIES = Counter("parley_replies_total", "Replies by kind (answer, notice, error)", ["kind"])
FIRST_TOKEN_SECONDS = Histogram(
    "parley_first_token_seconds",
    "Time from a message to the first streamed text of its answer",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
ANSWER_SECONDS = Histogram(
    "parley_answer_seconds",
    "Time from a message to the end of its answer",
    buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
GENERATION_SECONDS = Histogram(
    "parley_generation_seconds",
    "Time a worker spent answering one message (context, generation, storing)",
    buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256),
)
QUEUE_DEPTH = Gauge(
    "parley_queue_depth",
    "Tasks waiting in a Celery queue (scaled deployment)",
    ["queue"],
)
