"""`filegroup`: names a set of files so other targets can refer to them by one label."""

from __future__ import annotations

import attrs

import mb


@attrs.frozen
class FilegroupAttrs:
    srcs: mb.Files = mb.Files()


@mb.rule("filegroup", attrs=FilegroupAttrs, version="1")
def filegroup(ctx: mb.RuleContext, a: FilegroupAttrs) -> None:
    """A label standing for `srcs` (sources or other targets' outputs); runs nothing."""
    ctx.provide(a.srcs)


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [filegroup]
