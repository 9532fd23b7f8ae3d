"""``/explain``: why Parley answered the way it did.

The core always knows what went into a prompt (its :class:`core.types.ContextReport`). An
:class:`Explainer` adds what the model's attributions say: which segments of the context
drove the answer, and which words made the person read as feeling what they felt. The real
one lives in :mod:`workers.explain` (captum, transformers-interpret); it runs in a thread,
or on a Celery ``explain`` worker in the scaled deployment (:mod:`workers.remote_explain`),
which sends it back as JSON (:meth:`Explanation.to_json`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol

from core.types import StoredMessage

__all__ = ["Explainer", "Explanation", "explain_context"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Lines of text for the chat, and optionally pictures (PNG) adapters can attach."""

    lines: tuple[str, ...]
    picture: bytes | None = None
    more_pictures: tuple[tuple[str, bytes], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (pictures in base64), e.g. a Celery task's result."""
        return {
            "lines": list(self.lines),
            "picture": _encode(self.picture) if self.picture is not None else None,
            "more_pictures": [[name, _encode(data)] for name, data in self.more_pictures],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Explanation:
        """Rebuild an explanation sent by :meth:`to_json`."""
        picture = data.get("picture")
        return cls(
            lines=tuple(str(line) for line in data["lines"]),
            picture=base64.b64decode(picture) if picture is not None else None,
            more_pictures=tuple(
                (str(name), base64.b64decode(picture)) for name, picture in data["more_pictures"]
            ),
        )


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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
