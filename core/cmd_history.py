"""Build history commands: `mb log`, `show`, `diff`, `checkout`, `status`, `explain`, `tail`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from mb.cache import Cache
from mb.cli import EVENT_LEVELS
from mb.errors import ExitCode, UserError
from mb.events import read_events
from mb.fsutil import place_file
from mb.history import current_build_id, list_builds, load_components, load_manifest
from mb.labels import Label, parse_label
from mb.workspace import Workspace, open_workspace

if TYPE_CHECKING:
    from mb.analysis import AnalyzedTarget


class OutputsCollectedError(UserError):
    """A past build's outputs are gone from the cache (exit 1, docs/history.md): like a
    missing input, what the command needs no longer exists, and only a build brings it back.

    Every other history mistake (no build yet, an unknown or empty build id) is a
    usage error, exit 2: nothing was built, so nothing failed.
    """

    exit_code = ExitCode.BUILD_FAILED


NO_BUILD_YET = "no build recorded yet in this workspace; run `mb build` first"


def manifest_or_error(workspace: Workspace, build_id: str | None) -> dict[str, Any]:
    """The manifest of `build_id`, or of the latest build when none is given (None).

    An empty id is an id that names no build: `mb show ''` is refused like
    `mb show b-nope` (exit 2), never taken for "the latest".
    """
    chosen = current_build_id(workspace.state_dir) if build_id is None else build_id
    if chosen is None:
        raise UserError(NO_BUILD_YET)
    manifest = load_manifest(workspace.state_dir, chosen)
    if manifest is None:
        raise unknown_build(workspace, chosen)
    return manifest


def unknown_build(workspace: Workspace, build_id: str) -> UserError:
    """`no build 'ID'; recent builds: ...`: the ids `mb log` would show, to pick from."""
    known = [m["build_id"] for m in list_builds(workspace.state_dir)][-5:]
    if not known:
        return UserError(f"no build {build_id!r}: {NO_BUILD_YET}")
    return UserError(f"no build {build_id!r}; recent builds: {', '.join(known)} "
                     "(`mb log` lists them all)")


def target_status(record: dict[str, Any]) -> str:
    if record.get("provisional") and record["status"] in ("built", "cached"):
        return "provisional"
    return str(record["status"])


def cmd_log(workspace: Workspace, _args: argparse.Namespace) -> int:
    for manifest in list_builds(workspace.state_dir):
        counts = manifest.get("counts", {})
        print(f"{manifest['build_id']}  {manifest.get('started', '')}  {manifest['status']:<12} "
              f"executed={counts.get('executed', 0)} cached={counts.get('cached', 0)} "
              f"failed={counts.get('failed', 0)} skipped={counts.get('skipped', 0)}")
    return 0


def cmd_show(workspace: Workspace, args: argparse.Namespace) -> int:
    manifest = manifest_or_error(workspace, args.build_id)
    rows = []
    for label, record in sorted(manifest["targets"].items()):
        outputs = ", ".join(record.get("outputs", {})) or "-"
        rows.append((label, target_status(record), f"{record.get('duration_s', 0):.2f}s", outputs))
    print(f"build {manifest['build_id']} {manifest['status']} "
          f"({manifest.get('started', '')} .. {manifest.get('finished', '')})")
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.table import Table

        table = Table("target", "status", "duration", "outputs")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return 0
    widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in
              enumerate(("target", "status", "duration", "outputs"))]
    for row in [("target", "status", "duration", "outputs"), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def outputs_of(manifest: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for record in manifest["targets"].values():
        for path, digest in record.get("outputs", {}).items():
            if path.startswith("mb-out/") and digest:
                found[path] = digest
    return found


def cmd_diff(workspace: Workspace, args: argparse.Namespace) -> int:
    older, newer = _builds_to_diff(workspace, args)
    before, after = outputs_of(older), outputs_of(newer)
    print(f"{older['build_id']} -> {newer['build_id']}")
    for path in sorted(set(before) | set(after)):
        if path not in before:
            print(f"added    {path}")
        elif path not in after:
            print(f"removed  {path}")
        elif before[path] != after[path]:
            print(f"changed  {path}  {before[path][:12]} -> {after[path][:12]}")
    return 0


def _builds_to_diff(workspace: Workspace, args: argparse.Namespace
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A and B, A and the latest build, or the last two builds (exit 2 if there are fewer:
    nothing failed, there is just nothing to compare yet)."""
    if args.a is not None:
        return manifest_or_error(workspace, args.a), manifest_or_error(workspace, args.b)
    builds = list_builds(workspace.state_dir)
    if len(builds) < 2:
        raise UserError(f"mb diff needs two recorded builds and this workspace has {len(builds)}; "
                        "build again after a change, or name the builds to compare")
    return builds[-2], builds[-1]


