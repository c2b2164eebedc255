"""The `linux` sandbox's launcher: new namespaces, and a new root showing only what an action sees.

mb runs it once per action (`mb.sandbox.linux.launcher_argv`), with cwd at
the sandbox root and the action's environment, as

    python -I -S -c BOOTSTRAP --new-root DIR [--chdir DIR] [--rw PATH]...
                              [--ro PATH]... [--network] [--exec FILE] -- ARGV...

where BOOTSTRAP imports this file from its folder and calls `run` (run as a
script it would be compiled at every start). It uses the standard library
only and starts without `site`: it costs a Python start and `ctypes`, and
about 7 ms of its own (docs/decisions/0009). It

1. creates a user namespace mapping the caller's uid and gid to themselves
   (an action run by a user other than root loses every capability when it
   execs; for root the capability bounding set is emptied instead), a mount
   namespace, a PID namespace and, without `--network`, a network namespace
   holding only a loopback interface that is down;
2. forks twice: PID 1 of the new PID namespace (`_be_init`; the action's
   /proc shows no process outside it, so no `/proc/PID/root` leads out, and
   when it ends, with the launcher, everything the action started is
   killed), then the action's process;
3. in the action's process, mounts a tmpfs on `--new-root` (an empty
   directory; the mount exists in the new mount namespace only) and builds
   the action's file system there (`layout`): the system directories
   (`SYSTEM_DIRS`) and every `--ro` path read-only at its own absolute
   path, every `--rw` path read-write, a small /dev, an empty /tmp and a
   fresh /proc;
4. pivots into the new root, detaches the old one, enters `--chdir` (by
   default the directory it was started in; mb names it, because getcwd()
   resolves symlinks and the bind is at the path as given) and execs FILE
   (by default ARGV[0], looked up on PATH if it has no `/`) with ARGV and
   the environment unchanged;
5. waits for the action and exits as it did (the same status, or the same
   signal), once every process of the namespace has ended.

If the sandbox cannot be set up, one line `mb linux sandbox: STEP: REASON`
goes to stderr and the exit status is SETUP_FAILED; a program that cannot
be run gives `cannot run 'NAME': REASON` and bash's status for it (127 not
found, 126 not executable), as in the `dir` sandbox.
"""

from __future__ import annotations

import _signal
import os
import resource  # imported before the fork: the old root is gone when the parent needs it
import stat
import sys

TYPE_CHECKING = False  # typing and collections.abc cost more to import than the rest
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import NoReturn

#: Exit status of a launcher that could not set the sandbox up (the stderr line
#: starts with SETUP_PREFIX). 125, as `env`, `chroot` or `podman` use for
#: "the runner failed, not the command".
SETUP_FAILED = 125
SETUP_PREFIX = "mb linux sandbox:"
#: Exit statuses of a program that cannot be run, bash's: 127 when there is no
#: such file (or no interpreter for its `#!` line), 126 when it is there but
#: cannot be executed (no execute permission, a directory, an unknown format).
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126

#: Shown read-only at their own paths (a symlink stays a symlink, as `/bin` ->
#: `usr/bin` on a merged /usr): the programs and libraries every action may
#: use, /etc for their configuration (users, locale, DNS), /opt for software
#: installed beside the distribution's, /nix/store for NixOS's.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
               "/opt", "/nix/store")
#: Device files bound from the host's /dev into a tmpfs /dev: no disk, no
#: terminal of the host, no host /dev/shm.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEVICE_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))
#: With the network, the file this leads to is shown too (systemd-resolved links it
#: to /run/systemd/resolve/stub-resolv.conf, and /run is hidden).
RESOLV_CONF = "/etc/resolv.conf"
#: Under these the launcher makes everything itself: a path given there is not bound.
OWN_DIRS = ("/dev", "/proc")

# Kinds of `Mount` (a tmpfs's and a proc's are their file system types).
BIND = "bind"
TMPFS = "tmpfs"
PROC = "proc"
LINK = "symlink"

