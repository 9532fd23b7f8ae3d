"""The settings of an OpenAI-compatible model server that answers instead of the local model.

Ollama, vLLM, llama.cpp's server, LM Studio or a hosted API: see ``docs/engines.md``. They
apply with ``PARLEY_ENGINE=openai`` (:class:`config.groups.LlmSettings`).
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from config.group import Group

__all__ = ["OpenAISettings"]


class OpenAISettings(Group):
    """An OpenAI-compatible server that answers instead of the local model."""

    base_url: str | None = Field(
        default=None,
        validation_alias="openai_base_url",
        description="The server's API root, e.g. http://127.0.0.1:8080/v1 (llama.cpp), "
        "http://127.0.0.1:11434/v1 (Ollama), http://gpu-host:8000/v1 (vLLM).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias="openai_api_key",
        description="The server's API key; empty for local servers without one.",
    )
    model: str | None = Field(
        default=None,
        validation_alias="openai_model",
        description="The model name the server serves (its GET /models); empty: the only one.",
    )
    context_tokens: int | None = Field(
        default=None,
        ge=128,
        validation_alias="openai_context_tokens",
        description="The served model's context size in tokens; empty: PARLEY_CONTEXT_TOKENS. "
        "The prompt gets this minus PARLEY_MAX_NEW_TOKENS.",
    )
    tokenizer: str | None = Field(
        default=None,
        validation_alias="openai_tokenizer",
        description="A local tokenizer of the served model to price prompts (same forms as "
        "PARLEY_MODEL, e.g. 'packaged:smollm2-135m-instruct'); empty: a conservative "
        "estimate corrected by the token counts the server reports.",
    )
    lora: bool = Field(
        default=False,
        validation_alias="openai_lora",
        description="The server is vLLM started with --enable-lora: promoted fine-tuned "
        "versions are loaded into it at run time and answers name them as the model.",
    )
