"""`comfy_generate` against the fake ComfyUI server: analysis, the action, and `mb build`."""

from __future__ import annotations

import io
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_comfy import FakeComfy
from PIL import Image

import mb
from mb.attrs_convert import errors_of, structure
from mb.context import RuleContext, TargetOptions
from mb.labels import Label
from mb.rules.comfy import ComfyAttrs, comfy_generate, generate
from mb.testing import Workspace, clean_env

EXAMPLE = Path(__file__).parents[2] / "examples" / "shorts" / "comfy_workflow.json"


def solid(width: int, height: int, color: int, batch: int = 1) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "_meta": {"title": "Background"},
              "inputs": {"width": width, "height": height, "batch_size": batch, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }


def noise(seed: int = 0) -> dict[str, Any]:
    return {
        "1": {"class_type": "MbTestNoise", "inputs": {"seed": seed, "width": 4, "height": 3}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "n"}},
    }


@pytest.fixture
def comfy() -> Iterator[FakeComfy]:
    with FakeComfy() as server:
        yield server


class _Sources:
    """What analysis answers for the rule: labels are source files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths_of(self, label: Label) -> tuple[str, ...]:
        return (f"{label.package}/{label.name}",)

    def read_source(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None


class Run:
    """Analysis through the real rule, then the action as the worker would call it."""

    def __init__(self, tmp_path: Path, workflow: dict[str, Any] | str, **attributes: Any) -> None:
        self.tmp_path = tmp_path
        source = workflow if isinstance(workflow, str) else json.dumps(workflow)
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / "wf.json").write_text(source)
        self.attrs = structure({"workflow": "wf.json", **attributes}, ComfyAttrs, "pkg")
        self.spec = self.analyse("art")
        self.channel = io.StringIO()

    def analyse(self, name: str, attrs: ComfyAttrs | None = None) -> Any:
        ctx = RuleContext(Label("pkg", name), _Sources(self.tmp_path), TargetOptions(), {}, "pkg/BUILD.toml")
        comfy_generate.impl(ctx, attrs or self.attrs)
        [spec] = ctx.actions
        return spec

    def __call__(self, providers: dict[str, Any]) -> list[Path]:
        outputs = [self.tmp_path / p for p in self.spec.outputs]
        action_io = mb.ActionIO(
            root=self.tmp_path, inputs=[self.tmp_path / p for p in self.spec.inputs],
            outputs=outputs, tools=[], params=self.spec.params,
            providers={"comfy": {"backoff": 0.0, **providers}}, channel=self.channel,
            state_dir=self.tmp_path / "state")
        generate(action_io)
        return outputs

    def events(self, type: str) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.channel.getvalue().splitlines()]
        return [r["data"] for r in records if r["kind"] == "event" and r["type"] == type]


def pixels(path: Path) -> tuple[tuple[int, int], set[Any]]:
    """The image size and the set of its RGB colours."""
    with Image.open(path) as image:
        colors = image.convert("RGB").getcolors(image.width * image.height)
        return image.size, {color for _count, color in colors}


# --- analysis -------------------------------------------------------------------------


def test_analysis_declares_outputs_gpu_pool_and_keyed_params(tmp_path):
    run = Run(tmp_path, solid(2, 2, 0), params={"1.inputs.color": 255}, seed=7)
    assert run.spec.outputs == ("pkg/art.png",)
    assert run.spec.inputs == ("pkg/wf.json",)
    assert run.spec.resources == (("gpu", 1),)
    assert run.spec.params == {"params": {"1.inputs.color": 255}, "seed": 7, "images": 1}
    assert run.spec.secret_env == ()


def test_count_and_outs_name_the_outputs(tmp_path):
    run = Run(tmp_path, solid(2, 2, 0), count=3)
    assert run.spec.outputs == ("pkg/art_0.png", "pkg/art_1.png", "pkg/art_2.png")
    run = Run(tmp_path, solid(2, 2, 0), outs=["a.png", "b.png"])
    assert run.spec.outputs == ("pkg/a.png", "pkg/b.png")
    with pytest.raises(mb.RuleError, match="'count' is 3 but 'outs' names 2 files"):
        Run(tmp_path, solid(2, 2, 0), outs=["a.png", "b.png"], count=3)


@pytest.mark.parametrize(("attributes", "message"), [
    ({"seed": "random"}, "'seed' must be a whole number >= 0 or \"derived\", got 'random'"),
    ({"seed": -1}, "'seed' must be between 0 and 2**64 - 1, got -1"),
    ({"params": {"color": 3}}, "'params' key 'color' must look like 'NODE.inputs.FIELD', "
                               "for example '6.inputs.text'"),
    ({"outs": ["a.jpg"]}, "'outs' names PNG files, so each must end in '.png', got 'a.jpg'"),
    ({"count": 0}, "'count' must be at least 1, got 0"),
    ({"params": {"1.inputs.color": float("nan")}},
     "'params.1.inputs.color' must be a finite number, got nan; a workflow's JSON has no nan "
     "or inf"),
    ({"params": {"1.inputs.color": float("-inf")}},
     "'params.1.inputs.color' must be a finite number, got -inf; a workflow's JSON has no nan "
     "or inf"),
])
def test_attribute_mistakes_are_reported_by_attribute(attributes, message):
    with pytest.raises(Exception) as caught:
        structure({"workflow": "wf.json", **attributes}, ComfyAttrs, "pkg")
    [(_path, text)] = list(errors_of(caught.value, ComfyAttrs))
    assert text.endswith(message)


def test_derived_seed_is_stable_and_depends_on_label_and_attributes(tmp_path):
    run = Run(tmp_path, noise(), seed="derived")
    seed = run.spec.params["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert run.analyse("art").params == run.spec.params  # same key every analysis
    assert run.analyse("other").params["seed"] != seed
    changed = structure({"workflow": "wf.json", "seed": "derived", "params": {"1.inputs.width": 5}},
                        ComfyAttrs, "pkg")
    assert run.analyse("art", changed).params["seed"] != seed


# --- the action against the fake server ---------------------------------------------------


def test_renders_the_requested_colour_and_size(tmp_path, comfy):
    run = Run(tmp_path, solid(6, 4, 0x2244AA))
    [out] = run({"url": comfy.url})
    assert pixels(out) == ((6, 4), {(0x22, 0x44, 0xAA)})
    assert out.read_bytes().startswith(b"\x89PNG")
    [queued] = run.events("comfy.queued")
    assert [(e["method"], e["path"]) for e in run.events("provider.request")] == [
        ("GET", "/ws"), ("POST", "/prompt"), ("GET", f"/history/{queued['prompt_id']}"),
        ("GET", "/view")]
    assert comfy.prompts[0]["prompt"]["1"]["inputs"]["color"] == 0x2244AA


def test_params_set_inputs_by_node_id_or_title(tmp_path, comfy):
    run = Run(tmp_path, solid(6, 4, 0),
              params={"Background.inputs.color": 0xFF0000, "1.inputs.width": 3})
    [out] = run({"url": comfy.url})
    assert pixels(out) == ((3, 4), {(255, 0, 0)})


@pytest.mark.parametrize(("params", "message"), [
    ({"7.inputs.color": 1}, "params: node '7' in workflow wf.json: no such node id or title; "
                            "nodes: 1 (EmptyImage), 2 (SaveImage)"),
    ({"1.inputs.colour": 1}, "params: node 1 (EmptyImage) in workflow wf.json has no input "
                             "'colour'; its inputs: batch_size, color, height, width"),
    ({"2.inputs.images": 1}, "params: input 'images' of node 2 (SaveImage) is linked to node 1; "
                             "set a literal input instead"),
])
def test_params_naming_a_missing_node_or_input_fail_before_any_request(tmp_path, comfy, params,
                                                                       message):
    run = Run(tmp_path, solid(2, 2, 0), params=params)
    with pytest.raises(mb.ActionError) as caught:
        run({"url": comfy.url})
    assert str(caught.value) == message
    assert caught.value.retryable is False
    assert comfy.requests == []


def test_a_batch_becomes_numbered_outputs_in_order(tmp_path, comfy):
    workflow = solid(2, 2, 0x00FF00, batch=2)
    workflow["3"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    workflow["4"] = {"class_type": "SaveImage", "inputs": {"images": ["3", 0],
                                                           "filename_prefix": "inv"}}
    run = Run(tmp_path, workflow, count=4)
    outs = run({"url": comfy.url})
    assert [o.name for o in outs] == ["art_0.png", "art_1.png", "art_2.png", "art_3.png"]
    assert [pixels(o)[1] for o in outs] == [{(0, 255, 0)}] * 2 + [{(255, 0, 255)}] * 2


def test_a_workflow_saving_several_images_names_them_by_index(tmp_path, comfy):
    """SPEC §6: `<name>_<i>.png` when a workflow saves several; the rule reads the
    workflow during analysis to know how many (a batch of 2 here)."""
    run = Run(tmp_path, solid(2, 2, 0, batch=2))
    assert [Path(p).name for p in run.spec.outputs] == ["art_0.png", "art_1.png"]
    images = run({"url": comfy.url})
    assert [p.name for p in images] == ["art_0.png", "art_1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in images)


def test_a_count_that_does_not_match_the_saved_images_is_an_error(tmp_path, comfy):
    run = Run(tmp_path, solid(2, 2, 0, batch=2), count=1)
    with pytest.raises(mb.ActionError) as caught:
        run({"url": comfy.url})
    assert str(caught.value) == ("workflow wf.json saved 2 image(s) but the target declares 1 "
                                 "output(s); set 'count = 2' or list 2 names in 'outs'")


def test_seed_is_written_into_every_seed_input_and_changes_pixels(tmp_path, comfy):
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
    derived = Run(tmp_path / "a", noise(), seed="derived")
    [a] = derived({"url": comfy.url})
    assert comfy.prompts[0]["prompt"]["1"]["inputs"]["seed"] == derived.spec.params["seed"]
    fixed = Run(tmp_path / "b", noise(), seed=12345)
    [b] = fixed({"url": comfy.url})
    assert comfy.prompts[1]["prompt"]["1"]["inputs"]["seed"] == 12345
    assert len(pixels(b)[1]) > 1 and pixels(a)[1] != pixels(b)[1]
    [again] = Run(tmp_path / "c", noise(), seed=12345)({"url": comfy.url})
    assert again.read_bytes() == b.read_bytes()
    progress = fixed.events("comfy.progress")
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 3


def test_seed_without_a_seed_input_is_an_error(tmp_path, comfy):
    run = Run(tmp_path, solid(2, 2, 0), seed=3)
    with pytest.raises(mb.ActionError, match="no node of workflow wf.json has a literal 'seed' "
                                             "or 'noise_seed' input"):
        run({"url": comfy.url})


def test_node_errors_are_a_non_retryable_error_naming_the_node(tmp_path, comfy):
    workflow = solid(2, 2, 0)
    del workflow["2"]["inputs"]["filename_prefix"]
    workflow["1"]["inputs"]["width"] = 0
    run = Run(tmp_path, workflow)
    with pytest.raises(mb.ActionError) as caught:
        run({"url": comfy.url})
    assert str(caught.value) == (
        "ComfyUI rejected workflow wf.json: node 1 (EmptyImage): Value 0 smaller than min of 1: "
        "width; node 2 (SaveImage): Required input is missing: filename_prefix")
    assert caught.value.retryable is False
    assert [m for m, p in comfy.requests if p == "/prompt"] == ["POST"]  # not retried


def test_a_partly_invalid_workflow_is_refused_although_comfyui_queues_the_rest(tmp_path, comfy):
    workflow = solid(2, 2, 0)
    workflow["3"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
    with pytest.raises(mb.ActionError) as caught:
        Run(tmp_path, workflow)({"url": comfy.url})
    assert str(caught.value) == ("ComfyUI rejected part of workflow wf.json: node 3 (SaveImage): "
                                 "Required input is missing: filename_prefix")
    assert caught.value.retryable is False


def test_an_unknown_node_class_is_named_with_its_id(tmp_path, comfy):
    workflow = solid(2, 2, 0)
    workflow["5"] = {"class_type": "KSamplerTurbo", "inputs": {}}
    with pytest.raises(mb.ActionError) as caught:
        Run(tmp_path, workflow)({"url": comfy.url})
    assert str(caught.value) == ("ComfyUI rejected workflow wf.json: Cannot execute because node "
                                 "KSamplerTurbo does not exist. (node 5, KSamplerTurbo)")


def test_an_execution_error_names_the_node_and_its_message(tmp_path, comfy):
    workflow = solid(2, 2, 0)
    workflow["3"] = {"class_type": "MbTestFail", "inputs": {"image": ["1", 0], "message": "kaboom"}}
    workflow["2"]["inputs"]["images"] = ["3", 0]
    with pytest.raises(mb.ActionError) as caught:
        Run(tmp_path, workflow)({"url": comfy.url})
    assert str(caught.value) == ("ComfyUI failed running workflow wf.json at node 3 (MbTestFail): "
                                 "kaboom (RuntimeError)")
    assert caught.value.retryable is False


def test_a_500_then_success_is_retried(tmp_path, comfy):
    comfy.fail("/prompt", 500, times=1)
    comfy.drop("/view", times=1)
    run = Run(tmp_path, solid(2, 2, 0xABCDEF))
    [out] = run({"url": comfy.url})
    assert pixels(out) == ((2, 2), {(0xAB, 0xCD, 0xEF)})
    assert [e["status"] for e in run.events("provider.response") if e["path"] == "/prompt"] == [
        500, 200]
    assert [e["attempt"] for e in run.events("provider.request") if e["path"] == "/view"] == [1, 2]


def test_a_dropped_websocket_falls_back_to_polling_the_history(tmp_path, comfy):
    comfy.drop_websockets = True
    run = Run(tmp_path, solid(3, 3, 0x010203))
    [out] = run({"url": comfy.url})
    assert pixels(out) == ((3, 3), {(1, 2, 3)})
    assert len(run.events("comfy.websocket_closed")) == 1


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_a_server_that_is_down_opens_the_breaker_then_fails_fast(tmp_path, closed_port):
    settings = {"url": f"http://127.0.0.1:{closed_port}", "retries": 1, "breaker_threshold": 3}
    run = Run(tmp_path, solid(2, 2, 0))
    with pytest.raises(mb.ActionError) as caught:
        run(settings)
    assert caught.value.retryable is True
    assert str(caught.value).startswith(
        f"provider 'comfy': GET /ws to http://127.0.0.1:{closed_port} failed after 2 attempts: "
        "cannot connect")
    with pytest.raises(mb.ActionError, match="circuit open after 3 consecutive failures"):
        run(settings)
    assert [e["failures"] for e in run.events("breaker.opened")] == [3]
    sent = len(run.events("provider.request"))
    with pytest.raises(mb.ActionError) as caught:
        run(settings)
    assert str(caught.value) == ("provider 'comfy' is unavailable: circuit open after 3 "
                                 "consecutive failures; retrying after 30 s")
    assert len(run.events("provider.request")) == sent


def test_a_request_timeout_is_reported(tmp_path, comfy):
    comfy.stall("/prompt", times=2)
    run = Run(tmp_path, solid(2, 2, 0))
    with pytest.raises(mb.ActionError) as caught:
        run({"url": comfy.url, "timeout": 0.3, "retries": 1})
    assert "POST /prompt" in str(caught.value)
    assert str(caught.value).endswith("failed after 2 attempts: timed out (ReadTimeout)")


def test_a_workflow_that_never_finishes_hits_the_wait_timeout(tmp_path, comfy):
    comfy.hold_queue()
    run = Run(tmp_path, solid(2, 2, 0))
    with pytest.raises(mb.ActionError) as caught:
        run({"url": comfy.url, "wait_timeout": 0.3})
    assert str(caught.value).startswith("ComfyUI did not finish prompt ")
    assert caught.value.retryable is True


def test_no_url_is_a_clear_error(tmp_path):
    with pytest.raises(mb.ActionError) as caught:
        Run(tmp_path, solid(2, 2, 0))({})
    assert str(caught.value) == ("no ComfyUI server configured: set [providers.comfy] url in "
                                 "MB.toml or the MB_COMFY_URL environment variable")
    assert caught.value.retryable is False


def test_a_ui_format_workflow_is_explained(tmp_path, comfy):
    run = Run(tmp_path, {"last_node_id": 2, "nodes": [], "links": []})
    with pytest.raises(mb.ActionError, match="in ComfyUI's UI format; export it with 'Export "
                                             r"\(API\)'"):
        run({"url": comfy.url})


def test_the_example_workflow_uses_only_real_comfyui_nodes(tmp_path, comfy):
    workflow = json.loads(EXAMPLE.read_text())
    assert {n["class_type"] for n in workflow.values()} <= {"EmptyImage", "SaveImage"}
    run = Run(tmp_path, workflow, params={"1.inputs.width": 9, "1.inputs.height": 16})
    [out] = run({"url": comfy.url})
    assert pixels(out) == ((9, 16), {(0x22, 0x44, 0xAA)})


# --- a missing workflow with placeholders ---------------------------------------------


def test_a_placeholder_workflow_becomes_cards_of_the_asked_size_without_the_server(tmp_path):
    from mb.rules._comfy_workflow import placeholder_json

    run = Run(tmp_path, placeholder_json("pkg/wf.json", "source file is missing").decode(),
              params={"5.inputs.width": 90, "1.inputs.text": "a duck"}, count=2)
    outs = run({})  # no URL: a server is neither needed nor asked
    assert [pixels(o)[0] for o in outs] == [(90, 160), (90, 160)]
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert len(pixels(outs[0])[1]) > 1, "the card names the missing file"


@pytest.mark.parametrize(("params", "size"), [
    ({}, (1080, 1920)),
    ({"Latent.inputs.height": 640}, (360, 640)),
    ({"5.inputs.width": 512, "5.inputs.height": 512}, (512, 512)),
    ({"5.inputs.width": True, "5.inputs.height": 0}, (1080, 1920)),
])
def test_the_placeholder_size_comes_from_params(params, size):
    from mb.rules._comfy_workflow import placeholder_size

    assert placeholder_size(params) == size


def test_only_the_placeholder_shape_is_taken_for_a_placeholder():
    from mb.rules._comfy_workflow import placeholder_json, placeholder_of

    data = json.loads(placeholder_json("p/wf.json", "//p:wf is not available"))
    assert placeholder_of(data) == "p/wf.json"
    assert placeholder_of(solid(2, 2, 0)) is None
    assert placeholder_of({"mb_placeholder": [], "2": {}}) is None
    assert placeholder_of({"mb_placeholder": "p/wf.json"}) is None


PREVIEW = """
[gen]
rule = "comfy_generate"
workflow = "not_yet.json"
params = { "5.inputs.width" = 100, "5.inputs.height" = 60 }
count = 2

