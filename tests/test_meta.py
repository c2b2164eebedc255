"""Meta-tests: rules the code base keeps about itself (STYLE §7, pytest's `testing/test_meta.py`).

- every hook in `core/hookspecs.py` has a heading with its exact signature in
  `docs/plugins.md` and a test named `test_hook_<name>` under `tests/`;
- every module of `mb`, `mb.rules` and `mb.sandbox` imports cleanly in a
  fresh interpreter with warnings turned into errors;
- rule modules use only the public plugin API (they are plugins like any
  other, so whatever they need a third-party plugin needs too);
- `blake3` is imported only in `core/digest.py`, so the digest can change in
  one place.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mb
import mb.rules
import mb.sandbox
import pytest

REPO = Path(__file__).resolve().parents[1]
HOOKSPECS = REPO / "core" / "hookspecs.py"
PLUGINS_DOC = REPO / "docs" / "plugins.md"

#: `mb` submodules a rule module may import besides the names in `mb.__all__`.
RULE_ALLOWED_SUBMODULES = frozenset({"providers", "context", "labels", "ruledef"})
#: Source directories whose names only exist in the checkout, never once installed.
SOURCE_DIR_NAMES = frozenset({"core", "rules", "sandbox"})


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# --- hooks: documented and tested ------------------------------------------------------


def _is_hookspec(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Name) and target.id == "hookspec"


def hook_signatures() -> dict[str, str]:
    """`{name: "name(args) -> returns"}` for every `@hookspec` function, as written."""
    found: dict[str, str] = {}
    for node in _parse(HOOKSPECS).body:
        if isinstance(node, ast.FunctionDef) and any(map(_is_hookspec, node.decorator_list)):
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            found[node.name] = f"{node.name}({ast.unparse(node.args)}){returns}"
    return found


def doc_headings() -> list[str]:
    """Markdown headings of docs/plugins.md without '#' marks and backticks."""
    headings = []
    in_fence = False
    for line in PLUGINS_DOC.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            headings.append(line.lstrip("#").strip().replace("`", ""))
    return headings


def test_hookspecs_are_found() -> None:
    """Guards the two tests below against passing because nothing was parsed."""
    assert {"mb_rules", "mb_placeholder"} <= set(hook_signatures())


@pytest.mark.parametrize("name", sorted(hook_signatures()))
def test_every_hook_is_documented_with_its_signature(name: str) -> None:
    signature = hook_signatures()[name]
    assert any(signature in heading for heading in doc_headings()), (
        f"docs/plugins.md needs a heading containing the signature `{signature}`")


def test_no_documented_hook_is_stale() -> None:
    """A heading that documents an `mb_*(...)` hook must match a current hookspec."""
    signatures = set(hook_signatures().values())
    for heading in doc_headings():
        if heading.startswith("mb_") and "(" in heading:
            assert any(sig in heading for sig in signatures), (
                f"docs/plugins.md documents {heading!r}, which core/hookspecs.py does not define")


def _test_function_names() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(_parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
    return names


def test_every_hook_has_a_test() -> None:
    defined = _test_function_names()
    missing = [f"test_hook_{name}" for name in sorted(hook_signatures())
               if f"test_hook_{name}" not in defined]
    assert not missing, f"add tests under tests/ named {missing}"


# --- every module imports cleanly under -W error --------------------------------------


def _modules() -> list[str]:
    names: list[str] = []
    for package in (mb, mb.rules, mb.sandbox):
        names.append(package.__name__)
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if not info.name.endswith(".__main__"):  # importing it runs the CLI
                names.append(info.name)
    return sorted(set(names))


def test_modules_are_found() -> None:
    found = set(_modules())
    assert {"mb.cli", "mb.rules.genrule", "mb.sandbox.worker"} <= found


@pytest.mark.parametrize("module", _modules())
def test_module_imports_cleanly_with_warnings_as_errors(module: str) -> None:
    """A fresh interpreter per module, so one module's imports cannot hide another's cycle."""
    proc = subprocess.run([sys.executable, "-W", "error", "-c", f"import {module}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


# --- rule modules use only the public API ---------------------------------------------


def _resolve_from(node: ast.ImportFrom) -> str:
    """The absolute module of a `from X import ...` written inside `mb.rules`."""
    if node.level == 0:
        return node.module or ""
    base = ["mb", "rules"][: max(0, 2 - (node.level - 1))]
    return ".".join([*base, *([node.module] if node.module else [])])


def _check_mb_module(module: str) -> str | None:
    """None if a rule module may import `module`, else why not."""
    parts = module.split(".")
    if parts[0] in SOURCE_DIR_NAMES:
        return f"'{module}' is a source directory, not an installed module; import it as mb.*"
    if parts[0] != "mb" or module == "mb":
        return None
    if len(parts) == 2 and parts[1] in RULE_ALLOWED_SUBMODULES:
        return None
    if parts[1] == "rules" and (len(parts) == 2 or parts[2].startswith("_")):
        return None
    return f"'{module}' is engine internals; use the public API (mb.*, {sorted(RULE_ALLOWED_SUBMODULES)})"


def rule_module_violations(tree: ast.Module) -> Iterator[str]:
    public = set(mb.__all__) | RULE_ALLOWED_SUBMODULES | {"__version__"}
    mb_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                problem = _check_mb_module(alias.name)
                if problem:
                    yield f"line {node.lineno}: {problem}"
                if alias.name == "mb" or (alias.asname is None and alias.name.startswith("mb.")):
                    mb_aliases.add(alias.asname or "mb")
        elif isinstance(node, ast.ImportFrom):
            module = _resolve_from(node)
            problem = _check_mb_module(module)
            if problem:
                yield f"line {node.lineno}: {problem}"
            for alias in node.names:
                if module == "mb" and alias.name not in public:
                    yield f"line {node.lineno}: 'mb.{alias.name}' is not public API"
                if module == "mb.rules" and not alias.name.startswith("_"):
                    yield (f"line {node.lineno}: 'mb.rules.{alias.name}' is another rule "
                           "module; share code through a rules/_helper.py")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in mb_aliases and node.attr not in public | {"rules"}):
            yield f"line {node.lineno}: 'mb.{node.attr}' is not public API"


def _rule_files() -> list[Path]:
    return sorted((REPO / "rules").glob("*.py"))


def test_rule_module_checker_catches_internals() -> None:
    """The checker itself: allowed and forbidden forms of import."""
    allowed = ast.parse(
        "import attrs\nimport mb\nimport mb.providers\nfrom mb import File, RuleError\n"
        "from mb.context import Tool\nfrom mb.labels import parse_label\n"
        "from mb.rules._espeak import speak\nfrom . import _espeak\nfrom ._ffmpeg import x\n"
        "x = mb.ruledef.RuleDef\ny = mb.File\n")
    assert list(rule_module_violations(allowed)) == []
    forbidden = ast.parse(
        "import mb.cache\nfrom mb.scheduler import Scheduler\nfrom mb import executor\n"
        "from .. import analysis\nfrom mb.rules.genrule import genrule\nimport core.digest\n"
        "def f():\n    from mb.errors import UserError\n"
        "z = mb.statcache\n")
    problems = list(rule_module_violations(forbidden))
    assert len(problems) == 8, problems
    assert all(p.startswith("line ") for p in problems)


@pytest.mark.parametrize("path", _rule_files(), ids=lambda p: p.name)
def test_rule_module_imports_only_public_api(path: Path) -> None:
    problems = list(rule_module_violations(_parse(path)))
    assert not problems, f"rules/{path.name}:\n" + "\n".join(problems)


# --- blake3 lives in one module ---------------------------------------------------------


def _imports_of(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_blake3_is_imported_only_in_digest() -> None:
    sources = [*(REPO / "core").rglob("*.py"), *(REPO / "rules").rglob("*.py"),
               *(REPO / "sandbox").rglob("*.py"), *(REPO / "plugins").glob("*/src/**/*.py")]
    assert REPO / "core" / "digest.py" in sources
    offenders = [f"{path.relative_to(REPO)}:{line}" for path in sources
                 if path != REPO / "core" / "digest.py"
                 for line, module in _imports_of(_parse(path))
                 if module.split(".")[0] == "blake3"]
    assert not offenders, f"import blake3 only in core/digest.py (use mb.digest): {offenders}"
    digest_imports = {module for _, module in _imports_of(_parse(REPO / "core" / "digest.py"))}
    assert "blake3" in digest_imports


# --- a full build loads every rule plugin, not what the rules run with -------------------


def test_loading_the_built_in_plugins_imports_no_renderer_or_client() -> None:
    """Every full build registers all built-in rules; the libraries their actions
    (or their analysis of such a target) use are imported only then."""
    heavy = ("resvg_py", "mb.rules._comfy_workflow", "mb.rules._media_probe",
             "mb.rules._espeak", "ctypes", "httpx", "websockets", "PIL")
    code = ("import sys\nfrom mb.plugins import load_plugins\nload_plugins().rules()\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found == "[]"


def test_a_full_build_path_imports_no_error_path_module() -> None:
    """tomllib words TOML syntax errors and difflib suggests names: both are
    imported where a mistake is reported, not at every build's start."""
    code = ("import sys\nimport mb.cli, mb.cmd_build, mb.build\n"
            "from mb.plugins import load_plugins\nload_plugins().rules()\n"
            "print(sorted(m for m in ('tomllib', 'difflib') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found == "[]"
