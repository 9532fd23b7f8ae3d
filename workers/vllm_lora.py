"""Serving the nightly versions on vLLM: its runtime LoRA API.

A vLLM server started with ``--enable-lora`` (and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``
in its environment) loads a LoRA adapter while it runs::

    POST {base}/load_lora_adapter    {"lora_name": "ft-20261129-031502", "lora_path": "/srv/..."}
    POST {base}/unload_lora_adapter  {"lora_name": "ft-20261129-031502"}

and then serves it under that name: a chat completion that names the version as its
``model`` is answered with the adapter. :class:`LoraServer` makes those two calls;
:class:`workers.openai_engine.OpenAIGenerator` uses it when the registry promotes a version
or rolls one back. The path is read by the *vLLM server*: the trainer's output folder
(``PARLEY_ADAPTERS_DIR``) must be readable there under the same path (docs/engines.md).

:func:`promotion_blocker` says why a version cannot be served by the configured engine, for
the nightly run to record instead of promoting it.
"""

from __future__ import annotations

import logging
from typing import Any

from config.settings import Settings
from core.errors import ParleyError
from core.registry import AdapterVersion

__all__ = ["LoraError", "LoraServer", "promotion_blocker"]

log = logging.getLogger(__name__)


class LoraError(ParleyError):
    """The server did not load (or unload) an adapter; the message says why."""


class LoraServer:
    """The LoRA adapters loaded into one vLLM server."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 120.0
    ) -> None:
        """``base_url`` is the OpenAI API root (``http://host:8000/v1``)."""
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> LoraServer:
        """The server of ``PARLEY_OPENAI_BASE_URL``, with its key."""
        assert settings.openai.base_url is not None
        key = settings.openai.api_key
        return cls(settings.openai.base_url, api_key=key.get_secret_value() if key else None)

    def load(self, name: str, path: str) -> None:
        """Load the PEFT folder ``path`` as model ``name``; one loaded already is fine."""
        response = self._post("load_lora_adapter", {"lora_name": name, "lora_path": path})
        if response.status_code == 200:
            log.info("The model server loaded %s from %s", name, path)
            return
        message = _message(response)
        if response.status_code == 400 and "already been loaded" in message:
            return
        if response.status_code == 404 and "No adapter found" not in message:
            raise LoraError(
                f"The model server at {self._base} has no runtime LoRA API (HTTP 404): start "
                "vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True."
            )
        raise LoraError(
            f"The model server could not load {name} from {path} "
            f"(HTTP {response.status_code}): {message}"
        )

    def unload(self, name: str) -> None:
        """Unload the adapter ``name``; one that is not loaded is fine."""
        response = self._post("unload_lora_adapter", {"lora_name": name})
        if response.status_code == 200 or (
            response.status_code == 404 and "cannot be found" in _message(response)
        ):
            log.info("The model server unloaded %s", name)
            return
        raise LoraError(
            f"The model server could not unload {name} (HTTP {response.status_code}): "
            f"{_message(response)}"
        )

    def _post(self, route: str, body: dict[str, str]) -> Any:
        import httpx

        try:
            return httpx.post(
                f"{self._base}/{route}", json=body, headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise LoraError(f"The model server at {self._base} is unreachable: {exc}") from exc


def _message(response: Any) -> str:
    """The error message of a vLLM error response (JSON), or its text."""
    try:
        body = response.json()
    except ValueError:
        return str(response.text).strip()
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or body)
        return str(body.get("message") or body.get("detail") or body)
    return str(body)


def promotion_blocker(settings: Settings, version: AdapterVersion) -> str | None:
    """Why the configured engine cannot serve ``version`` (``None``: it can).

    The in-process engine serves any adapter the trainer wrote. With ``PARLEY_ENGINE=openai``
    a version is servable only by vLLM with runtime LoRA: it is loaded into the server here,
    which also proves the server can read the trainer's output folder, so that workers only
    name it as their model once the registry promotes it.
    """
    if settings.llm.engine != "openai":
        return None
    if not settings.openai.lora:
        return (
            f"the model server at {settings.openai.base_url} does not load fine-tuned "
            "versions (PARLEY_OPENAI_LORA is off; it needs vLLM with --enable-lora), so "
            "answers stay with the base model"
        )
    try:
        LoraServer.from_settings(settings).load(version.id, version.path)
    except LoraError as exc:
        return f"the model server cannot serve it: {exc}"
    return None
