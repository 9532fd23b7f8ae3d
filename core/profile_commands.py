"""``/profile`` and ``/link``: what Parley knows about a person, and one person on many platforms.

:class:`ProfileCommands` runs both for :class:`core.conversation.ConversationService`:
``/profile`` shows, sets and clears the person's profile (:func:`describe_profile` is how
it reads), ``/link`` makes or redeems the code that joins two platform accounts into one
person with one profile (:class:`core.store.IdentityStore`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from core.commands import PROFILE_FIELDS, parse_profile
from core.store import PeopleStore
from core.types import Fact, Message, Reply, UserProfile

__all__ = ["ProfileCommands", "describe_profile"]


class ProfileCommands:
    """The ``/profile`` and ``/link`` commands, over the store's profiles and identities."""

    def __init__(self, store: PeopleStore, clean: Callable[[str], str]) -> None:
        self._store = store
        self._clean = clean
        """Takes personal data out of a fact before it is saved (``Safety.clean``)."""

    async def profile(self, message: Message, args: str) -> Reply:
        """``/profile``: show the person's profile, or set, add, forget or clear a part of it."""
        parsed = parse_profile(args)
        if parsed is None:
            fields = ", ".join(PROFILE_FIELDS)
            return Reply(
                text=f"Usage: /profile to see it, /profile FIELD VALUE to set one of {fields} "
                "(e.g. /profile length short), /profile clear [FIELD] to clear."
            )
        user = message.user
        profile = await asyncio.to_thread(self._store.profile, user)
        if parsed.action == "show":
            identities = await asyncio.to_thread(self._store.linked_identities, user)
            me = (user.platform, user.id)
            others = [f"{u.platform} ({u.label})" for u in identities if (u.platform, u.id) != me]
            linked = f"\nLinked accounts: {', '.join(others)}." if others else ""
            return Reply(text=describe_profile(profile) + linked)
        if parsed.action == "learning":
            profile = replace(profile, learn_facts=parsed.value == "on")
        elif parsed.action == "training":
            profile = replace(profile, allows_training=parsed.value == "on")
        elif parsed.action == "fact":
            fact = Fact(self._clean(parsed.value or ""))
            profile = replace(profile, facts=(*profile.facts, fact))
        elif parsed.action == "forget":
            index = int(parsed.value or 0) - 1
            if not 0 <= index < len(profile.facts):
                return Reply(text=f"There is no fact {index + 1}. " + describe_profile(profile))
            profile = replace(profile, facts=profile.facts[:index] + profile.facts[index + 1 :])
        elif parsed.action == "clear" and parsed.field is None:
            # What the person told Parley goes; their training choice is consent, and stays.
            profile = UserProfile(allows_training=profile.allows_training)
        else:
            profile = _set_field(profile, parsed.field or "", parsed.value)
        await asyncio.to_thread(self._store.save_profile, user, profile)
        return Reply(text="Saved. " + describe_profile(profile))

    async def link(self, message: Message, args: str) -> Reply:
        """``/link``: a new link code, or ``/link CODE`` to join the code's person."""
        code = args.strip()
        if not code:
            code = await asyncio.to_thread(self._store.create_link_code, message.user)
            return Reply(
                text=f"Your link code is {code}. Within 10 minutes, send /link {code} to me on "
                "your other platform (Slack or Telegram) to share one profile between them."
            )
        owner = await asyncio.to_thread(self._store.redeem_link_code, code, message.user)
        if owner is None:
            return Reply(
                text="That code is unknown, already used or expired. Send /link on your other "
                "account to get a new one."
            )
        return Reply(
            text=f"Linked: this account now shares one profile with your {owner.platform} "
            f"account ({owner.label})."
        )


def describe_profile(profile: UserProfile) -> str:
    """What Parley knows about a person, as a short text."""
    if profile.is_empty() and profile.allows_training:
        return "I don't know anything about you yet. Set something with /profile name Ada."
    lines = ["What I know about you:"]
    if profile.display_name:
        lines.append(f"• name: {profile.display_name}")
    if profile.language:
        lines.append(f"• language: {profile.language}")
    lines.extend(f"• {key}: {value}" for key, value in sorted(profile.preferences.items()))
    for i, fact in enumerate(profile.facts, 1):
        how = f"learned, {fact.confidence:.0%} sure" if fact.learned else "set by you"
        hidden = " — not used: learning is off" if fact.learned and not profile.learn_facts else ""
        lines.append(f"• fact {i}: {fact.text} ({how}){hidden}")
    if not profile.allows_training:
        lines.append("• training: off — your feedback is never used to train me")
    return "\n".join(lines)


def _set_field(profile: UserProfile, name: str, value: str | None) -> UserProfile:
    """The profile with one field set (or cleared, when ``value`` is None)."""
    if name == "name":
        return replace(profile, display_name=value)
    if name == "language":
        return replace(profile, language=value)
    preferences = dict(profile.preferences)
    if value is None:
        preferences.pop(name, None)
    else:
        preferences[name] = value
    return replace(profile, preferences=preferences)
