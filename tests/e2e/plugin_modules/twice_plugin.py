"""A plugin that lives in a workspace and is loaded with `-p twice_plugin`: doubles a text file."""

from __future__ import annotations

import attrs
import mb

__version__ = "0.3.0"


@attrs.frozen
class TwiceAttrs:
    src: mb.File


def _twice(io: mb.ActionIO) -> None:
    text = io.inputs[0].read_text()
    io.outputs[0].write_text(text + text)


@mb.rule("twice", attrs=TwiceAttrs, version="1")
def twice(ctx: mb.RuleContext, a: TwiceAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    ctx.call(_twice, inputs=[a.src], outputs=[out])


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [twice]