def cmd_checkout(workspace: Workspace, args: argparse.Namespace) -> int:
    from mb.locks import CacheUse

    manifest = manifest_or_error(workspace, args.build_id)
    cache = Cache(workspace.cache_dir)
    outputs = outputs_of(manifest)
    # As a build does: `mb gc` does not remove a blob between finding and placing it.
    with CacheUse(workspace.cache_dir, exclusive=False, on_wait=lambda: print(
            "mb gc is trimming the cache; waiting for it to finish", file=sys.stderr,
            flush=True)):
        blobs = {path: _checkout_blob(cache, path, digest, manifest)
                 for path, digest in outputs.items()}
        missing = [path for path, blob in blobs.items() if blob is None]
        if missing:
            raise OutputsCollectedError(
                f"cannot check out {manifest['build_id']}: the cache no longer holds "
                f"{len(missing)} of its outputs ({', '.join(sorted(missing)[:3])}"
                f"{', ...' if len(missing) > 3 else ''}); they were collected by `mb gc` "
                "or `mb clean --all`; rebuild instead")
        for path, blob in sorted(blobs.items()):
            assert blob is not None
            place_file(blob, os.path.join(workspace.root, path))
        cache.flush()  # the results it found count as used now (`mb gc`'s order)
    print(f"checked out {len(outputs)} outputs of {manifest['build_id']} into mb-out/")
    return 0


def _checkout_blob(cache: Cache, path: str, digest: str, manifest: dict[str, Any]
                   ) -> str | None:
    """The blob to put at `path` (`mb-out/...`): the executable one (`<digest>.x`) if
    the output was executable, as its action's cached result says; None if gone."""
    executable = None
    relative = path[len("mb-out/"):]
    for action in manifest.get("actions", []):
        if relative in (action.get("outputs") or {}) and action.get("key"):
            result = cache.get_result(action["key"])
            if result is not None:
                executable = relative in result.executable
            break
    if executable is None:  # no record of the mode: whichever blob there is
        candidates = [cache.blob_path(digest), cache.blob_path(digest, executable=True)]
    else:
        candidates = [cache.blob_path(digest, executable)]
    return next((blob for blob in candidates if os.path.exists(blob)), None)


def cmd_status(workspace: Workspace, _args: argparse.Namespace) -> int:
    build_id = current_build_id(workspace.state_dir)
    cache = Cache(workspace.cache_dir)
    if build_id is None:
        print("no build yet")
    else:
        manifest = manifest_or_error(workspace, build_id)
        counts = manifest.get("counts", {})
        print(f"last build: {build_id} {manifest['status']} (finished {manifest.get('finished')}): "
              + ", ".join(f"{k} {v}" for k, v in counts.items()))
        targets = manifest["targets"]
        failed = [label for label, r in targets.items() if r["status"] == "failed"]
        provisional = [label for label, r in targets.items() if r.get("provisional")]
        print(f"failed: {', '.join(sorted(failed)) or 'none'}")
        print(f"provisional: {', '.join(sorted(provisional)) or 'none'}")
        costs = [r["cost"] for r in targets.values() if r.get("cost")]
        print(f"provider costs: {sum(costs):.4f}" if costs else "provider costs: none reported")
    print(f"cache: {cache.size()} bytes in {workspace.config.cache.dir}")
    return 0


