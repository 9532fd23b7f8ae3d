"""Reading files on the Celery workers (scaled deployment), without blobs in task arguments.

The web process downloads a file (the adapter holds the platform's token), then::

    web:    SET parley:media:<id>:data <bytes> EX wait      (CeleryMediaReader.read)
            queue parley.read_media("parley:media:<id>", kind, mime)    on queue "media"
            BLPOP parley:media:<id>:result (2 s at a time, up to wait)
    worker: GET  …:data, read it (workers.media.read_media), DEL …:data  (serve_reading)
            RPUSH …:result <reading or error as JSON>; EXPIRE …:result wait

Only a key travels through the broker; the bytes live in Redis for at most
``PARLEY_MEDIA_WAIT_S`` and are deleted as soon as they are read, the result as soon as the
web process has it. A worker that dies mid-reading leaves both to their time-outs, and the
person is told to send the file again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from core.media import MediaError, MediaKind, Reading
from workers.media import MediaOptions, read_media

__all__ = ["CeleryMediaReader", "data_key", "result_key", "serve_reading"]

log = logging.getLogger(__name__)

KEY_PREFIX = "parley:media:"
GONE = (
    "Sorry, I lost your file before I could read it (I was busy or restarting). "
    "Please send it again."
)
POP_S = 2.0
"""Seconds of one blocking pop for the result: well within the client's socket timeout."""
TOO_SLOW = "Sorry, reading your file took too long: I am busy right now. Please try again later."


def data_key(key: str) -> str:
    """Where a file's bytes wait for a worker."""
    return f"{key}:data"


def result_key(key: str) -> str:
    """Where the worker leaves what it read (a one-entry list)."""
    return f"{key}:result"


class CeleryMediaReader:
    """The :class:`core.media.MediaReader` of the web process in the scaled deployment."""

    def __init__(
        self,
        *,
        redis: Any,
        enqueue: Callable[[str, MediaKind, str | None], None],
        wait_seconds: float,
    ) -> None:
        """``redis`` is a ``redis.asyncio.Redis``; ``enqueue`` queues ``parley.read_media``."""
        self._redis = redis
        self._enqueue = enqueue
        self._wait = wait_seconds

    async def read(self, kind: MediaKind, data: bytes, mime: str | None) -> Reading:
        key = f"{KEY_PREFIX}{uuid.uuid4().hex}"
        ttl = max(1, int(self._wait))
        try:
            await self._redis.set(data_key(key), data, ex=ttl)
            await asyncio.to_thread(self._enqueue, key, kind, mime)
            found = await self._result(key)
        finally:
            await self._redis.delete(data_key(key), result_key(key))
        if found is None:
            log.warning("no worker read %s within %.0f s", key, self._wait)
            raise MediaError(TOO_SLOW, reason="unavailable")
        payload = json.loads(found[1])
        if "error" in payload:
            raise MediaError(str(payload["message"]), reason=str(payload["error"]))
        return Reading.from_json(payload)

    async def _result(self, key: str) -> Any:
        """The worker's result, or ``None`` after the wait.

        Asked for in short blocking pops: a Redis client gives up on a read that takes
        longer than its socket timeout (5 s by default in redis-py), and reading a file
        often does.
        """
        deadline = time.monotonic() + self._wait
        while (left := deadline - time.monotonic()) > 0:
            found = await self._redis.blpop([result_key(key)], timeout=min(POP_S, max(left, 0.1)))
            if found is not None:
                return found
        return None


def serve_reading(
    client: Any,
    options: MediaOptions,
    key: str,
    kind: MediaKind,
    mime: str | None,
    *,
    result_ttl: float,
) -> str:
    """The worker's side: read the file under ``key`` and leave the result; returns its kind.

    ``client`` is a synchronous ``redis.Redis``. Every outcome, errors included, is left
    for the web process, so that the person is never left waiting for nothing.
    """
    data: bytes | None = client.get(data_key(key))
    outcome: dict[str, Any]
    if data is None:
        outcome = MediaError(GONE, reason="unavailable").to_json()
    else:
        try:
            outcome = read_media(kind, data, mime, options).to_json()
        except MediaError as exc:
            outcome = exc.to_json()
        except Exception:
            log.exception("reading a %s failed", kind.label)
            outcome = MediaError(
                f"Sorry, something went wrong while I was reading your {kind.label}. "
                "Please try again in a moment.",
                reason="unavailable",
            ).to_json()
        finally:
            client.delete(data_key(key))
            del data
    pipe = client.pipeline()
    pipe.rpush(result_key(key), json.dumps(outcome))
    pipe.expire(result_key(key), max(1, int(result_ttl)))
    pipe.execute()
    return str(outcome.get("error", "read"))
