"""The fake ComfyUI server's nodes, and ComfyUI's prompt validation and execution, model-free.

`EmptyImage`, `ImageInvert`, `SaveImage` and `PreviewImage` behave like the
ComfyUI core nodes of the same name (inputs, limits, return types, the
`<prefix>_<counter:05>_.png` file names and the `prompt` PNG text chunk).
Two nodes exist only here, for tests: `MbTestNoise` (a seeded noise image,
so a seed visibly changes pixels, reporting `progress`) and `MbTestFail`
(raises at run time, for `execution_error`). `validate_prompt` follows
ComfyUI's `execution.validate_prompt`: same error types, messages and the
`node_errors` shape of a 400 answer to `POST /prompt`. `execute_prompt`
sends the messages `PromptExecutor.execute` sends, in the same order.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

MAX_RESOLUTION = 16384
ImageBatch = list[Image.Image]


class RunContext:
    """What a running node may use: the output folder, the prompt, progress messages."""

    def __init__(self, output_dir: str, prompt: dict[str, Any],
                 progress: Callable[[int, int], None]) -> None:
        self.output_dir = output_dir
        self.prompt = prompt
        self.progress = progress


@dataclass
class NodeClass:
    inputs: dict[str, tuple[Any, ...]]  # the "required" inputs: name -> (type, options)
    returns: tuple[str, ...]
    run: Callable[..., Any]
    output_node: bool = False
    hidden: dict[str, str] = field(default_factory=dict)


def _empty_image(ctx: RunContext, width: int, height: int, batch_size: int,
                 color: int) -> tuple[ImageBatch]:
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return ([Image.new("RGB", (width, height), rgb) for _ in range(batch_size)],)


def _invert(ctx: RunContext, image: ImageBatch) -> tuple[ImageBatch]:
    return ([ImageOps.invert(i.convert("RGB")) for i in image],)


def _save_path(output_dir: str, prefix: str) -> tuple[str, str, int, str]:
    """ComfyUI's `folder_paths.get_save_image_path`: the next free counter for a prefix."""
    subfolder, filename = os.path.split(os.path.normpath(prefix))
    folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(folder))) != output_dir:
        raise Exception("Saving image outside the output folder is not allowed.")
    os.makedirs(folder, exist_ok=True)
    pattern = re.compile(re.escape(filename) + r"_(\d+)_")
    counters = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
    return folder, filename, max(counters, default=0) + 1, subfolder


def _save(ctx: RunContext, images: ImageBatch, filename_prefix: str,
          kind: str = "output", root: str | None = None) -> dict[str, Any]:
    folder, filename, counter, subfolder = _save_path(root or ctx.output_dir, filename_prefix)
    results = []
    for batch_number, image in enumerate(images):
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        metadata = PngInfo()
        metadata.add_text("prompt", json.dumps(ctx.prompt))
        image.save(os.path.join(folder, name), pnginfo=metadata, compress_level=4)
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return {"ui": {"images": results}}


def _preview(ctx: RunContext, images: ImageBatch) -> dict[str, Any]:
    temp = os.path.join(ctx.output_dir, "..", "temp")
    os.makedirs(temp, exist_ok=True)
    return _save(ctx, images, "ComfyUI_temp_preview", kind="temp", root=os.path.abspath(temp))


def _noise(ctx: RunContext, seed: int, width: int, height: int) -> tuple[ImageBatch]:
    rng = random.Random(seed)
    rows = []
    for row in range(height):
        rows.append(bytes(rng.getrandbits(8) for _ in range(width * 3)))
        ctx.progress(row + 1, height)
    return ([Image.frombytes("RGB", (width, height), b"".join(rows))],)


def _fail(ctx: RunContext, image: ImageBatch, message: str) -> tuple[ImageBatch]:
    raise RuntimeError(message)


