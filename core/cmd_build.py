"""`mb build`: lock the workspace, run the build, report, and map the result to an exit code.

An unchanged workspace is answered by the no-op fast path (`fastpath.py`)
before anything heavy is imported; the imports of the full build happen only
when it is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from mb.errors import ExitCode, UserError
from mb.locks import WorkspaceLock

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mb.build import BuildOptions, BuildResult


def make_reporter(args: argparse.Namespace) -> Any:
    """The live display on a terminal, plain lines otherwise (SPEC §8).

    Only the terminal decides live or plain: the live display moves the
    cursor, which a file or a pipe cannot take, whatever `--color` says.
    `--color` and NO_COLOR decide colour only (NO_COLOR wins over `always`).
    """
    from mb.ui import LiveReporter, PlainReporter

    tty = sys.stdout.isatty()
    no_color = bool(os.environ.get("NO_COLOR")) or args.color == "never"
    if tty and not args.quiet:
        from rich.console import Console

        console = Console(force_terminal=args.color == "always" or None, no_color=no_color)
        return LiveReporter(console, verbose=args.verbose)
    color = not no_color and (args.color == "always" or tty)
    return PlainReporter(sys.stdout, sys.stderr, verbose=args.verbose, quiet=args.quiet,
                         color=color)


def report_plugin_failures(plugins: Any, verbose: bool) -> None:
    for failure in plugins.failures:
        print(f"warning: plugin {failure.name!r} ({failure.module}) failed to load: "
              f"{failure.error}", file=sys.stderr)
        if verbose:
            print(failure.traceback, file=sys.stderr)


def options_from(args: argparse.Namespace, fastpath_key: str | None = None) -> BuildOptions:
    from mb.build import BuildOptions

    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"-j must be at least 1, got {args.jobs}")
    from mb.config import redact_url  # a URL may carry a user and password

    if args.executor != "local":
        raise UserError(f"--executor {redact_url(args.executor)}: only 'local' is available "
                        "in this version")
    if args.profile is not None:
        check_profile_path(args.profile)
    return BuildOptions(
        patterns=tuple(args.patterns), jobs=args.jobs, keep_going=args.keep_going,
        sandbox=args.sandbox, no_cache=args.no_cache,
        placeholders=getattr(args, "placeholders", False) or args.command == "watch",
        profile=args.profile, fastpath_key=fastpath_key)


def warn_remote_cache(url: str | None) -> None:
    """A remote cache asked for (`--remote-cache`, MB.toml `[cache] remote`,
    `MB_REMOTE_CACHE`) is not there in this version: the build goes on with the
    local cache, and says so, whichever way it was asked (never silently, never
    refusing to build). Such a build keeps no no-op snapshot, so every build
    says it (`build.run_build`)."""
    if url:
        from mb.config import redact_url

        print(f"warning: remote caches are not available in this version; the local cache "
              f"is used (remote {redact_url(url)} ignored)", file=sys.stderr)


def check_profile_path(path: str) -> None:
    """Refuse a `--profile` path that cannot be written before building, not after:
    the trace is written when the build ends, too late to say so usefully."""
    if not path:
        raise UserError("--profile needs a file name, got ''")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"--profile {path}: is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        # A device or a pipe (/dev/null): replacing it, or copying mb's file mode
        # onto it, would change a file that is not mb's to change.
        raise UserError(f"--profile {path}: not a regular file; give the path of a file")
    if not os.path.isdir(parent):
        raise UserError(f"--profile {path}: no such directory {parent}")
    if not os.access(path if os.path.exists(path) else parent, os.W_OK):
        raise UserError(f"--profile {path}: permission denied")


def move_profile(staged: str, path: str) -> str | None:
    """Put the trace written under `.mb/` at the `--profile` path; the error, if any.

    A rename where it can; across file systems the bytes only (copyfile): a
    file the user named keeps its own mode, owner and times.
    """
    import errno
    import shutil

    from mb.fsutil import discard

    try:
        try:
            os.replace(staged, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(staged, path)
            discard(staged)
    except OSError as exc:
        discard(staged)
        return f"--profile {path}: cannot write the trace: {exc.strerror or exc}"
    return None


def waiting() -> None:
    print("another mb build is running in this workspace; waiting for it to finish",
          file=sys.stderr, flush=True)


def fastpath_eligible(args: argparse.Namespace) -> bool:
    """Requests whose no-op answer a snapshot can give (nothing asked for in detail)."""
    return not (args.plugins or args.no_cache or getattr(args, "placeholders", False)
                or args.profile is not None or args.verbose or args.remote_cache
                or args.executor != "local")


def run(args: argparse.Namespace, start: str) -> int:
    if args.command == "watch":
        from mb import watch

        return watch.run(args, start)
    if args.jobs is not None and args.jobs < 1:  # before any path, fast or not
        raise UserError(f"-j must be at least 1, got {args.jobs}")
    key = None
    if fastpath_eligible(args):
        from mb import fastpath
        from mb.root import cwd_package_of, find_root

        root = find_root(start)
        key = fastpath.request_key(args.patterns, cwd_package_of(root, start), os.environ)
        answered = run_noop(root, key, args)
        if answered is not None:
            return answered
    return run_full(args, start, key)


def run_noop(root: str, key: str, args: argparse.Namespace) -> int | None:
    """Answer an unchanged build from its snapshot; None when something changed."""
    from mb import fastpath

    state_dir = os.path.join(root, ".mb")
    path = fastpath.snapshot_path(state_dir, key)
    snapshot = fastpath.load(path)
    if snapshot is None:
        return None
    # Checked under the lock, so no other build is changing what is checked.
    with WorkspaceLock(state_dir, waiting):
        changed = fastpath.changed_sources(path, snapshot)
        if changed is None:
            return None
        if changed:
            from mb import incremental

            return incremental.run(root, path, snapshot, changed, args)
        replay = fastpath.load_replay(path, snapshot.get("generation"))
        if replay is None:
            return None
        build_id = replay_noop(state_dir, replay, args.patterns)
    print_counts("ok", replay["counts"], build_id)
    if replay["summary"]:  # with -q too: the outputs are the result (SPEC §8)
        sys.stdout.write("\n".join(replay["summary"]) + "\n")
    return ExitCode.OK


def replay_noop(state_dir: str, replay: dict[str, Any], patterns: list[str]) -> str:
    """Log a no-op build like any other: events and a manifest, every action cached.

    The snapshot holds the events' data and the manifest's tables as JSON
    text already, so a 10,000-action no-op formats strings instead of
    encoding 10,000 dictionaries; its manifest names the build whose action
    records (keys, input digests) it repeats instead of copying them.
    """
    from mb.events import EventLog, new_build_id, utc_timestamp
    from mb.history import publish_manifest

    events = EventLog(os.path.join(state_dir, "events.jsonl"), new_build_id(state_dir))
    started = utc_timestamp()
    counts = replay["counts"]
    # The patterns as given, like every other build's `build.started`.
    events.emit("build.started", patterns=list(patterns), targets=replay["target_count"],
                actions=counts["cached"], noop=True)
    events.emit_encoded("action.finished", replay["events"])
    events.emit("build.finished", status="ok", counts=counts, cost=None)
    events.close()
    build_id = events.build_id
    counts_json = json.dumps(counts, sort_keys=True, separators=(",", ":"))
    targets_json = "{" + ",".join(replay["targets"].values()) + "}"
    # The actions (keys, input digests) are those of the build this one repeats.
    manifest = (f'{{"actions":[],"actions_from":"{replay["actions_from"]}",'
                f'"build_id":"{build_id}","counts":{counts_json},'
                f'"finished":"{utc_timestamp()}","noop":true,"started":"{started}",'
                f'"status":"ok","targets":{targets_json}}}')
    publish_manifest(state_dir, build_id, manifest)
    return build_id


def run_full(args: argparse.Namespace, start: str, fastpath_key: str | None) -> int:
    from mb.build import run_build
    from mb.events import EventLog, new_build_id
    from mb.plugins import load_plugins
    from mb.statcache import StatCache
    from mb.workspace import open_workspace

    workspace = open_workspace(start)
    plugins = load_plugins(args.plugins)
    report_plugin_failures(plugins, args.verbose)
    options = options_from(args, fastpath_key)
    warn_remote_cache(args.remote_cache or workspace.config.cache.remote)
    reporter = make_reporter(args)
    staged = None
    try:
        with WorkspaceLock(workspace.state_dir, waiting):
            # Named under the lock: its time is when it starts, not when it began
            # to wait, and no build recorded meanwhile has the same id.
            events = EventLog(os.path.join(workspace.state_dir, "events.jsonl"),
                              new_build_id(workspace.state_dir))
            # run_build writes the trace before the manifest: written under .mb/ first,
            # a path that fails later (removed, disk full) cannot cost the build its record.
            if args.profile:
                import attrs

                staged = os.path.join(workspace.state_dir, f"profile-{events.build_id}.json")
                options = attrs.evolve(options, profile=staged)
            events.subscribe(reporter)
            events.start()
            try:
                result = run_build(workspace, plugins, options, events, StatCache(
                    os.path.join(workspace.state_dir, "statcache.bin")))
            finally:
                reporter.stop()
                events.close()
    finally:
        reporter.stop()
    print_summary(result)
    profile_error = move_profile(staged, args.profile) if staged else None
    if result.status == "interrupted":
        code = ExitCode.INTERRUPTED
        print("interrupted", file=sys.stderr)
    else:
        code = ExitCode.OK if result.status == "ok" else ExitCode.BUILD_FAILED
    if profile_error:
        # The build's own failure or interruption says more; an ok build did not
        # give what was asked for.
        print(profile_error, file=sys.stderr)
        if code == ExitCode.OK:
            code = ExitCode.USAGE_ERROR
    return code


def summary_lines(result: BuildResult, statuses: Mapping[str, str] | None = None) -> list[str]:
    """Each requested target with its status and outputs (SPEC §8: listed at the end).

    `statuses` (by label text) replaces the targets' own: the no-op fast path
    records the summary a later unchanged build prints, with every target cached.
    """
    out = []
    for label in result.requested:
        target = result.targets.get(label)
        if target is None:
            continue
        mark = " [provisional]" if target.provisional else ""
        status = statuses[str(label)] if statuses is not None else target.status
        out.append(f"{label} ({status}){mark}")
        for path in target.outputs:
            out.append(f"  {path}")
    return out


def print_counts(status: str, counts: dict[str, int], build_id: str) -> None:
    line = (f"build {status}: {counts['executed']} executed, {counts['cached']} cached, "
            f"{counts['failed']} failed, {counts['skipped']} skipped ({build_id})")
    print(line, file=sys.stdout if status == "ok" else sys.stderr)


def print_summary(result: BuildResult) -> None:
    """The counts, then every requested target with its outputs (SPEC §8: listed at
    the end; `-q` leaves out progress, not the result)."""
    print_counts(result.status, result.counts, result.build_id)
    lines = summary_lines(result)
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
