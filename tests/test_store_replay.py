"""SqlStore against MemoryStore: random conversations replayed on both say the same."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import SqlStore, create_engine_for
from core.memory import MemoryStore
from core.store import Store
from core.types import (
    ConversationKey,
    Fact,
    Feedback,
    Rating,
    Role,
    StoredMessage,
    UserRef,
)

# ---- SqlStore against MemoryStore, on random conversations -------------------------------

ACTIONS = (
    "user",
    "assistant",
    "reset",
    "history",
    "answer",
    "feedback",
    "deliver",
    "find",
    "claim",
    "forget",
    "profile",
    "link",
    "ask",
    "job",
    "next",
)
Step = tuple[str, int, int]


@pytest.fixture
def sql_store(database_url: str) -> Iterator[SqlStore]:
    """A SqlStore shared by all examples of one test; each example uses its own chats."""
    engine = create_engine_for(database_url)
    yield SqlStore(engine)
    engine.dispose()


def replay(store: Store, steps: list[Step], chat_id: str) -> list[object]:
    """Run ``steps`` on a store and return everything it said, free of ids and times."""
    keys = [
        ConversationKey("slack", None, chat_id, None),
        ConversationKey("slack", "", chat_id, ""),
    ]
    # People of this example only, so that forgetting them leaves other examples alone.
    people = (UserRef("slack", f"{chat_id}-ann", "Ann"), UserRef("slack", f"{chat_id}-bob"))
    turns: list[StoredMessage] = []
    said: list[object] = []
    for action, k, n in steps:
        key = keys[k]
        if action in ("user", "assistant", "ask"):
            role = Role.ASSISTANT if action == "assistant" else Role.USER
            user = people[n % 2] if role is Role.USER else None
            platform_id = f"p{n}" if role is Role.USER else None
            text = f"{action} {len(turns)}"
            turns.append(
                store.append(
                    key,
                    role,
                    text,
                    user=user,
                    platform_message_id=platform_id,
                    expects_answer=action == "ask",
                )
            )
        elif action == "next":
            first = store.next_job(key)
            said.append(next((t.text for t in turns if t.id == first), first))
        elif action == "reset":
            store.reset(key)
        elif action == "history":
            said.append([(t.role, t.text, t.user) for t in store.history(key, n)])
        elif action == "find":
            found_turn = store.find_by_platform_id(key, f"p{n}")
            said.append(found_turn and (found_turn.text, found_turn.user))
        elif action == "claim":
            said.append(store.claim_event("slack", f"{chat_id}-{n % 3}"))
        elif action == "forget":
            said.append(store.forget(people[n % 2]))
        elif action == "profile":
            person, other = people[n % 2], people[(n + 1) % 2]
            mine = store.profile(person)
            store.save_profile(person, replace(mine, facts=(*mine.facts, Fact(f"fact {n}"))))
            said.append((store.profile(person), store.profile(other)))
        elif action == "link":
            person, other = people[n % 2], people[(n + 1) % 2]
            code = store.create_link_code(person)
            said.append(store.redeem_link_code(code, other if n < 4 else person))
            said.append(store.linked_identities(other))
        elif turns:
            target = turns[n % len(turns)]
            if action == "answer":
                found = store.answer(target.id)
                said.append(found and (found.message.text, found.conversation))
                continue
            if action == "deliver":
                try:
                    store.mark_delivered(target.id, f"p{n}")
                except KeyError:
                    said.append("KeyError")
                continue
            if action == "job":
                said.append(run_job(store, target.id, n, turns))
                continue
            rating = Rating.GOOD if n < 2 else Rating.BAD
            try:
                store.save_feedback(
                    Feedback(answer_id=target.id, user=people[n % 2], rating=rating)
                )
            except KeyError:
                said.append("KeyError")
            said.append(sorted((f.user.id, f.rating) for f in store.feedback_for(target.id)))
    return said


def run_job(store: Store, message_id: int, n: int, turns: list[StoredMessage]) -> object:
    """Claim a message's job, then finish it, fail it or leave it running, as ``n`` says."""
    claim = store.claim_job(message_id, lease_seconds=600, max_attempts=2)
    ended: object = None
    if claim.token is not None and n % 3 == 0:
        answer = store.finish_job(
            message_id, claim.token, f"answer {len(turns)}", model_version="v1", context=None
        )
        if answer is not None:
            turns.append(answer)
            ended = answer.text
    elif claim.token is not None and n % 3 == 1:
        ended = store.fail_job(message_id, f"failed {n}", token=claim.token)
    elif n == 5:
        ended = store.fail_job(message_id, "given up")
    job = store.job(message_id)
    state = job and (job.status, job.attempts, job.error, job.answer_id is not None)
    return claim.outcome, ended, state


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(0, 1), st.integers(0, 5)),
        min_size=5,
        max_size=40,
    )
)
def test_sql_store_says_what_the_memory_store_says(sql_store: SqlStore, steps: list[Step]) -> None:
    chat_id = uuid4().hex
    assert replay(sql_store, steps, chat_id) == replay(MemoryStore(), steps, chat_id)
