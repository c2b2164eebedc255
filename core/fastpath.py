"""The no-op fast path: prove "nothing changed" from stats alone, before loading anything.

After a successful, non-provisional build, mb records a snapshot of what
that build depended on: the (size, mtime, inode, ctime) of every source
file, tool, BUILD.toml, MB.toml and Python module it loaded (mb's and every
plugin's), the (mtime, inode) of every workspace directory (a new package or
file shows there) and of every `sys.path` directory (a newly installed
plugin shows there), and the inode, size and mtime of every output it placed in
`mb-out/`. The next `mb build` with the same request stats those paths; if
every one matches, every action key is provably the same and every output is
in place, so the build is a no-op: mb logs it (events and a manifest, like
any build) without importing attrs, cattrs, pluggy or a single plugin, and
without parsing a BUILD file. Any mismatch falls through to a normal build,
which is always correct; the snapshot only ever skips work.
"""

from __future__ import annotations

import marshal
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SNAPSHOT_VERSION = 3
# As mb.statcache.RACY_NS (not imported from there: this path stays light).
try:
    RACY_NS = int(float(os.environ.get("MB_RACY_SECONDS", "2")) * 1e9)
except ValueError:
    RACY_NS = 2_000_000_000

FileSig = tuple[int, int, int, int]

#: The signature of a file recorded while racily clean: never equal to a real stat.
ALWAYS_REHASH: FileSig = (-1, -1, -1, -1)
DirSig = tuple[int, int]


def request_key(patterns: Sequence[str], cwd_package: str | None,
                environ: Mapping[str, str]) -> str:
    """What makes two `mb build` invocations the same request."""
    from mb.digest import digest_value

    # PATH: rules resolve tools on it during analysis (`ctx.tool("sort")`), so
    # another PATH may mean another binary even when the old one is unchanged.
    env = {k: environ.get(k, "") for k in
           ("MB_CACHE_DIR", "MB_REMOTE_CACHE", "MB_COMFY_URL", "PATH")}
    # sys.path: a folder put before the others (PYTHONPATH) may shadow a plugin or a
    # rule's module with another version, which no recorded file shows.
    return digest_value({"v": SNAPSHOT_VERSION, "patterns": [_text(p) for p in patterns],
                         "cwd": cwd_package and _text(cwd_package),
                         "env": {k: _text(v) for k, v in env.items()},
                         "python": _text(sys.executable),
                         "path": [_text(entry) for entry in sys.path if entry]})


