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


def _leak(io: mb.ActionIO) -> None:
    secret = io.secret(io.params["var"]) or ""
    print(f"sending Authorization: Bearer {secret}", file=sys.stderr)
    io.emit("leaky.note", header=f"Bearer {secret}")
    raise mb.ActionError(f"the server answered with content type 'Bearer {secret}'")


@mb.rule("leaky", attrs=LeakyAttrs, version="1")
def leaky(ctx: mb.RuleContext, a: LeakyAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    ctx.call(_leak, outputs=[out], params={"var": a.var}, secret_env=[a.var])


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [leaky]