def cmd_explain(workspace: Workspace, args: argparse.Namespace) -> int:
    parsed = parse_label(args.label, workspace.cwd_package)
    label = str(parsed)
    builds = _builds_current_last(workspace)
    if builds and builds[-1].get("noop"):
        print(f"the last build ({builds[-1]['build_id']}) changed nothing: every action was "
              f"cached; the last build that checked keys was {builds[-1].get('actions_from')}")
    last = _last_build_with_actions(builds, label)
    if last is None:
        target = _declared_target(workspace, parsed, args)  # unknown label: exit 2
        if target is None:
            print(f"{label} is a source file: nothing runs for it")
            return 0
        label = str(target.label)  # an output file's label stands for the target declaring it
        if not target.actions:
            print(f"{label} declares no actions (it names files): nothing runs for it"
                  + _last_failure(builds, label))
            return 0
        last = _last_build_with_actions(builds, label)
        if last is None:
            raise UserError(f"{label} has not been built yet: no recorded build ran its "
                            f"actions; run `mb build {label}` first")
    _explain_actions(workspace, builds, last, label)
    return 0


def _builds_current_last(workspace: Workspace) -> list[dict[str, Any]]:
    """Every recorded build, oldest first, with the one `current` names last: it is the
    latest to finish, which sorting by start time alone need not put last."""
    current = current_build_id(workspace.state_dir)
    builds = [b for b in list_builds(workspace.state_dir) if b["build_id"] != current]
    return builds + ([manifest_or_error(workspace, current)] if current else [])


def _last_build_with_actions(builds: list[dict[str, Any]], label: str) -> dict[str, Any] | None:
    return next((b for b in reversed(builds)
                 if any(a["target"] == label for a in b.get("actions", []))), None)


def _declared_target(workspace: Workspace, label: Label, args: argparse.Namespace
                     ) -> AnalyzedTarget | None:
    """The target `label` names now, analysed: itself, or the target declaring the output
    file it names (SPEC §1); None for a source file. An unknown label is the usual exit-2
    error."""
    from mb.analysis import Analysis
    from mb.plugins import load_plugins
    from mb.statcache import StatCache

    plugins = load_plugins(args.plugins or ())
    statcache = StatCache(os.path.join(workspace.state_dir, "statcache.bin"))
    analysis = Analysis(workspace, plugins, statcache.digest)
    target = analysis.file_label_target(label)
    return None if target is None else analysis.analyze(target)


def _last_failure(builds: list[dict[str, Any]], label: str) -> str:
    """`; the last build that included it (ID) failed: missing source file ...` when that
    build failed an action-less target (its files are missing), else ``."""
    build = next((b for b in reversed(builds) if label in b["targets"]), None)
    if build is None or build["targets"][label]["status"] != "failed":
        return ""
    record = build["targets"][label]
    return (f"; the last build that included it ({build['build_id']}) failed: "
            + "; ".join(record.get("errors", [])))


def _explain_actions(workspace: Workspace, builds: list[dict[str, Any]],
                     last: dict[str, Any], label: str) -> None:
    """One paragraph per action of `label` in `last`: what changed to make it run, or why
    it did not run at all (a missing input, a failed dependency)."""
    earlier = builds[: builds.index(last)]
    where = (f"the last build ({last['build_id']})" if last is builds[-1]
             else f"{last['build_id']}, the last build that included it")
    for action in (a for a in last["actions"] if a["target"] == label):
        heading = f"{label}: {action['description']}"
        if action["status"] == "skipped":
            print(f"{heading}: did not run in {where}: skipped: {_skip_reason(last, action)}")
        elif action["status"] == "failed" and not action.get("key"):
            print(f"{heading}: did not run in {where}: {action['error']}")
        elif action["status"] == "failed":
            print(f"{heading}: failed")
            if action.get("error"):
                print(f"  {action['error']}")
        elif action["status"] == "cached" and action.get("provisional"):
            print(f"{heading}: provisional, reused")
            print(f"  key {action['key'][:16]}: built from a placeholder earlier in this "
                  "`mb watch` session and kept in its memory (provisional results never go "
                  "into the cache)")
        elif action["status"] == "cached":
            print(f"{heading}: cached")
            print(f"  key {action['key'][:16]} was in the cache")
        elif action.get("provisional"):
            print(f"{heading}: executed, provisional")
            print("  an input was a placeholder, so the result was not cached: it runs "
                  "again until every input is real")
        else:
            print(f"{heading}: executed")
            for line in explain_change(workspace, _previous_record(earlier, action), action):
                print(f"  {line}")


