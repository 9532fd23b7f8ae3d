"""The web process: Telegram's webhook, Slack's Events API, a health check and metrics.

Usage (the Procfile's ``web`` line)::

    python -m bots.web               # serves on PARLEY_WEB_HOST:PARLEY_WEB_PORT
    python -m bots.web --port 8080   # another port (the Procfile passes $PORT when set)

Routes: ``POST /telegram/webhook`` (when a Telegram token is configured),
``POST /slack/events`` (when a Slack bot token and signing secret are configured),
``GET /healthz`` (database reachable, model loaded) and ``GET /metrics`` (Prometheus).

While it serves, its outbox (:mod:`core.outbox`) renews the deliveries it holds and, at
start and every ``PARLEY_DELIVERY_SWEEP_S``, delivers the replies that a web process which
stopped left undelivered, through the adapters' deliverers.
"""

from __future__ import annotations

import argparse
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
from config.startup import entry_point, start
from config.wiring import Parley, build_web
from core.errors import ParleyError
from core.outbox import Deliverer
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

    def deliverer(self) -> Deliverer:
        """What delivers the replies a stopped process left (see :mod:`core.outbox`)."""
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
        if parley.queued is not None:
            from workers.queues import GENERATE_QUEUE, TRAIN_QUEUE
            from workers.scaled import record_queue_depths

            await record_queue_depths(parley.queued.redis, (GENERATE_QUEUE, TRAIN_QUEUE))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        outbox = parley.outbox
        for adapter in adapters:
            await adapter.start()
            if outbox is not None:
                outbox.add(adapter.deliverer())
        if outbox is not None:
            await outbox.start()
        try:
            yield
        finally:
            if outbox is not None:
                await outbox.stop()
            for adapter in reversed(adapters):
                await adapter.stop()
            if outbox is not None:
                await outbox.release()

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

        adapters.append(build_telegram(parley.inbox, settings))
    if settings.slack.bot_token is not None and settings.slack.signing_secret is not None:
        from bots.slack import build_slack

        adapters.append(build_slack(parley.inbox, settings))
    return adapters


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Serve the web process for the configured platforms."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bots.web", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to listen on (default: PARLEY_WEB_HOST)")
    parser.add_argument("--port", type=int, help="port (default: PARLEY_WEB_PORT)")
    args = parser.parse_args(argv)
    settings = start(logging.INFO)
    with contextlib.closing(build_web(settings)) as parley:
        adapters = _adapters(parley, settings)
        if not adapters:
            log.warning("No platform is configured: serving only /healthz and /metrics")
        uvicorn.run(
            create_app(parley, adapters),
            host=args.host or settings.web.host,
            port=args.port or settings.web.port,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
