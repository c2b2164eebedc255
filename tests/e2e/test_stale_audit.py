"""Ways a build could have come out stale that an audit found, each made to happen for
real: a source edited or replaced while a build runs, another plugin version on
`PYTHONPATH`, a helper module an action imports only when it runs, an `MB.toml`
added to a package folder. The no-op fast path and the cache must see each one.

`MB_RACY_SECONDS=0`: a file is trusted from its stat at once, as one is two
seconds after its last change, so the fast path is taken without waiting.
"""

from __future__ import annotations

import os
import time

from processes import wait_for

NOT_RACY = {"MB_RACY_SECONDS": "0"}


def build(ws, *args: str, env: dict[str, str] | None = None):
    result = ws.run("build", *args, env={**NOT_RACY, **(env or {})})
    assert result.exit_code == 0, result.stderr
    return result


def test_a_source_edited_between_two_actions_that_read_it_is_not_taken_for_built(
        mb_workspace):
    """t1 read v1; the file became v2 before t2 hashed it. The snapshot used to record
    v2 as what the build was made from, so every later build was a no-op with
    t1's output stale."""
    ws = mb_workspace({
        "a/in.txt": "v1\n",
        "a/BUILD.toml": """
[t1]
rule = "genrule"
srcs = ["in.txt"]
outs = ["o1.txt"]
cmd = "cat $(SRCS) > $(OUTS)"

[slow]
rule = "genrule"
outs = ["s.txt"]
cmd = "sleep 2; echo s > $(OUTS)"

[t2]
rule = "genrule"
srcs = ["in.txt", ":slow"]
outs = ["o2.txt"]
cmd = "cat $(SRCS) > $(OUTS)"
"""})
    running = ws.popen("build", "-j2", env=NOT_RACY)
    wait_for(lambda: ws.out("a/o1.txt").exists(), timeout=30, process=running)
    (ws.path / "a/in.txt").write_text("v2\n")  # while :slow holds t2 back
    assert running.wait(timeout=60) == 0
    build(ws)
    assert ws.out("a/o1.txt").read_text() == "v2\n"
    assert ws.out("a/o2.txt").read_text() == "v2\ns\n"
    again = build(ws)
    assert "0 executed" in again.stdout + again.stderr


def test_a_source_replaced_with_the_same_size_and_mtime_during_its_action_is_caught(
        mb_workspace):
    """`mv` of a new file kept at the old mtime (as `cp -p`, `rsync -a` do): the action
    read the new bytes under the old bytes' key, which poisoned the cache."""
    ws = mb_workspace({
        "a/in.txt": "hello\n",
        "a/BUILD.toml": '[t]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["out.txt"]\n'
                        'cmd = "sleep 1.5; cat $(SRCS) > $(OUTS)"\n'})
    source = ws.path / "a/in.txt"
    old = source.stat()
    running = ws.popen("build", env=NOT_RACY)
    wait_for(lambda: any((ws.path / ".mb/sandbox").glob("s-*/mb-action_0/a/in.txt")),
             timeout=30, process=running)
    replacement = ws.path / "a/new.txt"
    replacement.write_text("jello\n")
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(replacement, source)
    output = running.communicate(timeout=60)
    assert running.returncode == 1, output
    assert "input a/in.txt changed while the action ran" in output[1]
    source.write_text("hello\n")
    build(ws)
    assert ws.out("a/out.txt").read_text() == "hello\n"


def _plugin_module(suffix: str) -> str:
    return f'''
import attrs
import mb


@attrs.frozen
class MarkAttrs:
    src: mb.File


def _mark(io):
    io.outputs[0].write_text(io.inputs[0].read_text() + "{suffix}\\n")


@mb.rule("mark", attrs=MarkAttrs)
def mark(ctx, a):
    ctx.call(_mark, inputs=[a.src], outputs=[ctx.output(ctx.name + ".txt")])


@mb.hookimpl
def mb_rules():
    return [mark]
'''


def _installed(module: str) -> dict[str, str]:
    """A distribution's metadata registering `module` in the entry-point group `mb`, as
    `pip install` leaves it: the plugin loads on every build (no `-p`), so the no-op
    fast path is taken."""
    info = f"{module}-0.1.dist-info"
    return {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n",
            f"{info}/entry_points.txt": f"[mb]\n{module} = {module}\n"}


def test_another_plugin_version_first_on_pythonpath_is_not_a_no_op(mb_workspace):
    """The fast path answered from the files it recorded, and a module that shadows
    one of them from a folder put first on PYTHONPATH is not among them."""
    files = {"a/in.txt": "x\n", "a/BUILD.toml": '[m]\nrule = "mark"\nsrc = "in.txt"\n',
             "plug/marker.py": _plugin_module("one"), "shadow/marker.py": _plugin_module("two")}
    files.update({f"plug/{name}": text for name, text in _installed("marker").items()})
    ws = mb_workspace(files)
    plug, shadow = str(ws.path / "plug"), str(ws.path / "shadow")
    build(ws, env={"PYTHONPATH": plug})
    build(ws, env={"PYTHONPATH": plug})  # answered by the fast path
    assert ws.out("a/m.txt").read_text() == "x\none\n"
    build(ws, env={"PYTHONPATH": os.pathsep.join([shadow, plug])})
    assert ws.out("a/m.txt").read_text() == "x\ntwo\n"
    build(ws, env={"PYTHONPATH": plug})
    assert ws.out("a/m.txt").read_text() == "x\none\n"


