"""Finding the workspace root (the directory holding MB.toml) and its packages."""

from __future__ import annotations

import os
from functools import cached_property

import attrs

from mb.config import Config, load_config
from mb.statcache import trusted_signature
from mb.root import cwd_package_of, find_root

OUTPUT_DIR = "mb-out"
STATE_DIR = ".mb"


@attrs.define
class Workspace:
    """The workspace root, its configuration and where mb keeps its state."""

    root: str
    config: Config
    #: The package path of the directory mb was started in (for `:name` labels).
    cwd_package: str | None
    #: (mtime_ns, inode) of every directory walked to find packages (for the fast path).
    dir_signatures: dict[str, tuple[int, int]] = attrs.field(factory=dict)
    #: (size, mtime_ns, inode, ctime_ns) of MB.toml when it was read (None: absent).
    config_signature: tuple[int, int, int, int] | None = None

    @property
    def state_dir(self) -> str:
        return os.path.join(self.root, STATE_DIR)

    @property
    def output_dir(self) -> str:
        return os.path.join(self.root, OUTPUT_DIR)

    @property
    def cache_dir(self) -> str:
        return os.path.join(self.root, self.config.cache.dir)

    def build_file(self, package: str) -> str:
        return os.path.join(self.root, package, "BUILD.toml")

    def has_package(self, package: str) -> bool:
        return os.path.isfile(self.build_file(package))

    @cached_property
    def packages(self) -> list[str]:
        """Every package (directory with a BUILD.toml), sorted; skips mb-out, .mb and dot dirs."""
        found: list[str] = []
        skip_abs = {os.path.realpath(self.cache_dir)}
        for dirpath, dirnames, filenames in os.walk(self.root):
            try:
                st = os.stat(dirpath)
                self.dir_signatures[dirpath] = (st.st_mtime_ns, st.st_ino)
            except OSError:
                pass
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/")
            if "BUILD.toml" in filenames:
                found.append(rel)
            kept = []
            for name in dirnames:
                if name.startswith(".") or (rel == "" and name == OUTPUT_DIR):
                    continue
                child = os.path.join(dirpath, name)
                if os.path.exists(os.path.join(child, "MB.toml")):
                    continue  # a nested workspace is not part of this one
                if os.path.realpath(child) in skip_abs:
                    continue
                kept.append(name)
            dirnames[:] = sorted(kept)
        return sorted(found)


def open_workspace(start: str) -> Workspace:
    root = find_root(start)
    config_path = os.path.join(root, "MB.toml")
    try:
        signature = trusted_signature(os.stat(config_path))
    except OSError:
        signature = None
    config = load_config(config_path)
    return Workspace(root=root, config=config, cwd_package=cwd_package_of(root, start),
                     config_signature=signature)
