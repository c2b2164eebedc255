"""End-to-end: plugins found through entry points (`plugins/mb-shout`) and through `-p module`.

`mb-shout` is pip-installed into the running interpreter once per session,
the way llm pins `llm-echo`; throwaway plugins are modules written into the
test's workspace and loaded for one run with `-p`, never through a global.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[2]
SHOUT_DIR = REPO / "plugins" / "mb-shout"
SHOUT_PROJECT = tomllib.loads((SHOUT_DIR / "pyproject.toml").read_text())["project"]


def _installed_here() -> bool:
    """True if mb-shout is already an editable install of this checkout with this metadata.

    An editable install serves the source tree directly, so only the
    metadata (version, entry points) can be stale; when it matches, a second
    `pip install` would produce the same installation.
    """
    importlib.invalidate_caches()
    try:
        dist = metadata.distribution(SHOUT_PROJECT["name"])
    except metadata.PackageNotFoundError:
        return False
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    entry_points = {ep.name: ep.value for ep in dist.entry_points if ep.group == "mb"}
    return (dist.version == SHOUT_PROJECT["version"]
            and entry_points == SHOUT_PROJECT["entry-points"]["mb"]
            and direct_url.get("dir_info", {}).get("editable") is True
            and direct_url.get("url") == SHOUT_DIR.as_uri())


def _pip_install() -> None:
    """Install without touching the index first; fall back to pip's isolated build.

    `--no-build-isolation` needs a setuptools that can build wheels in this
    venv; a fresh venv may lack it (or `wheel`), and then pip fetches the
    backend named in the plugin's `[build-system]` the ordinary way.
    """
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
               "--no-deps", "-q"]
    offline = subprocess.run([*command, "--no-build-isolation", "-e", str(SHOUT_DIR)],
                             capture_output=True, text=True, check=False)
    if offline.returncode == 0:
        return
    isolated = subprocess.run([*command, "-e", str(SHOUT_DIR)], capture_output=True, text=True, check=False)
    if isolated.returncode != 0:
        pytest.fail(f"pip could not install {SHOUT_DIR}:\n{offline.stderr}\n{isolated.stderr}")


@pytest.fixture(scope="session")
def shout_version(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Install plugins/mb-shout once per session (xdist workers share the lock)."""
    shared = tmp_path_factory.getbasetemp().parent
    with FileLock(str(shared / "mb-shout-install.lock")):
        if not _installed_here():
            _pip_install()
        assert _installed_here(), "mb-shout is not installed from this checkout after pip install"
    return str(SHOUT_PROJECT["version"])


SHOUT_WS = {
    "words/in.txt": "banana\napple\ncherry\napple\n",
    "words/BUILD.toml": """
[loud]
rule = "shout"
src = "in.txt"

[sorted]
rule = "shout_sort"
src = ":loud"
unique = true
""",
}


def _lines_about(stderr: str, word: str) -> list[str]:
    return [line for line in stderr.splitlines() if word in line]


# --- the installed plugin (entry point) ---------------------------------------------


def test_mb_plugins_lists_shout_with_its_version(mb_workspace, shout_version):
    ws = mb_workspace({})
    result = ws.run("plugins")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.split()[:1] == ["shout"]]
    assert len(lines) == 1, result.stdout
    assert shout_version in lines[0].split()
    assert "mb_shout" in lines[0] and "mb-shout" in lines[0]
    # The built-in rules are plugins on the same footing.
    assert any(line.startswith("genrule ") for line in result.stdout.splitlines())


def test_mb_rules_shows_shout(mb_workspace, shout_version):
    ws = mb_workspace({})
    result = ws.run("rules")
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("shout "))
    assert "mb-shout" in line and shout_version in line
    assert "src" in line and "suffix" in line
    detail = ws.run("rules", "shout")
    assert detail.exit_code == 0, detail.stderr
    assert "rule version 1" in detail.stdout
    assert re.search(r'^\s+suffix: str = "!"$', detail.stdout, re.MULTILINE), detail.stdout
    assert re.search(r"^\s+src: .*File \(required\)$", detail.stdout, re.MULTILINE), detail.stdout


