"""A one-rule plugin; two copies of it (or a renamed copy) make a rule-name clash."""

import attrs
import mb


@attrs.frozen
class A:
    src: mb.File


@mb.rule("echo", attrs=A)
def impl(ctx: mb.RuleContext, a: A) -> None:
    ctx.call(_empty, inputs=[a.src], outputs=[ctx.output(ctx.name)])


def _empty(io: mb.ActionIO) -> None:
    io.outputs[0].write_bytes(b"")


@mb.hookimpl
def mb_rules():
    return [impl]
