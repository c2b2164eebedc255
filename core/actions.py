"""Actions and their keys (SPEC §4).

An action's key is a blake3 digest over a canonical JSON encoding of: the
rule's name and version, the plugin's name and version, the command line
(tools by name only) or the Python function's identity and its module's
source digest, the params, the declared environment, the names (never the
values) of secret variables, the declared output paths, and the digests of
every input (by workspace-relative path) and every tool. Absolute paths,
timestamps, URLs and secret values are never part of it, so the same key in
another copy of the workspace, or on another machine, means the same action.

The part that does not depend on file contents is digested once at analysis
(`static_digest`); the final key adds the input and tool digests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from mb.context import ActionSpec, Tool
from mb.digest import canonical_json, digest_bytes, digest_value
from mb.labels import Label
from mb.pickling import pickled_by_position

#: Bump when the key encoding changes, so old cache entries stop matching.
KEY_SCHEMA: Final = 1


@pickled_by_position
@attrs.frozen
class Action:
    """One unit of work: an `ActionSpec` plus who declared it."""

    index: int
    owner: Label
    spec: ActionSpec
    rule: str
    rule_version: str
    plugin: str
    plugin_version: str
    tags: tuple[str, ...]
    #: The digest of the function's module source and its package helpers (Python actions).
    function_digest: str = ""
    #: Those modules by name: the worker loads them from source, never from a stale .pyc.
    function_modules: tuple[str, ...] = ()
    static_digest: str = ""

    @property
    def cacheable(self) -> bool:
        return "no-cache" not in self.tags

    @property
    def description(self) -> str:
        return self.spec.description


def static_components(action: Action) -> dict[str, Any]:
    """The key's components that are known at analysis time (recorded for `mb explain`)."""
    spec = action.spec
    # Only when set, so the keys of actions without redirections stay as they were.
    redirects = {name: value for name, value in (("stdin", spec.stdin), ("stdout", spec.stdout))
                 if value is not None}
    return {
        **redirects,
        "schema": KEY_SCHEMA,
        "rule": [action.rule, action.rule_version],
        "plugin": [action.plugin, action.plugin_version],
        "kind": spec.kind,
        "argv": [{"tool": p.name} if isinstance(p, Tool) else p for p in spec.argv],
        "function": (
            [spec.function.module, spec.function.qualname, action.function_digest]
            if spec.function else None
        ),
        "params": spec.params,
        "env": [list(pair) for pair in spec.env],
        "secret_env": list(spec.secret_env),
        "inputs": list(spec.inputs),
        "outputs": list(spec.outputs),
        "tools": [tool.name for tool in spec.tools],
        "network": spec.network,
    }


def static_encoding(action: Action) -> bytes:
    """The canonical encoding of `static_components`: what the static digest digests."""
    return canonical_json(static_components(action))


def with_static_digest(action: Action) -> Action:
    return with_static_encoding(action)[0]


def with_static_encoding(action: Action) -> tuple[Action, bytes]:
    """The action with its static digest, and the encoding it digests.

    The encoding is returned so the build can store it for `mb explain`
    (`history.write_manifest`) without encoding every action a second time
    (20 ms for 1,000 actions, on one core, at the end of a clean build).
    """
    encoding = static_encoding(action)
    return attrs.evolve(action, static_digest=digest_bytes(encoding)), encoding


def action_key(action: Action, input_digests: Mapping[str, str],
               tool_digests: Mapping[str, str]) -> str:
    """The action's key from its static digest and the digests of what it reads."""
    return digest_value({
        "static": action.static_digest,
        "inputs": dict(input_digests),
        "tools": dict(tool_digests),
    })
