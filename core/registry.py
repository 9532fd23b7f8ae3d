"""The registry of fine-tuned adapter versions, and which one is served.

Every nightly run that trains records an :class:`AdapterVersion`: its id, the version it
was trained from (``parent``), the data window, the figures of its evaluation and the
gate's decision. At most one version is ``serving`` at a time; none means the base model.
Workers poll :meth:`AdapterRegistry.serving` and switch within seconds
(:mod:`workers.lora`).

Statuses::

    candidate ──promote──▶ serving ──(another is promoted)──▶ retired
        │                     └──rollback──▶ rolled_back
        └─(gate said no)─▶ rejected       (rollback serves the previously served version)

An operator may promote any version that has weights, a rejected one included (the
decision is theirs; the reason is recorded). :class:`MemoryRegistry` is the in-process
implementation the tests use; :class:`core.db.registry.SqlRegistry` keeps it in the
database so every process sees the same.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from core.types import utcnow

__all__ = [
    "AdapterRegistry",
    "AdapterStatus",
    "AdapterVersion",
    "MemoryRegistry",
    "RegistryError",
    "new_adapter_id",
]


class AdapterStatus(StrEnum):
    """Where a version stands."""

    CANDIDATE = "candidate"
    REJECTED = "rejected"
    SERVING = "serving"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown id, nothing to roll back to)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterVersion:
    """One trained adapter: where its weights are, where it came from, how it scored."""

    id: str
    base_model: str
    path: str
    parent: str | None = None
    status: AdapterStatus = AdapterStatus.CANDIDATE
    reason: str = ""
    created_at: datetime = field(default_factory=utcnow)
    served_at: datetime | None = None
    window_since: datetime | None = None
    window_until: datetime | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def new_adapter_id(now: datetime | None = None) -> str:
    """A sortable, readable id such as ``ft-20261129-031502``."""
    return (now or utcnow()).strftime("ft-%Y%m%d-%H%M%S")


class AdapterRegistry(Protocol):
    """The versions, and the one being served."""

    def add(self, version: AdapterVersion) -> None:
        """Record a new version (raises :class:`RegistryError` if the id exists)."""
        ...

    def versions(self, limit: int = 20) -> list[AdapterVersion]:
        """The newest versions first."""
        ...

    def serving(self) -> AdapterVersion | None:
        """The version being served; ``None`` means the base model."""
        ...

    def promote(self, version_id: str, reason: str) -> AdapterVersion:
        """Serve ``version_id`` from now on; the one served before is retired."""
        ...

    def rollback(self, reason: str) -> AdapterVersion | None:
        """Stop serving the current version and serve the one served before it.

        Returns what is served now (``None``: the base model). Raises
        :class:`RegistryError` when nothing is being served.
        """
        ...


class MemoryRegistry:
    """An :class:`AdapterRegistry` in a dictionary; thread-safe, gone with the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, AdapterVersion] = {}

    def add(self, version: AdapterVersion) -> None:
        with self._lock:
            if version.id in self._versions:
                raise RegistryError(f"adapter {version.id} is already registered")
            self._versions[version.id] = version

    def versions(self, limit: int = 20) -> list[AdapterVersion]:
        with self._lock:
            newest = sorted(self._versions.values(), key=lambda v: (v.created_at, v.id))
            return newest[::-1][:limit]

    def serving(self) -> AdapterVersion | None:
        with self._lock:
            return self._serving()

    def promote(self, version_id: str, reason: str) -> AdapterVersion:
        with self._lock:
            chosen = self._versions.get(version_id)
            if chosen is None:
                raise RegistryError(f"there is no adapter {version_id}")
            current = self._serving()
            if current is not None and current.id != version_id:
                self._versions[current.id] = replace(current, status=AdapterStatus.RETIRED)
            promoted = replace(
                chosen, status=AdapterStatus.SERVING, served_at=utcnow(), reason=reason
            )
            self._versions[version_id] = promoted
            return promoted

    def rollback(self, reason: str) -> AdapterVersion | None:
        with self._lock:
            current = self._serving()
            if current is None:
                raise RegistryError("nothing to roll back: the base model is being served")
            self._versions[current.id] = replace(
                current, status=AdapterStatus.ROLLED_BACK, reason=reason
            )
            previous = max(
                (v for v in self._versions.values() if v.status is AdapterStatus.RETIRED),
                key=lambda v: v.served_at or v.created_at,
                default=None,
            )
            if previous is None:
                return None
            restored = replace(previous, status=AdapterStatus.SERVING, served_at=utcnow())
            self._versions[previous.id] = restored
            return restored

    def _serving(self) -> AdapterVersion | None:
        return next((v for v in self._versions.values() if v.status is AdapterStatus.SERVING), None)
