"""How conversations are run: the options from the settings, and the responder built from them.

The wiring builds one :class:`ConversationOptions` from the settings; the conversation
service, the chat commands and the responder all read it. Commands mentioned in a reply
are spelled the way each platform types them (:func:`spell`: Slack has one ``/parley``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.commands import COMMANDS
from core.context import ContextBuilder
from core.generator import Generator, TokenCounter
from core.responder import JobOptions, Responder
from core.safety import Safety
from core.store import Store

__all__ = ["ConversationOptions", "build_responder", "spell"]

_COMMAND_MENTION = re.compile(rf"(?<![\w/])/({'|'.join(COMMANDS)})\b")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationOptions:
    """How conversations are run; built from the settings by the wiring."""

    system_prompt: str
    prompt_budget: int
    assistant_name: str = "Parley"
    max_new_tokens: int
    history_turns: int = 50
    max_message_chars: int = 8000
    profile_tokens: int | None = None
    command_prefixes: Mapping[str, str] = field(default_factory=lambda: {"slack": "/parley "})
    """How each platform spells a command, where it is not ``/name`` (Slack has one /parley)."""


def spell(options: ConversationOptions, platform: str, text: str) -> str:
    """``text`` with commands spelled the way ``platform`` types them."""
    prefix = options.command_prefixes.get(platform)
    if prefix is None:
        return text
    return _COMMAND_MENTION.sub(lambda m: prefix + m.group(1), text)


def build_responder(
    *,
    store: Store,
    generator: Generator,
    tokens: TokenCounter,
    options: ConversationOptions,
    safety: Safety,
    jobs: JobOptions | None = None,
) -> Responder:
    """The responder that answers the conversations run with ``options``."""
    return Responder(
        store=store,
        generator=generator,
        context=ContextBuilder(
            tokens,
            safety.instructions(options.system_prompt),
            options.prompt_budget,
            options.assistant_name,
            profile_budget=options.profile_tokens,
        ),
        max_new_tokens=options.max_new_tokens,
        history_turns=options.history_turns,
        jobs=jobs,
        spell=lambda platform, text: spell(options, platform, text),
        safety=safety,
    )
