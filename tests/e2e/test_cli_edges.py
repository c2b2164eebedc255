"""End-to-end edges of the command line: the live display on a real terminal,
--profile paths, SIGTERM outside the action run, `mb tail --level`, no-op events."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import time
from typing import Any

SLOW = {"s/BUILD.toml": """
[slow]
rule = "genrule"
outs = ["slow.txt"]
cmd = "sleep 0.3; echo slow > $@"
tags = ["no-cache"]
"""}


def run_on_terminal(ws, *args: str, env: dict[str, str] | None = None,
                    stderr: Any = subprocess.DEVNULL) -> tuple[int, str]:
    """Run `mb ARGS` with stdout on a pseudo-terminal; its exit code and what it drew.
    `stderr`: where stderr goes (None: the same terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(ws.command(*args), cwd=ws.path,
                            env={**ws.env, "TERM": "xterm", **(env or {})},
                            stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave if stderr is None else stderr)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_live_display_on_a_terminal_draws_styles_not_markup(mb_workspace):
    ws = mb_workspace(SLOW)
    for env, flags in (({"NO_COLOR": ""}, ()), ({"NO_COLOR": "1"}, ()),
                       ({"NO_COLOR": ""}, ("--color", "never"))):
        code, screen = run_on_terminal(ws, *flags, "build", env=env)
        assert code == 0, screen
        assert "\x1b[?25l" in screen, "the live display hid the cursor: it was drawn"
        assert "[bold]" not in screen and "[cyan]" not in screen and "[/]" not in screen, screen
        assert "[1/1] //s:slow" in screen and "build ok: 1 executed" in screen
        coloured = "\x1b[36m//s:slow" in screen
        assert coloured == (env["NO_COLOR"] == "" and not flags), (env, flags, screen)


QUICK_AND_FAILING = {
    "q/BUILD.toml": "".join(f"""
[{name}]
rule = "genrule"
outs = ["{name}.txt"]
cmd = "echo {name} > $@"
tags = ["no-cache"]
""" for name in ("p", "q", "r")),
    "f/BUILD.toml": """
[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "echo boom >&2; exit 3"
""",
}

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_live_display_frame_under_each_line_shows_the_current_counts(mb_workspace):
    ws = mb_workspace(QUICK_AND_FAILING)
    code, screen = run_on_terminal(ws, "build", "-k", "-j", "1", env={"NO_COLOR": ""})
    assert code == 1, screen
    text = ESCAPE.sub("", screen)
    printed = re.findall(r"\[(\d)/4\] //q:\w genrule -> \w\.txt \d+\.\d\ds\r\n([^\r\n]*)", text)
    assert len(printed) == 3, text
    for done, frame in printed:
        assert frame.startswith(f"{done}/4 actions, 0 cached, "), text
    assert "0/0 actions" not in text, "a frame from before the build started"
    assert not re.search(r"\x1b\[[0-9;]*31m[^\r\n]*actions, ", screen), "the frame is not red"


def test_live_display_writes_failures_to_stderr(mb_workspace, tmp_path):
    ws = mb_workspace(QUICK_AND_FAILING)
    with open(tmp_path / "err.txt", "w") as err:
        code, screen = run_on_terminal(ws, "build", "-k", env={"NO_COLOR": ""}, stderr=err)
    assert code == 1, screen
    assert "FAILED" not in screen and "boom" not in screen, screen
    errors = (tmp_path / "err.txt").read_text()
    assert errors.splitlines()[:2] == ["FAILED //f:bad: command exited with status 3", "    boom"]
    assert errors.splitlines()[2].startswith("build failed: "), errors
    assert "\x1b[" not in errors, "no colour in a file"
    code, shared = run_on_terminal(ws, "build", "-k", "//f:bad", env={"NO_COLOR": ""},
                                   stderr=None)
    assert code == 1
    assert "\x1b[31mFAILED //f:bad: command exited with status 3\x1b[0m" in shared, shared
    assert not re.search(r"\x1b\[[0-9;]*31m[^\r\n]*actions, ", shared), "the frame is not red"


def test_color_always_without_a_terminal_is_plain_coloured_lines(mb_workspace):
    ws = mb_workspace({**SLOW, "f/BUILD.toml": """
[bad]
rule = "genrule"
outs = ["bad.txt"]
cmd = "exit 3"
"""})
    result = ws.run("--color", "always", "build", "-k", env={"NO_COLOR": ""})
    assert result.exit_code == 1
    for stream in (result.stdout, result.stderr):
        for code in ("\x1b[?25l", "\x1b[1A", "\x1b[2K", "\r"):
            assert code not in stream, f"no cursor movement in a pipe: {stream!r}"
    assert "] //s:slow genrule -> slow.txt" in result.stdout
    assert "\x1b[31mFAILED //f:bad" in result.stderr, "--color always still colours"
    plain = ws.run("--color", "always", "build", "-k", "//f:bad", env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain.stdout + plain.stderr, "NO_COLOR wins"


def test_profile_to_a_missing_directory_is_refused_before_building(mb_workspace, tmp_path):
    ws = mb_workspace(SLOW)
    for path, message in ((tmp_path / "missing" / "p.json", "no such directory"),
                          (tmp_path, "is a directory")):
        result = ws.run("build", "--profile", str(path))
        assert result.exit_code == 2, result.stderr
        assert result.stderr == f"--profile {path}: {message}" + (
            f" {path.parent}\n" if message == "no such directory" else "\n")
    assert ws.events() == [], "nothing was built"


def test_profile_path_gone_after_the_build_keeps_the_build_record(mb_workspace, tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    ws = mb_workspace({"r/BUILD.toml": f"""
[rm]
rule = "genrule"
outs = ["rm.txt"]
cmd = "rmdir {folder}; echo > $@"
tags = ["no-cache"]
"""})
    trace = folder / "p.json"
    result = ws.run("build", "--profile", str(trace))
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"--profile {trace}: cannot write the trace: ")
    assert len(result.stderr.splitlines()) == 1
    assert "build ok: 1 executed" in result.stdout
    finished = [e for e in ws.last_build_events() if e["type"] == "build.finished"]
    assert finished and finished[0]["data"]["status"] == "ok"
    build_id = finished[0]["build_id"]
    assert (ws.path / ".mb/builds/current").read_text().strip() == build_id
    assert not list((ws.path / ".mb").glob("profile-*")), "the staged trace is removed"
    folder.mkdir()  # for the action to remove again
    kept = tmp_path / "kept.json"
    assert ws.run("build", "--profile", str(kept)).exit_code == 0
    assert kept.exists() and not list((ws.path / ".mb").glob("profile-*"))


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_sigterm_while_waiting_for_the_lock_exits_130(mb_workspace, tmp_path):
    marker = tmp_path / "running"
    ws = mb_workspace({"s/BUILD.toml": f"""
[hold]
rule = "genrule"
outs = ["hold.txt"]
cmd = "touch {marker}; sleep 3; echo > $@"
tags = ["no-cache"]
"""})
    first = ws.popen("build")
    _wait_for(marker.exists)
    second = ws.popen("build")
    said: list[bytes] = []
    _wait_for(lambda: said.append(os.read(second.stderr.fileno(), 4096))
              or b"waiting" in b"".join(said))
    second.send_signal(signal.SIGTERM)
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 130, err
    assert "Traceback" not in err
    first.communicate(timeout=60)
    assert first.returncode == 0


SLOW_RULE = '''
import os
import time

import attrs
import mb


@attrs.frozen
class A:
    pass


@mb.rule("slow_analysis", attrs=A)
def impl(ctx, a):
    open(os.environ["MB_TEST_MARKER"], "w").close()
    time.sleep(60)


@mb.hookimpl
def mb_rules():
    return [impl]
'''


def test_sigterm_during_analysis_exits_130(mb_workspace, tmp_path):
    marker = tmp_path / "analysing"
    ws = mb_workspace({"plug/slow_rule.py": SLOW_RULE,
                       "s/BUILD.toml": '[x]\nrule = "slow_analysis"\n'})
    proc = ws.popen("-p", "slow_rule", "build",
                    env={"PYTHONPATH": str(ws.path / "plug"), "MB_TEST_MARKER": str(marker)})
    _wait_for(marker.exists)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err


LEVELS = {"l/BUILD.toml": """
[ok]
rule = "genrule"
outs = ["ok.txt"]
cmd = "echo > $@"

[flaky]
rule = "genrule"
outs = ["flaky.txt"]
retries = 1
cmd = "exit 1"
"""}


def test_tail_level_is_a_threshold(mb_workspace):
    import json

    ws = mb_workspace(LEVELS)
    assert ws.run("build", "-k").exit_code == 1

    def levels(*args: str) -> set[str]:
        result = ws.run("tail", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return {json.loads(line)["level"] for line in result.stdout.splitlines()}

    assert levels() == {"info", "warning", "error"}
    assert levels("--level", "debug") == {"info", "warning", "error"}
    assert levels("--level", "info") == {"info", "warning", "error"}
    assert levels("--level", "warning") == {"warning", "error"}
    assert levels("--level", "error") == {"error"}
    last = ws.events()[-1]
    with open(ws.path / ".mb/events.jsonl", "a") as log:  # a plugin's own level
        log.write(json.dumps({**last, "seq": last["seq"] + 1, "level": "critical"}) + "\n")
    assert levels("--level", "error") == {"error", "critical"}, "an unranked level is shown"
    bogus = ws.run("tail", "--level", "bogus")
    assert bogus.exit_code == 2 and "invalid choice: 'bogus'" in bogus.stderr
    assert bogus.stdout == ""


def test_noop_build_records_the_patterns_like_a_full_build(mb_workspace):
    ws = mb_workspace({"b/c/BUILD.toml": """
[three]
rule = "genrule"
outs = ["three.txt"]
cmd = "echo 3 > $@"
"""})
    ws.env["MB_RACY_SECONDS"] = "0"
    started = []
    for _ in range(3):  # full, full (records a trusted snapshot), no-op
        assert ws.run("build", "//b/c:three").exit_code == 0
        started += [e for e in ws.last_build_events() if e["type"] == "build.started"]
    assert started[-1]["data"].get("noop") and not started[0]["data"].get("noop")
    assert [e["data"]["patterns"] for e in started] == [["//b/c:three"]] * 3


def test_credentials_in_urls_never_reach_a_message(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'})
    remote = ws.run("build", "--remote-cache", "http://user:PWSECRET99@127.0.0.1:18802")
    assert "PWSECRET99" not in remote.stderr + remote.stdout
    assert "(remote http://***@127.0.0.1:18802 ignored)" in remote.stderr
    executor = ws.run("build", "--executor", "dask://u:PWSECRET99@host:8786")
    assert executor.exit_code == 2
    assert "PWSECRET99" not in executor.stderr + executor.stdout


def test_usage_errors_are_one_line(mb_workspace):
    ws = mb_workspace(SLOW)
    for args, message in (
            (("frob",), "mb: error: argument COMMAND: invalid choice: 'frob' (choose from "),
            (("build", "-j", "x"), "mb build: error: argument -j/--jobs: invalid int value: 'x'"),
            (("tail", "--level", "bogus"), "mb tail: error: argument --level: invalid choice: "
                                           "'bogus' (choose from 'debug', 'info', 'warning', "
                                           "'error'); see mb tail --help"),
            (("graph", "--format", "png"), "mb graph: error: argument --format: invalid choice: "
                                           "'png'"),
            (("log", "--bogus"), "mb: error: unrecognized arguments: --bogus; see mb --help"),
            (("approve",), "mb approve: error: the following arguments are required: label")):
        result = ws.run(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith(message), (args, result.stderr)
        assert "usage:" not in result.stderr
    assert ws.events() == [], "nothing was built"
    helped = ws.run("--help")
    assert helped.exit_code == 0 and helped.stdout.startswith("usage: mb ")
    assert "approve" in helped.stdout and "reject" in helped.stdout
    bare = ws.run()
    assert bare.exit_code == 2 and bare.stdout.startswith("usage: mb ")


def test_version_is_mbs_own(mb_workspace):
    import mb

    result = mb_workspace({}).run("--version")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"mb {mb.__version__}\n"
