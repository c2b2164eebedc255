"""The reporters of core/ui.py, rendered into strings instead of a terminal."""

from __future__ import annotations

import io
import re
import sys

from rich.console import Console

from mb.events import Event
from mb.ui import LiveReporter, PlainReporter


def _event(type: str, target: str | None = None, **data) -> Event:
    return Event(type=type, build_id="b-test", ts="2026-01-01T00:00:00.000Z",
                 target=target, data=data)


def _run(reporter) -> None:
    reporter(_event("build.started", actions=2))
    reporter(_event("action.started", "//a:[x]", description="genrule -> [x].txt"))
    reporter(_event("action.started", "//a:y", description="genrule -> y.txt"))
    # A printed line while the display is up: rich redraws the display after it
    # with the line's options (markup off).
    reporter(_event("action.finished", "//a:y", description="genrule -> y.txt",
                    duration_s=0.1))
    reporter.live.refresh()
    reporter.stop()


def test_live_display_is_styled_not_markup_text() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system="standard")
    _run(LiveReporter(console))
    text = out.getvalue()
    assert "[bold]" not in text and "[cyan]" not in text and "[/]" not in text, text
    assert "\x1b[1m1/2\x1b[0m actions, 0 cached, 1 running" in text
    assert "\x1b[36m//a:[x]\x1b[0m genrule -> [x].txt" in text, "brackets are shown as typed"
    assert "[1/2] //a:y genrule -> y.txt 0.10s" in text


def test_live_display_without_colour_is_still_not_markup() -> None:
    out = io.StringIO()
    _run(LiveReporter(Console(file=out, force_terminal=True, width=100, no_color=True)))
    text = out.getvalue()
    assert "[bold]" not in text and "[cyan]" not in text, text
    assert "\x1b[36m" not in text


def test_plain_reporter_colours_failures_only_when_asked() -> None:
    for color in (False, True):
        out, err = io.StringIO(), io.StringIO()
        reporter = PlainReporter(out, err, color=color)
        reporter(_event("build.started", actions=2))
        reporter(_event("action.finished", "//a:y", description="d", duration_s=0.1))
        reporter(_event("action.failed", "//a:z", error="exit 1"))
        assert out.getvalue() == "[1/2] //a:y d 0.10s\n"
        assert err.getvalue() == ("\x1b[31mFAILED //a:z: exit 1\x1b[0m\n" if color
                                  else "FAILED //a:z: exit 1\n")


def _built_one_of_two(reporter) -> None:
    reporter(_event("build.started", actions=2))
    reporter(_event("action.started", "//a:y", description="genrule -> y.txt"))
    reporter(_event("action.finished", "//a:y", description="genrule -> y.txt",
                    duration_s=0.1))


def test_live_display_under_a_printed_line_shows_the_current_counts() -> None:
    out = io.StringIO()
    reporter = LiveReporter(Console(file=out, force_terminal=True, width=100, no_color=True))
    _built_one_of_two(reporter)
    reporter.stop()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # the text, not its styles
    after_line = text.split("[1/2] //a:y genrule -> y.txt 0.10s", 1)[1]
    assert after_line.lstrip("\r\n").startswith("1/2 actions, 0 cached, 0 running"), text
    assert "0/0 actions" not in text, "a frame from before the build started"


def test_live_display_writes_error_lines_to_stderr(monkeypatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    out = io.StringIO()
    reporter = LiveReporter(Console(file=out, force_terminal=True, width=100,
                                    color_system="standard"))
    _built_one_of_two(reporter)
    reporter(_event("action.failed", "//a:z", error="command exited with status 3",
                    stderr_tail="one\n" + "two " * 40 + "\n"))
    reporter.stop()
    assert err.getvalue() == ("FAILED //a:z: command exited with status 3\n    one\n"
                              f"    {'two ' * 39}two\n"), "one line each, not wrapped"
    assert "FAILED" not in out.getvalue() and "\x1b[31m" not in out.getvalue()
    assert "\x1b[1m2/2\x1b[0m actions, 0 cached, 0 running" in out.getvalue()


def test_a_python_actions_message_is_shown_once() -> None:
    """The FAILED line shows an `mb.ActionError`'s message; the `error: ...` line the
    worker wrote last in stderr would only repeat it. Other lines stay."""
    out, err = io.StringIO(), io.StringIO()
    reporter = PlainReporter(out, err)
    reporter(_event("action.failed", "//a:v", error="tts server said 503 (not retryable)",
                    stderr_tail="fetching voice\nerror: tts server said 503\n"))
    reporter(_event("action.failed", "//a:w", error="command exited with status 1",
                    stderr_tail="error: disk full\n"))
    assert err.getvalue() == ("FAILED //a:v: tts server said 503 (not retryable)\n"
                              "    fetching voice\n"
                              "FAILED //a:w: command exited with status 1\n"
                              "    error: disk full\n")
