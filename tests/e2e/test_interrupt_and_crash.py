"""Ctrl-C, concurrent builds and SIGKILL at random moments: the next build must be right."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from mb.digest import digest_file


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll a condition on files written by a real process (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def started(ws, target: str) -> bool:
    return any(e["type"] == "action.started" and e["target"] == target for e in ws.events())


def test_ctrl_c_stops_actions_and_their_children(mb_workspace, tmp_path):
    pidfile = tmp_path / "child.pid"
    ws = mb_workspace({"s/BUILD.toml": f"""
[long]
rule = "genrule"
outs = ["long.txt"]
cmd = "sleep 300 & echo $$! > {pidfile}; wait"
"""})
    proc = ws.popen("build")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    wait_for(lambda: not _alive(child), timeout=10)
    finished = [e for e in ws.events() if e["type"] == "build.finished"]
    assert finished[-1]["data"]["status"] == "interrupted"


def test_sigterm_also_exits_130(mb_workspace, tmp_path):
    marker = tmp_path / "running"
    ws = mb_workspace({"s/BUILD.toml": f"""
[long]
rule = "genrule"
outs = ["long.txt"]
cmd = "touch {marker}; sleep 300"
"""})
    proc = ws.popen("build")
    wait_for(marker.exists)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie reparented to init counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_second_build_waits_for_the_first(mb_workspace, tmp_path):
    gate = tmp_path / "gate"
    ws = mb_workspace({"s/BUILD.toml": f"""
[gated]
rule = "genrule"
outs = ["gated.txt"]
cmd = "while [ ! -e {gate} ]; do sleep 0.05; done; echo done > $@"
"""})
    first = ws.popen("build")
    wait_for(lambda: started(ws, "//s:gated"))
    second = ws.popen("build")
    said = ""
    while "waiting" not in said:  # blocks until the second build says it waits
        said = second.stderr.readline()
        assert said, "the second build ended without saying it waits"
    gate.touch()
    _o1, e1 = first.communicate(timeout=60)
    _o2, e2 = second.communicate(timeout=60)
    assert first.returncode == 0, e1
    assert second.returncode == 0, e2
    assert said.strip() == "another mb build is running in this workspace; waiting for it to finish"
    assert "waiting" not in e2, "said once"
    builds = [e for e in ws.events() if e["type"] == "build.finished"]
    assert [b["data"]["counts"]["cached"] for b in builds] == [0, 1]
    seqs = [e["seq"] for e in ws.events()]
    assert seqs == sorted(set(seqs)), "seq strictly increasing"


def test_sigkill_at_random_moments_leaves_a_trustworthy_cache(mb_workspace):
    count = 24
    files = {f"k/in{i}.txt": f"value {i}\n" * 50 for i in range(count)}
    targets = "".join(f"""
[t{i}]
rule = "genrule"
srcs = ["in{i}.txt"]
outs = ["t{i}.txt"]
cmd = "sleep 0.0{i % 10}; rev $< > $@"

[u{i}]
rule = "genrule"
srcs = [":t{i}"]
outs = ["u{i}.txt"]
cmd = "tr a-z A-Z < $< > $@"
""" for i in range(count))
    ws = mb_workspace({**files, "k/BUILD.toml": targets})
    rng = random.Random(1234)
    for _round in range(6):
        proc = ws.popen("build", "-j", "2")
        time.sleep(rng.uniform(0.05, 1.5))  # the moment of the crash is what varies
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    result = ws.run("build", "-j", "2")
    assert result.exit_code == 0, result.stderr
    for i in range(count):
        expected = "".join(line[::-1] + "\n" for line in [f"value {i}"] * 50).upper()
        assert ws.out(f"k/u{i}.txt").read_text() == expected
    # Every blob in the cache holds exactly the bytes its name says.
    cas = ws.path / ".mb" / "cache" / "cas"
    for blob in cas.rglob("*"):
        if blob.is_file():
            assert digest_file(str(blob)) == blob.name
    # And a further build trusts all of it.
    assert ws.run("build").exit_code == 0
    assert ws.executed() == []


def test_an_action_orphaned_by_sigkill_cannot_corrupt_the_next_build(mb_workspace, tmp_path):
    """mb killed with SIGKILL leaves its running action behind (a session of its own).
    The next build must not run its action in the directory the orphan still writes
    into: the orphan would append to the new output, and the wrong bytes be cached."""
    log, gate = tmp_path / "read.log", tmp_path / "gate"
    ws = mb_workspace({"p/in.txt": "old\n", "p/BUILD.toml": f"""
