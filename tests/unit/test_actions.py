"""Action keys (`mb.actions`): golden canonical bytes and what does or does not change a key.

The golden values pin the key encoding: if one of them changes, every cache
entry in the world stops matching, which must be deliberate (bump KEY_SCHEMA
and update the goldens in the same change).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from mb.actions import (
    KEY_SCHEMA, Action, action_key, static_components, with_static_digest, with_static_encoding,
)
from mb.context import ActionSpec, FunctionRef, Tool
from mb.digest import canonical_json, digest_bytes
from mb.labels import Label

FFMPEG = Tool("ffmpeg", "/usr/bin/ffmpeg")
INPUTS = {"a/in.png": "0" * 64}
TOOLS = {"ffmpeg": "1" * 64}


def run_action(**spec_changes: Any) -> Action:
    spec = ActionSpec(
        kind="run", argv=(FFMPEG, "-i", "a/in.png", "a/out.mp4"), function=None, params={},
        inputs=("a/in.png",), outputs=("a/out.mp4",), tools=(FFMPEG,), env=(("LEVEL", "3"),),
        secret_env=(), resources=(("gpu", 1),), timeout=10.0, retries=1, description="encode",
    )
    return Action(index=0, owner=Label("a", "t"), spec=attrs.evolve(spec, **spec_changes),
                  rule="genrule", rule_version="1", plugin="mb", plugin_version="0.1.0", tags=())


def call_action() -> Action:
    spec = ActionSpec(
        kind="call", argv=(), function=FunctionRef("mb_x.mod", "speak", "/abs/mb_x/mod.py"),
        params={"voice": "en-us", "rate": 1.5, "\u00fc": [1, None, True]}, inputs=("a/s.txt",),
        outputs=("a/t.wav",), tools=(), env=(), secret_env=("OPENAI_API_KEY",), resources=(),
        timeout=None, retries=0, description="speak", network=True,
    )
    return Action(index=1, owner=Label("a", "t"), spec=spec, rule="tts", rule_version="2",
                  plugin="mb", plugin_version="0.1.0", tags=("requires-network",),
                  function_digest="f" * 64)


RUN_CANONICAL = (
    b'{"argv":[{"tool":"ffmpeg"},"-i","a/in.png","a/out.mp4"],"env":[["LEVEL","3"]],'
    b'"function":null,"inputs":["a/in.png"],"kind":"run","network":false,'
    b'"outputs":["a/out.mp4"],"params":{},"plugin":["mb","0.1.0"],"rule":["genrule","1"],'
    b'"schema":1,"secret_env":[],"tools":["ffmpeg"]}'
)
RUN_STATIC = "236cda0b517a4c2d01f793489e06e250b91fe0389b00a5474a83c428ceb4c0e8"
RUN_KEY = "25522308bb5ce1229608f8bb5d555db1aa69c3a1e9f852cc7bb0e64a926d29d1"

CALL_CANONICAL = (
    '{"argv":[],"env":[],"function":["mb_x.mod","speak","' + "f" * 64 + '"],'
    '"inputs":["a/s.txt"],"kind":"call","network":true,"outputs":["a/t.wav"],'
    '"params":{"rate":1.5,"voice":"en-us","\u00fc":[1,null,true]},"plugin":["mb","0.1.0"],'
    '"rule":["tts","2"],"schema":1,"secret_env":["OPENAI_API_KEY"],"tools":[]}'
).encode("utf-8")


def key_of(action: Action, inputs: dict[str, str] = INPUTS,
           tools: dict[str, str] = TOOLS) -> str:
    return action_key(with_static_digest(action), inputs, tools)


# --- golden encoding ----------------------------------------------------------------


def test_schema_version() -> None:
    assert KEY_SCHEMA == 1


def test_golden_run_action_encoding_and_key() -> None:
    action = with_static_digest(run_action())
    assert canonical_json(static_components(action)) == RUN_CANONICAL
    assert action.static_digest == RUN_STATIC == digest_bytes(RUN_CANONICAL)
    key = action_key(action, INPUTS, TOOLS)
    assert key == RUN_KEY
    final = ('{"inputs":{"a/in.png":"' + "0" * 64 + '"},"static":"' + RUN_STATIC
             + '","tools":{"ffmpeg":"' + "1" * 64 + '"}}').encode()
    assert key == digest_bytes(final)


def test_golden_call_action_encoding() -> None:
    action = with_static_digest(call_action())
    assert canonical_json(static_components(action)) == CALL_CANONICAL
    assert action.static_digest == digest_bytes(CALL_CANONICAL)
    assert action.static_digest == (
        "017d74620cef140717f309d913a027e0c3d4b0d58193d6b65433d3a58e45061f")


def test_the_encoding_kept_for_the_manifest_is_the_one_digested() -> None:
    action, encoding = with_static_encoding(run_action())
    assert encoding == RUN_CANONICAL
    assert action.static_digest == RUN_STATIC == with_static_digest(run_action()).static_digest


def test_absolute_paths_are_not_in_the_encoding() -> None:
    for action in (run_action(), call_action()):
        encoded = canonical_json(static_components(action))
        assert b"/usr/bin" not in encoded and b"/abs" not in encoded


# --- what changes the key --------------------------------------------------------


CHANGES: dict[str, Callable[[], str]] = {
    "input digest": lambda: key_of(run_action(), inputs={"a/in.png": "2" * 64}),
    "input path": lambda: key_of(run_action(inputs=("a/other.png",)),
                                 inputs={"a/other.png": "0" * 64}),
    "extra input": lambda: key_of(run_action(inputs=("a/in.png", "a/b.png")),
                                  inputs={**INPUTS, "a/b.png": "3" * 64}),
    "tool digest": lambda: key_of(run_action(), tools={"ffmpeg": "4" * 64}),
    "tool name": lambda: key_of(run_action(tools=(Tool("ffmpeg7", "/usr/bin/ffmpeg"),)),
                                tools={"ffmpeg7": "1" * 64}),
    "argv": lambda: key_of(run_action(argv=(FFMPEG, "-y", "-i", "a/in.png", "a/out.mp4"))),
    "param": lambda: key_of(run_action(params={"crf": 18})),
    "env": lambda: key_of(run_action(env=(("LEVEL", "4"),))),
    "env name": lambda: key_of(run_action(env=(("LEVEL2", "3"),))),
    "secret env name": lambda: key_of(run_action(secret_env=("API_KEY",))),
    "outputs": lambda: key_of(run_action(outputs=("a/out2.mp4",))),
    "kind": lambda: key_of(run_action(kind="call")),
    "rule name": lambda: key_of(attrs.evolve(run_action(), rule="genrule2")),
    "rule version": lambda: key_of(attrs.evolve(run_action(), rule_version="2")),
    "plugin name": lambda: key_of(attrs.evolve(run_action(), plugin="mb-other")),
    "plugin version": lambda: key_of(attrs.evolve(run_action(), plugin_version="0.2.0")),
    "network": lambda: key_of(run_action(network=True)),
    "function": lambda: key_of(attrs.evolve(
        run_action(function=FunctionRef("m", "f", "/x.py")))),
    "function digest": lambda: key_of(attrs.evolve(
        run_action(function=FunctionRef("m", "f", "/x.py")), function_digest="e" * 64)),
}


def test_every_change_gives_a_distinct_key() -> None:
    keys = {name: make() for name, make in CHANGES.items()}
    assert RUN_KEY not in keys.values()
    # and no two different changes collide
    assert len(set(keys.values())) == len(keys)


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_change_changes_the_key(name: str) -> None:
    assert CHANGES[name]() != RUN_KEY


# --- what does not change the key ----------------------------------------------------


def test_tool_path_is_not_in_the_key() -> None:
    moved = Tool("ffmpeg", "/opt/other/machine/bin/ffmpeg")
    action = run_action(argv=(moved, "-i", "a/in.png", "a/out.mp4"), tools=(moved,))
    assert key_of(action) == RUN_KEY


def test_function_source_path_is_not_in_the_key() -> None:
    action = call_action()
    moved = attrs.evolve(action, spec=attrs.evolve(
        action.spec, function=FunctionRef("mb_x.mod", "speak", "/elsewhere/mb_x/mod.py")))
    assert key_of(moved) == key_of(action)


@pytest.mark.parametrize("change", [
    {"resources": (("gpu", 2),)}, {"timeout": 99.0}, {"retries": 5},
    {"description": "something else"},
])
def test_scheduling_details_are_not_in_the_key(change: dict[str, Any]) -> None:
    assert key_of(run_action(**change)) == RUN_KEY


def test_owner_index_and_other_tags_are_not_in_the_key() -> None:
    action = attrs.evolve(run_action(), index=42, owner=Label("elsewhere", "x"),
                          tags=("manual", "no-cache", "free"))
    assert key_of(action) == RUN_KEY


def test_input_digest_order_does_not_matter() -> None:
    action = run_action(inputs=("a/x", "a/y"))
    assert key_of(action, inputs={"a/x": "1", "a/y": "2"}) == key_of(
        action, inputs={"a/y": "2", "a/x": "1"})


def test_params_key_order_does_not_matter() -> None:
    assert key_of(run_action(params={"a": 1, "b": {"c": 2, "d": 3}})) == key_of(
        run_action(params={"b": {"d": 3, "c": 2}, "a": 1}))


def test_action_properties() -> None:
    action = run_action()
    assert action.cacheable
    assert action.description == "encode"
    assert not attrs.evolve(action, tags=("no-cache",)).cacheable
