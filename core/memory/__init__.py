"""Parley's in-memory store, for tests and for anything that needs no persistence.

::

    from core.memory import MemoryStore

    store = MemoryStore()  # a core.store.Store

It is split like :mod:`core.db`: the shared state (:mod:`core.memory.state`) and one part
a concern (messages, jobs, people, events, feedback, privacy), joined in
:mod:`core.memory.store`.
"""

from __future__ import annotations

from core.memory.store import MemoryStore

__all__ = ["MemoryStore"]
