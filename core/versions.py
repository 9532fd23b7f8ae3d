"""Model versions for operators: which adapters exist, which is served, how people rate each.

The same text answers the operator's command line (``python -m workers.fine_tune versions``)
and the admins' ``/admin versions`` in chat. :class:`ModelVersions` also promotes and rolls
back, recording who asked and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from core.admin import AdminCommands
from core.feedback_data import FeedbackSource, VersionRates
from core.registry import AdapterRegistry, AdapterVersion, RegistryError
from core.types import Message, Reply, ReplyKind

__all__ = ["ModelVersions", "describe_rates", "describe_versions", "register_admin"]


def _figure(version: AdapterVersion, stage: str, name: str) -> str:
    value = version.figures.get(stage, {}).get(name)
    return f"{value:.2f}" if isinstance(value, int | float) else "n/a"


def describe_versions(versions: list[AdapterVersion], serving: AdapterVersion | None) -> str:
    """One line per version, newest first, with its gate figures and status."""
    served = serving.id if serving is not None else "the base model"
    lines = [f"Serving: {served}."]
    if not versions:
        lines.append("No fine-tuned versions yet.")
        return "\n".join(lines)
    lines.append("version · status · preference accuracy before → after · parent · note")
    for v in versions:
        accuracy = (
            f"{_figure(v, 'before', 'preference_accuracy')} → "
            f"{_figure(v, 'after', 'preference_accuracy')}"
        )
        marker = "▶ " if serving is not None and v.id == serving.id else "  "
        lines.append(
            f"{marker}{v.id} · {v.status} · {accuracy} · {v.parent or 'base'} · {v.reason}"
        )
    return "\n".join(lines)


def describe_rates(rates: list[VersionRates]) -> str:
    """Answers, ratings and the share of good ratings per model version."""
    if not rates:
        return "No answers yet."
    lines = ["model version · answers · 👍 · 👎 · corrections · good rate"]
    for r in rates:
        rate = f"{r.good_rate:.0%}" if r.good_rate is not None else "n/a"
        lines.append(
            f"{r.model_version} · {r.answers} · {r.good} · {r.bad} · {r.corrections} · {rate}"
        )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ModelVersions:
    """What operators and admins may do with model versions."""

    registry: AdapterRegistry
    feedback: FeedbackSource

    def versions(self, limit: int = 10) -> str:
        """The versions and the one served."""
        return describe_versions(self.registry.versions(limit), self.registry.serving())

    def rates(self) -> str:
        """Feedback per model version."""
        return describe_rates(self.feedback.feedback_rates())

    def promote(self, version_id: str, who: str) -> str:
        """Serve ``version_id``; raises :class:`core.registry.RegistryError` if unknown."""
        promoted = self.registry.promote(version_id, f"promoted by {who}")
        return f"Serving {promoted.id} from now on (workers switch within seconds)."

    def rollback(self, who: str) -> str:
        """Serve the version before; raises :class:`core.registry.RegistryError` if none."""
        current = self.registry.serving()
        restored = self.registry.rollback(f"rolled back by {who}")
        now = restored.id if restored is not None else "the base model"
        was = current.id if current is not None else "the base model"
        return f"Rolled back from {was}: serving {now} (workers switch within seconds)."


def register_admin(admin: AdminCommands, versions: ModelVersions) -> None:
    """Add ``/admin versions``, ``rates``, ``promote VERSION`` and ``rollback``."""

    async def run(action: Callable[[], str]) -> Reply:
        try:
            return Reply(text=await asyncio.to_thread(action))
        except RegistryError as exc:
            return Reply(kind=ReplyKind.ERROR, text=f"Could not do that: {exc}.")

    def who(message: Message) -> str:
        return f"{message.user.platform}:{message.user.id} (/admin)"

    async def show_versions(_: Message, args: str) -> Reply:
        return await run(versions.versions)

    async def show_rates(_: Message, args: str) -> Reply:
        return await run(versions.rates)

    async def promote(message: Message, args: str) -> Reply:
        if not args:
            return Reply(text="Usage: /admin promote VERSION (see /admin versions).")
        return await run(lambda: versions.promote(args.split()[0], who(message)))

    async def rollback(message: Message, args: str) -> Reply:
        return await run(lambda: versions.rollback(who(message)))

    admin.register("versions", "model versions, the one served, and their figures", show_versions)
    admin.register("rates", "answers and feedback per model version", show_rates)
    admin.register("promote", "serve a model version: /admin promote VERSION", promote)
    admin.register("rollback", "serve the model version served before", rollback)
