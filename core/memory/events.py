"""Platform events in memory: which ones :class:`core.memory.MemoryStore` has claimed."""

from __future__ import annotations

from datetime import datetime

from core.memory.state import MemoryPart
from core.types import utcnow

__all__ = ["MemoryEvents"]


class MemoryEvents(MemoryPart):
    """:class:`core.store.EventStore` in memory."""

    def claim_event(self, platform: str, event_id: str) -> bool:
        with self._state.lock:
            if (platform, event_id) in self._state.events:
                return False
            self._state.events[(platform, event_id)] = utcnow()
            return True

    def release_event(self, platform: str, event_id: str) -> None:
        with self._state.lock:
            self._state.events.pop((platform, event_id), None)

    def purge_events(self, older_than: datetime) -> int:
        events = self._state.events
        with self._state.lock:
            old = [event for event, seen in events.items() if seen < older_than]
            for event in old:
                del events[event]
            return len(old)
