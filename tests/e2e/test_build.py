"""End-to-end: the `mb build` command on small genrule workspaces, the way a user runs it."""

from __future__ import annotations

import json
import os
import stat

GENRULES = {
    "a/in.txt": "hello\n",
    "a/BUILD.toml": """
[up]
rule = "genrule"
srcs = ["in.txt"]
outs = ["up.txt"]
cmd = "tr a-z A-Z < $< > $@"

[first]
rule = "genrule"
srcs = [":up"]
outs = ["first.txt"]
cmd = "head -c 3 $< > $@"

[group]
rule = "filegroup"
srcs = [":first", "in.txt"]
""",
    "b/BUILD.toml": """
[cat]
rule = "genrule"
srcs = ["//a:group"]
outs = ["cat.txt"]
cmd = "cat $(SRCS) > $@"
""",
}


def test_build_outputs_content_and_lists_outputs(mb_workspace):
    ws = mb_workspace(GENRULES)
    result = ws.run("build", "//b:cat")
    assert result.exit_code == 0, result.stderr
    assert ws.out("a/up.txt").read_text() == "HELLO\n"
    assert ws.out("b/cat.txt").read_text() == "HELhello\n"
    assert "//b:cat (built)" in result.stdout
    assert "mb-out/b/cat.txt" in result.stdout
    mode = ws.out("b/cat.txt").stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), "outputs are read-only"


def test_second_build_runs_nothing(mb_workspace):
    ws = mb_workspace(GENRULES)
    assert ws.run("build").exit_code == 0
    assert sorted(ws.executed()) == ["//a:first", "//a:up", "//b:cat"]
    assert ws.run("build").exit_code == 0
    assert ws.executed() == []
    finished = [e for e in ws.last_build_events() if e["type"] == "build.finished"][0]
    assert finished["data"]["counts"] == {"executed": 0, "cached": 3, "failed": 0, "skipped": 0}


def test_edit_reruns_only_affected_and_early_cutoff_stops(mb_workspace):
    ws = mb_workspace(GENRULES)
    assert ws.run("build").exit_code == 0
    # 'hello' -> 'help!': up changes, first ('HEL') stays the same, so cat is cut off.
    (ws.path / "a/in.txt").write_text("help!\n")
    assert ws.run("build").exit_code == 0
    assert sorted(ws.executed()) == ["//a:first", "//a:up", "//b:cat"]  # cat reads in.txt too
    (ws.path / "a/in.txt").write_text("help!\n")  # same bytes, new mtime
    assert ws.run("build").exit_code == 0
    assert ws.executed() == []


def test_early_cutoff_when_output_unchanged(mb_workspace):
    ws = mb_workspace({
        "p/src.txt": "abc-1\n",
        "p/BUILD.toml": """
[head]
rule = "genrule"
srcs = ["src.txt"]
outs = ["head.txt"]
cmd = "cut -c1-3 $< > $@"

[final]
rule = "genrule"
srcs = [":head"]
outs = ["final.txt"]
cmd = "rev $< > $@"
""",
    })
    assert ws.run("build").exit_code == 0
    (ws.path / "p/src.txt").write_text("abc-2\n")
    assert ws.run("build").exit_code == 0
    assert ws.executed() == ["//p:head"]
    assert ws.out("p/final.txt").read_text() == "cba\n"


def test_deleted_output_is_restored_from_cache(mb_workspace):
    ws = mb_workspace(GENRULES)
    assert ws.run("build").exit_code == 0
    import shutil

    shutil.rmtree(ws.path / "mb-out")
    assert ws.run("build").exit_code == 0
    assert ws.executed() == []
    assert ws.out("b/cat.txt").read_text() == "HELhello\n"


def test_copy_of_workspace_with_shared_cache_rebuilds_nothing(mb_workspace, tmp_path):
    cache = tmp_path / "shared-cache"
    one = mb_workspace(GENRULES, subdir="one")
    two = mb_workspace(GENRULES, subdir="two")
    env = {"MB_CACHE_DIR": str(cache)}
    assert one.run("build", env=env).exit_code == 0
    assert len(one.executed()) == 3
    assert two.run("build", env=env).exit_code == 0
    assert two.executed() == []
    assert two.out("b/cat.txt").read_text() == "HELhello\n"


