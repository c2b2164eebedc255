"""How actions run: the `dir`, `none` and `linux` sandboxes (SPEC §5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mb.sandbox.base import Sandbox


def make_sandbox(mode: str, events: Any) -> Sandbox:
    """The sandbox for `mode` (validated already); `linux` falls back to `dir`, saying so."""
    from mb.sandbox.base import ProcessRegistry

    registry = ProcessRegistry()
    if mode == "none":
        from mb.sandbox.none import NoSandbox

        return NoSandbox(registry)
    if mode == "linux":
        from mb.sandbox.linux import LinuxSandbox, namespaces_available

        if namespaces_available():
            return LinuxSandbox(registry)
        events.emit("sandbox.fallback", level="warning",
                    message="linux namespaces are not available here; using the dir sandbox")
    from mb.sandbox.dir import DirSandbox

    return DirSandbox(registry)
