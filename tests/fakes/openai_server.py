"""A small OpenAI-compatible server for tests, with vLLM's runtime LoRA routes.

It runs aiohttp in a thread of its own (the engine's start-up check is a blocking call) and
answers ``GET /v1/models``, streaming ``POST /v1/chat/completions`` and vLLM's
``POST /v1/load_lora_adapter`` / ``/v1/unload_lora_adapter`` as vLLM documents them. Each
chat request takes the next :class:`Plan` (default: a short answer), so that a test can
script a failure: a status with headers, a stream cut after some chunks, a slow server.

:class:`RateLimitingProxy` stands in front of a real server and answers the first requests
with ``429`` and ``Retry-After``, or passes its answers on slowly.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

__all__ = ["FakeOpenAIServer", "Plan", "RateLimitingProxy"]


@dataclass(slots=True)
class Plan:
    """How to answer one chat request."""

    words: tuple[str, ...] = ("Hello", " from", " the", " fake", " server.")
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None
    """Close the connection after this many content chunks, without a finish."""
    delay_s: float = 0.0
    """Seconds before each chunk."""
    stall_s: float = 0.0
    """Seconds before the response starts."""


class _Threaded:
    """An aiohttp application served from a thread, on a free port."""

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> _Threaded:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(self.app(), handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


class FakeOpenAIServer(_Threaded):
    """Answers chat completions by plan; records every request."""

    def __init__(self, models: tuple[str, ...] = ("fake-model",), api_key: str | None = None):
        super().__init__()
        self.models = list(models)
        self.api_key = api_key
        self.plans: list[Plan] = []
        self.requests: list[dict[str, Any]] = []
        self.lora: dict[str, str] = {}
        self.lora_enabled = True
        self.stream_options = True
        """Whether ``stream_options`` is understood (False: refused with 422, like old servers)."""
        self.readable = True
        """Whether LoRA paths can be read (a folder not shared with the server: False)."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/load_lora_adapter", self._load)
        app.router.add_post("/v1/unload_lora_adapter", self._unload)
        return app

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return web.json_response(
            {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
            status=401,
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in self.models]
        data += [{"id": n, "object": "model", "created": 0, "owned_by": "lora"} for n in self.lora]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        self.requests.append(body)
        plan = self.plans.pop(0) if self.plans else Plan()
        if plan.stall_s:
            await asyncio.sleep(plan.stall_s)
        if plan.status != 200:
            return web.json_response(
                {"error": {"message": f"planned {plan.status}", "type": "server_error"}},
                status=plan.status,
                headers=plan.headers,
            )
        if "stream_options" in body and not self.stream_options:
            return web.json_response(
                {
                    "detail": [
                        {"loc": ["body", "stream_options"], "msg": "extra fields not permitted"}
                    ]
                },
                status=422,
            )
        model = body["model"]
        if model not in self.models and model not in self.lora:
            return web.json_response(
                {"error": {"message": f"The model `{model}` does not exist."}}, status=404
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(payload: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())

        def chunk(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        words = plan.words[: body.get("max_tokens") or None]
        for i, word in enumerate(words):
            if plan.cut_after is not None and i >= plan.cut_after:
                assert request.transport is not None
                request.transport.close()  # the server went away mid-answer
                return response
            if plan.delay_s:
                await asyncio.sleep(plan.delay_s)
            await send(chunk({"content": word}, None))
        finish = "length" if len(words) < len(plan.words) else "stop"
        await send(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt = sum(len(m["content"]) for m in body["messages"]) // 4 + 1
            await send(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": len(words),
                        "total_tokens": prompt + len(words),
                    },
                }
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _load(self, request: web.Request) -> web.StreamResponse:
        if not self.lora_enabled:
            return web.json_response({"detail": "Not Found"}, status=404)
        body = await request.json()
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error("Both 'lora_name' and 'lora_path' must be provided.", 400)
        if name in self.lora:
            return _error(f"The lora adapter '{name}' has already been loaded.", 400)
        if not self.readable:
            return _error(f"Loading lora {name} failed: No adapter found for {path}", 404)
        self.lora[name] = path
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def _unload(self, request: web.Request) -> web.StreamResponse:
        if not self.lora_enabled:
            return web.json_response({"detail": "Not Found"}, status=404)
        name = (await request.json()).get("lora_name")
        if name not in self.lora:
            return _error(f"The lora adapter '{name}' cannot be found.", 404)
        del self.lora[name]
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")


def _error(message: str, status: int) -> web.Response:
    """vLLM's ErrorResponse."""
    kind = "NotFoundError" if status == 404 else "BadRequestError"
    return web.json_response(
        {"object": "error", "message": message, "type": kind, "param": None, "code": status},
        status=status,
    )


class RateLimitingProxy(_Threaded):
    """Forwards to ``upstream``, after answering the first ``limited`` chats with a 429.

    ``delay_s`` holds back every event of the upstream's streams that long: a slow server.
    """

    def __init__(
        self, upstream: str, *, limited: int = 1, retry_after: str = "1", delay_s: float = 0.0
    ) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.limited = limited
        self.retry_after = retry_after
        self.delay_s = delay_s
        self.refused_at: list[float] = []
        self.forwarded_at: list[float] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "chat/completions" and len(self.refused_at) < self.limited:
            self.refused_at.append(time.monotonic())
            return web.json_response(
                {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                status=429,
                headers={"Retry-After": self.retry_after},
            )
        if tail == "chat/completions":
            self.forwarded_at.append(time.monotonic())
        async with (
            ClientSession() as session,
            session.request(
                request.method,
                f"{self.upstream}/{tail}",
                data=await request.read(),
                headers={"Content-Type": request.headers.get("Content-Type", "")},
            ) as upstream,
        ):
            response = web.StreamResponse(
                status=upstream.status,
                headers={"Content-Type": upstream.headers.get("Content-Type", "")},
            )
            await response.prepare(request)
            async for line in upstream.content:  # line by line: one event at a time
                if self.delay_s and line.startswith(b"data:"):
                    await asyncio.sleep(self.delay_s)
                await response.write(line)
            await response.write_eof()
            return response
