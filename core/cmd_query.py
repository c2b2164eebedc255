"""`mb query` and `mb graph`: read-only views of the analysed target graph.

A query is one function call or one pattern: `deps(X)`, `rdeps(UNIVERSE, X)`,
`kind(RULE, PATTERN)`, `//pkg/...`. Arguments are labels or patterns, never
nested calls. A label may name a target, a declared output file or a source
file; file labels are printed as written (`//a:in.txt`), as Bazel does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import NamedTuple

from mb.analysis import Analysis, AnalyzedTarget
from mb.attrs_convert import closest
from mb.errors import LabelError, UserError
from mb.labels import Label, parse_pattern
from mb.plugins import load_plugins
from mb.statcache import StatCache
from mb.workspace import open_workspace

#: Each query function and how it is written, for arity errors.
FUNCTIONS = {
    "deps": "deps(LABEL)",
    "rdeps": "rdeps(PATTERN, LABEL)",
    "kind": "kind(RULE, PATTERN)",
}
USAGE = "deps(LABEL), rdeps(PATTERN, LABEL), kind(RULE, PATTERN) or a pattern"
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)", re.DOTALL)


class Node(NamedTuple):
    """What a query label names.

    `kind` is "target", "output" (a file a target declares) or "source" (a
    file of the source tree). `target` is the target itself or the output's
    producer (None for a source); `path` is the workspace-relative file.
    """

    label: Label
    kind: str
    target: Label | None
    path: str | None


def _analysis(args: argparse.Namespace, start: str) -> Analysis:
    workspace = open_workspace(start)
    plugins = load_plugins(args.plugins)
    statcache = StatCache(os.path.join(workspace.state_dir, "statcache.bin"))
    return Analysis(workspace, plugins, statcache.digest)


def _targets(analysis: Analysis, pattern_text: str) -> list[AnalyzedTarget]:
    pattern = parse_pattern(pattern_text.strip(), analysis.workspace.cwd_package)
    labels = analysis.expand([pattern])
    return analysis.closure(labels)


def parse(expression: str) -> tuple[str | None, list[str]]:
    """Split an expression into (function, arguments); (None, [pattern]) for a pattern.

    Only the shape is checked here, so that a typo in the syntax is reported
    as such rather than as an odd label ("empty path segment").
    """
    text = expression.strip()
    if not text:
        raise UserError(f"empty query expression; write {USAGE}")
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise UserError(f"unbalanced parentheses in {text!r}")
    call = _CALL.fullmatch(text)
    if call is None:
        if "(" in text:
            raise UserError(f"malformed query expression {text!r}; write {USAGE}")
        if re.search(r"[\s,]", text) or text.count("//") > 1:
            raise UserError(
                f"query expression {text!r} is not one pattern; operators such as '+', "
                f"'union' or 'except' are not supported (write {USAGE})")
        return None, [text]
    name, body = call.group(1), call.group(2)
    if name not in FUNCTIONS:
        hint = closest(name, list(FUNCTIONS))
        raise UserError(f"unknown query function {name!r}; "
                        + (f"did you mean {hint!r}? " if hint else "")
                        + f"functions: {', '.join(FUNCTIONS)}")
    if "(" in body or ")" in body:
        raise UserError(f"malformed query expression {text!r}: functions do not nest; "
                        f"write {USAGE}")
    arguments = [part.strip() for part in body.split(",")]
    wanted = FUNCTIONS[name].count(",") + 1
    if len(arguments) != wanted:
        raise UserError(f"{name} takes {('one argument', 'two arguments')[wanted - 1]}: "
                        f"{FUNCTIONS[name]}, got {text!r}")
    for number, argument in enumerate(arguments, 1):
        if not argument:
            raise UserError(f"argument {number} of {name} is empty in {text!r}")
        if re.search(r"\s", argument):
            raise UserError(f"argument {number} of {name} ({argument!r}) is not one "
                            f"label or pattern in {text!r}")
    return name, arguments


def resolve(analysis: Analysis, label: Label) -> Node:
    """Whether `label` names a target, a declared output or a source file.

    Checked in the order `Analysis.paths_of` resolves a label in a BUILD.toml
    (target, existing file, declared output), so a query means what a
    dependency on the same label means. An unknown name gets the error
    `deps(//pkg:unknown)` always gave (naming the closest target).
    """
    targets = analysis.package(label.package)  # raises for a missing package
    if label.name in targets:
        return Node(label, "target", label, None)
    path = label.path()
    if os.path.exists(os.path.join(analysis.workspace.root, path)):
        return Node(label, "source", None, path)
    for target in targets.values():  # outputs are known only once analysed
        if path in analysis.analyze(target.label).outputs:
            return Node(label, "output", target.label, path)
    analysis.target(label)  # neither a target nor a file: raises "no target ..."
    raise LabelError(f"no target or file {label.name!r} in package {label.package!r} ({label})")


def _nodes(analysis: Analysis, text: str) -> list[Node]:
    """The nodes an argument stands for: one label, or every target a pattern matches."""
    pattern = parse_pattern(text, analysis.workspace.cwd_package)
    if pattern.label is not None:
        return [resolve(analysis, pattern.label)]
    return [Node(label, "target", label, None) for label in analysis.expand([pattern])]


def _reads(target: AnalyzedTarget, path: str) -> bool:
    """Whether `target` reads file `path`: a source it resolved, or another target's output
    among its actions' inputs or the files it stands for (a filegroup forwarding it)."""
    if path in target.sources:
        return True
    if path in target.outputs:
        return False  # its own output: the producer is a dependency of the file, not a reader
    return path in target.default_outputs or any(
        path in action.spec.inputs for action in target.actions)


