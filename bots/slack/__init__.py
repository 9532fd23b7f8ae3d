"""Parley on Slack: direct messages, mentions in channels, threads, ``/parley`` and 👍/👎.

Usage::

    from bots.slack import build_slack

    adapter = build_slack(parley.inbox, settings)
    app = Starlette(routes=adapter.routes())     # POST /slack/events

    python -m bots.slack          # Socket Mode with PARLEY_SLACK_APP_TOKEN, else HTTP

Settings: ``PARLEY_SLACK_BOT_TOKEN`` (xoxb-…, required), ``PARLEY_SLACK_SIGNING_SECRET``
(HTTP Events API), ``PARLEY_SLACK_APP_TOKEN`` (xapp-…, Socket Mode) and
``PARLEY_SLACK_API_URL`` (the Web API base, for GovSlack or a test server). The app's
manifest is ``docs/slack-manifest.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.adapter import EVENTS_PATH, SlackAdapter
from config.groups import SlackSettings
from config.settings import Settings
from core.errors import ConfigurationError
from core.inbox import Inbox

__all__ = ["EVENTS_PATH", "SlackAdapter", "SlackConfig", "build_slack"]


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """The Slack settings the adapter needs, checked."""

    bot_token: str
    signing_secret: str | None
    app_token: str | None
    api_url: str

    @classmethod
    def from_settings(cls, slack: SlackSettings) -> SlackConfig:
        """Check the ``slack`` settings; a missing one raises ConfigurationError."""
        bot = slack.bot_token
        secret = slack.signing_secret
        app = slack.app_token
        if bot is None:
            raise ConfigurationError(
                "PARLEY_SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-…) "
                "from your Slack app's OAuth & Permissions page"
            )
        if secret is None and app is None:
            raise ConfigurationError(
                "Set PARLEY_SLACK_SIGNING_SECRET (HTTP Events API; Basic Information → "
                "Signing Secret) or PARLEY_SLACK_APP_TOKEN (Socket Mode; an xapp-… token)"
            )
        url = slack.api_url
        return cls(
            bot_token=bot.get_secret_value(),
            signing_secret=secret.get_secret_value() if secret is not None else None,
            app_token=app.get_secret_value() if app is not None else None,
            api_url=url if url.endswith("/") else url + "/",
        )


def build_slack(inbox: Inbox, settings: Settings, *, edit_interval: float = 1.0) -> SlackAdapter:
    """The Slack adapter for the configured app; raises ConfigurationError when incomplete."""
    config = SlackConfig.from_settings(settings.slack)
    client = AsyncWebClient(token=config.bot_token, base_url=config.api_url)
    return SlackAdapter(
        inbox, client=client, signing_secret=config.signing_secret, edit_interval=edit_interval
    )
