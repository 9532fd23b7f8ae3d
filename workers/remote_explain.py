"""``/explain``'s attributions when the model is not in the process that answers ``/explain``.

The text part of ``/explain`` (what went into the prompt) needs no model. Attributions need
the model's weights:

- With ``PARLEY_ENGINE=openai``, ``PARLEY_EXPLAIN_MODEL`` names a local copy of the served
  model (the same forms as ``PARLEY_MODEL``), loaded on the first ``/explain`` only, so that
  a process that never explains never pays for it (:class:`LazyModelExplainer`).
- In the scaled deployment the web process loads no model: :class:`QueuedExplainer` sends
  ``parley.explain(answer_id)`` to the ``explain`` queue, whose worker explains the stored
  answer with the explainer the embedded deployment builds (:class:`ExplainWorker`), and
  waits for the result (Redis, the result backend) at most ``PARLEY_EXPLAIN_WAIT_S``. No
  worker in time: the text part alone, with a note that says so::

      web:    send parley.explain(42) to "explain" (expires after the wait); wait for it
      worker: store.answer(42) -> ModelExplainer.explain -> Explanation.to_json()
"""

from __future__ import annotations

import logging
import threading
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
]

log = logging.getLogger(__name__)

NO_WORKER = (
    "I could not get the model's view of this answer: no explain worker answered within "
    "{wait:.0f} s. Here is what went into it:"
)
NO_MODEL = "The explain worker has no model to look into. Here is what went into my answer:"
GONE = "That answer is no longer stored, so the model cannot look into it."


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


class QueuedExplainer:
    """The scaled web process's :class:`core.explanation.Explainer`: asks an explain worker."""

    def __init__(
        self, ask: Callable[[int, float], dict[str, Any] | None], wait_seconds: float
    ) -> None:
        """``ask(answer_id, wait)`` is :meth:`workers.queues.TaskQueue.explain`."""
        self._ask = ask
        self._wait = wait_seconds

    def explain(self, answer: StoredMessage) -> Explanation:
        """The worker's explanation of ``answer``; a note instead if none came in time."""
        try:
            data = self._ask(answer.id, self._wait)
        except Exception as exc:  # a timeout, Redis away, or the worker's own failure
            log.warning("no explanation of answer %s from a worker: %r", answer.id, exc)
            return Explanation((NO_WORKER.format(wait=self._wait),))
        if data is None:
            return Explanation((GONE,))
        return Explanation.from_json(data)
