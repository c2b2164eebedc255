"""mb: a build system for generative-media pipelines.

This module is the stable plugin API of SPEC §10 and nothing else. The names
are imported on first use (PEP 562), so that `python -m mb` on a no-op build
does not pay for attrs, pluggy and cattrs before it knows it needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mb.actionio import ActionIO
    from mb.attributes import File, Files
    from mb.context import RuleContext
    from mb.errors import ActionError, RuleError
    from mb.hookspecs import hookimpl
    from mb.labels import Label
    from mb.placeholders import PlaceholderRequest
    from mb.ruledef import rule

_PUBLIC = {
    "ActionError": "mb.errors",
    "ActionIO": "mb.actionio",
    "File": "mb.attributes",
    "Files": "mb.attributes",
    "Label": "mb.labels",
    "PlaceholderRequest": "mb.placeholders",
    "RuleContext": "mb.context",
    "RuleError": "mb.errors",
    "hookimpl": "mb.hookspecs",
    "rule": "mb.ruledef",
}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
