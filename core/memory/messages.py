"""Conversations in memory: the turns of :class:`core.memory.MemoryStore`.

:class:`MemoryConversations` is a conversation as the chat shows it (storing turns, the
history since the last reset, platform message ids); :class:`MemoryTurns` reads single
turns by id, and the history before one message in answer order.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Unpack

from core.jobs import Job, JobStatus
from core.memory.state import MemoryPart
from core.store import NewTurn, draft_turn
from core.types import Answer, ConversationKey, Role, StoredMessage

__all__ = ["MemoryConversations", "MemoryTurns"]


class MemoryConversations(MemoryPart):
    """:class:`core.store.ConversationStore` in memory."""

    def append(
        self, key: ConversationKey, role: Role, text: str, **turn: Unpack[NewTurn]
    ) -> StoredMessage:
        state = self._state
        with state.lock:
            user = turn.get("user")
            if user is not None:
                state.remember(user)
            stored = state.add_turn(key, draft_turn(role, text, turn))
            if turn.get("expects_answer", False):
                hold = state.delivery_hold
                state.jobs[stored.id] = Job(
                    message_id=stored.id,
                    key=key,
                    status=JobStatus.QUEUED,
                    attempts=0,
                    created_at=stored.created_at,
                    updated_at=stored.created_at,
                    in_group=turn.get("in_group", False),
                    delivery_holder=hold.holder if hold is not None else None,
                    delivery_lease_until=(
                        stored.created_at + timedelta(seconds=hold.lease_seconds)
                        if hold is not None
                        else None
                    ),
                )
            return stored

    def history(self, key: ConversationKey, limit: int) -> list[StoredMessage]:
        state = self._state
        with state.lock:
            since = state.since.get(key, 0)
            turns = [t for t in state.turns.get(key, []) if t.id > since]
            return [state.current(t) for t in turns[-limit:]] if limit > 0 else []

    def reset(self, key: ConversationKey) -> None:
        with self._state.lock:
            turns = self._state.turns.get(key)
            if turns:
                self._state.since[key] = turns[-1].id

    def mark_delivered(self, message_id: int, platform_message_id: str) -> None:
        with self._state.lock:
            if self._state.replace_turn(message_id, platform_message_id=platform_message_id):
                return
        raise KeyError(f"no message with id {message_id}")

    def find_by_platform_id(
        self, key: ConversationKey, platform_message_id: str
    ) -> StoredMessage | None:
        state = self._state
        with state.lock:
            for turn in reversed(state.turns.get(key, [])):
                if turn.platform_message_id == platform_message_id:
                    return state.current(turn)
            return None


class MemoryTurns(MemoryPart):
    """:class:`core.store.TurnStore` in memory."""

    def message(self, message_id: int) -> StoredMessage | None:
        state = self._state
        with state.lock:
            for turns in state.turns.values():
                for turn in turns:
                    if turn.id == message_id:
                        return state.current(turn)
            return None

    def answer(self, answer_id: int) -> Answer | None:
        state = self._state
        with state.lock:
            found = state.answers.get(answer_id)
            if found is None:
                return None
            return replace(found, message=state.current(found.message))

    def history_before(self, message_id: int, limit: int) -> list[StoredMessage]:
        state = self._state
        with state.lock:
            key = next(
                (k for k, turns in state.turns.items() if any(t.id == message_id for t in turns)),
                None,
            )
            if key is None or limit <= 0:
                return []
            answers = {j.answer_id: j.message_id for j in state.jobs.values() if j.answer_id}
            since = state.since.get(key, 0)

            def place(turn: StoredMessage) -> tuple[int, int]:
                return answers.get(turn.id, turn.id), turn.id

            turns = sorted(
                (t for t in state.turns[key] if t.id > since and place(t)[0] < message_id),
                key=place,
            )
            return [state.current(t) for t in turns[-limit:]]

    def replace_text(self, message_id: int, text: str) -> bool:
        with self._state.lock:
            return self._state.replace_turn(message_id, text=text) is not None
