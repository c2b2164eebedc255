"""`mb rules` and `mb plugins`: what is installed, with versions and attributes."""

from __future__ import annotations

import argparse
import sys

import attrs

from mb.errors import UserError
from mb.plugins import load_plugins
from mb.ruledef import COMMON_ATTRIBUTES, RuleDef


def _type_name(field: attrs.Attribute) -> str:  # type: ignore[type-arg]
    text = getattr(field.type, "__name__", None) or str(field.type)
    return text.replace("mb.attributes.", "").replace("typing.", "")


def describe_rule(rule: RuleDef) -> list[str]:
    lines = [f"{rule.name}  (plugin {rule.plugin} {rule.plugin_version}, rule version "
             f"{rule.version})"]
    if rule.doc:
        lines.append(f"  {rule.doc.splitlines()[0]}")
    for field in attrs.fields(rule.attrs_class):
        required = field.default is attrs.NOTHING
        default = "" if required else f" = {field.default!r}"
        if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = ""
        lines.append(f"  {field.name}: {_type_name(field)}{' (required)' if required else default}")
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
    if args.rule:
        rule = rules.get(args.rule)
        if rule is None:
            raise UserError(f"unknown rule {args.rule!r} (rules: {', '.join(sorted(rules))})")
        print("\n".join(describe_rule(rule)))
        return 0
    for name in sorted(rules):
        rule = rules[name]
        fields = ", ".join(f.name for f in attrs.fields(rule.attrs_class))
        print(f"{name}  {rule.plugin} {rule.plugin_version}  v{rule.version}  ({fields})")
    return 0
