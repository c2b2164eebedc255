"""Analysis: BUILD.toml targets -> converted attributes -> rule implementations -> actions.

Packages are loaded on demand and every target of a loaded package is
converted at once, so all mistakes of a file are reported in one run. Rule
implementations run lazily: when a rule asks for the paths of a label
(`ctx.paths`), that target is analysed first. A label met again while it is
still being analysed is a cycle, reported in order.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import Any

import attrs
from cattrs.errors import ClassValidationError

from mb.actions import Action, with_static_encoding
from mb.attrs_convert import AttributeInvalid, closest, describe_path, errors_of, structure
from mb.buildfile import RawTarget, SourceFile, decode_utf8, parse_build_file
from mb.config import POOL_NAME
from mb.context import RuleContext, TargetOptions
from mb.errors import (
    BuildFileError, CycleError, LabelError, Location, MultipleErrors, PluginError, UserError,
)
from mb.labels import Label, Pattern, check_package_name
from mb.listings import FolderListings
from mb.plugins import Plugins
from mb.statcache import trusted_signature
from mb.ruledef import COMMON_ATTRIBUTES, RuleDef
from mb.toml_text import toml_repr
from mb.workspace import OUTPUT_DIR, STATE_DIR, Workspace


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
        #: Each action's static digest -> the encoding it digests, kept for the
        #: manifest (`history.write_manifest` stores new ones for `mb explain`).
        self.static_encodings: dict[str, bytes] = {}
        self.producers: dict[str, Action] = {}
        #: (size, mtime, inode, ctime) of each BUILD.toml when it was read.
        self.build_file_signatures: dict[str, tuple[int, int, int, int] | None] = {}
        #: Sources a rule read during analysis (`read_source`), absolute; their
        #: signatures are in `build_file_signatures` too.
        self.read_sources: set[str] = set()
        self._in_progress: list[Label] = []
        self._function_digests: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._unresolved: list[UnresolvedFile] = []
        #: folder -> (mtime_ns, inode) when a label was resolved against its listing.
        self.observed_folders: dict[str, tuple[int, int]] = {}
        #: Whether a source exists, or a file is where an output goes: from each
        #: folder's listing (observed first), not a stat per file.
        self._listings = FolderListings(self._observe_folder)
        self._current: list[AnalyzedTarget] = []
        #: Every directory holding declared outputs -> the first target that put one there.
        self._output_dirs: dict[str, Label] = {}
        self._package_set: frozenset[str] | None = None
        #: (package, folder) -> the package of its real folder (`_real_package`).
        self._real_packages: dict[tuple[str, str], str | None] = {}
        #: The well-formed targets of a package whose BUILD.toml has mistakes, so
        #: `expand` can still analyse them and report their mistakes in the same run.
        self._partial: dict[str, dict[str, Target]] = {}
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

    # --- packages ----------------------------------------------------------------

    def package(self, package: str) -> dict[str, Target]:
        if package in self.packages:
            return self.packages[package]
        path = self.workspace.build_file(package)
        display = os.path.join(package, "BUILD.toml") if package else "BUILD.toml"
        if package:
            try:
                check_package_name(package)
            except LabelError as exc:
                raise BuildFileError(f"{exc.message}; rename the directory so labels can "
                                     "name it", Location(display)) from None
            nested = self._nested_workspace(package)
            if nested is not None:
                raise LabelError(f"no package '{package}': {nested}/MB.toml makes {nested} a "
                                 "workspace of its own (build it with -C)")
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
            self.build_file_signatures[path] = trusted_signature(st)
        except FileNotFoundError:
            if os.path.islink(path):
                raise BuildFileError(f"a symlink to {os.readlink(path)!r}, which does not "
                                     "exist; fix or remove the link",
                                     Location(display)) from None
            hint = self._target_meant(package)
            if hint is None:
                near = closest(package, self.workspace.packages)
                hint = f"//{near}" if near and near != package else None
            raise LabelError(f"no package '{package}': {display} does not exist"
                             + (f"; did you mean '{hint}'?" if hint else "")) from None
        except OSError as exc:  # a symlink loop, no permission: say so, not a traceback
            raise BuildFileError(f"cannot be read: {exc.strerror}",
                                 Location(display)) from None
        source = SourceFile(display, decode_utf8(display, data))
        targets: dict[str, Target] = {}
        raws, errors = parse_build_file(source)
        for raw in raws:
            try:
                targets[raw.name] = self._convert(Label(package, raw.name), raw, source)
            except MultipleErrors as exc:
                errors.extend(exc.errors)
            except UserError as exc:
                errors.append(exc)
        if errors:
            self._partial[package] = targets
            raise combined(errors)
        self.packages[package] = targets
        return targets

    def _nested_workspace(self, package: str) -> str | None:
        """The first directory on the way to `package` holding an MB.toml of its own."""
        parts = package.split("/")
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            # Observed: an MB.toml added there later makes the package another
            # workspace, which the no-op fast path must not miss.
            self._observe_folder(os.path.join(self.workspace.root, folder))
            if os.path.exists(os.path.join(self.workspace.root, folder, "MB.toml")):
                return folder
        return None

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
        errors: list[UserError] = [
            source.error((raw.name, *path), message)
            for path, message in self._common_value_problems(common_raw)]
        common = self._structure(common_raw, CommonAttrs, label, raw, source, errors)
        attributes = self._structure(rule_raw, rule.attrs_class, label, raw, source, errors)
        if errors:
            raise errors[0] if len(errors) == 1 else MultipleErrors(errors)
        options = TargetOptions(tags=common.tags, resources=common.resources,
                                timeout=common.timeout, retries=common.retries,
                                description=common.description)
        return Target(label=label, rule=rule, attributes=attributes, options=options,
                      raw=raw, source=source)

    def _common_value_problems(self, common: dict[str, Any]
                               ) -> list[tuple[tuple[str, ...], str]]:
        """Values of SPEC §2's common attributes that have the right type but cannot work.

        Checked on the raw values, so a wrong type elsewhere does not hide them.
        """
        problems: list[tuple[tuple[str, ...], str]] = []
        timeout = common.get("timeout")
        if (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
                and not 0 < timeout < float("inf")):
            problems.append((("timeout",), f"'timeout' must be a positive number of seconds, "
                             f"got {toml_repr(timeout)}"))
        retries = common.get("retries")
        if _is_number(retries) and isinstance(retries, int) and retries < 0:
            problems.append((("retries",), f"'retries' must be 0 or more, got {retries}"))
        resources = common.get("resources")
        if isinstance(resources, dict):
            pools = self.workspace.config.resources
            for name, units in resources.items():
                if not POOL_NAME.fullmatch(name):
                    problems.append((("resources", name), f"pool name {toml_repr(name)} may "
                                     "hold only letters, digits, '_' and '-'"))
                    continue
                if not (_is_number(units) and isinstance(units, int)):
                    continue  # the converter names the wrong type
                if units < 0:
                    problems.append((("resources", name), f"'resources.{name}' must be 0 or "
                                     f"more units, got {units}"))
                elif units > pools.get(name, 1):
                    size = pools.get(name, 1)
                    problems.append((("resources", name), (
                        f"'resources.{name}' asks for {units} units but the pool has {size}"
                        + ("" if name in pools else " (pools not in MB.toml [resources] have 1)")
                        + f"; raise it in MB.toml: [resources] {name} = {units}")))
        return problems

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
            # A message naming its attribute first ("'width' must be ...", as the
            # built-in rules word theirs) is located at that attribute.
            attribute = _attribute_named(str(exc), cls)
            if attribute:
                errors.append(source.error((raw.name, attribute), str(exc)))
            else:
                errors.append(source.error((raw.name,), f"target '{raw.name}': {exc}"))
        return None

    def _attribute_error(self, path: tuple[str | int, ...], message: str, raw: RawTarget,
                         source: SourceFile, cls: type) -> UserError:
        key_path = (raw.name, *path)
        if message.startswith("unknown:"):
            nested = len(path) > 1  # a key of a table attribute (a nested attrs class)
            allowed = [*message.split(":", 1)[1].split(","),
                       *(() if nested else COMMON_ATTRIBUTES)]
            allowed = [a for a in allowed if a]
            word = str(path[-1])
            hint = closest(word, allowed)
            if nested:
                text = f"unknown key {describe_path(path)}"
                listing = f" (keys of {describe_path(path[:-1])}: {', '.join(allowed)})"
            else:
                text = f"unknown attribute '{word}' for rule '{raw.rule}'"
                listing = f" (attributes: {', '.join(allowed)})"
            text += f"; did you mean '{hint}'?" if hint else listing
            return source.error(key_path, text)
        if not path:  # a validator of the whole class
            text = message.split(": ", 1)[-1]
            attribute = _attribute_named(text, cls)
            if attribute:
                return source.error((raw.name, attribute), text)
            return source.error((raw.name,), f"target '{raw.name}': {text}")
        if message == "missing":
            return source.error((raw.name,), f"target '{raw.name}' (rule '{raw.rule}') is "
                                f"missing the required attribute {describe_path(path)}")
        return source.error(key_path, f"{describe_path(path)} {message}")

    # --- patterns ----------------------------------------------------------------

    def expand(self, patterns: Iterable[Pattern],
               errors: list[UserError] | None = None) -> list[Label]:
        """Labels of the targets matched by command-line patterns (manual left out).

        A label naming a declared output file stands for the target producing
        it, and one naming a source file for nothing (there is nothing to
        build), as in Bazel. Every package's mistakes are collected, so one
        run reports the mistakes of all the files a pattern reaches.
        """
        labels: dict[Label, None] = {}
        collect = errors is not None
        errors = errors if errors is not None else []
        for pattern in patterns:
            if pattern.label is not None:
                try:
                    target = self.file_label_target(pattern.label)
                except UserError as exc:
                    errors.append(exc)
                    # The package has mistakes, but a named target that converted is
                    # analysed anyway, so its own mistakes come out in this run too.
                    if pattern.label.name in self._partial.get(pattern.label.package, {}):
                        labels[pattern.label] = None
                    continue
                if target is not None:
                    labels[target] = None
                continue
            try:
                packages = [p for p in self.workspace.packages if pattern.matches_package(p)]
                if not packages and pattern.all_in_package:
                    packages = [pattern.package]
                if not packages:
                    nested = pattern.package and self._nested_workspace(pattern.package)
                    if nested:
                        why = (f": {nested}/MB.toml makes {nested} a workspace of its own "
                               "(build it with -C)")
                    elif not self.workspace.packages:
                        why = ("; the workspace has no BUILD.toml yet (a folder holding "
                               "one is a package)")
                    else:
                        why = ""
                    raise LabelError(f"pattern '{pattern}' matches no package{why}")
            except UserError as exc:
                errors.append(exc)
                continue
            for package in packages:
                try:
                    targets = self.package(package)
                except UserError as exc:
                    errors.append(exc)
                    targets = self._partial.get(package, {})
                for target in targets.values():
                    if "manual" not in target.options.tags:
                        labels[target.label] = None
        if errors and not collect:
            raise combined(errors)
        return list(labels)

    def _target_meant(self, package: str) -> str | None:
        """`//pkg:name` when the missing package `pkg/name` is a target of `pkg` (a `/`
        typed for the `:`), else None."""
        head, _, name = package.rpartition("/")
        if not os.path.isfile(self.workspace.build_file(head)):
            return None  # no package there either (and no search upwards)
        try:
            return str(Label(head, name)) if name in self.package(head) else None
        except UserError:
            return None

    def file_label_target(self, label: Label) -> Label | None:
        """The target a command-line label means: itself, the producer of the output
        file it names, or None for an existing source file; else an unknown target."""
        targets = self.package(label.package)
        if label.name in targets:
            return label
        if "/" in label.name:
            self._check_inside_package(label)
        producer = self._find_output(label.package, label.path())
        if producer is not None:
            return producer.label
        if os.path.isfile(os.path.join(self.workspace.root, label.path())):
            return None
        self.target(label)  # raises: no such target (with the closest name)
        return None

    def analyze_all(self, labels: Iterable[Label],
                    errors: list[UserError] | None = None) -> None:
        """Analyse every label, collecting the mistakes of all targets into one error
        (raised, or appended to `errors`).

        A target that fails because a dependency did repeats that mistake; each
        distinct message is reported once (`combined`).
        """
        found: list[UserError] = errors if errors is not None else []
        cycles: set[tuple[str, ...]] = set()
        for label in labels:
            try:
                self.analyze(label)
            except CycleError as exc:
                # Each member of a cycle meets it, from its own start: one line a cycle.
                if _rotation_free(exc.labels) not in cycles:
                    cycles.add(_rotation_free(exc.labels))
                    found.append(exc)
            except UserError as exc:
                found.append(exc)
        if found and errors is None:
            raise combined(found)

    def target(self, label: Label) -> Target:
        # A package whose mistakes were raised once already still lends its
        # well-formed targets, so the rest of the run can report their mistakes.
        targets = self._partial.get(label.package) or self.package(label.package)
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
                self._check_labels(target)
                target.rule.impl(ctx, target.attributes)
            except UserError as exc:
                # Innermost first: the target whose rule met the mistake locates it.
                if exc.location is None and not isinstance(exc, (MultipleErrors, CycleError)):
                    attribute = getattr(exc, "attribute", None) or _attribute_named(
                        exc.message, target.rule.attrs_class)
                    written = getattr(exc, "label", None)
                    where = _where_written(target.raw.attributes, written, label.package) \
                        if written is not None else None
                    exc.location = target.source.location(
                        (label.name, *where) if where else
                        (label.name, attribute) if attribute else (label.name,))
                raise
            except RecursionError:
                raise
            except Exception as exc:  # a bug in the rule's plugin, not in the BUILD.toml
                raise PluginError(
                    f"rule {target.rule.name!r} (plugin {target.rule.plugin!r}) failed on "
                    f"{label}: {type(exc).__name__}: {exc}",
                    target.source.location((label.name,))) from exc
            produced = {path for spec in ctx.actions for path in spec.outputs}
            orphans = [path for path in ctx.declared_outputs if path not in produced]
            if orphans:  # it would be listed as built and be missing: a bug of the rule
                raise PluginError(
                    f"rule {target.rule.name!r} (plugin {target.rule.plugin!r}) declared "
                    f"output {', '.join(orphans)} of {label} with ctx.output, but no action of "
                    "it produces that file; pass it to outputs= of ctx.run or ctx.call",
                    target.source.location((label.name,)))
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

    def _check_labels(self, target: Target) -> None:
        """Every `mb.Label` attribute names a target that exists (a rule may never
        look at it, and a typo would pass silently); the error is located at the
        value that names it."""
        for name in _label_fields(type(target.attributes)):
            for label in _labels_in(getattr(target.attributes, name)):
                try:
                    self.target(label)
                except LabelError as exc:
                    exc.label = label  # type: ignore[attr-defined]
                    raise

    def _add_action(self, target: Target, spec: Any) -> Action:
        function_digest = ""
        function_modules: tuple[str, ...] = ()
        if spec.function is not None and spec.function.source_path:
            function_digest, function_modules = self._function_digest(spec.function.module)
        try:
            action, encoding = with_static_encoding(Action(
                index=len(self.actions), owner=target.label, spec=spec, rule=target.rule.name,
                rule_version=target.rule.version, plugin=target.rule.plugin,
                plugin_version=target.rule.plugin_version, tags=target.options.tags,
                function_digest=function_digest, function_modules=function_modules))
        except (TypeError, ValueError) as exc:
            raise PluginError(
                f"rule {target.rule.name!r} (plugin {target.rule.plugin!r}) declared an action "
                f"for {target.label} whose params are not JSON values: {exc}") from None
        pools = self.workspace.config.resources
        for name, units in spec.resources:  # the rule's own (the target's are checked above)
            if units > pools.get(name, 1):
                raise target.source.error((target.label.name,), (
                    f"rule {target.rule.name!r} asks for {units} units of resource '{name}' "
                    f"for {target.label} but the pool has {pools.get(name, 1)}"
                    + ("" if name in pools else " (pools not in MB.toml [resources] have 1)")
                    + f"; raise it in MB.toml: [resources] {name} = {units}"))
        for path in spec.outputs:
            self._check_output_path(target, path)
            self.producers[path] = action
            parent = path.rpartition("/")[0]
            while parent and parent not in self._output_dirs:
                self._output_dirs[parent] = target.label
                parent = parent.rpartition("/")[0]
        self.actions.append(action)
        self.static_encodings[action.static_digest] = encoding
        return action

    def _check_output_path(self, target: Target, path: str) -> None:
        """An output path must name one file: not another output, not a directory of
        outputs, not a path under another output, and not a file of the source tree
        (a label to it would mean two files; Bazel refuses it too)."""
        def conflict(message: str) -> BuildFileError:
            return target.source.error((target.label.name, "outs"), message)

        other = self.producers.get(path)
        if other is not None:
            raise conflict(f"output {path} of {target.label} is also an output of "
                           f"{other.owner}; give one of them another name")
        holder = self._output_dirs.get(path)
        if holder is not None:
            raise conflict(f"output {path} of {target.label} is also a directory holding "
                           f"outputs of {holder}; give one of them another name")
        parent = path.rpartition("/")[0]
        while parent:
            other = self.producers.get(parent)
            if other is not None:
                raise conflict(f"output {path} of {target.label} would be inside {parent}, "
                               f"an output file of {other.owner}; give one of them another name")
            parent = parent.rpartition("/")[0]
        if self._listings.lexists(os.path.join(self.workspace.root, path)):
            raise conflict(f"output {path} of {target.label} has the same path as a file of "
                           "the source tree; rename the output (or the file)")

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
            source = module_source(name)
            if source is not None:
                parts.append([name, self._digest_source(source)])
        value = (digest_value(parts), tuple(name for name, _digest in parts))
        self._function_digests[module] = value
        return value

    # --- the resolver RuleContext uses -------------------------------------------

    def paths_of(self, label: Label) -> tuple[str, ...]:
        """What a label stands for: a target's default outputs, an output file, or a source."""
        current = self._current[-1] if self._current else None
        try:
            targets = self.package(label.package)
        except LabelError as exc:  # no such package: say where the label is written
            exc.label = label  # type: ignore[attr-defined]
            raise
        if label.name in targets:
            dep = self.analyze(label)
            if current is not None and label not in current.deps:
                current.deps.append(label)
            return tuple(dep.default_outputs)
        path = label.path()
        if "/" in label.name:
            self._check_inside_package(label)
        self._observe_folder(os.path.dirname(os.path.join(self.workspace.root, path)))
        if self._listings.exists(os.path.join(self.workspace.root, path)):
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

    def read_source(self, path: str) -> bytes | None:
        """`ctx.read_source`: a source file's bytes, its signature kept with the BUILD
        files' (`build_file_signatures`), so that the no-op check and `mb watch`
        treat an edit of it as an edit of the analysis."""
        if path in self.producers:
            return None
        absolute = os.path.join(self.workspace.root, path)
        try:
            with open(absolute, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            # A missing source fails (or gets a placeholder) when an action reads it;
            # `mb watch` analyses again when it appears.
            self.read_sources.add(absolute)
            return None
        self.build_file_signatures[absolute] = trusted_signature(st)
        self.read_sources.add(absolute)
        return data

    def _check_inside_package(self, label: Label) -> None:
        """A file label names a file of its own package: not one of a package below it,
        nor of another package reached through a symlinked folder, nor one inside
        mb-out/ or .mb/, which mb writes."""
        if not label.package and label.name.split("/", 1)[0] in (OUTPUT_DIR, STATE_DIR):
            # What mb writes there is no source: reading it directly hides the
            # dependency on the target that makes it, so it would not be rebuilt first.
            raise LabelError(f"{label} is inside {label.name.split('/', 1)[0]}/, which mb "
                             "writes; name the target that makes the file instead")
        if self._package_set is None:
            self._package_set = frozenset(self.workspace.packages)
        folder = label.name.rpartition("/")[0]
        while folder:
            inner = f"{label.package}/{folder}" if label.package else folder
            if inner in self._package_set:
                rest = label.name[len(folder) + 1:]
                raise LabelError(f"{label} is a file of package '{inner}' (it has a "
                                 f"BUILD.toml); write //{inner}:{rest}")
            folder = folder.rpartition("/")[0]
        owner = self._real_package(label.package, label.name.rpartition("/")[0])
        if owner is not None and owner != label.package:
            where = f"package '{owner}'" if owner else "the root package"
            raise LabelError(f"{label} is a file of {where}, reached through a symlinked "
                             "folder; name it with a label of that package")

    def _real_package(self, package: str, folder: str) -> str | None:
        """The package holding the real folder a package's `folder` is (symlinks followed),
        or None when it is outside the workspace (a link to shared assets is fine).
        Cached per folder: sources of one folder are many."""
        key = (package, folder)
        if key not in self._real_packages:
            root = os.path.realpath(self.workspace.root)
            real = os.path.realpath(os.path.join(self.workspace.root, package, folder))
            owner: str | None = None
            if real == root or real.startswith(root + os.sep):
                rel = os.path.relpath(real, root).replace(os.sep, "/")
                owner = ""
                parts = [] if rel == "." else rel.split("/")
                assert self._package_set is not None
                for depth in range(len(parts), 0, -1):
                    if "/".join(parts[:depth]) in self._package_set:
                        owner = "/".join(parts[:depth])
                        break
            self._real_packages[key] = owner
        return self._real_packages[key]

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
        error = CycleError([str(label) for label in cycle], target.source.location((cycle[0].name,)))
        if len(cycle) == 2 and os.path.isfile(os.path.join(self.workspace.root, cycle[0].path())):
            # `[in.txt]` reading "in.txt": a target's name wins over a file's (SPEC §1).
            error.message += (f"; the target is named like the file {cycle[0].path()}, so that "
                              "name stands for the target itself: rename the target")
        raise error

    def _find_output(self, package: str, path: str) -> AnalyzedTarget | None:
        """The target of `package` declaring output `path`, if any.

        A target that needs a target still being analysed cannot be analysed
        yet, and it does not matter unless it declares `path`; if it does, the
        cycle shows once it is analysed (`check_cycles_through_files`).
        Without this, a missing source next to a target reading the current
        one was reported as a dependency cycle.

        A target that cannot be analysed (its own mistake, or a cycle) might be
        the one declaring `path`, so its mistake is raised, but only after the
        others were searched: a sibling's mistake does not hide the target
        that does make the file.
        """
        unknown: UserError | None = None
        for target in self.package(package).values():
            if target.label in self._in_progress:
                continue
            try:
                analyzed = self.analyze(target.label)
            except CycleError as cycle:
                if cycle.labels and cycle.labels[0] != str(target.label) and any(
                        str(label) == cycle.labels[0] for label in self._in_progress):
                    continue
                unknown = unknown or cycle
                continue
            except UserError as exc:
                unknown = unknown or exc
                continue
            if path in analyzed.outputs:
                return analyzed
        if unknown is not None:
            raise unknown
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


def module_source(name: str) -> str | None:
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


#: A validator's message that starts by quoting an attribute: `'width' must be ...`.
#: A label inside a string attribute: `$(location LABEL)`, `$(locations LABEL)`.
_EMBEDDED_LABEL = re.compile(r"\$\(\w+\s+([^)\s]+)\s*\)")
_NAMED_ATTRIBUTE = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)[.' ]")


_LABEL_FIELDS: dict[type, tuple[str, ...]] = {}


def _label_fields(cls: type) -> tuple[str, ...]:
    """The attributes of a rule's attrs class whose type holds `mb.Label` (found once
    a class: most rules have none, and this runs for every target)."""
    found = _LABEL_FIELDS.get(cls)
    if found is None:
        found = tuple(f.name for f in attrs.fields(cls) if "Label" in str(f.type)) \
            if attrs.has(cls) else ()
        _LABEL_FIELDS[cls] = found
    return found


def _labels_in(value: Any) -> Iterable[Label]:
    if isinstance(value, Label):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _labels_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _labels_in(item)


def _rotation_free(cycle: list[str]) -> tuple[str, ...]:
    """A cycle (`a -> b -> a`) the same whichever member it was entered from."""
    members = cycle[:-1]
    start = members.index(min(members))
    return tuple(members[start:] + members[:start])


def _where_written(attributes: dict[str, Any], label: Label, package: str
                   ) -> tuple[str | int, ...] | None:
    """The key path of the attribute value (or list item) that is `label`, if any."""
    from mb.labels import parse_label

    def names(value: Any) -> bool:
        try:
            return isinstance(value, str) and parse_label(value, package) == label
        except LabelError:
            return False

    for name, value in attributes.items():
        if names(value):
            return (name,)
        if isinstance(value, list):
            for index, item in enumerate(value):
                if names(item):
                    return (name, index)
    # Not an attribute of its own: a label written inside a string, as genrule's
    # `$(location //pkg:name)` in `cmd`.
    for name, value in attributes.items():
        if isinstance(value, str) and any(names(m) for m in _EMBEDDED_LABEL.findall(value)):
            return (name,)
    return None


def _attribute_named(message: str, cls: type) -> str | None:
    """The attribute of `cls` a message starts by quoting (`'width' must be ...`), if any."""
    named = _NAMED_ATTRIBUTE.match(message)
    if named and attrs.has(cls) and named.group(1) in attrs.fields_dict(cls):
        return named.group(1)
    return None


def combined(errors: list[UserError]) -> UserError:
    """One error for several: flattened, each message once, in file and line order."""
    flat: dict[str, UserError] = {}
    for error in errors:
        for one in (error.errors if isinstance(error, MultipleErrors) else [error]):
            flat.setdefault(str(one), one)
    ordered = sorted(flat.values(), key=_error_order)
    return ordered[0] if len(ordered) == 1 else MultipleErrors(ordered)


def _error_order(error: UserError) -> tuple[str, int, int]:
    location = error.location
    if location is None:
        return ("", 0, 0)
    return (location.path, location.line or 0, location.col or 0)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        source = module_source(name)
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

