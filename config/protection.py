"""Settings that protect people and Parley: limits, administrators, moderation, privacy."""

from __future__ import annotations

from pydantic import Field, field_validator

from config.group import Group, IdList

__all__ = ["LimitSettings", "PrivacySettings", "SafetySettings"]


class LimitSettings(Group):
    """How much one person or chat may ask (the names are :class:`core.limits.LimitOptions`'s)."""

    person_per_minute: int = Field(
        default=20,
        ge=0,
        validation_alias="rate_messages_per_minute",
        description="Messages one person may send per minute; 0: no limit.",
    )
    chat_per_minute: int = Field(
        default=60,
        ge=0,
        validation_alias="rate_chat_messages_per_minute",
        description="Messages one chat may send per minute; 0: no limit.",
    )
    person_tokens_per_day: int = Field(
        default=200_000,
        ge=0,
        validation_alias="quota_tokens_per_day",
        description="Model tokens (prompt and answer) one person may use per day; 0: no quota.",
    )
    chat_tokens_per_day: int = Field(
        default=1_000_000,
        ge=0,
        validation_alias="quota_chat_tokens_per_day",
        description="Model tokens one chat may use per day; 0: none.",
    )
    one_at_a_time: bool = Field(
        default=True,
        validation_alias="one_answer_at_a_time",
        description="A person's answers are made one after another, across all their chats: "
        "a message that arrives while an earlier one is being answered waits its turn.",
    )
    max_queued: int = Field(
        default=5,
        ge=0,
        le=100,
        validation_alias="max_queued_per_person",
        description="With one answer at a time: how many of a person's messages may wait "
        "behind the one being answered; one more is refused with a note to send it again "
        "after the next answer. 0: refuse every message sent while one is being answered.",
    )


class SafetySettings(Group):
    """Administrators, moderation and the prompt canary (docs: security)."""

    admins: IdList = Field(
        default_factory=list,
        description="platform:user-id of the people who may run /admin (telegram:123,slack:U1).",
    )
    moderation: bool = Field(
        default=True, description="Screen messages and answers for offensive language."
    )
    input_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        validation_alias="moderation_input_threshold",
        description="Messages scoring this or above are refused.",
    )
    output_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        validation_alias="moderation_output_threshold",
        description="Answers scoring this or above are replaced.",
    )
    canary: bool = Field(
        default=True,
        description="Plant a secret marker in the instructions and block answers that leak it.",
    )

    @field_validator("admins")
    @classmethod
    def _admin_ids(cls, value: list[str]) -> list[str]:
        for entry in value:
            platform, sep, user_id = entry.partition(":")
            if not (sep and platform.strip() and user_id.strip()):
                raise ValueError(
                    f"PARLEY_ADMINS entries are platform:user-id (telegram:123456), not {entry!r}"
                )
        return value


class PrivacySettings(Group):
    """What Parley keeps, and for how long."""

    redact_stored: bool = Field(
        default=True,
        validation_alias="redact_stored_text",
        description="Store messages and answers with e-mails, phone numbers, cards, IBANs and "
        "secrets replaced once they are answered.",
    )
    retention_days: int = Field(
        default=0, ge=0, description="Delete conversations older than this; 0 keeps them."
    )
