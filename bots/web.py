"""The web process: Telegram's webhook, Slack's Events API, a health check and metrics.

Usage (the Procfile's ``web`` line)::

    python -m bots.web            # serves on PARLEY_WEB_HOST:PARLEY_WEB_PORT

Routes: ``POST /telegram/webhook`` (when a Telegram token is configured),
``POST /slack/events`` (when a Slack bot token and signing secret are configured),
``GET /healthz`` (database reachable, model loaded) and ``GET /metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from config.settings import Settings
from config.wiring import Parley
from core.errors import ParleyError
from core.privacy import install_log_redaction
from core.types import ConversationKey

__all__ = ["PlatformAdapter", "create_app", "main"]

log = logging.getLogger(__name__)

_HEALTH_KEY = ConversationKey("health", None, "check")


class PlatformAdapter(Protocol):
    """What the web process needs of a chat platform's adapter."""

    def routes(self) -> list[BaseRoute]:
        """The HTTP routes the platform calls."""
        ...

    async def start(self) -> None:
        """Connect to the platform (e.g. register commands and the webhook)."""
        ...

    async def stop(self) -> None:
        """Finish work in progress and disconnect."""
        ...


def create_app(parley: Parley, adapters: list[PlatformAdapter]) -> Starlette:
    """The ASGI app for the given parts; the adapters start and stop with it."""

    async def health(_: Request) -> Response:
        try:
            await asyncio.to_thread(parley.store.history, _HEALTH_KEY, 1)
        except ParleyError as exc:
            return JSONResponse({"status": "unavailable", "database": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "model": parley.generator.model_version})

    async def metrics(_: Request) -> Response:
        if parley.redis is not None:
            from workers.celery_app import GENERATE_QUEUE, TRAIN_QUEUE
            from workers.scaled import record_queue_depths

            await record_queue_depths(parley.redis, (GENERATE_QUEUE, TRAIN_QUEUE))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        for adapter in adapters:
            await adapter.start()
        try:
            yield
        finally:
            for adapter in reversed(adapters):
                await adapter.stop()

    routes: list[BaseRoute] = [
        Route("/healthz", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    for adapter in adapters:
        routes.extend(adapter.routes())
    return Starlette(routes=routes, lifespan=lifespan)


def _adapters(parley: Parley, settings: Settings) -> list[PlatformAdapter]:
    """The adapters whose platforms are configured."""
    adapters: list[PlatformAdapter] = []
    if settings.telegram.token is not None:
        from bots.telegram import build_telegram

        adapters.append(build_telegram(parley.service, settings))
    if settings.slack.bot_token is not None and settings.slack.signing_secret is not None:
        from bots.slack import build_slack

        adapters.append(build_slack(parley.service, settings))
    return adapters


def main() -> int:
    """Serve the web process for the configured platforms."""
    import uvicorn

    from config import load_settings
    from config.wiring import build_web

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_redaction()  # no personal data in any log line
    try:
        settings = load_settings()
        parley = build_web(settings)
        adapters = _adapters(parley, settings)
    except ParleyError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    if not adapters:
        log.warning("No platform is configured: serving only /healthz and /metrics")
    try:
        uvicorn.run(create_app(parley, adapters), host=settings.web.host, port=settings.web.port)
    finally:
        parley.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
