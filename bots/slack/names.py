"""People's Slack display names, looked up with users.info once per person."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["Names"]

log = logging.getLogger(__name__)


class Names:
    """People's display names from users.info, looked up once per person (bounded)."""

    def __init__(self, client: AsyncWebClient, size: int = 10_000) -> None:
        self._client = client
        self._size = size
        self._names: dict[str, str | None] = {}

    async def of(self, user_id: str) -> str | None:
        """The name Slack shows for a person, or ``None`` when it cannot be had."""
        if user_id in self._names:
            return self._names[user_id]
        name: str | None = None
        try:
            found = (await self._client.users_info(user=user_id)).get("user") or {}
            profile = found.get("profile") or {}
            name = profile.get("display_name") or found.get("real_name") or found.get("name")
        except SlackApiError as exc:
            # e.g. missing_scope (no users:read): the core then says "user U…".
            log.info("users.info for %s failed: %s", user_id, exc.response.get("error"))
        except Exception:
            log.warning("users.info for %s failed", user_id, exc_info=True)
            return None  # a network failure is not remembered
        if len(self._names) >= self._size:
            self._names.clear()
        self._names[user_id] = name if isinstance(name, str) and name else None
        return self._names[user_id]
