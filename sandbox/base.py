"""What every sandbox does: stage declared inputs, run, report which outputs appeared.

A `SandboxRequest` is fully resolved (absolute input sources, argv with tool
paths), so sandboxes know nothing about labels, rules or the cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

import attrs

#: The environment every action starts from (SPEC §5), plus what it declares.
BASE_ENV: Mapping[str, str] = {"LANG": "C.UTF-8", "TZ": "UTC", "SOURCE_DATE_EPOCH": "0"}
STDERR_TAIL_LINES = 20


@attrs.frozen
class SandboxRequest:
    root: str  # the fresh directory to create and run in
    inputs: Mapping[str, str]  # workspace-relative path -> absolute file to stage
    outputs: tuple[str, ...]
    argv: tuple[str, ...]
    env: Mapping[str, str]
    timeout: float | None
    network: bool


@attrs.frozen
class SandboxResult:
    exit_code: int
    timed_out: bool
    stderr_tail: str
    duration_s: float
    missing_outputs: tuple[str, ...]


class ProcessRegistry:
    """Running child process groups, so Ctrl-C can stop every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self.stopping = False

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)
        if self.stopping:
            kill_group(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        self.stopping = True
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            kill_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stage_inputs(root: str, inputs: Mapping[str, str], link: bool = True) -> None:
    """Place each input at its workspace-relative path under `root` (hard link, else copy)."""
    made: set[str] = set()
    for rel, source in inputs.items():
        target = os.path.join(root, rel)
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if not link:
            os.symlink(source, target)
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def prepare_outputs(root: str, outputs: Sequence[str]) -> None:
    for rel in outputs:
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)


def run_process(request: SandboxRequest, cwd: str, env: Mapping[str, str],
                registry: ProcessRegistry) -> SandboxResult:
    """Run argv in its own process group; kill the whole group on timeout."""
    start = time.monotonic()
    stderr_path = os.path.join(request.root, ".mb-stderr")
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            list(request.argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=stderr, stderr=stderr, start_new_session=True,
        )
        registry.add(proc)
        timed_out = False
        try:
            proc.wait(timeout=request.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc)
            proc.wait()
        finally:
            registry.discard(proc)
        # The leader is gone; stop anything it left behind in its group.
        kill_group(proc)
    with open(stderr_path, "rb") as f:
        tail = f.read()[-8192:].decode("utf-8", "replace").splitlines()[-STDERR_TAIL_LINES:]
    missing = tuple(
        rel for rel in request.outputs if not os.path.isfile(os.path.join(cwd, rel))
    )
    return SandboxResult(
        exit_code=proc.returncode, timed_out=timed_out, stderr_tail="\n".join(tail),
        duration_s=time.monotonic() - start, missing_outputs=missing,
    )