# <sched.h>, <sys/mount.h>, <linux/mount.h>, <sys/prctl.h>, <fcntl.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 2
MOUNT_ATTR_RDONLY = 0x1
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
PR_CAPBSET_DROP = 24
#: mount_setattr (Linux 5.12) has the same number on every architecture.
SYS_MOUNT_SETATTR = 442
#: pivot_root has no libc wrapper; its number by `uname -m`.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "loongarch64": 41,
                  "ppc64le": 203, "ppc64": 203, "s390x": 217, "i686": 217, "i386": 217,
                  "armv7l": 218, "armv8l": 218}


class SetupError(Exception):
    """A step of setting the sandbox up failed; `str()` is the line to report."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{SETUP_PREFIX} {step}: {reason}")


class _Step:
    """`with _Step(name):` reports an OSError of os as a failure of that step (os names
    the file, not what it was for)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, OSError):
            raise SetupError(self.name, exc.strerror or str(exc)) from None


class Plan:
    """What the command line asks for (`parse_args`)."""

    __slots__ = ("new_root", "cwd", "readonly", "writable", "network", "program", "argv")

    def __init__(self, new_root: str, cwd: str, readonly: tuple[str, ...],
                 writable: tuple[str, ...], network: bool, program: str,
                 argv: tuple[str, ...]) -> None:
        self.new_root = new_root
        self.cwd = cwd
        self.readonly = readonly
        self.writable = writable
        self.network = network
        self.program = program
        self.argv = argv


class Mount:
    """One piece of the new root, at `path` as the action sees it: a bind of `source` (a
    `directory` or a file), a tmpfs (`source` its options), a proc, or a symlink
    whose text is `source`."""

    __slots__ = ("kind", "path", "source", "readonly", "directory")

    def __init__(self, kind: str, path: str, source: str = "", readonly: bool = False,
                 directory: bool = True) -> None:
        self.kind = kind
        self.path = path
        self.source = source
        self.readonly = readonly
        self.directory = directory

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mount) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Mount{self._fields()!r}"

    def _fields(self) -> tuple[str, str, str, bool, bool]:
        return (self.kind, self.path, self.source, self.readonly, self.directory)


def parse_args(args: Sequence[str]) -> Plan:
    """The plan for `args` (the command line after the script); SetupError if it is wrong.

    Paths must be absolute: they are where the action sees them, whatever
    its cwd.
    """
    values: dict[str, list[str]] = {"--new-root": [], "--chdir": [], "--ro": [], "--rw": [],
                                    "--exec": []}
    network = False
    i = 0
    while i < len(args) and args[i] != "--":
        option = args[i]
        if option == "--network":
            network = True
            i += 1
            continue
        if option not in values or i + 1 >= len(args):
            raise SetupError("arguments", f"unknown option or missing value: {option!r}")
        values[option].append(args[i + 1])
        i += 2
    argv = tuple(args[i + 1:])
    if not argv:
        raise SetupError("arguments", "no command after '--'")
    if len(values["--new-root"]) != 1 or len(values["--exec"]) > 1 or len(values["--chdir"]) > 1:
        raise SetupError("arguments", "--new-root once, --chdir and --exec at most once")
    for path in (*values["--new-root"], *values["--chdir"], *values["--ro"], *values["--rw"]):
        if not os.path.isabs(path):
            raise SetupError("arguments", f"not an absolute path: {path!r}")
    program = values["--exec"][0] if values["--exec"] else argv[0]
    cwd = values["--chdir"][0] if values["--chdir"] else os.getcwd()
    return Plan(new_root=os.path.normpath(values["--new-root"][0]), cwd=cwd,
                readonly=tuple(os.path.normpath(p) for p in values["--ro"]),
                writable=tuple(os.path.normpath(p) for p in values["--rw"]),
                network=network, program=program, argv=argv)


