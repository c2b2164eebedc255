"""A plugin answering `mb_placeholder` for text files and declining everything else."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mb

if TYPE_CHECKING:  # not exported from `mb` yet
    from mb.placeholders import PlaceholderRequest


@mb.hookimpl
def mb_placeholder(request: PlaceholderRequest) -> bytes | None:
    if not request.path.endswith(".txt"):
        return None  # mb's own generators answer for other types
    return f"[draft of {request.path} for {request.consumer}]\n".encode()
