"""Deliveries of answer jobs in the stores (:class:`core.jobs.DeliveryStore`).

Tests taking ``store`` run on MemoryStore, SqlStore on a SQLite file and SqlStore on a
fresh PostgreSQL database; those taking ``database_url`` on both SQL backends.
"""

from __future__ import annotations

import time
from typing import Protocol, cast

from sqlalchemy import text

from core.db import SqlStore, create_engine_for
from core.db.engine import upgrade
from core.jobs import DeliveryHold, DeliveryStore, Job
from core.store import Store
from tests.job_fixtures import EXPIRE, KEY, OTHER, SHORT_LEASE, THIRD, ask, claim, finish
from tests.store_fixtures import together
from tests.test_db import downgrade

LONG = 60.0


class Delivering(Store, DeliveryStore, Protocol):
    """Both contracts, as both stores implement them."""


def _both(store: Store) -> Delivering:
    return cast(Delivering, store)


def test_a_job_opened_without_a_hold_is_pending_and_free_for_one_claimer(store: Store) -> None:
    jobs = _both(store)
    asked = ask(store)

    assert [j.message_id for j in jobs.undelivered(["slack"])] == [asked.id]
    held = jobs.claim_delivery(asked.id, "web-a", lease_seconds=LONG)
    assert held is not None
    assert (held.delivered, held.delivery_holder, held.shown) == (False, "web-a", ())
    assert jobs.claim_delivery(asked.id, "web-b", lease_seconds=LONG) is None
    assert jobs.claim_delivery(asked.id, "web-a", lease_seconds=LONG) is not None  # its own
    assert jobs.undelivered(["slack"]) == []


def test_jobs_opened_under_a_hold_are_held_until_it_runs_out(store: Store) -> None:
    jobs = _both(store)
    jobs.hold_deliveries(DeliveryHold("web-a", SHORT_LEASE))
    asked = ask(store)
    job = jobs.job(asked.id)
    assert job is not None
    assert job.delivery_holder == "web-a"
    assert jobs.claim_delivery(asked.id, "web-b", lease_seconds=LONG) is None
    assert jobs.record_shown(asked.id, "web-a", ["101"]) is True

    time.sleep(EXPIRE)  # web-a died: its hold ran out
    assert [j.message_id for j in jobs.undelivered(["slack"])] == [asked.id]
    taken = jobs.claim_delivery(asked.id, "web-b", lease_seconds=LONG)
    assert taken is not None
    assert (taken.delivery_holder, taken.shown) == ("web-b", ("101",))
    assert jobs.record_shown(asked.id, "web-a", ["999"]) is False  # no longer its own
    assert jobs.finish_delivery(asked.id, "web-a") is False
    assert jobs.record_shown(asked.id, "web-b", ["101", "102"]) is True
    assert jobs.finish_delivery(asked.id, "web-b") is True

    done = jobs.job(asked.id)
    assert done is not None
    assert (done.delivered, done.delivery_holder, done.shown) == (True, None, ("101", "102"))
    assert jobs.undelivered(["slack"]) == []
    assert jobs.claim_delivery(asked.id, "web-c", lease_seconds=LONG) is None
    assert jobs.finish_delivery(asked.id, "web-b") is False  # once


def test_renewing_keeps_a_hold_and_releasing_frees_it_at_once(store: Store) -> None:
    jobs = _both(store)
    jobs.hold_deliveries(DeliveryHold("web-a", SHORT_LEASE))
    first, second = ask(store, "one"), ask(store, "two")
    jobs.hold_deliveries(None)
    unheld = ask(store, "three")

    assert jobs.renew_deliveries("web-a", lease_seconds=LONG) == 2
    time.sleep(EXPIRE)
    assert [j.message_id for j in jobs.undelivered(["slack"])] == [unheld.id]
    assert jobs.finish_delivery(first.id, "web-a") is True
    assert jobs.release_deliveries("web-a") == 1  # the delivered one is not held any more
    assert [j.message_id for j in jobs.undelivered(["slack"])] == [second.id, unheld.id]
    assert jobs.renew_deliveries("web-a", lease_seconds=LONG) == 0


def test_undelivered_lists_the_platforms_asked_for_oldest_first(store: Store) -> None:
    jobs = _both(store)
    slack = ask(store, "a")
    telegram = [ask(store, "b", key=OTHER), ask(store, "c", key=THIRD), ask(store, "d", key=OTHER)]
    claimed = claim(store, telegram[0])
    assert claimed.token is not None
    finish(store, telegram[0], claimed.token, "done, not delivered")

    found = jobs.undelivered(["telegram"])
    assert [j.message_id for j in found] == [m.id for m in telegram]
    assert found[0].key == OTHER
    assert found[1].key == THIRD
    assert [j.message_id for j in jobs.undelivered(["telegram"], limit=2)] == [
        m.id for m in telegram[:2]
    ]
    assert next(j.message_id for j in jobs.undelivered(["slack", "telegram"])) == slack.id
    assert jobs.undelivered(["console"]) == []
    assert jobs.undelivered([]) == []


def test_of_many_processes_racing_for_one_delivery_exactly_one_wins(database_url: str) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    jobs = [ask(store, f"q{n}", key=KEY) for n in range(5)]
    for asked in jobs:

        def take(n: int, message_id: int = asked.id) -> Job | None:
            return store.claim_delivery(message_id, f"web-{n}", lease_seconds=LONG)

        won = together(8, take)
        winners = [n for n, job in won.items() if job is not None]
        assert len(winners) == 1
        job = store.job(asked.id)
        assert job is not None
        assert job.delivery_holder == f"web-{winners[0]}"
    engine.dispose()


def test_0008_counts_the_jobs_stored_before_it_as_delivered(database_url: str) -> None:
    engine = create_engine_for(database_url)
    store = SqlStore(engine)
    before = ask(store, "asked before the outbox")
    downgrade(database_url, "0007")
    with engine.connect() as connection:
        columns = connection.execute(text("SELECT * FROM answer_jobs")).keys()
    assert "delivered_at" not in columns

    upgrade(database_url)
    after = ask(store, "asked after")
    old, new = store.job(before.id), store.job(after.id)
    assert old is not None
    assert new is not None
    assert (old.delivered, new.delivered) == (True, False)
    assert [j.message_id for j in store.undelivered(["slack"])] == [after.id]
    engine.dispose()
