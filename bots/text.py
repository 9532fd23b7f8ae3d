"""Text helpers every chat adapter needs: measuring and splitting long replies.

Platforms cap a message's length, each in its own units: Telegram counts UTF-16 code
units (4096 per message), Slack counts characters. :func:`split_text` cuts a reply into
parts that each fit, preferring paragraph, then line, then word boundaries, and never
leaves a Markdown code fence open across a cut: a fence that has to be cut is closed at
the end of one part and reopened (with its language) at the start of the next::

    from bots.text import split_text, utf16_len

    for part in split_text(answer, 4096, measure=utf16_len):
        send(part)

Parts are stripped of the blank lines and spaces around them, as platforms strip them
anyway, and whitespace-only text gives no parts at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FENCE", "split_text", "utf16_len"]

FENCE = "```"
"""The Markdown code fence that :func:`split_text` keeps balanced."""

Measure = Callable[[str], int]


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, as Telegram counts message length."""
    return len(text.encode("utf-16-le")) // 2


# Cut kinds, best first within the same fence state.
_PARAGRAPH, _LINE, _WORD, _HARD = 3, 2, 1, 0
_CLOSER = "\n" + FENCE


# How good a cut is, by its kind and whether it falls outside a code fence. A line break
# inside a fence beats a space outside one: code keeps its lines whole.
_RANK = {
    (_PARAGRAPH, True): 6,
    (_LINE, True): 5,
    (_LINE, False): 4,
    (_WORD, True): 3,
    (_WORD, False): 2,
}


@dataclass(frozen=True, slots=True)
class _Cut:
    """A place to cut: the end of one part, and the fence open there (if any)."""

    at: int
    kind: int
    fence: str | None  # the opening line of the code fence the cut falls inside

    @property
    def rank(self) -> tuple[int, int]:
        """Better cuts rank higher; among equals, the later one (fuller parts)."""
        return (_RANK.get((self.kind, self.fence is None), 0), self.at)


def split_text(text: str, limit: int, *, measure: Measure = len) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` units, keeping code fences balanced.

    ``measure`` gives a string's length in the platform's units; it must count every
    character as at least one unit and be additive (``len`` and :func:`utf16_len` are).
    """
    if limit < 16:
        raise ValueError(f"limit must be at least 16 units, not {limit}")
    parts: list[str] = []
    rest = text.strip()
    reopen = ""  # the fence line to start the next part with, when a fence was cut
    while rest:
        body = reopen + rest
        if measure(body) <= limit:
            parts.append(body)
            break
        cut = _best_cut(body, len(reopen), limit, measure)
        head = body[: cut.at].rstrip()
        if cut.fence is not None:
            parts.append(head + _CLOSER)
            reopen = cut.fence + "\n"
            # Inside a fence the next line's indentation is code: keep it.
            rest = body[cut.at :].lstrip("\n")
            if rest.strip() in ("", FENCE):
                rest = ""  # only the fence's own closing line was left: already closed
        else:
            parts.append(head)
            reopen = ""
            rest = body[cut.at :].lstrip()
    return [part for part in parts if part.strip()]


def _fit(body: str, budget: int, measure: Measure) -> int:
    """The largest ``n`` with ``measure(body[:n]) <= budget``."""
    low, high = 0, min(len(body), max(budget, 0))
    if measure is len:
        return high
    while low < high:
        mid = (low + high + 1) // 2
        if measure(body[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def _best_cut(body: str, start: int, limit: int, measure: Measure) -> _Cut:
    """Where to end the next part of ``body``; the cut is after ``start`` so parts advance."""
    outside_end = _fit(body, limit, measure)
    # A cut inside a fence needs room for the closing fence.
    inside_end = _fit(body, limit - measure(_CLOSER), measure)
    best: _Cut | None = None

    def consider(at: int, kind: int, fence: str | None) -> None:
        nonlocal best
        end = inside_end if fence is not None else outside_end
        if at <= start or at > end:
            return
        cut = _Cut(at, kind, fence)
        if best is None or cut.rank > best.rank:
            best = cut

    fence: str | None = None
    line_start = 0
    while line_start < outside_end:
        newline = body.find("\n", line_start, outside_end)
        line_end = outside_end if newline < 0 else newline
        # Words: after each space on this line, in the fence state the line is in.
        space = body.find(" ", line_start, line_end)
        while space >= 0:
            consider(space + 1, _WORD, fence)
            space = body.find(" ", space + 1, line_end)
        if newline < 0:
            break
        marker = body[line_start:line_end].strip()
        if marker.startswith(FENCE):
            if fence is None:
                fence = _opener(marker, limit, measure)
            elif marker == FENCE:
                fence = None
        after = newline + 1
        paragraph = fence is None and body.startswith("\n", after)
        consider(after, _PARAGRAPH if paragraph else _LINE, fence)
        line_start = after
    if best is None:
        # No boundary fits: cut hard, leaving room for a closing fence if one is open there.
        at = max(outside_end, start + 1)
        if _fence_at(body, at, limit, measure) is not None:
            at = max(inside_end, start + 1)
        return _Cut(at, _HARD, _fence_at(body, at, limit, measure))
    return best


def _opener(marker: str, limit: int, measure: Measure) -> str:
    """The line that reopens a cut fence; a bare fence when the info string is too long."""
    return marker if measure(marker) <= limit // 8 else FENCE


def _fence_at(body: str, at: int, limit: int, measure: Measure) -> str | None:
    """The opening line of the fence that position ``at`` falls inside, or ``None``."""
    fence: str | None = None
    for line in body[:at].split("\n")[:-1]:
        marker = line.strip()
        if marker.startswith(FENCE):
            if fence is None:
                fence = _opener(marker, limit, measure)
            elif marker == FENCE:
                fence = None
    return fence
