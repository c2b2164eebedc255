"""Provider settings the environment overrides (SPEC §3: `MB_COMFY_URL`).

`mb.config` applies them to MB.toml; an incremental build applies them to the
settings the last full build kept in .mb/ without them (`build._record_fastpath`),
so that a password in an environment URL is never written down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def providers_with_environment(providers: Mapping[str, Any],
                               environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Provider settings with `MB_COMFY_URL` applied (a copy)."""
    result = {name: dict(settings) for name, settings in providers.items()}
    if environ.get("MB_COMFY_URL"):
        result.setdefault("comfy", {})["url"] = environ["MB_COMFY_URL"]
    return result


def providers_without_environment(providers: Mapping[str, Any],
                                  environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Provider settings as MB.toml gives them: what `providers_with_environment` added
    taken out again. Kept in .mb/ for the next build, which applies its own
    environment (the same values: they are part of its request), so a URL
    given with a password in the environment is not written down."""
    result = {name: dict(settings) for name, settings in providers.items()}
    url = environ.get("MB_COMFY_URL")
    if url and result.get("comfy", {}).get("url") == url:
        del result["comfy"]["url"]
    return result
