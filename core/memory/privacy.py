"""Privacy in memory: ``/forget``, ``/export``, retention's purge and the usage figures.

The same rules as :mod:`core.db.privacy` (see :meth:`core.store.PrivacyStore.forget`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.memory.state import Identity, MemoryPart
from core.store import Usage, personal_data_json
from core.types import ConversationKey, Role, StoredMessage, UserRef

__all__ = ["MemoryPrivacy"]


class MemoryPrivacy(MemoryPart):
    """:class:`core.store.PrivacyStore` and :class:`core.store.UsageStore` in memory."""

    def forget(self, user: UserRef) -> int:
        me = (user.platform, user.id)
        state = self._state
        with state.lock:
            if me not in state.people:
                return 0
            person = state.person(me)
            group = set(state.identities(person))
            removed, shared, count = self._remove_turns(group)
            count += len(removed)
            # Other answers in shared chats whose prompts held removed turns lose them.
            for key in shared:
                for turn in state.turns[key]:
                    report = turn.context
                    if report is not None and any(
                        seg.message_id in removed for seg in report.segments
                    ):
                        state.replace_turn(turn.id, context=None)
            count += state.drop_turns(removed)
            for by_user in state.feedback.values():
                for identity in group:
                    count += by_user.pop(identity, None) is not None
            for answer_and_identity in list(state.feedback_ids):
                if answer_and_identity[1] in group or answer_and_identity[0] in removed:
                    del state.feedback_ids[answer_and_identity]
            count += state.profiles.pop(person, None) is not None
            for code, link in list(state.codes.items()):
                if link.owner in group:
                    del state.codes[code]
            for identity in group:
                del state.people[identity]
                state.person_of.pop(identity, None)
            return count + len(group)

    def _remove_turns(self, group: set[Identity]) -> tuple[set[int], list[ConversationKey], int]:
        """Take out the group's turns and the answers to them; a private chat goes whole.

        Returns the removed turns' ids, the conversations others wrote in too, and how
        many conversations went whole. The caller holds the lock.
        """
        state = self._state

        def theirs(turn: StoredMessage) -> bool:
            return turn.user is not None and (turn.user.platform, turn.user.id) in group

        mine = {t.id for ts in state.turns.values() for t in ts if theirs(t)}
        answers = {j.answer_id for j in state.jobs.values() if j.message_id in mine}
        removed: set[int] = set()
        shared: list[ConversationKey] = []
        conversations = 0
        for key, turns in list(state.turns.items()):
            if not any(theirs(t) for t in turns):
                continue
            if any(t.user is not None and not theirs(t) for t in turns):
                shared.append(key)
                gone = [t for t in turns if theirs(t) or t.id in answers]
                state.turns[key] = [t for t in turns if not (theirs(t) or t.id in answers)]
            else:  # nobody else wrote here: a private chat goes whole
                gone = turns
                del state.turns[key]
                state.since.pop(key, None)
                conversations += 1
            removed.update(t.id for t in gone)
        return removed, shared, conversations

    def personal_data(self, user: UserRef) -> dict[str, Any]:
        me = (user.platform, user.id)
        state = self._state
        with state.lock:
            if me not in state.people:
                return personal_data_json([], None, [], [])
            group = state.identities(state.person(me))
            mine = {
                t.id
                for turns in state.turns.values()
                for t in turns
                if t.user is not None and (t.user.platform, t.user.id) in group
            }
            answers = {j.answer_id for j in state.jobs.values() if j.message_id in mine}
            turns = [
                (key, state.current(t))
                for key, ts in state.turns.items()
                for t in ts
                if t.id in mine or t.id in answers
            ]
            feedback = [
                f
                for by_user in state.feedback.values()
                for who, f in by_user.items()
                if who in group
            ]
            identities = [UserRef(p, i, state.people[(p, i)]) for p, i in group]
            profile = state.profiles.get(state.person(me))
            return personal_data_json(
                identities, profile, sorted(turns, key=lambda kt: kt[1].id), feedback
            )

    def purge_before(self, older_than: datetime) -> int:
        state = self._state
        with state.lock:
            old: set[int] = set()
            for key, turns in list(state.turns.items()):
                expired = {t.id for t in turns if t.created_at < older_than}
                if not expired:
                    continue
                old |= expired
                kept = [t for t in turns if t.id not in expired]
                if kept:
                    state.turns[key] = kept
                else:
                    del state.turns[key]
                    state.since.pop(key, None)
            state.drop_turns(old)
            return len(old)

    def usage(self, since: datetime) -> Usage:
        with self._state.lock:
            turns = [t for ts in self._state.turns.values() for t in ts if t.created_at >= since]
            asked = [t for t in turns if t.role is Role.USER]
            answers = [t for t in turns if t.role is Role.ASSISTANT]
            return Usage(
                messages=len(asked),
                answers=len(answers),
                people=len({(t.user.platform, t.user.id) for t in asked if t.user is not None}),
                blocked_answers=sum(t.blocked_reason is not None for t in answers),
            )
