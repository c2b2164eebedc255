"""`mb.ActionIO` as a Python action sees it."""

from __future__ import annotations

from pathlib import Path

import mb


def _io(tmp_path: Path, state_dir: Path | None) -> mb.ActionIO:
    return mb.ActionIO(root=tmp_path, inputs=[], outputs=[], tools=[], params={},
                       providers={}, state_dir=state_dir)


def test_state_dir_exists_when_an_action_uses_it(tmp_path):
    """A fresh workspace has no `.mb/providers/`; an action writes into it all the same."""
    state = tmp_path / ".mb" / "providers"
    io = _io(tmp_path, state)
    assert not state.exists()  # made on first use only
    assert io.state_dir == state
    (io.state_dir / "x").write_text("1")
    assert (state / "x").read_text() == "1"


def test_state_dir_is_none_without_one(tmp_path):
    assert _io(tmp_path, None).state_dir is None
