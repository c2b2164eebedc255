"""Hiding secret values in what mb shows or keeps (SPEC §3: secrets never enter an
event, a log line, a manifest or the cache).

One set of rules for both places that know secrets: the executor (an action's
`secret_env` values, the credentials of a provider URL from the environment)
and the provider client (API keys in request headers, URL credentials). What
counts as showing a secret is the same in both: the value, each long part of
it (a server may echo the key of "Bearer <key>" alone), and the forms a
program most often writes it in (URL-encoded in an echoed query string,
escaped in a JSON body), each of which decodes back at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "***"
#: Each whitespace-separated part of a secret this long is masked on its own.
PART_CHARS = 8


def masked_forms(values: Iterable[str]) -> list[str]:
    """The texts to replace for secret `values`: each non-empty value and each part of
    PART_CHARS or more, as written, URL-encoded and JSON-escaped; longest first,
    so a part never leaves pieces of a longer match."""
    forms: set[str] = set()
    for value in values:
        if not value:
            continue
        for piece in [value, *(p for p in value.split() if len(p) >= PART_CHARS)]:
            forms.update((piece, quote(piece, safe=""), quote_plus(piece),
                          json.dumps(piece)[1:-1]))
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of each of `secrets` (`masked_forms`) as `***`."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: Any, secrets: list[str]) -> Any:
    """A JSON value with `redact` applied to every string in it, keys included."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [redact_value(item, secrets) for item in value]
    if isinstance(value, dict):
        return {redact(str(k), secrets): redact_value(v, secrets) for k, v in value.items()}
    return value
