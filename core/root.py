"""Finding the workspace root: the nearest directory at or above the start holding MB.toml.

Kept apart from `workspace.py` (which reads MB.toml through the strict
converter) because the no-op fast path needs the root without importing that.
"""

from __future__ import annotations

import os

from mb.errors import ConfigError


def find_root(start: str) -> str:
    """Walk up from `start` to the directory holding MB.toml."""
    current = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(current, "MB.toml")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            raise ConfigError(
                f"no MB.toml found in {os.path.abspath(start)} or any parent directory; "
                "create an (empty) MB.toml at the workspace root, or use -C DIR")
        current = parent


def cwd_package_of(root: str, start: str) -> str:
    """The package path of the start directory (what `:name` labels are relative to)."""
    rel = os.path.relpath(os.path.abspath(start), root).replace(os.sep, "/")
    return "" if rel == "." else rel