_SIZE = ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1})
NODES: dict[str, NodeClass] = {
    "EmptyImage": NodeClass(
        {"width": _SIZE, "height": _SIZE,
         "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
         "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1})},
        ("IMAGE",), _empty_image),
    "ImageInvert": NodeClass({"image": ("IMAGE",)}, ("IMAGE",), _invert),
    "SaveImage": NodeClass({"images": ("IMAGE",),
                            "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                           (), _save, output_node=True,
                           hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}),
    "PreviewImage": NodeClass({"images": ("IMAGE",)}, (), _preview, output_node=True),
    "MbTestNoise": NodeClass(
        {"seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
         "width": _SIZE, "height": _SIZE}, ("IMAGE",), _noise),
    "MbTestFail": NodeClass({"image": ("IMAGE",), "message": ("STRING", {"default": "boom"})},
                            ("IMAGE",), _fail),
}


# --- validation: ComfyUI's execution.validate_prompt ---------------------------------


def _error(type_: str, message: str, details: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra}


def _check_value(name: str, value: Any, info: tuple[Any, ...]) -> tuple[Any, dict[str, Any] | None]:
    kind, options = info[0], (info[1] if len(info) > 1 else {})
    try:
        value = {"INT": int, "FLOAT": float, "STRING": str}.get(kind, lambda v: v)(value)
    except (TypeError, ValueError) as ex:
        return value, _error("invalid_input_type",
                             f"Failed to convert an input value to a {kind} value",
                             f"{name}, {value}, {ex}", input_name=name, received_value=value)
    if "min" in options and value < options["min"]:
        return value, _error("value_smaller_than_min",
                             f"Value {value} smaller than min of {options['min']}", name,
                             input_name=name, received_value=value)
    if "max" in options and value > options["max"]:
        return value, _error("value_bigger_than_max",
                             f"Value {value} bigger than max of {options['max']}", name,
                             input_name=name, received_value=value)
    return value, None


Validated = dict[str, tuple[bool, list[Any], str]]


def validate_inputs(prompt: dict[str, Any], uid: str,
                    validated: Validated) -> tuple[bool, list[Any], str]:
    if uid in validated:
        return validated[uid]
    inputs = prompt[uid]["inputs"]  # a node without "inputs" raises, as in ComfyUI
    errors: list[dict[str, Any]] = []
    valid = True
    for name, info in NODES[prompt[uid]["class_type"]].inputs.items():
        if name not in inputs:
            errors.append(_error("required_input_missing", "Required input is missing", name,
                                 input_name=name))
            continue
        value = inputs[name]
        if isinstance(value, list):
            if len(value) != 2:
                errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 "
                                     "list of [node_id, slot_index]", name, input_name=name))
                continue
            received = NODES[prompt[value[0]]["class_type"]].returns[value[1]]
            if received != info[0]:
                errors.append(_error("return_type_mismatch",
                                     "Return type mismatch between linked nodes",
                                     f"{name}, received_type({received}) mismatch "
                                     f"input_type({info[0]})", input_name=name))
                continue
            try:
                if validate_inputs(prompt, value[0], validated)[0] is False:
                    valid = False
            except Exception as ex:  # as ComfyUI: an error inside names the linking node
                valid = False
                validated[value[0]] = (False, [_error(
                    "exception_during_inner_validation", "Exception when validating inner node",
                    str(ex), input_name=name)], value[0])
            continue
        inputs[name], problem = _check_value(name, value, info)
        if problem:
            errors.append(problem)
    result = (not errors and valid, errors, uid)
    validated[uid] = result
    return result


