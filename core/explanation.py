"""``/explain``: why Parley answered the way it did.

The core always knows what went into a prompt (its :class:`core.types.ContextReport`). An
:class:`Explainer` adds what the model's attributions say: which segments of the context
drove the answer, and which words made the person read as feeling what they felt. The real
one lives in :mod:`workers.explain` (captum, transformers-interpret); it runs in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.types import StoredMessage

__all__ = ["Explainer", "Explanation", "explain_context"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Lines of text for the chat, and optionally pictures (PNG) adapters can attach."""

    lines: tuple[str, ...]
    picture: bytes | None = None
    more_pictures: tuple[tuple[str, bytes], ...] = ()


class Explainer(Protocol):
    """Attributes a stored answer to its context."""

    def explain(self, answer: StoredMessage) -> Explanation:
        """Explain one answer; may take seconds (run it in a thread)."""
        ...


def explain_context(answer: StoredMessage) -> str:
    """A short account of what went into an answer's prompt, with token counts."""
    report = answer.context
    assert report is not None
    lines = [
        f"My last answer came from {answer.model_version or 'the model'} and used "
        f"{report.prompt_tokens} of {report.budget_tokens} prompt tokens:"
    ]
    for segment in report.segments:
        if segment.included:
            lines.append(f"• {segment.kind} — {segment.label} ({segment.tokens} tokens)")
    if report.dropped_turns:
        lines.append(f"{report.dropped_turns} older turn(s) did not fit and were left out.")
    return "\n".join(lines)
