"""The adapter registry in SQLite or PostgreSQL: :class:`core.registry.AdapterRegistry`.

Promotion and rollback are one write transaction each, so every process polling
:meth:`SqlRegistry.serving` sees either the old version or the new one, never two.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine, select, update

from core.db.engine import Transactions
from core.db.models import AdapterRow
from core.registry import AdapterStatus, AdapterVersion, RegistryError
from core.types import utcnow

__all__ = ["SqlRegistry"]


class SqlRegistry:
    """Adapter versions in the ``model_adapters`` table (migration 0006)."""

    def __init__(self, engine: Engine) -> None:
        self._session = Transactions(engine)

    def add(self, version: AdapterVersion) -> None:
        """Record a new version."""
        with self._session(write=True) as s:
            if s.get(AdapterRow, version.id) is not None:
                raise RegistryError(f"adapter {version.id} is already registered")
            s.add(_row(version))

    def versions(self, limit: int = 20) -> list[AdapterVersion]:
        """The newest versions first."""
        query = select(AdapterRow).order_by(AdapterRow.created_at.desc(), AdapterRow.id.desc())
        with self._session(write=False) as s:
            return [_version(row) for row in s.scalars(query.limit(limit))]

    def serving(self) -> AdapterVersion | None:
        """The version being served; ``None`` means the base model."""
        query = select(AdapterRow).where(AdapterRow.status == AdapterStatus.SERVING.value)
        with self._session(write=False) as s:
            row = s.scalars(query).first()
            return _version(row) if row is not None else None

    def promote(self, version_id: str, reason: str) -> AdapterVersion:
        """Serve ``version_id``; the one served before is retired."""
        with self._session(write=True) as s:
            chosen = s.get(AdapterRow, version_id, with_for_update=True)
            if chosen is None:
                raise RegistryError(f"there is no adapter {version_id}")
            s.execute(
                update(AdapterRow)
                .where(
                    AdapterRow.status == AdapterStatus.SERVING.value, AdapterRow.id != version_id
                )
                .values(status=AdapterStatus.RETIRED.value)
            )
            chosen.status = AdapterStatus.SERVING.value
            chosen.served_at = utcnow()
            chosen.reason = reason
            return _version(chosen)

    def rollback(self, reason: str) -> AdapterVersion | None:
        """Serve the version served before the current one (``None``: the base model)."""
        with self._session(write=True) as s:
            serving = AdapterRow.status == AdapterStatus.SERVING.value
            current = s.scalars(select(AdapterRow).where(serving).with_for_update()).first()
            if current is None:
                raise RegistryError("nothing to roll back: the base model is being served")
            current.status = AdapterStatus.ROLLED_BACK.value
            current.reason = reason
            previous = s.scalars(
                select(AdapterRow)
                .where(AdapterRow.status == AdapterStatus.RETIRED.value)
                .order_by(AdapterRow.served_at.desc().nulls_last(), AdapterRow.id.desc())
            ).first()
            if previous is None:
                return None
            previous.status = AdapterStatus.SERVING.value
            previous.served_at = utcnow()
            return _version(previous)


def _row(version: AdapterVersion) -> AdapterRow:
    return AdapterRow(
        id=version.id,
        parent_id=version.parent,
        base_model=version.base_model,
        path=version.path,
        status=version.status.value,
        reason=version.reason,
        created_at=version.created_at,
        served_at=version.served_at,
        window_since=version.window_since,
        window_until=version.window_until,
        figures=dict(version.figures),
    )


def _version(row: AdapterRow) -> AdapterVersion:
    version = AdapterVersion(
        id=row.id,
        base_model=row.base_model,
        path=row.path,
        parent=row.parent_id,
        status=AdapterStatus(row.status),
        reason=row.reason,
        created_at=row.created_at,
        served_at=row.served_at,
        window_since=row.window_since,
        window_until=row.window_until,
    )
    return replace(version, figures=dict(row.figures or {}))
