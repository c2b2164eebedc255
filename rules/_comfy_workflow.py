"""ComfyUI API-format workflows for `comfy_generate`: load, set params and seeds, read results.

Pure functions over JSON values, so each rule of the format is tested
without a server. An API-format workflow maps node ids to
`{"class_type": ..., "inputs": {...}}`; an input is a literal or a link
`[node_id, output_index]` to another node's output.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import mb

#: Inputs that hold a sampler's seed in ComfyUI core nodes (KSampler, RandomNoise, ...).
SEED_INPUTS: Final = ("seed", "noise_seed")
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PARAM_KEY: Final = re.compile(r"^([^.]+)\.inputs\.(.+)$")
#: The one key of the JSON that stands in for a missing workflow (`placeholder_json`).
PLACEHOLDER_KEY: Final = "mb_placeholder"
#: The largest image side ComfyUI's core nodes accept (`nodes.MAX_RESOLUTION`).
MAX_RESOLUTION: Final = 16384

Workflow = dict[str, dict[str, Any]]


def parse_param_key(key: str) -> tuple[str, str] | None:
    """`"3.inputs.seed"` -> `("3", "seed")`; None if the key has another shape."""
    match = _PARAM_KEY.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def derived_seed(label: str, attributes: Mapping[str, Any]) -> int:
    """A seed in [0, 2**32) that depends only on the label and the other attributes.

    32 bits because some custom nodes reject larger seeds; sha256 of a
    canonical JSON text, so it is the same on every machine and Python.
    """
    text = json.dumps({"label": label, "attributes": attributes}, sort_keys=True,
                      separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def read_json(path: Path, name: str) -> Any:
    """The workflow file's JSON value; text that is not JSON is a non-retryable error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise mb.ActionError(f"workflow {name} is not valid JSON: {exc}", retryable=False) from None


def check_workflow(data: Any, name: str) -> Workflow:
    """`data` as an API-format workflow; anything else is a non-retryable error."""
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise mb.ActionError(
            f"workflow {name} is in ComfyUI's UI format; export it with 'Export (API)' "
            "(or 'Save (API Format)') and point 'workflow' at that file", retryable=False)
    if not isinstance(data, dict) or not data:
        raise mb.ActionError(f"workflow {name} must be a JSON object of nodes", retryable=False)
    for node_id, node in data.items():
        if not (isinstance(node, dict) and isinstance(node.get("class_type"), str)
                and isinstance(node.get("inputs"), dict)):
            raise mb.ActionError(
                f"workflow {name}: node {node_id!r} needs a 'class_type' string and an "
                "'inputs' object (is this an API-format workflow?)", retryable=False)
    return data


def placeholder_json(path: str, reason: str) -> bytes:
    """What stands in for a missing `.json` file with `--placeholders` and in `mb watch`.

    Valid JSON, so any consumer can read it (mb's generic placeholder is a
    line of text), and of a shape no API-format workflow has (a node needs a
    `class_type`), so `comfy_generate` can tell it from a workflow.
    """
    text = json.dumps({PLACEHOLDER_KEY: {"missing": path, "reason": reason}}, indent=1)
    return (text + "\n").encode()


def placeholder_of(data: Any) -> str | None:
    """The missing file's path if `data` is `placeholder_json`'s, else None."""
    about = data.get(PLACEHOLDER_KEY) if isinstance(data, dict) and len(data) == 1 else None
    missing = about.get("missing") if isinstance(about, dict) else None
    return missing if isinstance(missing, str) else None


def placeholder_size(params: Mapping[str, Any]) -> tuple[int, int]:
    """The image size `params` set (any node's `width`/`height` input), else 1080x1920.

    The workflow that would tell more is the missing file. One side given keeps
    a vertical short's 9:16 for the other, as svg_render's placeholder does.
    """
    asked: dict[str, int] = {}
    for key, value in params.items():
        parsed = parse_param_key(key)
        if (parsed and parsed[1] in ("width", "height") and isinstance(value, int)
                and not isinstance(value, bool) and 0 < value <= MAX_RESOLUTION):
            asked.setdefault(parsed[1], value)
    width, height = asked.get("width"), asked.get("height")
    if width is None:
        width = max(1, round(height * 9 / 16)) if height else 1080
    if height is None:
        height = max(1, round(width * 16 / 9))
    return width, height


def _node_list(workflow: Workflow) -> str:
    return ", ".join(f"{i} ({n['class_type']})" for i, n in sorted(workflow.items(), key=_id_key))


def _find_node(workflow: Workflow, ref: str, name: str) -> str:
    """A node by id, or by its unique `_meta.title` as shown in ComfyUI's editor."""
    if ref in workflow:
        return ref
    titled = [i for i, n in workflow.items() if (n.get("_meta") or {}).get("title") == ref]
    if len(titled) == 1:
        return titled[0]
    why = "several nodes have that title" if titled else "no such node id or title"
    raise mb.ActionError(f"params: node {ref!r} in workflow {name}: {why}; nodes: "
                         f"{_node_list(workflow)}", retryable=False)