def layout(plan: Plan) -> list[Mount]:
    """Every piece of the new root, parents before children (`_order`).

    Looks at the host: which system directories exist and are symlinks,
    which paths exist and are directories (a missing `--ro` path is left
    out: an input that vanished is the executor's to report, a missing
    program fails at exec; a missing `--rw` path is an error). A `--ro`
    path inside a system directory, a `--rw` path or another `--ro`
    directory is already visible and is not bound again; with `--network`,
    the file RESOLV_CONF leads to is added.
    """
    pieces = list(_fixed_pieces())
    for path in dict.fromkeys(plan.writable):
        with _Step(f"bind {path}"):
            pieces.append(_bind(path, False))
    readonly = list(plan.readonly)
    if plan.network:
        readonly.append(os.path.realpath(RESOLV_CONF))
    covered = {p.path for p in pieces if p.kind in (BIND, LINK)}.union(OWN_DIRS)
    covered_prefixes = tuple(path + "/" for path in covered)
    last = "\0"  # the last directory bound read-only; what is under it comes next
    for path in sorted(set(readonly), key=_components):
        if path in covered or path.startswith(covered_prefixes) or path.startswith(last):
            continue
        try:
            piece = _bind(path, True)
        except OSError:
            continue
        pieces.append(piece)
        last = path + "/" if piece.directory else last
    return _order(pieces)


def _bind(path: str, readonly: bool) -> Mount:
    """A bind of `path` at its own path (OSError if it cannot be looked at)."""
    st = os.stat(path)
    return Mount(BIND, path, path, readonly=readonly, directory=stat.S_ISDIR(st.st_mode))


def _fixed_pieces() -> Iterator[Mount]:
    """What every action sees: the system directories, /dev, /tmp and /proc."""
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            yield Mount(LINK, directory, os.readlink(directory))
        elif os.path.isdir(directory):
            yield Mount(BIND, directory, directory, readonly=True)
    yield Mount(TMPFS, "/dev", "mode=0755", readonly=True)
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            yield Mount(BIND, "/dev/" + name, "/dev/" + name, directory=False)
    for name, target in DEVICE_LINKS:
        yield Mount(LINK, "/dev/" + name, target)
    yield Mount(TMPFS, "/dev/shm", "mode=1777")
    yield Mount(TMPFS, "/tmp", "mode=1777")
    yield Mount(PROC, "/proc")


def _components(path: str) -> list[str]:
    """Sort key putting a directory right before everything under it (`/a/b`, `/a/b/c`,
    `/a/b-c`; a plain string sort puts `/a/b-c` between the first two)."""
    return path.split("/")


def _order(pieces: list[Mount]) -> list[Mount]:
    """`pieces` sorted parents first; of two at one path the first given wins."""
    by_path: dict[str, Mount] = {}
    for piece in pieces:
        by_path.setdefault(piece.path, piece)
    return sorted(by_path.values(), key=lambda piece: _components(piece.path))


# --- system calls ----------------------------------------------------------------------


class _Kernel:
    """The system calls the launcher makes through ctypes (Python 3.11 has no os.unshare)."""

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        self.libc = libc
        libc.unshare.argtypes = [ctypes.c_int]
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.c_ulong, ctypes.c_char_p]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                               ctypes.c_ulong, ctypes.c_ulong]
        libc.syscall.restype = ctypes.c_long

    def check(self, result: int, step: str) -> None:
        if result != 0:
            raise SetupError(step, os.strerror(self.ctypes.get_errno()))

    def unshare(self, flags: int) -> None:
        self.check(self.libc.unshare(flags), "unshare")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None, step: str) -> None:
        self.check(self.libc.mount(source and os.fsencode(source), os.fsencode(target),
                                   fstype and fstype.encode(), flags, data and data.encode()),
                   step)

    def make_readonly(self, target: str, recursive: bool, step: str) -> None:
        """Set MOUNT_ATTR_RDONLY on the mount at `target` (and every mount under it).

        mount_setattr changes that one flag and keeps the others, where a
        remount would have to repeat every flag the kernel locked.
        """
        c = self.ctypes
        attr = (c.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)
        self.check(self.libc.syscall(c.c_long(SYS_MOUNT_SETATTR), c.c_long(AT_FDCWD),
                                     c.c_char_p(os.fsencode(target)),
                                     c.c_long(AT_RECURSIVE if recursive else 0),
                                     c.byref(attr), c.c_long(c.sizeof(attr))), step)

    def pivot_root_here(self) -> None:
        """Make the cwd (a mount) the root and detach the old root (pivot_root(2): ".", ".")."""
        number = SYS_PIVOT_ROOT.get(os.uname().machine)
        if number is None:
            raise SetupError("pivot_root", f"system call number unknown on {os.uname().machine}")
        c = self.ctypes
        self.check(self.libc.syscall(c.c_long(number), c.c_char_p(b"."), c.c_char_p(b".")),
                   "pivot_root")
        self.check(self.libc.umount2(b".", MNT_DETACH), "detach the old root")

    def prctl(self, option: int, value: int) -> int:
        return int(self.libc.prctl(option, value, 0, 0, 0))


