"""``/explain``'s attributions when the model is not in the process that answers ``/explain``.

The text part of ``/explain`` (what went into the prompt) needs no model. Attributions need
the model's weights:

- With ``PARLEY_ENGINE=openai``, ``PARLEY_EXPLAIN_MODEL`` names a local copy of the served
  model (the same forms as ``PARLEY_MODEL``), loaded on the first ``/explain`` only, so that
  a process that never explains never pays for it (:class:`LazyModelExplainer`).
- In the scaled deployment the web process loads no model: :class:`QueuedExplainer` sends
  ``parley.explain(answer_id, key)`` to the ``explain`` queue, whose worker explains the
  stored answer with the explainer the embedded deployment builds (:class:`ExplainWorker`),
  and waits at most ``PARLEY_EXPLAIN_WAIT_S`` for it in Redis. No worker in time: the text
  part alone, with a note that says so::

      web:    queue parley.explain(42, "parley:explain:<id>"), expiring after the wait
              BLPOP parley:explain:<id> wait
      worker: store.answer(42) -> ModelExplainer.explain -> Explanation.to_json()
              RPUSH parley:explain:<id> <JSON>; EXPIRE parley:explain:<id> wait

A Redis list rather than Celery's result backend: its pub/sub consumer must not be shared
by the web process's threads, and ``/explain`` runs in one thread per request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from config.settings import Settings
from core.explanation import Explainer, Explanation
from core.sentiment import SentimentClassifier
from core.types import StoredMessage
from workers.explain import ModelExplainer

__all__ = [
    "NO_WORKER",
    "ExplainWorker",
    "LazyModelExplainer",
    "QueuedExplainer",
    "remote_explainer",
    "serve_explanation",
]

log = logging.getLogger(__name__)

NO_WORKER = (
    "I could not get the model's view of this answer: no explain worker answered within "
    "{wait:.0f} s. Here is what went into it:"
)
NO_MODEL = "The explain worker has no model to look into. Here is what went into my answer:"
GONE = "That answer is no longer stored, so the model cannot look into it."
FAILED = "The explain worker could not look into this answer. Here is what went into it:"
KEY_PREFIX = "parley:explain:"
POLL_S = 2.0
"""The longest single BLPOP: redis-py 8 gives up reading a socket after 5 s by default."""


class LazyModelExplainer:
    """A :class:`workers.explain.ModelExplainer` over weights loaded on first use."""

    def __init__(self, settings: Settings, sentiment: SentimentClassifier | None = None) -> None:
        assert settings.llm.explain_model is not None
        self._settings = settings.model_copy(update={"model": settings.llm.explain_model})
        self._sentiment = sentiment
        self._explainer: ModelExplainer | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the weights have been loaded yet."""
        return self._explainer is not None

    def explain(self, answer: StoredMessage) -> Explanation:
        with self._lock:
            if self._explainer is None:
                from workers.model import load_model

                self._explainer = ModelExplainer(load_model(self._settings), self._sentiment)
        return self._explainer.explain(answer)


def remote_explainer(
    settings: Settings, sentiment: SentimentClassifier | None = None
) -> Explainer | None:
    """The explainer for a remote engine: lazy local weights if configured, else none."""
    if settings.llm.explain_model is None:
        return None
    return LazyModelExplainer(settings, sentiment)


class StoredAnswers(Protocol):
    """The store, as the explain worker reads it."""

    def answer(self, answer_id: int) -> Any:
        """The stored answer (``.message``), or ``None``."""
        ...


class ExplainWorker:
    """An ``explain`` worker's part: explains stored answers by id with its own model."""

    def __init__(
        self,
        *,
        store: StoredAnswers,
        explainer: Explainer | None,
        release: Callable[[], None] = lambda: None,
    ) -> None:
        """``explainer``: the one the embedded deployment would build from the settings."""
        self._store = store
        self._explainer = explainer
        self._release = release

    def explain(self, answer_id: int) -> dict[str, Any] | None:
        """The explanation of a stored answer, JSON-ready; ``None`` if it has no context."""
        found = self._store.answer(answer_id)
        if found is None or found.message.context is None:
            return None
        if self._explainer is None:
            return Explanation((NO_MODEL,)).to_json()
        return self._explainer.explain(found.message).to_json()

    def close(self) -> None:
        """Release the model and the database connections."""
        self._release()


def serve_explanation(
    redis: Any, worker: ExplainWorker, answer_id: int, key: str, *, result_ttl: float
) -> str:
    """Explain one answer and leave the JSON for the web process under ``key`` (a list)."""
    outcome = "explained"
    try:
        data: dict[str, Any] | None = worker.explain(answer_id)
    except Exception:
        log.exception("explaining answer %s failed", answer_id)
        data, outcome = {"failed": True}, "failed"
    redis.rpush(key, json.dumps(data))
    redis.expire(key, max(1, int(result_ttl)))  # nobody waits for it any longer
    return outcome


class QueuedExplainer:
    """The scaled web process's :class:`core.explanation.Explainer`: asks an explain worker."""

    def __init__(
        self,
        *,
        redis: Any,
        enqueue: Callable[[int, str, float], None],
        wait_seconds: float,
    ) -> None:
        """``redis``: a ``redis.Redis``; ``enqueue``: :meth:`workers.queues.TaskQueue.explain`."""
        self._redis = redis
        self._enqueue = enqueue
        self._wait = wait_seconds

    def explain(self, answer: StoredMessage) -> Explanation:
        """The worker's explanation of ``answer``; a note instead if none came in time."""
        key = f"{KEY_PREFIX}{uuid.uuid4().hex}"
        try:
            self._enqueue(answer.id, key, self._wait)
            found = self._wait_for(key)
        except Exception:  # Redis away: the text part still helps
            log.warning("could not ask for an explanation of answer %s", answer.id, exc_info=True)
            found = None
        if found is None:
            log.warning("no explain worker explained answer %s in time", answer.id)
            return Explanation((NO_WORKER.format(wait=self._wait),))
        data = json.loads(found[1])
        if data is None:
            return Explanation((GONE,))
        if data.get("failed"):
            return Explanation((FAILED,))
        return Explanation.from_json(data)

    def _wait_for(self, key: str) -> tuple[bytes, bytes] | None:
        """The worker's result under ``key``, or ``None`` after the wait."""
        deadline = time.monotonic() + self._wait
        while (left := deadline - time.monotonic()) > 0:
            found: tuple[bytes, bytes] | None = self._redis.blpop([key], timeout=min(left, POLL_S))
            if found is not None:
                return found
        return None

    def close(self) -> None:
        """Release the Redis connections."""
        self._redis.close()