def test_shout_target_builds_expected_content(mb_workspace, shout_version):
    ws = mb_workspace(SHOUT_WS)
    result = ws.run("build", "//words:sorted")
    assert result.exit_code == 0, result.stderr
    assert ws.out("words/loud.txt").read_text() == "BANANA\nAPPLE\nCHERRY\nAPPLE\n!"
    # `sort -u` under LC_ALL=C, fed by the Python action's output.
    assert ws.out("words/sorted.txt").read_text() == "!\nAPPLE\nBANANA\nCHERRY\n"
    assert sorted(ws.executed()) == ["//words:loud", "//words:sorted"]


def test_suffix_change_reruns_and_noop_is_cached(mb_workspace, shout_version):
    ws = mb_workspace(SHOUT_WS)
    assert ws.run("build", "//words:loud").exit_code == 0
    assert ws.executed() == ["//words:loud"]
    again = ws.run("build", "//words:loud")
    assert again.exit_code == 0, again.stderr
    assert ws.executed() == []
    assert ws.out("words/loud.txt").read_text().endswith("APPLE\n!")
    build_file = ws.path / "words/BUILD.toml"
    build_file.write_text(build_file.read_text().replace('src = "in.txt"',
                                                         'src = "in.txt"\nsuffix = "?!"'))
    changed = ws.run("build", "//words:loud")
    assert changed.exit_code == 0, changed.stderr
    assert ws.executed() == ["//words:loud"]
    assert ws.out("words/loud.txt").read_text() == "BANANA\nAPPLE\nCHERRY\nAPPLE\n?!"


def test_mb_shout_own_tests_pass(shout_version):
    """The plugin's own suite (which uses the shipped `mb_workspace` fixture) passes."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=SHOUT_DIR, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b\d+ passed\b", proc.stdout), proc.stdout


# --- plugins loaded with -p ------------------------------------------------------------

PLUGIN_MODULES = Path(__file__).resolve().parent / "plugin_modules"


def _with_plugins(modules: list[str], files: dict[str, str]) -> dict[str, str]:
    """Workspace files: plugin modules from plugin_modules/ copied into `plug/`, plus `files`."""
    return {**{f"plug/{m}.py": (PLUGIN_MODULES / f"{m}.py").read_text() for m in modules},
            **files}


def _plug_env(ws) -> dict[str, str]:
    """`-p NAME` imports NAME, so the workspace's plug/ directory goes on PYTHONPATH."""
    return {"PYTHONPATH": str(ws.path / "plug")}


TWICE_WS = _with_plugins(["twice_plugin", "broken_plugin"], {
    "p/in.txt": "ab\n",
    "p/BUILD.toml": '[double]\nrule = "twice"\nsrc = "in.txt"\n',
})


def test_plugin_from_workspace_loaded_with_p(mb_workspace):
    ws = mb_workspace(TWICE_WS)
    env = _plug_env(ws)
    listed = ws.run("-p", "twice_plugin", "plugins", env=env)
    assert listed.exit_code == 0, listed.stderr
    assert any(line.split()[:2] == ["twice_plugin", "0.3.0"] for line in listed.stdout.splitlines())
    result = ws.run("-p", "twice_plugin", "build", "//p:double", env=env)
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/double.txt").read_text() == "ab\nab\n"
    # Without -p the rule does not exist: the plugin was loaded for that run only.
    missing = ws.run("build", "//p:double", env=env)
    assert missing.exit_code == 2
    assert "unknown rule 'twice'" in missing.stderr


def test_p_may_follow_the_command(mb_workspace):
    """`mb build -p MOD`, as `-v` may follow it; both places add up."""
    ws = mb_workspace(TWICE_WS)
    env = _plug_env(ws)
    listed = ws.run("plugins", "-p", "twice_plugin", env=env)
    assert any(line.split()[:2] == ["twice_plugin", "0.3.0"] for line in listed.stdout.splitlines())
    assert ws.run("rules", "-p", "twice_plugin", "twice", env=env).exit_code == 0
    result = ws.run("-p", "broken_plugin", "build", "-p", "twice_plugin", "//p:double", env=env)
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/double.txt").read_text() == "ab\nab\n"
    assert "plugin 'broken_plugin'" in result.stderr  # the one before the command loaded too
    assert ws.run("query", "-p", "twice_plugin", "kind(twice, //...)", env=env).stdout == (
        "//p:double\n")


