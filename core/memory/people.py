"""People in memory: profiles, link codes and linked identities of :class:`MemoryStore`.

A person is named by their first identity; ``/link`` points the joining identities at
the code owner's person and merges the profiles (:func:`core.store.merge_profiles`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core.memory.state import LinkCode, MemoryPart
from core.store import LINK_CODE_TTL, merge_profiles, new_link_code, normalize_link_code
from core.types import UserProfile, UserRef, utcnow

__all__ = ["MemoryPeople"]


class MemoryPeople(MemoryPart):
    """:class:`core.store.ProfileStore` and :class:`core.store.IdentityStore` in memory."""

    def profile(self, user: UserRef) -> UserProfile:
        state = self._state
        with state.lock:
            return state.profiles.get(state.person((user.platform, user.id)), UserProfile())

    def save_profile(self, user: UserRef, profile: UserProfile) -> None:
        state = self._state
        with state.lock:
            state.remember(user)
            state.profiles[state.person((user.platform, user.id))] = replace(
                profile, preferences=dict(profile.preferences), facts=tuple(profile.facts)
            )

    def create_link_code(self, user: UserRef, ttl: timedelta = LINK_CODE_TTL) -> str:
        state = self._state
        with state.lock:
            state.remember(user)
            person = state.person((user.platform, user.id))
            now = utcnow()
            for code, link in list(state.codes.items()):
                if link.expires_at <= now or (not link.used and state.person(link.owner) == person):
                    del state.codes[code]
            code = new_link_code()
            while code in state.codes:
                code = new_link_code()
            state.codes[code] = LinkCode(owner=(user.platform, user.id), expires_at=now + ttl)
            return code

    def redeem_link_code(self, code: str, user: UserRef) -> UserRef | None:
        me = (user.platform, user.id)
        state = self._state
        with state.lock:
            link = state.codes.get(normalize_link_code(code))
            if link is None or link.used or link.expires_at <= utcnow() or link.owner == me:
                return None
            link.used = True
            state.remember(user)
            person, mine = state.person(link.owner), state.person(me)
            if mine != person:
                joining = state.profiles.pop(mine, None)
                if joining is not None:
                    kept = state.profiles.get(person, UserProfile())
                    state.profiles[person] = merge_profiles(kept, joining)
                for identity in state.identities(mine):
                    state.person_of[identity] = person
            return UserRef(*link.owner, state.people[link.owner])

    def linked_identities(self, user: UserRef) -> list[UserRef]:
        me = (user.platform, user.id)
        state = self._state
        with state.lock:
            if me not in state.people:
                return [user]
            others = [
                UserRef(platform, id, state.people[(platform, id)])
                for platform, id in state.identities(state.person(me))
                if (platform, id) != me
            ]
            return [UserRef(user.platform, user.id, state.people[me]), *others]
