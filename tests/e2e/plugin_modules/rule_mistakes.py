"""A rule that makes, on purpose, one of the mistakes mb must catch in a plugin, chosen
by its `mode` attribute. Loaded with `-p rule_mistakes`."""

from __future__ import annotations

import attrs
import mb


@attrs.frozen
class MistakeAttrs:
    mode: str
    path: str = ""


@mb.rule("mistake", attrs=MistakeAttrs, version="1")
def mistake(ctx: mb.RuleContext, a: MistakeAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    if a.mode == "orphan":
        ctx.output(f"{ctx.name}.extra")  # declared, produced by no action
    limits = {"timeout": {"timeout": -1}, "retries": {"retries": -1},
              "resources": {"resources": {"gpu": -1}},
              "big_pool": {"resources": {"gpu": 2}}}.get(a.mode, {})
    inputs = [a.path] if a.path else []
    ctx.run(["cp", *inputs, out] if inputs else ["touch", out], inputs=inputs, outputs=[out],
            **limits)


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [mistake]