def test_editing_a_plugins_module_reruns_its_actions(mb_workspace):
    """The module's source digest is part of a Python action's key."""
    ws = mb_workspace(TWICE_WS)
    env = _plug_env(ws)
    assert ws.run("-p", "twice_plugin", "build", env=env).exit_code == 0
    assert ws.run("-p", "twice_plugin", "build", env=env).exit_code == 0
    assert ws.executed() == []
    module = ws.path / "plug/twice_plugin.py"
    module.write_text(module.read_text().replace("text + text", "text + text + text"))
    result = ws.run("-p", "twice_plugin", "build", env=env)
    assert result.exit_code == 0, result.stderr
    assert ws.executed() == ["//p:double"]
    assert ws.out("p/double.txt").read_text() == "ab\nab\nab\n"


def test_editing_a_plugin_packages_helper_module_reruns_its_actions(mb_workspace):
    """A private helper of the plugin's own package is keyed like the module itself."""
    ws = mb_workspace({
        **{f"plug/styled/{f.name}": f.read_text()
           for f in (PLUGIN_MODULES / "styled").glob("*.py")},
        "p/in.txt": "big duck\n",
        "p/BUILD.toml": '[title]\nrule = "styled"\nsrc = "in.txt"\n',
    })
    env = _plug_env(ws)
    first = ws.run("-p", "styled", "build", env=env)
    assert first.exit_code == 0, first.stderr
    assert ws.out("p/title.txt").read_text() == "Big Duck\n"
    helper = ws.path / "plug/styled/_style.py"
    helper.write_text(helper.read_text().replace("text.title()", "text.upper()"))
    result = ws.run("-p", "styled", "build", env=env)
    assert result.exit_code == 0, result.stderr
    assert ws.executed() == ["//p:title"]
    assert ws.out("p/title.txt").read_text() == "BIG DUCK\n"


def test_plugin_failing_to_import_is_one_line_and_others_still_build(mb_workspace):
    ws = mb_workspace(TWICE_WS)
    result = ws.run("-p", "broken_plugin", "-p", "twice_plugin", "build", "//p:double",
                    env=_plug_env(ws))
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/double.txt").read_text() == "ab\nab\n"
    about = _lines_about(result.stderr, "broken_plugin")
    assert len(about) == 1, result.stderr
    assert "RuntimeError: no GPU driver here" in about[0]
    assert "Traceback" not in result.stderr
    listed = ws.run("-p", "broken_plugin", "plugins", env=_plug_env(ws))
    assert listed.exit_code == 0
    assert "Traceback" not in listed.stderr
    assert len(_lines_about(listed.stderr, "broken_plugin")) == 1


def test_plugin_import_traceback_only_with_verbose(mb_workspace):
    ws = mb_workspace(TWICE_WS)
    result = ws.run("-v", "-p", "broken_plugin", "-p", "twice_plugin", "build", "//p:double",
                    env=_plug_env(ws))
    assert result.exit_code == 0, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert 'raise RuntimeError("no GPU driver here")' in result.stderr
    assert "broken_plugin.py" in result.stderr


def test_misspelt_hook_is_exit_2_naming_plugin_and_hook(mb_workspace):
    ws = mb_workspace(_with_plugins(["typo_hook"], {}))
    result = ws.run("-p", "typo_hook", "plugins", env=_plug_env(ws))
    assert result.exit_code == 2
    line = _lines_about(result.stderr, "mb_rule")
    assert len(line) == 1, result.stderr
    assert "typo_hook" in line[0] and "'mb_rule'" in line[0]
    assert "Traceback" not in result.stderr
    assert "<module" not in line[0]
    assert "did you mean 'mb_rules'?" in line[0]


def test_plugin_validator_error_is_one_located_line(mb_workspace):
    """A plain ValueError from a plugin's attrs validator is a user error, not a crash."""
    ws = mb_workspace(_with_plugins(["validated_plugin"], {
        "p/in.txt": "x\n",
        "p/BUILD.toml": '[w]\nrule = "pad"\nsrc = "in.txt"\nwidth = -2\n',
    }))
    result = ws.run("-p", "validated_plugin", "build", "//p:w", env=_plug_env(ws))
    assert result.exit_code == 2
    line = _lines_about(result.stderr, "'width' must be positive, got -2")
    assert len(line) == 1, result.stderr
    assert line[0] == "p/BUILD.toml:4:1: 'width' must be positive, got -2", "at the attribute"
    assert "Traceback" not in result.stderr
    assert "'' is invalid" not in line[0]


