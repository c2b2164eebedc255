"""A plugin with a misspelt hook name (`mb_rule`), which mb must refuse, not ignore."""

import mb


@mb.hookimpl
def mb_rule() -> list[object]:
    return []
