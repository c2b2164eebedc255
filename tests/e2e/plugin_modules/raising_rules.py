"""A plugin that imports fine but whose `mb_rules` hook raises (a NameError in its body)."""

import mb


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [undefined_rule]  # type: ignore[name-defined]  # noqa: F821