def apply_params(workflow: Workflow, params: Mapping[str, Any], name: str) -> None:
    """Set `"NODE.inputs.FIELD" = value`; an unknown node or input, or a link, is an error."""
    for key, value in params.items():
        parsed = parse_param_key(key)
        if parsed is None:
            raise mb.ActionError(f"params: key {key!r} must look like 'NODE.inputs.FIELD'",
                                 retryable=False)
        node_id = _find_node(workflow, parsed[0], name)
        node, field = workflow[node_id], parsed[1]
        inputs = node["inputs"]
        if field not in inputs:
            raise mb.ActionError(
                f"params: node {node_id} ({node['class_type']}) in workflow {name} has no input "
                f"{field!r}; its inputs: {', '.join(sorted(inputs)) or 'none'}", retryable=False)
        if isinstance(inputs[field], list):
            raise mb.ActionError(
                f"params: input {field!r} of node {node_id} ({node['class_type']}) is linked to "
                f"node {inputs[field][0]}; set a literal input instead", retryable=False)
        inputs[field] = value


#: ComfyUI core nodes that save their images as outputs (`type: "output"`).
SAVE_NODES: Final = frozenset({"SaveImage"})


def saved_image_count(text: bytes, params: Mapping[str, Any]) -> int | None:
    """How many images a workflow saves, read before it runs (the output names depend
    on it); None when that cannot be told from the file.

    Each `SaveImage` node saves one image per item of the batch reaching it:
    the `batch_size` found upstream of its `images` (following links; one
    value, else unknown), 1 when there is none (a loaded image). `params`
    are applied first (they may set a batch size). A workflow that is not
    one, or nodes that change a batch's length, are left to the run, which
    says how many images were saved and how to declare them.
    """
    try:
        workflow = check_workflow(json.loads(text.decode("utf-8")), "")
        apply_params(workflow, params, "")
    except (UnicodeDecodeError, ValueError, mb.ActionError):
        return None
    total = 0
    for node in workflow.values():
        if node["class_type"] in SAVE_NODES:
            batch = _upstream_batch(workflow, node["inputs"].get("images"))
            if batch is None:
                return None
            total += batch
    return total or None


def _upstream_batch(workflow: Workflow, link: Any) -> int | None:
    """The one literal `batch_size` upstream of `link` (1 if none; None if several)."""
    sizes: set[int] = set()
    seen: set[str] = set()
    pending = [link]
    while pending:
        item = pending.pop()
        if not (isinstance(item, list) and len(item) == 2 and str(item[0]) in workflow):
            continue
        node_id = str(item[0])
        if node_id in seen:
            continue
        seen.add(node_id)
        for field, value in workflow[node_id].get("inputs", {}).items():
            if field == "batch_size" and isinstance(value, int) and not isinstance(value, bool):
                sizes.add(value)
            elif isinstance(value, list):
                pending.append(value)
    if len(sizes) > 1:
        return None
    return sizes.pop() if sizes else 1


def apply_seed(workflow: Workflow, seed: int, name: str) -> list[str]:
    """Write `seed` into every literal `seed`/`noise_seed` input; returns the node ids."""
    touched = []
    for node_id, node in sorted(workflow.items(), key=_id_key):
        for field in SEED_INPUTS:
            if field in node["inputs"] and not isinstance(node["inputs"][field], list):
                node["inputs"][field] = seed
                touched.append(node_id)
    if not touched:
        raise mb.ActionError(
            f"seed: no node of workflow {name} has a literal 'seed' or 'noise_seed' input, so "
            "the seed would change nothing; remove 'seed' from the target", retryable=False)
    return touched


def _id_key(item: tuple[str, Any]) -> tuple[int, str]:
    """Numeric ids in numeric order ("2" before "10"), others after, by name."""
    node_id = item[0]
    return (int(node_id), "") if node_id.isdigit() else (2**62, node_id)


def output_images(outputs: Mapping[str, Any]) -> list[dict[str, str]]:
    """Saved images of a history entry, in node id order then in batch order.

    Only `type == "output"` images count: `PreviewImage` writes `temp` files
    that ComfyUI deletes, which is no build output.
    """
    images = []
    for _node_id, result in sorted(outputs.items(), key=_id_key):
        for image in (result or {}).get("images", []) or []:
            if image.get("type", "output") == "output":
                images.append(image)
    return images


def describe_rejection(body: Any, workflow: Workflow) -> str:
    """ComfyUI's 400 to `POST /prompt` as one line naming each failing node and why."""
    body = body if isinstance(body, dict) else {"error": str(body)}
    error = body.get("error")
    node_errors = body.get("node_errors")
    parts = []
    if isinstance(node_errors, dict):
        for node_id, info in sorted(node_errors.items(), key=_id_key):
            class_type = info.get("class_type") or workflow.get(node_id, {}).get("class_type", "?")
            for e in info.get("errors", []):
                detail = f": {e['details']}" if e.get("details") else ""
                message = e.get("message", "invalid")
                parts.append(f"node {node_id} ({class_type}): {message}{detail}")
    if not parts and isinstance(error, dict):
        text = error.get("message") or error.get("type") or "invalid prompt"
        found = re.search(r"Node ID '#([^']+)'", str(error.get("details", "")))
        if found and found.group(1) in workflow:
            node_id = found.group(1)
            text += f" (node {node_id}, {workflow[node_id].get('class_type', '?')})"
        elif error.get("details"):
            text += f" ({error['details']})"
        parts.append(text)
    elif not parts:
        parts.append(str(error or body))
    return "; ".join(parts)


def describe_execution_error(data: Mapping[str, Any]) -> str:
    """An `execution_error` message's data as 'node 4 (VAEDecode): message (Type)'."""
    kind = data.get("exception_type")
    return (f"node {data.get('node_id', '?')} ({data.get('node_type', '?')}): "
            f"{str(data.get('exception_message', '')).strip() or 'failed'}"
            + (f" ({kind})" if kind else ""))
