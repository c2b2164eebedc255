"""`mb.rule`: turns a function into a rule definition that a plugin returns from `mb_rules`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from mb.context import RuleContext

RuleImpl = Callable[["RuleContext", Any], None]

#: Attributes every rule accepts; the engine consumes them, the rule never sees them.
COMMON_ATTRIBUTES = ("tags", "resources", "timeout", "retries", "description")


@attrs.frozen
class RuleDef:
    """A rule: its name, typed attribute class, version and implementation.

    `plugin` and `plugin_version` are filled in by the plugin loader, so a rule
    module never has to know the distribution it ships in.
    """

    name: str
    attrs_class: type
    version: str
    impl: RuleImpl
    doc: str = ""
    plugin: str = ""
    plugin_version: str = ""


def rule(name: str, *, attrs: type, version: str = "1") -> Callable[[RuleImpl], RuleDef]:
    """Declare a rule named `name` whose attributes are the attrs class `attrs`.

    Bump `version` whenever the rule's outputs would change for the same
    inputs: it is part of every action key, so old cache entries stop matching.
    """

    def decorate(impl: RuleImpl) -> RuleDef:
        import re

        import attrs as attrs_module

        # A name goes into BUILD.toml strings, `kind(...)` queries and graph
        # output unquoted: one word, as the built-in rules are named.
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise TypeError(f"rule name {name!r} must be one word of letters, digits and _, "
                            "not starting with a digit")
        if not attrs_module.has(attrs):
            raise TypeError(f"rule {name!r}: attrs= must be an attrs class, got {attrs!r}")
        clash = [f.name for f in attrs_module.fields(attrs) if f.name in COMMON_ATTRIBUTES]
        if clash:
            raise TypeError(f"rule {name!r}: attributes {clash} are reserved for every rule")
        return RuleDef(name=name, attrs_class=attrs, version=str(version), impl=impl,
                       doc=(impl.__doc__ or "").strip())

    return decorate
