"""What every sandbox does: stage declared inputs, run, report which outputs appeared.

A `SandboxRequest` is fully resolved (absolute input sources, argv with tool
paths), so sandboxes know nothing about labels, rules or the cache.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

import attrs

from mb.fsutil import remove_tree, spread_subdirectories

#: The environment every action starts from (SPEC §5), plus what it declares.
BASE_ENV: Mapping[str, str] = {"LANG": "C.UTF-8", "TZ": "UTC", "SOURCE_DATE_EPOCH": "0"}
STDERR_TAIL_LINES = 20
STDERR_TAIL_BYTES = 8192


@attrs.frozen
class SandboxRequest:
    root: str  # the fresh directory to create and run in
    inputs: Mapping[str, str]  # workspace-relative path -> absolute file to stage
    outputs: tuple[str, ...]
    argv: tuple[str, ...]
    env: Mapping[str, str]
    timeout: float | None
    network: bool
    cache_dir: str = ""  # blobs under it are hard-linked into the sandbox; sources symlinked
    stdin: str | None = None  # relative to the root, as `< file` in a shell
    stdout: str | None = None  # relative to the root, as `> file`


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


#: Tries at placing a new sandbox folder, and what makes one good (see `sandbox_folder`).
PLACEMENT_TRIES = 4
PROBE_LINKS = 16
PROBE_SLOW_S = 30e-6


def sandbox_folder(parent: str) -> str:
    """The folder holding the sandbox directories: `parent/<random name>`, made once.

    On ext4 without a journal (this project's build machines), allocating an
    inode scans every inode of its block group freed in the last minutes, so
    a build that follows the deletion of a previous build's state pays for
    every file that state held (decisions/0005). Files go to their
    directory's block group. `parent` is marked +T (a hint to ext4's Orlov
    allocator that its subdirectories are unrelated), so the randomly named
    folder under it, and every file an action creates or stages, lands in a
    block group chosen afresh. Orlov prefers groups with many free inodes
    and few directories, which is just what a group looks like right after
    `rm -rf .mb`; so a new folder is probed (`_link_cost`), and one in a
    group full of recent deletions is replaced by another, up to
    PLACEMENT_TRIES times. Elsewhere the flag is ignored, the probe passes
    and this is just a folder. It is kept, like the sandbox directories in
    it, until `.mb/` is removed.
    """
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        names = []
    existing = sorted(name for name in names if name.startswith("s-"))
    if existing:
        return os.path.join(parent, existing[0])
    for name in names:  # the sandboxes of earlier versions, directly in `parent`
        remove_tree(os.path.join(parent, name))
    os.makedirs(parent, exist_ok=True)
    spread_subdirectories(parent)
    tried: list[tuple[float, str]] = []
    for _ in range(PLACEMENT_TRIES):
        folder = os.path.join(parent, "s-" + os.urandom(4).hex())
        os.makedirs(folder, exist_ok=True)
        tried.append((_link_cost(folder), folder))
        if tried[-1][0] < PROBE_SLOW_S:
            break
    chosen = min(tried)[1]
    for _cost, folder in tried:
        if folder != chosen:
            remove_tree(folder)
    return chosen


def _link_cost(folder: str) -> float:
    """Seconds the median of PROBE_LINKS symlinks took to create in `folder`.

    A symlink is the smallest file there is, so its time is mostly the inode
    allocation: a median of 11-15 us in a clean block group, 45 us and more
    in one where a build's state was just deleted, growing as the scan gets
    longer (measured; decisions/0005). The links are removed again. Where
    symlinks cannot be made, 0: the probe has nothing to say.
    """
    probe = os.path.join(folder, ".probe")
    times = []
    try:
        os.mkdir(probe)
        for i in range(PROBE_LINKS):
            start = time.perf_counter()
            os.symlink(".", os.path.join(probe, str(i)))
            times.append(time.perf_counter() - start)
    except OSError:  # no symlinks here: nothing to learn, and staging will say why
        return 0.0
    finally:
        remove_tree(probe)
    return sorted(times)[len(times) // 2]


def prepare_root(root: str, inputs: Mapping[str, str], outputs: Sequence[str],
                 link: bool = True, cache_dir: str = "\0") -> None:
    """Make `root` hold exactly the declared inputs, empty output directories, .home and .tmp.

    Inputs from the cache (`cache_dir`, read-only blobs) are hard-linked;
    workspace sources are symlinked (a hard link would change the source's
    ctime, its link count, which the stat cache reads as an edit).

    Sandbox directories are reused by the next action of the same worker,
    and nothing a later action can reuse is deleted: on a file system
    without a journal (ext4 here), allocating an inode scans past every
    inode freed in the last minutes, so deleting and re-creating a symlink
    per action makes a build quadratic. A staged symlink the next action
    does not need is moved into `<root>.stash/` instead, and moved back when
    an action needs the same input again. Every other file a previous action
    left is removed, and so is every directory this action does not need,
    so what the action sees is the same as in a fresh directory.
    """
    # Paths are built with string operations, not os.path: the relative
    # paths are normalised already (labels), and os.path's functions (24 calls
    # an action) took about a tenth of a worker's CPU in a profile.
    stash = root + ".stash"
    prefix = root + "/"
    needed = {".home", ".tmp"}  # directories the action needs, relative to root
    for rel in (*inputs, *outputs):
        parent = rel.rpartition("/")[0]
        while parent and parent not in needed:
            needed.add(parent)
            parent = parent.rpartition("/")[0]
    symlinked = {
        prefix + rel: source for rel, source in inputs.items()
        if not link or not cache_dir or not source.startswith(cache_dir)
    }
    in_place: set[str] = set()
    found_dirs: list[str] = []  # relative; parents before their children
    pending = [root]
    while pending:
        for entry in _entries(pending.pop()):
            path = entry.path
            if entry.is_dir(follow_symlinks=False):
                found_dirs.append(path[len(prefix):])
                pending.append(path)
            elif not entry.is_symlink():
                os.unlink(path)  # a hard-linked blob (its inode stays) or an action's file
            elif symlinked.get(path) == os.readlink(path):
                in_place.add(path)
            else:
                _stash_link(path, stash + path[len(root):])
    for rel in reversed(found_dirs):
        if rel not in needed:
            os.chmod(prefix + rel, 0o755)
            os.rmdir(prefix + rel)
    for rel in sorted(needed.difference(found_dirs)):  # the rest were just listed
        os.makedirs(prefix + rel, exist_ok=True)
    for rel, source in inputs.items():
        target = prefix + rel
        if target in in_place:
            continue
        if target in symlinked:
            if not _unstash_link(stash + "/" + rel, source, target):
                os.symlink(source, target)
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def _entries(directory: str) -> list[os.DirEntry[str]]:
    """A directory's entries (none if it does not exist); one an action made
    unreadable is made readable first."""
    for attempt in (1, 2):
        try:
            with os.scandir(directory) as listing:
                return list(listing)
        except FileNotFoundError:
            return []
        except PermissionError:
            if attempt == 2:
                raise
            os.chmod(directory, 0o755)
    return []


def _stash_link(path: str, stashed: str) -> None:
    """Move a staged symlink out of the sandbox, keeping its inode for a later action."""
    try:
        os.replace(path, stashed)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(stashed), exist_ok=True)
        os.replace(path, stashed)
    except OSError:  # e.g. a directory of that name in the stash
        os.unlink(path)


def _unstash_link(stashed: str, source: str, target: str) -> bool:
    """Move a stashed symlink to `source` back to `target`; False if there is none."""
    try:
        if os.readlink(stashed) != source:
            return False
        os.rename(stashed, target)
    except OSError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _executable(program: str, path: str | None) -> str:
    """`program` looked up on the action's PATH once per build, not at every spawn.

    exec*p tries each PATH entry in turn (here nine, eight failing execve
    calls per action); the result is the same file, since one build sees one
    PATH. Not found: the name itself, so Popen reports it as before.
    """
    if os.sep in program:
        return program
    return shutil.which(program, path=path) or program


def forget_programs() -> None:
    """Start a build with no program looked up yet (`mb watch` runs many in one process)."""
    _executable.cache_clear()


#: Every action's stdin: one /dev/null for the process (Popen's DEVNULL opens and
#: closes one per spawn; see `run_process` on system calls).
_DEVNULL_FD = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


def run_process(request: SandboxRequest, cwd: str, env: Mapping[str, str],
                registry: ProcessRegistry) -> SandboxResult:
    """Run argv in its own process group; kill the whole group on timeout.

    Files are handled with plain `os` calls: a worker thread gives the GIL
    away at every system call and may wait to get it back, and a Python file
    object makes four calls to open and five to read where these make one
    each (docs/performance.md).
    """
    start = time.monotonic()
    # Beside the root, not in it: the action cannot see it, and the same inode
    # is truncated for every action (see prepare_root on inode churn).
    stderr = os.open(request.root + ".stderr",
                     os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        redirected: list[int] = []  # closed once the child has its copies
        stdin, stdout = _DEVNULL_FD, stderr
        try:
            if request.stdin:
                stdin = os.open(os.path.join(cwd, request.stdin), os.O_RDONLY | os.O_CLOEXEC)
                redirected.append(stdin)
            if request.stdout:
                stdout = os.open(os.path.join(cwd, request.stdout),
                                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
                redirected.append(stdout)
        except OSError as exc:  # what bash says and does for a failed redirection
            for fd in redirected:
                os.close(fd)
            return SandboxResult(
                exit_code=1, timed_out=False, duration_s=time.monotonic() - start,
                stderr_tail=f"{exc.filename and os.path.relpath(exc.filename, cwd)}: "
                            f"{exc.strerror}",
                missing_outputs=tuple(request.outputs))
        try:
            proc = subprocess.Popen(
                list(request.argv), executable=_executable(request.argv[0], env.get("PATH")),
                cwd=cwd, env=dict(env), stdin=stdin,
                stdout=stdout, stderr=stderr, start_new_session=True,
            )
        except (FileNotFoundError, PermissionError) as exc:
            return SandboxResult(
                exit_code=127, timed_out=False, duration_s=time.monotonic() - start,
                stderr_tail=f"cannot run {request.argv[0]!r}: {exc.strerror}",
                missing_outputs=tuple(request.outputs))
        finally:
            for fd in redirected:
                os.close(fd)
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
        size = os.fstat(stderr).st_size
        end = os.pread(stderr, STDERR_TAIL_BYTES, max(0, size - STDERR_TAIL_BYTES))
    finally:
        os.close(stderr)
    tail = end.decode("utf-8", "replace").splitlines()[-STDERR_TAIL_LINES:]
    missing = tuple(
        rel for rel in request.outputs if not os.path.isfile(cwd + os.sep + rel)
    )
    return SandboxResult(
        exit_code=proc.returncode, timed_out=timed_out, stderr_tail="\n".join(tail),
        duration_s=time.monotonic() - start, missing_outputs=missing,
    )
