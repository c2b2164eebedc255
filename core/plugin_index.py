"""The entry points of group `mb` of the installed distributions, from a cached index
while the Python environment is unchanged.

Listing them through `importlib.metadata` costs every full `mb build` ~35 ms
of single-core start-up: the import alone pulls in `email`, `zipfile` and
`csv`, and each distribution's METADATA is parsed for a name and a version,
only to find the handful of modules to import. The answer depends on the
interpreter and its `sys.path`, not on the workspace, so it is kept in the
user's cache folder (`$XDG_CACHE_HOME/mb/entry-points/`, or
`~/.cache/mb/entry-points/`), one JSON file per environment, named by a
digest of what makes two environments different (`index_path`). A clean
build, which deletes `.mb/`, still finds it.

A file is used while the *signature* of the environment it stores equals the
one taken now (`environment_signature`): for every `sys.path` entry, the
names of the distributions importlib.metadata would look at there and the
stats of their folders, `entry_points.txt` and METADATA. A distribution
installed, removed or reinstalled, or an `entry_points.txt` rewritten in
place, changes it; then the entry points are computed with importlib.metadata
exactly as before, and the file is rewritten. The signature is taken before
they are computed, so a change during the computation makes the next run
compute them again. A signature with a stat changed less than `RACY_NS` ago
is not stored: a same-size rewrite within the file system's timestamp
granularity would leave the same stat (git's "racily clean" problem).

The index is only a speed-up: an unreadable, corrupt or foreign file is
computed again, and a cache folder that cannot be written (read-only home, no
home at all) is silently not written. docs/decisions/0010-entry-point-index.md
says what the signature cannot see.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Final

import attrs

from mb.fastpath import RACY_NS, dir_sig, file_sig

#: The entry-point group mb's plugins register in.
GROUP: Final = "mb"
#: The layout of an index file; another value is computed again and rewritten.
SCHEMA: Final = 1
#: The folder of the user's cache directory holding the index files.
INDEX_DIR: Final = os.path.join("mb", "entry-points")

#: Where importlib.metadata finds a distribution in a `sys.path` folder: a child
#: named `*.dist-info` or `*.egg-info`, compared in lower case (its `Lookup`).
_INFO_SUFFIXES: Final = (".dist-info", ".egg-info")

Signature = list[Any]


@attrs.frozen
class EntryPointRecord:
    """One entry point of group `mb`: what `Plugins.load_entry_points` registers."""

    name: str
    #: `module` or `module:attr`, as written in `entry_points.txt`.
    value: str
    #: The distribution's METADATA Name ("" if importlib.metadata gives none).
    distribution: str
    version: str


def mb_entry_points() -> list[EntryPointRecord]:
    """The entry points of group `mb`, sorted by name: from the index when the
    environment's signature is unchanged, else from importlib.metadata."""
    return entry_points(GROUP)


def entry_points(group: str) -> list[EntryPointRecord]:
    """The entry points of `group`, sorted by name (see the module's docstring)."""
    if _other_distribution_finders() or not all(isinstance(e, str) for e in sys.path):
        return compute(group)
    path = index_path(group)
    if path is None:
        return compute(group)
    signature, newest_ns = environment_signature()
    records = _load(path, signature)
    if records is not None:
        return records
    records = compute(group)
    if time.time_ns() - newest_ns >= RACY_NS:
        _store(path, signature, records)
    return records


def compute(group: str) -> list[EntryPointRecord]:
    """The entry points of `group` as importlib.metadata lists them (the slow way)."""
    from importlib import metadata

    records = []
    for entry_point in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        dist = entry_point.dist
        records.append(EntryPointRecord(
            name=entry_point.name, value=entry_point.value,
            distribution=(dist.metadata["Name"] or "") if dist is not None else "",
            version=(dist.version or "") if dist is not None else ""))
    return records


def index_path(group: str) -> str | None:
    """The index file of this environment, or None where there is no cache folder.

    Named by a digest of what makes two environments list different entry
    points: the interpreter, `sys.path` (each entry made absolute: "" is the
    current directory, as importlib.metadata reads it), the finders on
    `sys.meta_path`, mb's version (a new mb may record more) and the group.
    """
    from mb import __version__
    from mb.digest import digest_bytes

    cache_home = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache_home):  # unset, empty or relative: ignored (XDG spec)
        cache_home = os.path.join(os.path.expanduser("~"), ".cache")
        if not os.path.isabs(cache_home):  # no HOME and no passwd entry: "~" stays
            return None
    try:
        path = [os.path.abspath(entry) for entry in sys.path]
    except OSError:  # a relative entry, and the current directory was removed
        return None
    key = {"schema": SCHEMA, "python": sys.executable, "group": group, "mb": __version__,
           "path": path, "finders": [_type_name(finder) for finder in sys.meta_path]}
    # ensure_ascii: a path that is not UTF-8 arrives with lone surrogates, kept as escapes.
    digest = digest_bytes(json.dumps(key, sort_keys=True).encode("ascii"))
    return os.path.join(cache_home, INDEX_DIR, digest[:32] + ".json")


