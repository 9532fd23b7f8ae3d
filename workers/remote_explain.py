"""``/explain``'s attributions when the model answers elsewhere (``PARLEY_ENGINE=openai``).

The text part of ``/explain`` (what went into the prompt) needs no model. Attributions need
the model's weights: ``PARLEY_EXPLAIN_MODEL`` names a local copy of the served model (the
same forms as ``PARLEY_MODEL``), loaded on the first ``/explain`` only, so that a process
that never explains never pays for it.
"""

from __future__ import annotations

import threading

from config.settings import Settings
from core.explanation import Explainer, Explanation
from core.sentiment import SentimentClassifier
from core.types import StoredMessage
from workers.explain import ModelExplainer

__all__ = ["LazyModelExplainer", "remote_explainer"]


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
