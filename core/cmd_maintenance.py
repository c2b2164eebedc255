"""`mb clean [--all]` and `mb gc [--max-size SIZE]`."""

from __future__ import annotations

import argparse
import os

from mb.cache import Cache, parse_size
from mb.errors import ConfigError
from mb.fsutil import remove_tree
from mb.workspace import open_workspace


def run(args: argparse.Namespace, start: str) -> int:
    workspace = open_workspace(start)
    if args.command == "clean":
        remove_tree(workspace.output_dir)
        if args.all:
            cache = os.path.realpath(workspace.cache_dir)
            state = os.path.realpath(workspace.state_dir)
            remove_tree(workspace.state_dir)
            if not cache.startswith(state + os.sep) and cache != state:
                print(f"kept the shared cache at {workspace.cache_dir}")
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
    removed, freed = cache.gc(limit)
    print(f"removed {removed} cache files, freed {freed} bytes; cache is {cache.size()} bytes")
    return 0
