"""Linked identities, link codes, and turning fact learning off.

``users.person_id`` joins identities into one person (NULL: the identity is its own
person, which every existing user stays); profiles stay keyed by the person's first
identity. ``profiles.learn_facts`` starts true for everyone. Facts written as plain
strings stay as they are: the store reads both forms.

Downgrading gives every linked identity its own copy of the shared profile and turns
facts back into plain strings, as revision 0002 stored them.

Revision ID: 0003
Revises: 0002
Create Date: 2025-12-08
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the person of each identity, the link codes and the learning switch."""
    op.add_column("users", sa.Column("person_id", Id, nullable=True))
    op.create_index("ix_users_person_id", "users", ["person_id"])
    op.add_column(
        "profiles",
        sa.Column("learn_facts", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.create_table(
        "link_codes",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("used_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_link_codes_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("code", name="pk_link_codes"),
    )
    op.create_index("ix_link_codes_user_id", "link_codes", ["user_id"])


def downgrade() -> None:
    """Unlink everyone, keeping each person's profile on every identity, and drop the rest."""
    op.execute(
        "INSERT INTO profiles (user_id, display_name, language, preferences, facts, updated_at)"
        " SELECT users.id, profiles.display_name, profiles.language, profiles.preferences,"
        " profiles.facts, profiles.updated_at"
        " FROM users JOIN profiles ON profiles.user_id = users.person_id"
    )
    _facts_as_strings()
    op.drop_index("ix_link_codes_user_id", table_name="link_codes")
    op.drop_table("link_codes")
    op.drop_column("profiles", "learn_facts")
    op.drop_index("ix_users_person_id", table_name="users")
    op.drop_column("users", "person_id")


def _facts_as_strings() -> None:
    """Rewrite every profile's facts as the list of their texts."""
    profiles = sa.table("profiles", sa.column("user_id", Id), sa.column("facts", sa.JSON()))
    bind = op.get_bind()
    for user_id, facts in bind.execute(sa.select(profiles.c.user_id, profiles.c.facts)).all():
        if isinstance(facts, str):  # a driver that hands back JSON undecoded
            facts = json.loads(facts)
        texts = [_text(fact) for fact in facts]
        bind.execute(sa.update(profiles).where(profiles.c.user_id == user_id).values(facts=texts))


def _text(fact: Any) -> str:
    return fact if isinstance(fact, str) else str(fact["text"])
