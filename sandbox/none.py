"""The `none` sandbox, for debugging: inputs are symlinks and the environment is kept.

It still runs in a directory of its own (outputs must be collected from
somewhere), but nothing is scrubbed, so an action that works here and fails
under `dir` reads something it did not declare.
"""

from __future__ import annotations

import os

from mb.sandbox.base import (
    ProcessRegistry, SandboxRequest, SandboxResult, prepare_root, run_process,
)


class NoSandbox:
    name = "none"

    def __init__(self, registry: ProcessRegistry) -> None:
        self.registry = registry

    def run(self, request: SandboxRequest) -> SandboxResult:
        prepare_root(request.root, request.inputs, request.outputs, link=False)
        env = dict(os.environ)
        env.update(request.env)
        return run_process(request, request.root, env, self.registry)
