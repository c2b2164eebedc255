"""`mb clean [--all]` and `mb gc [--max-size SIZE]`."""

from __future__ import annotations

import argparse
import os
import sys

from mb.cache import Cache, parse_size
from mb.errors import ConfigError
from mb.fsutil import remove_tree
from mb.workspace import Workspace, open_workspace


def run(args: argparse.Namespace, start: str) -> int:
    """Both run under the workspace lock, like a build: a running build waits for
    them or they for it (`mb clean --all` under a build deleted its sandbox,
    its event log and the lock itself)."""
    from mb.cmd_build import waiting
    from mb.locks import CacheUse, WorkspaceLock

    workspace = open_workspace(start)
    if args.command == "clean":
        with WorkspaceLock(workspace.state_dir, waiting):
            clean(workspace, args.all)
        return 0
    limit_text = args.max_size or workspace.config.cache.max_size
    if limit_text is None:
        raise ConfigError("mb gc needs a size: pass --max-size SIZE or set [cache] max_size "
                          "in MB.toml")
    try:
        limit = parse_size(limit_text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    cache = Cache(workspace.cache_dir)
    with WorkspaceLock(workspace.state_dir, waiting), CacheUse(
            workspace.cache_dir, exclusive=True, on_wait=_waiting_for_builds):
        removed, freed = cache.gc(limit, used_elsewhere=last_build_use(workspace.state_dir))
    print(f"removed {removed} cache files, freed {freed} bytes; cache is {cache.size()} bytes")
    return 0


def _waiting_for_builds() -> None:
    print("builds are using the cache; mb gc waits for them to finish", file=sys.stderr,
          flush=True)


def clean(workspace: Workspace, everything: bool) -> None:
    """Remove mb-out/; with `everything`, .mb/ too (and the cache in it), its lock
    file included: a build waiting on the lock then locks a new file
    (`locks.FileLock.acquire`)."""
    remove_tree(workspace.output_dir)
    if not everything:
        return
    cache = os.path.realpath(workspace.cache_dir)
    state = os.path.realpath(workspace.state_dir)
    remove_tree(workspace.state_dir)
    if not cache.startswith(state + os.sep) and cache != state:
        print(f"kept the shared cache at {workspace.cache_dir}")


def last_build_use(state_dir: str) -> dict[str, tuple[int, int]]:
    """The action keys the workspace's last build used, as (when it finished, order).

    A no-op build and the actions an incremental build replays never look at
    the cache, so the cache's own record of use (a hit re-records its result)
    misses them. Their outputs are what mb-out/ holds now: the last
    manifest lists the actions it looked at, and the manifest it names in
    `actions_from` (the full build whose action records it repeats) the rest.
    Older manifests are not read: whatever ran since recorded its use in the
    cache.
    """
    from mb.history import builds_dir, current_build_id, load_manifest

    build_id = current_build_id(state_dir)
    manifest = load_manifest(state_dir, build_id) if build_id else None
    if manifest is None:
        return {}
    try:
        finished = os.stat(os.path.join(builds_dir(state_dir), f"{build_id}.json")).st_mtime_ns
    except OSError:
        return {}
    records = list(manifest.get("actions") or [])
    source = manifest.get("actions_from")
    if isinstance(source, str) and source != build_id:
        repeated = load_manifest(state_dir, source)
        if repeated is not None:
            records = list(repeated.get("actions") or []) + records
    used: dict[str, tuple[int, int]] = {}
    for position, record in enumerate(records):  # the last build's own records last
        if (isinstance(record, dict) and isinstance(record.get("key"), str)
                and record.get("status") in ("executed", "cached")):
            used[record["key"]] = (finished, position)
    return used
