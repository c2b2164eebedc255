"""`--sandbox none` runs as in the workspace (SPEC §5), and its results are never cached."""

from __future__ import annotations

import pytest

BUILD = """
[gen]
rule = "genrule"
outs = ["gen.txt"]
cmd = "echo generated > $@"

[t]
rule = "genrule"
srcs = ["in.txt", ":gen"]
outs = ["o.txt"]
cmd = "cat p/in.txt p/gen.txt p/undeclared.txt > $@"
"""


def test_an_undeclared_file_is_read_under_none_and_not_under_dir(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": BUILD, "p/in.txt": "declared\n",
                       "p/undeclared.txt": "undeclared\n"})
    failed = ws.run("build", "//p:t")
    assert failed.exit_code == 1
    assert "p/undeclared.txt" in failed.stderr
    result = ws.run("build", "--sandbox", "none", "//p:t")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/o.txt").read_text() == "declared\ngenerated\nundeclared\n"
    # The outputs went to mb-out/, not into the source tree.
    assert not (ws.path / "p" / "o.txt").exists()
    assert not (ws.path / "p" / "gen.txt").exists()


def test_results_of_none_are_never_cached(mb_workspace):
    """The host environment and undeclared files are not in the action key: a result
    of `none` must not answer a later build, of `none` or of `dir`."""
    ws = mb_workspace({"p/BUILD.toml": BUILD, "p/in.txt": "declared\n",
                       "p/undeclared.txt": "undeclared\n"})
    assert ws.run("build", "--sandbox", "none", "//p:t").exit_code == 0
    (ws.path / "p" / "undeclared.txt").write_text("edited\n")
    again = ws.run("build", "--sandbox", "none", "//p:t")
    assert again.exit_code == 0, again.stderr
    assert sorted(ws.executed()) == ["//p:gen", "//p:t"]
    assert ws.out("p/o.txt").read_text() == "declared\ngenerated\nedited\n"
    under_dir = ws.run("build", "//p:t")
    assert under_dir.exit_code == 1, "not answered from what `none` built"
    assert "p/undeclared.txt" in under_dir.stderr
