"""How a value from a TOML file is shown in an error message: as the user wrote it.

Messages quote the user's own values, so they are written in TOML's
spelling (`true`, `["a", "b"]`, `{ gpu = 1 }`), not Python's (`True`,
`['a', 'b']`). Imported by the no-op fast path's error messages too, so it
imports nothing.
"""

from __future__ import annotations

import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KINDS = {bool: "the boolean", int: "the integer", float: "the number", str: "the string",
          list: "the list", dict: "the table"}


def toml_repr(value: Any) -> str:
    """`true`, `"a\\"b"`, `[1, 2]`, `{ a = 1 }`: a value as TOML text (inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ", ".join(f"{_key(k)} = {toml_repr(v)}" for k, v in value.items())
        return "{ " + items + " }"
    if _is_date_or_time(value):
        return str(value.isoformat())
    return repr(value)


def describe(value: Any) -> str:
    """`the integer 3`, `the string "3"`: names the TOML type the user wrote, and the value."""
    kind = _KINDS.get(type(value))
    if kind is None and _is_date_or_time(value):
        kind = {"datetime": "the date-time", "date": "the date"}.get(
            type(value).__name__, "the time")
    return f"{kind} {toml_repr(value)}" if kind else toml_repr(value)


def _is_date_or_time(value: Any) -> bool:
    """A TOML date, time or date-time (checked without importing `datetime`)."""
    return type(value).__module__ == "datetime" and hasattr(value, "isoformat")


def _key(key: Any) -> str:
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else toml_repr(text)
