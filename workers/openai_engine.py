"""Answering through a server that speaks the OpenAI chat-completions protocol.

``PARLEY_ENGINE=openai`` points Parley at Ollama, vLLM, llama.cpp's server, LM Studio or a
hosted API (docs/engines.md). :class:`OpenAIGenerator` is a :class:`core.generator.Generator`
like the in-process ones: it streams the answer through the official ``openai`` client
(async, streaming), and everything above it (one answer per accepted message, order, time
limits, moderation of the streamed text, the stored version) is unchanged.

Failures, as a person expects them::

    the server down, or 5xx    retried with backoff while the answer's time limit allows,
                               then GenerationError (the person gets the apology)
    429 Too Many Requests      waits what Retry-After says (within the time limit), retries
    the stream cut mid-way     GenerationError: what was shown stays, with the apology
    no answer in time          the text so far ends the answer (finish reason ``time``);
                               with no text at all, GenerationError
    wrong key or model name    ConfigurationError once at start (:func:`check_server`)

Usage::

    generator = OpenAIGenerator.from_settings(settings)   # checks GET /models first
    stream = generator.generate(GenerationRequest(turns=turns, max_new_tokens=128))
    async for delta in stream:
        print(delta, end="")
    print(stream.result.model_version)                     # the server's model name
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from core.errors import ConfigurationError, GenerationError
from core.generator import FinishReason, GenerationRequest, GenerationResult, TokenCounter
from core.registry import AdapterVersion
from core.streaming import Streamed
from workers.token_estimate import EstimatedTokenCounter, engine_token_counter

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from workers.vllm_lora import LoraServer

__all__ = [
    "OpenAIGenerator",
    "RetryPolicy",
    "check_server",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

NO_KEY = "not-needed"
"""Sent as the key to servers that need none: the client refuses an empty one."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between tries of a server that is down or overloaded."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 8.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        return float(min(self.max_s, self.first_s * self.factor ** (attempt - 1)))


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """What a 429's ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms`` asks."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_key(settings: Settings) -> str:
    key = settings.openai.api_key
    return key.get_secret_value() if key is not None and key.get_secret_value() else NO_KEY


def check_server(settings: Settings, *, timeout_s: float = 10.0) -> str:
    """The model to ask for, checked against the server's ``GET /models``.

    Raises :class:`ConfigurationError` once, at start, for what no retry mends: a server
    that cannot be reached, a key it refuses, or a model name it does not serve.
    """
    import openai

    url = settings.openai.base_url
    client = openai.OpenAI(
        base_url=url, api_key=_api_key(settings), max_retries=2, timeout=timeout_s
    )
    try:
        served = [model.id for model in client.models.list()]
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise ConfigurationError(
            f"The model server at {url} refused PARLEY_OPENAI_API_KEY "
            f"(HTTP {exc.status_code}): set the key it expects."
        ) from exc
    except openai.NotFoundError as exc:
        raise ConfigurationError(
            f"{url} has no /models: PARLEY_OPENAI_BASE_URL must be the API root of an "
            "OpenAI-compatible server, usually ending in /v1."
        ) from exc
    except openai.APIConnectionError as exc:
        raise ConfigurationError(
            f"Cannot reach the model server at PARLEY_OPENAI_BASE_URL={url} ({exc}): start "
            "it or fix the URL."
        ) from exc
    except openai.APIStatusError as exc:
        raise ConfigurationError(
            f"The model server at {url} answered GET /models with HTTP {exc.status_code}: "
            f"{exc.message}"
        ) from exc
    finally:
        client.close()
    wanted = settings.openai.model
    if wanted is None:
        if len(served) == 1:
            return served[0]
        raise ConfigurationError(
            f"Set PARLEY_OPENAI_MODEL to one of the models {url} serves: "
            f"{', '.join(served) or '(none)'}."
        )
    if wanted not in served:
        raise ConfigurationError(
            f"The model server at {url} does not serve PARLEY_OPENAI_MODEL={wanted!r}; it "
            f"serves: {', '.join(served[:20]) or '(none)'}."
        )
    return wanted


class OpenAIGenerator:
    """Streams answers from an OpenAI-compatible server; many at once, as it allows."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        *,
        tokens: TokenCounter | None = None,
        lora: LoraServer | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Answer with ``model`` on ``settings.openai.base_url`` (use :meth:`from_settings`
        to check the server first)."""
        self._settings = settings
        self._base_model = model
        self._model = model
        self.tokens: TokenCounter = tokens if tokens is not None else EstimatedTokenCounter()
        self._lora = lora
        self._retry = retry or RetryPolicy()
        self._clients: dict[asyncio.AbstractEventLoop, AsyncOpenAI] = {}
        self._usage_in_stream = True
        self._switch_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIGenerator:
        """Check the server and the model name, then build the generator."""
        model = check_server(settings)
        lora = None
        if settings.openai.lora:
            from workers.vllm_lora import LoraServer

            lora = LoraServer.from_settings(settings)
        generator = cls(settings, model, tokens=engine_token_counter(settings), lora=lora)
        log.info("Answering with %s at %s", model, settings.openai.base_url)
        return generator

    @property
    def model_version(self) -> str:
        return self._model

    @property
    def base_model(self) -> str:
        """The model the server serves without a fine-tuned version."""
        return self._base_model

    def generate(self, request: GenerationRequest) -> Streamed[GenerationResult]:
        return Streamed(self._stream(request))

    def use_version(self, version: AdapterVersion | None) -> None:
        """Name ``version`` as the model from the next answer on, once the server has it.

        With ``PARLEY_OPENAI_LORA`` the version is loaded into vLLM first (and the one
        before unloaded); a server that cannot load it keeps serving the model it had.
        """
        with self._switch_lock:
            wanted = version.id if version is not None else self._base_model
            if wanted == self._model:
                return
            if self._lora is None:
                if version is not None:
                    log.warning(
                        "Cannot serve %s: the server at %s does not load LoRA adapters "
                        "(PARLEY_OPENAI_LORA is off); answering with %s",
                        version.id,
                        self._settings.openai.base_url,
                        self._model,
                    )
                return
            from workers.vllm_lora import LoraError

            previous = self._model if self._model != self._base_model else None
            try:
                if version is not None:
                    self._lora.load(version.id, version.path)
            except LoraError:
                log.exception("loading %s into the server failed; serving %s", wanted, self._model)
                return
            self._model = wanted
            log.info("Answering with %s", wanted)
            if previous is not None:
                try:
                    self._lora.unload(previous)
                except LoraError:
                    log.warning("unloading %s from the server failed", previous, exc_info=True)

    def close(self) -> None:
        """Forget the clients (their connections close with them)."""
        self._clients.clear()

    def _client(self) -> AsyncOpenAI:
        """One client per event loop: its connection pool belongs to the loop."""
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for other in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[other]
            client = AsyncOpenAI(
                base_url=self._settings.openai.base_url,
                api_key=_api_key(self._settings),
                max_retries=0,  # retries are ours: they must fit the answer's time limit
                timeout=self._settings.generation.answer_time_limit_s,
            )
            self._clients[loop] = client
        return client

    def _arguments(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        settings = self._settings
        arguments: dict[str, Any] = {
            "model": model,
            "messages": [t.as_dict() for t in request.turns],
            "max_tokens": request.max_new_tokens,
            "temperature": settings.generation.temperature,
            "stream": True,
        }
        if settings.generation.temperature > 0:
            arguments["top_p"] = settings.generation.top_p
        if settings.generation.seed is not None:
            arguments["seed"] = settings.generation.seed
        if self._usage_in_stream:
            arguments["stream_options"] = {"include_usage": True}
        # No X-Request-Id header: llama-cpp-python's server refuses one that is not a UUID.
        return arguments

    async def _open(self, request: GenerationRequest, model: str, deadline: float) -> Any:
        """The server's stream, after as many tries as the time limit allows."""
        import openai

        loop = asyncio.get_running_loop()
        client = self._client()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout_at(deadline):
                    return await client.chat.completions.create(**self._arguments(request, model))
            except TimeoutError as exc:
                raise GenerationError(
                    f"The model server sent nothing within {self._time_limit:g} s."
                ) from exc
            except openai.RateLimitError as exc:
                wait = retry_after_seconds(exc.response.headers)
                what = "is rate limited (429)"
                if wait is None:
                    wait = self._retry.backoff(attempt)
            except (openai.InternalServerError, openai.APIConnectionError) as exc:
                wait = self._retry.backoff(attempt)
                what = _failure(exc)
            except openai.NotFoundError as exc:
                if model == self._base_model:
                    raise GenerationError(
                        f"The model server no longer serves {model}: {exc.message}"
                    ) from exc
                # A version another worker has just unloaded (a rollback it saw first): the
                # base model answers until this worker's watcher catches up.
                log.warning(
                    "the server does not serve %s; answering with %s", model, self._base_model
                )
                model = self._base_model
                continue
            except openai.APIStatusError as exc:
                said = exc.body if exc.body is not None else exc.response.text[:500]
                if self._usage_in_stream and "stream_options" in str(said):
                    # Some servers refuse stream_options; the usage is counted here then.
                    log.info("the server refused stream_options (%s); retrying without", said)
                    self._usage_in_stream = False
                    continue
                raise GenerationError(
                    f"The model server refused the request (HTTP {exc.status_code}): {said}"
                ) from exc
            if loop.time() + wait >= deadline:
                raise GenerationError(
                    f"The model server {what}; gave up after {attempt} tries within the "
                    f"{self._time_limit:g} s time limit."
                )
            log.warning("the model server %s; try %d again in %.1f s", what, attempt + 1, wait)
            await asyncio.sleep(wait)

    @property
    def _time_limit(self) -> float:
        return self._settings.generation.answer_time_limit_s

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        deadline = loop.time() + self._time_limit
        model = self._model
        stream = await self._open(request, model, deadline)
        parts: list[str] = []
        first_token: float | None = None
        finish: str | None = None
        usage: Any = None
        served = model
        try:
            source = stream.__aiter__()
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(source)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    finish = FinishReason.TIME
                    if not parts:
                        raise GenerationError(
                            f"The model server sent no answer within {self._time_limit:g} s."
                        ) from None
                    break
                served = chunk.model or served
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    delta = choice.delta.content if choice.delta is not None else None
                    if delta:
                        if first_token is None:
                            first_token = time.perf_counter() - started
                        parts.append(delta)
                        yield delta
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except GenerationError:
            raise
        except Exception as exc:  # the transport's errors (httpx or httpx2) or the API's
            raise GenerationError(f"The model server's answer broke off: {_failure(exc)}") from exc
        finally:
            await stream.close()
        if finish is None:
            raise GenerationError("The model server's answer broke off before its end.")
        text = "".join(parts)
        if usage is not None and getattr(usage, "prompt_tokens", None):
            prompt_tokens = int(usage.prompt_tokens)
            completion_tokens = int(usage.completion_tokens or 0)
            observe = getattr(self.tokens, "observe", None)
            if observe is not None:
                observe(request.turns, prompt_tokens)
        else:
            prompt_tokens = self.tokens.count_chat(request.turns, add_generation_prompt=True)
            completion_tokens = self.tokens.count_text(text)
        reason = {
            "stop": FinishReason.STOP,
            "length": FinishReason.LENGTH,
            FinishReason.TIME: FinishReason.TIME,
        }.get(finish, FinishReason.STOP)
        yield GenerationResult(
            text=text.strip(),
            model_version=served,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=reason,
            seconds=time.perf_counter() - started,
            first_token_seconds=first_token,
        )


def _failure(exc: BaseException) -> str:
    """A short account of a transport or server failure, for logs and errors."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"answered HTTP {status}"
    cause = exc.__cause__ or exc
    return f"could not be reached ({type(cause).__name__}: {cause})"
