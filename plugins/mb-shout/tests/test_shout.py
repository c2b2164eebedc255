"""Tests for mb-shout: the action on its own, then the rules through the real `mb` command.

They show the two ways a plugin author tests a rule: call the action
function with a hand-made `mb.ActionIO`, and drive `mb build` in a
throwaway workspace made by `mb.testing`'s `mb_workspace` fixture.
"""

from __future__ import annotations

from pathlib import Path

import mb
import mb_shout

WORDS = {
    "words/in.txt": "pear\nfig\napple\nfig\n",
    "words/BUILD.toml": """
[loud]
rule = "shout"
src = "in.txt"
suffix = "!!"

[sorted]
rule = "shout_sort"
src = ":loud"

[backwards]
rule = "shout_sort"
src = "in.txt"
reverse = true
unique = true
""",
}


def test_shout_action_on_its_own(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("quiet please\n")
    out = tmp_path / "out.txt"
    io = mb.ActionIO(root=tmp_path, inputs=[src], outputs=[out], tools=[],
                     params={"suffix": "?"}, providers={})
    mb_shout._shout(io)
    assert out.read_text() == "QUIET PLEASE\n?"


def test_build_shout_and_sort(mb_workspace) -> None:
    ws = mb_workspace(WORDS)
    result = ws.run("build", "//words/...")
    assert result.exit_code == 0, result.stderr
    assert ws.out("words/loud.txt").read_text() == "PEAR\nFIG\nAPPLE\nFIG\n!!"
    assert ws.out("words/sorted.txt").read_text() == "!!\nAPPLE\nFIG\nFIG\nPEAR\n"
    assert ws.out("words/backwards.txt").read_text() == "pear\nfig\napple\n"
    assert sorted(ws.executed()) == ["//words:backwards", "//words:loud", "//words:sorted"]


def test_rebuild_is_cached_and_a_suffix_change_reruns_only_shout_and_its_consumer(
        mb_workspace) -> None:
    ws = mb_workspace(WORDS)
    assert ws.run("build").exit_code == 0
    assert ws.run("build").exit_code == 0
    assert ws.executed() == []
    build_file = ws.path / "words/BUILD.toml"
    build_file.write_text(build_file.read_text().replace('suffix = "!!"', 'suffix = "~"'))
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert sorted(ws.executed()) == ["//words:loud", "//words:sorted"]
    assert ws.out("words/sorted.txt").read_text() == "APPLE\nFIG\nFIG\nPEAR\n~\n"


def test_suffix_must_be_a_string(mb_workspace) -> None:
    ws = mb_workspace({
        "words/in.txt": "x\n",
        "words/BUILD.toml": '[loud]\nrule = "shout"\nsrc = "in.txt"\nsuffix = 3\n',
    })
    result = ws.run("build")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "words/BUILD.toml:4:1: 'suffix' must be a string, got the integer 3")
    assert not ws.out("words/loud.txt").exists()
