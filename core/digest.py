"""Content digests: the only module that imports blake3.

Files are hashed with blake3 (multithreaded for large files, where the
Rust implementation splits the input across cores); structured values are
hashed through a canonical JSON encoding so the same value always gives the
same digest on every machine.
"""

from __future__ import annotations

import json
import os
from typing import Any, Final

from blake3 import blake3

#: Files at least this large are hashed with blake3's multithreading (and mmap).
_LARGE_FILE: Final = 1 << 20


def digest_bytes(data: bytes) -> str:
    return blake3(data).hexdigest()


def digest_file(path: str) -> str:
    """The blake3 hex digest of a file's bytes.

    A large file is mapped, not read (no copy out of the page cache), and
    hashed on every core; its size comes from fstat, so none of it is read
    twice. A small one is read in one call.
    """
    with open(path, "rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size < _LARGE_FILE:
            return blake3(f.readall()).hexdigest()
    hasher = blake3(max_threads=blake3.AUTO)
    hasher.update_mmap(path)
    return hasher.hexdigest()


def canonical_json(value: Any) -> bytes:
    """The canonical encoding of a JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def digest_value(value: Any) -> str:
    return blake3(canonical_json(value)).hexdigest()
