"""Build manifests (`.mb/builds/<id>.json`, `.mb/builds/current`) and key records for `mb explain`.

A manifest lists every target the build touched. Per action it keeps the
key, the digest of the key's static part and the input digests; the static
parts themselves are stored once each in `.mb/keys.bin` (one file for all of
them: a file per key cost an inode allocation per action, see
docs/performance.md), so a no-op build of 10,000 actions writes no more than
their keys.
"""

from __future__ import annotations

import json
import marshal
import os
import re
from collections.abc import Mapping
from typing import Any

from typing import NamedTuple

from mb.fsutil import atomic_write_bytes, discard, remove_temporaries

#: How many manifests `.mb/builds/` keeps; older ones are removed after each build.
KEEP_BUILDS = 200


class TargetRecord(NamedTuple):
    """A target's line in a manifest (SPEC §9)."""

    status: str
    cached: bool
    provisional: bool
    duration_s: float
    cost: float | None
    outputs: Mapping[str, str]
    errors: tuple[str, ...] = ()

    @classmethod
    def from_result(cls, result: Any) -> TargetRecord:
        return cls(status=result.status, cached=result.status == "cached",
                   provisional=result.provisional, duration_s=round(result.duration_s, 6),
                   cost=result.cost, outputs=dict(result.outputs), errors=tuple(result.errors))

    def to_json(self) -> dict[str, Any]:
        data = self._asdict()
        data["outputs"] = dict(self.outputs)
        data["errors"] = list(self.errors)
        return data


def builds_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "builds")


def write_manifest(state_dir: str, build_id: str, started: str, finished: str, status: str,
                   counts: Mapping[str, int], targets: Mapping[str, TargetRecord],
                   actions: list[dict[str, Any]]) -> dict[str, Any]:
    compact = []
    statics = {}
    for record in actions:
        static_digest, components = record.pop("static")
        statics[static_digest] = components
        compact.append({**record, "static": static_digest})
    _store_components(state_dir, statics)
    manifest = {
        "build_id": build_id, "started": started, "finished": finished, "status": status,
        "counts": dict(counts),
        "targets": {label: t.to_json() for label, t in sorted(targets.items())},
        "actions": compact,
    }
    write_manifest_document(state_dir, manifest)
    return manifest


def write_manifest_document(state_dir: str, manifest: Mapping[str, Any]) -> None:
    """Write `<build_id>.json`, then point `current` at it (both atomic), then prune."""
    publish_manifest(state_dir, manifest["build_id"],
                     json.dumps(manifest, separators=(",", ":"), sort_keys=True))


def publish_manifest(state_dir: str, build_id: str, text: str) -> None:
    """Write a manifest's JSON text, then point `current` at it (both atomic), then prune."""
    directory = builds_dir(state_dir)
    atomic_write_bytes(os.path.join(directory, f"{build_id}.json"), text.encode())
    atomic_write_bytes(os.path.join(directory, "current"), (build_id + "\n").encode())
    repeated = _ACTIONS_FROM.search(text)
    prune(directory, keep=repeated.group(1) if repeated else None)
    remove_state_temporaries(state_dir)


def remove_state_temporaries(state_dir: str) -> None:
    """Remove the temporary files a build killed while writing left in `.mb/`,
    `.mb/builds/` and `.mb/fastpath/`: each kill at the wrong instant left one
    more, forever. Called once a manifest is published, under the workspace
    lock: this build's own writes there are done or yet to start."""
    from mb.fastpath import FASTPATH_DIR

    for folder in (state_dir, builds_dir(state_dir), os.path.join(state_dir, FASTPATH_DIR)):
        remove_temporaries(folder)


#: A no-op or incremental manifest names the full build whose action records it repeats.
_ACTIONS_FROM = re.compile(r'"actions_from":"(b-[^"]+)"')


def prune(directory: str, keep: str | None = None) -> None:
    """Remove all but the newest KEEP_BUILDS manifests, and never `keep`: the build the
    newest one repeats the action records of (`mb explain`, `mb gc` read them)."""
    names = sorted(n for n in os.listdir(directory) if n.startswith("b-") and n.endswith(".json"))
    for name in names[:-KEEP_BUILDS]:
        if name != f"{keep}.json":
            discard(os.path.join(directory, name))


#: Past this many stored key parts, those the current build does not use are dropped.
KEEP_KEYS = 100_000


def _keys_path(state_dir: str) -> str:
    return os.path.join(state_dir, "keys.bin")


def _load_keys(state_dir: str) -> dict[str, bytes]:
    try:
        with open(_keys_path(state_dir), "rb") as f:
            stored = marshal.loads(f.read())  # loads(read()): load(f) reads item by item
    except (OSError, EOFError, ValueError, TypeError):
        return {}  # lost or torn: `mb explain` says less, nothing else depends on it
    return stored if isinstance(stored, dict) else {}


def _store_components(state_dir: str, statics: Mapping[str, Any]) -> None:
    """Store each key's static components once, under their digest (the static digest).

    The values are callables producing the encoded components, so only new ones
    are encoded; the file is rewritten (atomically) only when something is new.
    """
    stored = _load_keys(state_dir)
    new = {digest: encode() for digest, encode in statics.items() if digest not in stored}
    if not new:
        return
    stored.update(new)
    if len(stored) > KEEP_KEYS:
        stored = {digest: stored[digest] for digest in statics}
    atomic_write_bytes(_keys_path(state_dir), marshal.dumps(stored))


def current_build_id(state_dir: str) -> str | None:
    try:
        with open(os.path.join(builds_dir(state_dir), "current"), encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def load_manifest(state_dir: str, build_id: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(builds_dir(state_dir), f"{build_id}.json"), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def list_builds(state_dir: str) -> list[dict[str, Any]]:
    """Every readable manifest, oldest first."""
    directory = builds_dir(state_dir)
    try:
        names = [n for n in os.listdir(directory) if n.startswith("b-") and n.endswith(".json")]
    except FileNotFoundError:
        return []
    manifests = []
    for name in names:
        manifest = load_manifest(state_dir, name[: -len(".json")])
        if manifest is not None:
            manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.get("started", ""), m.get("build_id", "")))


def load_components(state_dir: str, static_digest: str) -> dict[str, Any] | None:
    encoded = _load_keys(state_dir).get(static_digest)
    try:
        return json.loads(encoded) if encoded is not None else None
    except ValueError:
        return None


def action_record(outcome: Any, encodings: Mapping[str, bytes] | None = None
                  ) -> dict[str, Any]:
    """An executor Outcome as a manifest's action record; the static key parts are
    encoded only if `write_manifest` finds them new, and not even then when
    `encodings` (the analysis's, by static digest) holds them."""
    action = outcome.action
    from mb.actions import static_encoding

    def encode() -> bytes:
        known = encodings.get(action.static_digest) if encodings is not None else None
        return known if known is not None else static_encoding(action)

    return {"target": str(action.owner), "index": action.index, "status": outcome.status,
            "key": outcome.key, "description": action.description,
            "static": (action.static_digest, encode),
            "inputs": dict(outcome.input_digests),
            "tools": dict(outcome.tool_digests), "outputs": dict(outcome.outputs),
            "provisional": outcome.provisional, "error": outcome.error}
