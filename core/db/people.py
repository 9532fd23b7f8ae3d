"""People in SQL: identities, profiles and link codes of :class:`core.db.SqlStore`.

A person is the id of their first identity (``users.person_id`` on the others, see
:class:`core.db.models.UserRow`), and their profile is kept under it. The functions at the
end run inside the caller's transaction: other parts find or create people with them.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.db.engine import SqlPart
from core.db.models import LinkCodeRow, ProfileRow, UserRow
from core.db.rows import (
    bulk_delete,
    dialect,
    insert_for,
    of_person,
    profile_of,
    rowcount,
    same_identity,
    user_ref,
)
from core.store import LINK_CODE_TTL, merge_profiles, new_link_code, normalize_link_code
from core.types import UserProfile, UserRef, utcnow

__all__ = ["SqlPeople", "identity", "user_id"]


class SqlPeople(SqlPart):
    """:class:`core.store.ProfileStore` and :class:`core.store.IdentityStore` in SQL."""

    def profile(self, user: UserRef) -> UserProfile:
        """The person's profile, shared by their linked identities; empty for someone new."""
        with self._session(write=False) as s:
            query = (
                select(ProfileRow)
                .join(UserRow, ProfileRow.user_id == func.coalesce(UserRow.person_id, UserRow.id))
                .where(*same_identity(user))
            )
            row = s.scalar(query)
            return profile_of(row) if row is not None else UserProfile()

    def save_profile(self, user: UserRef, profile: UserProfile) -> None:
        """Replace the person's profile, for all their linked identities."""
        with self._session(write=True) as s:
            _put_profile(s, identity(s, user)[1], profile)

    def create_link_code(self, user: UserRef, ttl: timedelta = LINK_CODE_TTL) -> str:
        """A new one-time code for the person; it replaces their earlier unused code.

        Expired codes of anyone are cleared on the way.
        """
        now = utcnow()
        with self._session(write=True) as s:
            me, person = identity(s, user)
            s.execute(
                delete(LinkCodeRow).where(
                    or_(
                        LinkCodeRow.expires_at <= now,
                        and_(
                            LinkCodeRow.used_at.is_(None),
                            LinkCodeRow.user_id.in_(select(UserRow.id).where(of_person(person))),
                        ),
                    )
                )
            )
            while True:  # a clash is one in a trillion, but a clash must not link strangers
                code = new_link_code()
                insert = (
                    insert_for(dialect(s), LinkCodeRow)
                    .values(code=code, user_id=me, created_at=now, expires_at=now + ttl)
                    .on_conflict_do_nothing(index_elements=[LinkCodeRow.code])
                    .returning(LinkCodeRow.code)
                )
                if s.execute(insert).first() is not None:
                    return code

    def redeem_link_code(self, code: str, user: UserRef) -> UserRef | None:
        """Link ``user`` to the person who made the code and return that code's identity.

        Claiming the code is one conditional UPDATE, so of concurrent redeemers only one
        links. See :meth:`core.store.IdentityStore.redeem_link_code`.
        """
        now = utcnow()
        with self._session(write=True) as s:
            usable = (
                LinkCodeRow.code == normalize_link_code(code),
                LinkCodeRow.used_at.is_(None),
                LinkCodeRow.expires_at > now,
            )
            query = (
                select(UserRow).join(LinkCodeRow, LinkCodeRow.user_id == UserRow.id).where(*usable)
            )
            found = s.scalar(query)
            if found is None or (found.platform, found.platform_user_id) == (
                user.platform,
                user.id,
            ):
                return None
            owner, person = user_ref(found), found.person_id or found.id
            if rowcount(s.execute(update(LinkCodeRow).where(*usable).values(used_at=now))) == 0:
                return None
            mine = identity(s, user)[1]
            if mine != person:
                _join_profiles(s, person, mine)
                s.execute(
                    update(UserRow)
                    .where(of_person(mine))
                    .values(person_id=person)
                    .execution_options(synchronize_session=False)
                )
            return owner

    def linked_identities(self, user: UserRef) -> list[UserRef]:
        """All identities of the person: ``user`` first, then the others as first seen."""
        with self._session(write=False) as s:
            me = s.scalar(select(UserRow).where(*same_identity(user)))
            if me is None:
                return [user]
            others = s.scalars(
                select(UserRow)
                .where(of_person(me.person_id or me.id), UserRow.id != me.id)
                .order_by(UserRow.id)
            ).all()
            return [user_ref(me), *(user_ref(other) for other in others)]


def identity(s: Session, user: UserRef) -> tuple[int, int]:
    """The identity's row id and its person's, created on first sight."""
    found = user_id(s, user)
    person = s.scalar(select(UserRow.person_id).where(UserRow.id == found))
    return found, person or found


def user_id(s: Session, user: UserRef) -> int:
    """The identity's row id: created on first sight, renamed when their name changed."""
    same = same_identity(user)
    row = s.execute(select(UserRow.id, UserRow.display_name).where(*same)).first()
    if row is None:
        s.execute(
            insert_for(dialect(s), UserRow)
            .values(
                platform=user.platform,
                platform_user_id=user.id,
                display_name=user.display_name,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=[UserRow.platform, UserRow.platform_user_id])
        )
        return s.execute(select(UserRow.id).where(*same)).scalar_one()
    if user.display_name is not None and user.display_name != row.display_name:
        s.execute(
            update(UserRow).where(UserRow.id == row.id).values(display_name=user.display_name)
        )
    return int(row.id)


def _put_profile(s: Session, person: int, profile: UserProfile) -> None:
    """Insert or replace the person's profile."""
    insert = insert_for(dialect(s), ProfileRow).values(
        user_id=person,
        display_name=profile.display_name,
        language=profile.language,
        preferences=dict(profile.preferences),
        facts=[fact.to_json() for fact in profile.facts],
        learn_facts=profile.learn_facts,
        allows_training=profile.allows_training,
        updated_at=utcnow(),
    )
    replaced = (
        "display_name",
        "language",
        "preferences",
        "facts",
        "learn_facts",
        "allows_training",
        "updated_at",
    )
    s.execute(
        insert.on_conflict_do_update(
            index_elements=[ProfileRow.user_id],
            set_={name: insert.excluded[name] for name in replaced},
        )
    )


def _join_profiles(s: Session, person: int, joining: int) -> None:
    """Merge the joining person's profile into the person's and drop it."""
    rows = s.scalars(select(ProfileRow).where(ProfileRow.user_id.in_((person, joining))))
    profiles = {row.user_id: profile_of(row) for row in rows}
    if joining not in profiles:
        return
    kept = profiles.get(person, UserProfile())
    bulk_delete(s, delete(ProfileRow).where(ProfileRow.user_id == joining))
    _put_profile(s, person, merge_profiles(kept, profiles[joining]))
