"""Run Parley on Slack by itself: Socket Mode when an app token is set, else HTTP.

Usage::

    PARLEY_SLACK_BOT_TOKEN=xoxb-… PARLEY_SLACK_APP_TOKEN=xapp-… python -m bots.slack
    PARLEY_SLACK_BOT_TOKEN=xoxb-… PARLEY_SLACK_SIGNING_SECRET=… python -m bots.slack --port 3000

Over HTTP, point the app's Request URLs (events, slash command, interactivity) at
``https://<host>/slack/events``. ``python -m bots.web`` serves the same endpoint next to
Telegram's webhook, /healthz and /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from bots.slack import SlackAdapter, SlackConfig, build_slack
from config.startup import entry_point, start
from config.wiring import build_web
from core.outbox import Outbox

__all__ = ["http_app", "main", "run_socket_mode", "serve_http"]

log = logging.getLogger("bots.slack")


async def run_socket_mode(
    adapter: SlackAdapter, app_token: str, outbox: Outbox | None = None
) -> None:
    """Receive events over Slack's Socket Mode websocket until cancelled."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    await adapter.start()
    handler = AsyncSocketModeHandler(adapter.app, app_token)
    await _start_outbox(adapter, outbox)
    try:
        await handler.start_async()  # type: ignore[no-untyped-call]  # bolt leaves it untyped
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await _stop(adapter, outbox)


def http_app(adapter: SlackAdapter, outbox: Outbox | None = None) -> Starlette:
    """A Starlette app serving only the adapter's ``/slack/events``; it stops the adapter."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await _start_outbox(adapter, outbox)
        try:
            yield
        finally:
            await _stop(adapter, outbox)

    return Starlette(routes=adapter.routes(), lifespan=lifespan)


async def serve_http(
    adapter: SlackAdapter, host: str, port: int, outbox: Outbox | None = None
) -> None:
    """Check the bot token, then serve the Events API endpoint with uvicorn until stopped."""
    import uvicorn

    await adapter.start()  # before serving, so that a refused token is one clear line
    app = http_app(adapter, outbox)
    await uvicorn.Server(uvicorn.Config(app, host=host, port=port)).serve()


async def _start_outbox(adapter: SlackAdapter, outbox: Outbox | None) -> None:
    """Deliver, through this adapter, the replies that a process which stopped left."""
    if outbox is not None:
        outbox.add(adapter.deliverer())
        await outbox.start()


async def _stop(adapter: SlackAdapter, outbox: Outbox | None) -> None:
    """Stop sweeping, let the replies in progress finish, then release what is left."""
    if outbox is not None:
        await outbox.stop()
    await adapter.stop()
    if outbox is not None:
        await outbox.release()


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Start the Slack adapter on the configured (by default embedded) deployment."""
    parser = argparse.ArgumentParser(
        prog="python -m bots.slack", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", help="HTTP mode: address to listen on (PARLEY_WEB_HOST)")
    parser.add_argument("--port", type=int, help="HTTP mode: port (PARLEY_WEB_PORT)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what Parley does")
    args = parser.parse_args(argv)
    settings = start(logging.DEBUG if args.verbose else logging.INFO)
    config = SlackConfig.from_settings(settings.slack)  # before the slow model load
    with contextlib.closing(build_web(settings)) as parley, contextlib.suppress(KeyboardInterrupt):
        adapter = build_slack(parley.inbox, settings)
        if config.app_token is not None:
            log.info("Slack: Socket Mode")
            asyncio.run(run_socket_mode(adapter, config.app_token, parley.outbox))
        else:
            host = args.host or settings.web.host
            port = args.port or settings.web.port
            log.info("Slack: HTTP events at http://%s:%s/slack/events", host, port)
            asyncio.run(serve_http(adapter, host, port, parley.outbox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