# --- the launcher ----------------------------------------------------------------------


def main(args: Sequence[str]) -> int:
    try:
        plan = parse_args(args)
        kernel = _Kernel()
        _enter_namespaces(kernel, plan.network)
        with _Step("fork"):
            lifeline_in, lifeline_out = os.pipe()
            init = os.fork()
            if init == 0:
                _be_init(lifeline_in, lifeline_out)
            action = os.fork()
    except SetupError as exc:
        return _report(str(exc), SETUP_FAILED)
    if action == 0:
        os.close(lifeline_out)
        _run_action(kernel, plan)
    _, status = os.waitpid(action, 0)
    os.close(lifeline_out)  # the init exits, and the kernel kills what the action left running
    os.waitpid(init, 0)
    return _exit_as(os.waitstatus_to_exitcode(status))


def _enter_namespaces(kernel: _Kernel, network: bool) -> None:
    """New user, mount, PID (for the children) and network namespaces; map uid and gid."""
    uid, gid = os.getuid(), os.getgid()
    kernel.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | (0 if network else CLONE_NEWNET))
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with _Step(f"write /proc/self/{name}"):
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)


def _be_init(lifeline_in: int, lifeline_out: int) -> NoReturn:
    """PID 1 of the new PID namespace, until the launcher is done with it.

    It only waits for the launcher to close the pipe (or to die: then the
    kernel closes it), and exits; with it the kernel kills every process
    left in the namespace. The action itself is its sibling, PID 2, so
    that signals it sends itself and its exit status are as anywhere else
    (PID 1 ignores every signal it has no handler for). Orphans are
    reaped when the namespace ends.
    """
    try:
        os.close(lifeline_out)
        os.read(lifeline_in, 1)
    finally:
        os._exit(0)


def _run_action(kernel: _Kernel, plan: Plan) -> NoReturn:
    """Build the root, enter it, exec the program (in the new PID namespace)."""
    if os.sep not in plan.program:  # not found on the host's PATH; os.execvpe searches it
        import warnings  # noqa: F401  (that search imports it; after the pivot it cannot)
    try:
        build_root(kernel, plan.new_root, layout(plan))
        with _Step("enter the new root"):
            os.chdir(plan.new_root)
        kernel.pivot_root_here()
        with _Step(f"enter {plan.cwd}"):
            os.chdir(plan.cwd)
        _drop_capabilities(kernel)
    except SetupError as exc:
        os._exit(_report(str(exc), SETUP_FAILED))
    except BaseException as exc:  # a forked child must never return into the launcher's code
        os._exit(_report(f"{SETUP_PREFIX} set up: {type(exc).__name__}: {exc}", SETUP_FAILED))
    try:
        os.execvpe(plan.program, list(plan.argv), os.environ)
    except OSError as exc:
        os._exit(_report(f"cannot run {plan.argv[0]!r}: {exc.strerror}", cannot_run_status(exc)))


