"""The one place that builds Parley's parts from the settings.

Embedded deployment (the default): the store on SQLite (or PostgreSQL by URL) and the
model in this process. The scaled deployment replaces the generator with the Celery one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from config.settings import Settings
from core.conversation import ConversationOptions, ConversationService
from core.db import SqlStore, create_engine_for, upgrade
from core.errors import ModelLoadError
from core.generator import Generator
from core.sentiment import SentimentClassifier
from core.store import Store
from workers.explain import ModelExplainer
from workers.generation import TransformersGenerator

__all__ = ["Parley", "build_embedded", "conversation_options", "load_sentiment", "open_store"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Parley:
    """Parley's running parts, built from the settings."""

    settings: Settings
    store: Store
    generator: Generator
    service: ConversationService

    def close(self) -> None:
        """Release the model and the database connections."""
        for part in (self.generator, self.store):
            release = getattr(part, "close", None) or getattr(part, "dispose", None)
            if release is not None:
                release()


def conversation_options(settings: Settings, **extra_commands: str) -> ConversationOptions:
    """The conversation service's options from the settings."""
    return ConversationOptions(
        system_prompt=settings.system_prompt,
        assistant_name=settings.assistant_name,
        prompt_budget=settings.prompt_budget,
        max_new_tokens=settings.max_new_tokens,
        history_turns=settings.history_turns,
        profile_tokens=settings.profile_tokens,
        max_message_chars=settings.max_message_chars,
        extra_commands=extra_commands,
    )


def open_store(settings: Settings) -> SqlStore:
    """Connect to the configured database and bring its schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(settings.sqlalchemy_url)
    upgrade(engine)
    return SqlStore(engine)


def load_sentiment(settings: Settings) -> SentimentClassifier | None:
    """The sentiment classifier, unless turned off; without its model Parley still answers."""
    if not settings.sentiment:
        return None
    from workers.sentiment import TransformerSentimentClassifier

    try:
        return TransformerSentimentClassifier.load()
    except ModelLoadError as exc:
        log.warning("Answering without reading moods: %s (or set PARLEY_SENTIMENT=false)", exc)
        return None


def build_embedded(settings: Settings, **extra_commands: str) -> Parley:
    """Store, in-process model and conversation service for the embedded deployment."""
    store = open_store(settings)
    generator = TransformersGenerator.from_settings(settings)
    sentiment = load_sentiment(settings)
    service = ConversationService(
        store=store,
        generator=generator,
        tokens=generator.tokens,
        options=conversation_options(settings, **extra_commands),
        explainer=ModelExplainer(generator.loaded, sentiment),
        sentiment=sentiment,
    )
    return Parley(settings, store, generator, service)
