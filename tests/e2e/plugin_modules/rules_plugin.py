"""A plugin returning two rules from `mb_rules`: one Python action, one command action."""

from __future__ import annotations

import attrs
import mb


@attrs.frozen
class CountAttrs:
    src: mb.File
    unit: str = "lines"


@attrs.frozen
class RepeatAttrs:
    src: mb.File
    times: int = 2


def _count(io: mb.ActionIO) -> None:
    text = io.inputs[0].read_text()
    n = len(text.splitlines()) if io.params["unit"] == "lines" else len(text)
    io.outputs[0].write_text(f"{n} {io.params['unit']}\n")


@mb.rule("count", attrs=CountAttrs, version="2")
def count(ctx: mb.RuleContext, a: CountAttrs) -> None:
    """Count the lines or characters of a file."""
    out = ctx.output(f"{ctx.name}.txt")
    ctx.call(_count, inputs=[a.src], outputs=[out], params={"unit": a.unit})


@mb.rule("repeat", attrs=RepeatAttrs)
def repeat(ctx: mb.RuleContext, a: RepeatAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    bash = ctx.tool("bash")
    script = f'for i in $(seq {a.times}); do cat "$1"; done > "$2"'
    ctx.run([bash, "-c", script, "repeat", a.src, out], inputs=[a.src], outputs=[out],
            tools=[bash])


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [count, repeat]
