"""The web process's side of the scaled deployment: queue the answer, stream it back.

:class:`CeleryAnswerer` is the :class:`core.responder.Answerer` that the conversation
service uses when ``PARLEY_DEPLOYMENT=scaled``: it queues ``parley.answer`` for the
accepted message and reads the job's Redis stream (:mod:`workers.streams`), so that the
adapters stream edits exactly as they do with the model in-process.

Nothing here is trusted to survive: if Redis is down or loses the stream, the answerer
looks at the job in the database, where the answer lands in any case; if nobody answers
within ``PARLEY_ANSWER_WAIT_S`` it ends the job with an apology, so the person always
gets exactly one reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from config.settings import Settings
from core.errors import ConfigurationError
from core.generator import GenerationRequest, GenerationResult
from core.jobs import JobStore
from core.metrics import QUEUE_DEPTH
from core.responder import APOLOGY, Responder
from core.streaming import Streamed
from core.types import Reply, ReplyKind
from workers.streams import STREAM_TTL_S, decode_entry, stop_key, stream_key

__all__ = ["GAVE_UP", "CeleryAnswerer", "RemoteGenerator", "record_queue_depths"]

log = logging.getLogger(__name__)

GAVE_UP = "Sorry, I could not answer in time: my workers are busy or down. Please try again later."


class CeleryAnswerer:
    """Gets answers from the Celery workers and streams them from Redis."""

    def __init__(
        self,
        *,
        responder: Responder,
        store: JobStore,
        redis: Any,
        enqueue: Callable[[int], None],
        wait_seconds: float,
        poll_seconds: float = 2.0,
    ) -> None:
        """``redis`` is a ``redis.asyncio.Redis``; ``enqueue`` queues ``parley.answer``."""
        self._responder = responder
        self._store = store
        self._redis = redis
        self._enqueue = enqueue
        self._wait_seconds = wait_seconds
        self._poll_seconds = poll_seconds

    def answer(self, message_id: int) -> Streamed[Reply]:
        return Streamed(self._answer(message_id))

    async def stop(self, message_id: int) -> None:
        """Ask the worker answering ``message_id`` to stop (it reads the flag between tokens)."""
        await self._redis.set(stop_key(message_id), "1", ex=STREAM_TTL_S)

    async def _answer(self, message_id: int) -> AsyncIterator[str | Reply]:
        try:
            await asyncio.to_thread(self._enqueue, message_id)
        except Exception as exc:  # Redis down: the job is stored, the reconciler queues it
            log.warning("could not queue message %s (the reconciler will): %s", message_id, exc)
        key = stream_key(message_id)
        last_id = "0-0"
        attempt: int | None = None
        deadline = time.monotonic() + self._wait_seconds
        next_check = time.monotonic() + self._poll_seconds
        while True:
            entries: list[Any] = []
            try:
                found = await self._redis.xread(
                    {key: last_id}, block=int(self._poll_seconds * 1000), count=256
                )
                entries = found[0][1] if found else []
            except Exception as exc:
                log.debug("reading the stream of message %s failed: %s", message_id, exc)
                await asyncio.sleep(self._poll_seconds)
            for entry_id, fields in entries:
                last_id = entry_id
                entry = decode_entry(fields)
                if entry.reply is not None:
                    yield entry.reply
                    return
                if attempt is None:
                    attempt = entry.attempt
                if entry.delta and entry.attempt == attempt:
                    yield entry.delta
            now = time.monotonic()
            if entries and now < next_check:
                continue
            next_check = now + self._poll_seconds
            reply = await self._ended(message_id)
            if reply is not None:
                yield reply
                return
            if now > deadline:
                ended = await asyncio.to_thread(
                    self._store.fail_job, message_id, "no answer within the wait limit"
                )
                if ended:
                    log.error("gave up waiting for the answer to message %s", message_id)
                    yield Reply(kind=ReplyKind.ERROR, text=GAVE_UP)
                    return

    async def _ended(self, message_id: int) -> Reply | None:
        """The reply of the job if it has ended (read from the database), else ``None``."""
        try:
            job = await asyncio.to_thread(self._store.job, message_id)
        except Exception as exc:
            log.debug("cannot look at the job of message %s: %s", message_id, exc)
            return None
        if job is None:
            return Reply(kind=ReplyKind.ERROR, text=APOLOGY)
        return await asyncio.to_thread(self._responder.reply_for, job)


class RemoteGenerator:
    """The web process's stand-in for the model, which lives in the workers.

    It names the configured model for health checks; generating here is a wiring mistake.
    """

    def __init__(self, settings: Settings) -> None:
        self._model = settings.llm.name
        if settings.llm.engine == "openai":
            self._model = f"{settings.openai.model or 'the model'} at {settings.openai.base_url}"

    @property
    def model_version(self) -> str:
        return f"{self._model} (on the Celery workers)"

    def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        raise ConfigurationError(
            "In the scaled deployment the Celery workers generate; the web process does not."
        )


async def record_queue_depths(redis: Any, queues: tuple[str, ...]) -> None:
    """Set ``parley_queue_depth`` from the length of each Celery queue's Redis list."""
    for queue in queues:
        try:
            QUEUE_DEPTH.labels(queue).set(await redis.llen(queue))
        except Exception as exc:  # Redis down: the gauge keeps its last value
            log.debug("cannot read the depth of queue %s: %s", queue, exc)
