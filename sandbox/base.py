"""What every sandbox does: stage declared inputs, run, report which outputs appeared.

A `SandboxRequest` is fully resolved (absolute input sources, argv with tool
paths), so sandboxes know nothing about labels, rules or the cache.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import ClassVar, Protocol

import attrs

from mb.fsutil import discard, remove_tree, spread_subdirectories
from mb.sandbox.namespace import cannot_run_status

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
    #: The workspace root; only the `none` sandbox looks at it (its root mirrors the workspace).
    workspace: str = ""
    #: The environment holds secrets (`secret_env`): nothing the process wrote to
    #: stderr stays on disk once its tail is read (the executor masks the tail).
    secret: bool = False
    #: Absolute paths outside the root the action reads besides its inputs (its tools;
    #: for a Python action the interpreter, mb and its spec file), and the ones it
    #: writes (a Python action's state directory). Only the `linux` sandbox looks
    #: at them: it hides everything else (docs/decisions/0009).
    readable: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()


@attrs.frozen
class SandboxResult:
    exit_code: int
    timed_out: bool
    stderr_tail: str
    duration_s: float
    missing_outputs: tuple[str, ...]


class Sandbox(Protocol):
    """What the executor needs of a sandbox (`dir`, `none`, `linux`; `make_sandbox`).

    A Protocol, not a base class: the three share helpers (`prepare_root`,
    `run_process`), not behaviour, and `linux` extends `dir` by inheritance.
    """

    #: The `--sandbox` mode it implements; `none` hands actions the host's whole
    #: environment, so the executor masks every provider's key in its messages.
    name: ClassVar[str]
    #: Whether results depend only on what the action key covers (SPEC §4), so the
    #: executor may look them up and store them (`none`: no).
    caches_results: ClassVar[bool]
    #: The running processes (stopped on Ctrl-C) and the workers' turns.
    registry: ProcessRegistry

    def run(self, request: SandboxRequest) -> SandboxResult:
        """Stage the request's inputs in its root, run its argv there, and report."""
        ...