[t]
rule = "genrule"
srcs = ["in.txt"]
outs = ["o.txt"]
cmd = "v=$$(cat p/in.txt); echo $$$$ $$v >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done; echo $$v >> $@"
"""})
    first = ws.popen("build")
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 1)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    orphan = int(log.read_text().split()[0])
    assert _alive(orphan), "the killed build's action runs on"
    (ws.path / "p/in.txt").write_text("new\n")
    second = ws.popen("build")
    wait_for(lambda: len(log.read_text().splitlines()) == 2)  # the new action read "new"
    gate.touch()  # both may write now
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert ws.out("p/o.txt").read_text() == "new\n"
    wait_for(lambda: not _alive(orphan), timeout=10)
    # What was cached is right too: from a clean mb-out, the cache gives the same.
    (ws.path / "mb-out" / "p" / "o.txt").unlink()
    assert ws.run("build").exit_code == 0
    assert ws.out("p/o.txt").read_text() == "new\n"


def _in_use_mark(ws) -> bool:
    return (ws.path / ".mb" / "sandbox" / "in-use").exists()


def _sandbox_folders(ws) -> list[str]:
    return sorted(n for n in os.listdir(ws.path / ".mb" / "sandbox") if n.startswith("s-"))


# Remove the marker when Executor.close() calls mb.sandbox.base.release_sandbox_folder.
def test_a_build_that_ends_releases_its_sandbox_folder_for_the_next(mb_workspace, tmp_path):
    """Success, failure and Ctrl-C all end the build: its sandbox folder (and the
    symlinks stashed in it, decisions/0004) is reused, not retired."""
    pidfile = tmp_path / "child.pid"
    ws = mb_workspace({"s/in.txt": "x\n", "s/BUILD.toml": f"""
[ok]
rule = "genrule"
srcs = ["in.txt"]
outs = ["ok.txt"]
cmd = "cp $< $@"

[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "exit 3"

[long]
rule = "genrule"
outs = ["long.txt"]
cmd = "sleep 300 & echo $$! > {pidfile}; wait"
"""})
    assert ws.run("build", "//s:ok").exit_code == 0
    assert not _in_use_mark(ws)
    folders = _sandbox_folders(ws)
    assert len(folders) == 1
    assert ws.run("build", "//s:bad").exit_code == 1
    assert not _in_use_mark(ws) and _sandbox_folders(ws) == folders
    proc = ws.popen("build", "//s:long")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert not _in_use_mark(ws) and _sandbox_folders(ws) == folders


def test_ctrl_c_does_not_start_the_remaining_retries(mb_workspace, tmp_path):
    """The retry loop went on after Ctrl-C: a `retrying` line, events and a process per
    remaining attempt (each killed at once)."""
    started = tmp_path / "started"
    ws = mb_workspace({"s/BUILD.toml": f"""
[flaky]
rule = "genrule"
outs = ["f.txt"]
retries = 3
cmd = "echo x >> {started}; sleep 30; exit 1"
"""})
    proc = ws.popen("build")
    wait_for(started.exists)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "retrying" not in err
    assert [e["type"] for e in ws.events()
            if e["type"] in ("action.started", "action.retry")] == ["action.started"]
    assert started.read_text() == "x\n"


def test_temporary_files_of_a_killed_build_are_removed(mb_workspace):
    """A build killed between making a temporary file and renaming it into place left it
    for good: a read-only link in mb-out/ (`place_file` replacing an output), or a
    manifest, stat cache or snapshot in .mb/ (and `mb log` listed the manifest's
    temporary copy as a build that `mb show` could not find). The next build removes
    them (mb-out/'s after a build that died, which the sandbox mark tells)."""
    ws = mb_workspace({"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\n'
                                       'cmd = "echo t > $@"\n'})
    assert ws.run("build").exit_code == 0
    manifest = next((ws.path / ".mb" / "builds").glob("b-*.json"))
    ghost = json.loads(manifest.read_text()) | {"build_id": "b-20991231-000000-dead"}
    strays = [ws.path / ".mb" / "builds" / ".tmp-99999-1-b-20991231-000000-dead.json",
              ws.path / ".mb" / ".tmp-99999-1-statcache.bin",
              ws.path / ".mb" / "fastpath" / ".tmp-99999-1-0123.bin",
              ws.out("p/.tmp-99999-1-t.txt")]
    for stray in strays:
        stray.write_text(json.dumps(ghost))
    assert "b-20991231-000000-dead" not in ws.run("log").stdout  # only b-*.json are builds
    (ws.path / ".mb" / "sandbox" / "in-use").write_text("99999\n")  # a build that died
    ws.write({"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "echo u > $@"\n'})
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert [stray for stray in strays if stray.exists()] == []
    assert ws.out("p/t.txt").read_text() == "u\n"
