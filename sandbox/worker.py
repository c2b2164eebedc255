"""Runs one Python action (`ctx.call`) in its own process, inside the sandbox directory.

Invoked as `python -m mb.sandbox.worker SPEC.json`. A separate process
gives Python actions what command actions have: a scrubbed environment, a
timeout that can really stop them, Ctrl-C that kills them, and a crash in a
native library that cannot take mb down. Exit status: 0 ok, 75 a retryable
failure, 3 a failure a retry cannot fix; the message goes to stderr.
"""

from __future__ import annotations

import importlib
import json
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
    from mb.errors import ActionError

    root = Path.cwd()
    fn: Any = importlib.import_module(spec["module"])
    for part in spec["qualname"].split("."):
        fn = getattr(fn, part)
    with open(spec["channel"], "w", encoding="utf-8") as channel:
        io = ActionIO(
            root=root,
            inputs=[root / p for p in spec["inputs"]],
            outputs=[root / p for p in spec["outputs"]],
            tools=[Path(p) for p in spec["tools"]],
            params=spec["params"],
            providers=spec["providers"],
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
