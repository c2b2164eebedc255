"""Loads plugins (entry-point group `mb`, plus `-p module`) into a fresh PluginManager.

Each entry point is loaded under its own guard: pluggy's
`load_setuptools_entrypoints` stops at the first broken plugin, and one bad
third-party package must not take the built-in rules down with it. The
engine talks to plugins only through the typed methods of `Plugins`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from types import ModuleType

import attrs
import pluggy

from mb import hookspecs
from mb.errors import PluginError
from mb.plugin_index import mb_entry_points
from mb.ruledef import RuleDef


#: What third-party code may raise while mb imports it or calls its hooks, all
#: reported as that plugin's failure: `sys.exit()` in a plugin must not end mb
#: silently with the plugin's status (3 would read as "awaiting review").
#: KeyboardInterrupt still interrupts.
_PLUGIN_FAILURES = (Exception, SystemExit)


@attrs.frozen
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str


@attrs.frozen
class PluginLoadFailure:
    """A plugin that could not be imported, or whose `mb_rules` hook raised.

    Reported once, by name; the other plugins still load.
    """

    name: str
    module: str
    distribution: str
    version: str
    error: str
    traceback: str


class Plugins:
    """The plugins of one mb invocation and the typed view of their hooks."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("mb")
        self.manager.add_hookspecs(hookspecs)
        self.loaded: list[PluginInfo] = []
        self.failures: list[PluginLoadFailure] = []
        self._rules: dict[str, RuleDef] | None = None
        #: What each loaded plugin's `mb_rules` returned, unchecked (see `call_rule_hooks`).
        self._returned: dict[str, list[RuleDef]] | None = None

    def load_entry_points(self) -> None:
        """The installed plugins, in name order, listed from mb's entry-point index
        (`mb.plugin_index`: importlib.metadata only when the environment changed)."""
        for entry_point in mb_entry_points():
            self._register(entry_point.name, entry_point.value, entry_point.distribution,
                           entry_point.version)

    def load_modules(self, modules: Sequence[str]) -> None:
        """`-p module`: the same registration path as an entry point."""
        for module in modules:
            self._register(module, module, "", "")

    def _register(self, name: str, module_name: str, dist: str, version: str) -> None:
        try:
            module = importlib.import_module(module_name)
            if self.manager.is_registered(module):
                return  # `-p` of a module an entry point loaded already: the same plugin
            self.manager.register(module, name=name)
        except _PLUGIN_FAILURES as exc:  # any import failure of third-party code
            self._fail(PluginInfo(name=name, module=module_name, distribution=dist,
                                  version=version), exc, "")
            return
        self.loaded.append(PluginInfo(name=name, module=module_name, distribution=dist,
                                      version=version or _module_version(module)))

    def _fail(self, info: PluginInfo, exc: BaseException, context: str) -> None:
        import traceback

        # One line (SPEC §10): the first of the message; the rest is in the traceback (-v).
        message = str(exc).strip().splitlines()
        first = message[0] + (" ..." if len(message) > 1 else "") if message else ""
        self._add_failure(info, f"{context}{type(exc).__name__}: {first}",
                          traceback.format_exc())

    def _add_failure(self, info: PluginInfo, error: str, traceback: str = "") -> None:
        self.failures.append(PluginLoadFailure(
            name=info.name, module=info.module, distribution=info.distribution,
            version=info.version, error=error, traceback=traceback))

    def _drop(self, info: PluginInfo) -> None:
        """Unload a plugin whose hook failed, as if it had not imported."""
        self.loaded.remove(info)
        self.manager.unregister(name=info.name)

    def call_rule_hooks(self) -> None:
        """Call every plugin's `mb_rules` once, each under its own guard, like its import.

        A hook that raises (a NameError in third-party code) or returns
        something that is not a list of `@mb.rule` results is a failure of
        that plugin alone: it is reported with the import failures and
        dropped entirely (its other hooks too, as if it had not imported), so
        every command still works with the other plugins' rules, and `mb
        plugins` lists it as FAILED. `load_plugins` calls this eagerly so that
        `mb build` reports the failure with the others before analysis.
        """
        if self._returned is not None:
            return
        returned: dict[str, list[RuleDef]] = {}
        for info in list(self.loaded):
            module = self.manager.get_plugin(info.name)
            impl = getattr(module, "mb_rules", None)
            if impl is None:
                continue
            try:
                result = impl()
                # A generator runs its body only now: keep its errors inside the guard.
                if isinstance(result, Iterable) and not isinstance(result, str | bytes | RuleDef):
                    result = list(result)
            except _PLUGIN_FAILURES as exc:  # any failure of third-party code
                self._fail(info, exc, "mb_rules() raised ")
                self._drop(info)
                continue
            problem = _not_rule_defs(result)
            if problem:
                self._add_failure(info, problem)
                self._drop(info)
                continue
            returned[info.name] = result or []
        self._returned = returned

    def check(self) -> None:
        """Misspelt hook names in a plugin are an error (pluggy's check_pending)."""
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.manager.get_name(exc.plugin) or getattr(exc.plugin, "__name__", "?")
            known = [h for h in dir(hookspecs) if h.startswith("mb_")]
            unknown = [h for h in dir(exc.plugin) if h.startswith("mb_") and h not in known]
            if not unknown:
                raise PluginError(f"plugin {name!r}: {exc}") from None
            import difflib

            hint = difflib.get_close_matches(unknown[0], known, n=1)
            raise PluginError(
                f"plugin {name!r} implements unknown hook {unknown[0]!r}"
                + (f"; did you mean {hint[0]!r}?" if hint else f" (hooks: {', '.join(known)})")
            ) from None

    def rules(self) -> dict[str, RuleDef]:
        """Every rule by name; the same name from two plugins is an error naming both."""
        if self._rules is not None:
            return self._rules
        self.call_rule_hooks()
        assert self._returned is not None
        found: dict[str, RuleDef] = {}
        for info in self.loaded:
            if info.name not in self._returned:
                continue
            for rule_def in self._returned[info.name]:
                if rule_def.name in found:
                    other = found[rule_def.name]
                    raise PluginError(
                        f"rule {rule_def.name!r} is defined by two plugins: "
                        f"{other.plugin!r} and {info.name!r}; uninstall one of them")
                found[rule_def.name] = attrs.evolve(
                    rule_def, plugin=info.distribution or info.name,
                    plugin_version=info.version)
        self._rules = found
        return found

    def placeholder(self, request: object) -> bytes | None:
        result = self.manager.hook.mb_placeholder(request=request)
        return result if isinstance(result, bytes) else None


def _not_rule_defs(returned: object) -> str:
    """What is wrong with what an `mb_rules` hook returned, or "" (a list of rules, or None)."""
    if returned is None:
        return ""
    if not isinstance(returned, list):
        return f"mb_rules() returned {returned!r:.80}; return a list of @mb.rule results"
    for item in returned:
        if not isinstance(item, RuleDef):
            return (f"mb_rules() returned {item!r:.80} in its list; "
                    "decorate rule functions with @mb.rule")
    return ""


def _module_version(module: ModuleType) -> str:
    return str(getattr(module, "__version__", "")) or "0"


def load_plugins(extra_modules: Sequence[str] = ()) -> Plugins:
    plugins = Plugins()
    plugins.load_entry_points()
    plugins.load_modules(extra_modules)
    plugins.check()
    plugins.call_rule_hooks()
    return plugins
