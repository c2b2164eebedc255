"""After a source edit, mb re-runs only the affected actions without analysing again.

Every test checks what a user sees (outputs, exit codes, `mb show`/`explain`)
and which path the build took: `build.started` carries `incremental` (the
number of actions looked at) only when the last build's action table was used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

CHAIN = {
    "a/one.txt": "one\n",
    "a/two.txt": "two\n",
    "a/BUILD.toml": """
[up1]
rule = "genrule"
srcs = ["one.txt"]
outs = ["up1.txt"]
cmd = "tr a-z A-Z < $< > $@"

[up2]
rule = "genrule"
srcs = ["two.txt"]
outs = ["up2.txt"]
cmd = "tr a-z A-Z < $< > $@"

[words]
rule = "genrule"
srcs = [":up1", ":up2"]
outs = ["words.txt"]
cmd = "wc -w < $(location :up1) > $@"

[both]
rule = "filegroup"
srcs = [":up1", ":words"]
""",
}


def settled(ws):
    ws.env["MB_RACY_SECONDS"] = "0"  # see tests/e2e/test_fastpath.py
    for _ in range(2):
        assert ws.run("build").exit_code == 0
    return ws


def started(ws) -> dict:
    return next(e for e in ws.last_build_events() if e["type"] == "build.started")["data"]


def manifest(ws) -> dict:
    current = (ws.path / ".mb/builds/current").read_text().strip()
    return json.loads((ws.path / ".mb/builds" / f"{current}.json").read_text())


def test_an_edit_reruns_only_the_action_reading_it(mb_workspace):
    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/two.txt").write_text("TWO and more\n")
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert started(ws)["incremental"] == 2  # up2 and words (downstream of up2)
    assert ws.executed() == ["//a:up2", "//a:words"]
    assert ws.out("a/up2.txt").read_text() == "TWO AND MORE\n"
    assert "build ok: 2 executed, 1 cached" in result.stdout
    finished = [e for e in ws.last_build_events() if e["type"] == "action.finished"]
    assert sorted(e["target"] for e in finished) == ["//a:up1", "//a:up2", "//a:words"]
    record = manifest(ws)
    assert record["targets"]["//a:up2"]["status"] == "built"
    assert record["targets"]["//a:up1"]["status"] == "cached"
    assert [a["target"] for a in record["actions"]] == ["//a:up2", "//a:words"]
    assert record["actions_from"]
    explained = ws.run("explain", "//a:up2")
    assert explained.exit_code == 0, explained.stderr
    assert "a/two.txt" in explained.stdout


def test_a_changed_output_reruns_what_reads_it(mb_workspace):
    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/one.txt").write_text("one two three\n")
    assert ws.run("build").exit_code == 0
    assert started(ws)["incremental"] == 2
    assert sorted(ws.executed()) == ["//a:up1", "//a:words"]
    assert ws.out("a/words.txt").read_text().strip() == "3"
    # The filegroup lists outputs of actions that re-ran: its record follows them.
    both = manifest(ws)["targets"]["//a:both"]["outputs"]
    digest = both["mb-out/a/words.txt"]
    from mb.digest import digest_file

    assert digest == digest_file(str(ws.out("a/words.txt")))


def test_same_bytes_downstream_are_a_cache_hit(mb_workspace):
    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/one.txt").write_text("ONE\n")  # upper-cases to the same bytes
    assert ws.run("build").exit_code == 0
    assert started(ws)["incremental"] == 2
    assert ws.executed() == ["//a:up1"], "early cutoff: words has the same key"


def test_the_next_builds_are_no_ops_then_incremental_again(mb_workspace):
    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/two.txt").write_text("changed\n")
    assert ws.run("build").exit_code == 0
    again = ws.run("build")
    assert again.exit_code == 0 and started(ws).get("noop")
    assert "//a:up2 (cached)" in again.stdout
    (ws.path / "a/two.txt").write_text("changed twice\n")
    assert ws.run("build").exit_code == 0
    assert started(ws)["incremental"] == 2 and ws.executed() == ["//a:up2", "//a:words"]
    assert ws.out("a/up2.txt").read_text() == "CHANGED TWICE\n"


def test_reverting_an_edit_is_answered_from_the_cache(mb_workspace):
    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/two.txt").write_text("changed\n")
    assert ws.run("build").exit_code == 0
    (ws.path / "a/two.txt").write_text("two\n")
    assert ws.run("build").exit_code == 0
    assert started(ws)["incremental"] == 2 and ws.executed() == []
    assert ws.out("a/up2.txt").read_text() == "TWO\n"


@pytest.mark.parametrize("change", ["build_file", "new_file_in_package", "deleted_source",
                                    "output_removed"])
def test_anything_but_source_bytes_takes_the_full_path(mb_workspace, change):
    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/two.txt").write_text("edited as well\n")
    if change == "build_file":
        with open(ws.path / "a/BUILD.toml", "a") as f:
            f.write('\n[extra]\nrule = "genrule"\nouts = ["extra.txt"]\ncmd = "echo x > $@"\n')
    elif change == "new_file_in_package":
        (ws.path / "a/three.txt").write_text("new\n")
    elif change == "deleted_source":
        (ws.path / "a/one.txt").unlink()
    else:
        os.chmod(ws.out("a/up1.txt").parent, 0o755)
        ws.out("a/up1.txt").unlink()
    result = ws.run("build")
    if change == "deleted_source":
        assert result.exit_code == 1 and "a/one.txt" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    assert "incremental" not in started(ws) and not started(ws).get("noop")
    assert ws.out("a/up2.txt").read_text() == "EDITED AS WELL\n"
    assert ws.out("a/up1.txt").read_text() == "ONE\n"
    if change == "build_file":
        assert ws.out("a/extra.txt").read_text() == "x\n"


def test_a_failure_is_reported_and_the_next_build_takes_the_full_path(mb_workspace):
    ws = settled(mb_workspace({
        "f/in.txt": "fine\n",
        "f/BUILD.toml": """
