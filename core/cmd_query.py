"""`mb query` and `mb graph`: read-only views of the analysed target graph."""

from __future__ import annotations

import argparse
import json
import re

from mb.analysis import Analysis, AnalyzedTarget
from mb.errors import UserError
from mb.labels import Label, parse_label, parse_pattern
from mb.plugins import load_plugins
from mb.statcache import StatCache
from mb.workspace import open_workspace

_CALL = re.compile(r"^\s*(deps|rdeps|kind)\s*\((.*)\)\s*$")


def _analysis(args: argparse.Namespace, start: str) -> Analysis:
    workspace = open_workspace(start)
    plugins = load_plugins(args.plugins)
    import os

    statcache = StatCache(os.path.join(workspace.state_dir, "statcache.bin"))
    return Analysis(workspace, plugins, statcache.digest)


def _targets(analysis: Analysis, pattern_text: str) -> list[AnalyzedTarget]:
    pattern = parse_pattern(pattern_text.strip(), analysis.workspace.cwd_package)
    labels = analysis.expand([pattern])
    return analysis.closure(labels)


def evaluate(analysis: Analysis, expression: str) -> list[Label]:
    """The labels an expression stands for, sorted."""
    call = _CALL.match(expression)
    if call is None:
        pattern = parse_pattern(expression.strip(), analysis.workspace.cwd_package)
        return sorted(analysis.expand([pattern]))
    name, body = call.group(1), call.group(2)
    parts = [p.strip() for p in body.split(",")]
    if name == "deps":
        if len(parts) != 1:
            raise UserError(f"deps takes one label: deps(//pkg:name), got {expression!r}")
        label = parse_label(parts[0], analysis.workspace.cwd_package)
        return sorted(t.label for t in analysis.closure([label]))
    if len(parts) != 2:
        raise UserError(f"{name} takes two arguments, got {expression!r}")
    if name == "rdeps":
        universe = _targets(analysis, parts[0])
        target = parse_label(parts[1], analysis.workspace.cwd_package)
        found: set[Label] = {target}
        changed = True
        while changed:
            changed = False
            for t in universe:
                if t.label not in found and any(d in found for d in t.deps):
                    found.add(t.label)
                    changed = True
        return sorted(found)
    rule, pattern_text = parts
    return sorted(t.label for t in _targets(analysis, pattern_text) if t.target.rule.name == rule)


def run(args: argparse.Namespace, start: str) -> int:
    analysis = _analysis(args, start)
    if args.command == "query":
        labels = evaluate(analysis, args.expression)
        if args.output == "json":
            print(json.dumps([str(label) for label in labels]))
        elif args.output == "long":
            for label in labels:
                target = analysis.analyze(label).target
                print(f"{label}  {target.rule.name}  {target.options.description}".rstrip())
        else:
            for label in labels:
                print(label)
        return 0
    targets = _targets(analysis, args.pattern)
    print(render_graph(targets, args.format))
    return 0


def render_graph(targets: list[AnalyzedTarget], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({
            "nodes": [{"label": str(t.label), "rule": t.target.rule.name,
                       "outputs": t.default_outputs} for t in targets],
            "edges": [[str(t.label), str(d)] for t in targets for d in t.deps],
        }, indent=1)
    if fmt == "mermaid":
        ids = {t.label: f"n{i}" for i, t in enumerate(targets)}
        lines = ["graph LR"]
        lines += [f'  {ids[t.label]}["{t.label}"]' for t in targets]
        lines += [f"  {ids[t.label]} --> {ids[d]}" for t in targets for d in t.deps if d in ids]
        return "\n".join(lines)
    lines = ["digraph mb {", "  rankdir=LR;"]
    lines += [f'  "{t.label}" [label="{t.label}\\n{t.target.rule.name}"];' for t in targets]
    lines += [f'  "{t.label}" -> "{d}";' for t in targets for d in t.deps]
    lines.append("}")
    return "\n".join(lines)