[vid]
rule = "ffmpeg_concat"
srcs = [":gen"]
width = 100
height = 60
fps = 10

[copy]
rule = "genrule"
srcs = ["not_yet.json"]
outs = ["copy.json"]
cmd = "cp $< $@"
"""


def test_a_missing_workflow_previews_with_placeholders_and_builds_once_written(mb_workspace,
                                                                             comfy):
    ws = mb_workspace({"MB.toml": "[providers.comfy]\nbackoff = 0\n", "pkg/BUILD.toml": PREVIEW})
    env = {"MB_COMFY_URL": comfy.url}
    result = ws.run("build", "--placeholders", env=env)
    assert result.exit_code == 0, result.stderr
    for label in ("//pkg:gen", "//pkg:vid", "//pkg:copy"):
        assert f"{label} (built) [provisional]" in result.stdout
    assert pixels(ws.out("pkg/gen_1.png"))[0] == (100, 60)
    assert ws.out("pkg/vid.mp4").stat().st_size > 0
    copied = json.loads(ws.out("pkg/copy.json").read_text())
    assert copied == {"mb_placeholder": {"missing": "pkg/not_yet.json",
                                         "reason": "source file is missing"}}
    assert comfy.requests == []

    workflow = solid(4, 2, 0x102030)
    workflow["5"] = workflow.pop("1")
    workflow["2"]["inputs"]["images"] = ["5", 0]
    workflow["5"]["inputs"]["batch_size"] = 2
    (ws.path / "pkg/not_yet.json").write_text(json.dumps(workflow))
    again = ws.run("build", "--placeholders", env=env)
    assert again.exit_code == 0, again.stderr
    assert "[provisional]" not in again.stdout
    assert pixels(ws.out("pkg/gen_1.png")) == ((100, 60), {(0x10, 0x20, 0x30)})


# --- end to end: `mb build` -------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "-inf", "1.5e400"])
def test_a_param_that_is_not_a_finite_number_is_located_in_the_build_file(mb_workspace, value):
    ws = mb_workspace({"pkg/wf.json": json.dumps(solid(2, 2, 0)),
                       "pkg/BUILD.toml": ('[art]\nrule = "comfy_generate"\nworkflow = "wf.json"\n'
                                         f'params = {{ "1.inputs.color" = {value} }}\n')})
    result = ws.run("build", "//pkg:art")
    assert result.exit_code == 2
    shown = "inf" if value == "1.5e400" else value
    assert result.stderr.startswith(
        f"pkg/BUILD.toml:4:1: 'params.1.inputs.color' must be a finite number, got {shown};")


def build_files(workflow: dict[str, Any], extra: str = "") -> dict[str, str]:
    return {
        "pkg/wf.json": json.dumps(workflow),
        "pkg/BUILD.toml": ('[art]\nrule = "comfy_generate"\nworkflow = "wf.json"\n'
                           'params = { "Background.inputs.color" = 0x00FF80 }\n' + extra),
    }


def test_mb_build_renders_caches_and_keeps_the_url_out_of_the_key(mb_workspace, comfy):
    ws = mb_workspace({"MB.toml": "[providers.comfy]\nbackoff = 0\n",
                       **build_files(solid(4, 2, 0))})
    result = ws.run("build", "//pkg:art", env={"MB_COMFY_URL": comfy.url})
    assert result.exit_code == 0, result.stderr
    assert pixels(ws.out("pkg/art.png")) == ((4, 2), {(0, 0xFF, 0x80)})
    assert ws.executed() == ["//pkg:art"]
    requests = [e for e in ws.last_build_events() if e["type"] == "provider.request"]
    assert {e["target"] for e in requests} == {"//pkg:art"}
    with FakeComfy() as other:
        again = ws.run("build", "//pkg:art", env={"MB_COMFY_URL": other.url})
        assert again.exit_code == 0, again.stderr
        assert ws.executed() == []
        assert other.requests == []


def test_with_the_server_down_other_targets_still_build_and_stay_cached(mb_workspace, closed_port):
    ws = mb_workspace({
        "MB.toml": (f'[providers.comfy]\nurl = "http://127.0.0.1:{closed_port}"\nretries = 0\n'
                    "breaker_threshold = 1\nbackoff = 0\n"),
        **build_files(solid(4, 2, 0), '\n[note]\nrule = "genrule"\nouts = ["note.txt"]\n'
                                      'cmd = "echo independent > $@"\n'),
    })
    first = ws.run("build", "-k", "//pkg:all")
    assert first.exit_code == 1
    assert "cannot connect" in first.stderr
    assert ws.out("pkg/note.txt").read_text() == "independent\n"
    assert not ws.out("pkg/art.png").exists()
    assert [e["data"]["provider"] for e in ws.last_build_events()
            if e["type"] == "breaker.opened"] == ["comfy"]
    second = ws.run("build", "-k", "//pkg:all")
    assert second.exit_code == 1
    assert "provider 'comfy' is unavailable: circuit open after 1 consecutive failures" in (
        second.stderr)
    assert "//pkg:note" not in ws.executed()
    assert ws.out("pkg/note.txt").read_text() == "independent\n"


def test_the_example_target_builds_against_a_server_and_is_manual(tmp_path, comfy):
    examples = tmp_path / "examples"
    shutil.copytree(EXAMPLE.parents[1], examples, ignore=shutil.ignore_patterns("mb-out", ".mb"))
    ws = Workspace(examples, clean_env())
    result = ws.run("build", "//shorts:background", env={"MB_COMFY_URL": comfy.url})
    assert result.exit_code == 0, result.stderr
    assert pixels(ws.out("shorts/background.png")) == ((1080, 1920), {(0x2F, 0x86, 0xC9)})
    listed = ws.run("query", "//shorts:all")
    assert "//shorts:final" in listed.stdout.split()
    assert "//shorts:background" not in listed.stdout.split()


@pytest.mark.parametrize("workflow, params, count", [
    (solid(2, 2, 0), {}, 1),
    (solid(2, 2, 0, batch=3), {}, 3),
    (solid(2, 2, 0), {"1.inputs.batch_size": 4}, 4),
    ({**solid(2, 2, 0, batch=2), "3": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
      "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "i"}},
      "5": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}, {}, 4),
    ({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
      "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "l"}}},
     {}, 1),
])
def test_the_images_a_workflow_saves_are_counted_before_it_runs(workflow, params, count):
    from mb.rules._comfy_workflow import saved_image_count

    assert saved_image_count(json.dumps(workflow).encode(), params) == count


@pytest.mark.parametrize("text", [
    b"not json", json.dumps({"nodes": [], "links": []}).encode(),  # a UI-format file
    json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"batch_size": 2}}}).encode(),
    json.dumps({  # two batch sizes meet: left to the run
        "1": {"class_type": "EmptyImage", "inputs": {"batch_size": 2}},
        "2": {"class_type": "EmptyImage", "inputs": {"batch_size": 3}},
        "3": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}}}).encode(),
])
def test_a_count_that_cannot_be_told_from_the_file_is_left_to_the_run(text):
    from mb.rules._comfy_workflow import saved_image_count

    assert saved_image_count(text, {}) is None


def test_editing_the_batch_size_renames_the_outputs_on_the_next_build(mb_workspace, comfy):
    """The workflow is read during analysis, so an edit of it is a new analysis (not
    a source edit that reuses the last one, whose output names are those of before)."""
    ws = mb_workspace({"MB.toml": "[providers.comfy]\nbackoff = 0\n",
                       **build_files(solid(4, 2, 0))})
    ws.env.update({"MB_COMFY_URL": comfy.url, "MB_RACY_SECONDS": "0"})
    assert ws.run("build", "//pkg:art").exit_code == 0
    assert ws.run("build", "//pkg:art").exit_code == 0  # records a trusted snapshot
    (ws.path / "pkg/wf.json").write_text(json.dumps(solid(4, 2, 0, batch=2)))
    result = ws.run("build", "//pkg:art")
    assert result.exit_code == 0, result.stderr
    assert "  mb-out/pkg/art_0.png" in result.stdout and "  mb-out/pkg/art_1.png" in result.stdout
    assert pixels(ws.out("pkg/art_1.png")) == ((4, 2), {(0, 0xFF, 0x80)})
