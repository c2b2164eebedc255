"""`mb.RuleContext`: what a rule implementation uses to declare outputs and actions.

A rule only *declares* work here; nothing runs and no file is read. The
declared `ActionSpec`s are turned into keyed actions by the engine.
"""

from __future__ import annotations

import inspect
import math
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, Union

import attrs

from mb.attributes import File, Files
from mb.errors import BuildFileError, LabelError
from mb.labels import Label, check_file_name
from mb.pickling import pickled_by_position


@pickled_by_position
@attrs.frozen
class OutputFile:
    """A file this target declared with `ctx.output`; `path` is workspace-relative."""

    path: str


@pickled_by_position
@attrs.frozen
class Tool:
    """An executable outside the workspace whose digest belongs in the action key.

    In `ctx.run` argv a Tool is replaced by its absolute path when the action
    runs, while the key sees only its name and digest, so keys stay the same
    across machines that have the same binary.
    """

    name: str
    path: str


@pickled_by_position
@attrs.frozen
class FunctionRef:
    """A module-level function named by import path, plus its module's source path."""

    module: str
    qualname: str
    source_path: str


Pathish = Union[File, OutputFile, str]

#: What a process environment accepts as a variable name (POSIX portable names).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@pickled_by_position
@attrs.frozen
class ActionSpec:
    """One action a rule declared. Paths are workspace-relative strings."""

    kind: str  # "run" or "call"
    argv: tuple[str | Tool, ...]
    function: FunctionRef | None
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    tools: tuple[Tool, ...]
    env: tuple[tuple[str, str], ...]
    secret_env: tuple[str, ...]
    resources: tuple[tuple[str, int], ...]
    timeout: float | None
    retries: int
    description: str
    #: The action talks to a server (a provider); the linux sandbox lets it out.
    network: bool = False
    #: Workspace-relative files the process reads as stdin / writes as stdout (`run` only).
    stdin: str | None = None
    stdout: str | None = None


class Resolver(Protocol):
    """How the engine answers `ctx.paths` (the paths a label stands for) and
    `ctx.read_source`."""

    def paths_of(self, label: Label) -> tuple[str, ...]: ...

    def read_source(self, path: str) -> bytes | None: ...


@attrs.frozen
class TargetOptions:
    """The common attributes (SPEC §2) that apply to every action of a target."""

    tags: tuple[str, ...] = ()
    resources: Mapping[str, int] = attrs.field(factory=dict)
    timeout: float | None = None
    retries: int | None = None
    description: str = ""


