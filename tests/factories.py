"""Factories for the core's types, so that tests say only what matters to them."""

from __future__ import annotations

from typing import Any

from core.admin import AdminCommands
from core.chat_commands import chat_commands
from core.conversation import ConversationOptions, ConversationService, build_responder
from core.explanation import Explainer
from core.generator import EchoGenerator, Generator, TokenCounter, WordTokenCounter
from core.inbox import Inbox
from core.media import MediaIntake
from core.memory import MemoryStore
from core.privacy import Privacy, StoreForgetter
from core.responder import InProcessAnswerer
from core.safety import Safety
from core.sentiment import SentimentClassifier
from core.store import Store
from core.types import Message, UserRef

SYSTEM_PROMPT = "You are a test assistant."


def make_user(user_id: str = "u1", name: str | None = None, platform: str = "test") -> UserRef:
    """A person on the test platform."""
    return UserRef(platform=platform, id=user_id, display_name=name)


def make_message(
    text: str,
    *,
    user: UserRef | None = None,
    chat: str = "c1",
    thread: str | None = None,
    workspace: str | None = None,
    is_group: bool = False,
) -> Message:
    """A message on the test platform."""
    user = user or make_user()
    return Message(
        platform=user.platform,
        chat=chat,
        user=user,
        text=text,
        thread=thread,
        workspace=workspace,
        is_group=is_group,
    )


def make_service(
    *,
    store: Store | None = None,
    generator: EchoGenerator | None = None,
    tokens: TokenCounter | None = None,
    prompt_budget: int = 200,
    max_new_tokens: int = 50,
    max_message_chars: int = 2000,
    **parts: Any,
) -> tuple[ConversationService, Store, EchoGenerator]:
    """A conversation service over a memory store and the echo generator.

    ``parts`` are :func:`assemble_service`'s: explainer, sentiment, media, safety, privacy,
    admin.
    """
    store = store if store is not None else MemoryStore()
    generator = generator if generator is not None else EchoGenerator()
    options = ConversationOptions(
        system_prompt=SYSTEM_PROMPT,
        prompt_budget=prompt_budget,
        max_new_tokens=max_new_tokens,
        max_message_chars=max_message_chars,
    )
    service = assemble_service(store, generator, tokens or WordTokenCounter(), options, **parts)
    return service, store, generator


def assemble_service(
    store: Store,
    generator: Generator,
    tokens: TokenCounter,
    options: ConversationOptions,
    *,
    explainer: Explainer | None = None,
    sentiment: SentimentClassifier | None = None,
    media: MediaIntake | None = None,
    safety: Safety | None = None,
    privacy: Privacy | None = None,
    admin: AdminCommands | None = None,
) -> ConversationService:
    """A conversation service answering in this process, its parts built as the wiring does."""
    safety = safety or Safety()
    responder = build_responder(
        store=store, generator=generator, tokens=tokens, options=options, safety=safety
    )
    commands = chat_commands(
        store=store,
        safety=safety,
        privacy=privacy or Privacy(store, [StoreForgetter(store)]),
        admin=admin or AdminCommands(safety.access, store),
        options=options,
        explainer=explainer,
    )
    return ConversationService(
        store=store,
        options=options,
        answerer=InProcessAnswerer(responder),
        commands=commands,
        safety=safety,
        sentiment=sentiment,
        media=media,
    )


def make_inbox(service: ConversationService) -> Inbox:
    """The inbox over a service, claiming and recording deliveries in the service's store."""
    return Inbox(service, events=service.store, conversations=service.store)
