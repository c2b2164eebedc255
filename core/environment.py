"""Provider settings the environment overrides (SPEC §3: `MB_COMFY_URL`).

`mb.config` applies them to MB.toml; an incremental build applies them to the
settings the last full build kept in .mb/ without them (`build._record_fastpath`),
so that a password in an environment URL is never written down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The variables `providers_with_environment` reads. A Python action's worker gets
#: them in its environment rather than in its spec file (`Executor._worker_argv`),
#: so a password in one is never written to disk.
ENVIRONMENT_SETTINGS = ("MB_COMFY_URL",)


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


def environment_url_secrets(environ: Mapping[str, str]) -> list[str]:
    """The credentials in the URLs of `ENVIRONMENT_SETTINGS` (`http://user:pw@host`),
    as `userinfo_secrets` gives them. Messages of the actions that receive the URL
    hide them (`executor.secret_values`)."""
    found: list[str] = []
    for name in ENVIRONMENT_SETTINGS:
        # By hand, not urlsplit: a '#' or '?' in a password, or a forgotten scheme,
        # must not hide the credentials from the mask.
        authority = environ.get(name, "").split("://", 1)[-1].split("/", 1)[0]
        userinfo = authority.rpartition("@")[0]
        if userinfo:
            found.extend(userinfo_secrets(userinfo))
    return list(dict.fromkeys(found))


def userinfo_secrets(userinfo: str) -> list[str]:
    """What to mask for a URL's `user:password`: the password, else the user name (a
    token), as written and decoded, and the base64 pair HTTP Basic auth sends.

    A credential of a few characters is left out: it would mask every such run
    of letters in every message, and protects nothing anyway.
    """
    from urllib.parse import unquote

    user, _, password = userinfo.partition(":")
    secret = password or user
    found = [secret, unquote(secret)] if secret else []
    return ([s for s in dict.fromkeys(found) if len(s) >= MIN_MASKED_CHARS]
            + [basic_credentials(userinfo)])


def basic_credentials(userinfo: str) -> str:
    """A URL's `user:password` as HTTP Basic auth sends it: base64 of the decoded pair."""
    import base64
    from urllib.parse import unquote

    user, _, password = userinfo.partition(":")
    return base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()


#: The shortest credential from a URL that messages hide (`userinfo_secrets`).
MIN_MASKED_CHARS = 4