def validate_prompt(prompt: Any) -> tuple[bool, Any, list[str], dict[str, Any]]:
    """`(valid, error, outputs_to_execute, node_errors)`, exactly as ComfyUI returns them."""
    if not isinstance(prompt, dict):
        return False, _error("invalid_prompt", "Prompt is not a JSON object", ""), [], {}
    for x, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return False, _error("invalid_prompt", "Cannot execute because a node is missing "
                                 "the class_type property.", f"Node ID '#{x}'"), [], {}
        if node["class_type"] not in NODES:
            return False, _error("invalid_prompt", f"Cannot execute because node "
                                 f"{node['class_type']} does not exist.", f"Node ID '#{x}'"), [], {}
    outputs = sorted(x for x in prompt if NODES[prompt[x]["class_type"]].output_node)
    if not outputs:
        return False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], []
    good: list[str] = []
    failures: list[tuple[str, list[Any]]] = []
    node_errors: dict[str, Any] = {}
    validated: Validated = {}
    for o in outputs:
        try:
            ok, reasons, _ = validate_inputs(prompt, o, validated)
        except Exception as ex:
            ok, reasons = False, [_error("exception_during_validation",
                                         "Exception when validating node", str(ex))]
            validated[o] = (False, reasons, o)
        if ok:
            good.append(o)
            continue
        failures.append((o, reasons))
        for node_id, (node_ok, node_reasons, _) in validated.items():
            if not node_ok and node_reasons:
                entry = node_errors.setdefault(node_id, {
                    "errors": node_reasons, "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, es in failures for e in es)
        return False, _error("prompt_outputs_failed_validation",
                             "Prompt outputs failed validation", details), [], node_errors
    return True, None, good, node_errors


def execute_prompt(output_dir: str, prompt_id: str, prompt: dict[str, Any], outputs: list[str],
                   send: Callable[[str, dict[str, Any]], None],
                   ) -> tuple[dict[str, Any], bool, list[list[Any]]]:
    """Run a validated prompt as `PromptExecutor.execute` does, sending its messages.

    Returns the UI outputs per node, whether it succeeded, and the status
    messages the history keeps (start, cached, success or error).
    """
    messages: list[list[Any]] = []

    def add_message(event: str, data: dict[str, Any]) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        messages.append([event, data])
        send(event, data)

    add_message("execution_start", {"prompt_id": prompt_id})
    add_message("execution_cached", {"nodes": [], "prompt_id": prompt_id})
    results: dict[str, Any] = {}
    ui_outputs: dict[str, Any] = {}
    executed: list[str] = []
    for node_id in execution_order(prompt, outputs):
        send("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
        node = prompt[node_id]
        node_class = NODES[node["class_type"]]
        args = {name: (results[v[0]][v[1]] if isinstance(v, list) else v)
                for name, v in node["inputs"].items() if name in node_class.inputs}

        def progress(value: int, maximum: int, node_id: str = node_id) -> None:
            send("progress", {"value": value, "max": maximum, "prompt_id": prompt_id,
                              "node": node_id})

        try:
            out = node_class.run(RunContext(output_dir, prompt, progress), **args)
        except Exception as ex:
            add_message("execution_error", {
                "prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"],
                "executed": list(executed), "exception_message": str(ex),
                "exception_type": type(ex).__qualname__,
                "traceback": traceback.format_tb(ex.__traceback__),
                "current_inputs": {k: [repr(v)] for k, v in args.items()},
                "current_outputs": {}})
            return ui_outputs, False, messages
        if isinstance(out, dict):
            ui_outputs[node_id] = out["ui"]
            send("executed", {"node": node_id, "display_node": node_id, "output": out["ui"],
                              "prompt_id": prompt_id})
            out = out.get("result", ())
        results[node_id] = out
        executed.append(node_id)
    add_message("execution_success", {"prompt_id": prompt_id})
    return ui_outputs, True, messages


def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    """Nodes the outputs depend on, each after its inputs (what ComfyUI's ExecutionList does)."""
    order: list[str] = []

    def visit(uid: str) -> None:
        if uid in order:
            return
        for value in prompt[uid]["inputs"].values():
            if isinstance(value, list):
                visit(value[0])
        order.append(uid)

    for o in outputs:
        visit(o)
    return order
