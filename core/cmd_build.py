"""`mb build`: lock the workspace, run the build, report, and map the result to an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from mb.build import BuildOptions, BuildResult, WorkspaceLock, run_build
from mb.errors import ExitCode, UserError
from mb.events import EventLog, new_build_id
from mb.plugins import Plugins, load_plugins
from mb.statcache import StatCache
from mb.workspace import Workspace, open_workspace


def make_reporter(args: argparse.Namespace) -> Any:
    from mb.ui import LiveReporter, PlainReporter

    color = args.color
    no_color = "NO_COLOR" in os.environ or color == "never"
    tty = sys.stdout.isatty()
    if (tty or color == "always") and not args.quiet:
        from rich.console import Console

        console = Console(force_terminal=color == "always" or None, no_color=no_color)
        return LiveReporter(console, verbose=args.verbose)
    return PlainReporter(sys.stdout, sys.stderr, verbose=args.verbose, quiet=args.quiet)


def report_plugin_failures(plugins: Any, verbose: bool) -> None:
    for failure in plugins.failures:
        print(f"warning: plugin {failure.name!r} ({failure.module}) failed to load: "
              f"{failure.error}", file=sys.stderr)
        if verbose:
            print(failure.traceback, file=sys.stderr)


def options_from(args: argparse.Namespace) -> BuildOptions:
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"-j must be at least 1, got {args.jobs}")
    if args.executor != "local":
        raise UserError(f"--executor {args.executor}: only 'local' is available in this version")
    return BuildOptions(
        patterns=tuple(args.patterns), jobs=args.jobs, keep_going=args.keep_going,
        sandbox=args.sandbox, no_cache=args.no_cache,
        placeholders=getattr(args, "placeholders", False) or args.command == "watch",
        profile=args.profile)


def run(args: argparse.Namespace, start: str) -> int:
    if args.command == "watch":
        from mb import watch

        return watch.run(args, start)
    workspace = open_workspace(start)
    plugins = load_plugins(args.plugins)
    report_plugin_failures(plugins, args.verbose)
    options = options_from(args)
    events = EventLog(os.path.join(workspace.state_dir, "events.jsonl"), new_build_id())
    result = locked_build(workspace, plugins, options, events, make_reporter(args),
                          StatCache(os.path.join(workspace.state_dir, "statcache.bin")))
    print_summary(result, args.quiet)
    if result.status == "interrupted":
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.status == "ok" else ExitCode.BUILD_FAILED


def locked_build(workspace: Workspace, plugins: Plugins, options: BuildOptions,
                 events: EventLog, reporter: Any, statcache: StatCache) -> BuildResult:
    """One build under the workspace lock, its events rendered by `reporter` (`mb watch` too).

    Waits (saying so once) while another mb build holds the workspace; the
    event log and the reporter are closed however the build ends.
    """
    events.subscribe(reporter)

    def waiting() -> None:
        print("another mb build is running in this workspace; waiting for it to finish",
              file=sys.stderr, flush=True)

    try:
        with WorkspaceLock(workspace, waiting):
            events.start()
            try:
                return run_build(workspace, plugins, options, events, statcache)
            finally:
                reporter.stop()
                events.close()
    finally:
        reporter.stop()


def print_summary(result: BuildResult, quiet: bool) -> None:
    counts = result.counts
    line = (f"build {result.status}: {counts['executed']} executed, {counts['cached']} cached, "
            f"{counts['failed']} failed, {counts['skipped']} skipped ({result.build_id})")
    print(line, file=sys.stdout if result.status == "ok" else sys.stderr)
    if quiet:
        return
    out = []
    for label in result.requested:
        target = result.targets.get(label)
        if target is None:
            continue
        mark = " [provisional]" if target.provisional else ""
        out.append(f"{label} ({target.status}){mark}")
        for path in target.outputs:
            out.append(f"  {path}")
    if out:
        sys.stdout.write("\n".join(out) + "\n")