def test_no_cache_flag_and_tag(mb_workspace):
    ws = mb_workspace({"t/BUILD.toml": """
[a]
rule = "genrule"
outs = ["a.txt"]
cmd = "echo a > $@"

[b]
rule = "genrule"
outs = ["b.txt"]
cmd = "echo b > $@"
tags = ["no-cache"]
"""})
    assert ws.run("build").exit_code == 0
    assert ws.run("build").exit_code == 0
    assert ws.executed() == ["//t:b"]
    assert ws.run("build", "--no-cache").exit_code == 0
    assert sorted(ws.executed()) == ["//t:a", "//t:b"]


def test_sandbox_has_only_declared_inputs_and_scrubbed_env(mb_workspace):
    ws = mb_workspace({
        "s/declared.txt": "d\n",
        "s/undeclared.txt": "u\n",
        "s/BUILD.toml": """
[probe]
rule = "genrule"
srcs = ["declared.txt"]
outs = ["probe.txt"]
env = { GREETING = "hi" }
cmd = "ls -a s > $@; env | sort | grep -v '^_=' | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^OLDPWD=' >> $@; pwd >> $@"
""",
    })
    result = ws.run("build", env={"SECRET_TOKEN": "do-not-leak"})
    assert result.exit_code == 0, result.stderr
    text = ws.out("s/probe.txt").read_text()
    assert "declared.txt" in text and "undeclared.txt" not in text
    names = sorted(line.split("=", 1)[0] for line in text.splitlines() if "=" in line)
    assert names == ["GREETING", "HOME", "LANG", "PATH", "SOURCE_DATE_EPOCH", "TMPDIR", "TZ"]
    assert "LANG=C.UTF-8" in text and "TZ=UTC" in text and "SOURCE_DATE_EPOCH=0" in text
    assert "do-not-leak" not in text
    sandbox_root = text.strip().splitlines()[-1]
    assert f"HOME={sandbox_root}/" in text and f"TMPDIR={sandbox_root}/" in text
    # Kept for the next build's actions (sandbox.base.prepare_root), but emptied.
    left = sorted(os.path.relpath(os.path.join(d, n), sandbox_root)
                  for d, dirs, files in os.walk(sandbox_root) for n in dirs + files)
    assert left == [".home", ".tmp"], "nothing the action saw or wrote stays afterwards"


def test_missing_declared_output_is_named(mb_workspace):
    ws = mb_workspace({"m/BUILD.toml": """
[lazy]
rule = "genrule"
outs = ["made.txt", "forgotten.txt"]
cmd = "echo x > m/made.txt"
"""})
    result = ws.run("build")
    assert result.exit_code == 1
    assert "FAILED //m:lazy: declared output m/forgotten.txt was not created" in result.stderr


