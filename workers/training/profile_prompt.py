"""The prompts of the profile-following data set: built by Parley's own prompt builder."""

from __future__ import annotations

from config.settings import Settings
from core.context import ContextBuilder
from core.generator import TokenCounter
from core.prompt_guard import PromptGuard
from core.responder import UPSET_GUIDANCE
from core.types import UserProfile

__all__ = ["make_builder", "prompt_for"]


def make_builder(settings: Settings, tokens: TokenCounter, canary: str | None) -> ContextBuilder:
    """The prompt builder as the conversation service makes it from ``settings``.

    ``canary``: the guard's marker (random per process in serving; varied per row here),
    or ``None`` when the settings turn the canary off.
    """
    instructions = (
        PromptGuard(canary).instructions(settings.conversation.system_prompt)
        if settings.safety.canary and canary is not None
        else settings.conversation.system_prompt
    )
    return ContextBuilder(
        tokens,
        instructions,
        settings.prompt_budget,
        settings.conversation.assistant_name,
        profile_budget=settings.conversation.profile_tokens,
    )


def prompt_for(
    settings: Settings,
    tokens: TokenCounter,
    profile: UserProfile,
    message: str,
    *,
    upset: bool = False,
    canary: str | None = None,
) -> list[dict[str, str]]:
    """The chat turns Parley would send for ``message`` from a person with ``profile``."""
    builder = make_builder(settings, tokens, canary)
    report = builder.build(
        history=(),
        text=message,
        speaker=None,
        profile=profile,
        guidance=(UPSET_GUIDANCE,) if upset else (),
    )
    return [turn.as_dict() for turn in report.turns]
