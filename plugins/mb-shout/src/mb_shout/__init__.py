"""mb-shout: the worked example of a third-party mb plugin (SPEC §10).

Two rules, one of each action kind:

- `shout` upper-cases a text file and appends a suffix with a Python action
  (`ctx.call`), exactly as in SPEC §10;
- `shout_sort` sorts the lines of a text file with the system's `sort`
  binary, a command action (`ctx.run`) with a tool whose digest is part of
  the action key, so a different `sort` on another machine is a different
  action.

The module imports only the public API (`mb`) and attrs, and it is found by
mb through the `mb` entry point in this package's pyproject.toml.
"""

from __future__ import annotations

from typing import Final

import attrs
import mb

__version__: Final = "0.1.0"


@attrs.frozen
class ShoutAttrs:
    src: mb.File
    suffix: str = "!"


def _shout(io: mb.ActionIO) -> None:
    """Runs in the sandbox's worker process and sees only the declared input."""
    text = io.inputs[0].read_text()
    io.outputs[0].write_text(text.upper() + io.params["suffix"])


@mb.rule("shout", attrs=ShoutAttrs, version="1")
def shout(ctx: mb.RuleContext, a: ShoutAttrs) -> None:
    """Upper-case a text file and append `suffix` (writes `<name>.txt`)."""
    out = ctx.output(f"{ctx.name}.txt")
    ctx.call(_shout, inputs=[a.src], outputs=[out], params={"suffix": a.suffix})


@attrs.frozen
class ShoutSortAttrs:
    src: mb.File
    reverse: bool = False
    unique: bool = False


@mb.rule("shout_sort", attrs=ShoutSortAttrs, version="1")
def shout_sort(ctx: mb.RuleContext, a: ShoutSortAttrs) -> None:
    """Sort the lines of a text file with the system's `sort` (writes `<name>.txt`).

    `LC_ALL=C` makes the order byte-wise, so the output does not depend on
    the locale of whoever builds it.
    """
    out = ctx.output(f"{ctx.name}.txt")
    sort = ctx.tool("sort")
    flags = [*(["-r"] if a.reverse else []), *(["-u"] if a.unique else [])]
    ctx.run([sort, *flags, "-o", out, a.src], inputs=[a.src], outputs=[out], tools=[sort],
            env={"LC_ALL": "C"}, description=f"sort {ctx.path(a.src)}")


@mb.hookimpl
def mb_rules() -> list[object]:  # what `mb.rule` made (its type is not public API)
    return [shout, shout_sort]
