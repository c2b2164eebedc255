"""`mb watch`: build, then rebuild on every change to what the requested targets read.

The watcher runs watchfiles in a background thread from before the first
build, so a change saved while a build runs waits in a queue and starts the
next build as soon as this one ends. Only changes to files the last build
read (sources, present or missing, the BUILD.toml of every loaded package,
MB.toml) or to a BUILD.toml that could add a matching package start a
build; mb's own `mb-out/`, `.mb/` and cache dir never do. Every build runs
with placeholders on (SPEC §7) and re-opens the workspace, so an edited
MB.toml or BUILD.toml takes effect; an error in one is shown and the watcher
waits for the fix. Unchanged actions are answered by the cache, so only the
actions whose keys changed run.
"""

from __future__ import annotations

import argparse
import gc
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, Final

from mb.build import BuildOptions, BuildResult, BuildSession, run_build
from mb.cmd_build import (
    make_reporter,
    options_from,
    print_counts,
    report_plugin_failures,
    waiting,
    warn_remote_cache,
)
from mb.errors import ExitCode, UserError
from mb.events import Event, EventLog, new_build_id
from mb.fsutil import discard
from mb.fastpath import FileSig, file_sig
from mb.labels import Pattern, parse_pattern
from mb.locks import WorkspaceLock
from mb.plugins import Plugins, load_plugins
from mb.root import cwd_package_of, find_root
from mb.statcache import StatCache
from mb.workspace import OUTPUT_DIR, STATE_DIR, Workspace, open_workspace
from watchfiles import BaseFilter, Change, watch

#: A burst of events (an editor's temp-file-and-rename save) ends after this many quiet ms.
STEP_MS: Final = 50
#: A burst that never goes quiet is still cut after this many ms, so a build does start.
DEBOUNCE_MS: Final = 1_000
#: A batch of changes starts a build once its files stayed the same this long
#: (`ChangeFeed._settled`), and waits for that at most SETTLE_MAX_S.
SETTLE_S: Final = 0.05
SETTLE_MAX_S: Final = 2.0
#: Touched in `.mb/` until the watcher reports it, so no change before the first build is lost.
PROBE: Final = "watch.probe"
#: The folder of `.mb/` the deep watcher watches for its own probe (`ChangeFeed`).
DEEP_PROBE_DIR: Final = "watch-probe"


class MbFilter(BaseFilter):
    """Keeps changes that can change the build; never mb's own output, state or cache.

    Kept: files the last build read (`BuildResult.watched_files`) and the
    directories holding them (a renamed folder reports only itself), any
    MB.toml, and a BUILD.toml of a package a requested pattern matches (a new
    package), or any BUILD.toml after an analysis error (it may be the
    missing package). While `open` is set (a build is running) everything
    outside the ignored folders is kept, and filtered again against the
    watched set that build produces.
    """

    def __init__(self, root: str, patterns: Iterable[Pattern]) -> None:
        super().__init__()
        self.root = root
        self.patterns = tuple(patterns)
        self.ignored: tuple[str, ...] = (os.path.join(root, OUTPUT_DIR),
                                         os.path.join(root, STATE_DIR))
        self.watched: frozenset[str] = frozenset()
        self.folders: frozenset[str] = frozenset()
        #: Files outside the workspace that watched symlinks point to -> those links.
        self.outside: dict[str, frozenset[str]] = {}
        self.any_build_file = True
        self.open = True
        self.probe = os.path.join(root, STATE_DIR, PROBE)
        self.probed = threading.Event()
        #: The deep watcher's probe (`ChangeFeed`): a file in a folder of its own.
        self.deep_probe = os.path.join(root, STATE_DIR, DEEP_PROBE_DIR, PROBE)
        self.deep_probed = threading.Event()

    def update(self, watched: frozenset[str], cache_dir: str, errored: bool,
               outside: dict[str, frozenset[str]] | None = None) -> None:
        """Take the files the last build read; `errored`: it stopped at an analysis error;
        `outside`: the files outside the workspace watched symlinks point to (kept as
        they were when None)."""
        if outside is not None:
            self.outside = outside
        folders = set()
        for path in watched:
            parent = os.path.dirname(path)
            while parent and parent not in folders:
                folders.add(parent)
                parent = os.path.dirname(parent)
        self.watched, self.folders = watched, frozenset(folders)
        cache = os.path.abspath(cache_dir)
        self.ignored = (os.path.join(self.root, OUTPUT_DIR), os.path.join(self.root, STATE_DIR),
                        cache)
        self.any_build_file = errored

    def __call__(self, change: Change, path: str) -> bool:
        if path == self.probe:
            self.probed.set()
            return False
        if path == self.deep_probe:
            self.deep_probed.set()
            return False
        if path in self.outside:
            return True
        if _under(path, self.ignored):
            return False
        return self.open or self.wanted(os.path.relpath(path, self.root).replace(os.sep, "/"))

    def wanted(self, rel: str) -> bool:
        if rel in self.watched or rel in self.folders:
            return True
        folder, name = os.path.split(rel)
        if name == "MB.toml":
            return True
        if any(part.startswith(".") for part in rel.split("/")):
            return False
        if name == "BUILD.toml":
            return self._package_wanted(folder)
        return self._holds_new_package(rel)

    def _package_wanted(self, folder: str) -> bool:
        return self.any_build_file or any(p.matches_package(folder) for p in self.patterns)

    def _holds_new_package(self, rel: str) -> bool:
        """A folder that appeared with a package in it (`mv pkg here`, `mkdir -p a/b` then
        a BUILD.toml at once): its creation is the only event the watcher gets."""
        top = os.path.join(self.root, rel)
        if not os.path.isdir(top) or os.path.islink(top):
            return False
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            if "BUILD.toml" in filenames and self._package_wanted(
                    os.path.relpath(dirpath, self.root).replace(os.sep, "/")):
                return True
        return False


