"""Runs one Python action (`ctx.call`) in its own process, inside the sandbox directory.

Invoked as `python -m mb.sandbox.worker SPEC.json`. A separate process
gives Python actions what command actions have: a scrubbed environment, a
timeout that can really stop them, Ctrl-C that kills them, and a crash in a
native library that cannot take mb down. Exit status: 0 ok, 75 a retryable
failure, 3 a failure a retry cannot fix; the message goes to stderr.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

EXIT_RETRYABLE = 75
EXIT_PERMANENT = 3


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    for entry in reversed(spec.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from mb.actionio import ActionIO
    from mb.environment import providers_with_environment
    from mb.errors import ActionError

    sys.meta_path.insert(0, _SourceOnlyFinder(frozenset(spec.get("fresh_modules", []))))

    root = Path.cwd()
    fn: Any = importlib.import_module(spec["module"])
    for part in spec["qualname"].split("."):
        fn = getattr(fn, part)
    # Owner-only: the executor masks secrets when it reads the channel, not before.
    channel_fd = os.open(spec["channel"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(channel_fd, "w", encoding="utf-8") as channel:
        io = ActionIO(
            root=root,
            inputs=[root / p for p in spec["inputs"]],
            outputs=[root / p for p in spec["outputs"]],
            tools=[Path(p) for p in spec["tools"]],
            params=spec["params"],
            providers=providers_with_environment(spec["providers"], os.environ),
            channel=channel,
            label=spec["label"],
            state_dir=Path(spec["state_dir"]) if spec.get("state_dir") else None,
        )
        try:
            fn(io)
        except ActionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_RETRYABLE if exc.retryable else EXIT_PERMANENT
        except Exception:
            traceback.print_exc()
            return EXIT_RETRYABLE
    return 0


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source: the key covered these files' bytes, so must the code that runs.

    Python trusts a .pyc whose recorded source mtime (whole seconds) and size
    match, so a same-size edit within a second would run stale bytecode.
    """

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


class _SourceOnlyFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        loader = _SourceOnlyLoader(fullname, spec.loader.path)
        return importlib.util.spec_from_file_location(
            fullname, spec.loader.path, loader=loader,
            submodule_search_locations=spec.submodule_search_locations)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