def _skip_reason(manifest: dict[str, Any], action: dict[str, Any]) -> str:
    """Why a skipped action never ran (the scheduler's reason, `//f:bad failed`, or why the
    build stopped), then what else the build found wrong with its target (a missing
    source file), which would have kept it from running too."""
    label = action["target"]
    own = {a.get("error") for a in manifest["actions"] if a["target"] == label}
    found = [e for e in manifest["targets"].get(label, {}).get("errors", []) if e not in own]
    return "; ".join([action.get("error") or _why_stopped(manifest), *found])


def _why_stopped(manifest: dict[str, Any]) -> str:
    """What made a build skip the rest without a reason per action: Ctrl-C, or (without
    `-k`) the first failures."""
    if manifest["status"] == "interrupted":
        return "the build was interrupted"
    failed = sorted({a["target"] for a in manifest["actions"] if a["status"] == "failed"})
    return (f"the build stopped when {', '.join(failed) or 'an action'} failed "
            "(`mb build -k` keeps going)")


def _previous_record(builds: list[dict[str, Any]], action: dict[str, Any]
                     ) -> dict[str, Any] | None:
    identity = (action["target"], tuple(sorted(action.get("outputs", {}) or [])))
    for manifest in reversed(builds):
        for candidate in manifest.get("actions", []):
            if candidate["target"] != action["target"] or not candidate.get("key"):
                continue
            outputs = tuple(sorted(candidate.get("outputs", {}) or []))
            if candidate["description"] == action["description"] or outputs == identity[1]:
                return candidate
    return None


def explain_change(workspace: Workspace, previous: dict[str, Any] | None,
                   action: dict[str, Any]) -> list[str]:
    """Which key components differ between the previous record of an action and this one."""
    if previous is None:
        return ["no earlier build ran this action: first build"]
    if previous["key"] == action["key"]:
        return ["its key is unchanged; the cache had no result for it "
                "(cleaned, collected, --no-cache or a no-cache tag)"]
    lines: list[str] = []
    old_inputs, new_inputs = previous.get("inputs", {}), action.get("inputs", {})
    for path in sorted(set(old_inputs) | set(new_inputs)):
        if path not in old_inputs:
            lines.append(f"input {path} added")
        elif path not in new_inputs:
            lines.append(f"input {path} removed")
        elif old_inputs[path] != new_inputs[path]:
            lines.append(_file_change(f"input {path}", old_inputs[path], new_inputs[path]))
    old_tools, new_tools = previous.get("tools", {}), action.get("tools", {})
    for name in sorted(set(old_tools) | set(new_tools)):
        if old_tools.get(name) != new_tools.get(name):
            lines.append(_file_change(f"tool {name}", str(old_tools.get(name)),
                                      str(new_tools.get(name))))
    if previous["static"] != action["static"]:
        old = load_components(workspace.state_dir, previous["static"]) or {}
        new = load_components(workspace.state_dir, action["static"]) or {}
        lines.extend(_component_changes(old, new))
    return lines or ["its key changed (no component difference recorded)"]


