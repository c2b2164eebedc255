"""Analysis: BUILD.toml targets -> converted attributes -> rule implementations -> actions.

Packages are loaded on demand and every target of a loaded package is
converted at once, so all mistakes of a file are reported in one run. Rule
implementations run lazily: when a rule asks for the paths of a label
(`ctx.paths`), that target is analysed first. A label met again while it is
still being analysed is a cycle, reported in order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import attrs
from cattrs.errors import ClassValidationError

from mb.actions import Action, with_static_digest
from mb.attrs_convert import AttributeInvalid, closest, describe_path, errors_of, structure
from mb.buildfile import RawTarget, SourceFile, parse_build_file
from mb.context import RuleContext, TargetOptions
from mb.errors import (
    BuildFileError, CycleError, LabelError, MultipleErrors, PluginError, UserError,
)
from mb.labels import Label, Pattern
from mb.plugins import Plugins
from mb.statcache import trusted_signature
from mb.ruledef import COMMON_ATTRIBUTES, RuleDef
from mb.workspace import Workspace


@attrs.frozen
class CommonAttrs:
    """SPEC §2 attributes every rule accepts, converted as strictly as the rule's own."""

    tags: tuple[str, ...] = ()
    resources: dict[str, int] = attrs.field(factory=dict)
    timeout: float | None = None
    retries: int | None = None
    description: str = ""


@attrs.frozen
class Target:
    """A converted target: its rule, typed attributes and common options."""

    label: Label
    rule: RuleDef
    attributes: Any
    options: TargetOptions
    raw: RawTarget
    source: SourceFile


@attrs.frozen
class UnresolvedFile:
    """A label taken for a missing source file, to be settled once analysis is done.

    `stack` is the targets being analysed when it was resolved, the reader
    last. Its producer, if it has one, was then still being analysed, or
    skipped because it needed a target that was.
    """

    path: str  # workspace-relative
    package: str  # the package the label was resolved in
    stack: tuple[Label, ...]

    @property
    def reader(self) -> Label:
        return self.stack[-1]


@attrs.define
class AnalyzedTarget:
    target: Target
    actions: list[Action]
    outputs: list[str]
    default_outputs: list[str]
    #: Targets this one read through a label, in first-use order.
    deps: list[Label]
    #: Source files (workspace-relative) this one reads.
    sources: list[str]

    @property
    def label(self) -> Label:
        return self.target.label


