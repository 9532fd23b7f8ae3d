"""The in-memory store: every store contract, one concern a part, over one shared state.

:class:`MemoryStore` implements :class:`core.store.Store` and is the reference the shared
store tests hold :class:`core.db.SqlStore` to; anything that needs no persistence can use
it. It declares no method of its own: each comes from the part of its concern.
"""

from __future__ import annotations

from core.memory.events import MemoryEvents
from core.memory.feedback import MemoryFeedback
from core.memory.intakes import MemoryIntakes, MemoryThreads
from core.memory.jobs import MemoryJobs
from core.memory.messages import MemoryConversations, MemoryTurns
from core.memory.people import MemoryPeople
from core.memory.privacy import MemoryPrivacy

__all__ = ["MemoryStore"]


class MemoryStore(
    MemoryConversations,
    MemoryTurns,
    MemoryFeedback,
    MemoryPeople,
    MemoryEvents,
    MemoryPrivacy,
    MemoryJobs,
    MemoryIntakes,
    MemoryThreads,
):
    """A complete store in a few dictionaries; thread-safe, gone when the process ends."""
