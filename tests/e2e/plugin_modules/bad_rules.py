"""A plugin whose `mb_rules` returns a name instead of an `@mb.rule` result."""

import mb


@mb.hookimpl
def mb_rules() -> list[str]:
    return ["count"]
