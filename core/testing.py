"""pytest helpers for mb and for plugin authors: make a workspace, run `mb` in it.

Enable with `pytest_plugins = ["mb.testing"]` in a conftest.py; then the
`mb_workspace` fixture takes a dict of files and returns a `Workspace`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest


@attrs.frozen
class RunResult:
    exit_code: int
    stdout: str
    stderr: str


@attrs.define
class Workspace:
    """A workspace in a temporary directory, driven through the real `mb` command."""

    path: Path
    env: dict[str, str]

    def write(self, files: Mapping[str, str | bytes]) -> None:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mb", *args]

    def run(self, *args: str, timeout: float = 300, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> RunResult:
        """Run `mb ARGS` in the workspace; never raises for a non-zero exit."""
        proc = subprocess.run(
            self.command(*args), cwd=cwd or self.path, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=timeout,
        )
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args), cwd=self.path, env={**self.env, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def out(self, path: str) -> Path:
        """A file under mb-out/."""
        return self.path / "mb-out" / path

    def events(self) -> list[dict[str, Any]]:
        log = self.path / ".mb" / "events.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def last_build_events(self) -> list[dict[str, Any]]:
        events = self.events()
        if not events:
            return []
        last = events[-1]["build_id"]
        return [e for e in events if e["build_id"] == last]

    def executed(self) -> list[str]:
        """Targets whose actions really ran (not cached) in the last build."""
        return [e["target"] for e in self.last_build_events()
                if e["type"] == "action.finished" and not e["data"]["cached"]]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small, predictable environment: no colour, no user config leaking in.

    XDG_CACHE_HOME is passed on, like HOME: where mb keeps its entry-point index
    (`mb.plugin_index`); a test session may point it at a folder of its own.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
    }
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "TMPDIR", "XDG_CACHE_HOME"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra or {})
    return env


@pytest.fixture
def mb_workspace(tmp_path: Path) -> Callable[..., Workspace]:
    """Make a workspace from `{relative path: text}`; `MB.toml` is added if absent."""

    def make(files: Mapping[str, str | bytes], subdir: str = "ws") -> Workspace:
        ws = Workspace(tmp_path / subdir, clean_env())
        ws.path.mkdir(parents=True, exist_ok=True)
        if "MB.toml" not in files:
            (ws.path / "MB.toml").write_text("")
        ws.write(files)
        return ws

    return make
