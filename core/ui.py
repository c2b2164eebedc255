"""Renders build events for people: a live rich display on a terminal, plain lines otherwise.

The engine never formats text; it emits events, and a `Reporter` turns them
into output. The rich display is imported only when a terminal asks for it,
because importing rich costs a no-op build more than the build itself.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from mb.events import Event


#: Red, as the live display prints failures (written by hand: no rich import here).
RED, RESET = "\x1b[31m", "\x1b[0m"


def _tail_without_error(tail: list[str], error: str) -> list[str]:
    """The stderr tail under a FAILED line, without a last `error: <message>` line
    that only repeats it (a Python action's `mb.ActionError`, which the FAILED line
    already shows)."""
    message = error.removesuffix(" (not retryable)")
    if tail and message and tail[-1].strip() == f"error: {message}":
        return tail[:-1]
    return tail


class PlainReporter:
    """One line per executed or failed action; cached actions only with -v.

    `color` (`--color always` with output that is not a terminal) paints
    failure lines red, as the live display does, and nothing else: colour is
    asked for, cursor movement is not.
    """

    def __init__(self, out: TextIO, err: TextIO, verbose: bool = False, quiet: bool = False,
                 color: bool = False) -> None:
        self.out = out
        self.err = err
        self.verbose = verbose
        self.quiet = quiet
        self.color = color
        self.done = 0
        self.total = 0
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.handle(event)

    def handle(self, event: Event) -> None:
        data = event.data
        if event.type == "build.started":
            self.total = data.get("actions", 0)
        elif event.type == "action.finished":
            self.done += 1
            if self.quiet or (data.get("cached") and not self.verbose):
                return
            tag = " (cached)" if data.get("cached") else f" {data.get('duration_s', 0):.2f}s"
            mark = " [provisional]" if data.get("provisional") else ""
            self.line(f"[{self.done}/{self.total}] {event.target} {data.get('description', '')}"
                      f"{tag}{mark}")
        elif event.type == "action.failed":
            self.done += 1
            error = data.get("error", "")
            tail = _tail_without_error(
                (data.get("stderr_tail") or "").rstrip().splitlines()[-20:], error)
            self.lines([f"FAILED {event.target}: {error}",
                        *(f"    {text}" for text in tail)], error=True)
        elif event.type == "action.retry":
            self.line(f"retrying {event.target} (attempt {data.get('attempt', 0) + 1}): "
                      f"{data.get('error', '')}", error=True)
        elif event.type == "placeholder.used":
            if not self.quiet:
                self.line(f"placeholder for {data.get('path')} ({data.get('reason')}), "
                          f"needed by {event.target}")
        elif event.type in ("sandbox.fallback", "cache.waiting"):
            self.line(f"warning: {data.get('message')}", error=True)
        elif event.type == "cache.write_failed":
            self.line(f"error: {data.get('message')}", error=True)
        elif event.type in ("breaker.opened", "breaker.closed") and not self.quiet:
            self.line(f"{event.type.replace('.', ' ')}: {data.get('provider', '')}")

    def line(self, text: str, error: bool = False) -> None:
        self.lines([text], error)

    def lines(self, texts: list[str], error: bool = False) -> None:
        """Write lines together; a failure and its stderr tail are one block."""
        stream = self.err if error else self.out
        if error and self.color:
            texts = [f"{RED}{text}{RESET}" for text in texts]
        stream.write("".join(text + "\n" for text in texts))
        stream.flush()

    def stop(self) -> None:
        pass


class LiveReporter(PlainReporter):
    """A rich progress display: running actions, done/total, cached count.

    Error lines (failures, their stderr tails, retries, warnings) go to
    stderr, as with plain lines, so `mb build 2>errors.log` keeps them on a
    terminal too. The display is on stdout; it is taken down while they are
    written and drawn again below them, so both streams can share a screen.
    """

    def __init__(self, console: Any, verbose: bool = False) -> None:
        super().__init__(console.file, sys.stderr, verbose=verbose)
        from rich.console import Console

        self.console = console
        self.err_console = Console(file=sys.stderr, no_color=console.no_color)
        self.running: dict[str, str] = {}
        self.cached = 0
        self.live = self._start_display()

    def _start_display(self) -> Any:
        """A new display below the cursor, drawn at its first refresh. A stopped one
        is not restarted: it would first move up over the lines of its last
        frame, which it erased on stop, and erase as many lines printed above it."""
        from rich.live import Live

        live = Live(get_renderable=self._render, console=self.console, refresh_per_second=8,
                    transient=True)
        live.start()
        return live

    def _render(self) -> Any:
        """The table as styled `Text`, not markup strings: a target or description
        may contain `[`, which markup would take for a tag.

        Built from the current counts whenever the display is drawn, also by
        rich's refresh thread: `running` is copied in one step, as worker
        threads change it while this runs."""
        from rich.table import Table
        from rich.text import Text

        running = list(self.running.items())
        table = Table.grid(padding=(0, 1))
        table.add_row(Text.assemble((f"{self.done}/{self.total}", "bold"),
                                    f" actions, {self.cached} cached, "
                                    f"{len(running)} running"))
        for target, description in running[:8]:
            table.add_row(Text.assemble("  ", (target, "cyan"), f" {description}"))
        return table

    def handle(self, event: Event) -> None:
        if event.type == "action.started":
            self.running[event.target or ""] = event.data.get("description", "")
        elif event.type in ("action.finished", "action.failed"):
            self.running.pop(event.target or "", None)
            if event.data.get("cached"):
                self.cached += 1
        super().handle(event)

    def lines(self, texts: list[str], error: bool = False) -> None:
        """Print above the display. rich redraws the display under printed lines
        from its last refreshed frame, so it is refreshed first: otherwise the
        frame shown is up to one refresh old (the very first one, "0/0
        actions", in a short build)."""
        from rich.text import Text

        if error:
            self._print_errors([Text(text, style="red") for text in texts])
            return
        self.live.refresh()
        for text in texts:
            self.console.print(Text(text))

    def _print_errors(self, texts: list[Any]) -> None:
        """Write to stderr with the display taken down (it erases itself on stop:
        transient), then draw it again below: the display moves the cursor on
        stdout, and a line written to the same screen under it would be
        overwritten by its next frame. Not wrapped: a file or pipe has no width."""
        self.live.stop()
        for text in texts:
            self.err_console.print(text, soft_wrap=True)
        self.live = self._start_display()

    def stop(self) -> None:
        self.live.stop()
