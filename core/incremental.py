"""Rebuild after source edits without analysing again, from the last build's action table.

The no-op fast path (`fastpath.py`) proves from stats that nothing a build
read has changed. When the only change is in the bytes of source files, the
analysed actions are still exactly those of the last build: analysis reads
BUILD files, MB.toml, folder listings, plugin code and PATH (all in the
snapshot, all unchanged) and never a source's content; rule implementations
only declare actions, and actions read the files. So next to the snapshot mb
keeps the last build's action table (each action pickled, with its key and
the digests of its outputs). An edit then re-runs, through the usual
scheduler and executor, only the actions reading a changed source and those
downstream of them. Early cutoff still holds: a downstream action whose
inputs come out the same gets the same key and is a cache hit. Every other
action is logged as cached, as in a no-op, and the build gets a manifest
whose `actions` lists the actions it looked at, with `actions_from` naming
the build whose records hold the rest.

Anything else (a BUILD.toml, a folder, a tool, a plugin, an output in
`mb-out/`) takes the full path. So does the build after a failed or
interrupted incremental one: its snapshot is dropped first.

The files share a generation (the id of the build that wrote them): the
stat snapshot, its replay and this table are used together or not at all.
An incremental build does not rewrite the replay and the table (megabytes
for 10,000 actions); it writes an overlay holding what changed since the
last full build (events, target records, output digests of the actions it
ran), then the snapshot.
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import pickle
import signal
import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TABLE_VERSION = 1

#: One action of the table: its target, its inputs and outputs
#: (workspace-relative), the digests of its outputs from its last run, and
#: where its pickled `Action` is in the pickles file (offset, length).
Row = tuple[str, tuple[str, ...], tuple[str, ...], dict[str, str], int, int]


def table_path(snapshot_path: str) -> str:
    return snapshot_path + ".actions"


def pickles_path(snapshot_path: str) -> str:
    """The pickled actions, back to back. Written by a full build only: an
    incremental build changes digests, never actions, so it rewrites the small
    table and reads just the pickles it runs."""
    return snapshot_path + ".pickles"


def target_member(label: str, record: Mapping[str, Any]) -> str:
    """A target's member of a manifest's `targets` object: `"//p:t":{...}`."""
    return f"{json.dumps(label)}:{json.dumps(record, sort_keys=True, separators=(',', ':'))}"


def noop_record(record: Mapping[str, Any], has_actions: bool) -> dict[str, Any]:
    """A target's record in a build that found all of it up to date."""
    return {**record, "status": "cached" if has_actions else "built", "cached": has_actions,
            "duration_s": 0.0}


def finished_event_json(outputs: Mapping[str, str], description: str) -> str:
    """The data of a replayed `action.finished`: cached, as every replayed action is."""
    return json.dumps({"cached": True, "duration_s": 0.0,
                       "outputs": {f"mb-out/{p}": d for p, d in outputs.items()},
                       "provisional": False, "cost": None, "description": description},
                      sort_keys=True, separators=(",", ":"))