def _type_name(finder: object) -> str:
    """A finder's class (the built-in ones are on `sys.meta_path` as classes)."""
    cls = finder if isinstance(finder, type) else type(finder)
    return f"{cls.__module__}.{cls.__qualname__}"


def _other_distribution_finders() -> bool:
    """Whether a finder other than the standard PathFinder supplies distributions.

    importlib.metadata asks every finder on `sys.meta_path` for distributions
    (`find_distributions`); only PathFinder's come from `sys.path` folders
    the signature can stat, so with another one the index is not used.
    """
    from importlib.machinery import PathFinder

    return any(finder is not PathFinder and hasattr(finder, "find_distributions")
               for finder in sys.meta_path)


def environment_signature() -> tuple[Signature, int]:
    """What the entry points of the environment depend on, and its newest timestamp.

    One item per `sys.path` entry (JSON values, compared with the stored one
    as they are):

    - None: missing or unreadable;
    - `["file", size, mtime_ns, inode, ctime_ns]`: a zip or an egg file;
    - `["dir", [[name, folder, entry_points.txt, METADATA], ...]]`: a folder,
      with each distribution child importlib.metadata would read (`*.dist-info`,
      `*.egg-info`, and `EGG-INFO` of an `.egg` folder), sorted by name: its
      (mtime_ns, inode) (a file added or replaced inside moves it; a reinstall
      makes a new folder), the `fastpath.file_sig` (size, mtime_ns, inode,
      ctime_ns) of its `entry_points.txt`, and, where that exists, of its
      METADATA (`PKG-INFO` for an egg), which holds the name and version listed
      with its entry points; None where missing.

    The folder's own mtime is not part of it: the names of the distributions
    in it say all that importlib.metadata reads there, and under
    `python -m mb` the first entry is the workspace itself, whose mtime moves
    with every clean build.
    """
    signature: Signature = []
    newest = 0
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)  # names only: quicker than os.scandir's DirEntry objects
        except NotADirectoryError:
            sig = file_sig(folder)
            if sig is not None:
                newest = max(newest, sig[1], sig[3])
            signature.append(None if sig is None else ["file", *sig])
            continue
        except (OSError, ValueError):  # ValueError: a NUL byte in the entry
            signature.append(None)
            continue
        egg = folder.lower().endswith(".egg")
        infos = []
        for name in sorted(name for name in names if name.lower().endswith(_INFO_SUFFIXES)
                           or (egg and name.lower() == "egg-info")):
            low = name.lower()
            child = os.path.join(folder, name)
            own = dir_sig(child)
            if own is not None:
                newest = max(newest, own[0])
            entry_points_sig = file_sig(os.path.join(child, "entry_points.txt"))
            metadata_sig = None
            if entry_points_sig is not None:  # only then are its name and version listed
                newest = max(newest, entry_points_sig[1], entry_points_sig[3])
                metadata_sig = file_sig(os.path.join(
                    child, "METADATA" if low.endswith(".dist-info") else "PKG-INFO"))
                if metadata_sig is not None:
                    newest = max(newest, metadata_sig[1], metadata_sig[3])
            infos.append([name, _json(own), _json(entry_points_sig), _json(metadata_sig)])
        signature.append(["dir", infos])
    return signature, newest


def _json(sig: tuple[int, ...] | None) -> list[int] | None:
    """A stat signature as JSON gives it back (a list), to compare with a stored one."""
    return None if sig is None else list(sig)


def _load(path: str, signature: Signature) -> list[EntryPointRecord] | None:
    """The records of the index file at `path` if it was written for `signature`."""
    try:
        with open(path, "rb") as f:
            loaded = json.loads(f.read())
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not JSON
        return None
    if (not isinstance(loaded, dict) or loaded.get("schema") != SCHEMA
            or loaded.get("signature") != signature):
        return None
    rows = loaded.get("entry_points")
    if not isinstance(rows, list):
        return None
    records = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 4
                and all(isinstance(item, str) for item in row)):
            return None
        records.append(EntryPointRecord(*row))
    return records


def _store(path: str, signature: Signature, records: list[EntryPointRecord]) -> None:
    """Write the index file; any OSError is ignored (the index is only a speed-up)."""
    from mb.fsutil import atomic_write_bytes

    data = {"schema": SCHEMA, "python": sys.executable, "signature": signature,
            "entry_points": [[r.name, r.value, r.distribution, r.version] for r in records]}
    try:
        atomic_write_bytes(path, json.dumps(data).encode("ascii"))
    except (OSError, ValueError):  # ValueError: a path with a NUL byte
        pass