def _watcher_failure(exc: Exception) -> str:
    """One line saying why watching stopped: the watcher's own error, and what to do
    about the causes that can be named (a file name that is not UTF-8, a full
    inotify table)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "decode path" in text:
        hint = "a file or folder name that is not UTF-8 cannot be watched: rename it"
    elif "inotify" in text.lower() or "watch limit" in text.lower():
        hint = "raise fs.inotify.max_user_watches, or watch fewer folders"
    else:
        hint = "see -v for more"
    return f"mb watch stopped: the file watcher failed: {text} ({hint}); start mb watch again"


def _under(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f + os.sep) for f in folders)


def link_targets(root: str, watched: frozenset[str]
                 ) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """`watched` plus the file each symlinked one points to in the workspace, and the
    files outside the workspace they point to (-> the links): the watcher reports an
    edit under the target's path, not the link's."""
    prefix = root + os.sep
    inside: set[str] = set()
    outside: dict[str, set[str]] = {}
    for rel in watched:
        path = prefix + rel
        if os.path.islink(path):
            real = os.path.realpath(path)
            if real.startswith(prefix):
                inside.add(real[len(prefix):].replace(os.sep, "/"))
            else:
                outside.setdefault(real, set()).add(rel)
    return watched | inside, {real: frozenset(rels) for real, rels in outside.items()}


class ChangeFeed:
    """Two watchfiles watchers in daemon threads; batches of changed paths wait in a queue.

    Why two. A recursive watch of the workspace root also walks `.mb/`, and
    the watcher follows symlinks to folders: the `none` sandbox keeps a
    forest of them there, pointing at the workspace's own folders. inotify
    has one watch per folder, so the real folder's changes then came back
    under the forest's path (dropped, as mb's own), and emptying the forest
    removed the real folder's watch: edits were lost. So the root and `.mb/`
    are watched on their own, not recursively (MB.toml, a root BUILD.toml, a
    folder appearing at the top, the probe), and every other top-level
    folder recursively by a second watcher, restarted with the new list
    when a folder appears or goes at the top. What a new folder held before
    its watch began is reported once the watch runs (`_added`): the filter
    finds a package in it, or the files the last build read.
    """

    def __init__(self, root: str, mb_filter: MbFilter) -> None:
        try:
            root.encode("utf-8")
        except UnicodeEncodeError:  # watchfiles (Rust) takes paths as UTF-8 strings only
            shown = os.fsencode(root).decode("utf-8", "backslashreplace")
            raise UserError(f"mb watch cannot watch {shown}: its path is not valid UTF-8; "
                            "rename the folder (mb build works there)") from None
        self.root = root
        self.filter = mb_filter
        self.stop = threading.Event()
        self._batches: queue.Queue[set[str] | BaseException] = queue.Queue()
        self._restart = threading.Event()
        self._restart_shallow = threading.Event()
        self._shallow_live = threading.Event()
        self._outside: frozenset[str] = frozenset()
        self._tops: frozenset[str] = frozenset()
        self._added: set[str] = set()  # top-level folders the deep watcher is to report
        self._threads = [threading.Thread(target=self._run_shallow, name="mb-watch",
                                          daemon=True),
                         threading.Thread(target=self._run_deep, name="mb-watch-deep",
                                          daemon=True)]

    def start(self, ready_timeout: float = 10.0) -> None:
        """Start watching and return once both watchers have seen a probe file change."""
        os.makedirs(os.path.dirname(self.filter.deep_probe), exist_ok=True)
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + ready_timeout
        _probe(self.filter.probe, self.filter.probed, deadline)
        _probe(self.filter.deep_probe, self.filter.deep_probed, deadline)

    def watch_outside(self, folders: frozenset[str]) -> None:
        """Watch these folders outside the workspace too (of symlinked sources' targets),
        from the shallow watcher, started again when they change."""
        if folders != self._outside:
            self._outside = folders
            self._shallow_live.clear()
            self._restart_shallow.set()
            # Running again before the next build is announced: no edit in between is lost.
            self._shallow_live.wait(10.0)

    def _run_shallow(self) -> None:
        try:
            while not self.stop.is_set():
                self._restart_shallow.clear()
                paths = [self.root, os.path.dirname(self.filter.probe),
                         *sorted(f for f in self._outside if os.path.isdir(f))]
                for changes in watch(*paths, watch_filter=None,
                                     stop_event=_Either(self.stop, self._restart_shallow),
                                     recursive=False, debounce=DEBOUNCE_MS, step=STEP_MS,
                                     rust_timeout=STEP_MS, yield_on_timeout=True,
                                     raise_interrupt=False):
                    self._shallow_live.set()  # its watches are in place once it yields
                    for _change, path in changes:
                        if (os.path.dirname(path) == self.root
                                and not _under(path, self.filter.ignored)
                                and (path in self._tops or os.path.isdir(path))):
                            self._restart.set()  # a folder appeared or went at the top
                    self._put(changes)
        except Exception as exc:  # noqa: BLE001  (e.g. out of inotify watches: end, not hang)
            self._batches.put(UserError(_watcher_failure(exc)))

    def _run_deep(self) -> None:
        try:
            while not self.stop.is_set():
                self._restart.clear()
                before, self._tops = self._tops, self._top_folders()
                self._added |= self._tops - before if before else set()
                paths = [os.path.dirname(self.filter.deep_probe), *sorted(self._tops)]
                try:
                    for changes in watch(*paths, watch_filter=None,
                                         stop_event=_Either(self.stop, self._restart),
                                         debounce=DEBOUNCE_MS, step=STEP_MS,
                                         rust_timeout=STEP_MS, yield_on_timeout=True,
                                         raise_interrupt=False):
                        if self._added:  # the new watch runs: report what came before it
                            self._batches.put(set(self._added))
                            self._added.clear()
                        self._put(changes)
                except FileNotFoundError:  # a top folder went before its watch began
                    continue
        except Exception as exc:  # noqa: BLE001
            self._batches.put(UserError(_watcher_failure(exc)))

    def _top_folders(self) -> frozenset[str]:
        """The folders at the top of the workspace, but mb's own (`.mb`, `mb-out`, a cache
        dir there)."""
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return frozenset()
        return frozenset(e.path for e in entries
                         if e.is_dir() and not _under(e.path, self.filter.ignored))

    def _put(self, changes: set[tuple[Change, str]]) -> None:
        kept = {path for change, path in changes if self.filter(change, path)}
        if kept:
            self._batches.put(kept)

    def wait(self) -> set[str]:
        """Block until a wanted change arrives; return every wanted path waiting by then."""
        while True:
            try:
                batch = self._batches.get(timeout=1.0)
            except queue.Empty:
                continue
            wanted = self._wanted(batch) | self.pending()
            if wanted:
                return self._settled(wanted)

    def _settled(self, wanted: set[str]) -> set[str]:
        """`wanted`, and what else changes, once the files have stayed the same for
        SETTLE_S (at most SETTLE_MAX_S). watchfiles ends a batch when a write adds
        no new (change, path) pair, so a burst of writes to one file made a build
        per part of it, the middle ones failing on an input changed under them."""
        signatures = self._signatures(wanted)
        deadline = time.monotonic() + SETTLE_MAX_S
        while time.monotonic() < deadline:
            time.sleep(SETTLE_S)
            wanted = wanted | self.pending()
            now = self._signatures(wanted)
            if now == signatures:
                break
            signatures = now
        return wanted

    def _signatures(self, rels: set[str]) -> dict[str, FileSig | None]:
        return {rel: file_sig(os.path.join(self.root, rel)) for rel in rels}

    def pending(self) -> set[str]:
        """Wanted paths already queued (changed during the last build), without waiting."""
        found: set[str] = set()
        while True:
            try:
                found |= self._wanted(self._batches.get_nowait())
            except queue.Empty:
                return found

    def _wanted(self, batch: set[str] | BaseException) -> set[str]:
        if isinstance(batch, BaseException):
            raise batch
        wanted: set[str] = set()
        for path in batch:
            links = self.filter.outside.get(path)
            if links is not None:  # a symlinked source's target outside the workspace
                wanted |= links
                continue
            rel = os.path.relpath(path, self.root).replace(os.sep, "/")
            if self.filter.wanted(rel):
                wanted.add(rel)
        return wanted

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=5)


def _probe(probe: str, seen: threading.Event, deadline: float) -> None:
    """Touch `probe` until a watcher reports it (`seen`), or until `deadline`."""
    while not seen.is_set() and time.monotonic() < deadline:
        with open(probe, "w", encoding="utf-8") as f:
            f.write(f"{time.time()}\n")
        seen.wait(0.02)
    discard(probe)


class _Either:
    """A stop event for watchfiles that is set when either of two events is."""

    def __init__(self, first: threading.Event, second: threading.Event) -> None:
        self._events = (first, second)

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)


class CycleLog:
    """What one build did, for the summary after it: executed targets, placeholders."""

    def __init__(self) -> None:
        self.executed: dict[str, None] = {}
        self.placeholders: dict[str, list[str]] = {}

    def __call__(self, event: Event) -> None:
        if event.type == "action.finished" and not event.data.get("cached"):
            self.executed[event.target or ""] = None
        elif event.type == "placeholder.used":
            paths = self.placeholders.setdefault(event.target or "", [])
            if event.data.get("path") not in paths:
                paths.append(str(event.data.get("path")))


class Watcher:
    """One `mb watch` session: the loop of build, wait for a change, build again."""

    def __init__(self, args: argparse.Namespace, start: str, plugins: Plugins) -> None:
        self.args = args
        self.start = start
        self.plugins = plugins
        self.options = options_from(args)
        self.root = find_root(start)
        package = cwd_package_of(self.root, start)
        patterns = [parse_pattern(p, package) for p in self.options.patterns]
        self.filter = MbFilter(self.root, patterns)
        self.feed = ChangeFeed(self.root, self.filter)
        self.session = BuildSession()
        self.statcache = StatCache(os.path.join(self.root, STATE_DIR, "statcache.bin"))

    def run(self) -> int:
        try:
            self.feed.start()
            changed: set[str] = set()
            while True:
                self.filter.open = True
                result = self.cycle(sorted(changed))
                self.filter.open = False
                if result is not None and result.status == "interrupted":
                    return ExitCode.INTERRUPTED
                changed = self.feed.pending() or self.announce_and_wait()
        finally:
            self.feed.close()

    def announce_and_wait(self) -> set[str]:
        if not self.args.quiet:
            print(f"watching {len(self.filter.watched)} files; Ctrl-C to stop", flush=True)
        # mb raises the collector's thresholds for its commands (cli.GC_THRESHOLD), so
        # full collections come rarely: a long session collects between builds itself.
        gc.collect()
        return self.feed.wait()

    def cycle(self, changed: list[str]) -> BuildResult | None:
        """One build; None when the workspace or a BUILD.toml has an error (shown)."""
        if changed and not self.args.quiet:
            print(f"changed: {', '.join(changed)}", flush=True)
        state_dir = os.path.join(self.root, STATE_DIR)
        events = EventLog(os.path.join(state_dir, "events.jsonl"), new_build_id(state_dir))
        if changed:
            events.emit("watch.change", paths=changed)
        try:
            workspace = open_workspace(self.start)
        except UserError as exc:  # MB.toml
            self.filter.any_build_file = True
            self.show_error(exc, events)
            return None
        warn_remote_cache(self.args.remote_cache or workspace.config.cache.remote)
        read = self.session.analysis.read_sources if self.session.analysis else set()
        if any(os.path.basename(p) in ("BUILD.toml", "MB.toml") or p in self.filter.folders
               or p not in self.filter.watched or os.path.join(self.root, p) in read
               for p in changed):
            # Re-analyse. Only a change of a source the last build read keeps the
            # analysis (unless a rule read it during analysis: ctx.read_source); a
            # folder that appeared may hold a new package.
            self.session.analysis = None
        self.session.changed = frozenset(changed)
        log = CycleLog()
        events.subscribe(log)
        try:
            result = locked_build(workspace, self.plugins, self.options, events,
                                  make_reporter(self.args), self.statcache, self.session)
        except UserError as exc:
            self.session.analysis = None
            self.filter.update(self.filter.watched, workspace.cache_dir, errored=True)
            self.show_error(exc, events)
            return None
        watched, outside = link_targets(self.root, result.watched_files)
        self.filter.update(watched, workspace.cache_dir, errored=False, outside=outside)
        self.feed.watch_outside(frozenset(os.path.dirname(real) for real in outside))
        print_counts(result.status, result.counts, result.build_id)  # `report` lists targets
        if not self.args.quiet:
            report(result, log)
        return result

    def show_error(self, exc: UserError, events: EventLog) -> None:
        """The watcher outlives a broken BUILD.toml or MB.toml: show it, wait for the fix."""
        print(str(exc), file=sys.stderr, flush=True)
        print("waiting for a change to fix this", file=sys.stderr, flush=True)
        events.emit("watch.error", level="error", message=str(exc))
        events.flush()


def locked_build(workspace: Workspace, plugins: Plugins, options: BuildOptions,
                 events: EventLog, reporter: Any, statcache: StatCache,
                 session: BuildSession) -> BuildResult:
    """One build under the workspace lock (taken per build, so `mb build` can run between
    rebuilds), its events rendered by `reporter`; the log and reporter closed however it ends."""
    events.subscribe(reporter)
    try:
        with WorkspaceLock(workspace.state_dir, waiting):
            events.start()
            try:
                return run_build(workspace, plugins, options, events, statcache, session)
            finally:
                events.close()
    finally:
        reporter.stop()


#: Up to this many requested targets are all listed after a build; beyond, only what changed.
LIST_ALL: Final = 10


def report(result: BuildResult, log: CycleLog) -> None:
    """After each build: what was rebuilt, where the outputs are, what is still provisional."""
    lines = [rebuilt_line(result, log)]
    shown = [label for label in result.requested if label in result.targets and (
        len(result.requested) <= LIST_ALL or str(label) in log.executed
        or result.targets[label].provisional or result.targets[label].status == "failed")]
    for label in shown:
        target = result.targets[label]
        mark = " [provisional]" if target.provisional else ""
        lines.append(f"{label} ({target.status}){mark}")
        lines.extend(f"  {path}" for path in target.outputs)
    if len(shown) < len(result.requested):
        lines.append(f"({len(result.requested) - len(shown)} other requested targets unchanged)")
    provisional = [str(label) for label, t in result.targets.items() if t.provisional]
    if provisional:
        lines.append("still provisional:")
        for name in provisional:
            why = log.placeholders.get(name)
            lines.append(f"  {name}" + (f" (placeholder for {', '.join(why)})" if why else ""))
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def rebuilt_line(result: BuildResult, log: CycleLog) -> str:
    """The targets whose actions ran to the end. "All cached" is said only of a
    build that succeeded: an interrupted or failed one may have run nothing
    because it stopped, or because its actions failed or were skipped."""
    if result.status == "ok":
        return f"rebuilt: {', '.join(log.executed) or 'nothing (all cached)'}"
    return f"rebuilt: {', '.join(log.executed) or 'nothing'} (build {result.status})"


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, start: str) -> int:
    """`mb watch`: returns 130 when Ctrl-C (or SIGTERM) ends it; a build installs its own
    handlers, which stop that build's actions and their children first."""
    plugins = load_plugins(args.plugins)
    report_plugin_failures(plugins, args.verbose)
    watcher = Watcher(args, start, plugins)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = watcher.run()
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == ExitCode.INTERRUPTED:
        print("interrupted", file=sys.stderr)
    return code
