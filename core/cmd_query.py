"""`mb query` and `mb graph`: read-only views of the analysed target graph.

A query is one function call or one pattern: `deps(X)`, `rdeps(UNIVERSE, X)`,
`kind(RULE, PATTERN)`, `//pkg/...`. Arguments are labels or patterns, never
nested calls. A label may name a target, a declared output file or a source
file; file labels are printed as written (`//a:in.txt`), as Bazel does.
`mb graph` takes one pattern, not an expression.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import NamedTuple

from mb.analysis import Analysis, AnalyzedTarget
from mb.attrs_convert import closest
from mb.errors import UserError
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
#: What `mb graph` takes, for its one-line error.
GRAPH_USAGE = "one pattern (//..., //pkg/..., //pkg:all or a label)"
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
    """The analysed dependency closure of a pattern (rdeps' universe, the graph)."""
    pattern = parse_pattern(pattern_text.strip(), analysis.workspace.cwd_package)
    labels = analysis.expand([pattern])
    return analysis.closure(labels)


def _one_pattern(text: str) -> bool:
    """Whether `text` has the shape of one pattern: no call, separator or second `//`.

    Checked before the label parser sees it, which would otherwise name an odd
    symptom ("empty path segment", "needs a leading //") of a different mistake.
    """
    return not re.search(r"[\s,()]", text) and text.count("//") <= 1


def graph_pattern(text: str) -> str:
    """The pattern `mb graph` was given, or a one-line error saying what it takes.

    A query expression is a likely mix-up with `mb query`, so that case says
    where it belongs instead of suggesting a rewrite that is not valid either.
    """
    pattern = text.strip()
    if pattern and _one_pattern(pattern):
        return pattern
    message = f"mb graph takes {GRAPH_USAGE}, got {text!r}"
    if "(" in text or ")" in text:
        message += "; query expressions go to mb query"
    raise UserError(message)


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
        if not _one_pattern(text):
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

    Built on `Analysis.file_label_target`, the resolution `mb build` uses for a
    command-line label, so the two cannot drift apart: a file of a package
    below (`//b:c/x` where b/c has a BUILD.toml), a directory (not a source
    file) and an unknown name get the same one-line error as `mb build`. An
    output path can never also be a source file (analysis refuses it), so the
    order of the checks there does not change the answer.
    """
    producer = analysis.file_label_target(label)  # raises as `mb build` does
    if producer == label:
        return Node(label, "target", label, None)
    if producer is not None:
        return Node(label, "output", producer, label.path())
    return Node(label, "source", None, label.path())


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
    if len(rule) > 2 and rule[0] == rule[-1] and rule[0] in "'\"":
        rule = rule[1:-1]  # Bazel's spelling, kind("genrule", ...): the same rule
    rules = analysis.plugins.rules()
    if rule not in rules:
        hint = closest(rule, list(rules))
        names = ", ".join(sorted(rules))
        raise UserError(f"unknown rule {rule!r}"
                        + (f"; did you mean {hint!r}? (rules: {names})" if hint
                           else f" (rules: {names})"))
    # Bazel's kind filters its input set: the targets the pattern matches
    # (manual ones left out, as by every pattern), not what they depend on. So
    # only their packages are loaded; nothing is analysed. A file label is a
    # file, of no rule.
    return sorted(node.label for node in _nodes(analysis, pattern_text)
                  if node.kind == "target" and analysis.target(node.label).rule.name == rule)


def _first_line(text: str) -> str:
    """The first non-blank line of `text`, so a description cannot add output lines
    (SPEC §8: one label a line; a second line could even look like a label)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _describe(analysis: Analysis, label: Label) -> str:
    """One `--output long` line: the label with its rule and the first line of its
    description, or what kind of file it is."""
    node = resolve(analysis, label)
    if node.kind == "source":
        return f"{label}  source file"
    if node.kind == "output":
        return f"{label}  generated file of {node.target}"
    target = analysis.target(label)
    return f"{label}  {target.rule.name}  {_first_line(target.options.description)}".rstrip()


def run(args: argparse.Namespace, start: str) -> int:
    if args.command == "query":
        analysis = _analysis(args, start)
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
    pattern = graph_pattern(args.pattern)  # a mix-up needs no workspace to be named
    targets = _targets(_analysis(args, start), pattern)
    print(render_graph(targets, args.format))
    return 0


def _dot_string(text: object) -> str:
    """`text` inside a DOT double-quoted string: `\\` and `"` escaped.

    Labels cannot hold either, but a plugin's rule name might; unescaped, it
    would end the string early and the whole graph would not parse.
    """
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _mermaid_text(text: object) -> str:
    """`text` inside a Mermaid `["..."]` node: `"` as the entity `#quot;`.

    Mermaid has no backslash escapes; `#` itself starts an entity, so it is
    written `#35;` first, leaving a literal `#...;` in a name as it was.
    """
    return str(text).replace("#", "#35;").replace('"', "#quot;")


def render_graph(targets: list[AnalyzedTarget], fmt: str) -> str:
    """The graph of `targets` (dependencies first) as DOT, Mermaid or JSON.

    JSON lists nodes and edges sorted by label, as `mb query --output=json`
    sorts its labels, so its output is stable and easy to compare or diff.
    """
    if fmt == "json":
        ordered = sorted(targets, key=lambda t: t.label)
        return json.dumps({
            "nodes": [{"label": str(t.label), "rule": t.target.rule.name,
                       "outputs": t.default_outputs} for t in ordered],
            "edges": [[str(a), str(b)] for a, b in sorted(
                (t.label, d) for t in targets for d in t.deps)],
        }, indent=1)
    if fmt == "mermaid":
        ids = {t.label: f"n{i}" for i, t in enumerate(targets)}
        lines = ["graph LR"]
        lines += [f'  {ids[t.label]}["{_mermaid_text(t.label)}"]' for t in targets]
        lines += [f"  {ids[t.label]} --> {ids[d]}" for t in targets for d in t.deps if d in ids]
        return "\n".join(lines)
    lines = ["digraph mb {", "  rankdir=LR;"]
    lines += [f'  "{_dot_string(t.label)}" '
              f'[label="{_dot_string(t.label)}\\n{_dot_string(t.target.rule.name)}"];'
              for t in targets]
    lines += [f'  "{_dot_string(t.label)}" -> "{_dot_string(d)}";'
              for t in targets for d in t.deps]
    lines.append("}")
    return "\n".join(lines)