class RuleContext:
    """Passed to a rule implementation together with its converted attributes."""

    def __init__(
        self,
        label: Label,
        resolver: Resolver,
        options: TargetOptions,
        providers: Mapping[str, Mapping[str, Any]],
        build_file: str,
    ) -> None:
        self.label = label
        self._resolver = resolver
        self._options = options
        self._providers = providers
        self._build_file = build_file
        self.actions: list[ActionSpec] = []
        self.declared_outputs: list[str] = []
        self.default_outputs: list[str] | None = None
        self.metadata: dict[str, Any] = {}

    # --- names ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The target's name (`final` in `//shorts:final`)."""
        return self.label.name

    @property
    def package(self) -> str:
        """The target's package path (`shorts`; `""` for the root package)."""
        return self.label.package

    @property
    def tags(self) -> tuple[str, ...]:
        return self._options.tags

    def provider(self, name: str) -> Mapping[str, Any]:
        """Settings of `[providers.NAME]` in MB.toml (empty if absent).

        Use what changes outputs (an engine, a model) as action params so it is
        keyed; leave URLs and `api_key_env` names for `ActionIO.provider`.
        """
        return self._providers.get(name, {})

    # --- files ---------------------------------------------------------------

    def output(self, name: str) -> OutputFile:
        """Declare an output file of this target, `name` relative to the package."""
        try:
            check_file_name(name, "output name")
        except Exception as exc:
            raise BuildFileError(f"{self.label}: {exc}") from None
        path = f"{self.package}/{name}" if self.package else name
        if path in self.declared_outputs:
            raise BuildFileError(f"{self.label}: output {name!r} is declared twice")
        self.declared_outputs.append(path)
        return OutputFile(path)

    def paths(self, files: Pathish | Files | Iterable[Pathish] | None) -> list[str]:
        """Workspace-relative paths of files, labels or outputs, in order."""
        if files is None:
            return []
        if isinstance(files, (File, OutputFile, str)):
            files = [files]
        result: list[str] = []
        for item in files:
            if isinstance(item, OutputFile):
                result.append(item.path)
            elif isinstance(item, File):
                found = self._resolver.paths_of(item.label)
                if item.single and len(found) != 1:
                    raise _not_one_file(self.label, item, found)
                result.extend(found)
            elif isinstance(item, str):
                # Workspace-relative, like every path of a key: never outside the workspace.
                try:
                    check_file_name(item, "input path")
                except LabelError as exc:
                    raise BuildFileError(f"{self.label}: {exc}") from None
                result.append(item)
            else:
                raise TypeError(f"{self.label}: expected a file, got {item!r}")
        return result

    def path(self, file: Pathish) -> str:
        """The one path of a single file; a target with several outputs is an error."""
        found = self.paths(file)
        if len(found) != 1:
            raise _not_one_file(self.label, file, found)
        return found[0]

    def read_source(self, file: Pathish) -> bytes | None:
        """The bytes of one source file, read during analysis; None when the file is
        the output of a target (its bytes exist only once that target has run)
        or does not exist yet.

        For what must be known before any action runs, such as how many
        images a workflow saves (the names of the outputs). The file becomes
        part of the analysis: editing it analyses the workspace again, as an
        edit of a BUILD.toml does, where an edit of any other source reruns
        only the actions that read it.
        """
        return self._resolver.read_source(self.path(file))

    def tool(self, name_or_path: str) -> Tool:
        """A tool binary: an absolute path, or a name looked up on PATH now."""
        found = name_or_path if name_or_path.startswith("/") else shutil.which(name_or_path)
        if not found:
            raise BuildFileError(f"{self.label}: tool {name_or_path!r} is not on PATH")
        return Tool(name=name_or_path.rsplit("/", 1)[-1], path=found)

    def provide(self, files: Iterable[Pathish] | Files) -> None:
        """Set this target's default outputs (what a label to it stands for).

        Without a call, they are every file declared with `ctx.output`, in order.
        """
        self.default_outputs = self.paths(files)

    # --- actions -------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str | Tool | File | OutputFile],
        *,
        inputs: Iterable[Pathish] | Files = (),
        outputs: Iterable[OutputFile] = (),
        tools: Iterable[Tool] = (),
        env: Mapping[str, str] | None = None,
        resources: Mapping[str, int] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        description: str = "",
        network: bool = False,
        stdin: Pathish | None = None,
        stdout: OutputFile | None = None,
    ) -> None:
        """Declare a command action; File/OutputFile items in argv become paths.

        `network=True` when the command must reach a server (the `linux`
        sandbox cuts the network otherwise; users can also tag a target
        `requires-network`). `stdin` (one of the inputs) and `stdout` (one of
        the outputs) redirect the process's streams, as `< in > out` in a
        shell, without a shell.
        """
        parts: list[str | Tool] = []
        for part in argv:
            if isinstance(part, (File, OutputFile)):
                parts.append(self.path(part))
            elif isinstance(part, (str, Tool)):
                parts.append(part)
            else:
                raise TypeError(f"{self.label}: argv item {part!r} is not a string, file or tool")
        self._add(
            "run", tuple(parts), None, {}, inputs, outputs, tools, env, (),
            resources, timeout, retries,
            description or f"{_argv_name(argv[0]) if argv else 'command'} for {self.label}",
            network,
        )
        if stdin is not None or stdout is not None:
            spec = self.actions[-1]
            stdin_path = self.paths([stdin])[0] if stdin is not None else None
            stdout_path = self.paths([stdout])[0] if stdout is not None else None
            if stdin_path is not None and stdin_path not in spec.inputs:
                raise BuildFileError(f"{self.label}: stdin {stdin_path} is not an input")
            if stdout_path is not None and stdout_path not in spec.outputs:
                raise BuildFileError(f"{self.label}: stdout {stdout_path} is not an output")
            self.actions[-1] = attrs.evolve(spec, stdin=stdin_path, stdout=stdout_path)

    def call(
        self,
        fn: Callable[..., Any],
        *,
        inputs: Iterable[Pathish] | Files = (),
        outputs: Iterable[OutputFile] = (),
        params: Mapping[str, Any] | None = None,
        tools: Iterable[Tool] = (),
        env: Mapping[str, str] | None = None,
        secret_env: Iterable[str] = (),
        resources: Mapping[str, int] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        description: str = "",
        network: bool = False,
    ) -> None:
        """Declare a Python action: `fn(io: ActionIO)` runs in a sandboxed worker process.

        `fn` must be a module-level function; its module's source is part of the
        key. `params` must be JSON values. `secret_env` names environment
        variables passed to the worker at run time and never keyed or logged.
        """
        module = sys.modules.get(fn.__module__)
        qualname = getattr(fn, "__qualname__", "")
        if module is None or "<locals>" in qualname or getattr(module, qualname, None) is not fn:
            raise TypeError(f"{self.label}: ctx.call needs a module-level function, got {fn!r}")
        source = inspect.getsourcefile(module) or ""
        ref = FunctionRef(module=fn.__module__, qualname=qualname, source_path=source)
        self._add(
            "call", (), ref, dict(params or {}), inputs, outputs, tools, env,
            tuple(secret_env), resources, timeout, retries,
            description or f"{qualname} for {self.label}", network,
        )

    def _add(
        self,
        kind: str,
        argv: tuple[str | Tool, ...],
        function: FunctionRef | None,
        params: Mapping[str, Any],
        inputs: Iterable[Pathish] | Files,
        outputs: Iterable[OutputFile],
        tools: Iterable[Tool],
        env: Mapping[str, str] | None,
        secret_env: tuple[str, ...],
        resources: Mapping[str, int] | None,
        timeout: float | None,
        retries: int | None,
        description: str,
        network: bool,
    ) -> None:
        _check_limits(self.label, kind, timeout, retries, resources)
        output_paths = tuple(self.paths(list(outputs)))
        for path in output_paths:
            if path not in self.declared_outputs:
                raise BuildFileError(f"{self.label}: {path} was not declared with ctx.output")
        # The user's `resources` attribute wins over the rule's, like timeout and retries.
        pools = dict(resources or {})
        pools.update(self._options.resources)
        for name in (env or {}):
            if not _ENV_NAME.fullmatch(name):
                raise BuildFileError(
                    f"{self.label}: {name!r} is not a valid environment variable name "
                    "(letters, digits and _, not starting with a digit)")
        self.actions.append(
            ActionSpec(
                kind=kind,
                argv=argv,
                function=function,
                params=params,
                inputs=tuple(dict.fromkeys(self.paths(inputs))),
                outputs=output_paths,
                tools=tuple(tools),
                env=tuple(sorted((env or {}).items())),
                secret_env=secret_env,
                resources=tuple(sorted(pools.items())),
                # The user's target attributes win over the rule's defaults.
                timeout=_first_set(self._options.timeout, timeout),
                retries=_first_set(self._options.retries, retries) or 0,
                description=description,
                network=network or "requires-network" in self._options.tags,
            )
        )


def _check_limits(label: Label, kind: str, timeout: float | None, retries: int | None,
                  resources: Mapping[str, int] | None) -> None:
    """The limits a rule passes to ctx.run / ctx.call, checked as a target's own are
    (a negative timeout would fail every run at once, negative units break pools)."""
    def bad(what: str, value: Any, must: str) -> BuildFileError:
        return BuildFileError(f"{label}: the rule passed {what}={value!r} to ctx.{kind}; "
                              f"it must be {must}")

    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout < math.inf):
        raise bad("timeout", timeout, "a positive number of seconds")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)
                                or retries < 0):
        raise bad("retries", retries, "a whole number, 0 or more")
    for pool, units in (resources or {}).items():
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise bad(f"resources[{pool!r}]", units, "a whole number of units, 0 or more")


def _not_one_file(label: Label, file: Any, found: Sequence[str]) -> BuildFileError:
    return BuildFileError(
        f"{label}: {file} stands for {len(found)} files where one is expected"
        + (f" ({', '.join(found)})" if found else ""))


def _first_set(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _argv_name(first: Any) -> str:
    return first.name if isinstance(first, Tool) else str(first)
