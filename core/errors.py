"""Parley's one error hierarchy, caught at the edges.

::

    ParleyError                 anything Parley raises on purpose
    ├── ConfigurationError      a setting is missing or wrong; names the setting to fix
    ├── ModelError              the language model
    │   ├── ModelLoadError      it cannot be found or loaded
    │   └── GenerationError     it failed while answering
    └── StoreError              the database cannot be reached or written

Every ``ParleyError`` carries a message written for the person who has to act on it:
adapters show it to the user or operator as it is and log the trace.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "GenerationError",
    "ModelError",
    "ModelLoadError",
    "ParleyError",
    "StoreError",
]


class ParleyError(Exception):
    """Base class of every error Parley raises on purpose."""


class ConfigurationError(ParleyError):
    """A setting is missing or wrong."""


class ModelError(ParleyError):
    """The language model failed."""


class ModelLoadError(ModelError):
    """The language model cannot be found or loaded."""


class GenerationError(ModelError):
    """The language model failed while answering."""


class StoreError(ParleyError):
    """The database cannot be reached or written."""
