"""Missing sources of targets without actions, and what a failed target lists."""

from __future__ import annotations

import json


def test_a_filegroup_with_a_missing_source_fails_the_build(mb_workspace):
    ws = mb_workspace({"a/here.txt": "hi\n",
                       "a/BUILD.toml": '[also]\nrule = "filegroup"\n'
                                       'srcs = ["nowhere.txt", "here.txt"]\n'})
    result = ws.run("build", "//a:also")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "FAILED //a:also: missing source file a/nowhere.txt (needed by //a:also)" in (
        result.stderr)
    assert "Traceback" not in result.stderr
    failed = [e for e in ws.last_build_events() if e["type"] == "action.failed"]
    assert [e["target"] for e in failed] == ["//a:also"]
    manifest = json.loads((ws.path / ".mb/builds" / (
        (ws.path / ".mb/builds/current").read_text().strip() + ".json")).read_text())
    assert manifest["status"] == "failed"
    assert manifest["targets"]["//a:also"]["status"] == "failed"
    assert list(manifest["targets"]["//a:also"]["outputs"]) == ["a/here.txt"]

    (ws.path / "a/nowhere.txt").write_text("now here\n")
    again = ws.run("build", "//a:also")
    assert again.exit_code == 0, again.stderr
    assert "a/nowhere.txt" in again.stdout


def test_a_failed_target_lists_no_outputs(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": '[bad]\nrule = "genrule"\nouts = ["bad.txt"]\n'
                                       'cmd = "exit 1"\n'})
    result = ws.run("build")
    assert result.exit_code == 1
    assert "//a:bad (failed)" in result.stdout
    assert "mb-out/a/bad.txt" not in result.stdout
    current = (ws.path / ".mb/builds/current").read_text().strip()
    manifest = json.loads((ws.path / ".mb/builds" / f"{current}.json").read_text())
    assert manifest["targets"]["//a:bad"]["outputs"] == {}


def test_one_build_names_every_missing_source_and_every_target_needing_it(mb_workspace):
    """SPEC §7: a missing source is an error naming the file and the targets that need
    it. The targets a first failure kept from running are checked too, so one build
    lists every file to add, with -k or without."""
    ws = mb_workspace({"p/BUILD.toml": """
[a]
rule = "genrule"
srcs = ["missing.txt"]
outs = ["a.txt"]
cmd = "cp $< $@"

[b]
rule = "genrule"
srcs = ["missing.txt"]
outs = ["b.txt"]
cmd = "cp $< $@"

[c]
rule = "genrule"
srcs = [":a", "other_missing.txt"]
outs = ["c.txt"]
cmd = "cat $(SRCS) > $@"
"""})
    for args in ((), ("-k",)):
        result = ws.run("build", *args)
        assert result.exit_code == 1
        failed = sorted(line for line in result.stderr.splitlines() if line.startswith("FAILED"))
        assert failed == [
            "FAILED //p:a: missing source file p/missing.txt (needed by //p:a)",
            "FAILED //p:b: missing source file p/missing.txt (needed by //p:b)",
            "FAILED //p:c: missing source file p/other_missing.txt (needed by //p:c)",
        ], result.stderr


def test_a_source_that_cannot_be_read_as_a_file_fails_its_action_only(mb_workspace):
    """A FIFO made the build wait for a writer forever, a symlink to /dev/zero hashed
    without end (and SIGTERM could not stop either), and a symlink loop ended the
    whole build with advice about disk space. Each now fails its own action, named,
    and -k goes on with the rest."""
    import os

    ws = mb_workspace({"p/in.txt": "x\n", "p/BUILD.toml": "".join(
        f'[{name}]\nrule = "genrule"\nsrcs = ["{src}"]\nouts = ["{name}.out"]\n'
        f'cmd = "head -c 3 $< > $@"\n'
        for name, src in (("fifo", "fifo.txt"), ("dev", "zero.txt"), ("loop", "loop1"),
                          ("ok", "in.txt")))})
    os.mkfifo(ws.path / "p/fifo.txt")
    os.symlink("/dev/zero", ws.path / "p/zero.txt")
    os.symlink("loop2", ws.path / "p/loop1")
    os.symlink("loop1", ws.path / "p/loop2")
    result = ws.run("build", "-k", timeout=60)
    assert result.exit_code == 1
    failed = sorted(line for line in result.stderr.splitlines() if line.startswith("FAILED"))
    assert failed == [
        "FAILED //p:dev: source file p/zero.txt is a device, not a regular file (needed by "
        "//p:dev); replace it with a file",
        "FAILED //p:fifo: source file p/fifo.txt is a FIFO (named pipe), not a regular file "
        "(needed by //p:fifo); replace it with a file",
        "FAILED //p:loop: cannot read source file p/loop1: Too many levels of symbolic links "
        "(needed by //p:loop)"]
    assert ws.out("p/ok.out").read_text() == "x\n"
