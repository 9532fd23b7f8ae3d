"""Prometheus metrics that every deployment exports (served at ``/metrics`` by ``bots.web``).

:func:`measured` counts and times the replies of the conversation service as they stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from prometheus_client import Counter, Gauge, Histogram

from core.types import Reply, ReplyKind

__all__ = [
    "ACCESS_REFUSED",
    "ANSWER_SECONDS",
    "CANARY_LEAKS",
    "FIRST_TOKEN_SECONDS",
    "GENERATION_SECONDS",
    "INJECTION_ATTEMPTS",
    "LIMITS_HIT",
    "MESSAGES",
    "MODERATION_BLOCKS",
    "QUEUE_DEPTH",
    "REPLIES",
    "measured",
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

ACCESS_REFUSED = Counter(
    "parley_access_refused_total", "Messages refused by the access rules", ["platform"]
)
LIMITS_HIT = Counter(
    "parley_limits_hit_total",
    "Messages refused by a limit (person_rate, chat_rate, person_quota, chat_quota, busy)",
    ["limit"],
)
MODERATION_BLOCKS = Counter(
    "parley_moderation_blocks_total",
    "Messages (input) refused and answers (output) replaced by moderation",
    ["direction"],
)
INJECTION_ATTEMPTS = Counter(
    "parley_injection_attempts_total",
    "Messages or profile text that look like an attempt to override Parley's instructions",
)
CANARY_LEAKS = Counter(
    "parley_canary_leaks_total",
    "Answers blocked because they leaked the instructions (their canary, or a long quote)",
)


async def measured(replies: AsyncGenerator[str | Reply, None]) -> AsyncIterator[str | Reply]:
    """A reply's stream, passed through as it is while it is timed and counted."""
    started = time.perf_counter()
    first = True
    async with aclosing(replies):
        async for item in replies:
            if isinstance(item, Reply):
                REPLIES.labels(str(item.kind)).inc()
                if item.kind is ReplyKind.ANSWER:
                    ANSWER_SECONDS.observe(time.perf_counter() - started)
            elif first:
                first = False
                FIRST_TOKEN_SECONDS.observe(time.perf_counter() - started)
            yield item
