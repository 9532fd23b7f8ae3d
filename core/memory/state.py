"""What the parts of the in-memory store share: a few dictionaries behind one lock.

Each part of :class:`core.memory.MemoryStore` (one concern a module, like :mod:`core.db`)
reads and changes the one :class:`MemoryState`; the helpers here are the rules more than
one part needs: who a person is, how a turn is stored, changed and dropped.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core.intake import Intake
from core.jobs import DeliveryHold, Job
from core.types import (
    Answer,
    ConversationKey,
    Feedback,
    Role,
    StoredMessage,
    UserProfile,
    UserRef,
)

__all__ = ["Identity", "LinkCode", "MemoryPart", "MemoryState"]

Identity = tuple[str, str]  # (platform, platform user id)


@dataclass(slots=True)
class LinkCode:
    """A ``/link`` code: who made it, until when it works, and whether it was used."""

    owner: Identity
    expires_at: datetime
    used: bool = False


class MemoryState:
    """Everything the memory store holds; the callers of the helpers hold :attr:`lock`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.turns: dict[ConversationKey, list[StoredMessage]] = {}
        self.since: dict[ConversationKey, int] = {}
        self.answers: dict[int, Answer] = {}
        self.feedback: dict[int, dict[Identity, Feedback]] = {}
        # Each (answer, identity) pair's feedback id, kept when the feedback is replaced.
        self.feedback_ids: dict[tuple[int, Identity], int] = {}
        # Profiles by person: the person's first identity.
        self.profiles: dict[Identity, UserProfile] = {}
        # Every identity seen, with the latest name seen for it (None: never named).
        self.people: dict[Identity, str | None] = {}
        # Identities linked to another person; the rest are their own person.
        self.person_of: dict[Identity, Identity] = {}
        self.codes: dict[str, LinkCode] = {}
        self.events: dict[tuple[str, str], datetime] = {}
        self.jobs: dict[int, Job] = {}
        # The token of each running job's current lease holder.
        self.tokens: dict[int, str] = {}
        # Who holds the deliveries of the jobs opened from now on (core.jobs.DeliveryStore).
        self.delivery_hold: DeliveryHold | None = None
        self.intakes: dict[int, Intake] = {}
        self.threads: set[ConversationKey] = set()

    def known(self, user: UserRef | None) -> UserRef | None:
        """The person with the latest name seen for them."""
        if user is None:
            return None
        name = self.people.get((user.platform, user.id))
        if name is None:
            name = user.display_name
        return user if name == user.display_name else replace(user, display_name=name)

    def remember(self, user: UserRef) -> None:
        """Record an identity seen, with its name if the event gave one."""
        identity = (user.platform, user.id)
        if user.display_name is not None or identity not in self.people:
            self.people[identity] = user.display_name

    def person(self, identity: Identity) -> Identity:
        """The person an identity belongs to (named by their first identity)."""
        return self.person_of.get(identity, identity)

    def identities(self, person: Identity) -> list[Identity]:
        """The person's identities, in the order they were first seen."""
        return [identity for identity in self.people if self.person(identity) == person]

    def current(self, message: StoredMessage) -> StoredMessage:
        """A stored turn with its writer's latest name."""
        user = self.known(message.user)
        return message if user is message.user else replace(message, user=user)

    def add_turn(self, key: ConversationKey, draft: StoredMessage) -> StoredMessage:
        """Store a drafted turn (:func:`core.store.draft_turn`) under its new id."""
        stored = replace(draft, id=next(self.ids))
        self.turns.setdefault(key, []).append(stored)
        if stored.role is Role.ASSISTANT:
            self.answers[stored.id] = Answer(message=stored, conversation=key)
        return stored

    def replace_turn(self, message_id: int, **changes: Any) -> StoredMessage | None:
        """Change a stored turn in place; ``None`` if there is no such turn."""
        for key, turns in self.turns.items():
            for i, turn in enumerate(turns):
                if turn.id == message_id:
                    turns[i] = replace(turn, **changes)
                    if message_id in self.answers:
                        self.answers[message_id] = Answer(message=turns[i], conversation=key)
                    return turns[i]
        return None

    def drop_turns(self, message_ids: set[int]) -> int:
        """Forget what hangs on removed turns (answers, jobs, feedback); the feedback count."""
        dropped = 0
        for message_id in message_ids:
            self.answers.pop(message_id, None)
            self.jobs.pop(message_id, None)
            self.tokens.pop(message_id, None)
            self.intakes.pop(message_id, None)
            dropped += len(self.feedback.pop(message_id, {}))
        return dropped


class MemoryPart:
    """A base of every part of :class:`core.memory.MemoryStore`: they share one state."""

    def __init__(self, state: MemoryState | None = None) -> None:
        self._state = state if state is not None else MemoryState()
