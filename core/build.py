"""One `mb build`: analysis, scheduling, events, the manifest and the result summary.

This module wires the pieces together; each piece (analysis, executor,
scheduler, cache, events, history) owns its own job.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Mapping
from typing import Any

import attrs
from mb.locks import WorkspaceLock  # noqa: F401  (re-exported for mb.watch)

from mb.analysis import Analysis, AnalyzedTarget, combined, module_source
from mb.cache import ActionResult, Cache
from mb.digest import EXECUTABLE_MARK
from mb.events import EventLog, utc_timestamp
from mb.errors import UserError
from mb.executor import Executor, ExecutorOptions, Outcome, contents_keyed, report_outcome
from mb.history import TargetRecord, action_record, write_manifest
from mb.labels import Label, parse_pattern
from mb.plugins import Plugins
from mb.profile import NullProfiler, Profiler
from mb.scheduler import Scheduler, SchedulerOptions, usable_cpus
from mb.sandbox import make_sandbox
from mb.statcache import StatCache
from mb.workspace import Workspace


@attrs.frozen
class BuildOptions:
    patterns: tuple[str, ...] = ("//...",)
    jobs: int | None = None
    keep_going: bool | None = None
    sandbox: str | None = None
    no_cache: bool = False
    placeholders: bool = False
    profile: str | None = None
    #: When set, a successful build records a no-op snapshot under this request key.
    fastpath_key: str | None = None


@attrs.frozen
class TargetResult:
    label: Label
    status: str  # built, cached, failed, skipped
    outputs: dict[str, str]
    provisional: bool
    duration_s: float
    cost: float | None
    errors: tuple[str, ...]


@attrs.frozen
class BuildResult:
    build_id: str
    status: str  # ok, failed, interrupted
    requested: tuple[Label, ...]
    targets: dict[Label, TargetResult]
    counts: dict[str, int]
    failures: tuple[Outcome, ...]
    #: Workspace-relative files this build read: sources (present or missing),
    #: the BUILD.toml of every loaded package, and MB.toml. What `mb watch` watches.
    watched_files: frozenset[str] = frozenset()


@attrs.define
class BuildSession:
    """What a long-lived process (`mb watch`) keeps between builds of one request.

    A set `analysis` is reused as is: the caller drops it when a BUILD.toml,
    MB.toml or folder changed. `changed` holds the paths changed since the
    last build; the actions reading them are scheduled first. Provisional
    results are remembered here, for this session only (SPEC §7 keeps them out
    of the cache), so an unchanged provisional action does not run again.
    """

    analysis: Analysis | None = None
    requested: list[Label] = attrs.field(factory=list)
    changed: frozenset[str] = frozenset()
    provisional_results: dict[str, ActionResult] = attrs.field(factory=dict)


def run_build(workspace: Workspace, plugins: Plugins, options: BuildOptions,
              events: EventLog, statcache: StatCache,
              session: BuildSession | None = None) -> BuildResult:
    """Analyse and run the requested patterns; the caller holds the workspace lock."""
    config = workspace.config
    profiler = Profiler() if options.profile else NullProfiler()
    # Made before the package walk, so creating it does not look like a change
    # of the workspace root to the next build's fast path.
    os.makedirs(workspace.output_dir, exist_ok=True)
    started = utc_timestamp()
    if session is not None and session.analysis is not None:
        analysis, requested = session.analysis, session.requested
        closure = analysis.closure(requested)
    else:
        analysis = Analysis(workspace, plugins, statcache.digest)
        patterns = [parse_pattern(p, workspace.cwd_package) for p in options.patterns]
        with profiler.span("analysis", "analysis"):
            # Every mistake of every file reached, in one run: targets that
            # converted are analysed even when others of their file did not.
            mistakes: list[UserError] = []
            requested = analysis.expand(patterns, mistakes)
            analysis.analyze_all(requested, mistakes)
            if mistakes:
                raise combined(mistakes)
            closure = analysis.closure(requested)
        if session is not None:
            session.analysis, session.requested = analysis, requested
    actions = [a for t in closure for a in t.actions]

    # Both sources of the mode are validated already (argparse choices, MB.toml).
    sandbox = make_sandbox(options.sandbox or config.build.sandbox, events)
    events.emit("build.started", patterns=list(options.patterns), targets=len(closure),
                actions=len(actions))
    # A target without actions (a filegroup) has no action to find its missing
    # sources, so they are looked for here (SPEC §7: exit 1, naming the file).
    missing = {} if options.placeholders else _missing_sources(workspace.root, closure)
    _report_missing(events, workspace.root, missing)

    cache = Cache(workspace.cache_dir)
    # It holds the cache (mb.locks.CacheUse) from here until `close` below.
    executor = Executor(
        workspace.root, cache, statcache, sandbox, events, config.providers,
        ExecutorOptions(read_cache=not options.no_cache, write_cache=not options.no_cache),
        workspace.state_dir)
    if session is not None:
        executor.provisional_results = session.provisional_results
    placeholder = None
    if options.placeholders:
        from mb.placeholders import PlaceholderMaker

        placeholder = PlaceholderMaker(plugins, analysis, events, executor.store_placeholder).make
    scheduler = Scheduler(
        executor,
        SchedulerOptions(
            jobs=options.jobs or config.build.jobs or usable_cpus(),
            # With placeholders a failure never stops the build: dependents get one.
            keep_going=options.placeholders or (
                options.keep_going if options.keep_going is not None
                else config.build.keep_going),
            pools=config.resources, placeholder=placeholder,
            first=session.changed if session is not None else frozenset()),
        on_outcome=lambda outcome: report_outcome(events, outcome), profiler=profiler)

    def on_signal(signum: int, _frame: Any) -> None:
        scheduler.interrupt()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcomes = scheduler.run(actions, analysis.producers)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            executor.close()
        except OSError as exc:  # a full disk: the build is still recorded (or tries to be)
            events.emit("cache.write_failed", level="error",
                        message=f"the action results of this build could not be written to "
                                f"the cache ({exc.strerror or exc}); those actions run again "
                                "next build")
    statcache.save()
    if options.profile:
        profiler.write(options.profile)

    if not options.placeholders and not scheduler.interrupted.is_set():
        # The targets a failure kept from running may miss sources too: name them
        # now, so one build says every file to add (SPEC §7), not one a run.
        late = _missing_sources(workspace.root, closure, outcomes)
        _report_missing(events, workspace.root, late)
        missing.update(late)
    targets = {t.label: _target_result(t, outcomes, analysis.producers, missing.get(t.label))
               for t in closure}
    counts = {"executed": 0, "cached": 0, "failed": 0, "skipped": 0}
    for outcome in outcomes.values():
        counts[outcome.status] += 1
    if scheduler.interrupted.is_set():
        status = "interrupted"
    elif counts["failed"] or counts["skipped"] or missing:
        status = "failed"
    else:
        status = "ok"
    failures = tuple(o for o in outcomes.values() if o.status == "failed")
    watched = {p for a in actions for p in a.spec.inputs if p not in analysis.producers}
    watched.update(s for t in closure for s in t.sources)
    watched.update(f"{p}/BUILD.toml" if p else "BUILD.toml" for p in analysis.packages)
    watched.add("MB.toml")
    result = BuildResult(build_id=events.build_id, status=status, requested=tuple(requested),
                         targets=targets, counts=counts, failures=failures,
                         watched_files=frozenset(watched))
    cost = sum(t.cost for t in targets.values() if t.cost) or None
    events.emit("build.finished", level="info" if status == "ok" else "error", status=status,
                counts=counts, cost=cost)
    manifest = write_manifest(
        workspace.state_dir, events.build_id, started, utc_timestamp(), status, counts,
        {str(label): TargetRecord.from_result(t) for label, t in targets.items()},
        [action_record(o, analysis.static_encodings) for o in outcomes.values()])
    if (options.fastpath_key and status == "ok" and not options.no_cache
            and sandbox.caches_results  # `none`: results the key does not describe
            and not config.cache.remote  # every build warns it is not used (cmd_build)
            and not any(t.provisional for t in targets.values())
            and all(a.cacheable for a in actions)):
        _record_fastpath(workspace, analysis, statcache, closure, outcomes, manifest, result,
                         options.fastpath_key)
    return result


def _record_fastpath(workspace: Workspace, analysis: Analysis, statcache: StatCache,
                     closure: list[AnalyzedTarget], outcomes: dict[int, Outcome],
                     manifest: dict[str, Any], result: BuildResult, key: str) -> None:
    """Snapshot what this build read so an unchanged next build is answered from stats,
    and keep its action table so a build after a source edit skips analysis
    (`incremental.py`)."""
    import sys

    from mb import fastpath, incremental
    from mb.cmd_build import summary_lines
    from mb.environment import providers_without_environment

    actions = [a for t in closure for a in t.actions]
    seen = contents_keyed(outcomes.values())
    if seen is None:
        return  # a source changed while the build ran: the next build must look again
    files: dict[str, Any] = {}
    digests: dict[str, str] = {}
    for action in actions:
        for path in action.spec.inputs:
            if path not in analysis.producers:
                absolute = os.path.join(workspace.root, path)
                digest = statcache.known_digest(absolute)
                content = digest and digest.removeprefix(EXECUTABLE_MARK)
                if content and seen.get(path, content) != content:
                    return  # hashed again after an action keyed older bytes: edited meanwhile
                # A racily clean source gets a signature that never matches, so the
                # fast path re-hashes it every time and trusts only its bytes.
                files[absolute] = statcache.signature(absolute) or (
                    fastpath.ALWAYS_REHASH if digest else None)
                if digest:
                    digests[absolute] = digest
        for tool in action.spec.tools:
            files[tool.path] = statcache.signature(tool.path)
        if action.spec.function is not None and action.spec.function.source_path:
            source = action.spec.function.source_path
            files[source] = statcache.signature(source)
        for module in action.function_modules:  # helpers it may import only when it runs
            module_file = module_source(module)
            if module_file is not None:
                files.setdefault(module_file, fastpath.file_sig(module_file))
    files.update(analysis.build_file_signatures)
    for path in analysis.read_sources:  # read by a rule: an edit is a new analysis, so
        digests.pop(path, None)         # a full build, never an incremental one
    files[os.path.join(workspace.root, "MB.toml")] = workspace.config_signature
    for module_file in fastpath.module_files():
        files.setdefault(module_file, fastpath.file_sig(module_file))
    dirs: dict[str, Any] = {**analysis.observed_folders, **workspace.dir_signatures}
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            dirs[entry] = fastpath.dir_sig(entry)
    outputs = [os.path.join(workspace.output_dir, path)
               for outcome in outcomes.values() for path in outcome.outputs]
    noop_targets = {}
    with_actions = {a["target"] for a in manifest["actions"]}
    for label, record in manifest["targets"].items():
        has_actions = record["status"] in ("built", "cached") and label in with_actions
        noop_targets[label] = incremental.noop_record(record, has_actions)
    path = fastpath.snapshot_path(workspace.state_dir, key)
    config = workspace.config
    settings = {"sandbox": config.build.sandbox, "jobs": config.build.jobs,
                "keep_going": config.build.keep_going, "pools": config.resources,
                "providers": providers_without_environment(config.providers, os.environ),
                "cache_dir": workspace.cache_dir}
    generation = manifest["build_id"]
    # The action table first, the snapshot (what the next build reads first) last.
    incremental.write_table(path, generation, actions, outcomes, closure, settings)
    fastpath.record(
        path, files, dirs, outputs,
        {"targets": {label: incremental.target_member(label, record)
                     for label, record in sorted(noop_targets.items())},
         "target_count": len(noop_targets), "actions_from": manifest["build_id"],
         "events": [(json.dumps(str(a.owner)), incremental.finished_event_json(
             outcomes[a.index].outputs, a.description)) for a in actions],
         "counts": {"executed": 0, "cached": len(actions), "failed": 0, "skipped": 0},
         "summary": summary_lines(result, {label: record["status"]
                                           for label, record in noop_targets.items()})},
        digests, generation)


def _missing_sources(root: str, closure: list[AnalyzedTarget],
                     outcomes: Mapping[int, Outcome] | None = None) -> dict[Label, list[str]]:
    """The source files that do not exist, by target: of the targets without actions
    (no action looks for them), or, given the outcomes of a run, of the targets
    with an action that never started (skipped), which nothing has looked at yet."""
    missing: dict[Label, list[str]] = {}
    for target in closure:
        if outcomes is None:
            if target.actions:
                continue
        elif not any(outcomes.get(a.index) is not None
                     and outcomes[a.index].status == "skipped" for a in target.actions):
            continue
        absent = [p for p in target.sources if not os.path.isfile(os.path.join(root, p))]
        if absent:
            missing[target.label] = absent
    return missing


def _report_missing(events: EventLog, root: str, missing: Mapping[Label, list[str]]) -> None:
    """One `action.failed` a target, naming each of its missing files."""
    for label, paths in missing.items():
        events.emit("action.failed", target=str(label), level="error",
                    error="; ".join(
                        f"{p} is a directory, not a file (needed by {label}); list the files "
                        "it holds" if os.path.isdir(os.path.join(root, p))
                        else f"missing source file {p} (needed by {label})" for p in paths),
                    stderr_tail="", description="sources")


def _target_result(target: AnalyzedTarget, outcomes: dict[int, Outcome],
                   producers: dict[str, Any], missing: list[str] | None = None) -> TargetResult:
    mine = [outcomes[a.index] for a in target.actions if a.index in outcomes]
    statuses = {o.status for o in mine}
    if missing:
        status = "failed"
    elif "failed" in statuses:
        status = "failed"
    elif "skipped" in statuses:
        status = "skipped"
    elif statuses == {"cached"} or not mine:
        status = "cached" if mine else "built"
    else:
        status = "built"
    outputs: dict[str, str] = {}
    for path in target.default_outputs:
        producer = producers.get(path)
        produced = outcomes.get(producer.index) if producer is not None else None
        if producer is None:
            if not missing or path not in missing:
                outputs[path] = ""  # a source file (filegroup)
        elif produced is not None and path in produced.outputs:
            outputs[f"mb-out/{path}"] = produced.outputs[path]
        # else: never produced (failed or skipped): nothing to list
    costs = [o.cost for o in mine if o.cost is not None]
    return TargetResult(
        label=target.label, status=status, outputs=outputs,
        provisional=any(o.provisional for o in mine),
        duration_s=sum(o.duration_s for o in mine), cost=sum(costs) if costs else None,
        errors=tuple(o.error for o in mine if o.error) + tuple(
            f"missing source file {p}" for p in missing or ()))
