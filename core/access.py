"""Who may talk to Parley: open to the public, or allowlists per platform; admins by id.

:class:`AccessPolicy` decides for each message before anything of it is stored::

    policy = AccessPolicy(
        rules={"telegram": AccessRule(public=False, users={"42"}, chats={"-1001"})},
        admins={("telegram", "42")},
    )
    policy.allows(message)      # False: refuse with REFUSAL, store nothing
    policy.is_admin(user)       # gates /admin

A platform without a rule is open (the console, the test platform). An allowlist rule
lets a message in when its workspace is listed (or none are listed) and its sender or its
chat is listed; a rule that lists only workspaces lets everyone in those workspaces in.
Admins are always let in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.types import ConversationKey, Message, UserRef

__all__ = ["REFUSAL", "AccessPolicy", "AccessRule", "parse_admins"]

REFUSAL = (
    "Sorry, this Parley is private: it only talks to the people and chats its operators "
    "allowed. Nothing you sent was kept."
)


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One platform's access: public, or allowlists of workspaces, users and chats."""

    public: bool = True
    workspaces: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    chats: frozenset[str] = frozenset()

    def allows(self, user: UserRef, key: ConversationKey) -> bool:
        """Whether the rule lets this person in, in this conversation."""
        if self.public:
            return True
        if self.workspaces and key.workspace not in self.workspaces:
            return False
        if not (self.users or self.chats):
            return bool(self.workspaces)  # only workspaces listed: all of their people
        return user.id in self.users or key.chat in self.chats


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Access rules by platform and the admins, as ``(platform, user id)`` pairs."""

    rules: Mapping[str, AccessRule] = field(default_factory=dict)
    admins: frozenset[tuple[str, str]] = frozenset()

    def allows(self, message: Message) -> bool:
        """Whether Parley may read, store and answer this message."""
        return self.allows_in(message.user, message.key)

    def allows_in(self, user: UserRef, key: ConversationKey) -> bool:
        """Whether the person may talk to Parley (or rate its answers) in that conversation."""
        if self.is_admin(user):
            return True
        rule = self.rules.get(user.platform)
        return rule is None or rule.allows(user, key)

    def is_admin(self, user: UserRef) -> bool:
        """Whether the person may run admin commands."""
        return (user.platform, user.id) in self.admins


def parse_admins(entries: list[str]) -> frozenset[tuple[str, str]]:
    """``["telegram:42", "slack:U1"]`` as ``(platform, id)`` pairs; malformed entries raise."""
    admins: set[tuple[str, str]] = set()
    for entry in entries:
        platform, sep, user_id = entry.partition(":")
        if not sep or not platform.strip() or not user_id.strip():
            raise ValueError(f"an admin is platform:user-id (telegram:123456), not {entry!r}")
        admins.add((platform.strip(), user_id.strip()))
    return frozenset(admins)