def _file_change(what: str, old: str, new: str) -> str:
    """`input p/x changed: 1a2b... -> 3c4d...`, or `... became executable` when only the
    exec bit changed (key digests carry it as an `x:` prefix, mb.digest.key_digest)."""
    old_bytes, new_bytes = old.removeprefix("x:"), new.removeprefix("x:")
    if old_bytes == new_bytes and old != new:
        return f"{what} {'became executable' if new.startswith('x:') else 'lost its exec bit'}"
    return f"{what} changed: {old_bytes[:12]} -> {new_bytes[:12]}"


def _component_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    names = {"rule": "rule version", "plugin": "plugin version", "argv": "command line",
             "function": "function or its module source", "env": "environment",
             "secret_env": "secret variable names", "outputs": "declared outputs",
             "inputs": "declared inputs", "tools": "declared tools", "kind": "action kind",
             "network": "network access"}
    lines = []
    old_params, new_params = old.get("params", {}) or {}, new.get("params", {}) or {}
    for key in sorted(set(old_params) | set(new_params)):
        if old_params.get(key) != new_params.get(key):
            lines.append(f"attribute/param {key!r} changed: {old_params.get(key)!r} -> "
                         f"{new_params.get(key)!r}")
    if old.get("env") != new.get("env"):
        old_env, new_env = dict(map(tuple, old.get("env", []))), dict(map(tuple, new.get("env", [])))
        for key in sorted(set(old_env) | set(new_env)):
            if old_env.get(key) != new_env.get(key):
                lines.append(f"environment {key} changed: {old_env.get(key)!r} -> "
                             f"{new_env.get(key)!r}")
    for key, description in names.items():
        if key in ("env",) or old.get(key) == new.get(key):
            continue
        lines.append(f"{description} changed: {json.dumps(old.get(key))} -> "
                     f"{json.dumps(new.get(key))}")
    return lines


def cmd_tail(workspace: Workspace, args: argparse.Namespace) -> int:
    path = os.path.join(workspace.state_dir, "events.jsonl")
    target = (str(parse_label(args.target, workspace.cwd_package))
              if args.target is not None else None)
    # Levels a threshold does not cover (a plugin's own, say "critical") are shown:
    # a filter that cannot rank an event should not hide it.
    hidden = set(EVENT_LEVELS[:EVENT_LEVELS.index(args.level)]) if args.level else set()

    def wanted(event: dict[str, Any]) -> bool:
        return ((args.type is None or event.get("type") == args.type
                 or str(event.get("type", "")).startswith(args.type + "."))
                and (target is None or event.get("target") == target)
                and event.get("level", "info") not in hidden
                and (args.build is None or event.get("build_id") == args.build))

    def show(event: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(event, separators=(",", ":")), flush=True)
        else:
            data = json.dumps(event.get("data", {}), separators=(",", ":"))
            print(f"{event['seq']:>6} {event['ts']} {event.get('level', ''):<7} "
                  f"{event['type']:<18} {event.get('target') or '-'} {data}", flush=True)

    events = read_events(path)
    if args.build is not None and not _build_known(workspace, events, args.build):
        raise unknown_build(workspace, args.build)
    last = events[-1]["seq"] if events else 0
    for event in events:
        if wanted(event):
            show(event)
    if not args.follow:
        return 0
    try:
        while True:
            time.sleep(0.2)
            fresh = [e for e in read_events(path) if e["seq"] > last]
            for event in fresh:
                last = event["seq"]
                if wanted(event):
                    show(event)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _build_known(workspace: Workspace, events: list[dict[str, Any]], build_id: str) -> bool:
    """A build with a manifest, or one still running (its events are there, its manifest
    is written at its end): `mb tail -f --build ID` of a running build is what -f is for."""
    return (load_manifest(workspace.state_dir, build_id) is not None
            or any(event.get("build_id") == build_id for event in events))


COMMANDS = {"log": cmd_log, "show": cmd_show, "diff": cmd_diff, "checkout": cmd_checkout,
            "status": cmd_status, "explain": cmd_explain, "tail": cmd_tail}


def run(args: argparse.Namespace, start: str) -> int:
    workspace = open_workspace(start)
    return int(COMMANDS[args.command](workspace, args))
