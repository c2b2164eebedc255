"""Manifests kept in .mb/builds/: the newest KEEP_BUILDS, and the one the newest repeats."""

from __future__ import annotations

import json

from mb import history


def _publish(state_dir: str, number: int, actions_from: str | None = None) -> str:
    build_id = f"b-20261130-{number:06d}-abcd"
    manifest: dict = {"actions": [], "build_id": build_id, "status": "ok"}
    if actions_from:
        manifest["actions_from"] = actions_from
    history.publish_manifest(state_dir, build_id, json.dumps(manifest, sort_keys=True,
                                                              separators=(",", ":")))
    return build_id


def test_the_full_build_that_no_op_builds_repeat_outlives_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "KEEP_BUILDS", 3)
    state = str(tmp_path)
    (tmp_path / "builds").mkdir()
    full = _publish(state, 0)
    for number in range(1, 6):
        _publish(state, number, actions_from=full)
    kept = sorted(p.stem for p in (tmp_path / "builds").glob("b-*.json"))
    assert kept == [full, "b-20261130-000003-abcd", "b-20261130-000004-abcd",
                    "b-20261130-000005-abcd"]
    assert history.current_build_id(state) == "b-20261130-000005-abcd"
    # A new full build repeats nothing: the old one goes with the rest.
    _publish(state, 6)
    kept = sorted(p.stem for p in (tmp_path / "builds").glob("b-*.json"))
    assert kept == ["b-20261130-000004-abcd", "b-20261130-000005-abcd",
                    "b-20261130-000006-abcd"]
