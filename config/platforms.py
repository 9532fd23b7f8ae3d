"""Settings of the chat platforms: the Telegram bot and the Slack app, and who may use them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from config.group import Group, IdList

__all__ = ["SlackSettings", "TelegramSettings"]


class TelegramSettings(Group):
    """The Telegram bot, and who may talk to it."""

    token: SecretStr | None = Field(
        default=None, validation_alias="telegram_token", description="From @BotFather."
    )
    api_url: str = Field(
        default="https://api.telegram.org/bot",
        validation_alias="telegram_api_url",
        description="Bot API base URL (a self-hosted Bot API server, or a test server).",
    )
    webhook_url: str | None = Field(
        default=None,
        validation_alias="telegram_webhook_url",
        description="Public HTTPS URL of /telegram/webhook; empty means polling.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias="telegram_webhook_secret",
        description="Checked against X-Telegram-Bot-Api-Secret-Token.",
    )
    access: Literal["public", "allowlist"] = Field(
        default="public",
        validation_alias="telegram_access",
        description="public: anyone on Telegram; allowlist: only the users and chats below.",
    )
    allowed_users: IdList = Field(
        default_factory=list,
        validation_alias="telegram_allowed_users",
        description="Telegram user ids allowed (comma-separated).",
    )
    allowed_chats: IdList = Field(
        default_factory=list,
        validation_alias="telegram_allowed_chats",
        description="Telegram group ids where everyone is allowed (comma-separated, e.g. -100…).",
    )


class SlackSettings(Group):
    """The Slack app, and who may talk to it."""

    bot_token: SecretStr | None = Field(
        default=None, validation_alias="slack_bot_token", description="xoxb-… bot token."
    )
    signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias="slack_signing_secret",
        description="Verifies every HTTP request from Slack.",
    )
    app_token: SecretStr | None = Field(
        default=None,
        validation_alias="slack_app_token",
        description="xapp-… token; when set, Socket Mode instead of HTTP.",
    )
    api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias="slack_api_url",
        description="Web API base URL (GovSlack uses another).",
    )
    access: Literal["public", "allowlist"] = Field(
        default="public",
        validation_alias="slack_access",
        description="public: any workspace that installed the app; allowlist: the lists below.",
    )
    allowed_workspaces: IdList = Field(
        default_factory=list,
        validation_alias="slack_allowed_workspaces",
        description="Slack team ids allowed; empty: any workspace.",
    )
    allowed_channels: IdList = Field(
        default_factory=list,
        validation_alias="slack_allowed_channels",
        description="Slack channel ids where everyone is allowed.",
    )
    allowed_users: IdList = Field(
        default_factory=list,
        validation_alias="slack_allowed_users",
        description="Slack user ids allowed anywhere in those workspaces.",
    )