class Analysis:
    """Loads packages and analyses targets for one build; results are memoised."""

    def __init__(self, workspace: Workspace, plugins: Plugins, digest_source: Any) -> None:
        self.workspace = workspace
        self.plugins = plugins
        self._digest_source = digest_source  # (abs path) -> digest; the stat cache
        self.packages: dict[str, dict[str, Target]] = {}
        self.analyzed: dict[Label, AnalyzedTarget] = {}
        self.actions: list[Action] = []
        self.producers: dict[str, Action] = {}
        #: (size, mtime, inode, ctime) of each BUILD.toml when it was read.
        self.build_file_signatures: dict[str, tuple[int, int, int, int] | None] = {}
        self._in_progress: list[Label] = []
        self._function_digests: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._unresolved: list[UnresolvedFile] = []
        #: folder -> (mtime_ns, inode) when a label was resolved against its listing.
        self.observed_folders: dict[str, tuple[int, int]] = {}
        self._current: list[AnalyzedTarget] = []
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

    # --- packages ----------------------------------------------------------------

    def package(self, package: str) -> dict[str, Target]:
        if package in self.packages:
            return self.packages[package]
        path = self.workspace.build_file(package)
        display = os.path.join(package, "BUILD.toml") if package else "BUILD.toml"
        try:
            with open(path, encoding="utf-8") as f:
                st = os.fstat(f.fileno())
                text = f.read()
            self.build_file_signatures[path] = trusted_signature(st)
        except FileNotFoundError:
            raise LabelError(f"no package '{package}': {display} does not exist") from None
        source = SourceFile(display, text)
        targets: dict[str, Target] = {}
        errors: list[UserError] = []
        for raw in parse_build_file(source):
            try:
                targets[raw.name] = self._convert(Label(package, raw.name), raw, source)
            except MultipleErrors as exc:
                errors.extend(exc.errors)
            except UserError as exc:
                errors.append(exc)
        if errors:
            errors.sort(key=lambda e: (e.location.line or 0, e.location.col or 0)
                        if e.location else (0, 0))
            raise errors[0] if len(errors) == 1 else MultipleErrors(errors)
        self.packages[package] = targets
        return targets

    def _convert(self, label: Label, raw: RawTarget, source: SourceFile) -> Target:
        rules = self.plugins.rules()
        rule = rules.get(raw.rule)
        if rule is None:
            hint = closest(raw.rule, list(rules))
            names = ", ".join(sorted(rules))
            message = f"unknown rule {raw.rule!r}"
            message += f"; did you mean {hint!r}? (rules: {names})" if hint else f" (rules: {names})"
            raise source.error((raw.name, "rule"), message)
        common_raw = {k: v for k, v in raw.attributes.items() if k in COMMON_ATTRIBUTES}
        rule_raw = {k: v for k, v in raw.attributes.items() if k not in COMMON_ATTRIBUTES}
        errors: list[UserError] = []
        common = self._structure(common_raw, CommonAttrs, label, raw, source, errors)
        attributes = self._structure(rule_raw, rule.attrs_class, label, raw, source, errors)
        if errors:
            raise errors[0] if len(errors) == 1 else MultipleErrors(errors)
        options = TargetOptions(tags=common.tags, resources=common.resources,
                                timeout=common.timeout, retries=common.retries,
                                description=common.description)
        return Target(label=label, rule=rule, attributes=attributes, options=options,
                      raw=raw, source=source)

    def _structure(self, raw_attrs: dict[str, Any], cls: type, label: Label, raw: RawTarget,
                   source: SourceFile, errors: list[UserError]) -> Any:
        try:
            return structure(raw_attrs, cls, label.package)
        except ClassValidationError as exc:
            for path, message in errors_of(exc, cls):
                errors.append(self._attribute_error(path, message, raw, source, cls))
        except AttributeInvalid as exc:  # a validator that names its attribute
            errors.append(source.error((raw.name, exc.attribute),
                                       f"'{exc.attribute}' {exc.text}"))
        except (ValueError, TypeError) as exc:  # any other attrs validator of the rule
            errors.append(source.error((raw.name,), f"target '{raw.name}': {exc}"))
        return None

    def _attribute_error(self, path: tuple[str | int, ...], message: str, raw: RawTarget,
                         source: SourceFile, cls: type) -> UserError:
        key_path = (raw.name, *path)
        if message.startswith("unknown:"):
            allowed = [*message.split(":", 1)[1].split(","), *COMMON_ATTRIBUTES]
            allowed = [a for a in allowed if a]
            word = str(path[-1])
            hint = closest(word, allowed)
            text = f"unknown attribute '{word}' for rule '{raw.rule}'"
            text += f"; did you mean '{hint}'?" if hint else f" (attributes: {', '.join(allowed)})"
            return source.error(key_path, text)
        if not path:  # a validator of the whole class
            return source.error((raw.name,), f"target '{raw.name}': {message.split(': ', 1)[-1]}")
        if message == "missing":
            return source.error((raw.name,), f"target '{raw.name}' (rule '{raw.rule}') is "
                                f"missing the required attribute {describe_path(path)}")
        return source.error(key_path, f"{describe_path(path)} {message}")

    # --- patterns ----------------------------------------------------------------

    def expand(self, patterns: Iterable[Pattern]) -> list[Label]:
        """Labels of the targets matched by command-line patterns (manual left out)."""
        labels: dict[Label, None] = {}
        for pattern in patterns:
            if pattern.label is not None:
                self.target(pattern.label)
                labels[pattern.label] = None
                continue
            packages = [p for p in self.workspace.packages if pattern.matches_package(p)]
            if not packages and pattern.all_in_package:
                packages = [pattern.package]
            if not packages:
                raise LabelError(f"pattern '{pattern}' matches no package")
            for package in packages:
                for target in self.package(package).values():
                    if "manual" not in target.options.tags:
                        labels[target.label] = None
        return list(labels)

    def target(self, label: Label) -> Target:
        targets = self.package(label.package)
        found = targets.get(label.name)
        if found is None:
            hint = closest(label.name, list(targets))
            raise LabelError(
                f"no target '{label.name}' in package '{label.package}' ({label})"
                + (f"; did you mean ':{hint}'?" if hint else ""))
        return found

    # --- analysis ----------------------------------------------------------------

    def analyze(self, label: Label) -> AnalyzedTarget:
        done = self.analyzed.get(label)
        if done is not None:
            return done
        if label in self._in_progress:
            self._raise_cycle(self._in_progress[self._in_progress.index(label):] + [label])
        target = self.target(label)
        self._in_progress.append(label)
        result = AnalyzedTarget(target=target, actions=[], outputs=[], default_outputs=[],
                                deps=[], sources=[])
        self._current.append(result)
        try:
            ctx = RuleContext(label, self, target.options, self.workspace.config.providers,
                              target.source.display_path)
            try:
                target.rule.impl(ctx, target.attributes)
            except BuildFileError as exc:
                if exc.location is None:
                    exc.location = target.source.location((label.name,))
                raise
            result.outputs = list(ctx.declared_outputs)
            result.default_outputs = (
                list(ctx.default_outputs) if ctx.default_outputs is not None
                else list(ctx.declared_outputs))
            for spec in ctx.actions:
                result.actions.append(self._add_action(target, spec))
        finally:
            self._in_progress.pop()
            self._current.pop()
        self.analyzed[label] = result
        if not self._in_progress:  # the outermost target is done: every output is known
            self.check_cycles_through_files()
        return result

    def _add_action(self, target: Target, spec: Any) -> Action:
        function_digest = ""
        function_modules: tuple[str, ...] = ()
        if spec.function is not None and spec.function.source_path:
            function_digest, function_modules = self._function_digest(spec.function.module)
        try:
            action = with_static_digest(Action(
                index=len(self.actions), owner=target.label, spec=spec, rule=target.rule.name,
                rule_version=target.rule.version, plugin=target.rule.plugin,
                plugin_version=target.rule.plugin_version, tags=target.options.tags,
                function_digest=function_digest, function_modules=function_modules))
        except (TypeError, ValueError) as exc:
            raise PluginError(
                f"rule {target.rule.name!r} (plugin {target.rule.plugin!r}) declared an action "
                f"for {target.label} whose params are not JSON values: {exc}") from None
        for path in spec.outputs:
            other = self.producers.get(path)
            if other is not None:
                raise target.source.error(
                    (target.label.name,),
                    f"output {path} of {target.label} is also an output of {other.owner}; "
                    "give one of them another name")
            self.producers[path] = action
        self.actions.append(action)
        return action

    def _function_digest(self, module: str) -> tuple[str, tuple[str, ...]]:
        """Digest of a Python action's module and the sibling modules it imports.

        A rule's private helpers (`rules/_espeak.py` for `rules/tts.py`) shape
        its outputs as much as the module itself, so editing one must change
        the key. Siblings are modules of the same package reached through
        import statements, followed transitively.
        """
        cached = self._function_digests.get(module)
        if cached is not None:
            return cached
        from mb.digest import digest_value

        parts = []
        for name in sorted(_sibling_closure(module)):
            source = _module_file(name)
            if source is not None:
                parts.append([name, self._digest_source(source)])
        value = (digest_value(parts), tuple(name for name, _digest in parts))
        self._function_digests[module] = value
        return value

    # --- the resolver RuleContext uses -------------------------------------------

    def paths_of(self, label: Label) -> tuple[str, ...]:
        """What a label stands for: a target's default outputs, an output file, or a source."""
        current = self._current[-1] if self._current else None
        targets = self.package(label.package)
        if label.name in targets:
            dep = self.analyze(label)
            if current is not None and label not in current.deps:
                current.deps.append(label)
            return tuple(dep.default_outputs)
        path = label.path()
        self._observe_folder(os.path.dirname(os.path.join(self.workspace.root, path)))
        if os.path.exists(os.path.join(self.workspace.root, path)):
            if current is not None and path not in current.sources:
                current.sources.append(path)
            return (path,)
        producer = self._find_output(label.package, path)
        if producer is not None:
            if current is not None and producer.label not in current.deps:
                current.deps.append(producer.label)
            return (path,)
        # A missing source: an error when the build needs it (or a placeholder).
        # Unless a target still being analysed turns out to declare it: a cycle,
        # checked once every target is analysed (`check_cycles_through_files`).
        self._unresolved.append(UnresolvedFile(path, label.package, tuple(self._in_progress)))
        if current is not None and path not in current.sources:
            current.sources.append(path)
        return (path,)

    def _observe_folder(self, folder: str) -> None:
        """Remember a folder whose listing decided a label (a file there or not).

        Its (mtime, inode) is taken now, before the decision, so the no-op fast
        path notices a file created or deleted there afterwards. A folder that
        does not exist is watched through its nearest existing parent.
        """
        while folder not in self.observed_folders:
            try:
                st = os.stat(folder)
            except FileNotFoundError:
                parent = os.path.dirname(folder)
                if parent == folder:
                    return
                folder = parent
                continue
            self.observed_folders[folder] = (st.st_mtime_ns, st.st_ino)
            return

    def check_cycles_through_files(self) -> None:
        """Settle the files taken for missing sources while their producer was busy.

        Called when the outermost analysis is done, so no target is in
        progress. A reader could not see a file among its producer's outputs
        when the producer was still being analysed (it had not declared them
        yet), or was skipped by `_find_output` because it needed a target
        that was. Now every such producer can be analysed: the reader depends
        on it (the path it was given is the same either way), and the
        dependencies added this way are checked for cycles. A reader whose own
        analysis was abandoned is not in `analyzed`; it is analysed afresh,
        with every output known, when something needs it.
        """
        readers: list[Label] = []
        while self._unresolved:
            pending, self._unresolved = self._unresolved, []
            for unresolved in pending:
                reader = self.analyzed.get(unresolved.reader)
                if reader is None:
                    continue
                producer = self.producers.get(unresolved.path)
                if producer is None:  # a producer skipped earlier; analysing it may add records
                    if self._find_output(unresolved.package, unresolved.path) is None:
                        continue
                    producer = self.producers[unresolved.path]
                self._raise_if_cycle_along(unresolved.stack, producer.owner)
                if unresolved.path in reader.sources:
                    reader.sources.remove(unresolved.path)
                if producer.owner not in reader.deps:
                    reader.deps.append(producer.owner)
                readers.append(reader.label)
        for label in readers:
            self._raise_if_cycle_through(label)

    def _raise_if_cycle_along(self, stack: tuple[Label, ...], producer: Label) -> None:
        """The producer is on the stack and each step down from it is a real dependency."""
        if producer not in stack:
            return
        chain = stack[stack.index(producer):]
        if all(earlier in self.analyzed and later in self.analyzed[earlier].deps
               for earlier, later in zip(chain, chain[1:])):
            self._raise_cycle([*chain, producer])

    def _raise_if_cycle_through(self, start: Label) -> None:
        """A path of dependencies from `start` back to itself, reported in order."""
        path = [start]
        branches = [iter(self.analyzed[start].deps)]
        visited = {start}  # explored without reaching `start`, or on the path
        while branches:
            following = next(branches[-1], None)
            if following is None:
                branches.pop()
                path.pop()
                continue
            if following == start:
                self._raise_cycle([*path, start])
            if following in visited or following not in self.analyzed:
                continue
            visited.add(following)
            path.append(following)
            branches.append(iter(self.analyzed[following].deps))

    def _raise_cycle(self, cycle: list[Label]) -> None:
        target = self.target(cycle[0])
        raise CycleError([str(label) for label in cycle], target.source.location((cycle[0].name,)))

    def _find_output(self, package: str, path: str) -> AnalyzedTarget | None:
        """The target of `package` declaring output `path`, if any.

        A target that needs a target still being analysed cannot be analysed
        yet, and it does not matter unless it declares `path`; if it does, the
        cycle shows once it is analysed (`check_cycles_through_files`).
        Without this, a missing source next to a target reading the current
        one was reported as a dependency cycle.
        """
        for target in self.package(package).values():
            if target.label in self._in_progress:
                continue
            try:
                analyzed = self.analyze(target.label)
            except CycleError as cycle:
                if cycle.labels and cycle.labels[0] != str(target.label) and any(
                        str(label) == cycle.labels[0] for label in self._in_progress):
                    continue
                raise
            if path in analyzed.outputs:
                return analyzed
        return None

    def closure(self, labels: Iterable[Label]) -> list[AnalyzedTarget]:
        """The analysed targets `labels` need, dependencies first."""
        order: list[AnalyzedTarget] = []
        seen: set[Label] = set()

        def visit(label: Label) -> None:
            stack = [(label, False)]
            while stack:
                current, expanded = stack.pop()
                if expanded:
                    order.append(self.analyzed[current])
                    continue
                if current in seen:
                    continue
                seen.add(current)
                stack.append((current, True))
                for dep in reversed(self.analyze(current).deps):
                    if dep not in seen:
                        stack.append((dep, False))

        for label in labels:
            visit(label)
        return order


