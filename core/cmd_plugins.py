"""`mb rules` and `mb plugins`: what is installed, with versions and attributes."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

import mb
from mb.attributes import File, Files
from mb.errors import UserError
from mb.labels import Label
from mb.plugins import load_plugins
from mb.ruledef import COMMON_ATTRIBUTES, RuleDef


def _type_text(annotation: object) -> str:
    """An attribute's type as a plugin author writes it (docs/plugins.md): `mb.File`,
    `list[str]`, `mb.Label | None`.

    `mb rules` is read by people writing attrs classes, so the names are the
    stable `mb.*` ones, never the module a class lives in (`mb.labels.Label`),
    and item types are kept (`list` alone says nothing about what goes in it).
    An annotation left as a string (unresolvable) is shown as it was written.
    """
    if isinstance(annotation, str):
        return annotation
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if annotation is Any:
        return "Any"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(arg) for arg in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None and args:
        return f"{_type_text(origin)}[{', '.join(_type_text(arg) for arg in args)}]"
    if isinstance(annotation, type):
        return _class_name(annotation)
    return str(annotation).replace("typing.", "")


def _class_name(cls: type) -> str:
    """`mb.File` for a class of the plugin API (whatever module defines it), else its name."""
    if cls.__module__.startswith("mb.") and getattr(mb, cls.__name__, None) is cls:
        return f"mb.{cls.__name__}"
    return cls.__name__


def _resolved_fields(cls: type) -> tuple[attrs.Attribute, ...]:  # type: ignore[type-arg]
    """The attrs fields of `cls`, with string annotations (`from __future__ import
    annotations`) turned into types where they can be, so every rule's types are
    shown the same way whichever way its module was written."""
    with contextlib.suppress(Exception):  # a plugin's annotation that does not evaluate
        attrs.resolve_types(cls)
    return attrs.fields(cls)  # type: ignore[arg-type]


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value: object) -> str:
    """`value` as a BUILD.toml author would write it: `[]`, `{}`, `""`, `true`, `"in.txt"`.

    `mb rules` shows defaults to people who write TOML, not Python: a repr
    such as `Files(items=())` or `'!'` or `False` is not what they would type.
    Anything without a TOML spelling falls back to its repr.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | File | Label):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, Files | list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return "[" + ", ".join(toml_value(item) for item in items) + "]"
    if isinstance(value, Mapping):
        return _inline_table(value)
    if attrs.has(type(value)):
        return _inline_table({f.name: getattr(value, f.name)
                              for f in attrs.fields(type(value))})  # type: ignore[arg-type]
    return repr(value)


def _inline_table(table: Mapping[Any, object]) -> str:
    if not table:
        return "{}"
    items = (f"{k if _BARE_KEY.fullmatch(str(k)) else json.dumps(str(k))} = {toml_value(v)}"
             for k, v in table.items() if v is not None)  # TOML has no null: leave it out
    return "{ " + ", ".join(items) + " }"


def _default_text(field: attrs.Attribute) -> str:  # type: ignore[type-arg]
    """` = <default>`, ` (required)`, or ` (optional)` for a `None` default (TOML has no null:
    the attribute is simply left out)."""
    default: Any = field.default
    if default is attrs.NOTHING:
        return " (required)"
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return ""  # needs the other attributes' values: no single default to show
        try:
            default = default.factory()
        except Exception:  # a plugin's factory; `mb rules` still lists the rule
            return ""
    if default is None:
        return " (optional)"
    return f" = {toml_value(default)}"


def describe_rule(rule: RuleDef) -> list[str]:
    lines = [f"{rule.name}  (plugin {rule.plugin} {rule.plugin_version}, rule version "
             f"{rule.version})"]
    if rule.doc:
        lines.append(f"  {rule.doc.splitlines()[0]}")
    for field in _resolved_fields(rule.attrs_class):
        lines.append(f"  {field.name}: {_type_text(field.type)}{_default_text(field)}")
    lines.append(f"  common: {', '.join(COMMON_ATTRIBUTES)}")
    return lines


def run(args: argparse.Namespace) -> int:
    plugins = load_plugins(args.plugins)
    for failure in plugins.failures:
        print(f"warning: plugin {failure.name!r} ({failure.module}) failed to load: "
              f"{failure.error}", file=sys.stderr)
        if args.verbose:
            print(failure.traceback, file=sys.stderr)
    if args.command == "plugins":
        for info in plugins.loaded:
            dist = f" [{info.distribution}]" if info.distribution else ""
            print(f"{info.name} {info.version}  {info.module}{dist}")
        for failure in plugins.failures:
            print(f"{failure.name} {failure.version}  {failure.module}  FAILED: {failure.error}")
        return 0
    rules = plugins.rules()
    if args.rule is not None:  # `mb rules ''` names no rule: an error, not "all of them"
        rule = rules.get(args.rule)
        if rule is None:
            from mb.attrs_convert import closest

            hint = closest(args.rule, list(rules))
            raise UserError(f"unknown rule {args.rule!r}"
                            + (f"; did you mean {hint!r}?" if hint else "")
                            + f" (rules: {', '.join(sorted(rules))})")
        print("\n".join(describe_rule(rule)))
        return 0
    for name in sorted(rules):
        rule = rules[name]
        fields = ", ".join(f.name for f in attrs.fields(rule.attrs_class))
        print(f"{name}  {rule.plugin} {rule.plugin_version}  v{rule.version}  ({fields})")
    return 0
