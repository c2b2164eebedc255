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
            self.line(f"FAILED {event.target}: {data.get('error', '')}", error=True)
            tail = (data.get("stderr_tail") or "").rstrip()
            if tail:
                for text in tail.splitlines()[-20:]:
                    self.line(f"    {text}", error=True)
        elif event.type == "action.retry":
            self.line(f"retrying {event.target} (attempt {data.get('attempt', 0) + 1}): "
                      f"{data.get('error', '')}", error=True)
        elif event.type == "placeholder.used":
            if not self.quiet:
                self.line(f"placeholder for {data.get('path')} ({data.get('reason')}), "
                          f"needed by {event.target}")
        elif event.type == "sandbox.fallback":
            self.line(f"warning: {data.get('message')}", error=True)
        elif event.type in ("breaker.opened", "breaker.closed") and not self.quiet:
            self.line(f"{event.type.replace('.', ' ')}: {data.get('provider', '')}")

    def line(self, text: str, error: bool = False) -> None:
        stream = self.err if error else self.out
        if error and self.color:
            text = f"{RED}{text}{RESET}"
        stream.write(text + "\n")
        stream.flush()

    def stop(self) -> None:
        pass


class LiveReporter(PlainReporter):
    """A rich progress display: running actions, done/total, cached count."""

    def __init__(self, console: Any, verbose: bool = False) -> None:
        super().__init__(console.file, sys.stderr, verbose=verbose)
        from rich.live import Live

        self.console = console
        self.running: dict[str, str] = {}
        self.cached = 0
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=True)
        self.live.start()

    def _render(self) -> Any:
        """The table as styled `Text`, not markup strings: rich redraws the live
        display with the options of whatever is printed above it, and `line`
        prints with markup off (a target or command may contain `[`), which
        would show markup strings as typed."""
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        table.add_row(Text.assemble((f"{self.done}/{self.total}", "bold"),
                                    f" actions, {self.cached} cached, "
                                    f"{len(self.running)} running"))
        for target, description in list(self.running.items())[:8]:
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
        self.live.update(self._render())

    def line(self, text: str, error: bool = False) -> None:
        self.console.print(text, markup=False, highlight=False,
                           style="red" if error else None)

    def stop(self) -> None:
        self.live.stop()
