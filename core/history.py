"""Build manifests (`.mb/builds/<id>.json`, `.mb/builds/current`) and key records for `mb explain`.

A manifest lists every target the build touched. Per action it keeps the
key, the digest of the key's static part and the input digests; the static
parts themselves are stored once each under `.mb/keys/`, so a no-op build of
10,000 actions writes no more than their keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from typing import NamedTuple

from mb.digest import canonical_json
from mb.fsutil import atomic_write_bytes, discard

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
    keys_dir = os.path.join(state_dir, "keys")
    compact = []
    for record in actions:
        static_digest, components = record.pop("static")
        _store_components(keys_dir, static_digest, components)
        compact.append({**record, "static": static_digest})
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
    prune(directory)


def prune(directory: str) -> None:
    names = sorted(n for n in os.listdir(directory) if n.startswith("b-") and n.endswith(".json"))
    for name in names[:-KEEP_BUILDS]:
        discard(os.path.join(directory, name))


def _store_components(keys_dir: str, static_digest: str, components: Any) -> None:
    """Store a key's static components once, under their digest (the action's static digest).

    `components` is a callable producing them, so they are only encoded when new.
    """
    path = os.path.join(keys_dir, static_digest[:2], static_digest + ".json")
    if not os.path.exists(path):
        atomic_write_bytes(path, canonical_json(components()))


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
        names = [n for n in os.listdir(directory) if n.endswith(".json")]
    except FileNotFoundError:
        return []
    manifests = []
    for name in names:
        manifest = load_manifest(state_dir, name[: -len(".json")])
        if manifest is not None:
            manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.get("started", ""), m.get("build_id", "")))


def load_components(state_dir: str, static_digest: str) -> dict[str, Any] | None:
    path = os.path.join(state_dir, "keys", static_digest[:2], static_digest + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None
