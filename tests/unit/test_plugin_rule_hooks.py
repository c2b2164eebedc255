"""`mb_rules` hooks of loaded plugins, each called under its own guard (`mb.plugins`)."""

from __future__ import annotations

import re
import sys
import types

import attrs
import pytest

import mb
from mb.plugins import Plugins


@attrs.frozen
class _NoAttrs:
    pass


@mb.rule("hooked", attrs=_NoAttrs)
def _hooked(ctx: mb.RuleContext, a: _NoAttrs) -> None:
    """Declares nothing."""


def _plugins(monkeypatch: pytest.MonkeyPatch, **hooks: object) -> Plugins:
    """A manager with one `-p` module per keyword, its `mb_rules` being the value."""
    plugins = Plugins()
    for name, hook in hooks.items():
        module = types.ModuleType(name)
        module.mb_rules = mb.hookimpl(hook)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
    plugins.load_modules(list(hooks))
    plugins.check()
    return plugins


def _raises() -> list[object]:
    raise NameError("name 'undefined_rule' is not defined")


def _generator_that_raises():  # type: ignore[no-untyped-def]
    yield _hooked
    raise RuntimeError("half way")


def test_a_raising_hook_fails_its_plugin_only(monkeypatch):
    plugins = _plugins(monkeypatch, good=lambda: [_hooked], bad=_raises,
                       lazy=_generator_that_raises)
    plugins.call_rule_hooks()
    assert [info.name for info in plugins.loaded] == ["good"]
    errors = {f.name: f.error for f in plugins.failures}
    assert errors == {
        "bad": "mb_rules() raised NameError: name 'undefined_rule' is not defined",
        "lazy": "mb_rules() raised RuntimeError: half way",
    }
    assert "_raises" in plugins.failures[0].traceback
    assert set(plugins.rules()) == {"hooked"}
    # Dropped as if it had not imported: none of its hooks is called again.
    assert plugins.manager.get_plugin("bad") is None


def test_hooks_are_called_once(monkeypatch):
    calls = []
    plugins = _plugins(monkeypatch, counted=lambda: calls.append(1) or [_hooked])
    plugins.call_rule_hooks()
    plugins.rules()
    plugins.call_rule_hooks()
    assert calls == [1]


@pytest.mark.parametrize(("returned", "error"), [
    (_hooked, r"^mb_rules\(\) returned RuleDef\(.*; return a list of @mb\.rule results$"),
    ("hooked", r"^mb_rules\(\) returned 'hooked'; return a list of @mb\.rule results$"),
    (3, r"^mb_rules\(\) returned 3; return a list of @mb\.rule results$"),
    ([_hooked, "other"], r"^mb_rules\(\) returned 'other' in its list; decorate rule "
                         r"functions with @mb\.rule$"),
])
def test_returning_something_other_than_a_list_of_rules_fails_that_plugin_only(
        monkeypatch, returned, error):
    """Like a hook that raises: reported, dropped, and the other plugins' rules still work
    (before, every build failed while `mb plugins` listed the plugin as fine)."""
    plugins = _plugins(monkeypatch, good=lambda: [_hooked], odd=lambda: returned)
    assert set(plugins.rules()) == {"hooked"}
    assert [info.name for info in plugins.loaded] == ["good"]
    [failure] = plugins.failures
    assert failure.name == "odd"
    assert re.match(error, failure.error), failure.error
    assert plugins.manager.get_plugin("odd") is None


def test_a_hook_returning_none_declares_no_rules(monkeypatch):
    plugins = _plugins(monkeypatch, empty=lambda: None)
    assert plugins.rules() == {}
    assert plugins.failures == []


@pytest.mark.parametrize("name", ['we"ird', "sp ace", "x]y", "1st", "", "dash-ed"])
def test_a_rule_name_must_be_one_word(name):
    """It is written in BUILD.toml, in `kind(...)` and in graph output unquoted; the
    error is raised when the plugin module is imported, so the plugin fails to load."""
    with pytest.raises(TypeError, match="must be one word of letters, digits and _"):
        mb.rule(name, attrs=_NoAttrs)(lambda ctx, a: None)


@pytest.mark.parametrize("name", ["genrule", "svg_render", "_private", "x2"])
def test_rule_names_like_the_built_in_ones_are_fine(name):
    assert mb.rule(name, attrs=_NoAttrs)(lambda ctx, a: None).name == name


def test_attributes_every_rule_has_are_reserved():
    @attrs.frozen
    class Clashing:
        tags: list[str] = attrs.Factory(list)

    with pytest.raises(TypeError, match=r"attributes \['tags'\] are reserved for every rule"):
        mb.rule("clash", attrs=Clashing)(lambda ctx, a: None)