ECHO_RULE = (PLUGIN_MODULES / "echo_rule.py").read_text()


def test_two_plugins_defining_one_rule_is_exit_2_naming_both(mb_workspace):
    ws = mb_workspace({
        "plug/first_echo.py": ECHO_RULE,
        "plug/second_echo.py": ECHO_RULE,
        "p/in.txt": "x",
        "p/BUILD.toml": '[e]\nrule = "echo"\nsrc = "in.txt"\n',
    })
    result = ws.run("-p", "first_echo", "-p", "second_echo", "build", "//p:e", env=_plug_env(ws))
    assert result.exit_code == 2, result.stderr
    line = _lines_about(result.stderr, "echo")
    assert len(line) == 1, result.stderr
    assert "'echo'" in line[0] and "first_echo" in line[0] and "second_echo" in line[0]
    assert "Traceback" not in result.stderr
    assert not ws.out("p/e").exists()


def test_a_p_plugin_clashing_with_an_installed_one_names_both(mb_workspace, shout_version):
    ws = mb_workspace({"plug/my_shout.py": ECHO_RULE.replace('"echo"', '"shout"')})
    result = ws.run("-p", "my_shout", "rules", env=_plug_env(ws))
    assert result.exit_code == 2, result.stderr
    line = _lines_about(result.stderr, "'shout'")
    assert len(line) == 1, result.stderr
    assert "mb-shout" in line[0] and "my_shout" in line[0]


def test_p_of_an_installed_plugins_own_module_is_the_same_plugin(mb_workspace, shout_version):
    """`-p mb_shout` with mb-shout installed (entry point `shout = "mb_shout"`): one
    plugin, not a failure to register it twice."""
    ws = mb_workspace(SHOUT_WS)
    result = ws.run("-p", "mb_shout", "build", "//words:loud")
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    listed = ws.run("-p", "mb_shout", "plugins")
    assert "FAILED" not in listed.stdout, listed.stdout


# --- one test per hook (tests/test_meta.py checks the names) ---------------------------


def test_hook_mb_rules(mb_workspace):
    ws = mb_workspace(_with_plugins(["rules_plugin", "bad_rules"], {
        "t/in.txt": "one\ntwo\nthree\n",
        "t/BUILD.toml": """
[n]
rule = "count"
src = "in.txt"

[chars]
rule = "count"
src = ":thrice"
unit = "chars"

[thrice]
rule = "repeat"
src = "in.txt"
times = 3
""",
    }))
    env = _plug_env(ws)
    rules = ws.run("-p", "rules_plugin", "rules", env=env)
    assert rules.exit_code == 0, rules.stderr
    names = {line.split()[0] for line in rules.stdout.splitlines() if line.strip()}
    assert {"count", "repeat", "genrule", "filegroup"} <= names
    detail = ws.run("-p", "rules_plugin", "rules", "count", env=env)
    assert "rule version 2" in detail.stdout and "Count the lines" in detail.stdout
    built = ws.run("-p", "rules_plugin", "build", "//t/...", env=env)
    assert built.exit_code == 0, built.stderr
    assert ws.out("t/n.txt").read_text() == "3 lines\n"
    assert ws.out("t/thrice.txt").read_text() == "one\ntwo\nthree\n" * 3
    assert ws.out("t/chars.txt").read_text() == f"{len('one two three ') * 3} chars\n"
    # A hook that returns something other than @mb.rule results fails that plugin
    # alone, like a failed import: one warning, and the other plugins' rules work.
    warning = ("warning: plugin 'bad_rules' (bad_rules) failed to load: mb_rules() returned "
               "'count' in its list; decorate rule functions with @mb.rule")
    bad = ws.run("-p", "rules_plugin", "-p", "bad_rules", "build", "//t:n", env=env)
    assert bad.exit_code == 0, bad.stderr
    assert _lines_about(bad.stderr, "bad_rules") == [warning]
    listed = ws.run("-p", "bad_rules", "plugins", env=env)
    assert listed.exit_code == 0
    assert _lines_about(listed.stdout, "bad_rules") == [
        "bad_rules 0  bad_rules  FAILED: mb_rules() returned 'count' in its list; "
        "decorate rule functions with @mb.rule"]


