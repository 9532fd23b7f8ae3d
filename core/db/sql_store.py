"""The SQL store: :class:`core.store.Store` in SQLite or PostgreSQL.

It behaves like :class:`core.memory.MemoryStore`, which the shared test suite checks
against all backends. Every method is one short transaction. People are created on first
sight and keep the latest display name any platform event gave them; conversations are
created with their first message. Like the memory store, it is joined from one part a
concern, each in its module: conversations and their turns in :mod:`core.db.messages`;
answer jobs, and how they stay atomic across processes, in :mod:`core.db.jobs`, and their
deliveries in :mod:`core.db.deliveries`; people,
their profiles and link codes in :mod:`core.db.people`; platform events in
:mod:`core.db.events`; feedback in :mod:`core.db.feedback`; forgetting, export,
retention and usage in :mod:`core.db.privacy`; intakes and threads in
:mod:`core.db.intakes`; the shared row helpers in
:mod:`core.db.rows`.
"""

from __future__ import annotations

from sqlalchemy import Engine

from core.db.deliveries import SqlDeliveries
from core.db.events import SqlEvents
from core.db.feedback import SqlFeedback
from core.db.intakes import SqlIntakes, SqlThreads
from core.db.jobs import SqlJobs
from core.db.messages import SqlConversations, SqlTurns
from core.db.people import SqlPeople
from core.db.privacy import SqlPrivacy

__all__ = ["SqlStore"]


class SqlStore(
    SqlConversations,
    SqlTurns,
    SqlFeedback,
    SqlPeople,
    SqlEvents,
    SqlPrivacy,
    SqlJobs,
    SqlDeliveries,
    SqlIntakes,
    SqlThreads,
):
    """A complete store in a database made by :func:`core.db.create_engine_for`.

    Create its tables first with :func:`core.db.upgrade`. Failures of the database raise
    :class:`core.errors.StoreError`.
    """

    @property
    def engine(self) -> Engine:
        """The database this store keeps its data in (the adapter registry shares it)."""
        return self._engine

    def dispose(self) -> None:
        """Close the database connections (at shutdown)."""
        self._engine.dispose()
