"""A plugin whose attrs class validates a value with a plain `ValueError`."""

from __future__ import annotations

import attrs
import mb


def _positive(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise ValueError(f"'{attribute.name}' must be positive, got {value!r}")


@attrs.frozen
class PadAttrs:
    src: mb.File
    width: int = attrs.field(default=8, validator=_positive)


def _pad(io: mb.ActionIO) -> None:
    io.outputs[0].write_text(io.inputs[0].read_text().rjust(io.params["width"]))


@mb.rule("pad", attrs=PadAttrs)
def pad(ctx: mb.RuleContext, a: PadAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    ctx.call(_pad, inputs=[a.src], outputs=[out], params={"width": a.width})


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [pad]
