"""The `linux` sandbox: `dir` plus a network namespace (unless `requires-network`).

Uses util-linux `unshare --user --map-root-user --net` when the kernel lets
an unprivileged process create namespaces; where it cannot, mb says so once
and falls back to `dir` (SPEC §5).
"""

from __future__ import annotations

import shutil
import subprocess

import attrs

from mb.sandbox.base import SandboxRequest
from mb.sandbox.dir import DirSandbox


def namespaces_available() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        probe = subprocess.run([unshare, "--user", "--map-root-user", "--net", "true"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class LinuxSandbox(DirSandbox):
    name = "linux"

    def wrap(self, request: SandboxRequest) -> SandboxRequest:
        if request.network:
            return request
        unshare = shutil.which("unshare") or "unshare"
        argv = (unshare, "--user", "--map-root-user", "--net", "--", *request.argv)
        return attrs.evolve(request, argv=argv)