def _text(name: str) -> str:
    """A path or argument as text a digest can encode: bytes that are not UTF-8 (a
    folder from an old drive) arrive as lone surrogates, which UTF-8 refuses."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


#: The folder of `.mb/` holding the snapshots.
FASTPATH_DIR = "fastpath"


def snapshot_path(state_dir: str, key: str) -> str:
    return os.path.join(state_dir, FASTPATH_DIR, key[:32] + ".bin")


def file_sig(path: str) -> FileSig | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def dir_sig(path: str) -> DirSig | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino)


def load(path: str) -> dict[str, Any] | None:
    """The stat part of a snapshot (what to check), or None if there is none."""
    return load_marshalled(path, SNAPSHOT_VERSION)


def load_marshalled(path: str, version: int) -> dict[str, Any] | None:
    """A marshalled dict written with `"version": version`; None if missing, torn or other."""
    try:
        with open(path, "rb") as f:
            loaded = marshal.loads(f.read())  # loads(read()): load(f) reads item by item
    except (OSError, EOFError, ValueError, TypeError, MemoryError):
        return None
    if not isinstance(loaded, dict) or loaded.get("version") != version:
        return None
    return loaded


def load_replay(path: str, generation: str | None) -> dict[str, Any] | None:
    """What a no-op build logs and prints (kept apart: it is only read once proven).

    The replay a full build wrote, plus the overlay of the incremental builds
    since (`incremental.py`), which replaces the events and target records of
    the actions they re-ran instead of rewriting the whole replay. None
    unless it matches the snapshot's `generation`.
    """
    replay = load(path + ".replay")
    if replay is None or not generation:
        return None
    if replay.get("generation") == generation:
        return replay
    overlay = load(overlay_path(path))
    if (overlay is None or overlay.get("generation") != generation
            or overlay.get("base") != replay.get("generation")):
        return None
    events = replay["events"]
    for position, pair in overlay["events"].items():
        events[position] = pair
    replay["targets"].update(overlay["targets"])
    replay["actions_from"] = overlay["actions_from"]
    replay["overlay"] = overlay
    return replay


def overlay_path(path: str) -> str:
    return path + ".overlay"


def changed_sources(path: str, snapshot: dict[str, Any]
                    ) -> dict[str, tuple[os.stat_result, str]] | None:
    """The source files whose bytes changed, if nothing else did; else None.

    Each with the stat it was hashed at and its new digest, so the build
    that follows does not hash it again. {} means a no-op. A source is a
    file the snapshot has a digest for: one an action reads. A touched
    source with the same bytes is not a change (its new stat is remembered).
    Any other difference (a BUILD file, a tool, a module, a folder, an
    output, a missing file) returns None: only a full build can say what it
    means.
    """
    stat = os.stat
    digests = snapshot.get("digests", {})
    changed: dict[str, tuple[os.stat_result, str]] = {}
    restatted = False
    try:
        for name, sig in snapshot["files"].items():
            st = stat(name)
            current = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
            if current == sig:
                continue
            if name not in digests:
                return None
            digest = _digest_or_none(name)
            if digest is None:
                return None
            # Keys see a file's exec bit too (mb.digest.key_digest): `chmod +x` with
            # the same bytes is a change. The build that follows gets the content digest.
            if _key_digest(digest, st.st_mode) != digests[name]:
                changed[name] = (st, digest)
            # Touched but not edited: same bytes still mean the same keys. Remember
            # the new stat, unless it is too fresh to trust (racy).
            elif time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= RACY_NS:
                snapshot["files"][name] = current
                restatted = True
        for name, sig in snapshot["dirs"].items():
            st = stat(name)
            if (st.st_mtime_ns, st.st_ino) != sig:
                return None
        for name, sig in snapshot["outputs"].items():
            st = stat(name)
            if (st.st_ino, st.st_size, st.st_mtime_ns) != sig:
                return None
    except OSError:
        return None
    if restatted and not changed:
        from mb.fsutil import atomic_write_bytes

        atomic_write_bytes(path, marshal.dumps(snapshot))
    return changed


def _key_digest(digest: str, mode: int) -> str:
    from mb.digest import key_digest

    return key_digest(digest, mode)


def _digest_or_none(path: str) -> str | None:
    from mb.digest import digest_file

    try:
        return digest_file(path)
    except OSError:
        return None


def module_files() -> list[str]:
    """Source files of every loaded module outside the standard library."""
    stdlib = os.path.dirname(os.__file__)
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and not path.startswith(stdlib + os.sep) and os.path.isfile(path):
            found.append(path)
    return found


def record(path: str, file_sigs: Mapping[str, FileSig | None],
           dir_sigs: Mapping[str, DirSig | None], outputs: Iterable[str],
           payload: Mapping[str, Any], digests: Mapping[str, str] | None = None,
           generation: str = "") -> None:
    """Write a snapshot from signatures taken when each file was read.

    Signatures come from the moment a file was hashed or parsed, not from
    now: a source edited while the build ran must not be recorded as seen.
    Any path without a signature (missing, unreadable) means no snapshot.
    """
    from mb.fsutil import atomic_write_bytes

    if any(sig is None for sig in file_sigs.values()) or any(
            sig is None for sig in dir_sigs.values()):
        return
    snapshot: dict[str, Any] = {"version": SNAPSHOT_VERSION, "files": dict(file_sigs),
                                "dirs": dict(dir_sigs), "outputs": {},
                                "digests": dict(digests or {}), "generation": generation}
    for name in outputs:
        try:
            st = os.stat(name)
        except OSError:
            return
        snapshot["outputs"][name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    # The replay part first: a snapshot whose replay is missing is simply unused.
    from mb.fsutil import discard

    discard(overlay_path(path))  # of the incremental builds since the last full one
    atomic_write_bytes(path + ".replay",
                       marshal.dumps({"version": SNAPSHOT_VERSION, **payload,
                                      "generation": generation}))
    atomic_write_bytes(path, marshal.dumps(snapshot))