class WorkerTurns:
    """One worker thread at a time does the Python work of an action, around its process.

    Two worker threads staging, collecting and storing at the same moment do
    not run in parallel: each system call (every `os` function) gives the
    GIL away, the other thread takes it, and the first one waits to get it
    back, so they hand it over at every call, each time a futex wake-up and a
    context switch (a fifth of the workers' CPU in a profile of a clean
    wide1k build). The scheduler takes the turn to key an action and the
    executor to run one (`with turns:`); each steps aside while the action's
    process runs (`run_process`) or a large file is hashed, work that holds
    no GIL. The turn then passes once a phase instead of once a system call:
    wide1k clean 4-8% faster, and 5-6.5% more with keying in turn; chain
    8-10%; media unchanged (docs/performance.md, eleventh session,
    decisions/0011). Stepping aside is a no-op for a thread that does not
    hold the turn (a sandbox used on its own, in tests and tools).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        self._holder = threading.get_ident()

    def __exit__(self, *exc_info: object) -> None:
        self._holder = None
        self._lock.release()

    @contextlib.contextmanager
    def stepped_aside(self) -> Iterator[None]:
        """Let another worker have the turn until the block ends (for work without Python)."""
        if self._holder != threading.get_ident():
            yield
            return
        self.__exit__()
        try:
            yield
        finally:
            self.__enter__()


class ProcessRegistry:
    """Running child process groups, so Ctrl-C can stop every one of them; and the
    turns of the worker threads that start them (`WorkerTurns`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self.stopping = False
        self.turns = WorkerTurns()

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
#: A file in the sandbox parent while a build uses its folder (`sandbox_folder`,
#: `release_sandbox_folder`); found by the next build only if that build died.
IN_USE = "in-use"
#: Folders of a build that died are renamed to this prefix before they are removed.
RETIRED_PREFIX = "retired-"
#: How long to wait for the processes of a dead build to exit once killed.
RETIRE_WAIT_S = 2.0


def sandbox_folder(parent: str, after_death: Callable[[], None] | None = None) -> str:
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

    The build calling this holds the workspace lock, and marks the folder in
    use (`IN_USE`, one file) until `release_sandbox_folder`, once every
    process it started has ended. A mark found here was left by a build that
    died (SIGKILL, a crash), whose actions may still run and write into the
    sandbox directories (decisions/0007): those folders are not reused but
    retired (`_retire`) and a new one is made. Each call costs one listing
    and one small file; nothing is added per action. `after_death` is called
    then too, for what else a dead build may have left (mb-out/'s temporary files).
    """
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        names = []
    if IN_USE in names:  # the last build using these folders did not end: it died
        _retire(parent, [name for name in names if name.startswith("s-")])
        names = os.listdir(parent)
        if after_death is not None:
            after_death()
    current = sorted(name for name in names if name.startswith("s-"))
    chosen = current[0] if current else ""
    for name in names:  # retired folders, the sandboxes of earlier versions
        if name != chosen and name != IN_USE:
            remove_tree(os.path.join(parent, name))
    if not chosen:
        chosen = os.path.basename(_new_folder(parent))
    folder = os.path.join(parent, chosen)
    _write_in_use(parent)
    return folder


def release_sandbox_folder(folder: str) -> None:
    """The build that got `folder` from `sandbox_folder` has ended, and with it every
    process it started: the next build may reuse the folder. Call it last, after
    the sandbox directories are emptied; a build that never calls it (killed, or
    failing before) leaves the next one a mark that makes it retire the folder."""
    discard(os.path.join(os.path.dirname(folder), IN_USE))


def _write_in_use(parent: str) -> None:
    """Mark the sandbox folders in use by this process (its pid, for whoever looks)."""
    fd = os.open(os.path.join(parent, IN_USE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                 | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, b"%d\n" % os.getpid())
    finally:
        os.close(fd)


def _new_folder(parent: str) -> str:
    """A new, probed sandbox folder in `parent` (see `sandbox_folder`)."""
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


def _retire(parent: str, names: Sequence[str]) -> None:
    """Take the sandbox folders of a build that died out of use, and stop what still runs in them.

    Each is renamed first: a process still running there keeps its cwd (the
    same inode, under the new name) and writes where no later action looks,
    and an absolute path it still holds into the old name finds nothing.
    Then the process groups of the processes whose cwd is inside are killed
    (`kill_processes_in`); `sandbox_folder` removes the folders afterwards.
    """
    retired = []
    for name in names:
        target = os.path.join(parent, RETIRED_PREFIX + os.urandom(4).hex())
        try:
            os.rename(os.path.join(parent, name), target)
        except OSError:
            continue
        retired.append(target)
    if retired:
        kill_processes_in(retired)


def kill_processes_in(folders: Sequence[str] | None,
                      among: Sequence[int] | None = None) -> list[int]:
    """SIGKILL the process group of every process whose cwd is inside `folders`
    (anywhere, for None) of the processes `among` (of all, for None); returns
    the pids found. Best effort, Linux only (`/proc`), and waits up to
    RETIRE_WAIT_S for them to exit.

    Actions run in a session of their own (`start_new_session`), so they have
    no controlling terminal and their group is theirs alone. A process with a
    terminal (someone's shell `cd`-ed into the folder), or in this process's
    own group or session, is left alone.
    """
    prefixes = None if folders is None else tuple(folder + os.sep for folder in folders)
    own_group, own_session = os.getpgrp(), os.getsid(0)
    if among is not None:  # only these (`orphans`): no scan of every process
        pids = [str(pid) for pid in among]
    else:
        try:
            pids = [name for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return []
    found: list[int] = []
    groups: set[int] = set()
    for pid in pids:
        try:
            if prefixes is not None and not (
                    os.readlink(f"/proc/{pid}/cwd") + os.sep).startswith(prefixes):
                continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            group, session, tty = int(fields[2]), int(fields[3]), int(fields[4])
        except (OSError, ValueError, IndexError):
            continue  # gone, or not ours to look at
        if tty != 0 or group in (own_group, 0, 1) or session == own_session:
            continue
        found.append(int(pid))
        groups.add(group)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    _wait_for_exit(found, RETIRE_WAIT_S)
    return found


def adopt_orphans() -> None:
    """Make this process the reaper of its descendants' orphans (Linux `prctl`).

    A process an action detaches from its group (`setsid cmd &`) outlives the
    action; reparented to init, mb could only find it by scanning every
    process. Adopted, it is a child of mb's main thread, so after each action
    one small file (`orphans`) says whether there is anything to look at.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def orphans() -> list[int]:
    """Processes mb adopted (`adopt_orphans`): children of its main thread, which
    starts no process of its own while actions run. Zombies among them are reaped."""
    global _CHILDREN_FILE
    if _CHILDREN_FILE is None:
        _CHILDREN_FILE = f"/proc/self/task/{threading.main_thread().native_id}/children"
    try:  # plain `os` calls: three system calls (a file object makes nine), per action
        fd = os.open(_CHILDREN_FILE, os.O_RDONLY | os.O_CLOEXEC)
        try:
            listed = os.read(fd, 65536)
        finally:
            os.close(fd)
    except OSError:
        return []
    if not listed:
        return []
    pids = [int(pid) for pid in listed.split()]
    alive = []
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                alive.append(pid)
        except ChildProcessError:
            pass
    return alive


def stop_orphans_in(root: str) -> None:
    """Kill what an ended action detached but left running in its directory `root`
    (and reap it): it would write into the next action's files there."""
    _kill_and_reap(orphans(), [root])


def stop_orphans(keep: Collection[int] = ()) -> None:
    """Kill (and reap) every process mb adopted and still has, but `keep`: what
    the build's actions detached and left running, wherever it moved to.

    Called when the actions are over, so none of it belongs to a running
    action. `keep` holds the main thread's children from before the build (a
    program embedding mb may have started processes of its own).

    A process's children are adopted when it exits, not when it is killed: a
    detached grandchild whose parent was still dying from its group's kill
    at the first look is found by the next one. So the look is repeated until
    it finds no process it has not stopped already.
    """
    stopped: set[int] = set(keep)
    while True:
        found = [pid for pid in orphans() if pid not in stopped]
        if not found:
            return
        stopped.update(found)
        _kill_and_reap(found, None)


def _kill_and_reap(adopted: Sequence[int], folders: Sequence[str] | None) -> None:
    """`kill_processes_in(folders, among=adopted)`, then reap what it killed: adopted
    processes are this process's children, and would stay zombies."""
    if adopted:
        for pid in kill_processes_in(folders, among=adopted):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


#: The main thread's children in /proc (`orphans`); found once.
_CHILDREN_FILE: str | None = None
#: prctl(2) option: orphaned descendants are reparented to this process, not init.
_PR_SET_CHILD_SUBREAPER = 36


def _wait_for_exit(pids: Sequence[int], timeout: float) -> None:
    """Wait until every one of `pids` has exited (a zombie counts), at most `timeout` s."""
    import select

    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except (OSError, AttributeError):  # gone already, or no pidfds here
            pass
    deadline = time.monotonic() + timeout
    try:
        while fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(fds, [], [], left)
            for fd in ready:
                fds.remove(fd)
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


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
                 link: bool = True, cache_dir: str = "\0", scratch: bool = True) -> None:
    """Make `root` hold exactly the declared inputs, empty output directories, .home and .tmp.

    `scratch=False` leaves out .home and .tmp (and expects `root` to exist).

    Inputs from the cache (`cache_dir`, read-only blobs) are hard-linked;
    workspace sources are symlinked (a hard link would change the source's
    ctime, its link count, which the stat cache reads as an edit).

    Sandbox directories are reused by the next action of the same worker,
    and nothing of mb's that a later action can reuse is deleted: on a file system
    without a journal (ext4 here), allocating an inode scans past every
    inode freed in the last minutes, so deleting and re-creating a symlink
    per action makes a build quadratic. A staged symlink the next action
    does not need is moved into `<root>.stash/` instead, and moved back when
    an action needs the same input again. Only the symlinks this function
    staged are stashed (`_STAGED_LINKS`); one the action made is removed.
    The stash is flat (`_stash_name`): a path through a stashed symlink to a
    directory would lead out of it. Every other file a previous action left
    is removed, and so is every directory this action does not need,
    so what the action sees is the same as in a fresh directory.
    """
    # Paths are built with string operations, not os.path: the relative
    # paths are normalised already (labels), and os.path's functions (24 calls
    # an action) took about a tenth of a worker's CPU in a profile.
    stash = root + ".stash"
    prefix = root + "/"
    needed = {".home", ".tmp"} if scratch else set()  # directories, relative to root
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
    staged_before = _STAGED_LINKS.get(root, {})
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
            else:
                target = os.readlink(path)
                if symlinked.get(path) == target:
                    in_place.add(path)
                elif staged_before.get(path[len(prefix):]) == target:
                    _stash_link(path, stash + "/" + _stash_name(path[len(prefix):]))
                else:  # the action's own: dropped, name and target (SPEC §5)
                    os.unlink(path)
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
            if not _unstash_link(stash + "/" + _stash_name(rel), source, target):
                os.symlink(source, target)
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    _STAGED_LINKS[root] = {rel: source for rel, source in inputs.items()
                           if prefix + rel in symlinked}


#: root -> the symlinks `prepare_root` staged there last (relative path -> target).
#: Only those are stashed for reuse: a symlink an action made is its own output,
#: dropped like any other file it wrote (its name or target may hold anything).
#: One thread uses a root at a time.
_STAGED_LINKS: dict[str, dict[str, str]] = {}


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


def _stash_name(rel: str) -> str:
    """The name of a stashed symlink: its relative path as one file name (`/` as `%2F`).

    Never a path with directories: a stashed symlink may point to a directory
    (the `none` sandbox's forest, or a source that became a directory), and
    renaming `a/b` into `<stash>/a/b` through a symlink `<stash>/a` would
    replace the real file `a/b` in the workspace.
    """
    return rel.replace("%", "%25").replace("/", "%2F")


def _stash_link(path: str, stashed: str) -> None:
    """Move a staged symlink out of the sandbox, keeping its inode for a later action."""
    try:
        os.replace(path, stashed)
    except FileNotFoundError:  # no stash yet
        os.makedirs(os.path.dirname(stashed), exist_ok=True)
        os.replace(path, stashed)
    except OSError:  # e.g. a directory of that name (a stash of an earlier version)
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


def _whole_lines(data: bytes, cut: bool) -> list[str]:
    """The lines of the end of a stderr file; when the start was `cut` off, without the
    piece of a line it begins with. A piece of a line may be a piece of a secret,
    which the executor's mask (whole values) would not recognise; a window with no
    line break at all loses its first SECRET_CUT_CHARS characters instead."""
    if cut:
        newline = data.find(b"\n")
        data = data[newline + 1:] if newline >= 0 else b"..." + data[SECRET_CUT_CHARS:]
    return data.decode("utf-8", "replace").splitlines()


#: What a stderr tail without line breaks loses at its start (`_whole_lines`).
SECRET_CUT_CHARS = 512


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
    # Owner-only: until it is read and (for a secret-holding action) emptied, it holds
    # what the process wrote, unmasked, and a killed build leaves it behind.
    stderr = os.open(request.root + ".stderr",
                     os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
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
        # The process runs, and this worker waits, outside its turn (WorkerTurns).
        with registry.turns.stepped_aside():
            try:
                proc = subprocess.Popen(
                    list(request.argv), executable=_executable(request.argv[0], env.get("PATH")),
                    cwd=cwd, env=dict(env), stdin=stdin,
                    stdout=stdout, stderr=stderr, start_new_session=True,
                )
            except OSError as exc:  # what bash says and does for a program it cannot run
                return SandboxResult(
                    exit_code=cannot_run_status(exc), timed_out=False,
                    duration_s=time.monotonic() - start,
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
        # The leader is gone; stop anything it left behind in its group, and what it
        # detached from the group (`setsid ... &`) but left in its directory, which
        # the next action of this slot would otherwise share with it.
        kill_group(proc)
        stop_orphans_in(request.root)
        size = os.fstat(stderr).st_size
        end = (os.pread(stderr, STDERR_TAIL_BYTES, max(0, size - STDERR_TAIL_BYTES))
               if size else b"")  # most actions write nothing there: no system call
        if request.secret:
            os.ftruncate(stderr, 0)
    finally:
        os.close(stderr)
    tail = _whole_lines(end, cut=size > STDERR_TAIL_BYTES)[-STDERR_TAIL_LINES:]
    missing = tuple(
        rel for rel in request.outputs if not os.path.isfile(cwd + os.sep + rel)
    )
    return SandboxResult(
        exit_code=proc.returncode, timed_out=timed_out, stderr_tail="\n".join(tail),
        duration_s=time.monotonic() - start, missing_outputs=missing,
    )
