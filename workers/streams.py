"""Answers in progress, from the worker that writes them to the process that shows them.

Each job has a Redis stream, ``parley:answer:<message id>``. The worker appends the text
as it is generated (``delta`` entries) and the final reply (one ``reply`` entry); the web
process reads the stream from its start, so it misses nothing even if it subscribes late.
Entries carry the attempt that wrote them: when a job is run again (its first worker was
killed), the reader keeps what it showed and waits for the new attempt's reply instead of
mixing two attempts' text.

Streams are a convenience, not the record: the database holds every answer, and a reader
that cannot reach Redis falls back to it (see :class:`workers.scaled.CeleryAnswerer`).

The other way, ``parley:stop:<message id>`` asks the worker to stop an answer (/cancel):
the web process sets it, and the worker reads it between tokens (:class:`StopFlag`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from core.types import Reply, ReplyKind

__all__ = [
    "STREAM_TTL_S",
    "StopFlag",
    "StreamEntry",
    "StreamWriter",
    "decode_entry",
    "stop_key",
    "stream_key",
]

log = logging.getLogger(__name__)

STREAM_TTL_S = 3600
"""A stream is kept this long after its last entry, for late or returning readers."""
_MAX_ENTRIES = 20_000


def stream_key(message_id: int) -> str:
    """The Redis key of the stream of one job's answer."""
    return f"parley:answer:{message_id}"


def stop_key(message_id: int) -> str:
    """The Redis key that asks the worker answering a job to stop (set by /cancel)."""
    return f"parley:stop:{message_id}"


class StopFlag:
    """Whether /cancel asked to stop one job's answer: a :data:`core.turn_commands.StopCheck`.

    Asked between tokens, it reads Redis at most every ``every`` seconds; Redis being down
    reads as "go on" (the answer is then not stoppable, never lost).
    """

    def __init__(self, redis: Any, message_id: int, every: float = 0.1) -> None:
        self._redis = redis
        self._key = stop_key(message_id)
        self._every = every
        self._next = 0.0
        self._stop = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._stop or now < self._next:
            return self._stop
        self._next = now + self._every
        try:
            self._stop = bool(self._redis.exists(self._key))
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ...
            log.debug("cannot read %s: %s", self._key, exc)
        return self._stop


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry: a piece of text, or the final reply."""

    attempt: int
    delta: str | None = None
    reply: Reply | None = None


def decode_entry(fields: dict[Any, Any]) -> StreamEntry:
    """Read an entry as Redis returns it (bytes or str keys and values)."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    attempt = int(values.get("attempt", "0"))
    if values.get("kind") == "reply":
        data = json.loads(values["reply"])
        reply = Reply(
            text=data["text"],
            kind=ReplyKind(data["kind"]),
            answer_id=data.get("answer_id"),
            model_version=data.get("model_version"),
        )
        return StreamEntry(attempt, reply=reply)
    return StreamEntry(attempt, delta=values.get("text", ""))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamWriter:
    """Appends one attempt's text and reply to a job's stream (used by workers).

    Redis being down costs the live view only: the first failure is logged and the rest of
    the attempt's deltas are dropped; the reply is still tried, and the answer itself is in
    the database either way.
    """

    def __init__(self, redis: Any, message_id: int, attempt: int) -> None:
        self._redis = redis
        self._key = stream_key(message_id)
        self._attempt = attempt
        self._broken = False

    def delta(self, text: str) -> None:
        """Append a piece of the answer."""
        if not self._broken:
            self._add({"kind": "delta", "text": text})

    def reply(self, reply: Reply) -> None:
        """Append the final reply and let the stream expire later."""
        data = {
            "text": reply.text,
            "kind": str(reply.kind),
            "answer_id": reply.answer_id,
            "model_version": reply.model_version,
        }
        self._broken = False
        self._add({"kind": "reply", "reply": json.dumps(data)})

    def _add(self, fields: dict[str, str]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(
                self._key,
                {**fields, "attempt": str(self._attempt)},
                maxlen=_MAX_ENTRIES,
                approximate=True,
            )
            pipe.expire(self._key, STREAM_TTL_S)
            pipe.execute()
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ...
            if not self._broken:
                log.warning("cannot stream the answer to %s live: %s", self._key, exc)
            self._broken = True
