"""What the answer job suites share: people, conversations, leases and job steps."""

from __future__ import annotations

from core.jobs import Claim
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

KEY = ConversationKey("slack", "T1", "C1", None)
OTHER = ConversationKey("telegram", None, "-100200", None)
THIRD = ConversationKey("telegram", None, "-100300", "7")
ANN = UserRef("slack", "U1", "Ann")
BOB = UserRef("slack", "U2", "Bob")
CAROL = UserRef("telegram", "42", "Carol")
LEASE = 60.0
MAX_ATTEMPTS = 3
SHORT_LEASE = 0.05
EXPIRE = 0.15  # sleep this long for a SHORT_LEASE to run out


def ask(
    store: Store, text: str = "question", *, key: ConversationKey = KEY, user: UserRef = ANN
) -> StoredMessage:
    """Store a person's message that expects an answer (which opens its job)."""
    return store.append(key, Role.USER, text, user=user, expects_answer=True)


def claim(
    store: Store, message: StoredMessage, lease: float = LEASE, max_attempts: int = MAX_ATTEMPTS
) -> Claim:
    """Claim the job of ``message``."""
    return store.claim_job(message.id, lease_seconds=lease, max_attempts=max_attempts)


def finish(store: Store, message: StoredMessage, token: str, text: str) -> StoredMessage | None:
    """Finish the job of ``message`` with the answer ``text``."""
    return store.finish_job(message.id, token, text, model_version="v1", context=None)


def report(message_id: int) -> ContextReport:
    """A context report that names the question it was built for."""
    return ContextReport(
        turns=(ChatTurn(Role.SYSTEM, "Be brief."), ChatTurn(Role.USER, "Ann: hi")),
        segments=(Segment(kind="turn", label="Ann", tokens=4, message_id=message_id),),
        prompt_tokens=7,
        budget_tokens=512,
    )


def answers(store: Store, key: ConversationKey = KEY) -> list[StoredMessage]:
    """The assistant turns of the conversation."""
    return [t for t in store.history(key, 1000) if t.role is Role.ASSISTANT]