def cannot_run_status(error: OSError) -> int:
    """The exit status bash gives when exec fails with `error` (execute_cmd.c:
    ENOENT is "not found", any other reason "found but not executable"), so
    a command run without bash fails with the status it would have in bash."""
    return EXIT_NOT_FOUND if isinstance(error, FileNotFoundError) else EXIT_CANNOT_EXECUTE


def build_root(kernel: _Kernel, new_root: str, pieces: Sequence[Mount]) -> None:
    """Mount a tmpfs on `new_root` and put `pieces` in it (parents first).

    Mount events do not travel back to the host: the whole tree is made
    private first. The tmpfs root and /dev are made read-only at the end,
    once nothing more is made in them.
    """
    kernel.mount(None, "/", None, MS_REC | MS_PRIVATE, None, "make mounts private")
    kernel.mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755",
                 "mount the new root")
    made = {new_root}  # directories that exist in the new root
    for piece in pieces:
        _place(kernel, new_root + piece.path, piece, made)
    for target in (new_root, *(new_root + p.path for p in pieces
                               if p.kind == TMPFS and p.readonly)):
        kernel.make_readonly(target, False, f"make {target[len(new_root):] or '/'} read-only")


def _place(kernel: _Kernel, target: str, piece: Mount, made: set[str]) -> None:
    """Make `piece` at `target`, its path in the new root. A read-only bind is made
    read-only with every mount under it (a system directory's sub-mounts)."""
    if piece.kind == LINK:
        with _Step(f"link {piece.path}"):
            _make_parent(target, made)
            os.symlink(piece.source, target)
        return
    with _Step(f"{piece.kind} {piece.path}"):
        _make_mount_point(target, piece.kind != BIND or piece.directory, made)
    if piece.kind == BIND:
        kernel.mount(piece.source, target, None, MS_BIND | MS_REC, None, f"bind {piece.path}")
        if piece.readonly:
            kernel.make_readonly(target, True, f"make {piece.path} read-only")
        return
    flags = MS_NOSUID | MS_NODEV | (MS_NOEXEC if piece.kind == PROC else 0)
    kernel.mount(piece.kind, target, piece.kind, flags, piece.source or None,
                 f"mount {piece.path}")


def _make_mount_point(target: str, directory: bool, made: set[str]) -> None:
    """An empty directory or file at `target` to mount on (one under a bind exists already)."""
    _make_parent(target, made)
    if directory:
        if target not in made:
            os.makedirs(target, exist_ok=True)
            made.add(target)
    else:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _make_parent(target: str, made: set[str]) -> None:
    """The directory holding `target`, made once (most inputs share a few directories:
    os.makedirs costs as much as the bind itself)."""
    parent = target.rpartition("/")[0]
    if parent not in made:
        os.makedirs(parent, exist_ok=True)
        made.add(parent)


def _drop_capabilities(kernel: _Kernel) -> None:
    """Empty the capability bounding set, so that no program gains a capability at exec.

    A uid other than 0 loses its capabilities at exec anyway; root (mapped
    to itself) would keep them all in the new user namespace, enough to
    remount a read-only bind read-write.
    """
    for capability in range(64):
        if kernel.prctl(PR_CAPBSET_DROP, capability) != 0:
            break  # EINVAL: past the last capability this kernel knows


def _report(line: str, status: int) -> int:
    os.write(2, line.encode("utf-8", "replace") + b"\n")
    return status


def _exit_as(code: int) -> int:
    """Exit `code` (the action's), or die of the signal that killed the action (-code)."""
    if code >= 0:
        return code
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the child dumped its core already
    _signal.signal(-code, _signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    return 128 - code


def run(args: Sequence[str]) -> NoReturn:
    """`main`, then exit at once: Python's own finalisation, after the pivot, took
    8 ms of the launcher's 27 (measured; nothing is buffered: output goes
    through os.write)."""
    os._exit(main(args))


if __name__ == "__main__":
    run(sys.argv[1:])
