"""Which names a folder holds, listed once per analysis instead of a stat per file.

Analysis asks, for every source a target reads, whether the file exists, and
for every output it declares, whether a file of the source tree is in its
way: two `stat` calls per target of wide1k, 2,000 system calls on long paths
at the start of a clean build, on one core. A folder is listed the first
time a name in it is asked about (`os.scandir`, whose entries carry the file
type), and the answers come from the listing: a name that is not there does
not exist, and a regular file or a folder that is not a symlink does. Only a
symlink (or something stranger) is still `stat`-ed, since whether it exists
depends on its target.

Each folder is observed (`observe`: the analysis records its mtime and
inode for the no-op fast path) before it is listed, so a file created or
removed after the listing changes what the next build compares, as it would
after a `stat`. A folder that cannot be listed (no permission) is answered
with `stat` calls, as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable

#: What a listing says of a name: it is there and exists, or it is a symlink
#: (or a socket, a FIFO...) to be looked at.
_EXISTS, _LOOK = True, False


class FolderListings:
    """The names of the folders asked about so far, each listed once."""

    def __init__(self, observe: Callable[[str], None]) -> None:
        self._observe = observe
        self._folders: dict[str, dict[str, bool] | None] = {}

    def _entries(self, folder: str) -> dict[str, bool] | None:
        try:
            return self._folders[folder]
        except KeyError:
            pass
        self._observe(folder)
        entries: dict[str, bool] = {}
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    entries[entry.name] = (
                        _EXISTS if not entry.is_symlink()
                        and (entry.is_file(follow_symlinks=False)
                             or entry.is_dir(follow_symlinks=False))
                        else _LOOK)
        except (FileNotFoundError, NotADirectoryError):
            entries = {}  # nothing can be in it: every name is missing
        except OSError:  # cannot be listed: ask the file system name by name
            self._folders[folder] = None
            return None
        self._folders[folder] = entries
        return entries

    def exists(self, path: str) -> bool:
        """`os.path.exists(path)` (symlinks followed), `path` absolute and normalised."""
        folder, _, name = path.rpartition("/")
        entries = self._entries(folder or "/")
        if entries is None:
            return os.path.exists(path)
        found = entries.get(name)
        if found is None:
            return False
        return found or os.path.exists(path)

    def lexists(self, path: str) -> bool:
        """`os.path.lexists(path)`: a name there, whatever it is or points to."""
        folder, _, name = path.rpartition("/")
        entries = self._entries(folder or "/")
        if entries is None:
            return os.path.lexists(path)
        return name in entries