def test_missing_source_names_file_and_target(mb_workspace):
    ws = mb_workspace({"m/BUILD.toml": """
[needs]
rule = "genrule"
srcs = ["nowhere.txt"]
outs = ["o.txt"]
cmd = "cp $< $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 1
    assert "FAILED //m:needs: missing source file m/nowhere.txt (needed by //m:needs)" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_source_beside_a_reader_of_its_output_is_not_a_cycle(mb_workspace):
    # `words` reads up1's output through a file label; up1's own source is
    # missing. The build names the missing file (exit 1), not a cycle (exit 2),
    # and builds both once the file exists.
    ws = mb_workspace({"m/BUILD.toml": """
[up1]
rule = "genrule"
srcs = ["one.txt"]
outs = ["up1.txt"]
cmd = "tr a-z A-Z < $< > $@"

[words]
rule = "genrule"
srcs = ["up1.txt"]
outs = ["words.txt"]
cmd = "wc -w < $< > $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 1, result.stderr
    assert "FAILED //m:up1: missing source file m/one.txt (needed by //m:up1)" in result.stderr
    assert "cycle" not in result.stderr and "Traceback" not in result.stderr
    (ws.path / "m/one.txt").write_text("one two three\n")
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("m/words.txt").read_text().strip() == "3"


def test_failure_shows_stderr_tail_and_keeps_successes_cached(mb_workspace):
    ws = mb_workspace({"f/BUILD.toml": """
[good]
rule = "genrule"
outs = ["good.txt"]
cmd = "echo good > $@"

[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "echo something broke >&2; exit 3"
"""})
    result = ws.run("build", "-k")
    assert result.exit_code == 1
    assert "FAILED //f:bad: command exited with status 3" in result.stderr
    assert "something broke" in result.stderr
    assert ws.out("f/good.txt").read_text() == "good\n"
    (ws.path / "f/BUILD.toml").write_text(
        (ws.path / "f/BUILD.toml").read_text().replace("echo something broke >&2; exit 3",
                                                       "echo fixed > $@"))
    assert ws.run("build").exit_code == 0
    assert ws.executed() == ["//f:bad"]


def test_without_keep_going_dependents_are_skipped(mb_workspace):
    ws = mb_workspace({"f/BUILD.toml": """
[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "exit 1"

[after]
rule = "genrule"
srcs = [":bad"]
outs = ["after.txt"]
cmd = "cp $< $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 1
    finished = [e for e in ws.last_build_events() if e["type"] == "build.finished"][0]
    assert finished["data"]["status"] == "failed"
    assert finished["data"]["counts"]["failed"] == 1
    assert finished["data"]["counts"]["skipped"] == 1


def test_timeout_and_retries(mb_workspace):
    ws = mb_workspace({"r/BUILD.toml": """
[slow]
rule = "genrule"
outs = ["slow.txt"]
cmd = "sleep 30; echo > $@"
timeout = 0.5

[flaky]
rule = "genrule"
outs = ["flaky.txt"]
retries = 2
cmd = "echo flaky >&2; exit 1"
"""})
    result = ws.run("build", "-k")
    assert result.exit_code == 1
    assert "FAILED //r:slow: timed out after 0.5 s" in result.stderr
    retries = [e for e in ws.last_build_events() if e["type"] == "action.retry"]
    assert [e["target"] for e in retries] == ["//r:flaky", "//r:flaky"]
    starts = [e for e in ws.last_build_events()
              if e["type"] == "action.started" and e["target"] == "//r:flaky"]
    assert [e["data"]["attempt"] for e in starts] == [1, 2, 3]


def test_resource_pool_larger_than_configured_is_an_error(mb_workspace):
    ws = mb_workspace({
        "MB.toml": "[resources]\ngpu = 1\n",
        "g/BUILD.toml": """
[big]
rule = "genrule"
outs = ["big.txt"]
cmd = "echo > $@"
resources = { gpu = 2 }
""",
    })
    result = ws.run("build")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "g/BUILD.toml:6:15: 'resources.gpu' asks for 2 units but the pool has 1; raise it in "
        "MB.toml: [resources] gpu = 2")


def test_resource_pool_serialises_actions(mb_workspace):
    # Each action records when it started and ended; with one gpu unit they never overlap.
    targets = "".join(f"""
[g{i}]
rule = "genrule"
outs = ["g{i}.txt"]
cmd = "date +%s%N > $@; sleep 0.2; date +%s%N >> $@"
resources = {{ gpu = 1 }}
""" for i in range(3))
    ws = mb_workspace({"MB.toml": "[resources]\ngpu = 1\n", "g/BUILD.toml": targets})
    assert ws.run("build", "-j", "3").exit_code == 0
    spans = sorted(tuple(int(x) for x in ws.out(f"g/g{i}.txt").read_text().split())
                   for i in range(3))
    for (_s1, e1), (s2, _e2) in zip(spans, spans[1:]):
        assert e1 <= s2, "actions holding the only gpu unit overlapped"


def test_patterns_and_manual_tag(mb_workspace):
    ws = mb_workspace({
        "x/BUILD.toml": '[a]\nrule = "genrule"\nouts = ["a"]\ncmd = "echo > $@"\n'
                        '[m]\nrule = "genrule"\nouts = ["m"]\ncmd = "echo > $@"\ntags = ["manual"]\n',
        "x/y/BUILD.toml": '[b]\nrule = "genrule"\nouts = ["b"]\ncmd = "echo > $@"\n',
    })
    assert ws.run("query", "//...").stdout.split() == ["//x:a", "//x/y:b"]
    assert ws.run("query", "//x:all").stdout.split() == ["//x:a"]
    assert ws.run("query", "//x/y/...").stdout.split() == ["//x/y:b"]
    assert ws.run("build", "//x:m").exit_code == 0
    assert ws.executed() == ["//x:m"]
    result = ws.run("query", ":a", cwd=ws.path / "x")
    assert result.stdout.split() == ["//x:a"]


def test_dash_c_and_walking_up(mb_workspace, tmp_path):
    ws = mb_workspace(GENRULES)
    result = ws.run("-C", str(ws.path / "a"), "build", ":up")
    assert result.exit_code == 0, result.stderr
    assert ws.out("a/up.txt").read_text() == "HELLO\n"


def test_no_workspace_is_a_usage_error(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mb", "build"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no MB.toml found" in proc.stderr


def test_query_graph_and_rules(mb_workspace):
    ws = mb_workspace(GENRULES)
    assert ws.run("query", "deps(//b:cat)").stdout.split() == [
        "//a:first", "//a:group", "//a:up", "//b:cat"]
    assert ws.run("query", "rdeps(//..., //a:first)").stdout.split() == [
        "//a:first", "//a:group", "//b:cat"]
    assert ws.run("query", "kind(filegroup, //...)").stdout.split() == ["//a:group"]
    dot = ws.run("graph", "//b:cat").stdout
    assert '"//b:cat" -> "//a:group";' in dot and dot.startswith("digraph")
    mermaid = ws.run("graph", "--format", "mermaid", "//b:cat").stdout
    assert mermaid.startswith("graph LR") and "-->" in mermaid
    import json

    graph = json.loads(ws.run("graph", "--format", "json", "//b:cat").stdout)
    assert ["//b:cat", "//a:group"] in graph["edges"]
    rules = ws.run("rules").stdout
    assert "genrule" in rules and "filegroup" in rules
    plugins = ws.run("plugins").stdout
    assert "genrule 0.1.0" in plugins


def test_clean_and_clean_all(mb_workspace):
    ws = mb_workspace(GENRULES)
    assert ws.run("build").exit_code == 0
    assert ws.run("clean").exit_code == 0
    assert not (ws.path / "mb-out").exists() and (ws.path / ".mb").exists()
    assert ws.run("clean", "--all").exit_code == 0
    assert not (ws.path / ".mb").exists()
    assert ws.run("build").exit_code == 0
    assert len(ws.executed()) == 3


def test_gc_trims_cache(mb_workspace):
    ws = mb_workspace(GENRULES)
    assert ws.run("build").exit_code == 0
    result = ws.run("gc", "--max-size", "0")
    assert result.exit_code == 0
    assert "cache is 0 bytes" in result.stdout
    assert ws.run("clean").exit_code == 0
    assert ws.run("build").exit_code == 0
    assert len(ws.executed()) == 3, "the cache was emptied, so everything runs again"
    assert ws.run("gc").exit_code == 2  # no size given anywhere


def test_an_action_writing_to_its_input_fails_clearly(mb_workspace):
    ws = mb_workspace({"w/in.txt": "original\n", "w/BUILD.toml": """
[rude]
rule = "genrule"
srcs = ["in.txt"]
outs = ["out.txt"]
retries = 2
cmd = "echo scribble >> $<; cp $< $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 1
    assert ("FAILED //w:rude: input w/in.txt changed while the action ran (the action wrote "
            "to it, or it was edited meanwhile); the result is not kept. Declared inputs are "
            "read-only: write a new output instead") in result.stderr
    assert [e for e in ws.last_build_events() if e["type"] == "action.retry"] == []


def test_linux_sandbox_cuts_the_network_unless_tagged(mb_workspace):
    from mb.sandbox.linux import namespaces_available

    cmd = "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort > $@"
    ws = mb_workspace({"n/BUILD.toml": f"""
[closed]
rule = "genrule"
outs = ["closed.txt"]
cmd = "{cmd}"

[open]
rule = "genrule"
outs = ["open.txt"]
tags = ["requires-network"]
cmd = "{cmd}"
"""})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    if namespaces_available():
        assert ws.out("n/closed.txt").read_text() == "lo\n"
        assert ws.out("n/open.txt").read_text() != "lo\n"
    else:  # mb must say so once and fall back to the dir sandbox
        assert result.stderr.count("linux namespaces are not available here") == 1
        assert ws.out("n/closed.txt").read_text() == ws.out("n/open.txt").read_text()


def test_none_sandbox_keeps_the_environment(mb_workspace):
    ws = mb_workspace({"e/BUILD.toml": """
[env]
rule = "genrule"
outs = ["env.txt"]
cmd = "echo $$MB_TEST_MARKER > $@"
"""})
    assert ws.run("build", "--sandbox", "none", env={"MB_TEST_MARKER": "kept"}).exit_code == 0
    assert ws.out("e/env.txt").read_text() == "kept\n"
    assert ws.run("clean", "--all").exit_code == 0
    assert ws.run("build", "--sandbox", "dir", env={"MB_TEST_MARKER": "kept"}).exit_code == 0
    assert ws.out("e/env.txt").read_text() == "\n", "the dir sandbox scrubs the environment"


def test_color_always_into_a_pipe_and_no_color(mb_workspace):
    """--color decides colour, not the live display: a pipe gets plain lines
    (SPEC §8); tests/e2e/test_cli_edges.py draws the live display on a terminal."""
    ws = mb_workspace(GENRULES)
    result = ws.run("--color", "always", "build", env={"NO_COLOR": ""})
    assert result.exit_code == 0, result.stderr
    assert "build ok: 3 executed" in result.stdout
    assert "//b:cat (built)" in result.stdout
    assert "\x1b[" not in result.stdout, "no cursor movement, and ok lines are not coloured"
    (ws.path / "b/BUILD.toml").write_text('[cat]\nrule = "genrule"\nouts = ["c"]\ncmd = "exit 1"\n')
    failed = ws.run("--color", "always", "build", env={"NO_COLOR": ""})
    assert failed.exit_code == 1
    assert "\x1b[31mFAILED //b:cat" in failed.stderr, "with colours"
    plain = ws.run("--color", "always", "build", env={"NO_COLOR": "1"})
    assert plain.exit_code == 1
    assert "\x1b[" not in plain.stderr + plain.stdout, "NO_COLOR: no colours"


def test_an_action_writing_to_a_cached_input_fails_and_drops_the_blob(mb_workspace):
    ws = mb_workspace({"w/BUILD.toml": """
[made]
rule = "genrule"
outs = ["made.txt"]
cmd = "echo made > $@"

[rude]
rule = "genrule"
srcs = [":made"]
outs = ["out.txt"]
cmd = "chmod u+w $<; echo scribble >> $<; cp $< $@"
"""})
    result = ws.run("build", "-k")
    assert result.exit_code == 1
    assert "FAILED //w:rude: input w/made.txt changed while the action ran" in result.stderr
    assert ws.run("clean").exit_code == 0
    again = ws.run("build", "//w:made")
    assert again.exit_code == 0
    assert ws.executed() == ["//w:made"], "the written-to blob was dropped, so it runs again"
    assert ws.out("w/made.txt").read_text() == "made\n"


def test_a_simple_genrule_runs_without_bash_and_matches_it(mb_workspace):
    """`tr ... < $< > $@` is executed directly (mb opens the files); the same command
    with a pipe needs bash. Both give what bash gives."""
    ws = mb_workspace({
        "r/in.txt": "Hello, World\n",
        "r/BUILD.toml": """
[direct]
rule = "genrule"
srcs = ["in.txt"]
outs = ["direct.txt"]
cmd = "tr 'A-Za-z' 'N-ZA-Mn-za-m' < $< > $@"

[shell]
rule = "genrule"
srcs = ["in.txt"]
outs = ["shell.txt"]
cmd = "cat $< | tr 'A-Za-z' 'N-ZA-Mn-za-m' > $@"
""",
    })
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("r/direct.txt").read_text() == "Uryyb, Jbeyq\n"
    assert ws.out("r/shell.txt").read_text() == "Uryyb, Jbeyq\n"
    import marshal

    stored = marshal.loads((ws.path / ".mb/keys.bin").read_bytes())
    argvs = {json.loads(parts)["outputs"][0]: json.loads(parts) for parts in stored.values()}
    direct, shell = argvs["r/direct.txt"], argvs["r/shell.txt"]
    assert direct["argv"] == ["tr", "A-Za-z", "N-ZA-Mn-za-m"]
    assert (direct["stdin"], direct["stdout"]) == ("r/in.txt", "r/direct.txt")
    assert shell["argv"][:2] == ["bash", "-c"] and "stdin" not in shell



def test_a_named_target_is_analysed_even_when_a_sibling_does_not_convert(mb_workspace):
    """docs/errors.md: a file's conversion mistakes do not hide its targets' analysis
    mistakes. Naming one target (not `:all`) reported only the sibling's mistake, so
    fixing both took two runs."""
    ws = mb_workspace({"a/BUILD.toml": (
        '[t]\nrule = "genrule"\ncmd = "true"\nouts = ["o"]\ntimout = 3\n\n'
        '[w]\nrule = "genrule"\ncmd = "echo $(FOO)"\nouts = ["w"]\n')})
    result = ws.run("build", "//a:w")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "a/BUILD.toml:5:1: unknown attribute 'timout' for rule 'genrule'; did you mean "
        "'timeout'?",
        "a/BUILD.toml:9:1: unknown variable '$(FOO)' in cmd; known: $(SRCS) $(OUTS) $< $@ "
        "$(location LABEL) $$"]


def test_without_k_a_running_action_is_not_retried_after_another_failed(mb_workspace, tmp_path):
    """The build stops starting actions after a failure; a running flaky action used
    to go on starting its retries anyway."""
    attempts = tmp_path / "attempts"
    ws = mb_workspace({"p/BUILD.toml": f"""
[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "sleep 0.3; exit 1"

[flaky]
rule = "genrule"
outs = ["flaky.txt"]
retries = 3
cmd = "echo x >> {attempts}; sleep 1; exit 1"
"""})
    result = ws.run("build", "-j", "2")
    assert result.exit_code == 1
    assert attempts.read_text() == "x\n", "one attempt: the build had stopped"
    keep_going = ws.run("build", "-j", "2", "-k")
    assert keep_going.exit_code == 1
    assert attempts.read_text() == "x\n" * 5, "with -k all four attempts run"


def test_no_keep_going_overrides_mb_toml(mb_workspace):
    ws = mb_workspace({"MB.toml": "[build]\nkeep_going = true\n", "p/BUILD.toml": """
[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "exit 1"

[after]
rule = "genrule"
outs = ["after.txt"]
cmd = "sleep 0.5; echo after > $@"
"""})
    stopped = ws.run("build", "-j", "1", "--no-keep-going", "//p:bad", "//p:after")
    assert stopped.exit_code == 1
    assert not ws.out("p/after.txt").exists()
    kept = ws.run("build", "-j", "1", "//p:bad", "//p:after")
    assert kept.exit_code == 1
    assert ws.out("p/after.txt").read_text() == "after\n"
