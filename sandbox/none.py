"""The `none` sandbox, for debugging (SPEC §5: "runs in place").

The action sees the workspace as it is, with the host's environment plus
what it declares, so a command that reads an undeclared file works here and
fails under `dir`: that difference is what this mode is for. Its outputs
must still not land in the source tree, so it runs in a *symlink forest* of
the workspace (like Bazel's execroot), made by `workspace_forest`:

- every entry of the workspace root except `.mb` and `mb-out` is a symlink
  to the real one, at its workspace-relative path;
- a directory on the path to a declared output, or to an input that does
  not come from the workspace (a blob of the cache, a file of `mb-out/`),
  is a real directory instead, holding symlinks to the real directory's
  other entries; the output is written there, the input is a symlink to
  where it comes from.

What the action writes into a symlinked directory goes to the workspace
(it runs in place); what it writes anywhere else in the forest is dropped,
as in every sandbox. The host environment and undeclared files are not in
the action key, so results of this mode are never read from or written to
the cache (`caches_results`; docs/decisions/0007).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from mb.sandbox.base import (
    ProcessRegistry, SandboxRequest, SandboxResult, prepare_root, run_process,
)

#: Entries of the workspace root the forest leaves out: mb's state and outputs.
HIDDEN = frozenset({".mb", "mb-out"})


class NoSandbox:
    name = "none"
    #: Results depend on what the key does not cover (host environment, undeclared
    #: files): the executor must neither look them up nor store them.
    caches_results = False

    def __init__(self, registry: ProcessRegistry) -> None:
        self.registry = registry

    def run(self, request: SandboxRequest) -> SandboxResult:
        workspace = request.workspace or workspace_of(request.root)
        links = workspace_forest(workspace, request.inputs, request.outputs)
        os.makedirs(request.root, exist_ok=True)
        prepare_root(request.root, links, request.outputs, link=False, scratch=False)
        env = dict(os.environ)
        env.update(request.env)
        return run_process(request, request.root, env, self.registry)


def workspace_of(root: str) -> str:
    """The workspace of a sandbox directory `<workspace>/.mb/sandbox/<folder>/<slot>`
    (for a request that does not name it)."""
    parts = root.rsplit(os.sep, 4)
    if len(parts) != 5 or parts[1:3] != [".mb", "sandbox"] or not parts[0]:
        raise ValueError(f"cannot tell the workspace of sandbox directory {root}")
    return parts[0]


def workspace_forest(workspace: str, inputs: Mapping[str, str],
                     outputs: Sequence[str]) -> dict[str, str]:
    """The symlinks of the forest: workspace-relative path -> what it points to.

    Directories not named are real directories (the parents of the paths
    named and of `outputs`), as `prepare_root` makes them; declared outputs
    are not named, so nothing in the forest leads from them to a workspace file.
    """
    prefix = workspace + os.sep
    staged = {rel: source for rel, source in inputs.items() if source != prefix + rel}
    real = {""}  # directories made real, relative to the root ("" is the root)
    for rel in (*staged, *outputs):
        parent = rel.rpartition("/")[0]
        while parent not in real:
            real.add(parent)
            parent = parent.rpartition("/")[0]
    taken = real.union(staged, outputs)
    links = dict(staged)
    for directory in real:
        try:
            names = os.listdir(prefix + directory if directory else workspace)
        except (FileNotFoundError, NotADirectoryError):
            continue  # only in the sandbox (an output's new directory)
        under = directory + "/" if directory else ""
        for name in names:
            rel = under + name
            if rel not in taken and not (not directory and name in HIDDEN):
                links[rel] = prefix + rel
    return links