def _module_file(name: str) -> str | None:
    """The source file of a module, imported or not (helpers may be imported lazily)."""
    module = sys.modules.get(name)
    if module is not None:
        source = getattr(module, "__file__", None)
    else:
        from importlib.util import find_spec

        try:
            spec = find_spec(name)
        except (ImportError, ValueError):
            return None
        source = spec.origin if spec is not None else None
    if source and source.endswith(".py") and os.path.isfile(source):
        return source
    return None


def _sibling_closure(module: str) -> set[str]:
    """`module` plus the modules of its own package it imports, transitively.

    Imports inside functions count too: a rule may import a heavy helper only
    in its action.
    """
    import ast
    from importlib.util import resolve_name

    root = sys.modules.get(module)
    package = module if hasattr(root, "__path__") else module.rpartition(".")[0]
    if not package:
        return {module}  # a top-level module: its imports are other distributions
    found: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        source = _module_file(name)
        if source is None:
            continue
        found.add(name)
        with open(source, "rb") as f:
            try:
                tree = ast.parse(f.read())
            except (SyntaxError, ValueError):
                continue
        anchor = name if source.endswith("__init__.py") else name.rpartition(".")[0]
        for node in ast.walk(tree):
            candidates: list[str] = []
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    try:
                        base = resolve_name("." * node.level + base, anchor)
                    except (ImportError, ValueError):
                        continue
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for candidate in candidates:
                if candidate == package or candidate.startswith(package + "."):
                    pending.append(candidate)
    return found

