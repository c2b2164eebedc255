"""The `linux` sandbox: `dir` in namespaces that hide the rest of the file system and the network.

Each action runs through the launcher `mb.sandbox.namespace` (one short
Python process, stdlib only), which gives it a root of its own: the system
directories and its declared inputs and tools read-only, its sandbox
directory read-write, a small /dev, an empty /tmp, its own /proc, and no
network unless the action is tagged `requires-network`
(docs/decisions/0009). Where the kernel refuses any of that, mb says so
once and falls back to `dir` (SPEC §5; `namespaces_available`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import types

import attrs

from mb.sandbox.base import SandboxRequest, SandboxResult, _executable, prepare_root, run_process
from mb.sandbox.dir import DirSandbox

#: The launcher's folder; `BOOTSTRAP` imports it from there, so its bytecode is cached
#: (run as a script, it would be compiled at every start: 5 ms).
LAUNCHER_DIR = os.path.dirname(os.path.abspath(__file__))
BOOTSTRAP = ("import sys; sys.path.append(sys.argv.pop(1)); import namespace; "
             "namespace.run(sys.argv[1:])")
#: The interpreter that runs the launcher: the real file behind a virtual
#: environment's link (starting through the link costs 2 ms more, reading
#: pyvenv.cfg; the launcher needs the standard library only).
LAUNCHER_PYTHON = os.path.realpath(sys.executable)
#: The launcher's own mount point, beside the sandbox directory (see `LinuxSandbox.run`).
MOUNT_POINT_SUFFIX = ".mnt"


class LinuxSandbox(DirSandbox):
    name = "linux"

    def run(self, request: SandboxRequest) -> SandboxResult:
        """Stage as `dir` does, but every input as a symlink (blobs too: a hard-linked
        blob could be chmod-ed and written; the launcher binds each link's target
        read-only), and run the action through the launcher.

        The launcher's new root is mounted on `<root>.mnt`, an empty directory
        made once and kept: the mount exists only in the action's mount
        namespace and goes with it, so the host never sees anything mounted,
        and a build killed at any point leaves one empty directory. The
        writable paths the request names (a Python action's state directory)
        are made if missing: a bind needs something to bind.
        """
        prepare_root(request.root, request.inputs, request.outputs)
        for directory in (request.root + MOUNT_POINT_SUFFIX, *request.writable):
            os.makedirs(directory, exist_ok=True)
        env = self.environment(request)
        program = _executable(request.argv[0], env.get("PATH"))
        wrapped = attrs.evolve(request, argv=launcher_argv(request, program))
        return run_process(wrapped, request.root, env, self.registry)


def launcher_argv(request: SandboxRequest, program: str) -> tuple[str, ...]:
    """The command that runs `request` in namespaces; `program` is its argv[0] looked up
    on the action's PATH (mb's own lookup, as in the `dir` sandbox).

    Read-only: each input's source (what its symlink in the root points
    to), the tools, the program, and what the request lists as readable.
    The launcher leaves out what is visible anyway (the system directories,
    paths under another one).
    """
    argv = [*launcher_prefix(), "--new-root", request.root + MOUNT_POINT_SUFFIX,
            "--chdir", request.root, "--rw", request.root]
    for path in request.writable:
        argv += ("--rw", path)
    readable = {*request.inputs.values(), *request.readable}
    if os.path.isabs(program):
        readable.add(program)
    for path in sorted(readable):
        argv += ("--ro", path)
    if request.network:
        argv.append("--network")
    return (*argv, "--exec", program, "--", *request.argv)


def launcher_prefix() -> tuple[str, ...]:
    """The launcher's command, before its options."""
    return (LAUNCHER_PYTHON, "-I", "-S", "-c", BOOTSTRAP, LAUNCHER_DIR)


@functools.cache
def namespaces_available() -> bool:
    """Whether the launcher can set a sandbox up here; probed once per process.

    The probe goes through every step an action's launcher takes (user,
    mount, PID and network namespaces, tmpfs, bind and read-only mounts, a
    new /proc, pivot_root) and runs `true`. Containers often refuse one of
    them. It has no sandbox folder yet, so it mounts its new root over
    /tmp: inside its own mount namespace, where that hides nothing it
    binds, and nothing is written anywhere.
    """
    true = shutil.which("true")
    if true is None:
        return False
    argv = (*launcher_prefix(), "--new-root", "/tmp", "--chdir", "/", "--exec", true, "--", "true")
    try:
        probe = subprocess.run(argv, cwd="/", capture_output=True, timeout=10, env={})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@functools.cache
def worker_paths(workspace: str) -> tuple[str, ...]:
    """What `python -m mb.sandbox.worker` reads outside its sandbox directory and spec:
    the interpreter's prefixes (a virtual environment's and the one it was
    made from), the import path, and the folders and files of modules
    imported from elsewhere (an editable install maps `mb` to the folders of
    its source tree). Computed once per process and workspace, after the
    plugins are loaded.

    Never the workspace or a folder holding it: `python -m mb` puts the
    current directory on the import path, and a whole workspace shown to
    every Python action would undo the sandbox (a virtual environment
    inside the workspace is still shown). A path inside another one is left
    out: most modules are under a prefix.
    """
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *sys.path}
    for module in list(sys.modules.values()):
        if isinstance(module, types.ModuleType):
            paths.update(str(entry) for entry in module.__dict__.get("__path__") or ())
            paths.add(str(module.__dict__.get("__file__") or ""))
    inside = workspace.rstrip(os.sep) + os.sep
    kept: list[str] = []
    for path in sorted((os.path.normpath(p) for p in paths if os.path.isabs(p)),
                       key=lambda p: p.split(os.sep)):
        if inside.startswith(path.rstrip(os.sep) + os.sep):
            continue  # the workspace, or a folder holding it
        if not kept or not (path + os.sep).startswith(kept[-1].rstrip(os.sep) + os.sep):
            kept.append(path)
    return tuple(kept)