def evaluate(analysis: Analysis, expression: str) -> list[Label]:
    """The labels an expression stands for, sorted."""
    name, arguments = parse(expression)
    if name is None:
        return sorted(node.label for node in _nodes(analysis, arguments[0]))
    if name == "deps":
        # A target's dependency closure; an output file depends on its producer
        # (and so on everything the producer needs); a source file on nothing.
        found: set[Label] = set()
        for node in _nodes(analysis, arguments[0]):
            found.add(node.label)
            if node.target is not None:
                found.update(t.label for t in analysis.closure([node.target]))
        return sorted(found)
    if name == "rdeps":
        universe = _targets(analysis, arguments[0])
        seeds = _nodes(analysis, arguments[1])
        found = {node.label for node in seeds}
        files = [node.path for node in seeds if node.path is not None]
        found.update(t.label for t in universe if any(_reads(t, path) for path in files))
        changed = True
        while changed:  # `universe` is dependencies first, so this takes one or two passes
            changed = False
            for t in universe:
                if t.label not in found and any(d in found for d in t.deps):
                    found.add(t.label)
                    changed = True
        return sorted(found)
    rule, pattern_text = arguments
    rules = analysis.plugins.rules()
    if rule not in rules:
        hint = closest(rule, list(rules))
        names = ", ".join(sorted(rules))
        raise UserError(f"unknown rule {rule!r}"
                        + (f"; did you mean {hint!r}? (rules: {names})" if hint
                           else f" (rules: {names})"))
    return sorted(t.label for t in _targets(analysis, pattern_text) if t.target.rule.name == rule)


def _describe(analysis: Analysis, label: Label) -> str:
    """One `--output long` line: the label with its rule, or what kind of file it is."""
    node = resolve(analysis, label)
    if node.kind == "source":
        return f"{label}  source file"
    if node.kind == "output":
        return f"{label}  generated file of {node.target}"
    target = analysis.target(label)
    return f"{label}  {target.rule.name}  {target.options.description}".rstrip()


def run(args: argparse.Namespace, start: str) -> int:
    analysis = _analysis(args, start)
    if args.command == "query":
        labels = evaluate(analysis, args.expression)
        if args.output == "json":
            print(json.dumps([str(label) for label in labels]))
        elif args.output == "long":
            for label in labels:
                print(_describe(analysis, label))
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