def write_table(snapshot_path: str, generation: str, actions: Sequence[Any],
                outcomes: Mapping[int, Any], targets: Iterable[Any],
                settings: Mapping[str, Any]) -> None:
    """Write the action table of a successful build (`targets`: its analysed closure)."""
    from mb.fsutil import atomic_write_bytes

    position = {action.index: i for i, action in enumerate(actions)}
    rows: list[Row] = []
    pickles = [generation.encode() + b"\n"]
    offset = len(pickles[0])
    for action in actions:
        try:
            pickled = pickle.dumps(action, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            return  # a plugin put something unpicklable in an action: no table, full builds
        pickles.append(pickled)
        rows.append((str(action.owner), tuple(action.spec.inputs), tuple(action.spec.outputs),
                     dict(outcomes[action.index].outputs), offset, len(pickled)))
        offset += len(pickled)
    target_rows: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {}
    # Outputs a target lists that another target's action makes (a filegroup's).
    listed_by: dict[str, list[str]] = {}
    for target in targets:
        label = str(target.label)
        target_rows[label] = (tuple(position[a.index] for a in target.actions),
                              tuple(target.default_outputs))
        for path in target.default_outputs:
            if not any(path in a.spec.outputs for a in target.actions):
                listed_by.setdefault(path, []).append(label)
    atomic_write_bytes(pickles_path(snapshot_path), b"".join(pickles))
    _write_table(snapshot_path, {"generation": generation, "pickles": generation,
                                 "rows": rows, "targets": target_rows, "listed_by": listed_by,
                                 "settings": dict(settings)})


def _write_table(snapshot_path: str, loaded: Mapping[str, Any]) -> None:
    from mb.fsutil import atomic_write_bytes

    atomic_write_bytes(table_path(snapshot_path), marshal.dumps({
        **loaded, "version": TABLE_VERSION,
        # Pickled: MB.toml provider settings may hold TOML dates, which marshal cannot.
        "settings": pickle.dumps(loaded["settings"], protocol=pickle.HIGHEST_PROTOCOL)}))


def load_actions(snapshot_path: str, pickles_id: str, rows: Sequence[Row],
                 positions: Sequence[int]) -> list[Any] | None:
    """The `Action`s at `positions`, unpickled; None if the pickles file is not the one
    the table was written with."""
    try:
        with open(pickles_path(snapshot_path), "rb") as f:
            if f.readline() != pickles_id.encode() + b"\n":
                return None
            found = []
            for p in positions:
                f.seek(rows[p][4])
                found.append(pickle.loads(f.read(rows[p][5])))
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return found


def load_table(path: str) -> dict[str, Any] | None:
    from mb.fastpath import load_marshalled

    loaded = load_marshalled(path, TABLE_VERSION)
    if loaded is None:
        return None
    try:
        loaded["settings"] = pickle.loads(loaded["settings"])
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None
    return loaded


def affected(rows: Sequence[Row], changed: set[str]) -> list[int]:
    """Positions of the actions reading a changed path, directly or through outputs."""
    readers: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        for path in row[1]:
            readers.setdefault(path, []).append(position)
    found: set[int] = set()
    queue = deque(p for path in changed for p in readers.get(path, ()))
    while queue:
        position = queue.popleft()
        if position in found:
            continue
        found.add(position)
        for output in rows[position][2]:
            queue.extend(readers.get(output, ()))
    return sorted(found)


def run(root: str, snapshot_path: str, snapshot: dict[str, Any],
        changed: Mapping[str, tuple[os.stat_result, str]],
        args: argparse.Namespace) -> int | None:
    """Build after the source files `changed` (absolute path -> the stat they were hashed
    at and their digest) were edited; None: take the full path.

    The caller holds the workspace lock and has checked every other stat of
    the snapshot.
    """
    from mb import fastpath

    loaded = load_table(table_path(snapshot_path))
    replay = fastpath.load_replay(snapshot_path, snapshot.get("generation"))
    if loaded is None or replay is None or loaded.get("generation") != replay["generation"]:
        return None  # replay["generation"]: the full build's, overlay or not
    overlay = replay.get("overlay")
    if overlay is not None:
        for position, digests in overlay["rows"].items():
            target, inputs, outputs, _old, offset, length = loaded["rows"][position]
            loaded["rows"][position] = (target, inputs, outputs, digests, offset, length)
    from mb.fsutil import discard

    # From here on the snapshot describes a workspace that is being rebuilt:
    # if this build dies, the next one must not trust it.
    discard(snapshot_path)
    return _Rebuild(root, snapshot_path, snapshot, loaded, replay, args).run(changed)


class _Rebuild:
    """One incremental build: run the affected actions, log, record the new table."""

    def __init__(self, root: str, snapshot_path: str, snapshot: dict[str, Any],
                 loaded: dict[str, Any], replay: dict[str, Any],
                 args: argparse.Namespace) -> None:
        self.root = root
        self.state_dir = os.path.join(root, ".mb")
        self.snapshot_path = snapshot_path
        self.snapshot = snapshot
        self.rows: list[Row] = loaded["rows"]
        self.target_rows: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = loaded["targets"]
        self.loaded = loaded
        self.settings: dict[str, Any] = loaded["settings"]
        self.replay = replay
        self.args = args

    def run(self, hashed: Mapping[str, tuple[os.stat_result, str]]) -> int | None:
        from mb.cache import Cache
        from mb.errors import ExitCode
        from mb.cmd_build import make_reporter, print_counts
        from mb.events import EventLog, new_build_id, utc_timestamp
        from mb.executor import Executor, ExecutorOptions, report_outcome
        from mb.profile import NullProfiler
        from mb.environment import providers_with_environment
        from mb.sandbox import make_sandbox
        from mb.scheduler import Scheduler, SchedulerOptions, usable_cpus
        from mb.statcache import StatCache

        rows, settings, args = self.rows, self.settings, self.args
        changed = {os.path.relpath(path, self.root): path for path in hashed}
        positions = affected(rows, set(changed))
        loaded_actions = load_actions(self.snapshot_path, self.loaded["pickles"], rows, positions)
        if loaded_actions is None:
            return None
        actions = loaded_actions
        in_subset = set(positions)
        known = {path: digest for p, row in enumerate(rows) if p not in in_subset
                 for path, digest in row[3].items()}
        producers = {path: action for action in actions for path in action.spec.outputs}

        events = EventLog(os.path.join(self.state_dir, "events.jsonl"),
                          new_build_id(self.state_dir))
        reporter = make_reporter(args)
        events.subscribe(reporter)
        statcache = StatCache(os.path.join(self.state_dir, "statcache.bin"))
        for path, (st, digest) in hashed.items():
            statcache.remember(path, st, digest)
        executor = Executor(
            self.root, Cache(settings["cache_dir"]), statcache,
            make_sandbox(args.sandbox or settings["sandbox"], events), events,
            providers_with_environment(settings["providers"], os.environ), ExecutorOptions(),
            self.state_dir)
        keep_going = args.keep_going if args.keep_going is not None else settings["keep_going"]
        scheduler = Scheduler(executor, SchedulerOptions(
            jobs=args.jobs or settings["jobs"] or usable_cpus(), keep_going=keep_going,
            pools=settings["pools"]), on_outcome=lambda o: report_outcome(events, o),
            profiler=NullProfiler())
        started = utc_timestamp()
        events.start()
        try:
            events.emit("build.started", patterns=list(args.patterns),
                        targets=len(self.target_rows), actions=len(rows),
                        incremental=len(actions))
            replayed = self.replay["events"]
            events.emit_encoded("action.finished", (
                pair for p, pair in enumerate(replayed) if p not in in_subset))

            def on_signal(signum: int, _frame: Any) -> None:
                scheduler.interrupt()

            previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                outcomes = scheduler.run(actions, producers, known)
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
                executor.close()
            statcache.save()
            by_position = {p: outcomes[a.index] for p, a in zip(positions, actions)}
            counts = {"executed": 0, "cached": len(rows) - len(actions), "failed": 0,
                      "skipped": 0}
            for outcome in by_position.values():
                counts[outcome.status] += 1
            status = ("interrupted" if scheduler.interrupted.is_set() else
                      "failed" if counts["failed"] or counts["skipped"] else "ok")
            records = self._target_records(by_position)
            events.emit("build.finished", level="info" if status == "ok" else "error",
                        status=status, counts=counts,
                        cost=sum(r["cost"] for r in records.values() if r["cost"]) or None)
            self._write_manifest(events.build_id, started, status, counts, records,
                                 [by_position[p] for p in positions])
            # Results of a sandbox that does not cache (`none`) are never replayed.
            if status == "ok" and getattr(executor.sandbox, "caches_results", True):
                self._record(events.build_id, changed, statcache, by_position, records)
        finally:
            reporter.stop()
            events.close()
        print_counts(status, counts, events.build_id)
        # Whatever the status, with -q too, as after a full build (SPEC §8).
        lines = self._summary(records)
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
        if status == "interrupted":
            print("interrupted", file=sys.stderr)
            return ExitCode.INTERRUPTED
        return ExitCode.OK if status == "ok" else ExitCode.BUILD_FAILED

    # --- targets, manifest and summary ----------------------------------------------------

    def _target_records(self, by_position: Mapping[int, Any]) -> dict[str, dict[str, Any]]:
        """Records of the targets this build touched (the rest are as in the replay):
        the owners of the actions it ran and the targets listing their outputs."""
        touched = {self.rows[p][0] for p in by_position}
        for p in by_position:
            for path in self.rows[p][2]:
                touched.update(self.loaded["listed_by"].get(path, ()))
        records: dict[str, dict[str, Any]] = {}
        producer: dict[str, int] | None = None
        for label in sorted(touched):
            positions, default_outputs = self.target_rows[label]
            mine = [by_position[p] for p in positions if p in by_position]
            statuses = {o.status for o in mine}
            if len(mine) < len(positions):
                statuses.add("cached")  # its actions this build did not look at
            if "failed" in statuses:
                status = "failed"
            elif "skipped" in statuses:
                status = "skipped"
            elif statuses == {"cached"}:
                status = "cached"
            else:
                status = "built"  # something executed, or no actions (a filegroup)
            outputs: dict[str, str] = {}
            for path in default_outputs:
                own = [q for q in positions if path in self.rows[q][2]]
                if own:
                    made_by: int | None = own[0]
                else:
                    if producer is None:
                        producer = {out: q for q, row in enumerate(self.rows) for out in row[2]}
                    made_by = producer.get(path)
                if made_by is None:
                    outputs[path] = ""  # a source file (filegroup)
                elif made_by in by_position:
                    outputs[f"mb-out/{path}"] = by_position[made_by].outputs.get(path, "")
                else:
                    outputs[f"mb-out/{path}"] = self.rows[made_by][3].get(path, "")
            costs = [o.cost for o in mine if o.cost is not None]
            records[label] = {
                "status": status, "cached": status == "cached", "provisional": False,
                "duration_s": round(sum(o.duration_s for o in mine), 6),
                "cost": sum(costs) if costs else None, "outputs": outputs,
                "errors": [o.error for o in mine if o.error]}
        return records

    def _write_manifest(self, build_id: str, started: str, status: str,
                        counts: Mapping[str, int], records: Mapping[str, Mapping[str, Any]],
                        outcomes: Sequence[Any]) -> None:
        from mb.events import utc_timestamp
        from mb.history import action_record, publish_manifest

        compact = []
        for outcome in outcomes:
            record = action_record(outcome)
            record["static"] = record["static"][0]  # stored by the build that analysed it
            compact.append(record)
        encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
        members = dict(self.replay["targets"])
        members.update((label, target_member(label, record)) for label, record in records.items())
        targets = ",".join(members.values())
        manifest = (f'{{"actions":{encode(compact)},'
                    f'"actions_from":{encode(self.replay["actions_from"])},'
                    f'"build_id":{encode(build_id)},"counts":{encode(counts)},'
                    f'"finished":{encode(utc_timestamp())},"started":{encode(started)},'
                    f'"status":{encode(status)},"targets":{{{targets}}}}}')
        publish_manifest(self.state_dir, build_id, manifest)

    def _summary(self, records: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The last full build's summary with the lines of the targets this build
        touched rewritten: every other target's lines are the same as then."""
        lines: list[str] = []
        rewritten = False  # skipping the output lines of a target written anew
        for line in self.replay["summary"]:
            if line.startswith("  "):
                if not rewritten:
                    lines.append(line)
                continue
            label = line.split(" (", 1)[0]
            record = records.get(label)
            rewritten = record is not None
            if record is None:
                lines.append(line)
                continue
            lines.append(f"{label} ({record['status']})")
            lines.extend(f"  {path}" for path in record["outputs"])
        return lines

    # --- the next build's snapshot -----------------------------------------------------------

    def _record(self, build_id: str, changed: Mapping[str, str], statcache: Any,
                by_position: Mapping[int, Any], records: Mapping[str, Mapping[str, Any]]) -> None:
        """Write the overlay and snapshot this build leaves, as one new generation."""
        from mb import fastpath
        from mb.fsutil import atomic_write_bytes

        from mb.digest import EXECUTABLE_MARK
        from mb.executor import contents_keyed

        snapshot, replay = self.snapshot, self.replay
        seen = contents_keyed(by_position.values())
        if seen is None:
            return  # a source changed while the build ran: the next build looks again
        for path, absolute in changed.items():
            digest = statcache.known_digest(absolute)
            if digest is None:
                return  # not hashed (cannot happen after a successful build): no snapshot
            content = digest.removeprefix(EXECUTABLE_MARK)
            if seen.get(path, content) != content:
                return  # hashed again after an action keyed older bytes: edited meanwhile
            snapshot["files"][absolute] = (statcache.signature(absolute)
                                           or fastpath.ALWAYS_REHASH)
            snapshot["digests"][absolute] = digest
        for p, outcome in by_position.items():
            target, inputs, outputs, _digests, offset, length = self.rows[p]
            self.rows[p] = (target, inputs, outputs, dict(outcome.outputs), offset, length)
            replay["events"][p] = (json.dumps(target), finished_event_json(
                outcome.outputs, outcome.action.description))
            for path in outcome.outputs:
                absolute = os.path.join(self.root, "mb-out", path)
                try:
                    st = os.stat(absolute)
                except OSError:
                    return
                snapshot["outputs"][absolute] = (st.st_ino, st.st_size, st.st_mtime_ns)
        # The next no-op reports every target as cached, as after a full build. The
        # replay and table stay as the full build wrote them: the overlay carries
        # every change since (a few entries, not 10,000 rewritten).
        overlay = replay.get("overlay") or {"events": {}, "targets": {}, "rows": {}}
        for p, outcome in by_position.items():
            overlay["events"][p] = replay["events"][p]
            overlay["rows"][p] = self.rows[p][3]
        for label, record in records.items():
            overlay["targets"][label] = target_member(
                label, noop_record(record, bool(self.target_rows[label][0])))
        atomic_write_bytes(fastpath.overlay_path(self.snapshot_path), marshal.dumps({
            "version": fastpath.SNAPSHOT_VERSION, "generation": build_id,
            "base": replay["generation"], "actions_from": build_id,
            "events": overlay["events"], "targets": overlay["targets"],
            "rows": overlay["rows"]}))
        snapshot["generation"] = build_id
        atomic_write_bytes(self.snapshot_path, marshal.dumps(snapshot))
