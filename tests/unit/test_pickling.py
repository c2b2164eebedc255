"""Actions pickle as their class and field values (the incremental action table)."""

from __future__ import annotations

import pickle

import attrs
import pytest

from mb.actions import Action, with_static_digest
from mb.context import ActionSpec, FunctionRef, OutputFile, Tool
from mb.labels import Label
from mb.pickling import pickled_by_position


def _action() -> Action:
    spec = ActionSpec(
        kind="run", argv=(Tool("ffmpeg", "/usr/bin/ffmpeg"), "-i", "a/in.wav", "a/out.mp3"),
        function=FunctionRef("mb.rules.tts", "speak", "/x/tts.py"),
        params={"rate": 1.5, "voices": ["en"]}, inputs=("a/in.wav",), outputs=("a/out.mp3",),
        tools=(Tool("ffmpeg", "/usr/bin/ffmpeg"),), env=(("A", "1"),), secret_env=("KEY",),
        resources=(("gpu", 1),), timeout=30.0, retries=2, description="encode",
        network=True, stdin="a/in.wav", stdout=None)
    return with_static_digest(Action(
        index=3, owner=Label("a", "enc"), spec=spec, rule="r", rule_version="1", plugin="p",
        plugin_version="2", tags=("manual",), function_digest="f" * 64,
        function_modules=("mb.rules.tts",)))


def test_an_action_round_trips_equal() -> None:
    action = _action()
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        assert pickle.loads(pickle.dumps(action, protocol=protocol)) == action


def test_no_field_names_are_stored() -> None:
    pickled = pickle.dumps(_action(), protocol=pickle.HIGHEST_PROTOCOL)
    assert b"function_modules" not in pickled and b"secret_env" not in pickled


def test_a_single_field_class_round_trips() -> None:
    assert pickle.loads(pickle.dumps(OutputFile("a/b.txt"))) == OutputFile("a/b.txt")


def test_a_class_with_a_keyword_only_field_is_refused() -> None:
    @attrs.frozen
    class Keyed:
        a: int
        b: int = attrs.field(kw_only=True)

    with pytest.raises(TypeError, match="positional"):
        pickled_by_position(Keyed)