def test_a_helper_module_the_action_imports_only_when_it_runs_is_watched(mb_workspace):
    ws = mb_workspace({
        "a/in.txt": "hello\n",
        "a/BUILD.toml": '[l]\nrule = "lazy"\nsrc = "in.txt"\n',
        "plug/lazyplug/__init__.py": '''
import attrs
import mb


@attrs.frozen
class LazyAttrs:
    src: mb.File


def _act(io):
    from lazyplug import helper  # only when the action runs

    io.outputs[0].write_text(helper.transform(io.inputs[0].read_text()))


@mb.rule("lazy", attrs=LazyAttrs)
def lazy(ctx, a):
    ctx.call(_act, inputs=[a.src], outputs=[ctx.output(ctx.name + ".txt")])


@mb.hookimpl
def mb_rules():
    return [lazy]
''',
        "plug/lazyplug/helper.py": "def transform(text):\n    return text.upper()\n",
        **{f"plug/{name}": text for name, text in _installed("lazyplug").items()}})
    env = {"PYTHONPATH": str(ws.path / "plug")}
    build(ws, env=env)
    build(ws, env=env)  # answered by the fast path
    assert ws.out("a/l.txt").read_text() == "HELLO\n"
    (ws.path / "plug/lazyplug/helper.py").write_text(
        "def transform(text):\n    return text.lower() + 'v2'\n")
    build(ws, env=env)
    assert ws.out("a/l.txt").read_text() == "hello\nv2"


def test_an_mb_toml_added_to_a_package_folder_is_seen_by_a_label_build(mb_workspace):
    ws = mb_workspace({"b/BUILD.toml": '[u]\nrule = "genrule"\nouts = ["u.txt"]\n'
                                       'cmd = "echo u > $@"\n'})
    build(ws, "//b:u")
    build(ws, "//b:u")
    (ws.path / "b/MB.toml").write_text("")
    result = ws.run("build", "//b:u", env=NOT_RACY)
    assert result.exit_code == 2
    assert "b/MB.toml makes b a workspace of its own" in result.stderr


def test_an_incremental_build_with_q_still_lists_the_outputs(mb_workspace):
    """SPEC §8: every requested target's outputs are listed at the end; -q leaves out
    progress lines only (full and no-op builds did, the incremental one did not)."""
    ws = mb_workspace({"a/in.txt": "one\n",
                       "a/BUILD.toml": '[t]\nrule = "genrule"\nsrcs = ["in.txt"]\n'
                                       'outs = ["out.txt"]\ncmd = "cat $< > $@"\n'})
    build(ws)
    build(ws)
    time.sleep(0.01)
    (ws.path / "a/in.txt").write_text("two\n")
    result = build(ws, "-q")
    assert "1 executed" in result.stdout + result.stderr, "the incremental path ran"
    assert "//a:t (built)\n  mb-out/a/out.txt" in result.stdout


def test_a_chmod_of_an_output_does_not_come_back_from_the_cache(mb_workspace):
    """Files in mb-out/ are hard links to the cache's blobs: `chmod +x` of one is a
    chmod of the blob. A hit on a blob whose mode is not the one its name says
    (0444, or 0555 for `<digest>.x`) is a miss, so the action runs again."""
    ws = mb_workspace({"a/in.txt": "hello\n",
                       "a/BUILD.toml": '[t]\nrule = "genrule"\nsrcs = ["in.txt"]\n'
                                       'outs = ["out.txt"]\ncmd = "cat $< > $@"\n'})
    build(ws)
    os.chmod(ws.out("a/out.txt"), 0o755)
    assert ws.run("clean").exit_code == 0
    result = build(ws)
    assert "1 executed" in result.stdout + result.stderr
    assert os.stat(ws.out("a/out.txt")).st_mode & 0o777 == 0o444


def test_a_failed_incremental_build_still_lists_the_targets(mb_workspace):
    """SPEC §8: every requested target is listed at the end, failed or not, as after a
    failed full build."""
    ws = mb_workspace({"a/in.txt": "one\n",
                       "a/BUILD.toml": '[t]\nrule = "genrule"\nsrcs = ["in.txt"]\n'
                                       'outs = ["out.txt"]\ncmd = "grep -q one $< && cp $< $@"\n'
                                       '[u]\nrule = "genrule"\nouts = ["u.txt"]\n'
                                       'cmd = "echo u > $@"\n'})
    build(ws)
    build(ws)
    (ws.path / "a/in.txt").write_text("two\n")
    result = ws.run("build", env=NOT_RACY)
    assert result.exit_code == 1
    assert "1 failed" in result.stdout + result.stderr, "the incremental path ran"
    assert "//a:t (failed)" in result.stdout
    assert "//a:u (cached)\n  mb-out/a/u.txt" in result.stdout
