"""A plugin whose action reports what it cost at its (pretend) provider."""

from __future__ import annotations

import attrs
import mb


@attrs.frozen
class CostlyAttrs:
    price: float


def _bill(io: mb.ActionIO) -> None:
    io.outputs[0].write_text(f"{io.params['price']}\n")
    io.report_cost(io.params["price"])
    io.emit("provider.response", provider="pretend", status=200, duration_s=0.0)


@mb.rule("costly", attrs=CostlyAttrs)
def costly(ctx: mb.RuleContext, a: CostlyAttrs) -> None:
    ctx.call(_bill, outputs=[ctx.output(f"{ctx.name}.txt")], params={"price": a.price})


@mb.hookimpl
def mb_rules() -> list[object]:
    return [costly]
