"""`mb.ActionIO`: what a Python action (`ctx.call`) sees while it runs in its sandbox."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO


class ActionIO:
    """Inputs, outputs and parameters of one running Python action.

    `inputs`, `outputs` and `tools` are absolute paths inside the sandbox, in
    the order the rule declared them. Events, cost and metadata are written to
    a side channel the engine reads when the action ends; they never carry
    secrets (use `secret()` to read one, and do not echo it).
    """

    def __init__(
        self,
        root: Path,
        inputs: list[Path],
        outputs: list[Path],
        tools: list[Path],
        params: Mapping[str, Any],
        providers: Mapping[str, Mapping[str, Any]],
        channel: TextIO | None = None,
        label: str = "",
        state_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.inputs = inputs
        self.outputs = outputs
        self.tools = tools
        self.params = params
        self.label = label
        self._state_dir = state_dir
        self._state_dir_made = False
        self._providers = providers
        self._channel = channel
        self.metadata: dict[str, Any] = {}
        self.cost: float | None = None

    @property
    def state_dir(self) -> Path | None:
        """A directory under `.mb/` shared by all actions of the workspace, for state
        that must outlive one action (a provider's circuit breaker); None when the
        ActionIO was built without one (a unit test calling an action directly).

        It exists when returned: a fresh workspace has no `.mb/providers/` yet, and
        a plugin writing `io.state_dir / "x"` must not have to create it first. It
        is made on first access, so actions that never use it cost no system call.
        """
        if self._state_dir is not None and not self._state_dir_made:
            self._state_dir.mkdir(parents=True, exist_ok=True)
            self._state_dir_made = True
        return self._state_dir

    @state_dir.setter
    def state_dir(self, value: Path | None) -> None:
        self._state_dir = value
        self._state_dir_made = False

    def provider(self, name: str) -> Mapping[str, Any]:
        """`[providers.NAME]` settings from MB.toml plus `MB_*` overrides (not keyed)."""
        return self._providers.get(name, {})

    def secret(self, env_name: str) -> str | None:
        """Read a secret from an environment variable the rule listed in `secret_env`."""
        return os.environ.get(env_name)

    def emit(self, type: str, level: str = "info", **data: Any) -> None:
        """Record an event (`provider.request`, `breaker.opened`, ...) for the event log."""
        self._write({"kind": "event", "type": type, "level": level, "data": data,
                     "ts": time.time()})

    def set_metadata(self, key: str, value: Any) -> None:
        """Attach a JSON value to the action's result (e.g. an audio duration)."""
        self.metadata[key] = value
        self._write({"kind": "metadata", "key": key, "value": value})

    def report_cost(self, amount: float) -> None:
        """Report what this action cost at its provider; summed per build."""
        self.cost = (self.cost or 0.0) + float(amount)
        self._write({"kind": "cost", "amount": float(amount)})

    def _write(self, record: dict[str, Any]) -> None:
        if self._channel is not None:
            self._channel.write(json.dumps(record, sort_keys=True) + "\n")
            self._channel.flush()
