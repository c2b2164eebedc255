"""Python actions that use `io.state_dir` and that fail in the ways a plugin's actions fail."""

from __future__ import annotations

import sys

import attrs
import mb


@attrs.frozen
class NoAttrs:
    pass


class QuotaExceeded(Exception):
    """A plugin's own exception type, raised from an action."""


def _count_runs(io: mb.ActionIO) -> None:
    assert io.state_dir is not None
    counter = io.state_dir / "runs.txt"  # a fresh workspace has no .mb/providers/ yet
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    io.outputs[0].write_text(f"{runs}\n")


def _transient(io: mb.ActionIO) -> None:
    print("contacting the server", file=sys.stderr)
    raise mb.ActionError("transient failure 1")


def _rejected(io: mb.ActionIO) -> None:
    raise mb.ActionError("the server refused the workflow (HTTP 400)", retryable=False)


def _crash(io: mb.ActionIO) -> None:
    raise ValueError("bad value 7")


def _quota(io: mb.ActionIO) -> None:
    raise QuotaExceeded("monthly quota used up\nsee the provider's dashboard")


def _declare(fn):  # type: ignore[no-untyped-def]
    def impl(ctx: mb.RuleContext, a: NoAttrs) -> None:
        ctx.call(fn, outputs=[ctx.output(f"{ctx.name}.txt")], retries=1)

    return impl


count_runs = mb.rule("count_runs", attrs=NoAttrs)(_declare(_count_runs))
transient = mb.rule("transient", attrs=NoAttrs)(_declare(_transient))
rejected = mb.rule("rejected", attrs=NoAttrs)(_declare(_rejected))
crash = mb.rule("crash", attrs=NoAttrs)(_declare(_crash))
quota = mb.rule("quota", attrs=NoAttrs)(_declare(_quota))


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [count_runs, transient, rejected, crash, quota]
