"""The commands every chat gets, in one :class:`core.commands.CommandRegistry`.

/start and /help (generated from the registry), /reset, /feedback and /explain
(:class:`core.answer_commands.AnswerCommands`), /profile and /link
(:class:`core.profile_commands.ProfileCommands`), /forget and /export
(:class:`core.privacy.Privacy`), /retry and /cancel (listed here, run by the conversation
service: :mod:`core.turn_commands`), and the unlisted /admin
(:class:`core.admin.AdminCommands`, its subcommands registered before it is handed in).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from core.admin import AdminCommands
from core.answer_commands import AnswerCommands
from core.commands import COMMANDS, CommandHandler, CommandRegistry
from core.conversation import ConversationOptions
from core.explanation import Explainer
from core.privacy import Privacy
from core.profile_commands import ProfileCommands
from core.safety import Safety
from core.store import Store
from core.turn_commands import TURN_COMMANDS
from core.types import Message, Reply

__all__ = ["FRESH_START", "chat_commands"]

FRESH_START = "Fresh start: I no longer see our earlier messages. (Your feedback is kept.)"


def chat_commands(
    *,
    store: Store,
    safety: Safety,
    privacy: Privacy,
    admin: AdminCommands,
    options: ConversationOptions,
    explainer: Explainer | None = None,
    listed: Mapping[str, str] | None = None,
) -> CommandRegistry:
    """The core's commands, in the order /help lists them, then ``listed`` (name -> help line).

    ``listed`` names commands that the platform runs itself (the console's /quit): /help
    shows them, and the service does not run them.
    """
    registry = CommandRegistry()
    profiles = ProfileCommands(store, safety.clean)
    answers = AnswerCommands(
        store, safety.clean, history_turns=options.history_turns, explainer=explainer
    )

    async def start(_: Message, args: str) -> Reply:
        return Reply(text=f"Hi! I'm {options.assistant_name}. {registry.help()}")

    async def show_help(_: Message, args: str) -> Reply:
        return Reply(text=registry.help())

    async def reset(message: Message, args: str) -> Reply:
        await asyncio.to_thread(store.reset, message.key)
        return Reply(text=FRESH_START)

    handlers: dict[str, CommandHandler] = {
        "start": start,
        "help": show_help,
        "reset": reset,
        "feedback": answers.feedback,
        "explain": answers.explain,
        "profile": profiles.profile,
        "link": profiles.link,
        **privacy.commands(),
    }
    for name, about in COMMANDS.items():
        if name in TURN_COMMANDS:  # the service runs them: they reach into answering
            registry.describe(name, about)
        else:
            registry.register(name, handlers[name], about)
    for name, about in (listed or {}).items():
        registry.describe(name, about)
    registry.register("admin", admin.handle)
    return registry