def test_hook_mb_placeholder(mb_workspace, shout_version):
    ws = mb_workspace(_with_plugins(["draft_placeholders"], {
        "v/BUILD.toml": """
[loud]
rule = "shout"
src = "script.txt"

[copy]
rule = "genrule"
srcs = ["notes.bin"]
outs = ["copy.bin"]
cmd = "cp $< $@"
""",
    }))
    env = _plug_env(ws)
    strict = ws.run("-p", "draft_placeholders", "build", "//v:loud", env=env)
    assert strict.exit_code == 1, "without --placeholders a missing source fails the build"
    assert "v/script.txt" in strict.stderr
    result = ws.run("-p", "draft_placeholders", "build", "--placeholders", "//v/...", env=env)
    assert result.exit_code == 0, result.stderr
    # The plugin's bytes went through the shout action: upper-cased, suffix appended.
    assert ws.out("v/loud.txt").read_text() == "[DRAFT OF V/SCRIPT.TXT FOR //V:LOUD]\n!"
    # For a type the plugin declines (None), mb's built-in text placeholder is used.
    assert ws.out("v/copy.bin").read_text().startswith("placeholder: v/notes.bin is missing")
    assert "[provisional]" in result.stdout
    used = [e for e in ws.last_build_events() if e["type"] == "placeholder.used"]
    assert {e["data"]["path"] for e in used} == {"v/script.txt", "v/notes.bin"}


