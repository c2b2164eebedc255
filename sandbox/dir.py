"""The `dir` sandbox (SPEC §5): a fresh directory holding only the declared inputs.

The action runs at that directory's root with HOME and TMPDIR inside it and
an environment reduced to PATH, LANG, TZ, SOURCE_DATE_EPOCH and what it
declares. It does not stop a process from reading absolute paths; `linux`
adds namespaces for that.
"""

from __future__ import annotations

import os

from mb.sandbox.base import (
    BASE_ENV, ProcessRegistry, SandboxRequest, SandboxResult, prepare_root, run_process,
)


class DirSandbox:
    name = "dir"
    #: Its results depend only on what the action key covers (SPEC §4), so the
    #: executor caches them (the `none` sandbox's do not).
    caches_results = True

    def __init__(self, registry: ProcessRegistry) -> None:
        self.registry = registry

    def environment(self, request: SandboxRequest) -> dict[str, str]:
        home = request.root + os.sep + ".home"
        tmp = request.root + os.sep + ".tmp"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **BASE_ENV}
        env.update(request.env)
        env["HOME"] = home
        env["TMPDIR"] = tmp
        return env

    def run(self, request: SandboxRequest) -> SandboxResult:
        prepare_root(request.root, request.inputs, request.outputs,
                     cache_dir=request.cache_dir and request.cache_dir + os.sep)
        env = self.environment(request)
        return run_process(request, request.root, env, self.registry)
