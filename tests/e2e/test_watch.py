"""End-to-end: a real `mb watch` process, driven by editing files the way editors save them.

Every wait polls `.mb/events.jsonl` or `mb-out/` with a deadline. "Exactly
one rebuild" and "no rebuild" are checked with a sentinel: after the change
under test, a second, known change is saved; builds run in the order their
changes arrive, so a stray build would show up before the sentinel's.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mb.cache import Cache
from mb.events import read_events
from PIL import Image

TWO_TARGETS = {
    "a/in.txt": "hello\n",
    "a/other.txt": "other\n",
    "a/BUILD.toml": """
[up]
rule = "genrule"
srcs = ["in.txt"]
outs = ["up.txt"]
cmd = "tr a-z A-Z < $< > $@"

[rev]
rule = "genrule"
srcs = ["other.txt"]
outs = ["rev.txt"]
cmd = "rev $< > $@"
""",
}


class Watch:
    """A running `mb watch` whose stdout and stderr are collected as they come."""

    def __init__(self, ws: Any, proc: subprocess.Popen[str]) -> None:
        self.ws = ws
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, d), daemon=True)
                         for s, d in ((proc.stdout, self.out), (proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: io.TextIOBase, into: list[str]) -> None:
        into.extend(stream)  # line by line, as the process writes them

    def events(self) -> list[dict[str, Any]]:
        return read_events(str(self.ws.path / ".mb" / "events.jsonl"))

    def finished(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["type"] == "build.finished"]

    def wait_builds(self, count: int) -> list[dict[str, Any]]:
        """Wait until `count` builds have finished; returns their build.finished events."""
        wait_for(lambda: len(self.finished()) >= count, self)
        return self.finished()

    def wait_reports(self, count: int) -> None:
        """Wait until the watcher has printed its report and gone idle `count` times."""
        wait_for(lambda: self.stdout.count("Ctrl-C to stop") >= count, self)

    def of_build(self, build_id: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["build_id"] == build_id and e["type"] == kind]

    def changes(self) -> list[list[str]]:
        """The paths of every `watch.change`, in order: one entry per rebuild."""
        return [e["data"]["paths"] for e in self.events() if e["type"] == "watch.change"]

    def executed(self, build_id: str) -> list[str]:
        return sorted(e["target"] for e in self.of_build(build_id, "action.finished")
                      if not e["data"]["cached"])

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


@contextmanager
def watching(ws: Any, *args: str) -> Iterator[Watch]:
    watch = Watch(ws, ws.popen("watch", *args))
    try:
        yield watch
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait(timeout=30)


def wait_for(predicate: Callable[[], bool], watch: Watch | None = None,
             timeout: float = 30.0) -> None:
    """Poll a condition on files a real process writes (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if watch is not None and watch.proc.poll() is not None:
            raise AssertionError(f"mb watch exited with {watch.proc.returncode}: "
                                 f"{watch.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time"
                                 + (f"; stderr: {watch.stderr}" if watch else ""))
        time.sleep(0.01)


def save(path: Path, text: str) -> None:
    """Save the way many editors do: write a temporary file, then rename it over the old one."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_edit_rebuilds_only_the_changed_action(mb_workspace):
    ws = mb_workspace(TWO_TARGETS)
    with watching(ws, "//a:all") as watch:
        first = watch.wait_builds(1)[0]
        assert ws.out("a/up.txt").read_text() == "HELLO\n"
        assert watch.executed(first["build_id"]) == ["//a:rev", "//a:up"]
        (ws.path / "a/in.txt").write_text("world, again\n")
        second = watch.wait_builds(2)[1]
        assert ws.out("a/up.txt").read_text() == "WORLD, AGAIN\n"
        assert watch.executed(second["build_id"]) == ["//a:up"]
        assert second["data"]["counts"] == {"executed": 1, "cached": 1, "failed": 0,
                                            "skipped": 0}
        change = watch.of_build(second["build_id"], "watch.change")
        assert [c["data"]["paths"] for c in change] == [["a/in.txt"]]
        watch.wait_reports(2)
        assert watch.stop() == 130
    assert "changed: a/in.txt" in watch.stdout
    assert "rebuilt: //a:up\n//a:up (built)\n  mb-out/a/up.txt\n" in watch.stdout


def test_editor_saves_give_one_rebuild_each(mb_workspace):
    ws = mb_workspace(TWO_TARGETS)
    with watching(ws, "//a:all") as watch:
        watch.wait_builds(1)
        save(ws.path / "a/in.txt", "renamed into place\n")  # temp file + rename
        watch.wait_builds(2)
        assert ws.out("a/up.txt").read_text() == "RENAMED INTO PLACE\n"
        other = ws.path / "a/other.txt"
        other.unlink()  # delete, then create
        other.write_text("created anew\n")
        watch.wait_builds(3)
        assert ws.out("a/rev.txt").read_text() == "wena detaerc\n"
        (ws.path / "a/in.txt").write_text("sentinel\n")
        watch.wait_builds(4)
        assert ws.out("a/up.txt").read_text() == "SENTINEL\n"
        assert watch.changes() == [["a/in.txt"], ["a/other.txt"], ["a/in.txt"]]
        assert watch.stop() == 130


def test_unrelated_files_and_outputs_never_start_a_build(mb_workspace):
    ws = mb_workspace({**TWO_TARGETS, "b/BUILD.toml": '[x]\nrule = "genrule"\nouts = ["x"]\n'
                       'cmd = "echo x > $@"\n', "b/notes.txt": "notes\n"})
    with watching(ws, "//a:up") as watch:
        watch.wait_builds(1)
        (ws.path / "a/notes.txt").write_text("not a source of //a:up\n")
        (ws.path / "a/other.txt").write_text("a source, but of //a:rev\n")
        (ws.path / "b/BUILD.toml").write_text("# package b is not requested\n")
        (ws.path / "mb-out/a/stray.txt").write_text("written into mb-out\n")
        (ws.path / ".mb/stray.txt").write_text("written into .mb\n")
        (ws.path / "a/in.txt").write_text("sentinel\n")
        watch.wait_builds(2)
        assert ws.out("a/up.txt").read_text() == "SENTINEL\n"
        assert watch.changes() == [["a/in.txt"]]
        assert watch.stop() == 130


def test_change_during_a_build_starts_the_next_one(mb_workspace, tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    ws = mb_workspace({"a/in.txt": "one\n", "a/BUILD.toml": f"""
[slow]
rule = "genrule"
srcs = ["in.txt"]
outs = ["slow.txt"]
cmd = "while [ ! -e {gate} ]; do sleep 0.02; done; cat $< > $@"
"""})
    with watching(ws, "//a:slow") as watch:
        watch.wait_builds(1)
        gate.unlink()
        (ws.path / "a/in.txt").write_text("two\n")
        wait_for(lambda: len([e for e in watch.events() if e["type"] == "action.started"]) == 2,
                 watch)
        (ws.path / "a/in.txt").write_text("three!\n")  # while the build waits on the gate
        gate.touch()
        builds = watch.wait_builds(3)
        # Build 2 may fail: its input changed under the running action (the engine's call);
        # what matters here is that the change started build 3 and that it is right.
        assert builds[2]["data"]["status"] == "ok"
        assert ws.out("a/slow.txt").read_text() == "three!\n"
        assert watch.changes() == [["a/in.txt"], ["a/in.txt"]]
        assert watch.stop() == 130


def test_broken_build_file_is_shown_and_the_fix_rebuilds(mb_workspace):
    ws = mb_workspace(TWO_TARGETS)
    build_file = ws.path / "a/BUILD.toml"
    with watching(ws, "//a:up") as watch:
        watch.wait_builds(1)
        build_file.write_text(TWO_TARGETS["a/BUILD.toml"].replace("cmd =", "cmdd ="))
        wait_for(lambda: any(e["type"] == "watch.error" for e in watch.events()), watch)
        wait_for(lambda: "waiting for a change" in watch.stderr, watch)
        assert ("a/BUILD.toml:6:1: unknown attribute 'cmdd' for rule 'genrule'; "
                "did you mean 'cmd'?") in watch.stderr
        assert "Traceback" not in watch.stderr
        build_file.write_text(TWO_TARGETS["a/BUILD.toml"].replace("tr a-z A-Z", "tr l L"))
        builds = watch.wait_builds(2)
        assert builds[-1]["data"]["status"] == "ok"
        assert ws.out("a/up.txt").read_text() == "heLLo\n"

        (ws.path / "MB.toml").write_text('[build]\njobs = "2"\n')
        wait_for(lambda: len([e for e in watch.events() if e["type"] == "watch.error"]) == 2,
                 watch)
        (ws.path / "MB.toml").write_text("[build]\njobs = 2\n")
        watch.wait_builds(3)
        assert watch.changes() == [["a/BUILD.toml"], ["a/BUILD.toml"], ["MB.toml"], ["MB.toml"]]
        assert watch.stop() == 130
    errors = [e["data"]["message"] for e in watch.events() if e["type"] == "watch.error"]
    assert errors[1].startswith("MB.toml:2:"), errors
    assert errors[1] in watch.stderr


def test_missing_image_is_a_placeholder_until_it_appears(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": """
[card]
rule = "genrule"
srcs = ["art.png"]
outs = ["card.png"]
cmd = "cp $< $@"
"""})
    with watching(ws, "//a:card") as watch:
        first = watch.wait_builds(1)[0]
        used = watch.of_build(first["build_id"], "placeholder.used")
        assert [(e["target"], e["data"]["path"]) for e in used] == [("//a:card", "a/art.png")]
        with Image.open(ws.out("a/card.png")) as image:
            assert image.size == (1080, 1920)
        done = watch.of_build(first["build_id"], "action.finished")
        assert [e["data"]["provisional"] for e in done] == [True]
        assert manifest(ws, first["build_id"])["//a:card"]["provisional"] is True
        provisional_key = watch.of_build(first["build_id"], "action.started")[0]["data"]["key"]

        real = io.BytesIO()
        Image.new("RGB", (4, 3), (200, 10, 10)).save(real, format="PNG")
        (ws.path / "a/art.png").write_bytes(real.getvalue())
        second = watch.wait_builds(2)[1]
        assert ws.out("a/card.png").read_bytes() == real.getvalue()
        assert watch.of_build(second["build_id"], "placeholder.used") == []
        done = watch.of_build(second["build_id"], "action.finished")
        assert [(e["data"]["cached"], e["data"]["provisional"]) for e in done] == [(False, False)]
        assert manifest(ws, second["build_id"])["//a:card"]["provisional"] is False
        real_key = watch.of_build(second["build_id"], "action.started")[0]["data"]["key"]
        assert real_key != provisional_key, "the real input changes the key"
        cache = Cache(str(ws.path / ".mb" / "cache"))
        assert cache.get_result(provisional_key) is None, "provisional results are not cached"
        assert cache.get_result(real_key) is not None
        watch.wait_reports(2)
        assert watch.stop() == 130
    first_report, second_report = watch.stdout.split("changed: a/art.png")
    assert "still provisional:\n  //a:card (placeholder for a/art.png)" in first_report
    assert "//a:card (built) [provisional]\n  mb-out/a/card.png" in first_report
    assert "provisional" not in second_report
    assert "//a:card (built)\n  mb-out/a/card.png" in second_report


def test_an_unchanged_provisional_action_does_not_run_again(mb_workspace):
    ws = mb_workspace({**TWO_TARGETS, "a/BUILD.toml": TWO_TARGETS["a/BUILD.toml"] + """
[card]
rule = "genrule"
srcs = ["art.png"]
outs = ["card.png"]
cmd = "cp $< $@"
"""})
    with watching(ws, "//a:all") as watch:
        watch.wait_builds(1)
        (ws.path / "a/in.txt").write_text("only this changed\n")
        second = watch.wait_builds(2)[1]
        assert watch.executed(second["build_id"]) == ["//a:up"]
        assert manifest(ws, second["build_id"])["//a:card"]["provisional"] is True
        assert watch.stop() == 130


def manifest(ws: Any, build_id: str) -> dict[str, Any]:
    import json

    return json.loads((ws.path / ".mb" / "builds" / f"{build_id}.json").read_text())["targets"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_while_waiting_exits_130(mb_workspace, sig):
    ws = mb_workspace(TWO_TARGETS)
    with watching(ws, "//a:up") as watch:
        watch.wait_builds(1)
        watch.wait_reports(1)
        assert watch.stop(sig) == 130
    assert watch.stderr.endswith("interrupted\n")


def test_ctrl_c_during_a_rebuild_stops_its_children(mb_workspace, tmp_path):
    pidfile = tmp_path / "child.pid"
    ws = mb_workspace({"a/in.txt": "quick\n", "a/BUILD.toml": f"""
[long]
rule = "genrule"
srcs = ["in.txt"]
outs = ["long.txt"]
cmd = "if grep -q slow $<; then sleep 300 & echo $$! > {pidfile}; wait; fi; cp $< $@"
"""})
    with watching(ws, "//a:long") as watch:
        watch.wait_builds(1)
        (ws.path / "a/in.txt").write_text("slow\n")
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", watch)
        child = int(pidfile.read_text())
        assert watch.stop() == 130
    wait_for(lambda: not alive(child), timeout=10)
    assert watch.finished()[-1]["data"]["status"] == "interrupted"
    assert watch.stderr.endswith("interrupted\n")


def test_report_after_an_interrupted_build_claims_no_cache_hits(mb_workspace, tmp_path):
    marker = tmp_path / "running"
    ws = mb_workspace({"s/BUILD.toml": f"""
[slow]
rule = "genrule"
outs = ["slow.txt"]
cmd = "touch {marker}; sleep 300; echo > $@"
"""})
    with watching(ws, "//s:slow") as watch:
        wait_for(marker.exists, watch)
        assert watch.stop() == 130
    assert watch.finished()[-1]["data"]["status"] == "interrupted"
    assert "rebuilt: nothing (build interrupted)\n" in watch.stdout
    assert "all cached" not in watch.stdout


def test_report_after_a_failed_build_says_it_failed(mb_workspace):
    ws = mb_workspace({**TWO_TARGETS, "f/BUILD.toml": """
[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "exit 3"
"""})
    with watching(ws, "//a:up", "//f:bad") as watch:
        watch.wait_reports(1)
        (ws.path / "f/BUILD.toml").write_text(
            '[bad]\nrule = "genrule"\nouts = ["bad.txt"]\ncmd = "echo fixed > $@"\n')
        watch.wait_reports(2)
        (ws.path / "a/in.txt").write_text("hello\n")  # the same bytes: every action cached
        watch.wait_reports(3)
        assert watch.stop() == 130
    reports = [line for line in watch.stdout.splitlines() if line.startswith("rebuilt:")]
    assert reports == ["rebuilt: //a:up (build failed)", "rebuilt: //f:bad",
                       "rebuilt: nothing (all cached)"]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie reparented to init counts as gone
    except FileNotFoundError:
        return False


# --- the filter and the change feed, in process --------------------------------------------


def test_filter_keeps_only_what_can_change_the_build(tmp_path):
    from mb.labels import parse_pattern
    from mb.watch import MbFilter
    from watchfiles import Change

    root = str(tmp_path)
    keep = MbFilter(root, [parse_pattern("//scenes/...", "")])
    keep.update(frozenset({"scenes/intro/title.svg", "scenes/intro/BUILD.toml", "MB.toml"}),
                os.path.join(root, "cache"), errored=False)
    keep.open = False

    def kept(rel: str) -> bool:
        return keep(Change.modified, os.path.join(root, rel))

    assert kept("scenes/intro/title.svg")
    assert kept("scenes/intro/BUILD.toml")
    assert kept("MB.toml")
    assert kept("scenes/intro"), "a renamed or removed folder of watched files"
    assert kept("scenes/outro/BUILD.toml"), "a new package the pattern matches"
    assert not kept("shorts/BUILD.toml"), "a package no pattern matches"
    assert not kept("scenes/.hidden/BUILD.toml")
    assert not kept("scenes/intro/.title.svg.swp")
    assert not kept("scenes/intro/notes.txt")
    assert not kept("mb-out/scenes/intro/title.svg")
    assert not kept(".mb/cache/ac/12/1234.json")
    assert not kept("cache/cas/ab/abcd")
    keep.update(keep.watched, os.path.join(root, "cache"), errored=True)
    assert kept("shorts/BUILD.toml"), "after an error any BUILD.toml may be the fix"
    keep.open = True
    assert kept("scenes/intro/notes.txt"), "while a build runs, checked again after it"
    assert not kept("mb-out/x"), "mb's own output never"


def test_change_feed_reports_wanted_changes_and_stops_through_its_event(tmp_path):
    from mb.watch import ChangeFeed, MbFilter

    (tmp_path / "a").mkdir()
    source = tmp_path / "a" / "in.txt"
    source.write_text("one\n")
    mb_filter = MbFilter(str(tmp_path), [])
    mb_filter.update(frozenset({"a/in.txt"}), str(tmp_path / ".mb" / "cache"), errored=False)
    mb_filter.open = False
    feed = ChangeFeed(str(tmp_path), mb_filter)
    feed.start()
    try:
        (tmp_path / "a" / "notes.txt").write_text("ignored\n")
        save(source, "two\n")
        assert feed.wait() == {"a/in.txt"}
    finally:
        feed.close()
    assert not any(thread.is_alive() for thread in feed._threads)


def test_a_burst_of_writes_to_one_file_is_one_rebuild(mb_workspace):
    """watchfiles ends a batch when a write adds no new (change, path) pair; the
    watcher waits for the file to settle, so no build runs on a half-written burst
    (whose action would fail on an input changed under it)."""
    ws = mb_workspace(TWO_TARGETS)
    with watching(ws, "//a:all") as watch:
        watch.wait_builds(1)
        for i in range(20):
            (ws.path / "a/in.txt").write_text(f"burst {i}\n")
            time.sleep(0.005)
        (ws.path / "a/other.txt").write_text("sentinel\n")
        wait_for(lambda: ws.out("a/rev.txt").exists()
                 and ws.out("a/rev.txt").read_text() == "lenitnes\n", watch)
        watch.wait_reports(2)
        builds = watch.finished()
        assert [b["data"]["status"] for b in builds] == ["ok"] * len(builds), watch.stdout
        assert ws.out("a/up.txt").read_text() == "BURST 19\n"
        assert "FAILED" not in watch.stdout + watch.stderr
        assert watch.stop() == 130


def test_a_package_folder_moved_in_whole_is_built(mb_workspace, tmp_path):
    """`mv` of a folder holding a BUILD.toml gives one event, for the folder."""
    ws = mb_workspace(TWO_TARGETS)
    outside = tmp_path / "elsewhere" / "n1"
    (outside / "n2").mkdir(parents=True)
    (outside / "n2" / "BUILD.toml").write_text(
        '[hi]\nrule = "genrule"\nouts = ["hi.txt"]\ncmd = "echo hi > $@"\n')
    with watching(ws, "//a/...") as watch:
        watch.wait_builds(1)
        os.rename(outside, ws.path / "a" / "n1")
        wait_for(lambda: ws.out("a/n1/n2/hi.txt").exists(), watch)
        assert ws.out("a/n1/n2/hi.txt").read_text() == "hi\n"
        assert watch.stop() == 130


def test_a_source_read_during_analysis_analyses_again_when_it_appears(mb_workspace):
    """`ctx.read_source` of a file that is missing: a placeholder first, and when the
    file appears, a new analysis (its outputs depend on its contents)."""
    plugin = Path(__file__).parent / "plugin_modules" / "read_source_rule.py"
    ws = mb_workspace({"plug/read_source_rule.py": plugin.read_text(),
                       "l/BUILD.toml": '[t]\nrule = "lines"\nsrc = "in.txt"\n'})
    ws.env["PYTHONPATH"] = str(ws.path / "plug")
    watch = Watch(ws, ws.popen("-p", "read_source_rule", "watch", "//l:t"))
    try:
        watch.wait_builds(1)
        assert ws.out("l/t_0.txt").exists() and not ws.out("l/t_1.txt").exists()
        (ws.path / "l/in.txt").write_text("one\ntwo\nthree\n")
        wait_for(lambda: ws.out("l/t_2.txt").exists(), watch)
        assert [ws.out(f"l/t_{i}.txt").read_text() for i in range(3)] == [
            "one\n", "two\n", "three\n"]
        (ws.path / "l/in.txt").write_text("four\nfive\nsix\nseven\n")
        wait_for(lambda: ws.out("l/t_3.txt").exists(), watch)
        assert ws.out("l/t_3.txt").read_text() == "seven\n"
        assert watch.stop() == 130
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait(timeout=30)


def test_a_file_name_that_is_not_utf8_stops_the_watch_with_one_line(mb_workspace):
    """The file watcher (Rust) cannot name such a file and gives up; mb says so in one
    line, exit 2, instead of a Python traceback."""
    ws = mb_workspace({"a/in.txt": "x\n", "a/BUILD.toml": '[t]\nrule = "genrule"\n'
                       'srcs = ["in.txt"]\nouts = ["t.txt"]\ncmd = "cp $< $@"\n'})
    with watching(ws) as watch:
        watch.wait_reports(1)
        with open(os.fsencode(str(ws.path)) + b"/file\xfc.txt", "wb") as f:
            f.write(b"x")
        code = watch.proc.wait(timeout=30)
        for reader in watch._readers:
            reader.join(timeout=10)
    assert code == 2
    assert "Traceback" not in watch.stderr
    [line] = watch.stderr.strip().splitlines()
    assert line.startswith("mb watch stopped: the file watcher failed: ")
    assert "a file or folder name that is not UTF-8 cannot be watched: rename it" in line


def test_a_workspace_whose_path_is_not_utf8_is_refused_by_watch_only(tmp_path):
    import subprocess
    import sys

    root = os.fsencode(str(tmp_path)) + b"/bad\xffname"
    os.makedirs(root + b"/a")
    for name, text in ((b"/MB.toml", b""), (b"/a/BUILD.toml",
                                           b'[t]\nrule = "genrule"\nouts = ["t.txt"]\n'
                                           b'cmd = "echo t > $@"\n')):
        with open(root + name, "wb") as f:
            f.write(text)
    built = subprocess.run([sys.executable, "-m", "mb", "build", "-q"], cwd=root,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    watched = subprocess.run([sys.executable, "-m", "mb", "watch"], cwd=root,
                             capture_output=True, text=True, timeout=120)
    assert watched.returncode == 2
    assert watched.stderr.strip().splitlines() == [
        f"mb watch cannot watch {str(tmp_path)}/bad\\xffname: its path is not valid UTF-8; "
        "rename the folder (mb build works there)"]


def test_the_none_sandbox_forest_does_not_take_other_packages_edits(mb_workspace):
    """The `none` sandbox keeps symlinks to workspace folders under .mb/; a recursive
    watch of the root followed them, and inotify then reported the real folder's
    changes under .mb/ (ignored) or lost its watch: no edit of q/ was ever seen."""
    ws = mb_workspace({
        "q/BUILD.toml": "",
        "q/q.txt": "q1\n",
        "p/in.txt": "one\n",
        "p/BUILD.toml": '[up]\nrule = "genrule"\nsrcs = ["in.txt", "//q:q.txt"]\n'
                        'outs = ["up.txt"]\ncmd = "cat $(SRCS) > $@"\n'})
    with watching(ws, "--sandbox", "none", "//...") as watch:
        watch.wait_builds(1)
        save(ws.path / "q" / "q.txt", "q2\n")
        watch.wait_builds(2)
        save(ws.path / "q" / "q.txt", "q3\n")
        watch.wait_builds(3)
    assert ws.out("p/up.txt").read_text() == "one\nq3\n"


def test_a_new_top_level_package_is_watched_from_the_moment_it_appears(mb_workspace):
    """Top-level folders have a watch each, started again when one appears: an edit in
    a folder made after the watch began is still seen, and so is what it held before
    its watch ran."""
    ws = mb_workspace(TWO_TARGETS)
    with watching(ws, "//...") as watch:
        watch.wait_builds(1)
        (ws.path / "n").mkdir()
        (ws.path / "n" / "in.txt").write_text("first\n")
        (ws.path / "n" / "BUILD.toml").write_text(
            '[copy]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["out.txt"]\n'
            'cmd = "cp $< $@"\n')
        wait_for(lambda: ws.out("n/out.txt").exists()
                 and ws.out("n/out.txt").read_text() == "first\n", watch)
        save(ws.path / "n" / "in.txt", "second\n")
        wait_for(lambda: ws.out("n/out.txt").read_text() == "second\n", watch)


def test_an_edit_of_the_file_a_symlinked_source_points_to_is_seen(mb_workspace):
    ws = mb_workspace({
        "shared/in.txt": "one\n",
        "p/BUILD.toml": '[up]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["up.txt"]\n'
                        'cmd = "tr a-z A-Z < $< > $@"\n'})
    (ws.path / "p" / "in.txt").symlink_to("../shared/in.txt")
    with watching(ws, "//...") as watch:
        watch.wait_builds(1)
        save(ws.path / "shared" / "in.txt", "two\n")
        wait_for(lambda: ws.out("p/up.txt").read_text() == "TWO\n", watch)


def test_an_edit_of_a_file_outside_the_workspace_a_source_links_to_is_seen(
        mb_workspace, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("one\n")
    ws = mb_workspace({
        "p/BUILD.toml": '[up]\nrule = "genrule"\nsrcs = ["x.txt"]\nouts = ["up.txt"]\n'
                        'cmd = "tr a-z A-Z < $< > $@"\n'})
    (ws.path / "p" / "x.txt").symlink_to(elsewhere / "x.txt")
    with watching(ws, "//...") as watch:
        watch.wait_builds(1)
        wait_for(lambda: "Ctrl-C to stop" in watch.stdout, watch)  # watching its folder
        save(elsewhere / "x.txt", "two\n")
        watch.wait_builds(2)
        assert ws.out("p/up.txt").read_text() == "TWO\n"
        assert watch.changes() == [["p/x.txt"]]
