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
