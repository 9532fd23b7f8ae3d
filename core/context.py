"""Building the prompt for one answer within an exact token budget.

The prompt is the system instructions, the person's profile, as many recent turns as fit,
and the current message, measured with the model's own tokenizer and chat template
(:class:`core.generator.TokenCounter`). The instructions and the current message always go
in; profile lines go in while they fit; then turns are added newest first until the next
one would not fit. The final prompt is measured whole, so the budget holds exactly even
for templates whose turns do not add up token for token.

Turns that do not fit are **dropped, not summarised**: with a small model on a CPU, a
summary costs a generation per turn and often invents facts. Dropped turns stay in the
store (for feedback and training); :class:`core.types.ContextReport` lists them and
``/explain`` shows how many were left out.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.errors import ParleyError
from core.generator import TokenCounter
from core.prompt_guard import neutralize
from core.types import ChatTurn, ContextReport, Role, Segment, StoredMessage, UserProfile, UserRef

__all__ = ["ContextBuilder", "MessageTooLong", "profile_lines"]

PREVIEW_CHARS = 40
NAME_LINE = "The user's name is "


class MessageTooLong(ParleyError):
    """The current message alone does not fit into the prompt budget."""

    def __init__(self, tokens: int, available: int) -> None:
        super().__init__(
            f"Your message is too long for me: about {tokens} tokens, and I can take "
            f"{max(available, 0)}. Please shorten it or split it into parts."
        )
        self.tokens = tokens
        self.available = available


def profile_lines(profile: UserProfile) -> list[tuple[str, str]]:
    """The profile as ``(label, line)`` pairs, in the order they enter the prompt."""
    lines: list[tuple[str, str]] = []
    if profile.display_name:
        lines.append(("name", f"{NAME_LINE}{profile.display_name}."))
    if profile.language:
        lines.append(("language", f"The user prefers answers in {profile.language}."))
    for key, value in sorted(profile.preferences.items()):
        lines.append((f"preference {key}", _preference_line(key, value)))
    for i, fact in enumerate(profile.active_facts(), 1):
        text = fact.text.rstrip()
        lines.append((f"fact {i}", text if text.endswith(".") else f"{text}."))
    return lines


_STYLES = {
    ("length", "short"): "Keep your answers short: one to three sentences.",
    ("length", "brief"): "Keep your answers short: one to three sentences.",
    ("length", "long"): "Give detailed, thorough answers.",
    ("length", "detailed"): "Give detailed, thorough answers.",
}


def _preference_line(key: str, value: str) -> str:
    """A preference as an instruction the model follows better than a bare setting."""
    known = _STYLES.get((key, value.lower()))
    if known is not None:
        return known
    if key == "tone":
        return f"Use a {value} tone."
    return f"The user's preferred {key}: {value}."


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class ContextBuilder:
    """Builds prompts of at most ``budget`` tokens (generation prompt included).

    The price of each turn is remembered (up to ``cache_size`` turns); the whole prompt is
    still measured every time, so the budget holds even for templates that do not add up.
    """

    counter: TokenCounter
    system_prompt: str
    budget: int
    assistant_name: str = "Parley"
    profile_budget: int | None = None
    cache_size: int = 4096
    _costs: OrderedDict[bytes, int] = field(default_factory=OrderedDict, repr=False)

    def build(
        self,
        *,
        history: Sequence[StoredMessage],
        text: str,
        speaker: UserRef | None,
        profile: UserProfile,
        group: bool = False,
        guidance: Sequence[str] = (),
    ) -> ContextReport:
        """The prompt for answering ``text``, after ``history`` (oldest first).

        ``guidance`` lines (for example how to meet the person's mood) always join the
        instructions; profile lines join while they fit ``profile_budget`` and the budget.
        """
        count = self.counter.count_chat
        current = ChatTurn(Role.USER, self._content(text, speaker, group))
        instructions = " ".join([self.system_prompt, *guidance])

        def system(lines: Sequence[str]) -> ChatTurn:
            if not lines:
                return ChatTurn(Role.SYSTEM, instructions)
            about = "\n".join(f"- {neutralize(line)}" for line in lines)
            # Small models take the profile's name for their own unless told otherwise last.
            named = any(line.startswith(NAME_LINE) for line in lines)
            closing = f"\nYou are {self.assistant_name}, not the user." if named else ""
            return ChatTurn(Role.SYSTEM, f"{instructions}\n\nAbout the user:\n{about}{closing}")

        base = count([system([]), current], add_generation_prompt=True)
        if base > self.budget:
            raise MessageTooLong(
                self.counter.count_text(text), self.budget - (base - self.counter.count_text(text))
            )

        # Profile lines, in order, while they fit beside the instructions and the message.
        segments = [
            Segment(
                kind="system",
                label="instructions",
                # Guidance lines are counted as their own segments below.
                tokens=count(
                    [ChatTurn(Role.SYSTEM, self.system_prompt)], add_generation_prompt=False
                ),
            )
        ]
        for line in guidance:
            segments.append(
                Segment(kind="guidance", label=line, tokens=self.counter.count_text(line))
            )
        kept: list[str] = []
        used = base
        profile_limit = self.budget if self.profile_budget is None else base + self.profile_budget
        for label, line in profile_lines(profile):
            trial = count([system([*kept, line]), current], add_generation_prompt=True)
            fits = trial <= min(self.budget, profile_limit)
            segments.append(
                Segment(kind="profile", label=label, tokens=trial - used, included=fits)
            )
            if fits:
                kept.append(line)
                used = trial
        head = system(kept)

        # Recent turns, newest first, priced one by one; then the whole prompt is measured.
        # A turn is priced after the system turn: some templates add a default system prompt
        # to a conversation that starts without one.
        head_alone = count([head], add_generation_prompt=False)

        def cost_of(turn: ChatTurn) -> int:
            # Rendering a turn costs far more than the rest of an answer's bookkeeping, and
            # the same turns come back with every message: remember their prices.
            # Keyed by a digest, so that no text of anyone's stays cached in memory.
            digest = hashlib.blake2b(
                f"{turn.role}\0{turn.content}".encode(), digest_size=16
            ).digest()
            cost = self._costs.get(digest)
            if cost is None:
                cost = count([head, turn], add_generation_prompt=False) - head_alone
                self._costs[digest] = cost
                if len(self._costs) > self.cache_size:
                    self._costs.popitem(last=False)
            else:
                self._costs.move_to_end(digest)
            return cost

        chosen: list[tuple[StoredMessage, ChatTurn, int]] = []
        for stored in reversed(history):
            turn = self._turn(stored, group)
            cost = cost_of(turn)
            if used + cost > self.budget:
                break
            chosen.append((stored, turn, cost))
            used += cost
        chosen.reverse()
        while True:
            turns = (head, *(t for _, t, _ in chosen), current)
            total = count(turns, add_generation_prompt=True)
            if total <= self.budget or not chosen:
                break
            chosen.pop(0)

        included = {stored.id for stored, _, _ in chosen}
        costs = {stored.id: cost for stored, _, cost in chosen}
        for stored in history:
            segments.append(
                Segment(
                    kind="turn",
                    label=f"{stored.role}: {_preview(stored.text)}",
                    tokens=costs.get(stored.id) or cost_of(self._turn(stored, group)),
                    included=stored.id in included,
                    message_id=stored.id,
                )
            )
        segments.append(
            Segment(kind="message", label=f"user: {_preview(text)}", tokens=cost_of(current))
        )
        return ContextReport(
            turns=turns,
            segments=tuple(segments),
            prompt_tokens=total,
            budget_tokens=self.budget,
            dropped_turns=len(history) - len(chosen),
        )

    @staticmethod
    def _content(text: str, speaker: UserRef | None, group: bool) -> str:
        """In group chats each user turn carries its speaker's name."""
        # What people write never carries chat-template control tokens into the prompt.
        return neutralize(f"{speaker.label}: {text}" if group and speaker is not None else text)

    def _turn(self, stored: StoredMessage, group: bool) -> ChatTurn:
        if stored.role is Role.USER:
            return ChatTurn(Role.USER, self._content(stored.text, stored.user, group))
        return ChatTurn(stored.role, neutralize(stored.text))
