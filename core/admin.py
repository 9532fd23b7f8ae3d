"""``/admin``: operators' commands, for the admins named in the settings only.

Subcommands are a registry of name -> async handler, so that other parts add their own
(model ``versions``, ``rollback``, ``promote`` from the training loop)::

    admin = AdminCommands(access, store)
    admin.register("versions", "list the model versions", versions_handler)
    commands.register("admin", admin.handle)  # a core.commands.CommandRegistry

The composition root registers every subcommand before the conversation service is built.

A handler gets the message and the text after the subcommand and returns the reply.
Everyone who is not an admin gets :data:`NOT_ADMIN` and nothing runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import REGISTRY

from core.access import AccessPolicy
from core.store import UsageStore
from core.types import Message, Reply, ReplyKind, utcnow

__all__ = ["NOT_ADMIN", "AdminCommands", "Subcommand"]

NOT_ADMIN = "Sorry, /admin is only for this Parley's operators."

SubcommandHandler = Callable[[Message, str], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Subcommand:
    """One ``/admin`` subcommand: what it does, and its handler."""

    about: str
    handler: SubcommandHandler


def _counter(name: str, **labels: str) -> int:
    """A counter's value in this process (summed over the labels not given)."""
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == f"{name}_total" and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return int(total)


class AdminCommands:
    """The ``/admin`` command and its registry of subcommands."""

    def __init__(self, access: AccessPolicy, store: UsageStore) -> None:
        self._access = access
        self._store = store
        self.subcommands: dict[str, Subcommand] = {}
        self.register("usage", "figures for the last day (or /admin usage DAYS)", self._usage)

    def register(self, name: str, about: str, handler: SubcommandHandler) -> None:
        """Add (or replace) a subcommand."""
        self.subcommands[name.lower()] = Subcommand(about, handler)

    async def handle(self, message: Message, args: str) -> Reply:
        """Run ``/admin SUBCOMMAND ARGS`` for an admin; refuse everyone else."""
        if not self._access.is_admin(message.user):
            return Reply(kind=ReplyKind.ERROR, text=NOT_ADMIN)
        name, _, rest = args.strip().partition(" ")
        sub = self.subcommands.get(name.lower())
        if sub is None:
            lines = [f"/admin {n} — {s.about}" for n, s in sorted(self.subcommands.items())]
            return Reply(text="Admin commands:\n" + "\n".join(lines))
        return await sub.handler(message, rest.strip())

    async def _usage(self, _: Message, args: str) -> Reply:
        days = int(args) if args.strip().isdigit() and int(args) > 0 else 1
        usage = await asyncio.to_thread(self._store.usage, utcnow() - timedelta(days=days))
        period = "day" if days == 1 else f"{days} days"
        lines = [
            f"Usage over the last {period} (database):",
            f"• messages: {usage.messages}",
            f"• answers: {usage.answers}",
            f"• people: {usage.people}",
            f"• answers blocked by moderation: {usage.blocked_answers}",
            "Since this process started:",
            f"• limits hit: {_counter('parley_limits_hit')}",
            f"• access refused: {_counter('parley_access_refused')}",
            f"• messages refused by moderation: "
            f"{_counter('parley_moderation_blocks', direction='input')}",
            f"• answers replaced by moderation: "
            f"{_counter('parley_moderation_blocks', direction='output')}",
            f"• canary leaks blocked: {_counter('parley_canary_leaks')}",
            f"• prompt-injection attempts: {_counter('parley_injection_attempts')}",
        ]
        return Reply(text="\n".join(lines))
