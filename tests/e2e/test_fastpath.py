"""The no-op fast path answers only when nothing a build read has changed."""

from __future__ import annotations

import os

WS = {
    "a/in.txt": "hello\n",
    "a/BUILD.toml": """
[up]
rule = "genrule"
srcs = ["in.txt"]
outs = ["up.txt"]
cmd = "tr a-z A-Z < $< > $@"
""",
}


def noop(ws) -> bool:
    started = [e for e in ws.last_build_events() if e["type"] == "build.started"]
    return bool(started[0]["data"].get("noop"))


def settled(ws):
    # Files written this instant are "racily clean" (docs/decisions): mb re-hashes them and
    # the fast path does not trust them. These tests write files and build at once, so the
    # window is closed; tests/unit/test_statcache.py covers it.
    ws.env["MB_RACY_SECONDS"] = "0"
    for _ in range(2):  # the second build records a snapshot trusted by the third
        assert ws.run("build").exit_code == 0
    return ws


def test_unchanged_workspace_is_answered_by_the_fast_path(mb_workspace):
    ws = settled(mb_workspace(WS))
    result = ws.run("build")
    assert result.exit_code == 0
    assert noop(ws)
    assert "build ok: 0 executed, 1 cached" in result.stdout
    assert "//a:up (cached)\n  mb-out/a/up.txt" in result.stdout
    # Logged like any build: events and a manifest listing every target.
    finished = [e for e in ws.last_build_events() if e["type"] == "action.finished"]
    assert [e["target"] for e in finished] == ["//a:up"] and finished[0]["data"]["cached"]
    shown = ws.run("show").stdout
    assert "//a:up" in shown and "cached" in shown


def test_touch_is_still_a_noop_and_an_edit_is_not(mb_workspace):
    ws = settled(mb_workspace(WS))
    os.utime(ws.path / "a/in.txt")  # same bytes
    assert ws.run("build").exit_code == 0
    assert noop(ws) and ws.executed() == []
    (ws.path / "a/in.txt").write_text("world\n")
    assert ws.run("build").exit_code == 0
    assert not noop(ws)
    assert ws.executed() == ["//a:up"]
    assert ws.out("a/up.txt").read_text() == "WORLD\n"


def test_build_file_new_file_or_deleted_output_means_a_real_build(mb_workspace):
    ws = settled(mb_workspace(WS))
    (ws.path / "a/new.txt").write_text("x\n")  # the folder changed: a new package may exist
    assert ws.run("build").exit_code == 0
    assert not noop(ws)
    settled(ws)
    os.unlink(ws.out("a/up.txt"))
    assert ws.run("build").exit_code == 0
    assert not noop(ws)
    assert ws.out("a/up.txt").read_text() == "HELLO\n"
    settled(ws)
    build = (ws.path / "a/BUILD.toml").read_text().replace("a-z A-Z", "a-y A-Y")
    (ws.path / "a/BUILD.toml").write_text(build)
    assert ws.run("build").exit_code == 0
    assert not noop(ws)
    assert ws.executed() == ["//a:up"]


def test_flags_that_ask_for_details_skip_the_fast_path(mb_workspace):
    ws = settled(mb_workspace(WS))
    for flags in (["-v"], ["--no-cache"], ["--placeholders"]):
        assert ws.run("build", *flags).exit_code == 0
        assert not noop(ws), flags


def test_explain_after_a_noop_points_at_the_build_that_did_work(mb_workspace):
    ws = settled(mb_workspace(WS))
    (ws.path / "a/in.txt").write_text("world\n")
    assert ws.run("build").exit_code == 0
    worker = (ws.path / ".mb/builds/current").read_text().strip()
    assert ws.run("build").exit_code == 0
    assert ws.run("build").exit_code == 0
    assert noop(ws)
    text = ws.run("explain", "//a:up").stdout
    assert f"every action was cached; the last build that checked keys was {worker}" in text
    assert "//a:up: genrule -> up.txt: executed" in text
    assert "input a/in.txt changed" in text


def test_a_new_source_that_shadows_a_generated_file_is_seen(mb_workspace):
    """With an explicit label (no package walk), the folder a label was resolved in counts."""
    ws = mb_workspace({"g/BUILD.toml": """
[gen]
rule = "genrule"
outs = ["data.txt"]
cmd = "echo generated > $@"

[use]
rule = "genrule"
srcs = ["data.txt"]
outs = ["use.txt"]
cmd = "cp $< $@"
"""})
    ws.env["MB_RACY_SECONDS"] = "0"
    for _ in range(3):
        assert ws.run("build", "//g:use").exit_code == 0
    assert noop(ws)
    assert ws.out("g/use.txt").read_text() == "generated\n"
    (ws.path / "g/data.txt").write_text("hand written\n")  # a source now wins the name
    assert ws.run("build", "//g:use").exit_code == 0
    assert not noop(ws)
    assert ws.out("g/use.txt").read_text() == "hand written\n"


def test_an_output_written_in_place_is_put_right(mb_workspace):
    ws = settled(mb_workspace(WS))
    out = ws.out("a/up.txt")
    out.chmod(0o644)
    out.write_text("HELLX\n")  # same size, same inode: only the mtime tells
    assert ws.run("build").exit_code == 0
    assert not noop(ws)
    assert out.read_text() == "HELLO\n"


def test_a_new_path_is_a_new_request(mb_workspace, tmp_path):
    """Rules resolve declared tools on PATH during analysis (`ctx.tool`), so the fast
    path never answers for another PATH; the full build decides what runs."""
    ws = settled(mb_workspace(WS))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tr = bin_dir / "tr"
    fake_tr.write_text("#!/bin/sh\necho from-another-tr\n")
    fake_tr.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{ws.env['PATH']}"}
    assert ws.run("build", env=env).exit_code == 0
    assert not noop(ws)