[check]
rule = "genrule"
srcs = ["in.txt"]
outs = ["ok.txt"]
cmd = "grep -q fine $< && cp $< $@"
""",
    }))
    (ws.path / "f/in.txt").write_text("broken\n")
    failed = ws.run("build")
    assert failed.exit_code == 1
    assert "incremental" in started(ws)
    assert "build failed: 0 executed, 0 cached, 1 failed" in failed.stderr
    assert [e["target"] for e in ws.last_build_events() if e["type"] == "action.failed"] == [
        "//f:check"]
    again = ws.run("build")
    assert again.exit_code == 1 and "incremental" not in started(ws)
    (ws.path / "f/in.txt").write_text("fine again\n")
    fixed = ws.run("build")
    assert fixed.exit_code == 0, fixed.stderr
    assert ws.out("f/ok.txt").read_text() == "fine again\n"


def test_command_line_options_still_apply(mb_workspace):
    ws = settled(mb_workspace({
        "s/in.txt": "x\n",
        "s/BUILD.toml": """
[where]
rule = "genrule"
srcs = ["in.txt"]
outs = ["env.txt"]
cmd = "cat $< > $@; env | grep -c '^MB_PROBE=' >> $@ || true"
""",
    }))
    (ws.path / "s/in.txt").write_text("y\n")
    # --sandbox none keeps the environment: the probe variable shows.
    result = ws.run("build", "--sandbox", "none", "-j", "1", env={"MB_PROBE": "1"})
    assert result.exit_code == 0, result.stderr
    assert "incremental" in started(ws)
    assert ws.out("s/env.txt").read_text() == "y\n1\n"
    assert ws.run("build", "-j", "0").exit_code == 2


def test_killed_incremental_build_leaves_a_workspace_the_next_build_trusts(mb_workspace):
    count = 6
    files = {f"k/in{i}.txt": f"value {i}\n" for i in range(count)}
    files["k/BUILD.toml"] = "".join(f"""
[u{i}]
rule = "genrule"
srcs = ["in{i}.txt"]
outs = ["u{i}.txt"]
cmd = "sleep 0.3; tr a-z A-Z < $< > $@"
""" for i in range(count))
    ws = settled(mb_workspace(files))
    for i in range(count):
        (ws.path / f"k/in{i}.txt").write_text(f"edited {i}\n")
    proc = ws.popen("build", "-j", "2")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((ws.path / "mb-out/k").glob("u*.txt")):
        time.sleep(0.02)
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    for i in range(count):
        assert ws.out(f"k/u{i}.txt").read_text() == f"EDITED {i}\n"
    assert ws.run("build").exit_code == 0 and started(ws).get("noop")


def test_interrupted_incremental_build_exits_130(mb_workspace):
    ws = settled(mb_workspace({
        "i/in.txt": "x\n",
        "i/BUILD.toml": """
