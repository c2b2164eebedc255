"""A plugin whose Python action reads `[providers.comfy] url` (which `MB_COMFY_URL`
overrides), says the password out loud on stderr and in an event, and fails when
asked to. Loaded with `-p url_reader`."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import attrs
import mb


@attrs.frozen
class UrlReaderAttrs:
    fail: bool = False


def _read_url(io: mb.ActionIO) -> None:
    url = io.provider("comfy").get("url", "")
    password = urlsplit(url).password or ""
    print(f"connecting with password {password}", file=sys.stderr)
    io.emit("reader." + password, level="loud", note=f"pw={password}")
    if io.params["fail"]:
        raise mb.ActionError(f"the server refused password {password}")
    # What the action saw, without the credentials: the host it would connect to.
    io.outputs[0].write_text(f"host={urlsplit(url).hostname} has_password={bool(password)}\n")


@mb.rule("url_reader", attrs=UrlReaderAttrs, version="1")
def url_reader(ctx: mb.RuleContext, a: UrlReaderAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    ctx.call(_read_url, outputs=[out], params={"fail": a.fail})


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [url_reader]
