"""Platform events in SQL: which ones :class:`core.db.SqlStore` has claimed, once each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from core.db.engine import SqlPart
from core.db.models import EventRow
from core.db.rows import bulk_delete, dialect, insert_for
from core.types import utcnow

__all__ = ["SqlEvents"]


class SqlEvents(SqlPart):
    """:class:`core.store.EventStore` in SQL."""

    def claim_event(self, platform: str, event_id: str) -> bool:
        """True for the first claim of an event, False ever after; atomic across processes.

        The unique key decides: of concurrent inserts exactly one adds the row, and only
        that one gets it back from RETURNING (SQLAlchemy reports no rowcount for an INSERT
        on psycopg, so RETURNING is the reliable signal on both databases).
        """
        with self._session(write=True) as s:
            insert = (
                insert_for(dialect(s), EventRow)
                .values(platform=platform, event_id=event_id, seen_at=utcnow())
                .on_conflict_do_nothing(index_elements=[EventRow.platform, EventRow.event_id])
                .returning(EventRow.event_id)
            )
            return s.execute(insert).first() is not None

    def release_event(self, platform: str, event_id: str) -> None:
        """Undo a claim whose event could not be taken, so that its redelivery is new."""
        same = (EventRow.platform == platform, EventRow.event_id == event_id)
        with self._session(write=True) as s:
            bulk_delete(s, delete(EventRow).where(*same))

    def purge_events(self, older_than: datetime) -> int:
        """Forget events first claimed before ``older_than``; return how many."""
        with self._session(write=True) as s:
            return bulk_delete(s, delete(EventRow).where(EventRow.seen_at < older_than))