[slow]
rule = "genrule"
srcs = ["in.txt"]
outs = ["slow.txt"]
cmd = "sleep 30; cp $< $@"
""",
    }))
    (ws.path / "i/in.txt").write_text("y\n")
    proc = ws.popen("build")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(e["type"] == "action.started" for e in ws.last_build_events()):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=20) == 130
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert "incremental" in started(ws)


def test_successive_edits_accumulate_in_what_the_no_op_reports(mb_workspace):
    """Incremental builds keep the full build's replay and add an overlay: after two
    edits of different sources, a no-op still reports every output's current digest."""
    from mb.digest import digest_file

    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/one.txt").write_text("first edit\n")
    assert ws.run("build").exit_code == 0 and "incremental" in started(ws)
    (ws.path / "a/two.txt").write_text("second edit\n")
    assert ws.run("build").exit_code == 0 and "incremental" in started(ws)
    assert ws.run("build").exit_code == 0 and started(ws).get("noop")
    targets = manifest(ws)["targets"]
    for label, name in (("//a:up1", "up1.txt"), ("//a:up2", "up2.txt"), ("//a:words", "words.txt")):
        assert targets[label]["outputs"][f"mb-out/a/{name}"] == digest_file(
            str(ws.out(f"a/{name}")))
    finished = {e["target"]: e["data"]["outputs"] for e in ws.last_build_events()
                if e["type"] == "action.finished"}
    assert finished["//a:up2"]["mb-out/a/up2.txt"] == digest_file(str(ws.out("a/up2.txt")))
    # A change of BUILD.toml goes back to a full build, which starts a new replay.
    with open(ws.path / "a/BUILD.toml", "a") as f:
        f.write("\n# a comment\n")
    assert ws.run("build").exit_code == 0 and "incremental" not in started(ws)
    assert not list((ws.path / ".mb/fastpath").glob("*.overlay"))


def test_an_edit_after_gc_stages_unaffected_outputs_from_mb_out(mb_workspace):
    """`words` reads up1's output; up1 does not re-run, and gc removed its blob."""
    ws = settled(mb_workspace(CHAIN))
    assert ws.run("gc", "--max-size", "0").exit_code == 0
    (ws.path / "a/two.txt").write_text("two three four\n")
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert "incremental" in started(ws)
    assert ws.out("a/up2.txt").read_text() == "TWO THREE FOUR\n"
    assert ws.out("a/words.txt").read_text().strip() == "1"


def test_results_of_quick_actions_survive_a_kill_during_a_long_one(mb_workspace):
    """Results are written in packs; one written by the timer keeps a quick action's
    result when the build is killed during a long action that follows it."""
    ws = mb_workspace({
        "q/in.txt": "x\n",
        "q/BUILD.toml": """
[quick]
rule = "genrule"
srcs = ["in.txt"]
outs = ["quick.txt"]
cmd = "cp $< $@"

[slow]
rule = "genrule"
srcs = [":quick"]
outs = ["slow.txt"]
cmd = "sleep 61; cp $< $@"
""",
    })
    proc = ws.popen("build")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
            e["type"] == "action.started" and e["target"] == "//q:slow"
            for e in ws.last_build_events()):
        time.sleep(0.05)
    time.sleep(2.0)  # past the pack age limit
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The action's process group outlives mb (it is its own session): stop it.
    found = subprocess.run(["pgrep", "-f", "sleep 61; cp q/quick.txt q/slow.txt"],
                           capture_output=True, text=True)
    for pid in found.stdout.split():
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    result = ws.run("build", "//q:quick")
    assert result.exit_code == 0, result.stderr
    assert ws.executed() == [], "the quick action's result was kept"


def test_an_incremental_summary_lists_every_target_as_a_full_build_would(mb_workspace):
    """The edited target and its dependents are rewritten; every other target keeps
    its line from the last full build, in the order the targets were requested."""
    ws = settled(mb_workspace(CHAIN))
    (ws.path / "a/two.txt").write_text("two more\n")
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert started(ws)["incremental"] == 2
    summary = summary_of(result.stdout)
    assert summary == [
        "//a:up1 (cached)", "  mb-out/a/up1.txt",
        "//a:up2 (built)", "  mb-out/a/up2.txt",
        "//a:words (built)", "  mb-out/a/words.txt",
        "//a:both (built)", "  mb-out/a/up1.txt", "  mb-out/a/words.txt",
    ]
    (ws.path / "a/BUILD.toml").write_text((ws.path / "a/BUILD.toml").read_text() + "\n")
    (ws.path / "a/two.txt").write_text("two more again\n")
    full = ws.run("build")
    assert full.exit_code == 0, full.stderr
    assert "incremental" not in started(ws), "a BUILD.toml change takes the full path"
    assert summary_of(full.stdout) == summary


def summary_of(stdout: str) -> list[str]:
    """The lines after `build ok: ...` (progress lines come before it)."""
    lines = stdout.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("build ok")) + 1:]
