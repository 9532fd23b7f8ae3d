"""The adapter registry: promotion, rollback and what is served, in memory and in SQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from core.db import create_engine_for
from core.db.registry import SqlRegistry
from core.registry import (
    AdapterRegistry,
    AdapterStatus,
    AdapterVersion,
    MemoryRegistry,
    RegistryError,
)
from core.types import utcnow
from tests.conftest import SQL_BACKENDS


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def registry(request: pytest.FixtureRequest) -> Iterator[AdapterRegistry]:
    """An empty registry on each backend."""
    if request.param == "memory":
        yield MemoryRegistry()
        return
    engine = create_engine_for(request.getfixturevalue(f"{request.param}_url"))
    try:
        yield SqlRegistry(engine)
    finally:
        engine.dispose()


def _add(registry: AdapterRegistry, version_id: str, minutes: int, **kw: object) -> None:
    registry.add(
        AdapterVersion(
            id=version_id,
            base_model="smollm2",
            path=f"/adapters/{version_id}",
            created_at=utcnow() + timedelta(minutes=minutes),
            figures={"after": {"preference_accuracy": 0.9}},
            **kw,  # type: ignore[arg-type]
        )
    )


def test_nothing_is_served_until_a_version_is_promoted(registry: AdapterRegistry) -> None:
    _add(registry, "ft-1", 0)
    assert registry.serving() is None

    promoted = registry.promote("ft-1", "passed the gate")

    assert promoted.status is AdapterStatus.SERVING
    served = registry.serving()
    assert served is not None
    assert (served.id, served.reason) == ("ft-1", "passed the gate")
    assert served.figures == {"after": {"preference_accuracy": 0.9}}


def test_promoting_retires_the_one_served_before(registry: AdapterRegistry) -> None:
    _add(registry, "ft-1", 0)
    _add(registry, "ft-2", 1, parent="ft-1")
    registry.promote("ft-1", "gate")
    registry.promote("ft-2", "gate")

    statuses = {v.id: v.status for v in registry.versions()}

    assert statuses == {"ft-1": AdapterStatus.RETIRED, "ft-2": AdapterStatus.SERVING}
    assert [v.id for v in registry.versions()] == ["ft-2", "ft-1"]
    assert registry.versions()[0].parent == "ft-1"


def test_rollback_serves_the_previous_version_then_the_base_model(
    registry: AdapterRegistry,
) -> None:
    for i in (1, 2, 3):
        _add(registry, f"ft-{i}", i)
        registry.promote(f"ft-{i}", "gate")

    back = registry.rollback("answers got worse")
    assert back is not None
    assert back.id == "ft-2"
    served = registry.serving()
    assert served is not None
    assert served.id == "ft-2"
    back = registry.rollback("still worse")
    assert back is not None
    assert back.id == "ft-1"
    assert registry.rollback("start over") is None
    assert registry.serving() is None
    with pytest.raises(RegistryError):
        registry.rollback("again")
    statuses = {v.id: v.status for v in registry.versions()}
    assert set(statuses.values()) == {AdapterStatus.ROLLED_BACK}


def test_unknown_and_duplicate_ids_are_refused(registry: AdapterRegistry) -> None:
    _add(registry, "ft-1", 0)
    with pytest.raises(RegistryError):
        _add(registry, "ft-1", 0)
    with pytest.raises(RegistryError):
        registry.promote("ft-404", "typo")


def test_a_rejected_version_can_be_promoted_by_an_operator(registry: AdapterRegistry) -> None:
    _add(registry, "ft-1", 0, status=AdapterStatus.REJECTED, reason="regression drift")

    registry.promote("ft-1", "operator: promote anyway")

    served = registry.serving()
    assert served is not None
    assert served.reason == "operator: promote anyway"
