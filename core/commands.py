"""The slash commands people type, the same on every platform: parsing, and one registry.

:class:`CommandRegistry` maps each command's name to its handler and its /help line; the
composition root fills it once, before the conversation service is built, and /help is
generated from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.types import Message, Rating, Reply

__all__ = [
    "COMMANDS",
    "PROFILE_FIELDS",
    "Command",
    "CommandHandler",
    "CommandRegistry",
    "FeedbackArgs",
    "ProfileArgs",
    "parse_command",
    "parse_feedback",
    "parse_profile",
]

PROFILE_FIELDS = ("name", "language", "length", "tone")
"""What ``/profile`` can set: the name and language, and preferences for answers."""

COMMANDS: dict[str, str] = {
    "start": "say hello and see what I can do",
    "help": "show what I can do",
    "reset": "start a fresh conversation (I forget the context, not your feedback)",
    "retry": "answer your last message again, as a new answer",
    "cancel": "stop the answer I am writing for you",
    "feedback": "rate my last answer: /feedback good|bad [what the answer should have been]",
    "explain": "show what went into my last answer",
    "profile": "see what I know about you; set it: /profile name|language|length|tone VALUE; "
    "/profile training off keeps your feedback out of my training",
    "link": "share one profile between Slack and Telegram: /link, then /link CODE on the other",
    "forget": "delete everything I hold about you",
    "export": "get everything I hold about you as a file (in a private chat)",
}
"""The core's commands and their one-line descriptions, in the order /help lists them."""

_RATINGS = {
    "good": Rating.GOOD,
    "+": Rating.GOOD,
    "+1": Rating.GOOD,
    "👍": Rating.GOOD,
    "bad": Rating.BAD,
    "-": Rating.BAD,
    "-1": Rating.BAD,
    "👎": Rating.BAD,
}


CommandHandler = Callable[[Message, str], Awaitable[Reply]]
"""A command's handler: it gets the message and the text after the command's name, and
returns the one reply."""


@dataclass(frozen=True, slots=True)
class _Entry:
    handler: CommandHandler | None
    about: str | None


class CommandRegistry:
    """Every command by name: its handler and its /help line, in the order /help lists them.

    A command without a handler is only listed (the console's /quit, which the console runs
    itself); one without a help line runs but is not listed (/admin).
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, handler: CommandHandler, about: str | None = None) -> None:
        """Run ``handler`` for ``/name``; list it in /help when ``about`` is given."""
        self._entries[name.lower()] = _Entry(handler, about)

    def describe(self, name: str, about: str) -> None:
        """List ``/name`` in /help, for a command that the platform runs itself."""
        self._entries[name.lower()] = _Entry(None, about)

    def handler(self, name: str) -> CommandHandler | None:
        """The handler of ``/name``, or ``None`` when there is none here."""
        entry = self._entries.get(name.lower())
        return entry.handler if entry is not None else None

    def help(self) -> str:
        """What /help answers: every listed command with its line."""
        lines = [
            f"/{name} — {entry.about}"
            for name, entry in self._entries.items()
            if entry.about is not None
        ]
        return "Ask me anything, or use a command:\n" + "\n".join(lines)

    async def run(self, message: Message, command: Command) -> Reply:
        """Run ``command``; an unknown one gets the help."""
        handler = self.handler(command.name)
        if handler is None:
            return Reply(text=f"I don't know the command /{command.name}. {self.help()}")
        return await handler(message, command.args)


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command: its lower-case name and the text after it."""

    name: str
    args: str


@dataclass(frozen=True, slots=True)
class FeedbackArgs:
    """A parsed ``/feedback``: a rating and an optional correction."""

    rating: Rating
    correction: str | None


def parse_command(text: str) -> Command | None:
    """``/Name@bot args`` becomes ``Command("name", "args")``; other text gives ``None``."""
    if not text.startswith("/") or text.startswith("//"):
        return None
    head, _, args = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name:
        return None
    return Command(name, args.strip())


def parse_feedback(args: str) -> FeedbackArgs | None:
    """``good``/``bad`` (or 👍/👎, +/-) then an optional correction; ``None`` if malformed."""
    word, _, rest = args.strip().partition(" ")
    rating = _RATINGS.get(word.lower())
    if rating is None:
        return None
    correction = rest.strip() or None
    return FeedbackArgs(rating, correction)


@dataclass(frozen=True, slots=True)
class ProfileArgs:
    """A parsed ``/profile``: show, set or clear a field, add or forget a fact, toggle learning."""

    action: str  # "show" | "set" | "clear" | "fact" | "forget" | "learning" | "training"
    field: str | None = None
    value: str | None = None


def parse_profile(args: str) -> ProfileArgs | None:
    """Parse ``/profile`` arguments; ``None`` if malformed.

    ``""`` shows; ``FIELD VALUE`` sets; ``clear [FIELD]`` clears; ``fact TEXT`` adds a fact;
    ``forget N`` removes fact N; ``learning on|off`` turns learning facts on or off;
    ``training on|off`` lets the person's feedback train the model, or not.
    """
    words = args.split(maxsplit=1)
    if not words:
        return ProfileArgs("show")
    head = words[0].lower()
    rest = words[1].strip() if len(words) > 1 else ""
    if head in ("learning", "training") and rest.lower() in ("on", "off"):
        return ProfileArgs(head, value=rest.lower())
    if head == "fact" and rest:
        return ProfileArgs("fact", value=rest[:200])
    if head == "forget" and rest.isdigit():
        return ProfileArgs("forget", value=rest)
    if head == "clear":
        if not rest:
            return ProfileArgs("clear")
        return ProfileArgs("clear", rest.lower()) if rest.lower() in PROFILE_FIELDS else None
    if head in PROFILE_FIELDS and rest:
        return ProfileArgs("set", head, rest[:100])
    return None
