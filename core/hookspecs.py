"""The hook contract between mb and its plugins (built-in rules are plugins too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mb.placeholders import PlaceholderRequest
    from mb.ruledef import RuleDef

hookspec = pluggy.HookspecMarker("mb")
hookimpl = pluggy.HookimplMarker("mb")

# --- registration -----------------------------------------------------------


@hookspec
def mb_rules() -> Sequence[RuleDef]:
    """Return the rules this plugin provides.

    Called once per run, after every plugin has been imported. Every result is
    collected; two plugins defining the same rule name is a user error that
    names both plugins.
    """
    raise NotImplementedError  # a specification: plugins implement it


# --- placeholders -----------------------------------------------------------


@hookspec(firstresult=True)
def mb_placeholder(request: PlaceholderRequest) -> bytes | None:
    """Return the bytes of a placeholder for a missing or failed file, or None.

    Called (in `mb watch` and `mb build --placeholders`) when an input of an
    action does not exist: a missing source or an output of a target that
    failed or cannot run yet. The first plugin returning bytes wins, so a rule
    plugin can synthesize placeholders for its own file types; mb's built-in
    generators (images, audio, video, text) answer last.
    """
    raise NotImplementedError  # a specification: plugins implement it
