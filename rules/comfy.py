"""`comfy_generate`: run a ComfyUI API-format workflow on a ComfyUI server, keep its PNGs.

The workflow file, `params`, the seed and the output names are the action's
key; the server URL is not (`[providers.comfy] url` or `MB_COMFY_URL`), so
the same target gives a cache hit against any server. The action holds one
unit of the `gpu` resource pool unless the target says otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

import mb


#: `[providers.comfy] wait_timeout`: seconds a queued workflow may take to finish.
DEFAULT_WAIT_TIMEOUT = 600.0


def _check_params(_inst: Any, _attr: Any, value: dict[str, Any]) -> None:
    """Keys of the shape `apply_params` reads, and values the workflow's JSON can hold.

    TOML has `nan` and `inf` (and reads `1.5e400` as `inf`); JSON has neither, so
    such a value must be refused here, at its line, not when the action is declared.
    """
    # The workflow helpers are imported where they are used, not with this plugin:
    # every full build loads it, few have a ComfyUI target.
    from ._comfy_workflow import parse_param_key

    for key, item in value.items():
        if parse_param_key(key) is None:
            raise ValueError(f"'params' key {key!r} must look like 'NODE.inputs.FIELD', "
                             "for example '6.inputs.text'")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"'params.{key}' must be a finite number, got {item!r}; "
                             "a workflow's JSON has no nan or inf")


def _check_seed(_inst: Any, _attr: Any, value: int | str | None) -> None:
    if isinstance(value, bool) or (isinstance(value, str) and value != "derived"):
        raise ValueError(f"'seed' must be a whole number >= 0 or \"derived\", got {value!r}")
    if isinstance(value, int) and not 0 <= value < 2**64:
        raise ValueError(f"'seed' must be between 0 and 2**64 - 1, got {value}")


def _check_outs(_inst: Any, _attr: Any, value: tuple[str, ...]) -> None:
    for name in value:
        if not name.endswith(".png"):
            raise ValueError(f"'outs' names PNG files, so each must end in '.png', got {name!r}")


def _check_count(_inst: Any, _attr: Any, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"'count' must be at least 1, got {value}")


@attrs.frozen
class ComfyAttrs:
    workflow: mb.File
    params: dict[str, str | int | float | bool] = attrs.field(factory=dict,
                                                              validator=_check_params)
    seed: int | str | None = attrs.field(default=None, validator=_check_seed)
    outs: tuple[str, ...] = attrs.field(default=(), validator=_check_outs)
    count: int | None = attrs.field(default=None, validator=_check_count)


def output_names(name: str, outs: tuple[str, ...], count: int | None) -> list[str]:
    """`outs` if given; else `<name>.png`, or `<name>_0.png` ... for `count` > 1."""
    if outs:
        if count is not None and count != len(outs):
            raise mb.RuleError(f"'count' is {count} but 'outs' names {len(outs)} files; "
                               "give one of them")
        return list(outs)
    if (count or 1) == 1:
        return [f"{name}.png"]
    return [f"{name}_{i}.png" for i in range(count or 1)]


@mb.rule("comfy_generate", attrs=ComfyAttrs, version="1")
def comfy_generate(ctx: mb.RuleContext, a: ComfyAttrs) -> None:
    """Run a ComfyUI API-format workflow and collect the images it saves as PNGs."""
    count = a.count
    if count is None and not a.outs:
        # SPEC §6: `<name>_<i>.png` when the workflow saves several; read it now to know.
        text = ctx.read_source(a.workflow)
        if text is not None:
            from ._comfy_workflow import saved_image_count

            count = saved_image_count(text, a.params)
    names = output_names(ctx.name, a.outs, count)
    outputs = [ctx.output(n) for n in names]
    seed = a.seed
    if seed == "derived":
        from ._comfy_workflow import derived_seed

        seed = derived_seed(str(ctx.label), {"workflow": str(a.workflow), "params": a.params,
                                             "outs": names})
    key_env = ctx.provider("comfy").get("api_key_env")
    if key_env is not None and not isinstance(key_env, str):
        raise mb.RuleError(f"[providers.comfy] api_key_env must name an environment variable, "
                           f"got {key_env!r}")
    ctx.call(
        generate, inputs=[a.workflow], outputs=outputs,
        params={"params": dict(a.params), "seed": seed, "images": len(names)},
        secret_env=[key_env] if key_env else [], resources={"gpu": 1}, network=True,
        description=f"ComfyUI {ctx.path(a.workflow).rsplit('/', 1)[-1]} -> {', '.join(names)}",
    )


def generate(io: mb.ActionIO) -> None:
    """The action: prepare the workflow, run it on the server, write the PNGs in order."""
    # Imported here: HTTP and websocket libraries cost every build ~0.1 s to import,
    # and only builds that run a ComfyUI action need them.
    from mb.providers import ProviderClient, provider_settings

    from ._comfy_session import ComfySession
    from ._comfy_workflow import apply_params, apply_seed, check_workflow, placeholder_of, read_json

    name = io.inputs[0].name
    data = read_json(io.inputs[0], name)
    missing = placeholder_of(data)
    if missing is not None:
        write_placeholder_cards(io, missing)
        return
    workflow = check_workflow(data, name)
    if io.params.get("seed") is not None:
        apply_seed(workflow, int(io.params["seed"]), name)
    apply_params(workflow, io.params.get("params") or {}, name)
    settings = provider_settings(io, "comfy")
    if not settings.url:
        raise mb.ActionError("no ComfyUI server configured: set [providers.comfy] url in MB.toml "
                             "or the MB_COMFY_URL environment variable", retryable=False)
    wait_timeout = settings.extra.get("wait_timeout", DEFAULT_WAIT_TIMEOUT)
    if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, (int, float)):
        raise mb.ActionError(f"[providers.comfy] wait_timeout must be a number of seconds, got "
                             f"{wait_timeout!r}", retryable=False)
    headers = {}
    key_env = settings.extra.get("api_key_env")
    if isinstance(key_env, str) and io.secret(key_env):
        headers["Authorization"] = f"Bearer {io.secret(key_env)}"
    with ProviderClient(io, "comfy", settings.url, settings.timeout, settings.retries,
                        settings.breaker_threshold, settings.breaker_cooldown,
                        headers=headers, backoff=settings.backoff) as client:
        images = ComfySession(client, io, float(wait_timeout)).run(workflow, name)
    expected = len(io.outputs)
    if len(images) != expected:
        raise mb.ActionError(
            f"workflow {name} saved {len(images)} image(s) but the target declares {expected} "
            f"output(s); set 'count = {len(images)}' or list {len(images)} names in 'outs'",
            retryable=False)
    for path, data in zip(io.outputs, images, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    io.set_metadata("images", len(images))


def write_placeholder_cards(io: mb.ActionIO, missing: str) -> None:
    """A card naming the missing workflow in every output, without asking the server.

    The workflow is a placeholder (`mb_placeholder` below), so this result is
    provisional anyway; cards of the size `params` ask for let a video built
    from them preview in `mb watch` while the workflow is still being written.
    """
    from ._comfy_workflow import placeholder_size

    card = placeholder_card(missing, *placeholder_size(io.params.get("params") or {}))
    for path in io.outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(card)


def placeholder_card(missing: str, width: int, height: int) -> bytes:
    """A PNG drawn as mb's own image placeholders are: grey-blue, 'missing: PATH'."""
    import io as _io

    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), (64, 64, 80))
    try:
        font: Any = ImageFont.load_default(size=max(12, width // 24))
    except (TypeError, OSError):  # Pillow 10.0, or one built without FreeType: no sizes
        font = None
    ImageDraw.Draw(image).text((width // 20, height // 2), f"missing: {missing}",
                               fill=(255, 255, 255), font=font)
    buffer = _io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@mb.hookimpl
def mb_rules() -> list[Any]:
    return [comfy_generate]


@mb.hookimpl
def mb_placeholder(request: Any) -> bytes | None:
    """A missing `.json` becomes a small JSON object naming it, which `generate` turns
    into placeholder PNGs; any other consumer still gets valid JSON."""
    if not str(request.path).lower().endswith(".json"):
        return None
    from ._comfy_workflow import placeholder_json

    return placeholder_json(str(request.path), str(request.reason))