def test_atexit_functions_of_plugins_still_run(mb_workspace):
    """`mb` skips the interpreter's teardown only when nothing registered an atexit
    function (cli.run); a plugin's function runs, and the exit code is kept."""
    ws = mb_workspace(_with_plugins(["exit_note"], {
        "p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "echo hi > $@"\n'}))
    note = ws.path / "note.txt"
    env = {**_plug_env(ws), "EXIT_NOTE": str(note)}
    result = ws.run("-p", "exit_note", "build", "//p:t", env=env)
    assert result.exit_code == 0, result.stderr
    assert note.read_text() == "ran\n"
    note.unlink()
    failing = ws.run("-p", "exit_note", "build", "//p:missing", env=env)
    assert failing.exit_code == 2
    assert note.read_text() == "ran\n"


def test_mb_rules_hook_that_raises_is_one_line_and_other_plugins_still_work(mb_workspace):
    """A NameError in one plugin's `mb_rules` is that plugin's failure, like a failed
    import: one line naming it, no traceback, and every other plugin's rules work."""
    ws = mb_workspace({**TWICE_WS, "plug/raising_rules.py":
                       (PLUGIN_MODULES / "raising_rules.py").read_text()})
    env = _plug_env(ws)
    result = ws.run("-p", "raising_rules", "-p", "twice_plugin", "build", "//p:double", env=env)
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/double.txt").read_text() == "ab\nab\n"
    about = _lines_about(result.stderr, "raising_rules")
    assert len(about) == 1, result.stderr
    assert "NameError: name 'undefined_rule' is not defined" in about[0]
    assert "mb_rules" in about[0]
    assert "Traceback" not in result.stderr
    # A target of a built-in rule, with only the failing plugin loaded.
    ws.write({"q/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "echo hi > $@"\n'})
    builtin = ws.run("-p", "raising_rules", "build", "//q:t", env=env)
    assert builtin.exit_code == 0, builtin.stderr
    listed = ws.run("-p", "raising_rules", "plugins", env=env)
    assert listed.exit_code == 0, listed.stderr
    line = [entry for entry in listed.stdout.splitlines() if entry.startswith("raising_rules ")]
    assert len(line) == 1 and "FAILED: mb_rules() raised NameError" in line[0], listed.stdout
    rules = ws.run("-p", "raising_rules", "-p", "twice_plugin", "rules", env=env)
    assert rules.exit_code == 0, rules.stderr
    assert any(entry.startswith("twice ") for entry in rules.stdout.splitlines())
    assert "Traceback" not in rules.stderr
    verbose = ws.run("-v", "-p", "raising_rules", "build", "//q:t", env=env)
    assert verbose.exit_code == 0, verbose.stderr
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "raising_rules.py" in verbose.stderr


def test_mb_rules_shows_defaults_as_a_build_file_would_write_them(mb_workspace):
    ws = mb_workspace(_with_plugins(["defaults_plugin"], {}))
    result = ws.run("-p", "defaults_plugin", "rules", "defaults", env=_plug_env(ws))
    assert result.exit_code == 0, result.stderr
    shown = {line.split(":")[0].strip(): line.strip()
             for line in result.stdout.splitlines()[2:] if ":" in line}
    assert shown["src"] == "src: mb.File (required)"
    assert shown["title"] == 'title: str = ""'
    assert shown["loud"] == "loud: bool = true"
    assert shown["ratio"] == "ratio: float = 1.5"
    assert shown["note"] == "note: str | None (optional)"
    assert shown["extra"] == "extra: mb.Files = []"
    assert shown["names"] == 'names: tuple[str, ...] = ["a", "b c"]'
    # Factory defaults are shown too, as inline tables with TOML keys and strings.
    assert shown["vars"] == 'vars: dict[str, str] = { title = "Why \\"ducks\\"", "a b" = "x" }'
    assert shown["env"] == "env: dict[str, str] = {}"
    assert shown["sizes"] == "sizes: list[int] = []"
    assert shown["margins"] == 'margins: Margins = { top = 0, unit = "px" }'
    genrule = ws.run("rules", "genrule")
    assert genrule.exit_code == 0, genrule.stderr
    assert re.search(r"^\s+srcs: mb\.Files = \[\]$", genrule.stdout, re.MULTILINE), genrule.stdout
    assert re.search(r"^\s+env: dict\[str, str\] = \{\}$", genrule.stdout, re.MULTILINE)
    assert "Files(" not in genrule.stdout


# --- Python actions: io.state_dir and failure messages ----------------------------------

ACTIONS_WS = _with_plugins(["action_state"], {"p/BUILD.toml": """
[runs]
rule = "count_runs"

[flaky]
rule = "transient"

[rejected]
rule = "rejected"

[crash]
rule = "crash"

[quota]
rule = "quota"
"""})


def test_state_dir_exists_in_a_fresh_workspace(mb_workspace):
    """`io.state_dir` is `.mb/providers/`; an action can write into it without creating it."""
    ws = mb_workspace(ACTIONS_WS)
    assert not (ws.path / ".mb").exists()
    result = ws.run("-p", "action_state", "build", "//p:runs", env=_plug_env(ws))
    assert result.exit_code == 0, result.stderr
    assert (ws.path / ".mb/providers/runs.txt").read_text() == "1"
    assert ws.out("p/runs.txt").read_text() == "1\n"


def _failure_events(ws, target: str) -> tuple[list[dict], list[dict]]:
    events = ws.last_build_events()
    return ([e for e in events if e["type"] == "action.retry" and e["target"] == target],
            [e for e in events if e["type"] == "action.failed" and e["target"] == target])


@pytest.mark.parametrize(("name", "error", "retried"), [
    ("flaky", "transient failure 1", True),
    ("rejected", "the server refused the workflow (HTTP 400) (not retryable)", False),
    ("crash", "ValueError: bad value 7", True),
    ("quota", "QuotaExceeded: monthly quota used up", True),
])
def test_python_action_failure_carries_its_message(mb_workspace, name, error, retried):
    """`data.error` and the retrying/FAILED lines say why, as `command exited with status 1`
    does for a command: the ActionError's message, else `Type: message` (first line)."""
    ws = mb_workspace(ACTIONS_WS)
    result = ws.run("-p", "action_state", "build", f"//p:{name}", env=_plug_env(ws))
    assert result.exit_code == 1, result.stderr
    retries, failed = _failure_events(ws, f"//p:{name}")
    assert [e["data"]["error"] for e in failed] == [error]
    assert [e["data"]["error"] for e in retries] == ([error] if retried else [])
    assert f"FAILED //p:{name}: {error}" in result.stderr.splitlines()
    if retried:
        assert f"retrying //p:{name} (attempt 2): {error}" in result.stderr.splitlines()
    assert "Python action failed" not in result.stderr


TYPED_PLUGIN = '''"""Attribute types written with real (not string) annotations, as many plugins do."""

from typing import Literal, Optional

import attrs
import mb
from mb import File


@attrs.frozen
class TypedAttrs:
    src: File
    extra: mb.Files = mb.Files()
    ref: mb.Label | None = None
    words: list[str] = attrs.field(factory=list)
    vars: dict[str, str] = attrs.field(factory=dict)
    size: Optional[int] = None
    mode: Literal["fast", "good"] = "fast"


@mb.rule("typed", attrs=TypedAttrs, version="1")
def typed(ctx: mb.RuleContext, a: TypedAttrs) -> None:
    """Declare nothing; only its attribute types matter."""


@mb.hookimpl
def mb_rules():
    return [typed]
'''


def test_mb_rules_shows_types_as_a_plugin_author_writes_them(mb_workspace):
    """`mb.File`, not `File`; `mb.Label`, not the internal `mb.labels.Label`; and the item
    types of lists and tables (docs/plugins.md)."""
    ws = mb_workspace({"plug/typed_plugin.py": TYPED_PLUGIN})
    result = ws.run("-p", "typed_plugin", "rules", "typed", env=_plug_env(ws))
    assert result.exit_code == 0, result.stderr
    shown = [line.strip() for line in result.stdout.splitlines()[2:-1]]
    assert shown == ["src: mb.File (required)", "extra: mb.Files = []",
                     "ref: mb.Label | None (optional)", "words: list[str] = []",
                     "vars: dict[str, str] = {}", "size: int | None (optional)",
                     "mode: Literal['fast', 'good'] = \"fast\""], result.stdout


def test_mb_rules_with_an_empty_rule_name_is_an_error(mb_workspace):
    """`mb rules ''` names a rule that does not exist; it does not list every rule."""
    ws = mb_workspace({})
    result = ws.run("rules", "")
    assert result.exit_code == 2
    assert result.stderr.startswith("unknown rule ''") and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


# --- the entry-point index (mb.plugin_index) ----------------------------------------

GENRULE_WS = {
    "p/in.txt": "hi\n",
    "p/BUILD.toml": '[g]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["o.txt"]\ncmd = "cp $< $@"\n',
}


def _index_env(tmp_path: Path) -> dict[str, str]:
    # No racy window: the venv (or mb-shout, installed by another test) may be seconds old.
    return {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "MB_RACY_SECONDS": "0"}


def test_mb_plugins_says_the_same_from_the_index(mb_workspace, tmp_path):
    ws = mb_workspace({})
    computed = ws.run("plugins", env=_index_env(tmp_path))
    assert computed.exit_code == 0, computed.stderr
    assert list((tmp_path / "xdg" / "mb" / "entry-points").glob("*.json"))
    indexed = ws.run("plugins", env=_index_env(tmp_path))
    assert (indexed.exit_code, indexed.stdout, indexed.stderr) == (0, computed.stdout, "")
    assert any(line.startswith("genrule ") for line in indexed.stdout.splitlines())


def _imported(stderr: str) -> set[str]:
    """The modules `python -X importtime` reported (PYTHONPROFILEIMPORTTIME)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_a_clean_build_with_the_index_in_place_imports_no_importlib_metadata(
        mb_workspace, tmp_path):
    """The cost it saves: importlib.metadata pulls in email, zipfile and csv, and
    nothing else on a full build's path imports it."""
    ws = mb_workspace(GENRULE_WS)
    first = ws.run("build", env=_index_env(tmp_path))  # computed, and the index written
    assert first.exit_code == 0, first.stderr
    # Another test's `pip install` (mb-shout, once per session) may change the
    # environment between two runs: then the next one computes them again.
    for _ in range(3):
        for state in (".mb", "mb-out"):  # a clean build: analysis, plugins and all
            shutil.rmtree(ws.path / state)
        result = ws.run("build", env={**_index_env(tmp_path), "PYTHONPROFILEIMPORTTIME": "1"})
        assert result.exit_code == 0, result.stderr
        imported = _imported(result.stderr)
        assert "mb.plugins" in imported and "mb.plugin_index" in imported, "the full path"
        if "importlib.metadata" not in imported:
            break
    assert "importlib.metadata" not in imported
    assert ws.out("p/o.txt").read_text() == "hi\n"
