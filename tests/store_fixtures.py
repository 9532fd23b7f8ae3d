"""What the store suites share: people, conversations and a full context report."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from core.store import Store
from core.types import (
    ChatTurn,
    ContextReport,
    ConversationKey,
    Role,
    Segment,
    StoredMessage,
    UserRef,
)

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
OTHER = ConversationKey("telegram", None, "-100200", None)
ANN = UserRef("slack", "U1", "Ann")
BOB = UserRef("slack", "U2", "Bob")
CAROL = UserRef("telegram", "42", "Carol")
DAN = UserRef("telegram", "43", "Dan")
DM = ConversationKey("slack", "T1", "D1", None)


def make_report(message_id: int | None = None) -> ContextReport:
    """A context report with every kind of field set."""
    return ContextReport(
        turns=(ChatTurn(Role.SYSTEM, "Be brief."), ChatTurn(Role.USER, "Ann: hi")),
        segments=(
            Segment(kind="system", label="instructions", tokens=3),
            Segment(kind="fact", label="likes tea", tokens=2, included=False),
            Segment(kind="turn", label="Ann", tokens=4, message_id=message_id),
        ),
        prompt_tokens=7,
        budget_tokens=512,
        dropped_turns=1,
    )


def chat(store: Store, key: ConversationKey, turns: int) -> list[StoredMessage]:
    """Append ``turns`` alternating user and assistant turns; return them as stored."""
    return [
        store.append(key, Role.USER, f"question {i}", user=ANN, platform_message_id=f"m{i}")
        if i % 2 == 0
        else store.append(key, Role.ASSISTANT, f"answer {i}", model_version="v1")
        for i in range(turns)
    ]


T = TypeVar("T")


def together(threads: int, work: Callable[[int], T]) -> dict[int, T]:
    """Run ``work(n)`` on ``threads`` threads released at once; each result by its ``n``.

    An exception in any thread fails the test.
    """
    start = threading.Barrier(threads)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            results[n] = work(n)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    return results
