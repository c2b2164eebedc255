"""A plugin whose Python action fails saying its secret (as a server echoing the
Authorization header would make it): mb must hide the secret wherever it shows the
failure. Loaded with `-p leaky_secret`."""

from __future__ import annotations

import sys

import attrs
import mb


@attrs.frozen
class LeakyAttrs:
    var: str
    fail: bool = True


def _leak(io: mb.ActionIO) -> None:
    secret = io.secret(io.params["var"]) or ""
    print(f"sending Authorization: Bearer {secret}", file=sys.stderr)
    io.emit("leaky.note", header=f"Bearer {secret}",
            request={"headers": {"Authorization": f"Bearer {secret}"}, "args": ["--key", secret]})
    if io.params["fail"]:
        raise mb.ActionError(f"the server answered with content type 'Bearer {secret}'")
    io.set_metadata("echoed", {"authorization": [f"Bearer {secret}"]})
    io.set_metadata(f"key-{secret}", 1)
    io.outputs[0].write_text("done\n")


@mb.rule("leaky", attrs=LeakyAttrs, version="1")
def leaky(ctx: mb.RuleContext, a: LeakyAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    ctx.call(_leak, outputs=[out], params={"var": a.var, "fail": a.fail}, secret_env=[a.var])


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [leaky]
